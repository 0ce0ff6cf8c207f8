//! The naive reference: what a home timeline must show, computed the
//! slowest obvious way. The strategies are tested against it.

use std::collections::{BTreeMap, BTreeSet};

use crate::domain::{Post, PostId, UserId};
use crate::store::StoreError;

/// Every post, follow and block, in plain collections.
#[derive(Clone, Debug, Default)]
pub struct Reference {
    users: BTreeSet<UserId>,
    posts: BTreeMap<PostId, Post>,
    follows: BTreeSet<(UserId, UserId)>,
    blocks: BTreeSet<(UserId, UserId)>,
}

impl Reference {
    /// An empty world.
    pub fn new() -> Self {
        Self::default()
    }

    fn known(&self, u: UserId) -> Result<(), StoreError> {
        if self.users.contains(&u) {
            Ok(())
        } else {
            Err(StoreError::UnknownUser(u))
        }
    }

    fn blocked_either_way(&self, a: UserId, b: UserId) -> bool {
        self.blocks.contains(&(a, b)) || self.blocks.contains(&(b, a))
    }

    /// Adds a user.
    pub fn add_user(&mut self, u: UserId) {
        self.users.insert(u);
    }

    /// Adds a post by a known user.
    pub fn post(&mut self, post: Post) -> Result<(), StoreError> {
        self.known(post.author)?;
        self.posts.insert(post.id, post);
        Ok(())
    }

    /// Deletes a post; only its author may.
    pub fn delete(&mut self, by: UserId, id: PostId) -> Result<(), StoreError> {
        match self.posts.get(&id) {
            None => Err(StoreError::PostNotFound),
            Some(p) if p.author != by => Err(StoreError::NotAuthor),
            Some(_) => {
                self.posts.remove(&id);
                Ok(())
            }
        }
    }

    /// `a` follows `b`: refused for oneself and across a block.
    pub fn follow(&mut self, a: UserId, b: UserId) -> Result<bool, StoreError> {
        self.known(a)?;
        self.known(b)?;
        if a == b {
            return Err(StoreError::SelfAction);
        }
        if self.blocked_either_way(a, b) {
            return Err(StoreError::Blocked);
        }
        Ok(self.follows.insert((a, b)))
    }

    /// `a` stops following `b`.
    pub fn unfollow(&mut self, a: UserId, b: UserId) -> Result<bool, StoreError> {
        self.known(a)?;
        self.known(b)?;
        Ok(self.follows.remove(&(a, b)))
    }

    /// `a` blocks `b`, which ends follows both ways.
    pub fn block(&mut self, a: UserId, b: UserId) -> Result<(), StoreError> {
        self.known(a)?;
        self.known(b)?;
        if a == b {
            return Err(StoreError::SelfAction);
        }
        self.blocks.insert((a, b));
        self.follows.remove(&(a, b));
        self.follows.remove(&(b, a));
        Ok(())
    }

    // ANCHOR: reference
    /// Up to `limit` posts older than `before`: every live post whose author
    /// is the reader, or is followed by the reader with no block either way,
    /// newest first. A scan of every post in the world.
    pub fn home(&self, reader: UserId, before: Option<PostId>, limit: usize) -> Vec<Post> {
        self.posts
            .values()
            .rev()
            .filter(|p| before.is_none_or(|b| p.id < b))
            .filter(|p| {
                p.author == reader
                    || (self.follows.contains(&(reader, p.author))
                        && !self.blocked_either_way(reader, p.author))
            })
            .take(limit)
            .cloned()
            .collect()
    }
    // ANCHOR_END: reference
}
