-- The ratings chapter's schema. Each constraint names the rule it keeps;
-- the store maps a violation of a named constraint to a named error.

-- Accounts: only their age matters here (new-account velocity, vote bursts).
CREATE TABLE users (
    id         bigint PRIMARY KEY,
    created_at timestamptz NOT NULL
);

CREATE TABLE products (
    id       bigint PRIMARY KEY,
    category text NOT NULL CHECK (char_length(category) BETWEEN 1 AND 64)
);

-- ANCHOR: orders
-- The chapter's own orders: a review needs a row here (verified purchase).
CREATE TABLE orders (
    id         bigserial PRIMARY KEY,
    user_id    bigint NOT NULL REFERENCES users (id),
    product_id bigint NOT NULL REFERENCES products (id),
    ordered_at timestamptz NOT NULL
);
CREATE INDEX orders_buyer ON orders (user_id, product_id);
-- ANCHOR_END: orders

-- ANCHOR: reviews
CREATE TABLE reviews (
    id          bigserial PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users (id),
    product_id  bigint NOT NULL REFERENCES products (id),
    rating      smallint NOT NULL CONSTRAINT rating_in_range CHECK (rating BETWEEN 1 AND 5),
    body        text NOT NULL CONSTRAINT body_length CHECK (char_length(body) BETWEEN 1 AND 5000),
    -- The moderation state; the list is `MODERATION.sql_check("state")`
    -- (a test compares them). Nothing is hard-deleted: an author's delete
    -- is the state 'deleted' with its time.
    state       text NOT NULL CHECK (state IN ('pending', 'published', 'not_recommended', 'removed', 'appealed', 'deleted')),
    helpful     bigint NOT NULL DEFAULT 0 CHECK (helpful >= 0),
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    deleted_at  timestamptz,
    CONSTRAINT deleted_has_time CHECK ((state = 'deleted') = (deleted_at IS NOT NULL)),
    -- One review per buyer and product, for ever: two concurrent submits
    -- end with one row, and the loser gets `already-reviewed`.
    CONSTRAINT one_review_per_buyer UNIQUE (user_id, product_id)
);
-- The product page: published reviews, newest first, by keyset cursor.
CREATE INDEX reviews_page ON reviews (product_id, id DESC) WHERE state = 'published';
-- ANCHOR_END: reviews

-- ANCHOR: product_ratings
-- The aggregate of a product's published reviews, kept in the same
-- transaction as every write that changes which reviews are published or
-- their rating. The CHECKs make a torn histogram impossible to store.
CREATE TABLE product_ratings (
    product_id bigint PRIMARY KEY REFERENCES products (id),
    category   text NOT NULL,
    n          bigint NOT NULL DEFAULT 0,
    total      bigint NOT NULL DEFAULT 0,
    s1 bigint NOT NULL DEFAULT 0 CHECK (s1 >= 0),
    s2 bigint NOT NULL DEFAULT 0 CHECK (s2 >= 0),
    s3 bigint NOT NULL DEFAULT 0 CHECK (s3 >= 0),
    s4 bigint NOT NULL DEFAULT 0 CHECK (s4 >= 0),
    s5 bigint NOT NULL DEFAULT 0 CHECK (s5 >= 0),
    -- The ranking score (Wilson lower bound of the share of 4 and 5 stars),
    -- written with the counts so the index below is never stale.
    score      double precision NOT NULL DEFAULT 0,
    CONSTRAINT count_is_histogram CHECK (n = s1 + s2 + s3 + s4 + s5),
    CONSTRAINT total_is_histogram CHECK (total = s1 + 2 * s2 + 3 * s3 + 4 * s4 + 5 * s5)
);
-- "Top rated in a category": an index scan that stops after LIMIT rows.
CREATE INDEX product_ratings_top ON product_ratings (category, score DESC, product_id);
-- ANCHOR_END: product_ratings

-- ANCHOR: votes
CREATE TABLE helpful_votes (
    voter_id  bigint NOT NULL REFERENCES users (id),
    review_id bigint NOT NULL REFERENCES reviews (id),
    voted_at  timestamptz NOT NULL,
    -- One helpful vote per user per review.
    CONSTRAINT one_vote_per_voter UNIQUE (voter_id, review_id)
);
CREATE INDEX helpful_votes_review ON helpful_votes (review_id, voted_at);
-- ANCHOR_END: votes

-- ANCHOR: audit
-- Every moderation transition: who, why, from, to, when. Append-only.
CREATE TABLE moderation_audit (
    id         bigserial PRIMARY KEY,
    review_id  bigint NOT NULL REFERENCES reviews (id),
    actor      text NOT NULL CHECK (char_length(actor) BETWEEN 1 AND 64),
    reason     text NOT NULL CHECK (char_length(reason) BETWEEN 1 AND 500),
    event      text NOT NULL,
    from_state text NOT NULL,
    to_state   text NOT NULL,
    at         timestamptz NOT NULL
);
CREATE INDEX moderation_audit_review ON moderation_audit (review_id, id);
-- ANCHOR_END: audit
