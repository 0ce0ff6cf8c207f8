//! The PostgreSQL adapter. Queries are plain SQL constants; the schema is
//! `sql/schema.sql`, embedded as [`SCHEMA`].

use std::collections::HashMap;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Postgres, Row, Transaction};

use super::{
    Failure, FanOutBatch, FanOutIf, FollowOutcome, ReadContext, RetryPolicy, SocialStore,
    StoreError,
};
use crate::domain::{Handle, Post, PostBody, PostId, UserId};

/// The schema, applied by [`PgStore::migrate`] and by the tests.
pub const SCHEMA: &str = include_str!("../../sql/schema.sql");

// ANCHOR: insert_post
const INSERT_POST: &str = "
    WITH post AS (
        INSERT INTO posts (id, author, body) VALUES ($1, $2, $3)
        RETURNING id, author
    )
    INSERT INTO fanout_jobs (post_id, author)
    SELECT post.id, post.author FROM post JOIN users u ON u.id = post.author
    WHERE $4 = 'always' OR ($4 = 'not_celebrity' AND NOT u.celebrity)
    RETURNING post_id";
// ANCHOR_END: insert_post

// ANCHOR: posts_by_authors
/// The pull query: for each author, the newest live posts older than a cursor.
pub const POSTS_BY_AUTHORS: &str = "
    SELECT p.id, p.author, p.body
    FROM unnest($1::bigint[]) AS a(author)
    CROSS JOIN LATERAL (
        SELECT id, author, body FROM posts
        WHERE posts.author = a.author AND posts.id < $2
        ORDER BY posts.id DESC
        LIMIT $3
    ) AS p";
// ANCHOR_END: posts_by_authors

// ANCHOR: recent_ids
/// A rebuild's read: ids only, from the index `posts_by_author` (heap
/// pages only for posts too fresh for the visibility map). The outer limit
/// does not reach inside the lateral: each author's scan reads up to `$2`
/// ids, so rows read grow with authors times the cap.
pub const RECENT_IDS: &str = "
    SELECT p.id
    FROM unnest($1::bigint[]) AS a(author)
    CROSS JOIN LATERAL (
        SELECT id FROM posts
        WHERE posts.author = a.author
        ORDER BY posts.id DESC
        LIMIT $2
    ) AS p
    ORDER BY p.id DESC
    LIMIT $2";
// ANCHOR_END: recent_ids

// ANCHOR: claim
const CLAIM_JOB: &str = "
    SELECT post_id, author, after_user, attempts FROM fanout_jobs
    WHERE not_before <= clock_timestamp()
    ORDER BY post_id
    LIMIT 1
    FOR UPDATE SKIP LOCKED";

/// The next users of a post's audience (its followers and its author), in
/// id order. The order and limit sit inside the follower branch too, so a
/// batch reads at most `$3` rows of `follows_by_followee` wherever the job
/// is: a post costs O(followers) reads, not O(followers² / batch).
pub const AUDIENCE: &str = "
    SELECT u FROM (
        (SELECT follower AS u FROM follows
         WHERE followee = $1 AND follower > $2
         ORDER BY follower
         LIMIT $3)
        UNION ALL
        SELECT $1 WHERE $1 > $2
    ) AS audience
    ORDER BY u
    LIMIT $3";
// ANCHOR_END: claim

// ANCHOR: dead_letter
/// A failed attempt below the limit: count it, keep the error, wait.
const RETRY_JOB: &str = "
    UPDATE fanout_jobs
    SET attempts = $2, last_error = $3,
        not_before = clock_timestamp() + make_interval(secs => $4)
    WHERE post_id = $1";

/// The failed attempt that reaches the limit: the job, its progress and
/// its error move to the dead letters in the claim's transaction.
const DEAD_LETTER: &str = "
    WITH job AS (
        DELETE FROM fanout_jobs WHERE post_id = $1
        RETURNING post_id, author, after_user, batches, enqueued_at
    )
    INSERT INTO fanout_dead (post_id, author, after_user, batches, attempts, error, enqueued_at)
    SELECT post_id, author, after_user, batches, $2, $3, enqueued_at FROM job";

/// What an operator runs once the cause is fixed: the job goes back in
/// the queue where it stopped, its attempts reset.
pub const REPLAY_DEAD: &str = "
    WITH dead AS (
        DELETE FROM fanout_dead WHERE post_id = $1
        RETURNING post_id, author, after_user, batches, enqueued_at
    )
    INSERT INTO fanout_jobs (post_id, author, after_user, batches, enqueued_at)
    SELECT post_id, author, after_user, batches, enqueued_at FROM dead";
// ANCHOR_END: dead_letter

/// A fan-out job given up after too many failures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadJob {
    /// The post.
    pub post: PostId,
    /// Failed attempts.
    pub attempts: u32,
    /// The last error.
    pub error: String,
}

/// Same pair, same lock: a follow and a block of the same two users serialise.
const LOCK_PAIR: &str = "SELECT pg_advisory_xact_lock(hashtextextended(least($1, $2)::text || ':' || greatest($1, $2)::text, 7))";

/// Server-side cap on any statement.
const STATEMENT_TIMEOUT: &str = "5s";

/// The social store on PostgreSQL.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
}

/// A claimed fan-out job: the open transaction holding its row lock.
pub type PgClaim = Transaction<'static, Postgres>;

/// Sorts sqlx errors by the errors block's classes: worth waiting for (a
/// timeout, a restart, a deadlock: 503 with `Retry-After`), refused until
/// an operator acts (a grant, a full disk: 503 without), or a bug (500).
/// A fan-out job is charged for neither of the first two.
pub fn db_error(e: sqlx::Error) -> StoreError {
    use block_errors::Class;
    match block_errors::classify_sqlx(&e) {
        Class::Retryable(_) => StoreError::Unavailable(e.to_string()),
        Class::Final => StoreError::Refused(e.to_string()),
        Class::Conflict(_) | Class::Bug => StoreError::Backend(e.to_string()),
    }
}

impl PgStore {
    /// Wraps a pool (the schema must be applied).
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Connects a pool of up to `max_connections` to `url`, lazily: the
    /// service starts while the database is down and answers 503 until it is back.
    pub fn connect_lazy(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options: sqlx::postgres::PgConnectOptions = url
            .parse()
            .map_err(|e: sqlx::Error| StoreError::Backend(e.to_string()))?;
        let options = options.options([("statement_timeout", STATEMENT_TIMEOUT)]);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy_with(options);
        Ok(Self { pool })
    }

    /// Applies [`SCHEMA`], serialised by an advisory lock.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let sql = format!("SELECT pg_advisory_xact_lock(7426015);\n{SCHEMA}");
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(db_error)
    }

    /// The pool, for benchmarks and tests.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The fan-out jobs given up, oldest post first.
    pub async fn dead_letters(&self) -> Result<Vec<DeadJob>, StoreError> {
        let rows: Vec<(i64, i32, String)> =
            sqlx::query_as("SELECT post_id, attempts, error FROM fanout_dead ORDER BY post_id")
                .fetch_all(&self.pool)
                .await
                .map_err(db_error)?;
        rows.into_iter()
            .map(|(post, attempts, error)| {
                Ok(DeadJob {
                    post: PostId::from_raw(post as u64).ok_or_else(|| {
                        StoreError::Backend(format!("bad post id {post} in fanout_dead"))
                    })?,
                    attempts: attempts.max(0) as u32,
                    error,
                })
            })
            .collect()
    }

    /// Puts a dead job back in the queue ([`REPLAY_DEAD`]); false if there is none.
    pub async fn replay_dead(&self, post: PostId) -> Result<bool, StoreError> {
        let moved = sqlx::query(REPLAY_DEAD)
            .bind(post.as_i64())
            .execute(&self.pool)
            .await
            .map_err(db_error)?
            .rows_affected();
        Ok(moved == 1)
    }

    async fn users_exist(
        tx: &mut Transaction<'_, Postgres>,
        ids: &[UserId],
    ) -> Result<(), StoreError> {
        let raw: Vec<i64> = ids.iter().map(|u| u.0).collect();
        let found: Vec<i64> = sqlx::query_scalar("SELECT id FROM users WHERE id = ANY($1)")
            .bind(&raw)
            .fetch_all(&mut **tx)
            .await
            .map_err(db_error)?;
        match ids.iter().find(|u| !found.contains(&u.0)) {
            Some(missing) => Err(StoreError::UnknownUser(*missing)),
            None => Ok(()),
        }
    }

    async fn remove_follow(
        tx: &mut Transaction<'_, Postgres>,
        follower: UserId,
        followee: UserId,
    ) -> Result<bool, StoreError> {
        let removed = sqlx::query(
            "WITH gone AS (
                 DELETE FROM follows WHERE follower = $1 AND followee = $2 RETURNING followee
             )
             UPDATE users SET followers = followers - 1
             WHERE id IN (SELECT followee FROM gone)",
        )
        .bind(follower.0)
        .bind(followee.0)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
        Ok(removed > 0)
    }
}

fn post_from_row(row: &sqlx::postgres::PgRow) -> Result<Post, StoreError> {
    let id: i64 = row.try_get("id").map_err(db_error)?;
    let author: i64 = row.try_get("author").map_err(db_error)?;
    let body: String = row.try_get("body").map_err(db_error)?;
    // Rows are parsed with the input rules: garbage is an error, not a post.
    Ok(Post {
        id: PostId::from_raw(id as u64)
            .ok_or_else(|| StoreError::Backend(format!("bad post id {id}")))?,
        author: UserId(author),
        body: PostBody::parse(&body)
            .map_err(|e| StoreError::Backend(format!("stored body of post {id}: {e}")))?,
    })
}

impl SocialStore for PgStore {
    type Claim = PgClaim;

    async fn create_user(&self, handle: &Handle) -> Result<UserId, StoreError> {
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO users (handle) VALUES ($1) ON CONFLICT (handle) DO NOTHING RETURNING id",
        )
        .bind(handle.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        id.map(UserId).ok_or(StoreError::HandleTaken)
    }

    async fn insert_post(&self, post: &Post, fan_out: FanOutIf) -> Result<bool, StoreError> {
        let mode = match fan_out {
            FanOutIf::Always => "always",
            FanOutIf::Never => "never",
            FanOutIf::NotCelebrity => "not_celebrity",
        };
        let job = sqlx::query(INSERT_POST)
            .bind(post.id.as_i64())
            .bind(post.author.0)
            .bind(post.body.as_str())
            .bind(mode)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(d) if d.code().as_deref() == Some("23503") => {
                    StoreError::UnknownUser(post.author)
                }
                _ => db_error(e),
            })?;
        Ok(job.is_some())
    }

    async fn delete_post(&self, by: UserId, id: PostId) -> Result<(), StoreError> {
        let author: Option<i64> = sqlx::query_scalar(
            "WITH target AS (SELECT author FROM posts WHERE id = $1),
                  gone AS (DELETE FROM posts WHERE id = $1 AND author = $2 RETURNING id)
             SELECT author FROM target",
        )
        .bind(id.as_i64())
        .bind(by.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        match author {
            None => Err(StoreError::PostNotFound),
            Some(a) if a != by.0 => Err(StoreError::NotAuthor),
            Some(_) => Ok(()),
        }
    }

    // ANCHOR: follow
    async fn follow(
        &self,
        follower: UserId,
        followee: UserId,
        celebrity_at: u64,
    ) -> Result<FollowOutcome, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        Self::users_exist(&mut tx, &[follower, followee]).await?;
        if follower == followee {
            return Err(StoreError::SelfAction);
        }
        sqlx::query(LOCK_PAIR)
            .bind(follower.0)
            .bind(followee.0)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        let blocked: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM blocks
                            WHERE (blocker, blocked) IN (($1, $2), ($2, $1)))",
        )
        .bind(follower.0)
        .bind(followee.0)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
        if blocked {
            return Err(StoreError::Blocked);
        }
        let created = sqlx::query(
            "INSERT INTO follows (follower, followee) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(follower.0)
        .bind(followee.0)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?
        .rows_affected()
            == 1;
        let threshold = i64::try_from(celebrity_at).unwrap_or(i64::MAX);
        // Locked first, so the mark read here is the one this follow's
        // UPDATE finds: exactly one follow reports setting it.
        let was_celebrity: bool =
            sqlx::query_scalar("SELECT celebrity FROM users WHERE id = $1 FOR UPDATE")
                .bind(followee.0)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_error)?;
        let followee_celebrity: bool = sqlx::query_scalar(
            "UPDATE users
             SET followers = followers + $2::int,
                 celebrity = celebrity OR followers + $2::int >= $3
             WHERE id = $1
             RETURNING celebrity",
        )
        .bind(followee.0)
        .bind(i32::from(created))
        .bind(threshold)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(FollowOutcome {
            created,
            followee_celebrity,
            became_celebrity: followee_celebrity && !was_celebrity,
        })
    }
    // ANCHOR_END: follow

    async fn unfollow(&self, follower: UserId, followee: UserId) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        Self::users_exist(&mut tx, &[follower, followee]).await?;
        let removed = Self::remove_follow(&mut tx, follower, followee).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(removed)
    }

    async fn block(&self, blocker: UserId, blocked: UserId) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        Self::users_exist(&mut tx, &[blocker, blocked]).await?;
        if blocker == blocked {
            return Err(StoreError::SelfAction);
        }
        sqlx::query(LOCK_PAIR)
            .bind(blocker.0)
            .bind(blocked.0)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        sqlx::query("INSERT INTO blocks (blocker, blocked) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(blocker.0)
            .bind(blocked.0)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        Self::remove_follow(&mut tx, blocker, blocked).await?;
        Self::remove_follow(&mut tx, blocked, blocker).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn read_context(&self, reader: UserId) -> Result<ReadContext, StoreError> {
        let rows = sqlx::query(
            "SELECT 'f' AS kind, f.followee AS other, u.celebrity
               FROM follows f JOIN users u ON u.id = f.followee WHERE f.follower = $1
             UNION ALL
             SELECT 'b', blocked, false FROM blocks WHERE blocker = $1
             UNION ALL
             SELECT 'b', blocker, false FROM blocks WHERE blocked = $1
             UNION ALL
             SELECT 'u', id, celebrity FROM users WHERE id = $1",
        )
        .bind(reader.0)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let mut ctx = ReadContext::default();
        let mut exists = false;
        for row in rows {
            let kind: String = row.try_get("kind").map_err(db_error)?;
            let other: i64 = row.try_get("other").map_err(db_error)?;
            match kind.as_str() {
                "f" => ctx
                    .followees
                    .push((UserId(other), row.try_get("celebrity").map_err(db_error)?)),
                "b" => {
                    ctx.blocked.insert(UserId(other));
                }
                _ => {
                    exists = true;
                    ctx.reader_celebrity = row.try_get("celebrity").map_err(db_error)?;
                }
            }
        }
        if !exists {
            return Err(StoreError::UnknownUser(reader));
        }
        ctx.followees.sort_unstable();
        Ok(ctx)
    }

    async fn posts_by(
        &self,
        authors: &[UserId],
        before: Option<PostId>,
        per_author: usize,
    ) -> Result<Vec<Vec<Post>>, StoreError> {
        if authors.is_empty() || per_author == 0 {
            return Ok(vec![Vec::new(); authors.len()]);
        }
        let raw: Vec<i64> = authors.iter().map(|a| a.0).collect();
        let rows = sqlx::query(POSTS_BY_AUTHORS)
            .bind(&raw)
            // No generated id reaches i64::MAX (41 time bits), so `< MAX` excludes nothing.
            .bind(before.unwrap_or(PostId::MAX).as_i64())
            .bind(i64::try_from(per_author).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        let mut by_author: HashMap<UserId, Vec<Post>> = HashMap::new();
        for row in &rows {
            let post = post_from_row(row)?;
            by_author.entry(post.author).or_default().push(post);
        }
        Ok(authors
            .iter()
            .map(|a| by_author.remove(a).unwrap_or_default())
            .collect())
    }

    async fn recent_ids(
        &self,
        authors: &[UserId],
        limit: usize,
    ) -> Result<Vec<PostId>, StoreError> {
        if authors.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let raw: Vec<i64> = authors.iter().map(|a| a.0).collect();
        let ids: Vec<i64> = sqlx::query_scalar(RECENT_IDS)
            .bind(&raw)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        ids.into_iter()
            .map(|id| {
                PostId::from_raw(id as u64)
                    .ok_or_else(|| StoreError::Backend(format!("bad post id {id}")))
            })
            .collect()
    }

    async fn hydrate(&self, ids: &[PostId]) -> Result<Vec<Post>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let raw: Vec<i64> = ids.iter().map(|i| i.as_i64()).collect();
        let rows = sqlx::query("SELECT id, author, body FROM posts WHERE id = ANY($1)")
            .bind(&raw)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        let mut found: HashMap<PostId, Post> = HashMap::with_capacity(rows.len());
        for row in &rows {
            let post = post_from_row(row)?;
            found.insert(post.id, post);
        }
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    async fn claim_fan_out(
        &self,
        batch: usize,
    ) -> Result<Option<(PgClaim, FanOutBatch)>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let Some(job) = sqlx::query(CLAIM_JOB)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?
        else {
            return Ok(None);
        };
        let post: i64 = job.try_get("post_id").map_err(db_error)?;
        let author: i64 = job.try_get("author").map_err(db_error)?;
        let after: Option<i64> = job.try_get("after_user").map_err(db_error)?;
        let attempts: i32 = job.try_get("attempts").map_err(db_error)?;
        let mut audience: Vec<i64> = sqlx::query_scalar(AUDIENCE)
            .bind(author)
            .bind(after.unwrap_or(i64::MIN))
            .bind(i64::try_from(batch + 1).unwrap_or(i64::MAX))
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?;
        let last = audience.len() <= batch;
        audience.truncate(batch);
        let post = PostId::from_raw(post as u64)
            .ok_or_else(|| StoreError::Backend(format!("bad post id {post} in fanout_jobs")))?;
        Ok(Some((
            tx,
            FanOutBatch {
                post,
                author: UserId(author),
                audience: audience.into_iter().map(UserId).collect(),
                last,
                attempts: attempts.max(0) as u32,
            },
        )))
    }

    async fn finish_batch(
        &self,
        mut claim: PgClaim,
        batch: &FanOutBatch,
    ) -> Result<(), StoreError> {
        if batch.last {
            sqlx::query("DELETE FROM fanout_jobs WHERE post_id = $1")
                .bind(batch.post.as_i64())
                .execute(&mut *claim)
                .await
                .map_err(db_error)?;
        } else {
            sqlx::query(
                "UPDATE fanout_jobs SET after_user = $2, batches = batches + 1 WHERE post_id = $1",
            )
            .bind(batch.post.as_i64())
            .bind(batch.audience.last().map(|u| u.0))
            .execute(&mut *claim)
            .await
            .map_err(db_error)?;
        }
        claim.commit().await.map_err(db_error)
    }

    async fn fail_batch(
        &self,
        mut claim: PgClaim,
        batch: &FanOutBatch,
        error: &str,
        policy: RetryPolicy,
    ) -> Result<Failure, StoreError> {
        let attempts = batch.attempts + 1;
        let dead = attempts >= policy.max_attempts;
        let query = if dead {
            sqlx::query(DEAD_LETTER)
        } else {
            sqlx::query(RETRY_JOB)
        };
        let query = query
            .bind(batch.post.as_i64())
            .bind(i32::try_from(attempts).unwrap_or(i32::MAX))
            .bind(error);
        let query = if dead {
            query
        } else {
            query.bind(policy.delay(attempts).as_secs_f64())
        };
        query.execute(&mut *claim).await.map_err(db_error)?;
        claim.commit().await.map_err(db_error)?;
        Ok(Failure { attempts, dead })
    }

    async fn pending_fan_out(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM fanout_jobs")
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(n as u64)
    }
}
