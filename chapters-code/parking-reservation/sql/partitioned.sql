-- Scaling sketch: reservations partitioned by lot. Applies to a fresh
-- database on its own; the service does not use it (test:
-- `partitioning_by_lot_keeps_the_invariant` in tests/partitioning.rs).
--
-- The lot is the natural partition key: a spot belongs to exactly one lot,
-- so two reservations that could conflict always share a lot, and the
-- constraint never has to look across partitions. A request, an assignment
-- and an availability query all name one lot, so each touches one partition.

CREATE EXTENSION IF NOT EXISTS btree_gist;

-- ANCHOR: partitioned
-- Each spot is in exactly one lot. The key below makes a reservation's lot
-- its spot's lot; without it, one spot id filed under two lots would land in
-- two partitions, and no per-partition constraint would see both rows
-- (test: `the_same_spot_cannot_be_booked_under_two_lots`).
CREATE TABLE spots (
    id     bigint PRIMARY KEY,
    lot_id bigint NOT NULL,
    UNIQUE (id, lot_id)
);

CREATE TABLE reservations (
    id      uuid      NOT NULL,
    lot_id  bigint    NOT NULL,
    spot_id bigint    NOT NULL,
    during  tstzrange NOT NULL,
    state   text      NOT NULL CHECK (state IN (
                'held', 'confirmed', 'checked_in',
                'checked_out', 'cancelled', 'expired', 'no_show')),
    -- A unique key of a partitioned table must contain the partition key.
    PRIMARY KEY (lot_id, id),
    FOREIGN KEY (spot_id, lot_id) REFERENCES spots (id, lot_id)
) PARTITION BY HASH (lot_id);

CREATE TABLE reservations_p0 PARTITION OF reservations FOR VALUES WITH (MODULUS 4, REMAINDER 0);
CREATE TABLE reservations_p1 PARTITION OF reservations FOR VALUES WITH (MODULUS 4, REMAINDER 1);
CREATE TABLE reservations_p2 PARTITION OF reservations FOR VALUES WITH (MODULUS 4, REMAINDER 2);
CREATE TABLE reservations_p3 PARTITION OF reservations FOR VALUES WITH (MODULUS 4, REMAINDER 3);

-- PostgreSQL 15 and 16 refuse an exclusion constraint on the partitioned
-- table itself; PostgreSQL 17 accepts one that compares every partition-key
-- column with `=` (here: lot_id WITH =). On any version, one constraint per
-- partition is as strong as one on the whole table, because the foreign key
-- above makes conflicting rows share a lot, and so a partition.
ALTER TABLE reservations_p0 ADD CONSTRAINT p0_no_overlap
    EXCLUDE USING gist (spot_id WITH =, during WITH &&) WHERE (state IN ('held', 'confirmed', 'checked_in'));
ALTER TABLE reservations_p1 ADD CONSTRAINT p1_no_overlap
    EXCLUDE USING gist (spot_id WITH =, during WITH &&) WHERE (state IN ('held', 'confirmed', 'checked_in'));
ALTER TABLE reservations_p2 ADD CONSTRAINT p2_no_overlap
    EXCLUDE USING gist (spot_id WITH =, during WITH &&) WHERE (state IN ('held', 'confirmed', 'checked_in'));
ALTER TABLE reservations_p3 ADD CONSTRAINT p3_no_overlap
    EXCLUDE USING gist (spot_id WITH =, during WITH &&) WHERE (state IN ('held', 'confirmed', 'checked_in'));
-- ANCHOR_END: partitioned
