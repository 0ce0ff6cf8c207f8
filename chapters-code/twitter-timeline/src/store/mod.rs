//! The source of truth: users, posts, follows, blocks, and the fan-out queue.
//!
//! [`SocialStore`] is everything the timelines need from durable storage.
//! [`MemoryStore`] keeps it behind one mutex (the demo default and the
//! fast half of the equivalence tests); [`PgStore`] keeps it in PostgreSQL
//! (`sql/schema.sql`), where constraints and transactions hold the rules.
//! The behaviour suite `tests/store_contract.rs` runs against both.
//!
//! The fan-out queue lives here, not in a broker, because a post and its
//! fan-out job must be written together: [`SocialStore::insert_post`]
//! inserts both in one transaction, so there is no post without its job
//! and no job without its post (see the chapter's deep dive for why this
//! beats publishing to NATS after the commit).

use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

use crate::domain::{Handle, Post, PostId, UserId};

mod cached;
mod memory;
mod postgres;

pub use cached::{
    CONTEXT_TTL, CachedContexts, ContextCache, Lookup, RACE_READERS, RACE_TOGGLES, Ticket,
    VERSION_TTL,
};
pub use memory::{MemoryDeadJob, MemoryStore};
pub use postgres::{
    AUDIENCE, DeadJob, POSTS_BY_AUTHORS, PgStore, RECENT_IDS, REPLAY_DEAD, SCHEMA, db_error,
};

/// Why a store call failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// No user with this id.
    #[error("no user {0}")]
    UnknownUser(UserId),
    /// No live post with this id.
    #[error("no such post")]
    PostNotFound,
    /// Only the author may delete a post.
    #[error("only the author may delete a post")]
    NotAuthor,
    /// Users cannot follow (or block) themselves.
    #[error("a user cannot follow or block themselves")]
    SelfAction,
    /// One of the two has blocked the other.
    #[error("one of these users has blocked the other")]
    Blocked,
    /// The handle belongs to someone else.
    #[error("the handle is taken")]
    HandleTaken,
    /// The database could not be reached in time, or asked for a retry.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The database refused until an operator acts (a missing grant, a full disk).
    #[error("store refused: {0}")]
    Refused(String),
    /// Anything else the database said.
    #[error("store error: {0}")]
    Backend(String),
}

// ANCHOR: fan_out_if
/// Which posts get a fan-out job, decided inside the insert's transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FanOutIf {
    /// Every post (fan-out on write).
    Always,
    /// No post (fan-out on read).
    Never,
    /// Posts whose author is not (yet) marked a celebrity (the hybrid).
    NotCelebrity,
}
// ANCHOR_END: fan_out_if

/// What a follow did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FollowOutcome {
    /// False when the follow existed already.
    pub created: bool,
    /// Whether the followee is marked a celebrity after this follow.
    pub followee_celebrity: bool,
    /// Whether this follow set the mark (cached read contexts are then stale).
    pub became_celebrity: bool,
}

/// What a home timeline read needs to know about the reader, read once per page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadContext {
    /// Whom the reader follows, with each one's celebrity mark.
    pub followees: Vec<(UserId, bool)>,
    /// Users the reader blocked or who blocked the reader.
    pub blocked: HashSet<UserId>,
    /// Whether the reader is marked a celebrity (their own posts skip fan-out).
    pub reader_celebrity: bool,
}

impl ReadContext {
    // ANCHOR: visible
    /// Whether a post by `author` belongs in `reader`'s home timeline now:
    /// the reader's own, or by someone the reader follows and no block
    /// either way. Applied to every post on every read, so an unfollow or
    /// a block takes effect on the next read whatever the caches hold.
    pub fn visible(&self, reader: UserId, author: UserId) -> bool {
        author == reader
            || (!self.blocked.contains(&author) && self.followees.iter().any(|(f, _)| *f == author))
    }
    // ANCHOR_END: visible
}

/// One batch of a fan-out job: the post and the next users to deliver it to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FanOutBatch {
    /// The post to deliver.
    pub post: PostId,
    /// Its author.
    pub author: UserId,
    /// The next users in id order: followers, and the author.
    pub audience: Vec<UserId>,
    /// True when this is the job's last batch.
    pub last: bool,
    /// Failed attempts at this job so far.
    pub attempts: u32,
}

// ANCHOR: retry_policy
/// How a fan-out job that keeps failing is retried, and when it is given up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Failed attempts after which the job moves to the dead-letter table.
    pub max_attempts: u32,
    /// The wait after the first failure; it doubles with each further one.
    pub backoff: Duration,
}

impl Default for RetryPolicy {
    /// Five attempts, one second apart and doubling (about 15 s in all).
    fn default() -> Self {
        Self {
            max_attempts: 5,
            backoff: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// The wait before the next attempt, after `attempts` failures.
    pub fn delay(&self, attempts: u32) -> Duration {
        self.backoff
            .saturating_mul(1 << attempts.saturating_sub(1).min(16))
    }
}
// ANCHOR_END: retry_policy

/// What a failed batch did to its job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Failed attempts so far, this one included.
    pub attempts: u32,
    /// The job reached the policy's limit and was moved to the dead letters.
    pub dead: bool,
}

/// Durable storage for the timelines. Every method is one transaction.
pub trait SocialStore: Clone + Send + Sync + 'static {
    /// A claimed fan-out job; while it is held no other worker sees the job.
    /// Dropping it without [`SocialStore::finish_batch`] releases the job unchanged.
    type Claim: Send;

    /// Creates a user.
    fn create_user(
        &self,
        handle: &Handle,
    ) -> impl Future<Output = Result<UserId, StoreError>> + Send;

    /// Stores a post (its author must exist) and, if `fan_out` says so, its fan-out job.
    /// Returns whether a job was enqueued.
    fn insert_post(
        &self,
        post: &Post,
        fan_out: FanOutIf,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Deletes a post; only its author may.
    fn delete_post(
        &self,
        by: UserId,
        id: PostId,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// `follower` follows `followee`; marks the followee a celebrity when
    /// its follower count reaches `celebrity_at` (the mark never clears).
    fn follow(
        &self,
        follower: UserId,
        followee: UserId,
        celebrity_at: u64,
    ) -> impl Future<Output = Result<FollowOutcome, StoreError>> + Send;

    /// Removes a follow; returns whether there was one.
    fn unfollow(
        &self,
        follower: UserId,
        followee: UserId,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// `blocker` blocks `blocked`: records the block and removes follows both ways.
    fn block(
        &self,
        blocker: UserId,
        blocked: UserId,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The reader's followees and blocks.
    fn read_context(
        &self,
        reader: UserId,
    ) -> impl Future<Output = Result<ReadContext, StoreError>> + Send;

    /// The reader's context from the source of truth, past any cache of
    /// contexts: what a rebuild reads, since a timeline marked ready from a
    /// stale context (an invalidation that failed) would keep its hole.
    fn fresh_context(
        &self,
        reader: UserId,
    ) -> impl Future<Output = Result<ReadContext, StoreError>> + Send {
        self.read_context(reader)
    }

    /// For each author, up to `per_author` live posts older than `before`, newest first.
    fn posts_by(
        &self,
        authors: &[UserId],
        before: Option<PostId>,
        per_author: usize,
    ) -> impl Future<Output = Result<Vec<Vec<Post>>, StoreError>> + Send;

    /// The ids of the newest `limit` live posts of `authors` together,
    /// newest first: what a rebuild stores (no bodies; one limit for all).
    fn recent_ids(
        &self,
        authors: &[UserId],
        limit: usize,
    ) -> impl Future<Output = Result<Vec<PostId>, StoreError>> + Send {
        async move {
            let per_author = self.posts_by(authors, None, limit).await?;
            let newest = crate::domain::merge_newest(per_author, limit, |p| p.id);
            Ok(newest.into_iter().map(|p| p.id).collect())
        }
    }

    /// The live posts among `ids`, in the order given (deleted ones are left out).
    fn hydrate(&self, ids: &[PostId])
    -> impl Future<Output = Result<Vec<Post>, StoreError>> + Send;

    /// Claims the oldest unclaimed fan-out job and its next `batch` recipients.
    fn claim_fan_out(
        &self,
        batch: usize,
    ) -> impl Future<Output = Result<Option<(Self::Claim, FanOutBatch)>, StoreError>> + Send;

    /// Records that `batch` was delivered: the job advances past it, or is
    /// removed after its last batch.
    fn finish_batch(
        &self,
        claim: Self::Claim,
        batch: &FanOutBatch,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records that `batch` failed with `error`: the job is retried after
    /// the policy's delay (other jobs go first meanwhile), or, at the
    /// policy's limit, moved with its error to the dead letters.
    fn fail_batch(
        &self,
        claim: Self::Claim,
        batch: &FanOutBatch,
        error: &str,
        policy: RetryPolicy,
    ) -> impl Future<Output = Result<Failure, StoreError>> + Send;

    /// Fan-out jobs not yet finished (dead letters excluded).
    fn pending_fan_out(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;
}
