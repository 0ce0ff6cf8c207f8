//! Read contexts cached in Redis, in front of any store.
//!
//! Every home-timeline read needs the reader's [`ReadContext`] (follows with
//! their celebrity marks, blocks both ways, the reader's own mark); read
//! from the store, that is one database round trip per page.
//! [`CachedContexts`] wraps a store and serves it from Redis instead. Every
//! call that changes what a context holds invalidates it right after the
//! store commits, so the promise of [`crate::timeline`] holds: deletes,
//! unfollows and blocks take effect on the next read, on every instance.
//!
//! - a follow or an unfollow: the follower's context;
//! - a block: both users' contexts;
//! - a follow that marks the followee a celebrity: every context, by
//!   bumping an epoch that every entry carries (the mark is set once per
//!   author, ever, so this is rare);
//! - a delete: nothing; contexts hold no posts, and hydration reads the store.
//!
//! A fill after a miss is conditional ([`FILL`]): the reader notes the
//! user's version before reading the store, each invalidation bumps it, and
//! a fill whose version moved is refused. A fill can therefore never bring
//! back a follow that an unfollow removed while the reader was reading.
//! Versions start from the clock (in microseconds), so a version key lost
//! to expiry, eviction or a failover restarts above every ticket taken
//! before, never at a number an old ticket holds; and a fill that finds no
//! version starts one and stores nothing.
//!
//! The write and its invalidation run in one detached task: a request
//! dropped mid-write (its client went away) still invalidates once the
//! write commits.
//!
//! Keys, for user 42 under prefix `p:`: `p:rc:{42}` the context,
//! `p:rc:{42}:v` its version (same hash tag, so one script sees both), and
//! `p:rc:epoch`. Entries are parsed like input: garbage is a miss and a count.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Failure, FanOutBatch, FanOutIf, FollowOutcome, ReadContext, SocialStore, StoreError};
use crate::cache::{
    CacheError, REDIS_CONNECT_TIMEOUT, REDIS_RESPONSE_TIMEOUT, REDIS_RETRIES, redis_error,
};
use crate::domain::{Handle, Post, PostId, UserId};

// ANCHOR: context_ttl
/// How long a cached context lives. It is invalidated on every change, so
/// this only bounds how stale one can get when an invalidation fails
/// (Redis unreachable from the writer, reachable from readers) or is lost
/// (a failover to a replica that had not received it).
pub const CONTEXT_TTL: Duration = Duration::from_secs(60);
// ANCHOR_END: context_ttl

// ANCHOR: version_ttl
/// A version key outlives any read that could still fill against it. If it
/// goes earlier (evicted, lost in a failover), the next invalidation starts
/// it again from the clock, above any ticket still out.
pub const VERSION_TTL: Duration = Duration::from_secs(3600);
// ANCHOR_END: version_ttl

/// Toggles of one follow in the concurrent readers' test
/// (`tests/contexts.rs`); here so that the book's constants table prints it.
pub const RACE_TOGGLES: usize = 40;
/// Readers filling the context during those toggles.
pub const RACE_READERS: usize = 4;

// ANCHOR: fill
/// KEYS: context, version. ARGV: the version the reader saw ('' if none),
/// the entry, ttl ms, the clock in µs, version ttl ms. Stores the entry only
/// if no invalidation came since. A missing version cannot tell "never
/// written" from "written, then lost": it is started from the clock and the
/// fill refused, so the next miss takes a ticket that a later write moves.
const FILL: &str = "
local v = redis.call('GET', KEYS[2])
if not v then
  redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[5], 'NX')
  return 0
end
if v ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
";

/// KEYS: context, version. ARGV: version ttl ms, the clock in µs. Runs
/// after the store commits. A missing version starts from the clock, so it
/// never comes back to a value an outstanding ticket holds.
const INVALIDATE: &str = "
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('SET', KEYS[2], ARGV[2]) end
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[1])
return 1
";
// ANCHOR_END: fill

/// What a lookup found.
#[derive(Debug)]
pub enum Lookup {
    /// A current entry.
    Hit(ReadContext),
    /// Nothing current; fill with this ticket after reading the store.
    Miss(Ticket),
}

/// What a reader saw before reading the store, for [`ContextCache::fill`].
#[derive(Debug)]
pub struct Ticket {
    user: UserId,
    version: String,
    epoch: u64,
}

/// Hits, misses and garbage entries seen by one cache and its clones.
#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    garbage: AtomicU64,
}

/// Read contexts in Redis.
#[derive(Clone)]
pub struct ContextCache {
    conn: ConnectionManager,
    prefix: String,
    ttl: Duration,
    fill: Arc<Script>,
    invalidate: Arc<Script>,
    counters: Arc<Counters>,
}

impl ContextCache {
    /// Contexts on the server at `url`, under `prefix`, living `ttl` at most.
    pub fn connect(url: &str, prefix: &str, ttl: Duration) -> Result<Self, CacheError> {
        let client = redis::Client::open(url).map_err(redis_error)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_CONNECT_TIMEOUT))
            .set_response_timeout(Some(REDIS_RESPONSE_TIMEOUT))
            .set_number_of_retries(REDIS_RETRIES);
        let conn = ConnectionManager::new_lazy_with_config(client, config).map_err(redis_error)?;
        Ok(Self {
            conn,
            prefix: prefix.to_string(),
            ttl,
            fill: Arc::new(Script::new(FILL)),
            invalidate: Arc::new(Script::new(INVALIDATE)),
            counters: Arc::default(),
        })
    }

    /// (hits, misses, garbage entries) so far.
    pub fn stats(&self) -> (u64, u64, u64) {
        let c = &self.counters;
        (
            c.hits.load(Ordering::Relaxed),
            c.misses.load(Ordering::Relaxed),
            c.garbage.load(Ordering::Relaxed),
        )
    }

    /// The key holding `user`'s context.
    pub fn key(&self, user: UserId) -> String {
        format!("{}rc:{{{}}}", self.prefix, user.0)
    }

    /// The key holding `user`'s version.
    pub fn version_key(&self, user: UserId) -> String {
        format!("{}rc:{{{}}}:v", self.prefix, user.0)
    }

    fn epoch_key(&self) -> String {
        format!("{}rc:epoch", self.prefix)
    }

    fn miss(&self, ticket: Ticket) -> Lookup {
        self.counters.misses.fetch_add(1, Ordering::Relaxed);
        Lookup::Miss(ticket)
    }

    // ANCHOR: lookup
    /// The cached context of `user`, if current: one round trip.
    pub async fn lookup(&self, user: UserId) -> Result<Lookup, CacheError> {
        let mut conn = self.conn.clone();
        let (entry, version, epoch): (Option<String>, Option<String>, Option<String>) =
            redis::pipe()
                .get(self.key(user))
                .get(self.version_key(user))
                .get(self.epoch_key())
                .query_async(&mut conn)
                .await
                .map_err(redis_error)?;
        let version = version.unwrap_or_default();
        let parsed = epoch.as_deref().and_then(|e| e.parse::<u64>().ok());
        let (epoch, entry) = match parsed {
            Some(e) => (e, entry),
            None => {
                // Lost with a flush (or never set): start an epoch from the
                // clock, which no surviving entry carries, and miss.
                let (_, e): (redis::Value, String) = redis::pipe()
                    .cmd("SET")
                    .arg(self.epoch_key())
                    .arg(crate::domain::unix_ms_now())
                    .arg("NX")
                    .get(self.epoch_key())
                    .query_async(&mut conn)
                    .await
                    .map_err(redis_error)?;
                let e = e
                    .parse::<u64>()
                    .map_err(|_| CacheError::Garbage(format!("context epoch {e:?}")))?;
                (e, None)
            }
        };
        let ticket = Ticket {
            user,
            version,
            epoch,
        };
        let Some(entry) = entry else {
            return Ok(self.miss(ticket));
        };
        match decode(&entry) {
            Some((e, ctx)) if e == epoch => {
                self.counters.hits.fetch_add(1, Ordering::Relaxed);
                Ok(Lookup::Hit(ctx))
            }
            Some(_) => Ok(self.miss(ticket)),
            None => {
                self.counters.garbage.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%user, "garbage read context in Redis; reading the store");
                Ok(self.miss(ticket))
            }
        }
    }
    // ANCHOR_END: lookup

    /// Stores `ctx`, read from the store after `ticket` was taken, unless an
    /// invalidation came in between. Returns whether it was stored.
    pub async fn fill(&self, ticket: Ticket, ctx: &ReadContext) -> Result<bool, CacheError> {
        let epoch = ticket.epoch;
        let mut conn = self.conn.clone();
        let stored: i64 = self
            .fill
            .key(self.key(ticket.user))
            .key(self.version_key(ticket.user))
            .arg(&ticket.version)
            .arg(encode(epoch, ctx))
            .arg(self.ttl.as_millis().max(1) as u64)
            .arg(unix_us_now())
            .arg(VERSION_TTL.as_millis() as u64)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_error)?;
        Ok(stored == 1)
    }

    /// Drops the contexts of `users` and refuses fills begun before this call.
    pub async fn invalidate(&self, users: &[UserId]) -> Result<(), CacheError> {
        let mut conn = self.conn.clone();
        for u in users {
            self.invalidate
                .key(self.key(*u))
                .key(self.version_key(*u))
                .arg(VERSION_TTL.as_millis() as u64)
                .arg(unix_us_now())
                .invoke_async::<i64>(&mut conn)
                .await
                .map_err(redis_error)?;
        }
        Ok(())
    }

    /// Makes every cached context stale (an author was marked a celebrity).
    pub async fn bump_epoch(&self) -> Result<(), CacheError> {
        let mut conn = self.conn.clone();
        redis::cmd("INCR")
            .arg(self.epoch_key())
            .query_async::<i64>(&mut conn)
            .await
            .map(|_| ())
            .map_err(redis_error)
    }
}

/// Microseconds since the Unix epoch: where a lost version starts again.
fn unix_us_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// `epoch|reader mark|followee:mark,...|blocked,...`, marks as 0 or 1.
fn encode(epoch: u64, ctx: &ReadContext) -> String {
    let mark = |b: bool| if b { '1' } else { '0' };
    let followees: Vec<String> = ctx
        .followees
        .iter()
        .map(|(u, c)| format!("{}:{}", u.0, mark(*c)))
        .collect();
    let mut blocked: Vec<i64> = ctx.blocked.iter().map(|u| u.0).collect();
    blocked.sort_unstable();
    let blocked: Vec<String> = blocked.iter().map(i64::to_string).collect();
    format!(
        "{epoch}|{}|{}|{}",
        mark(ctx.reader_celebrity),
        followees.join(","),
        blocked.join(",")
    )
}

/// Parses [`encode`]'s format strictly; anything else is `None`.
fn decode(raw: &str) -> Option<(u64, ReadContext)> {
    fn mark(s: &str) -> Option<bool> {
        match s {
            "0" => Some(false),
            "1" => Some(true),
            _ => None,
        }
    }
    fn user(s: &str) -> Option<UserId> {
        let canonical =
            !s.is_empty() && !s.starts_with('0') && s.bytes().all(|b| b.is_ascii_digit());
        s.parse::<i64>().ok().filter(|_| canonical).map(UserId)
    }
    fn list(s: &str) -> impl Iterator<Item = &str> {
        s.split(',').filter(|_| !s.is_empty())
    }
    let mut parts = raw.split('|');
    let (epoch, me, follows, blocks) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || epoch.is_empty() || !epoch.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut ctx = ReadContext {
        reader_celebrity: mark(me)?,
        ..ReadContext::default()
    };
    for f in list(follows) {
        let (id, m) = f.split_once(':')?;
        ctx.followees.push((user(id)?, mark(m)?));
    }
    for b in list(blocks) {
        ctx.blocked.insert(user(b)?);
    }
    Some((epoch.parse().ok()?, ctx))
}

/// A store whose read contexts are cached in a [`ContextCache`].
#[derive(Clone)]
pub struct CachedContexts<S> {
    store: S,
    cache: ContextCache,
}

impl<S: SocialStore> CachedContexts<S> {
    /// `store`, with its read contexts cached in `cache`.
    pub fn new(store: S, cache: ContextCache) -> Self {
        Self { store, cache }
    }

    /// The store underneath.
    pub fn inner(&self) -> &S {
        &self.store
    }

    /// The cache.
    pub fn cache(&self) -> &ContextCache {
        &self.cache
    }
}

// ANCHOR: detached
/// After a commit: a failed invalidation leaves an entry stale for at most
/// the cache's TTL; the change itself stands.
async fn invalidate(cache: &ContextCache, users: &[UserId]) {
    if let Err(e) = cache.invalidate(users).await {
        tracing::error!(error = %e, ?users, "invalidating read contexts failed");
    }
}

/// Runs `write` (a store write and the invalidation after it) as a task of
/// its own and waits for it. A request dropped while it waits (the client
/// disconnected) drops only the wait: the write and its invalidation finish.
async fn detached<T: Send + 'static>(
    write: impl Future<Output = Result<T, StoreError>> + Send + 'static,
) -> Result<T, StoreError> {
    match tokio::spawn(write).await {
        Ok(done) => done,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(StoreError::Unavailable(format!("write task: {e}"))),
    }
}
// ANCHOR_END: detached

impl<S: SocialStore> SocialStore for CachedContexts<S> {
    type Claim = S::Claim;

    async fn create_user(&self, handle: &Handle) -> Result<UserId, StoreError> {
        self.store.create_user(handle).await
    }

    async fn insert_post(&self, post: &Post, fan_out: FanOutIf) -> Result<bool, StoreError> {
        self.store.insert_post(post, fan_out).await
    }

    async fn delete_post(&self, by: UserId, id: PostId) -> Result<(), StoreError> {
        self.store.delete_post(by, id).await
    }

    // ANCHOR: invalidate
    async fn follow(
        &self,
        follower: UserId,
        followee: UserId,
        celebrity_at: u64,
    ) -> Result<FollowOutcome, StoreError> {
        let (store, cache) = (self.store.clone(), self.cache.clone());
        detached(async move {
            let outcome = store.follow(follower, followee, celebrity_at).await?;
            invalidate(&cache, &[follower]).await;
            if outcome.became_celebrity
                && let Err(e) = cache.bump_epoch().await
            {
                tracing::error!(error = %e, %followee, "bumping the context epoch failed");
            }
            Ok(outcome)
        })
        .await
    }

    async fn unfollow(&self, follower: UserId, followee: UserId) -> Result<bool, StoreError> {
        let (store, cache) = (self.store.clone(), self.cache.clone());
        detached(async move {
            let removed = store.unfollow(follower, followee).await?;
            invalidate(&cache, &[follower]).await;
            Ok(removed)
        })
        .await
    }

    async fn block(&self, blocker: UserId, blocked: UserId) -> Result<(), StoreError> {
        let (store, cache) = (self.store.clone(), self.cache.clone());
        detached(async move {
            store.block(blocker, blocked).await?;
            invalidate(&cache, &[blocker, blocked]).await;
            Ok(())
        })
        .await
    }

    async fn fresh_context(&self, reader: UserId) -> Result<ReadContext, StoreError> {
        self.store.read_context(reader).await
    }

    async fn read_context(&self, reader: UserId) -> Result<ReadContext, StoreError> {
        match self.cache.lookup(reader).await {
            Ok(Lookup::Hit(ctx)) => Ok(ctx),
            Ok(Lookup::Miss(ticket)) => {
                let ctx = self.store.read_context(reader).await?;
                if let Err(e) = self.cache.fill(ticket, &ctx).await {
                    tracing::warn!(error = %e, %reader, "filling a read context failed");
                }
                Ok(ctx)
            }
            Err(e) => {
                tracing::debug!(error = %e, %reader, "context cache down; reading the store");
                self.store.read_context(reader).await
            }
        }
    }
    // ANCHOR_END: invalidate

    async fn posts_by(
        &self,
        authors: &[UserId],
        before: Option<PostId>,
        per_author: usize,
    ) -> Result<Vec<Vec<Post>>, StoreError> {
        self.store.posts_by(authors, before, per_author).await
    }

    async fn recent_ids(
        &self,
        authors: &[UserId],
        limit: usize,
    ) -> Result<Vec<PostId>, StoreError> {
        self.store.recent_ids(authors, limit).await
    }

    async fn hydrate(&self, ids: &[PostId]) -> Result<Vec<Post>, StoreError> {
        self.store.hydrate(ids).await
    }

    async fn claim_fan_out(
        &self,
        batch: usize,
    ) -> Result<Option<(Self::Claim, FanOutBatch)>, StoreError> {
        self.store.claim_fan_out(batch).await
    }

    async fn finish_batch(
        &self,
        claim: Self::Claim,
        batch: &FanOutBatch,
    ) -> Result<(), StoreError> {
        self.store.finish_batch(claim, batch).await
    }

    async fn fail_batch(
        &self,
        claim: Self::Claim,
        batch: &FanOutBatch,
        error: &str,
        policy: super::RetryPolicy,
    ) -> Result<Failure, StoreError> {
        self.store.fail_batch(claim, batch, error, policy).await
    }

    async fn pending_fan_out(&self) -> Result<u64, StoreError> {
        self.store.pending_fan_out().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_round_trips_and_garbage_is_refused() {
        let mut ctx = ReadContext {
            followees: vec![(UserId(3), false), (UserId(17), true)],
            reader_celebrity: true,
            ..ReadContext::default()
        };
        ctx.blocked.insert(UserId(9));
        ctx.blocked.insert(UserId(4));
        assert_eq!(decode(&encode(7, &ctx)), Some((7, ctx)));
        assert_eq!(
            decode(&encode(0, &ReadContext::default())),
            Some((0, ReadContext::default()))
        );
        for bad in [
            "",
            "7|1|3:0",
            "7|2||",
            "x|0||",
            "7|0|3:2|",
            "7|0|03:0|",
            "7|0|-3:0|",
            "7|0||9,",
            "7|0|||",
            "7|0|3|",
        ] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
    }
}
