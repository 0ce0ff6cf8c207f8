//! Three ways to build a home timeline, behind one trait.
//!
//! - [`FanOutOnWrite`] ("push"): every post is delivered into each
//!   follower's cached timeline; a read is one range of one list.
//! - [`FanOutOnRead`] ("pull"): nothing is delivered; a read merges the
//!   newest posts of every followee.
//! - [`Hybrid`]: push for ordinary authors, pull for authors marked as
//!   celebrities (at least `threshold` followers), merged at read.
//!
//! All three filter at read time with [`ReadContext::visible`]: a deleted
//! post fails to hydrate, an unfollowed or blocked author fails the
//! visibility check. Nothing is removed from cached timelines, so deletes,
//! unfollows and blocks cost no fan-out and take effect on the next read.
//!
//! `tests/equivalence.rs` checks that all three return exactly what
//! [`crate::reference::Reference`] returns.

use std::future::Future;

use crate::cache::{CacheError, TimelineCache};
use crate::domain::{Post, PostId, UserId, merge_newest};
use crate::store::{FanOutIf, FollowOutcome, ReadContext, SocialStore, StoreError};

/// Why a timeline operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TimelineError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The cache failed where no fallback exists.
    #[error(transparent)]
    Cache(#[from] CacheError),
}

impl TimelineError {
    /// Whether waiting may cure it: a store or cache that is down or busy.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Store(e) => matches!(e, StoreError::Unavailable(_) | StoreError::Refused(_)),
            Self::Cache(e) => e.is_transient(),
        }
    }
}

/// A strategy for home timelines: what happens on write, on follow and on read.
pub trait HomeTimeline: Clone + Send + Sync + 'static {
    /// The store underneath.
    type Store: SocialStore;

    /// A short name for tables and logs.
    fn name(&self) -> String;

    /// The store.
    fn store(&self) -> &Self::Store;

    /// Which posts get a fan-out job.
    fn fan_out(&self) -> FanOutIf;

    /// The follower count at which an author is marked a celebrity.
    fn celebrity_at(&self) -> u64;

    /// Makes the followee's recent posts part of the follower's cached timeline.
    fn after_follow(
        &self,
        follower: UserId,
        followee: UserId,
        outcome: FollowOutcome,
    ) -> impl Future<Output = Result<(), TimelineError>> + Send;

    /// Delivers one fan-out batch (strategies without a cache deliver nothing).
    fn deliver(
        &self,
        post: PostId,
        audience: &[UserId],
    ) -> impl Future<Output = Result<usize, TimelineError>> + Send;

    /// Up to `limit` posts of `reader`'s home timeline older than `before`, newest first.
    fn home(
        &self,
        reader: UserId,
        before: Option<PostId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Post>, TimelineError>> + Send;
}

/// The store and cache the strategies share.
#[derive(Clone, Debug)]
pub struct Parts<S, C> {
    /// The source of truth.
    pub store: S,
    /// The timelines fan-out writes.
    pub cache: C,
}

/// The authors of a timeline whose celebrity mark passes `keep`: visible
/// followees, and the reader.
fn authors(reader: UserId, ctx: &ReadContext, keep: impl Fn(bool) -> bool) -> Vec<UserId> {
    let mut out: Vec<UserId> = ctx
        .followees
        .iter()
        .filter(|(f, celebrity)| ctx.visible(reader, *f) && keep(*celebrity))
        .map(|(f, _)| *f)
        .collect();
    if keep(ctx.reader_celebrity) {
        out.push(reader);
    }
    out
}

// ANCHOR: pull
/// Fan-out on read's core: the newest `limit` live posts of `authors`.
async fn pull<S: SocialStore>(
    store: &S,
    authors: &[UserId],
    before: Option<PostId>,
    limit: usize,
) -> Result<Vec<Post>, StoreError> {
    let per_author = store.posts_by(authors, before, limit).await?;
    Ok(merge_newest(per_author, limit, |p| p.id))
}
// ANCHOR_END: pull

impl<S: SocialStore, C: TimelineCache> Parts<S, C> {
    // ANCHOR: rebuild
    /// Rebuilds an absent timeline from the store. The timeline is marked
    /// *building* before the store is read, so a post committed after the
    /// read is fanned out into it; a post committed before is in the read.
    /// The same holds for follows: the reader's context is read again after
    /// the mark, from the store itself (past the context cache, which a
    /// failed invalidation can leave stale), so a follow whose backfill found
    /// no timeline (it committed before the mark) is in this read, and one
    /// after it backfills into the building timeline. `keep` picks the
    /// pushed authors by their mark. If the timeline is already *building*
    /// (another read is rebuilding it, or a rebuild died and its mark has
    /// not expired) this read does not rebuild: false, and it pulls.
    async fn rebuild(&self, reader: UserId, keep: fn(bool) -> bool) -> Result<bool, TimelineError> {
        if !self.cache.begin_rebuild(reader).await? {
            return Ok(false);
        }
        let ctx = self.store.fresh_context(reader).await?;
        let pushed = authors(reader, &ctx, keep);
        let ids = self.store.recent_ids(&pushed, self.cache.cap()).await?;
        Ok(self.cache.finish_rebuild(reader, &ids).await?)
    }
    // ANCHOR_END: rebuild

    // ANCHOR: cached
    /// The newest `limit` visible posts among those pushed to `reader`
    /// (by the followees whose mark passes `keep`), read from the cached timeline.
    ///
    /// The list is read in windows, hydrated, filtered. If the list runs
    /// out while full, older entries may have been trimmed, so the rest
    /// comes from the store. If Redis fails, the whole page does: the read
    /// degrades to fan-out on read instead of failing.
    async fn cached(
        &self,
        reader: UserId,
        ctx: &ReadContext,
        keep: fn(bool) -> bool,
        before: Option<PostId>,
        limit: usize,
    ) -> Result<Vec<Post>, TimelineError> {
        let pushed = &authors(reader, ctx, keep);
        let mut out: Vec<Post> = Vec::with_capacity(limit);
        let mut cursor = before;
        let mut rebuilt = false;
        while out.len() < limit {
            let window = match self.cache.window(reader, cursor, limit + 8).await {
                Ok(Some(w)) => w,
                Ok(None) if !rebuilt => {
                    rebuilt = true;
                    match self.rebuild(reader, keep).await {
                        Ok(true) => continue,
                        Ok(false) => {}
                        // Left *building* for at most REBUILD_TTL; reads pull meanwhile
                        // (they find the mark and do not rebuild).
                        Err(e) => tracing::warn!(error = %e, %reader, "timeline rebuild failed"),
                    }
                    return Ok(pull(&self.store, pushed, before, limit).await?);
                }
                Ok(None) | Err(_) => return Ok(pull(&self.store, pushed, before, limit).await?),
            };
            let posts = self.store.hydrate(&window.ids).await?;
            out.extend(posts.into_iter().filter(|p| ctx.visible(reader, p.author)));
            if window.exhausted {
                if window.full {
                    let oldest = window.ids.last().copied().or(cursor);
                    let rest =
                        pull(&self.store, pushed, oldest, limit - out.len().min(limit)).await?;
                    out.extend(rest);
                }
                break;
            }
            cursor = window.ids.last().copied();
        }
        out.truncate(limit);
        Ok(out)
    }
    // ANCHOR_END: cached

    // ANCHOR: backfill
    /// After a follow: the followee's recent posts join the follower's
    /// cached timeline (idempotent, so a repeated follow repeats it
    /// harmlessly). If any step fails (the store read or the insert) the
    /// timeline is evicted, to be rebuilt complete on the next read, and
    /// the failure is logged here, since a request that went away no longer
    /// waits for it; the follow itself stands either way.
    async fn backfill(&self, follower: UserId, followee: UserId) -> Result<(), TimelineError> {
        let filled = async {
            let posts = pull(&self.store, &[followee], None, self.cache.cap()).await?;
            let ids: Vec<PostId> = posts.iter().map(|p| p.id).collect();
            self.cache.insert(follower, &ids).await?;
            Ok::<_, TimelineError>(())
        };
        if let Err(e) = filled.await {
            tracing::warn!(error = %e, %follower, %followee, "backfill failed; evicting the timeline");
            if let Err(e) = self.cache.evict(follower).await {
                // Redis is unreachable: reads fall back to the store until it is back.
                tracing::error!(error = %e, %follower, "evicting after a failed backfill failed");
            }
        }
        Ok(())
    }
    // ANCHOR_END: backfill
}

/// Fan-out on write: every post goes into every follower's timeline.
#[derive(Clone, Debug)]
pub struct FanOutOnWrite<S, C>(pub Parts<S, C>);

/// Fan-out on read: a read merges the newest posts of every followee.
#[derive(Clone, Debug)]
pub struct FanOutOnRead<S>(pub S);

/// Push for authors below `threshold` followers, pull for the rest.
#[derive(Clone, Debug)]
pub struct Hybrid<S, C> {
    /// Store and cache.
    pub parts: Parts<S, C>,
    /// Followers at which an author becomes a celebrity.
    pub threshold: u64,
}

// ANCHOR: push
impl<S: SocialStore, C: TimelineCache> HomeTimeline for FanOutOnWrite<S, C> {
    type Store = S;

    fn name(&self) -> String {
        "push".into()
    }

    fn store(&self) -> &S {
        &self.0.store
    }

    fn fan_out(&self) -> FanOutIf {
        FanOutIf::Always
    }

    fn celebrity_at(&self) -> u64 {
        u64::MAX
    }

    async fn after_follow(
        &self,
        follower: UserId,
        followee: UserId,
        outcome: FollowOutcome,
    ) -> Result<(), TimelineError> {
        let _ = outcome;
        self.0.backfill(follower, followee).await
    }

    async fn deliver(&self, post: PostId, audience: &[UserId]) -> Result<usize, TimelineError> {
        Ok(self.0.cache.deliver(post, audience).await?)
    }

    async fn home(
        &self,
        reader: UserId,
        before: Option<PostId>,
        limit: usize,
    ) -> Result<Vec<Post>, TimelineError> {
        let ctx = self.0.store.read_context(reader).await?;
        self.0.cached(reader, &ctx, |_| true, before, limit).await
    }
}
// ANCHOR_END: push

// ANCHOR: pull_strategy
impl<S: SocialStore> HomeTimeline for FanOutOnRead<S> {
    type Store = S;

    fn name(&self) -> String {
        "pull".into()
    }

    fn store(&self) -> &S {
        &self.0
    }

    fn fan_out(&self) -> FanOutIf {
        FanOutIf::Never
    }

    fn celebrity_at(&self) -> u64 {
        u64::MAX
    }

    async fn after_follow(
        &self,
        _: UserId,
        _: UserId,
        _: FollowOutcome,
    ) -> Result<(), TimelineError> {
        Ok(())
    }

    async fn deliver(&self, _: PostId, _: &[UserId]) -> Result<usize, TimelineError> {
        Ok(0)
    }

    async fn home(
        &self,
        reader: UserId,
        before: Option<PostId>,
        limit: usize,
    ) -> Result<Vec<Post>, TimelineError> {
        let ctx = self.0.read_context(reader).await?;
        let everyone = authors(reader, &ctx, |_| true);
        Ok(pull(&self.0, &everyone, before, limit).await?)
    }
}
// ANCHOR_END: pull_strategy

// ANCHOR: hybrid
impl<S: SocialStore, C: TimelineCache> HomeTimeline for Hybrid<S, C> {
    type Store = S;

    fn name(&self) -> String {
        format!("hybrid@{}", self.threshold)
    }

    fn store(&self) -> &S {
        &self.parts.store
    }

    fn fan_out(&self) -> FanOutIf {
        FanOutIf::NotCelebrity
    }

    fn celebrity_at(&self) -> u64 {
        self.threshold
    }

    async fn after_follow(
        &self,
        follower: UserId,
        followee: UserId,
        outcome: FollowOutcome,
    ) -> Result<(), TimelineError> {
        // A celebrity's posts are pulled at every read; nothing to backfill.
        if outcome.followee_celebrity {
            return Ok(());
        }
        self.parts.backfill(follower, followee).await
    }

    async fn deliver(&self, post: PostId, audience: &[UserId]) -> Result<usize, TimelineError> {
        Ok(self.parts.cache.deliver(post, audience).await?)
    }

    async fn home(
        &self,
        reader: UserId,
        before: Option<PostId>,
        limit: usize,
    ) -> Result<Vec<Post>, TimelineError> {
        let ctx = self.parts.store.read_context(reader).await?;
        let celebrities = authors(reader, &ctx, |celebrity| celebrity);
        let cached = self
            .parts
            .cached(reader, &ctx, |celebrity| !celebrity, before, limit)
            .await?;
        let pulled = pull(&self.parts.store, &celebrities, before, limit).await?;
        Ok(merge_newest(vec![cached, pulled], limit, |p| p.id))
    }
}
// ANCHOR_END: hybrid
