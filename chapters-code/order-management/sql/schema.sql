-- Order management: the current state of each order, its append-only
-- history, the consumer's projection and dead letters, and the tables of
-- the saga's participants (stock and payments). Each constraint is commented
-- with the rule it keeps.

-- ANCHOR: orders
CREATE TABLE orders (
    id             uuid PRIMARY KEY,
    customer_id    uuid        NOT NULL,
    -- The state machine's states; the table in src/domain/state.rs names the
    -- same eleven (a test compares them).
    state          text        NOT NULL CHECK (state IN (
                       'created', 'pending', 'paid', 'payment_failed', 'rejected',
                       'partially_shipped', 'shipped', 'delivered', 'cancelled',
                       'returned', 'refunded')),
    -- Optimistic concurrency: every change is
    -- UPDATE ... SET version = version + 1 WHERE id = $1 AND version = $expected.
    -- It equals the number of events in order_events.
    version        bigint      NOT NULL CHECK (version >= 1),
    total_cents    bigint      NOT NULL CHECK (total_cents >= 0),
    paid_cents     bigint      NOT NULL DEFAULT 0 CHECK (paid_cents IN (0, total_cents)),
    -- Never more back than was paid.
    refunded_cents bigint      NOT NULL DEFAULT 0 CHECK (refunded_cents BETWEEN 0 AND paid_cents),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- "My orders", newest first.
CREATE INDEX orders_by_customer ON orders (customer_id, created_at DESC);

CREATE TABLE order_lines (
    order_id         uuid    NOT NULL REFERENCES orders (id),
    line_no          integer NOT NULL CHECK (line_no BETWEEN 1 AND 50),
    sku              text    NOT NULL CHECK (sku ~ '^[A-Za-z0-9_-]{1,64}$'),
    quantity         integer NOT NULL CHECK (quantity BETWEEN 1 AND 1000),
    unit_price_cents bigint  NOT NULL CHECK (unit_price_cents BETWEEN 0 AND 10000000),
    -- Partial shipments: never more shipped than ordered.
    shipped          integer NOT NULL DEFAULT 0 CHECK (shipped BETWEEN 0 AND quantity),
    PRIMARY KEY (order_id, line_no),
    UNIQUE (order_id, sku)
);
-- ANCHOR_END: orders

-- ANCHOR: events
-- The history: one row per event, never updated or deleted.
CREATE TABLE order_events (
    order_id    uuid        NOT NULL REFERENCES orders (id),
    -- The order's version after this event: 1, 2, 3, ... with no gap. Two
    -- writers who both read version 4 cannot both append version 5.
    version     bigint      NOT NULL CHECK (version >= 1),
    kind        text        NOT NULL,
    payload     jsonb       NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (order_id, version)
);

CREATE FUNCTION order_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'order_events is append-only (% refused)', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TRIGGER order_events_no_update_or_delete
    BEFORE UPDATE OR DELETE ON order_events
    FOR EACH ROW EXECUTE FUNCTION order_events_append_only();
CREATE TRIGGER order_events_no_truncate
    BEFORE TRUNCATE ON order_events
    FOR EACH STATEMENT EXECUTE FUNCTION order_events_append_only();
-- ANCHOR_END: events

-- The transactional outbox and the consumer's inbox are the outbox
-- block's tables (chapters-code/blocks/outbox/sql/outbox.sql), applied
-- beside this file; `PgStore::append` writes an order's message there in
-- the transaction that changes the order.

-- ANCHOR: inbox
-- The consumer's effect: a per-order projection of what it has seen.
CREATE TABLE order_projection (
    order_id       uuid   PRIMARY KEY,
    events_applied bigint NOT NULL CHECK (events_applied >= 0),
    last_version   bigint NOT NULL,
    last_kind      text   NOT NULL
);

-- Messages the consumer gave up on (JetStream's max_deliver reached, or
-- unparseable): kept for a person to look at, never silently dropped.
CREATE TABLE dead_letters (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    consumer    text        NOT NULL,
    stream_seq  bigint      NOT NULL,
    subject     text        NOT NULL,
    reason      text        NOT NULL,
    payload     bytea,
    recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (consumer, stream_seq)
);
-- ANCHOR_END: inbox

-- ANCHOR: saga
-- The checkout saga's own record: which step it reached and whether it is
-- going forward or compensating, written after every step so a restarted
-- orchestrator resumes where the last one stopped.
CREATE TABLE sagas (
    id         uuid        PRIMARY KEY,
    order_id   uuid        NOT NULL REFERENCES orders (id),
    status     text        NOT NULL CHECK (status IN (
                   'running', 'compensating', 'completed', 'compensated', 'dead_letter')),
    -- Forward: steps done so far. Compensating: steps still to undo.
    step       integer     NOT NULL CHECK (step >= 0),
    -- Set when a step failed for good: which one, and why.
    failed_step text,
    failure    text,
    -- Which way the saga goes: forward, or backward (compensating). Kept
    -- when it is parked in dead_letter, so an operator's retry resumes a
    -- compensation as a compensation and never captures the money.
    direction  text        NOT NULL DEFAULT 'forward'
                   CHECK (direction IN ('forward', 'backward')),
    -- The durable timer: a live saga not advanced by this time is resumed
    -- by whichever process's timer finds it (Orchestrator::resume_due).
    -- Every advance pushes it past the stall bound; a run that stops
    -- without an end sets it after a backoff that doubles with `resumes`.
    wake_at    timestamptz NOT NULL DEFAULT now(),
    -- Runs in a row that stopped without advancing (the backoff's exponent).
    resumes    integer     NOT NULL DEFAULT 0 CHECK (resumes >= 0),
    -- The latest failure of a run that stopped (failure keeps the first).
    last_error text,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The timer's scan: live sagas by due time.
CREATE INDEX sagas_due ON sagas (wake_at) WHERE status IN ('running', 'compensating');

-- At most one live saga per order.
CREATE UNIQUE INDEX one_live_saga_per_order ON sagas (order_id)
    WHERE status IN ('running', 'compensating');

-- Every step and compensation the participants executed, in order; the
-- compensation-order test reads it.
CREATE TABLE saga_log (
    saga_id uuid    NOT NULL REFERENCES sagas (id),
    seq     bigint  GENERATED ALWAYS AS IDENTITY,
    action  text    NOT NULL,
    PRIMARY KEY (saga_id, seq)
);

-- Participant: inventory. Reservations are keyed by saga, so a retried
-- reserve or release does its work once.
CREATE TABLE stock (
    sku      text    PRIMARY KEY,
    on_hand  integer NOT NULL CHECK (on_hand >= 0),
    -- Never more reserved than on hand: no oversell.
    reserved integer NOT NULL DEFAULT 0 CHECK (reserved BETWEEN 0 AND on_hand)
);

CREATE TABLE stock_reservations (
    saga_id  uuid    NOT NULL,
    sku      text    NOT NULL REFERENCES stock (sku),
    quantity integer NOT NULL CHECK (quantity > 0),
    state    text    NOT NULL CHECK (state IN ('reserved', 'released', 'committed')),
    PRIMARY KEY (saga_id, sku)
);

-- Participant: payments. One payment per saga; authorize, then capture
-- (the pivot) or void.
CREATE TABLE payments (
    saga_id      uuid   PRIMARY KEY,
    order_id     uuid   NOT NULL,
    amount_cents bigint NOT NULL CHECK (amount_cents >= 0),
    state        text   NOT NULL CHECK (state IN ('authorized', 'voided', 'captured'))
);
-- ANCHOR_END: saga
