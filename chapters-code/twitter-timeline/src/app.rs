//! The use cases: parse input, issue ids, and call the strategy.

use std::sync::{Arc, Mutex};

use crate::domain::{
    BodyError, CursorError, CursorKey, Handle, HandleError, IdError, Post, PostBody, PostId,
    Snowflake, UserId, unix_ms_now,
};
use crate::store::{SocialStore, StoreError};
use crate::timeline::{HomeTimeline, TimelineError};

// ANCHOR: limits
/// Posts per page when the client does not say.
pub const DEFAULT_PAGE: usize = 20;
/// The most posts one page may ask for.
pub const MAX_PAGE: usize = 100;
/// The most follow tasks (a follow and its backfill) in flight at once per
/// instance; one more is refused as unavailable, to be retried.
pub const FOLLOW_TASKS: usize = 32;
/// How long a post waits for its author's own timeline insert; past it the
/// post is answered and reaches the author with its fan-out batch.
pub const OWN_INSERT_WAIT: std::time::Duration = std::time::Duration::from_millis(100);
// ANCHOR_END: limits

/// Why a use case failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AppError {
    /// The post body broke a rule.
    #[error(transparent)]
    Body(#[from] BodyError),
    /// The handle broke a rule.
    #[error(transparent)]
    Handle(#[from] HandleError),
    /// The cursor is not one we issued.
    #[error(transparent)]
    Cursor(#[from] CursorError),
    /// The page size is out of range.
    #[error("a page has 1 to {MAX_PAGE} posts, not {0}")]
    Limit(usize),
    /// The id generator refused (the clock stepped back too far).
    #[error(transparent)]
    Id(#[from] IdError),
    /// The store or cache failed, or refused (unknown user, block, ...).
    #[error(transparent)]
    Timeline(#[from] TimelineError),
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        Self::Timeline(TimelineError::Store(e))
    }
}

/// One page of a home timeline.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Page {
    /// Newest first.
    pub posts: Vec<Post>,
    /// The cursor of the next page, when this one was full.
    pub next: Option<String>,
}

/// The service's use cases over one strategy.
#[derive(Clone)]
pub struct Timelines<T> {
    timeline: T,
    ids: Arc<Mutex<Snowflake>>,
    cursors: CursorKey,
    follows: Arc<tokio::sync::Semaphore>,
    follow_tasks: usize,
}

impl<T: HomeTimeline> Timelines<T> {
    /// Use cases over `timeline`, issuing ids as `node`, signing cursors with `cursor_secret`.
    pub fn new(timeline: T, node: u16, cursor_secret: &[u8]) -> Result<Self, AppError> {
        Ok(Self {
            timeline,
            ids: Arc::new(Mutex::new(Snowflake::new(node)?)),
            cursors: CursorKey::new(cursor_secret),
            follows: Arc::new(tokio::sync::Semaphore::new(FOLLOW_TASKS)),
            follow_tasks: FOLLOW_TASKS,
        })
    }

    /// The same use cases with at most `tasks` follow tasks in flight.
    pub fn with_follow_tasks(mut self, tasks: usize) -> Self {
        self.follows = Arc::new(tokio::sync::Semaphore::new(tasks));
        self.follow_tasks = tasks;
        self
    }

    /// Waits, up to `grace`, for the follow tasks still running (their
    /// clients may have gone) to finish their backfills; at shutdown, after
    /// the server has stopped taking requests. False if some did not finish.
    pub async fn drain_follows(&self, grace: std::time::Duration) -> bool {
        let all = u32::try_from(self.follow_tasks).unwrap_or(u32::MAX);
        tokio::time::timeout(grace, self.follows.acquire_many(all))
            .await
            .is_ok_and(|permits| permits.is_ok())
    }

    /// The strategy.
    pub fn timeline(&self) -> &T {
        &self.timeline
    }

    /// Creates a user.
    pub async fn create_user(&self, handle: &str) -> Result<UserId, AppError> {
        let handle = Handle::parse(handle)?;
        Ok(self.timeline.store().create_user(&handle).await?)
    }

    // ANCHOR: post
    /// Publishes a post: stored with its fan-out job in one transaction.
    /// The author's own cached timeline gets it right after the commit, so
    /// the author sees it on the next read whatever the queue holds; the
    /// job's batch that reaches the author later adds nothing. That insert
    /// waits at most [`OWN_INSERT_WAIT`]: a slow Redis does not hold the
    /// post's answer, and the author then sees it when fan-out gets there.
    pub async fn post(&self, author: UserId, body: &str) -> Result<Post, AppError> {
        let body = PostBody::parse(body)?;
        let id = self
            .ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .next_id(unix_ms_now())?;
        let post = Post { id, author, body };
        let queued = self
            .timeline
            .store()
            .insert_post(&post, self.timeline.fan_out())
            .await?;
        if queued {
            match tokio::time::timeout(OWN_INSERT_WAIT, self.timeline.deliver(id, &[author])).await
            {
                Ok(Ok(_)) => {}
                // The post stands; the author's batch delivers it when Redis is back.
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, %author, post = %id, "own-timeline insert failed");
                }
                Err(_) => tracing::warn!(%author, post = %id, "own-timeline insert timed out"),
            }
        }
        Ok(post)
    }
    // ANCHOR_END: post

    /// Deletes a post (only its author may). Filtered at read; no fan-out.
    pub async fn delete(&self, by: UserId, id: PostId) -> Result<(), AppError> {
        Ok(self.timeline.store().delete_post(by, id).await?)
    }

    // ANCHOR: follow
    /// `follower` follows `followee`; the followee's recent posts join the
    /// follower's cached timeline before this returns. The follow and its
    /// backfill run as one task of their own: a request dropped after the
    /// commit (its client went away) drops only the wait, not the backfill.
    /// At most [`FOLLOW_TASKS`] run at once (a client that sends follows and
    /// hangs up cannot pile them up); beyond that the follow is refused as
    /// unavailable, before anything is written.
    pub async fn follow(&self, follower: UserId, followee: UserId) -> Result<bool, AppError> {
        let Ok(permit) = self.follows.clone().try_acquire_owned() else {
            return Err(StoreError::Unavailable("too many follows in flight".into()).into());
        };
        let timeline = self.timeline.clone();
        let task = tokio::spawn(async move {
            let _permit = permit;
            let outcome = timeline
                .store()
                .follow(follower, followee, timeline.celebrity_at())
                .await?;
            timeline.after_follow(follower, followee, outcome).await?;
            Ok::<_, AppError>(outcome.created)
        });
        match task.await {
            Ok(done) => done,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(StoreError::Unavailable(format!("follow task: {e}")).into()),
        }
    }
    // ANCHOR_END: follow

    /// Stops following. Filtered at read; nothing is removed from caches.
    pub async fn unfollow(&self, follower: UserId, followee: UserId) -> Result<bool, AppError> {
        Ok(self.timeline.store().unfollow(follower, followee).await?)
    }

    /// Blocks a user (and ends follows both ways). Filtered at read.
    pub async fn block(&self, blocker: UserId, blocked: UserId) -> Result<(), AppError> {
        Ok(self.timeline.store().block(blocker, blocked).await?)
    }

    // ANCHOR: home
    /// A page of `reader`'s home timeline after `cursor`.
    pub async fn home(
        &self,
        reader: UserId,
        cursor: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Page, AppError> {
        let limit = limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(AppError::Limit(limit));
        }
        let before = cursor.map(|c| self.cursors.decode(c)).transpose()?;
        let posts = self.timeline.home(reader, before, limit).await?;
        let next = (posts.len() == limit)
            .then(|| posts.last().map(|p| self.cursors.encode(p.id)))
            .flatten();
        Ok(Page { posts, next })
    }
    // ANCHOR_END: home

    /// The cursor that resumes after `id` (tests and clients that page by hand).
    pub fn cursor_after(&self, id: PostId) -> String {
        self.cursors.encode(id)
    }
}
