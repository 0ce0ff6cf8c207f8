-- The transactional outbox block: the outbox table the relay drains, the
-- wake-up trigger, and the consumer side's inbox. Applies on its own to a
-- fresh database; a chapter applies it beside its own schema.

-- ANCHOR: outbox
-- Written in the caller's transaction (`enqueue`), so a message exists if
-- and only if the business change committed. The columns are those of
-- Debezium's outbox event router: id, aggregate type and id, event type,
-- payload; plus the message id and the relay's mark.
CREATE TABLE outbox (
    -- Commit order within one aggregate (its writers are serialized by the
    -- aggregate's own row), so the relay publishes by it.
    id                bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Sent as Nats-Msg-Id: JetStream drops a second publish with the same
    -- id inside its duplicate window; the consumer's inbox drops the rest.
    message_id        uuid        NOT NULL UNIQUE,
    -- Picks the subject (Debezium: the topic).
    aggregate_type    text        NOT NULL CHECK (aggregate_type ~ '^[A-Za-z0-9_-]{1,64}$'),
    -- The unit of order: one aggregate's messages go out in id order.
    -- Dot-separated tokens, so it is a valid part of a NATS subject.
    aggregate_id      text        NOT NULL
        CHECK (length(aggregate_id) <= 200
               AND aggregate_id ~ '^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$'),
    -- The aggregate's version after the event, where it has one.
    aggregate_version bigint,
    event_type        text        NOT NULL CHECK (event_type ~ '^[A-Za-z0-9_.-]{1,64}$'),
    payload           jsonb       NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- Set by the relay after the broker acknowledged the message.
    published_at      timestamptz,
    -- One message per version of an aggregate (NULL versions are not compared).
    UNIQUE (aggregate_type, aggregate_id, aggregate_version)
);

-- The relay's scan: unpublished rows in id order, and per aggregate (the
-- head-row test: is there an older unpublished row of this aggregate?).
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
CREATE INDEX outbox_unpublished_by_aggregate ON outbox (aggregate_type, aggregate_id, id)
    WHERE published_at IS NULL;
-- ANCHOR_END: outbox

-- ANCHOR: notify
-- LISTEN/NOTIFY wake-ups: one notification per inserting statement, sent
-- at commit (never for a rolled-back insert). The payload is empty because
-- the relay reads the table anyway; a lost notification only delays.
CREATE FUNCTION outbox_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER outbox_wake_relay
    AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
-- ANCHOR_END: notify

-- ANCHOR: inbox
-- The consumer side: a message's effect and its inbox row commit together,
-- and the inbox refuses a message id its consumer has seen, so a
-- redelivered or republished message changes nothing.
CREATE TABLE inbox (
    consumer    text        NOT NULL,
    message_id  uuid        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT inbox_once UNIQUE (consumer, message_id)
);
-- ANCHOR_END: inbox
