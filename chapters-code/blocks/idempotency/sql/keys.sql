-- The idempotency block's key table: the columns every user of the block
-- needs, each constraint commented with the rule it keeps. A chapter whose
-- key must reference its own rows (an order, a reservation) declares this
-- table in its own schema with these columns plus its own; the block's
-- statements (src/pg.rs) touch only the columns below, and the test
-- `the_chapter_table_has_the_block_columns` of each chapter checks them.

-- ANCHOR: table
CREATE TABLE idempotency_keys (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The scope: a key means something only for one account on one endpoint.
    account_id      text NOT NULL,
    endpoint        text NOT NULL,
    -- The same rule as `IdempotencyKey::parse`: 1 to 255 visible ASCII.
    key             text NOT NULL CHECK (key ~ '^[!-~]{1,255}$'),
    -- SHA-256 of the canonical request, hex: the same key with another
    -- request is refused, never guessed at.
    fingerprint     text NOT NULL CHECK (fingerprint ~ '^[0-9a-f]{64}$'),
    -- The database's clock, never an application server's.
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- The fence: every claim that takes the key over adds one, and a
    -- finish that names an older generation changes nothing.
    generation      bigint NOT NULL DEFAULT 1 CHECK (generation >= 1),
    -- The holder's lease, by the database clock; NULL once released.
    locked_until    timestamptz,
    -- How far the work got: 'started', the user's own points, 'finished'.
    recovery_point  text NOT NULL DEFAULT 'started',
    -- The final answer, replayed to every retry (a 5xx included).
    response_status smallint CHECK (response_status BETWEEN 100 AND 599),
    response_body   jsonb,
    finished_at     timestamptz,
    -- One key per account and endpoint: this constraint is the guard
    -- that makes a second claim wait for, then see, the first.
    CONSTRAINT idempotency_keys_scope UNIQUE (account_id, endpoint, key),
    -- Finished means: an answer, a time, and no holder.
    CONSTRAINT idempotency_keys_finished CHECK (
        (recovery_point = 'finished') = (finished_at IS NOT NULL)
        AND (finished_at IS NULL) = (response_status IS NULL)
        AND (finished_at IS NULL OR locked_until IS NULL))
);

-- The purge deletes finished keys by age; unfinished ones are not in it.
CREATE INDEX idempotency_keys_finished_at ON idempotency_keys (finished_at)
    WHERE finished_at IS NOT NULL;
-- The purge counts the unfinished keys by age, once per call.
CREATE INDEX idempotency_keys_unfinished ON idempotency_keys (created_at)
    WHERE finished_at IS NULL;
-- ANCHOR_END: table
