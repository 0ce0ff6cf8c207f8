-- The URL shortener's schema. Applies to a fresh database and is idempotent,
-- so the service can run it at every start (`PgStore::migrate`).

-- ANCHOR: links
CREATE TABLE IF NOT EXISTS links (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code        text        NOT NULL,
    target      text        NOT NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz,
    deleted_at  timestamptz,
    -- SHA-256 of the management token returned by the create: only its
    -- holder may delete the link or read its statistics. The token itself
    -- is never stored.
    token_hash  bytea       NOT NULL,
    -- The constraint that makes custom aliases race-free: two concurrent
    -- inserts of the same code cannot both commit, whatever the application does.
    CONSTRAINT links_code_key UNIQUE (code),
    -- The same rules as `Code::parse`: the database refuses what the domain type refuses.
    CONSTRAINT links_code_format CHECK (code ~ '^[0-9A-Za-z_-]{1,32}$'),
    CONSTRAINT links_target_format CHECK (char_length(target) <= 2048 AND target ~ '^https?://'),
    CONSTRAINT links_expires_after_creation CHECK (expires_at > created_at),
    CONSTRAINT links_token_hash_length CHECK (octet_length(token_hash) = 32)
);
-- ANCHOR_END: links

-- ANCHOR: clicks
-- One counter row per link per day with clicks, upserted by the click batcher.
-- We chose this over a raw click log (one row per redirect, partitioned by
-- day): a log grows by one row per redirect, while counters grow by one row
-- per link clicked that day (the capacity estimate sizes these counters, not
-- a log), and answer "clicks per day" with an index range scan. The price
-- is detail: no time of day, referrer or country. Keeping those is an
-- exercise (a partitioned log with a rollup job).
CREATE TABLE IF NOT EXISTS link_clicks_daily (
    link_id bigint NOT NULL REFERENCES links (id) ON DELETE CASCADE,
    day     date   NOT NULL,
    count   bigint NOT NULL CHECK (count > 0),
    PRIMARY KEY (link_id, day)
);
-- ANCHOR_END: clicks

-- ANCHOR: id_blocks
-- The ticket server: one row per id space; a node leases a block of ids by
-- moving `next_id` forward in one statement. The row lock serialises
-- concurrent leases, and each lease is one short transaction per block.
CREATE TABLE IF NOT EXISTS id_blocks (
    name    text   PRIMARY KEY,
    next_id bigint NOT NULL CHECK (next_id >= 0)
);
-- ANCHOR_END: id_blocks
