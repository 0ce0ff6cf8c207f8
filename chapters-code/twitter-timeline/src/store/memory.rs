//! The in-memory store: the same rules as PostgreSQL, behind one mutex.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use std::time::Instant;

use super::{
    Failure, FanOutBatch, FanOutIf, FollowOutcome, ReadContext, RetryPolicy, SocialStore,
    StoreError,
};
use crate::domain::{Handle, Post, PostId, UserId};

#[derive(Debug, Default)]
struct UserRow {
    followers: u64,
    celebrity: bool,
}

#[derive(Debug)]
struct Job {
    author: UserId,
    after: Option<UserId>,
    claimed: bool,
    attempts: u32,
    not_before: Option<Instant>,
}

/// A fan-out job given up after too many failures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryDeadJob {
    /// The post.
    pub post: PostId,
    /// Failed attempts.
    pub attempts: u32,
    /// The last error.
    pub error: String,
}

#[derive(Debug, Default)]
struct State {
    next_user: i64,
    handles: HashMap<String, UserId>,
    users: BTreeMap<UserId, UserRow>,
    /// (follower, followee)
    follows: BTreeSet<(UserId, UserId)>,
    /// (followee, follower)
    followers: BTreeSet<(UserId, UserId)>,
    /// (blocker, blocked)
    blocks: BTreeSet<(UserId, UserId)>,
    posts: BTreeMap<PostId, Post>,
    by_author: BTreeSet<(UserId, PostId)>,
    jobs: BTreeMap<PostId, Job>,
    dead: BTreeMap<PostId, (Job, String)>,
}

impl State {
    fn user(&self, id: UserId) -> Result<&UserRow, StoreError> {
        self.users.get(&id).ok_or(StoreError::UnknownUser(id))
    }

    fn blocked_either_way(&self, a: UserId, b: UserId) -> bool {
        self.blocks.contains(&(a, b)) || self.blocks.contains(&(b, a))
    }

    fn remove_follow(&mut self, follower: UserId, followee: UserId) -> bool {
        let removed = self.follows.remove(&(follower, followee));
        if removed {
            self.followers.remove(&(followee, follower));
            if let Some(u) = self.users.get_mut(&followee) {
                u.followers -= 1;
            }
        }
        removed
    }
}

/// A store in process memory; clones share the data.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data (every
        // method validates before it mutates), so a poisoned lock is usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The fan-out jobs given up, oldest post first.
    pub fn dead_letters(&self) -> Vec<MemoryDeadJob> {
        self.lock()
            .dead
            .iter()
            .map(|(post, (job, error))| MemoryDeadJob {
                post: *post,
                attempts: job.attempts,
                error: error.clone(),
            })
            .collect()
    }

    /// Puts a dead job back in the queue, attempts reset; false if there is none.
    pub fn replay_dead(&self, post: PostId) -> bool {
        let mut s = self.lock();
        match s.dead.remove(&post) {
            Some((mut job, _)) => {
                job.attempts = 0;
                job.not_before = None;
                job.claimed = false;
                s.jobs.insert(post, job);
                true
            }
            None => false,
        }
    }
}

/// A claimed job of the memory store; dropping it releases the job.
#[derive(Debug)]
pub struct MemoryClaim {
    state: Arc<Mutex<State>>,
    post: PostId,
}

impl Drop for MemoryClaim {
    fn drop(&mut self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(job) = s.jobs.get_mut(&self.post) {
            job.claimed = false;
        }
    }
}

impl SocialStore for MemoryStore {
    type Claim = MemoryClaim;

    async fn create_user(&self, handle: &Handle) -> Result<UserId, StoreError> {
        let mut s = self.lock();
        if s.handles.contains_key(handle.as_str()) {
            return Err(StoreError::HandleTaken);
        }
        s.next_user += 1;
        let id = UserId(s.next_user);
        s.handles.insert(handle.as_str().to_string(), id);
        s.users.insert(id, UserRow::default());
        Ok(id)
    }

    async fn insert_post(&self, post: &Post, fan_out: FanOutIf) -> Result<bool, StoreError> {
        let mut s = self.lock();
        let celebrity = s.user(post.author)?.celebrity;
        if s.posts.contains_key(&post.id) {
            return Err(StoreError::Backend("duplicate post id".into()));
        }
        s.posts.insert(post.id, post.clone());
        s.by_author.insert((post.author, post.id));
        let job = match fan_out {
            FanOutIf::Always => true,
            FanOutIf::Never => false,
            FanOutIf::NotCelebrity => !celebrity,
        };
        if job {
            s.jobs.insert(
                post.id,
                Job {
                    author: post.author,
                    after: None,
                    claimed: false,
                    attempts: 0,
                    not_before: None,
                },
            );
        }
        Ok(job)
    }

    async fn delete_post(&self, by: UserId, id: PostId) -> Result<(), StoreError> {
        let mut s = self.lock();
        let author = s.posts.get(&id).ok_or(StoreError::PostNotFound)?.author;
        if author != by {
            return Err(StoreError::NotAuthor);
        }
        s.posts.remove(&id);
        s.by_author.remove(&(author, id));
        Ok(())
    }

    async fn follow(
        &self,
        follower: UserId,
        followee: UserId,
        celebrity_at: u64,
    ) -> Result<FollowOutcome, StoreError> {
        let mut s = self.lock();
        s.user(follower)?;
        s.user(followee)?;
        if follower == followee {
            return Err(StoreError::SelfAction);
        }
        if s.blocked_either_way(follower, followee) {
            return Err(StoreError::Blocked);
        }
        let created = s.follows.insert((follower, followee));
        let row = s
            .users
            .get_mut(&followee)
            .ok_or(StoreError::UnknownUser(followee))?;
        let was_celebrity = row.celebrity;
        if created {
            row.followers += 1;
            row.celebrity |= row.followers >= celebrity_at;
        }
        let followee_celebrity = row.celebrity;
        if created {
            s.followers.insert((followee, follower));
        }
        Ok(FollowOutcome {
            created,
            followee_celebrity,
            became_celebrity: followee_celebrity && !was_celebrity,
        })
    }

    async fn unfollow(&self, follower: UserId, followee: UserId) -> Result<bool, StoreError> {
        let mut s = self.lock();
        s.user(follower)?;
        s.user(followee)?;
        Ok(s.remove_follow(follower, followee))
    }

    async fn block(&self, blocker: UserId, blocked: UserId) -> Result<(), StoreError> {
        let mut s = self.lock();
        s.user(blocker)?;
        s.user(blocked)?;
        if blocker == blocked {
            return Err(StoreError::SelfAction);
        }
        s.blocks.insert((blocker, blocked));
        s.remove_follow(blocker, blocked);
        s.remove_follow(blocked, blocker);
        Ok(())
    }

    async fn read_context(&self, reader: UserId) -> Result<ReadContext, StoreError> {
        let s = self.lock();
        let reader_celebrity = s.user(reader)?.celebrity;
        let followees = s
            .follows
            .range((reader, UserId(i64::MIN))..=(reader, UserId(i64::MAX)))
            .map(|(_, f)| (*f, s.users.get(f).is_some_and(|u| u.celebrity)))
            .collect();
        let blocked: HashSet<UserId> = s
            .blocks
            .iter()
            .filter_map(|(a, b)| {
                if *a == reader {
                    Some(*b)
                } else if *b == reader {
                    Some(*a)
                } else {
                    None
                }
            })
            .collect();
        Ok(ReadContext {
            followees,
            blocked,
            reader_celebrity,
        })
    }

    async fn posts_by(
        &self,
        authors: &[UserId],
        before: Option<PostId>,
        per_author: usize,
    ) -> Result<Vec<Vec<Post>>, StoreError> {
        let s = self.lock();
        Ok(authors
            .iter()
            .map(|a| {
                let upper = match before {
                    Some(b) => Bound::Excluded((*a, b)),
                    None => Bound::Included((*a, PostId::MAX)),
                };
                s.by_author
                    .range((Bound::Included((*a, PostId::MIN)), upper))
                    .rev()
                    .take(per_author)
                    .filter_map(|(_, id)| s.posts.get(id).cloned())
                    .collect()
            })
            .collect())
    }

    async fn hydrate(&self, ids: &[PostId]) -> Result<Vec<Post>, StoreError> {
        let s = self.lock();
        Ok(ids
            .iter()
            .filter_map(|id| s.posts.get(id).cloned())
            .collect())
    }

    async fn claim_fan_out(
        &self,
        batch: usize,
    ) -> Result<Option<(MemoryClaim, FanOutBatch)>, StoreError> {
        let mut s = self.lock();
        let now = Instant::now();
        let Some((post, author, after, attempts)) = s
            .jobs
            .iter()
            .find(|(_, j)| !j.claimed && j.not_before.is_none_or(|t| t <= now))
            .map(|(p, j)| (*p, j.author, j.after, j.attempts))
        else {
            return Ok(None);
        };
        // The audience in id order: the author's followers and the author.
        let from = after.map_or(i64::MIN, |u| u.0.saturating_add(1));
        let mut audience: Vec<UserId> = s
            .followers
            .range((author, UserId(from))..=(author, UserId(i64::MAX)))
            .map(|(_, f)| *f)
            .take(batch + 1)
            .collect();
        if after.is_none_or(|a| a < author) {
            audience.push(author);
            audience.sort_unstable();
        }
        let last = audience.len() <= batch;
        audience.truncate(batch);
        if let Some(job) = s.jobs.get_mut(&post) {
            job.claimed = true;
        }
        Ok(Some((
            MemoryClaim {
                state: self.state.clone(),
                post,
            },
            FanOutBatch {
                post,
                author,
                audience,
                last,
                attempts,
            },
        )))
    }

    async fn finish_batch(
        &self,
        claim: MemoryClaim,
        batch: &FanOutBatch,
    ) -> Result<(), StoreError> {
        {
            let mut s = self.lock();
            if batch.last {
                s.jobs.remove(&batch.post);
            } else if let Some(job) = s.jobs.get_mut(&batch.post) {
                job.after = batch.audience.last().copied().or(job.after);
            }
        }
        drop(claim);
        Ok(())
    }

    async fn fail_batch(
        &self,
        claim: MemoryClaim,
        batch: &FanOutBatch,
        error: &str,
        policy: RetryPolicy,
    ) -> Result<Failure, StoreError> {
        let attempts = batch.attempts + 1;
        let dead = attempts >= policy.max_attempts;
        {
            let mut s = self.lock();
            if dead {
                if let Some(mut job) = s.jobs.remove(&batch.post) {
                    job.attempts = attempts;
                    s.dead.insert(batch.post, (job, error.to_string()));
                }
            } else if let Some(job) = s.jobs.get_mut(&batch.post) {
                job.attempts = attempts;
                job.not_before = Some(Instant::now() + policy.delay(attempts));
            }
        }
        drop(claim);
        Ok(Failure { attempts, dead })
    }

    async fn pending_fan_out(&self) -> Result<u64, StoreError> {
        Ok(self.lock().jobs.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::{PostBody, Snowflake, unix_ms_now};

    /// The memory store's retry, dead letter and replay, batch by batch:
    /// what the PostgreSQL store's poison test checks, without Redis.
    #[tokio::test]
    async fn a_failing_batch_is_retried_dead_lettered_and_replayed_from_where_it_stopped() {
        let store = MemoryStore::new();
        let mut users = Vec::new();
        for h in ["author", "first", "second"] {
            let handle = Handle::parse(h).expect("handle");
            users.push(store.create_user(&handle).await.expect("user"));
        }
        let (author, first, second) = (users[0], users[1], users[2]);
        for f in [first, second] {
            store.follow(f, author, u64::MAX).await.expect("follow");
        }
        let id = Snowflake::new(1)
            .expect("node")
            .next_id(unix_ms_now())
            .expect("id");
        let body = PostBody::parse("poison").expect("body");
        let post = Post { id, author, body };
        assert!(
            store
                .insert_post(&post, FanOutIf::Always)
                .await
                .expect("post")
        );

        // Batches of one: the author, then `first`, delivered; `second` fails.
        for expected in [author, first] {
            let (claim, batch) = store.claim_fan_out(1).await.expect("claim").expect("job");
            assert_eq!(batch.audience, vec![expected]);
            store.finish_batch(claim, &batch).await.expect("finish");
        }
        let policy = RetryPolicy {
            max_attempts: 2,
            backoff: Duration::from_secs(3600),
        };
        let (claim, batch) = store.claim_fan_out(1).await.expect("claim").expect("job");
        assert_eq!((batch.audience.clone(), batch.attempts), (vec![second], 0));
        let failed = store
            .fail_batch(claim, &batch, "refused", policy)
            .await
            .expect("fail");
        assert_eq!((failed.attempts, failed.dead), (1, false));
        assert!(
            store.claim_fan_out(1).await.expect("claim").is_none(),
            "the job waits out its backoff"
        );
        assert_eq!(store.pending_fan_out().await.expect("pending"), 1);

        // Past the backoff (forced here), the second failure dead-letters it.
        store.lock().jobs.get_mut(&id).expect("job").not_before = None;
        let (claim, batch) = store.claim_fan_out(1).await.expect("claim").expect("job");
        assert_eq!(batch.attempts, 1);
        let failed = store
            .fail_batch(claim, &batch, "refused", policy)
            .await
            .expect("fail");
        assert_eq!((failed.attempts, failed.dead), (2, true));
        assert_eq!(store.pending_fan_out().await.expect("pending"), 0);
        assert_eq!(
            store.dead_letters(),
            vec![MemoryDeadJob {
                post: id,
                attempts: 2,
                error: "refused".to_string(),
            }]
        );

        // The replay puts it back where it stopped, attempts reset, once.
        assert!(store.replay_dead(id));
        assert!(!store.replay_dead(id), "once");
        assert!(store.dead_letters().is_empty());
        let (claim, batch) = store.claim_fan_out(1).await.expect("claim").expect("job");
        assert_eq!((batch.audience.clone(), batch.attempts), (vec![second], 0));
        assert!(batch.last);
        store.finish_batch(claim, &batch).await.expect("finish");
        assert_eq!(store.pending_fan_out().await.expect("pending"), 0);
    }
}
