-- The inventory schema. Applies to a fresh database; `src/store/postgres.rs`
-- is written against it.
--
-- The invariant, "stock never goes below zero and never more is promised
-- than is on hand", is four CHECK constraints on `stock`. The store's
-- statements also guard their UPDATEs (`WHERE on_hand - reserved - committed >= $n`) so
-- that a refusal is a normal answer and not an error, but the CHECKs are
-- what holds when some other code path, a script or a bug writes to the
-- table: `tests/invariant.rs` shows a check-then-act writer held to the
-- rule by them alone.

-- ANCHOR: catalog
CREATE TABLE skus (
    sku text PRIMARY KEY CHECK (sku ~ '^[A-Z0-9][A-Z0-9-]{0,31}$')
);

CREATE TABLE warehouses (
    code text PRIMARY KEY CHECK (code ~ '^[A-Z0-9][A-Z0-9-]{0,15}$')
);
-- ANCHOR_END: catalog

-- ANCHOR: stock
-- One row per (SKU, warehouse). `on_hand` is what is on the shelf, so a
-- sale (commit) moves units from `reserved` to `committed` and leaves it
-- alone; shipping takes them off. `available` is not a column: it is
-- on_hand - reserved - committed, computed where it is read, so it cannot drift.
CREATE TABLE stock (
    sku       text   NOT NULL REFERENCES skus (sku),
    warehouse text   NOT NULL REFERENCES warehouses (code),
    on_hand   bigint NOT NULL DEFAULT 0,
    reserved  bigint NOT NULL DEFAULT 0,
    committed bigint NOT NULL DEFAULT 0,
    -- Bumped by every movement; readers use it to drop stale or repeated events.
    version   bigint NOT NULL DEFAULT 0 CHECK (version >= 0),
    PRIMARY KEY (sku, warehouse),
    -- ANCHOR: checks
    CONSTRAINT on_hand_not_negative   CHECK (on_hand >= 0),
    CONSTRAINT reserved_not_negative  CHECK (reserved >= 0),
    CONSTRAINT committed_not_negative CHECK (committed >= 0),
    CONSTRAINT never_oversold         CHECK (reserved + committed <= on_hand)
    -- ANCHOR_END: checks
);
-- ANCHOR_END: stock

-- ANCHOR: reservations
CREATE TABLE reservations (
    id         uuid        PRIMARY KEY,
    sku        text        NOT NULL,
    warehouse  text        NOT NULL,
    qty        bigint      NOT NULL CHECK (qty > 0),
    state      text        NOT NULL
        CHECK (state IN ('held', 'committed', 'shipped', 'released', 'expired')),
    expires_at timestamptz NOT NULL,
    -- Audit times from the database's clock, never an instance's: two
    -- instances' clocks differ, and no rule compares these two.
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    FOREIGN KEY (sku, warehouse) REFERENCES stock (sku, warehouse)
);

-- The sweeper's index: open holds by when they lapse.
CREATE INDEX reservations_due ON reservations (expires_at) WHERE state = 'held';
-- Lazy reclaim's index: the lapsed holds of one position.
CREATE INDEX reservations_due_by_position ON reservations (sku, warehouse, expires_at)
    WHERE state = 'held';
-- ANCHOR_END: reservations

-- ANCHOR: movements
-- The ledger. Rows are only ever inserted: folding a position's rows from
-- zero gives its `stock` row (tests/ledger.rs checks it).
CREATE TABLE movements (
    id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sku            text        NOT NULL,
    warehouse      text        NOT NULL,
    kind           text        NOT NULL,
    d_on_hand      bigint      NOT NULL,
    d_reserved     bigint      NOT NULL,
    d_committed    bigint      NOT NULL,
    -- The balance and version right after this movement: an event carries
    -- them, so a reader can apply events idempotently and in any order.
    on_hand_after  bigint      NOT NULL,
    reserved_after bigint      NOT NULL,
    committed_after bigint     NOT NULL,
    version        bigint      NOT NULL,
    reservation_id uuid        REFERENCES reservations (id),
    -- The client's id of a receipt (a delivery): a retried receive finds
    -- it taken and adds nothing.
    receipt_id     uuid,
    at             timestamptz NOT NULL,
    FOREIGN KEY (sku, warehouse) REFERENCES stock (sku, warehouse),
    UNIQUE (sku, warehouse, version),
    CONSTRAINT movements_receipt_once UNIQUE (receipt_id),
    -- Each kind moves exactly its columns, in its direction.
    CHECK (CASE kind
        WHEN 'receive' THEN d_on_hand > 0 AND d_reserved = 0 AND d_committed = 0
        WHEN 'reserve' THEN d_on_hand = 0 AND d_reserved > 0 AND d_committed = 0
        WHEN 'commit'  THEN d_on_hand = 0 AND d_reserved < 0 AND d_committed = -d_reserved
        WHEN 'ship'    THEN d_on_hand < 0 AND d_reserved = 0 AND d_committed = d_on_hand
        WHEN 'release' THEN d_on_hand = 0 AND d_reserved < 0 AND d_committed = 0
        WHEN 'expire'  THEN d_on_hand = 0 AND d_reserved < 0 AND d_committed = 0
        WHEN 'adjust'  THEN d_on_hand <> 0 AND d_reserved = 0 AND d_committed = 0
        ELSE false END),
    -- Reservation movements name their reservation; the others do not.
    CHECK ((reservation_id IS NOT NULL)
           = (kind IN ('reserve', 'commit', 'ship', 'release', 'expire'))),
    -- Receipts name their receipt; the others do not.
    CHECK ((receipt_id IS NOT NULL) = (kind = 'receive'))
);

CREATE FUNCTION movements_are_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'movements are append-only (% refused)', TG_OP
        USING ERRCODE = 'restrict_violation';
END
$$;

CREATE TRIGGER movements_no_update_or_delete
    BEFORE UPDATE OR DELETE ON movements
    FOR EACH ROW EXECUTE FUNCTION movements_are_append_only();
CREATE TRIGGER movements_no_truncate
    BEFORE TRUNCATE ON movements
    FOR EACH STATEMENT EXECUTE FUNCTION movements_are_append_only();
-- ANCHOR_END: movements

-- ANCHOR: outbox
-- Movements not yet published to NATS. Written in the same statement as
-- the movement, deleted by the relay after JetStream acknowledged it.
CREATE TABLE outbox (
    movement_id bigint PRIMARY KEY REFERENCES movements (id)
);
-- ANCHOR_END: outbox
