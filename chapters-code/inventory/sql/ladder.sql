-- The contention ladder's tables: one hot SKU, stored the ways the rungs
-- need it. Applies to a fresh database; `src/ladder/` is written against it.

-- ANCHOR: hot_stock
-- One row per SKU with a counter: the naive, conditional, FOR UPDATE and
-- advisory-lock rungs each hammer one row (each rung has its own SKU, so
-- the rungs can share a database). The Redis rung keeps the units it was
-- given here and counts them down in Redis. The CHECK cannot stop the
-- naive rung's lost updates: it writes a value that is >= 0, just wrong.
CREATE TABLE hot_stock (
    sku       bigint PRIMARY KEY,
    available bigint NOT NULL CHECK (available >= 0)
);
-- ANCHOR_END: hot_stock

-- ANCHOR: hot_units
-- One row per unit (Shopify's design): a reserve claims one free row.
CREATE TABLE hot_units (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sku         bigint NOT NULL,
    reserved_by bigint
);
-- Only the free units are indexed, in claim order.
CREATE INDEX hot_units_free ON hot_units (sku, id) WHERE reserved_by IS NULL;
-- ANCHOR_END: hot_units

-- ANCHOR: hot_buckets
-- The SKU's stock split over N rows; a client starts at its own bucket.
CREATE TABLE hot_buckets (
    sku       bigint  NOT NULL,
    bucket    integer NOT NULL CHECK (bucket >= 0),
    available bigint  NOT NULL CHECK (available >= 0),
    PRIMARY KEY (sku, bucket)
);
-- ANCHOR_END: hot_buckets

-- ANCHOR: redis_claims
-- The durable half of the Redis rung: one row per claim Redis handed out.
-- The reconciliation job inserts a `voided` row for a claim whose writer
-- never arrived; the primary key then refuses that writer if it is only late.
CREATE TABLE redis_claims (
    id     uuid        PRIMARY KEY,
    sku    bigint      NOT NULL,
    qty    bigint      NOT NULL CHECK (qty > 0),
    voided boolean     NOT NULL DEFAULT false,
    at     timestamptz NOT NULL DEFAULT now()
);
-- ANCHOR_END: redis_claims

-- ANCHOR: ceiling
-- The ceiling: the same single-row UPDATE with no guard and no CHECK.
CREATE TABLE ceiling_counter (
    id bigint PRIMARY KEY,
    n  bigint NOT NULL
);
-- ANCHOR_END: ceiling

-- ANCHOR: spread
-- Many SKUs, for the "not hot" comparison: the same conditional UPDATE
-- spread over rows, so clients rarely wait for each other.
CREATE TABLE spread_stock (
    sku       bigint PRIMARY KEY,
    available bigint NOT NULL CHECK (available >= 0)
);
-- ANCHOR_END: spread
