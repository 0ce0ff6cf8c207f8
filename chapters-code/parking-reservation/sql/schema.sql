-- The parking reservation schema. Applies to a fresh database; the Rust code
-- in `src/store/postgres.rs` and `src/assign.rs` is written against it.
--
-- The one invariant that matters, "no two live reservations of the same spot
-- overlap in time", is the exclusion constraint on `reservations`. Every other
-- line here is bookkeeping around it.

-- ANCHOR: extension
-- GiST has no operator class for plain `bigint` equality; btree_gist adds it,
-- so one index can answer "same spot AND overlapping range".
CREATE EXTENSION IF NOT EXISTS btree_gist;
-- ANCHOR_END: extension

-- ANCHOR: lots
CREATE TABLE lots (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name      text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),
    -- The entrance, in degrees (WGS 84), for "lots near a place"; both or neither.
    latitude  double precision CHECK (latitude BETWEEN -90 AND 90),
    longitude double precision CHECK (longitude BETWEEN -180 AND 180),
    CHECK ((latitude IS NULL) = (longitude IS NULL))
);

CREATE TABLE levels (
    lot_id bigint   NOT NULL REFERENCES lots (id),
    level  smallint NOT NULL CHECK (level BETWEEN -10 AND 100),
    PRIMARY KEY (lot_id, level)
);

CREATE TABLE spots (
    id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    lot_id bigint   NOT NULL,
    level  smallint NOT NULL,
    number integer  NOT NULL CHECK (number > 0),
    kind   text     NOT NULL
        CHECK (kind IN ('compact', 'regular', 'large', 'ev', 'accessible')),
    FOREIGN KEY (lot_id, level) REFERENCES levels (lot_id, level),
    UNIQUE (lot_id, level, number),
    -- Lets `reservations` reference (spot, lot) together, so a reservation's
    -- lot can never disagree with its spot's lot.
    UNIQUE (id, lot_id)
);

-- The assignment query walks this index in order: lot and kind fixed, the
-- level nearest the ground floor first (the entrance is on level 0; on equal
-- distance the level above first), lowest number next, and stops at the
-- first free spot.
CREATE INDEX spots_assignment_order ON spots (lot_id, kind, abs(level), level DESC, number);
-- ANCHOR_END: lots

-- ANCHOR: reservations
CREATE TABLE reservations (
    id              uuid        PRIMARY KEY,
    lot_id          bigint      NOT NULL,
    spot_id         bigint      NOT NULL,
    plate           text        NOT NULL CHECK (plate ~ '^[A-Z0-9-]{2,12}$'),
    -- Half-open [start, end): a reservation ending at 10:00 and one starting
    -- at 10:00 do not overlap.
    during          tstzrange   NOT NULL,
    state           text        NOT NULL CHECK (state IN (
                        'held', 'confirmed', 'checked_in',
                        'checked_out', 'cancelled', 'expired', 'no_show')),
    hold_expires_at timestamptz NOT NULL,
    quote_cents     bigint      NOT NULL CHECK (quote_cents >= 0),
    charged_cents   bigint               CHECK (charged_cents >= 0),
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL CHECK (updated_at >= created_at),
    FOREIGN KEY (spot_id, lot_id) REFERENCES spots (id, lot_id),
    CHECK (lower_inc(during) AND NOT upper_inc(during)
           AND NOT lower_inf(during) AND NOT upper_inf(during)
           AND NOT isempty(during)),
    -- A charge is recorded exactly when the reservation ended with one.
    CHECK ((charged_cents IS NULL) = (state IN ('held', 'confirmed', 'checked_in', 'expired'))),
    -- ANCHOR: exclusion
    -- The invariant. Two rows conflict when they name the same spot (=) and
    -- their ranges overlap (&&); only live rows take part, so a cancelled or
    -- expired reservation frees its spot for the same hours.
    CONSTRAINT no_overlapping_live_reservations
        EXCLUDE USING gist (spot_id WITH =, during WITH &&)
        WHERE (state IN ('held', 'confirmed', 'checked_in'))
    -- ANCHOR_END: exclusion
);

-- The hold sweeper's index: unconfirmed holds, by when they lapse.
CREATE INDEX reservations_hold_expiry ON reservations (hold_expires_at)
    WHERE state = 'held';
-- The no-show sweeper's index: confirmed reservations, by start.
CREATE INDEX reservations_confirmed_start ON reservations (lower(during))
    WHERE state = 'confirmed';
-- The plate limits' index: reservations that take a spot, by plate.
CREATE INDEX reservations_live_by_plate ON reservations (plate)
    WHERE state IN ('held', 'confirmed', 'checked_in');
-- ANCHOR_END: reservations

-- ANCHOR: events
-- The audit trail: one row per change of a reservation, written in the
-- transaction that made the change, never updated or deleted. `reservations`
-- says where each reservation is; this table says how it got there, which is
-- what a dispute about a charge needs.
CREATE TABLE reservation_events (
    id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reservation_id uuid        NOT NULL REFERENCES reservations (id),
    event          text        NOT NULL CHECK (event IN (
                       'reserve', 'confirm', 'check_in', 'check_out',
                       'cancel', 'expire', 'mark_no_show')),
    from_state     text        CHECK (from_state IN (
                       'held', 'confirmed', 'checked_in',
                       'checked_out', 'cancelled', 'expired', 'no_show')),
    to_state       text        NOT NULL CHECK (to_state IN (
                       'held', 'confirmed', 'checked_in',
                       'checked_out', 'cancelled', 'expired', 'no_show')),
    charged_cents  bigint      CHECK (charged_cents >= 0),
    at             timestamptz NOT NULL,
    -- Only the birth has no state before it.
    CHECK ((event = 'reserve') = (from_state IS NULL))
);
CREATE INDEX reservation_events_by_reservation ON reservation_events (reservation_id, id);

-- Append-only, whoever writes: an UPDATE or DELETE fails.
CREATE FUNCTION reservation_events_are_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'reservation_events is append-only'
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON reservation_events
    FOR EACH STATEMENT EXECUTE FUNCTION reservation_events_are_append_only();
-- ANCHOR_END: events

-- ANCHOR: idempotency
-- The idempotency block's key table (chapters-code/blocks/idempotency/sql/keys.sql),
-- declared here because this chapter's keys reference its reservations.
-- The UNIQUE scope is the lock: the first request inserts the row inside
-- its reservation transaction; a concurrent request with the same key
-- blocks on that insert until the first commits (and then reads the stored
-- response) or rolls back (and then proceeds itself).
CREATE TABLE idempotency_keys (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The chapter has no accounts ('') and one key space ('reservations').
    account_id      text NOT NULL,
    endpoint        text NOT NULL,
    key             text NOT NULL CHECK (key ~ '^[!-~]{1,255}$'),
    -- SHA-256 of the route and the parsed request, hex: the same key with another body is refused.
    fingerprint     text NOT NULL CHECK (fingerprint ~ '^[0-9a-f]{64}$'),
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- The block's lease and fence; this chapter claims and finishes a key
    -- in one transaction, so no committed key is ever held or unfinished.
    generation      bigint NOT NULL DEFAULT 1 CHECK (generation >= 1),
    locked_until    timestamptz,
    recovery_point  text NOT NULL DEFAULT 'started',
    -- The response the first request returned, replayed verbatim.
    response_status smallint CHECK (response_status BETWEEN 100 AND 599),
    response_body   jsonb,
    finished_at     timestamptz,
    CONSTRAINT idempotency_keys_scope UNIQUE (account_id, endpoint, key),
    CONSTRAINT idempotency_keys_finished CHECK (
        (recovery_point = 'finished') = (finished_at IS NOT NULL)
        AND (finished_at IS NULL) = (response_status IS NULL)
        AND (finished_at IS NULL OR locked_until IS NULL)),
    -- The chapter's own: the reservation the key made.
    reservation_id  uuid REFERENCES reservations (id)
);

-- The purge deletes finished keys by age.
CREATE INDEX idempotency_keys_finished_at ON idempotency_keys (finished_at)
    WHERE finished_at IS NOT NULL;
-- The block's purge counts the unfinished keys by age.
CREATE INDEX idempotency_keys_unfinished ON idempotency_keys (created_at)
    WHERE finished_at IS NULL;
-- ANCHOR_END: idempotency
