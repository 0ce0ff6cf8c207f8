-- The e-commerce chapter's schema: catalog, orders, idempotency keys.
-- Each constraint is commented with the rule it keeps.

-- ANCHOR: products
CREATE TABLE products (
    -- The same rule as `Sku::parse`.
    sku         text PRIMARY KEY CHECK (sku ~ '^[A-Z0-9-]{1,32}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description text NOT NULL DEFAULT '',
    -- Integer minor units, never negative.
    price_minor bigint NOT NULL CHECK (price_minor >= 0),
    currency    text NOT NULL CHECK (currency IN ('EUR', 'USD', 'JPY')),
    tax_class   text NOT NULL CHECK (tax_class IN ('standard', 'reduced', 'exempt')),
    -- Units on hand and not reserved by an order: never oversold.
    stock       integer NOT NULL CHECK (stock >= 0),
    -- Bumped by every change; a cache never replaces a higher version.
    version     bigint NOT NULL DEFAULT 1,
    -- Full-text search over name (weight A) and description (weight B),
    -- kept current by PostgreSQL itself.
    search      tsvector GENERATED ALWAYS AS (
                    setweight(to_tsvector('english', name), 'A') ||
                    setweight(to_tsvector('english', description), 'B')) STORED
);

CREATE INDEX products_search ON products USING gin (search);
-- ANCHOR_END: products

-- ANCHOR: orders
CREATE TABLE orders (
    id          uuid PRIMARY KEY,
    account_id  text NOT NULL,
    status      text NOT NULL
                CHECK (status IN ('pending_payment', 'paid', 'payment_failed')),
    currency    text NOT NULL CHECK (currency IN ('EUR', 'USD', 'JPY')),
    -- The quote given is the price charged: the snapshot taken at checkout.
    total_minor bigint NOT NULL CHECK (total_minor >= 0),
    quote       jsonb NOT NULL,
    -- A paid order has exactly the charge that paid it.
    charge_id   text UNIQUE,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    -- When phase 1 reserved the stock, by the database's clock: the
    -- completer's age test compares it with that clock only.
    reserved_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    CHECK ((status = 'paid') = (charge_id IS NOT NULL))
);

CREATE TABLE order_lines (
    order_id    uuid NOT NULL REFERENCES orders (id),
    sku         text NOT NULL REFERENCES products (sku),
    quantity    integer NOT NULL CHECK (quantity BETWEEN 1 AND 99),
    unit_minor  bigint NOT NULL CHECK (unit_minor >= 0),
    total_minor bigint NOT NULL CHECK (total_minor >= 0),
    PRIMARY KEY (order_id, sku)
);

CREATE INDEX orders_account ON orders (account_id, created_at DESC);
-- The completer's scan: only the orders still waiting for an outcome.
CREATE INDEX orders_pending ON orders (reserved_at) WHERE status = 'pending_payment';
-- ANCHOR_END: orders

-- ANCHOR: idempotency_keys
-- The idempotency block's key table (chapters-code/blocks/idempotency/sql/keys.sql),
-- declared here because this chapter's keys reference its orders: the
-- block's columns and constraints, then the chapter's own.
CREATE TABLE idempotency_keys (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id      text NOT NULL,
    endpoint        text NOT NULL,
    key             text NOT NULL CHECK (key ~ '^[!-~]{1,255}$'),
    -- SHA-256 of method, route, account and the parsed request: the same
    -- key with another request is refused.
    fingerprint     text NOT NULL CHECK (fingerprint ~ '^[0-9a-f]{64}$'),
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- The fence: a claim that takes the key over adds one; phase 2 of the
    -- request it took over from names the old generation and writes nothing.
    generation      bigint NOT NULL DEFAULT 1 CHECK (generation >= 1),
    -- The holder's lease, on the database's clock; NULL once released.
    locked_until    timestamptz,
    -- How far the request got (the atomic phases it committed).
    recovery_point  text NOT NULL DEFAULT 'started'
                    CHECK (recovery_point IN ('started', 'order_created', 'finished')),
    -- The final answer, replayed to every retry.
    response_status smallint CHECK (response_status BETWEEN 100 AND 599),
    response_body   jsonb,
    finished_at     timestamptz,
    -- One key per account and endpoint: this constraint is the guard.
    CONSTRAINT idempotency_keys_scope UNIQUE (account_id, endpoint, key),
    CONSTRAINT idempotency_keys_finished CHECK (
        (recovery_point = 'finished') = (finished_at IS NOT NULL)
        AND (finished_at IS NULL) = (response_status IS NULL)
        AND (finished_at IS NULL OR locked_until IS NULL)),
    -- The chapter's own: the order phase 1 created, which a retry resumes.
    -- Deferred: phase 1 claims the key before it inserts the order, in one transaction.
    order_id        uuid REFERENCES orders (id) DEFERRABLE INITIALLY DEFERRED,
    CHECK (recovery_point <> 'order_created' OR order_id IS NOT NULL)
);

-- The purge deletes finished keys by age; unfinished ones are not in it.
CREATE INDEX idempotency_keys_finished_at ON idempotency_keys (finished_at)
    WHERE finished_at IS NOT NULL;
-- The purge counts the unfinished keys by age, once per call.
CREATE INDEX idempotency_keys_unfinished ON idempotency_keys (created_at)
    WHERE finished_at IS NULL;
-- ANCHOR_END: idempotency_keys

-- ANCHOR: staged_jobs
-- Work to do after an order is paid (the receipt e-mail), written in the
-- same transaction as the payment's recovery point and drained by a worker.
CREATE TABLE staged_jobs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         text NOT NULL,
    payload      jsonb NOT NULL,
    created_at   timestamptz NOT NULL,
    -- The fence: each claim adds one; a completion names the fence it
    -- claimed with, so a holder whose lease was taken over commits nothing.
    fence        bigint NOT NULL DEFAULT 0,
    -- The holder's lease, on the database's clock; NULL when unclaimed.
    locked_until timestamptz,
    -- Claims so far, and why the last run failed.
    attempts     integer NOT NULL DEFAULT 0,
    last_error   text,
    done_at      timestamptz
);
-- The worker's claim reads only the jobs not done, oldest first.
CREATE INDEX staged_jobs_todo ON staged_jobs (id) WHERE done_at IS NULL;
-- One receipt job per order, whatever finishes the order: the backstop
-- behind phase 2's `pending_payment` guard.
CREATE UNIQUE INDEX staged_jobs_one_receipt ON staged_jobs ((payload->>'order_id'))
    WHERE kind = 'send_receipt';

-- What the receipt jobs did: one row per order, written by the fenced
-- completion in the same transaction that marks the job done.
CREATE TABLE receipts (
    order_id uuid PRIMARY KEY REFERENCES orders (id),
    job_id   bigint NOT NULL REFERENCES staged_jobs (id),
    fence    bigint NOT NULL,
    sent_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- ANCHOR_END: staged_jobs

-- ANCHOR: cart_entries
-- The cart in PostgreSQL, for the comparison with Redis: the same
-- observed-remove design, one row per add, a tombstone is a flag.
CREATE TABLE cart_entries (
    cart_id    text NOT NULL,
    tag        uuid NOT NULL,
    sku        text NOT NULL,
    quantity   integer NOT NULL CHECK (quantity BETWEEN 1 AND 99),
    removed    boolean NOT NULL DEFAULT false,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (cart_id, tag)
);
-- ANCHOR_END: cart_entries
