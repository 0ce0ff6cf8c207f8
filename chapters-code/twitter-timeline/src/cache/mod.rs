//! Home timelines as capped lists of post ids: the cache that fan-out writes.
//!
//! A user's timeline is either absent (never read, inactive long enough to
//! expire, or lost with a Redis node), *building* (a rebuild from the
//! database is under way) or *ready*. Fan-out writes only into timelines
//! that exist, building or ready: an inactive user costs nothing on the
//! write path, and a rebuild cannot miss a post that is fanned out while it
//! reads the database (see [`crate::timeline`]).
//!
//! Every insert is idempotent and keeps the list sorted newest first, so a
//! fan-out batch delivered twice (a worker crash) or late (out of order)
//! leaves the same list as one delivery in order. Lists are capped at
//! [`TimelineCache::cap`] entries; the oldest fall off.

use std::future::Future;
use std::time::Duration;

use crate::domain::{PostId, UserId};

mod memory;
mod redis;

pub(crate) use self::redis::redis_error;
pub use self::redis::{Layout, RedisTimelines};
pub use memory::MemoryTimelines;

// ANCHOR: redis_timeouts
/// How long one attempt to connect to Redis may take (timelines and read
/// contexts alike). While Redis is unreachable (packets dropped, not
/// refused), a command waits for up to `1 + REDIS_RETRIES` such attempts,
/// with a short backoff between them, before it fails and the caller falls
/// back to PostgreSQL.
pub const REDIS_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a connected Redis may take to answer one command.
pub const REDIS_RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Reconnection attempts after the first, per command.
pub const REDIS_RETRIES: usize = 1;
// ANCHOR_END: redis_timeouts

// ANCHOR: cap
/// Entries kept per timeline (Twitter's talk gives 800).
pub const TIMELINE_CAP: usize = 800;
// ANCHOR_END: cap

/// Timelines of users who have not read for this long expire: inactive
/// users cost no memory and no fan-out.
pub const TIMELINE_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

// ANCHOR: rebuild_ttl
/// How long a timeline may stay *building*. A rebuild that never finishes
/// (its store read timed out, its process died) leaves that state behind,
/// and reads pull from the store while it lasts (they do not rebuild);
/// after this the next read tries a rebuild again. Far longer than a
/// rebuild takes.
pub const REBUILD_TTL: Duration = Duration::from_secs(60);
// ANCHOR_END: rebuild_ttl

/// Why a cache call failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    /// Redis did not answer in time or refused the connection.
    #[error("timeline cache unavailable: {0}")]
    Unavailable(String),
    /// Redis answered something that is not a timeline.
    #[error("timeline cache returned garbage: {0}")]
    Garbage(String),
    /// Redis refused the command (a key of the wrong type, a script error):
    /// retrying will not help until someone fixes the key.
    #[error("timeline cache refused: {0}")]
    Rejected(String),
}

impl CacheError {
    /// Whether waiting may cure it (Redis down or busy), as opposed to a
    /// refusal or garbage that will repeat on every attempt.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// A slice of a ready timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// Up to the requested number of ids older than the cursor, newest first.
    pub ids: Vec<PostId>,
    /// No entry older than the last of `ids` is left in the list.
    pub exhausted: bool,
    /// The list is at its cap, so older entries may have been trimmed.
    pub full: bool,
}

/// Where home timelines are cached.
pub trait TimelineCache: Clone + Send + Sync + 'static {
    /// Entries kept per timeline.
    fn cap(&self) -> usize;

    /// Inserts `post` into the timeline of each of `users` that exists.
    /// Returns how many timelines gained it (a repeated delivery gains nothing).
    fn deliver(
        &self,
        post: PostId,
        users: &[UserId],
    ) -> impl Future<Output = Result<usize, CacheError>> + Send;

    /// Inserts `posts` into `user`'s timeline if it exists (a follow's backfill).
    fn insert(
        &self,
        user: UserId,
        posts: &[PostId],
    ) -> impl Future<Output = Result<(), CacheError>> + Send;

    /// Up to `n` ids older than `before` from a ready timeline; `None` if
    /// the timeline is absent or still building. Counts as activity: a
    /// read timeline stays cached.
    fn window(
        &self,
        user: UserId,
        before: Option<PostId>,
        n: usize,
    ) -> impl Future<Output = Result<Option<Window>, CacheError>> + Send;

    /// Marks an absent timeline as building, so that fan-out starts writing
    /// into it. False if it was already building (another rebuild is under
    /// way, or one died and its mark has not expired): that caller should
    /// not rebuild.
    fn begin_rebuild(&self, user: UserId) -> impl Future<Output = Result<bool, CacheError>> + Send;

    /// Inserts the rebuilt entries and marks the timeline ready. Returns
    /// false, changing nothing, if the timeline vanished since
    /// [`TimelineCache::begin_rebuild`] (fan-out may have skipped it meanwhile).
    fn finish_rebuild(
        &self,
        user: UserId,
        posts: &[PostId],
    ) -> impl Future<Output = Result<bool, CacheError>> + Send;

    /// Drops a timeline, as expiry of an inactive user does.
    fn evict(&self, user: UserId) -> impl Future<Output = Result<(), CacheError>> + Send;
}
