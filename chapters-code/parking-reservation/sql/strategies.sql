-- Tables for the comparison of concurrency-control strategies
-- (`src/strategies.rs`, `benches/reserve.rs`). Deliberately minimal: a spot
-- and a booking of it, nothing else, so each strategy's SQL is only the
-- part that decides whether two bookings may overlap.

CREATE EXTENSION IF NOT EXISTS btree_gist;

-- ANCHOR: strategy_tables
CREATE TABLE strategy_spots (
    id bigint PRIMARY KEY
);

-- Used by the naive, FOR UPDATE and SERIALIZABLE strategies: nothing in the
-- table stops two overlapping bookings of one spot; the application must.
CREATE TABLE bookings (
    id      bigint    GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    spot_id bigint    NOT NULL REFERENCES strategy_spots (id),
    during  tstzrange NOT NULL,
    client  text      NOT NULL
);
CREATE INDEX bookings_spot_during ON bookings USING gist (spot_id, during);

-- Used by the two exclusion-constraint strategies: the table itself refuses an overlap.
CREATE TABLE guarded_bookings (
    id      bigint    GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    spot_id bigint    NOT NULL REFERENCES strategy_spots (id),
    during  tstzrange NOT NULL,
    client  text      NOT NULL,
    CONSTRAINT guarded_no_overlap EXCLUDE USING gist (spot_id WITH =, during WITH &&)
);
-- ANCHOR_END: strategy_tables
