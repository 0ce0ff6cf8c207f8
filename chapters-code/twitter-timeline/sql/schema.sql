-- The Twitter home timeline chapter: the source of truth.
--
-- Timelines in Redis are a cache of what these tables imply; everything a
-- timeline shows can be rebuilt from here (see `rebuild` in src/timeline).

-- ANCHOR: users
CREATE TABLE IF NOT EXISTS users (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The same rule as `Handle::parse`.
    handle     text NOT NULL UNIQUE CHECK (handle ~ '^[a-z0-9_]{1,15}$'),
    -- Kept by `follow`, `unfollow` and `block` in the same transaction as the follow row.
    followers  bigint NOT NULL DEFAULT 0 CHECK (followers >= 0),
    -- Set when `followers` reaches the hybrid's threshold, never cleared:
    -- readers pull this author's posts, so a post that skipped fan-out is
    -- never missed, even if the author later loses followers.
    celebrity  boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- ANCHOR_END: users

-- ANCHOR: follows
CREATE TABLE IF NOT EXISTS follows (
    follower   bigint NOT NULL REFERENCES users (id),
    followee   bigint NOT NULL REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    -- One follow per pair: a repeated follow changes nothing.
    PRIMARY KEY (follower, followee),
    CHECK (follower <> followee)
);
-- Fan-out walks a post's audience in follower order, batch by batch.
CREATE INDEX IF NOT EXISTS follows_by_followee ON follows (followee, follower);

CREATE TABLE IF NOT EXISTS blocks (
    blocker    bigint NOT NULL REFERENCES users (id),
    blocked    bigint NOT NULL REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (blocker, blocked),
    CHECK (blocker <> blocked)
);
CREATE INDEX IF NOT EXISTS blocks_by_blocked ON blocks (blocked, blocker);
-- ANCHOR_END: follows

-- ANCHOR: posts
CREATE TABLE IF NOT EXISTS posts (
    -- A Snowflake: time-sortable, so "newest first" is "id descending".
    id         bigint PRIMARY KEY CHECK (id > 0),
    author     bigint NOT NULL REFERENCES users (id),
    -- The same limits as `PostBody::parse` (which also refuses control characters).
    body       text NOT NULL CHECK (char_length(body) BETWEEN 1 AND 280),
    created_at timestamptz NOT NULL DEFAULT now()
);
-- ANCHOR_END: posts

-- ANCHOR: pull_index
-- The pull query reads "the newest posts of this author older than a
-- cursor" once per followee: one index descent and a short forward scan each.
CREATE INDEX IF NOT EXISTS posts_by_author ON posts (author, id DESC);
-- ANCHOR_END: pull_index

-- ANCHOR: fanout_jobs
-- The fan-out queue: one row per post still being delivered, written in the
-- same transaction as the post. Workers claim a row with
-- FOR UPDATE SKIP LOCKED, deliver one batch of its audience, and advance
-- `after_user` (or delete the row) in the same transaction. A worker that
-- dies mid-batch loses its lock, and the batch is delivered again; the
-- timeline insert is idempotent, so nobody sees a post twice.
CREATE TABLE IF NOT EXISTS fanout_jobs (
    post_id     bigint PRIMARY KEY REFERENCES posts (id) ON DELETE CASCADE,
    author      bigint NOT NULL,
    -- The audience (followers and the author) is walked in id order; NULL
    -- means no batch has been delivered yet.
    after_user  bigint,
    batches     integer NOT NULL DEFAULT 0,
    enqueued_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- Failed attempts (a worker that dies counts none: its transaction
    -- rolls back). A failed job waits until `not_before`, so the jobs
    -- behind it go first, and at the worker's limit moves to fanout_dead.
    attempts    integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error  text,
    not_before  timestamptz NOT NULL DEFAULT '-infinity'
);
-- ANCHOR_END: fanout_jobs

-- ANCHOR: fanout_dead
-- Fan-out jobs given up after too many failed attempts, with the last
-- error and the progress made, for an operator to inspect and replay.
-- A deleted post needs no replay: its dead letter goes with it.
CREATE TABLE IF NOT EXISTS fanout_dead (
    post_id     bigint PRIMARY KEY REFERENCES posts (id) ON DELETE CASCADE,
    author      bigint NOT NULL,
    after_user  bigint,
    batches     integer NOT NULL,
    attempts    integer NOT NULL CHECK (attempts > 0),
    error       text NOT NULL,
    enqueued_at timestamptz NOT NULL,
    failed_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- ANCHOR_END: fanout_dead
