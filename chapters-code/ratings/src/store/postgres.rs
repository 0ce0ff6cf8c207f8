//! The PostgreSQL adapter. The UNIQUE constraints decide the races; a
//! review's row lock (`FOR UPDATE`) orders every change of one review, and
//! the aggregate row's lock orders the changes of one product.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, PgPool, Postgres, Row, Transaction};

use super::{AuditEntry, NewReview, ReviewStore, StoreError, Verdict};
use crate::domain::aggregate::Delta;
use crate::domain::votes::Vote;
use crate::domain::{
    Aggregate, Body, ModEvent, ModState, ProductId, Rating, Review, ReviewId, UserId,
};

/// The chapter's schema.
pub const SCHEMA_SQL: &str = include_str!("../../sql/schema.sql");

/// A statement that takes longer is cancelled by the server.
const STATEMENT_TIMEOUT: &str = "5s";
/// How long a request waits for a pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

const REVIEW_COLUMNS: &str =
    "id, user_id, product_id, rating, body, state, helpful, created_at, updated_at";

// ANCHOR: aggregate_sql
/// The incremental update: relative, so concurrent writers under the row
/// lock never lose each other's change.
const BUMP_SQL: &str = "UPDATE product_ratings
   SET n = n + $2, total = total + $3,
       s1 = s1 + $4, s2 = s2 + $5, s3 = s3 + $6, s4 = s4 + $7, s5 = s5 + $8
 WHERE product_id = $1
 RETURNING n, total, s1, s2, s3, s4, s5";
// ANCHOR_END: aggregate_sql

// ANCHOR: page_sql
/// A page of a product's published reviews, newest first, by keyset: the
/// cursor is the last id seen, so a page never repeats or skips a review
/// when new ones arrive, and costs the same at any depth.
pub const PAGE_SQL: &str =
    "SELECT id, user_id, product_id, rating, body, state, helpful, created_at, updated_at
  FROM reviews
 WHERE product_id = $1 AND state = 'published' AND id < $2
 ORDER BY id DESC LIMIT $3";
// ANCHOR_END: page_sql

// ANCHOR: top_rated_sql
/// "Top rated in a category", served by the `product_ratings_top` index.
pub const TOP_RATED_SQL: &str = "SELECT product_id, score FROM product_ratings
 WHERE category = $1
 ORDER BY score DESC, product_id
 LIMIT $2";
// ANCHOR_END: top_rated_sql

/// Reviews in PostgreSQL.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// A store over an existing pool.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Connects with at most `max` connections.
    pub async fn connect(url: &str, max: u32) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?
            .options([("statement_timeout", STATEMENT_TIMEOUT)])
            .application_name("ratings");
        let pool = PgPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        Ok(Self::new(pool))
    }

    /// Applies `sql/schema.sql` if the database has no `reviews` table yet; true if it did.
    pub async fn ensure_schema(&self) -> Result<bool, StoreError> {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass('public.reviews') IS NOT NULL")
            .fetch_one(&self.pool)
            .await?;
        if exists {
            return Ok(false);
        }
        sqlx::raw_sql(AssertSqlSafe(SCHEMA_SQL))
            .execute(&self.pool)
            .await?;
        Ok(true)
    }

    /// The pool, for tests.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

fn review_from(row: &PgRow) -> Result<Review, StoreError> {
    let rating: i16 = row.try_get("rating")?;
    let body: String = row.try_get("body")?;
    let state: String = row.try_get("state")?;
    Ok(Review {
        id: ReviewId(row.try_get("id")?),
        user: UserId(row.try_get("user_id")?),
        product: ProductId(row.try_get("product_id")?),
        rating: Rating::new(i64::from(rating)).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        body: Body::parse(&body).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        state: ModState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("state {state}")))?,
        helpful: row.try_get("helpful")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn aggregate_from(row: &PgRow) -> Result<Aggregate, StoreError> {
    Ok(Aggregate {
        count: row.try_get("n")?,
        sum: row.try_get("total")?,
        stars: [
            row.try_get("s1")?,
            row.try_get("s2")?,
            row.try_get("s3")?,
            row.try_get("s4")?,
            row.try_get("s5")?,
        ],
    })
}

/// The name of the constraint a database error violated, if any.
fn violated(e: &sqlx::Error) -> Option<&str> {
    block_errors::constraint_name(e)
}

// ANCHOR: bump
/// Applies `delta` to the product's aggregate and rewrites its score, inside `tx`.
async fn bump(
    tx: &mut Transaction<'_, Postgres>,
    product: ProductId,
    delta: Delta,
) -> Result<(), StoreError> {
    if delta.is_empty() {
        return Ok(());
    }
    let (stars, n, sum) = delta.columns();
    let row = sqlx::query(BUMP_SQL)
        .bind(product.0)
        .bind(n)
        .bind(sum)
        .bind(stars[0])
        .bind(stars[1])
        .bind(stars[2])
        .bind(stars[3])
        .bind(stars[4])
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StoreError::UnknownProduct(product))?;
    // The row is locked by the UPDATE until commit: the score written is
    // the score of exactly these counts.
    let score = aggregate_from(&row)?.score();
    sqlx::query("UPDATE product_ratings SET score = $2 WHERE product_id = $1")
        .bind(product.0)
        .bind(score)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
// ANCHOR_END: bump

fn counted(r: &Review) -> Option<Rating> {
    r.state.counts().then_some(r.rating)
}

// ANCHOR: transition
/// Moves a locked review through the table, audits it, and follows with the aggregate.
async fn transition(
    tx: &mut Transaction<'_, Postgres>,
    r: Review,
    event: ModEvent,
    actor: &str,
    reason: &str,
    at: DateTime<Utc>,
) -> Result<Review, StoreError> {
    let to = r.state.on(event)?;
    let row = sqlx::query(AssertSqlSafe(format!(
        "UPDATE reviews SET state = $2, updated_at = $3,
                deleted_at = CASE WHEN $2 = 'deleted' THEN $3 END
          WHERE id = $1 RETURNING {REVIEW_COLUMNS}"
    )))
    .bind(r.id.0)
    .bind(to.as_str())
    .bind(at)
    .fetch_one(&mut **tx)
    .await?;
    let after = review_from(&row)?;
    sqlx::query(
        "INSERT INTO moderation_audit (review_id, actor, reason, event, from_state, to_state, at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(r.id.0)
    .bind(actor)
    .bind(reason)
    .bind(event.as_str())
    .bind(r.state.as_str())
    .bind(to.as_str())
    .bind(at)
    .execute(&mut **tx)
    .await?;
    bump(tx, r.product, Delta::between(counted(&r), counted(&after))).await?;
    Ok(after)
}
// ANCHOR_END: transition

/// The review with this id, locked until the transaction ends.
async fn lock_review(
    tx: &mut Transaction<'_, Postgres>,
    id: ReviewId,
) -> Result<Review, StoreError> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {REVIEW_COLUMNS} FROM reviews WHERE id = $1 FOR UPDATE"
    )))
    .bind(id.0)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(StoreError::ReviewNotFound(id))?;
    review_from(&row)
}

impl ReviewStore for PgStore {
    async fn add_user(&self, user: UserId, since: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (id, created_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
        )
        .bind(user.0)
        .bind(since)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn add_product(&self, product: ProductId, category: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO products (id, category) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
        )
        .bind(product.0)
        .bind(category)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO product_ratings (product_id, category)
             SELECT id, category FROM products WHERE id = $1
             ON CONFLICT (product_id) DO NOTHING",
        )
        .bind(product.0)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn record_order(
        &self,
        user: UserId,
        product: ProductId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO orders (user_id, product_id, ordered_at) VALUES ($1, $2, $3)")
            .bind(user.0)
            .bind(product.0)
            .bind(at)
            .execute(&self.pool)
            .await
            .map_err(|e| match violated(&e) {
                Some("orders_user_id_fkey") => StoreError::UnknownUser(user),
                Some("orders_product_id_fkey") => StoreError::UnknownProduct(product),
                _ => e.into(),
            })?;
        Ok(())
    }

    // ANCHOR: submit
    async fn submit(
        &self,
        new: NewReview,
        verdict: Verdict,
        at: DateTime<Utc>,
    ) -> Result<Review, StoreError> {
        let (user, product) = (new.user, new.product);
        let mut tx = self.pool.begin().await?;
        let (known, bought): (bool, bool) = sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM products WHERE id = $2),
                    EXISTS (SELECT 1 FROM orders WHERE user_id = $1 AND product_id = $2)",
        )
        .bind(user.0)
        .bind(product.0)
        .fetch_one(&mut *tx)
        .await?;
        if !known {
            return Err(StoreError::UnknownProduct(product));
        }
        if !bought {
            return Err(StoreError::NotPurchased { user, product });
        }
        // No check-then-insert: the UNIQUE constraint decides. A concurrent
        // second submit waits on the first's index entry, then fails here.
        let row = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO reviews (user_id, product_id, rating, body, state, created_at, updated_at)
             VALUES ($1, $2, $3, $4, 'pending', $5, $5) RETURNING {REVIEW_COLUMNS}"
        )))
        .bind(user.0)
        .bind(product.0)
        .bind(i16::from(new.rating.stars()))
        .bind(new.body.as_str())
        .bind(at)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| match violated(&e) {
            Some("one_review_per_buyer") => StoreError::AlreadyReviewed { user, product },
            _ => e.into(),
        })?;
        let review = review_from(&row)?;
        let review = match verdict.event {
            Some(event) => {
                transition(&mut tx, review, event, &verdict.actor, &verdict.reason, at).await?
            }
            None => review,
        };
        tx.commit().await?;
        Ok(review)
    }
    // ANCHOR_END: submit

    // ANCHOR: edit
    async fn edit(
        &self,
        user: UserId,
        product: ProductId,
        rating: Rating,
        body: Body,
        at: DateTime<Utc>,
    ) -> Result<Review, StoreError> {
        let mut tx = self.pool.begin().await?;
        // FOR UPDATE: two concurrent edits of one review must each see the
        // rating the other wrote, or both subtract the same old rating.
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {REVIEW_COLUMNS} FROM reviews
              WHERE user_id = $1 AND product_id = $2 AND state <> 'deleted' FOR UPDATE"
        )))
        .bind(user.0)
        .bind(product.0)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NoReviewOf { user, product })?;
        let before = review_from(&row)?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE reviews SET rating = $2, body = $3, updated_at = $4 WHERE id = $1 RETURNING {REVIEW_COLUMNS}"
        )))
        .bind(before.id.0)
        .bind(i16::from(rating.stars()))
        .bind(body.as_str())
        .bind(at)
        .fetch_one(&mut *tx)
        .await?;
        let after = review_from(&row)?;
        bump(
            &mut tx,
            product,
            Delta::between(counted(&before), counted(&after)),
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }
    // ANCHOR_END: edit

    async fn moderate(
        &self,
        review: ReviewId,
        event: ModEvent,
        actor: &str,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<Review, StoreError> {
        let mut tx = self.pool.begin().await?;
        let r = lock_review(&mut tx, review).await?;
        let after = transition(&mut tx, r, event, actor, reason, at).await?;
        tx.commit().await?;
        Ok(after)
    }

    async fn vote(
        &self,
        voter: UserId,
        review: ReviewId,
        at: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let (author, state): (i64, String) =
            sqlx::query_as("SELECT user_id, state FROM reviews WHERE id = $1")
                .bind(review.0)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::ReviewNotFound(review))?;
        if author == voter.0 {
            return Err(StoreError::OwnReview);
        }
        let state =
            ModState::parse(&state).ok_or_else(|| StoreError::Corrupt(format!("state {state}")))?;
        if state != ModState::Published {
            return Err(StoreError::NotVotable { review, state });
        }
        sqlx::query(
            "INSERT INTO helpful_votes (voter_id, review_id, voted_at) VALUES ($1, $2, $3)",
        )
        .bind(voter.0)
        .bind(review.0)
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(|e| match violated(&e) {
            Some("one_vote_per_voter") => StoreError::AlreadyVoted { voter, review },
            Some("helpful_votes_voter_id_fkey") => StoreError::UnknownUser(voter),
            _ => e.into(),
        })?;
        let helpful: i64 = sqlx::query_scalar(
            "UPDATE reviews SET helpful = helpful + 1 WHERE id = $1 RETURNING helpful",
        )
        .bind(review.0)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(helpful)
    }

    async fn aggregate(&self, product: ProductId) -> Result<Aggregate, StoreError> {
        let row = sqlx::query(
            "SELECT n, total, s1, s2, s3, s4, s5 FROM product_ratings WHERE product_id = $1",
        )
        .bind(product.0)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::UnknownProduct(product))?;
        aggregate_from(&row)
    }

    async fn recompute(&self, product: ProductId) -> Result<Aggregate, StoreError> {
        let mut tx = self.pool.begin().await?;
        let known: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM products WHERE id = $1)")
                .bind(product.0)
                .fetch_one(&mut *tx)
                .await?;
        if !known {
            return Err(StoreError::UnknownProduct(product));
        }
        let ratings: Vec<i16> = sqlx::query_scalar(
            "SELECT rating FROM reviews WHERE product_id = $1 AND state = 'published'",
        )
        .bind(product.0)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let ratings = ratings
            .into_iter()
            .map(|r| Rating::new(i64::from(r)).map_err(|e| StoreError::Corrupt(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Aggregate::recompute(ratings))
    }

    async fn review(&self, id: ReviewId) -> Result<Review, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {REVIEW_COLUMNS} FROM reviews WHERE id = $1"
        )))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::ReviewNotFound(id))?;
        review_from(&row)
    }

    async fn review_of(&self, user: UserId, product: ProductId) -> Result<Review, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {REVIEW_COLUMNS} FROM reviews WHERE user_id = $1 AND product_id = $2 AND state <> 'deleted'"
        )))
        .bind(user.0)
        .bind(product.0)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NoReviewOf { user, product })?;
        review_from(&row)
    }

    // ANCHOR: page
    async fn page(
        &self,
        product: ProductId,
        before: Option<ReviewId>,
        limit: i64,
    ) -> Result<Vec<Review>, StoreError> {
        let rows = sqlx::query(PAGE_SQL)
            .bind(product.0)
            .bind(before.map_or(i64::MAX, |r| r.0))
            .bind(limit.clamp(0, super::MAX_PAGE))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(review_from).collect()
    }
    // ANCHOR_END: page

    async fn audit(&self, review: ReviewId) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT actor, reason, event, from_state, to_state, at FROM moderation_audit
              WHERE review_id = $1 ORDER BY id",
        )
        .bind(review.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let state = |c: &str| -> Result<ModState, StoreError> {
                    let s: String = row.try_get(c)?;
                    ModState::parse(&s).ok_or_else(|| StoreError::Corrupt(format!("state {s}")))
                };
                let event: String = row.try_get("event")?;
                let event = [
                    ModEvent::Approve,
                    ModEvent::NotRecommend,
                    ModEvent::Remove,
                    ModEvent::Appeal,
                    ModEvent::Delete,
                    ModEvent::Hold,
                ]
                .into_iter()
                .find(|e| e.as_str() == event)
                .ok_or_else(|| StoreError::Corrupt(format!("event {event}")))?;
                Ok(AuditEntry {
                    review,
                    actor: row.try_get("actor")?,
                    reason: row.try_get("reason")?,
                    event,
                    from: state("from_state")?,
                    to: state("to_state")?,
                    at: row.try_get("at")?,
                })
            })
            .collect()
    }

    async fn votes(&self, review: ReviewId) -> Result<Vec<Vote>, StoreError> {
        let rows: Vec<(DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
            "SELECT u.created_at, v.voted_at FROM helpful_votes v JOIN users u ON u.id = v.voter_id
              WHERE v.review_id = $1",
        )
        .bind(review.0)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(voter_since, at)| Vote { voter_since, at })
            .collect())
    }

    async fn user_since(&self, user: UserId) -> Result<DateTime<Utc>, StoreError> {
        sqlx::query_scalar("SELECT created_at FROM users WHERE id = $1")
            .bind(user.0)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::UnknownUser(user))
    }

    async fn reviews_by_since(
        &self,
        user: UserId,
        since: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM reviews WHERE user_id = $1 AND created_at >= $2",
        )
        .bind(user.0)
        .bind(since)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn recent_bodies(
        &self,
        product: ProductId,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT body FROM reviews WHERE product_id = $1 AND state <> 'deleted' ORDER BY id DESC LIMIT $2",
        )
        .bind(product.0)
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn top_rated(
        &self,
        category: &str,
        limit: i64,
    ) -> Result<Vec<(ProductId, f64)>, StoreError> {
        let rows: Vec<(i64, f64)> = sqlx::query_as(TOP_RATED_SQL)
            .bind(category)
            .bind(limit.max(0))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|(p, s)| (ProductId(p), s)).collect())
    }
}
