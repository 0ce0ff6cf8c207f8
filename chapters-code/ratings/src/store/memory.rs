//! The in-memory adapter: one mutex over everything, so every operation is
//! atomic, the way a transaction is in PostgreSQL.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use super::{AuditEntry, NewReview, ReviewStore, StoreError, Verdict};
use crate::domain::aggregate::Delta;
use crate::domain::votes::Vote;
use crate::domain::{
    Aggregate, Body, ModEvent, ModState, ProductId, Rating, Review, ReviewId, UserId,
};

#[derive(Default)]
struct Inner {
    users: HashMap<UserId, DateTime<Utc>>,
    products: HashMap<ProductId, String>,
    orders: HashSet<(UserId, ProductId)>,
    reviews: BTreeMap<ReviewId, Review>,
    by_buyer: HashMap<(UserId, ProductId), ReviewId>,
    aggregates: HashMap<ProductId, Aggregate>,
    votes: HashMap<ReviewId, Vec<(UserId, DateTime<Utc>)>>,
    audit: Vec<AuditEntry>,
    next_id: i64,
}

/// Reviews in process memory.
#[derive(Default)]
pub struct MemoryStore(Mutex<Inner>);

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave half a write: every
        // write checks first and mutates last.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Inner {
    fn counted(r: &Review) -> Option<Rating> {
        r.state.counts().then_some(r.rating)
    }

    fn transition(
        &mut self,
        id: ReviewId,
        event: ModEvent,
        actor: &str,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<Review, StoreError> {
        let r = self
            .reviews
            .get(&id)
            .ok_or(StoreError::ReviewNotFound(id))?;
        let to = r.state.on(event)?;
        let before = Self::counted(r);
        let mut r = r.clone();
        let from = r.state;
        r.state = to;
        r.updated_at = at;
        let delta = Delta::between(before, Self::counted(&r));
        delta.apply(self.aggregates.entry(r.product).or_default());
        self.audit.push(AuditEntry {
            review: id,
            actor: actor.into(),
            reason: reason.into(),
            event,
            from,
            to,
            at,
        });
        self.reviews.insert(id, r.clone());
        Ok(r)
    }
}

impl ReviewStore for MemoryStore {
    async fn add_user(&self, user: UserId, since: DateTime<Utc>) -> Result<(), StoreError> {
        self.lock().users.entry(user).or_insert(since);
        Ok(())
    }

    async fn add_product(&self, product: ProductId, category: &str) -> Result<(), StoreError> {
        let mut g = self.lock();
        g.products
            .entry(product)
            .or_insert_with(|| category.to_owned());
        g.aggregates.entry(product).or_default();
        Ok(())
    }

    async fn record_order(
        &self,
        user: UserId,
        product: ProductId,
        _at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut g = self.lock();
        if !g.users.contains_key(&user) {
            return Err(StoreError::UnknownUser(user));
        }
        if !g.products.contains_key(&product) {
            return Err(StoreError::UnknownProduct(product));
        }
        g.orders.insert((user, product));
        Ok(())
    }

    async fn submit(
        &self,
        new: NewReview,
        verdict: Verdict,
        at: DateTime<Utc>,
    ) -> Result<Review, StoreError> {
        let mut g = self.lock();
        let (user, product) = (new.user, new.product);
        if !g.products.contains_key(&product) {
            return Err(StoreError::UnknownProduct(product));
        }
        if !g.orders.contains(&(user, product)) {
            return Err(StoreError::NotPurchased { user, product });
        }
        if g.by_buyer.contains_key(&(user, product)) {
            return Err(StoreError::AlreadyReviewed { user, product });
        }
        g.next_id += 1;
        let id = ReviewId(g.next_id);
        let review = Review {
            id,
            user,
            product,
            rating: new.rating,
            body: new.body,
            state: ModState::Pending,
            helpful: 0,
            created_at: at,
            updated_at: at,
        };
        g.reviews.insert(id, review.clone());
        g.by_buyer.insert((user, product), id);
        match verdict.event {
            Some(event) => g.transition(id, event, &verdict.actor, &verdict.reason, at),
            None => Ok(review),
        }
    }

    async fn edit(
        &self,
        user: UserId,
        product: ProductId,
        rating: Rating,
        body: Body,
        at: DateTime<Utc>,
    ) -> Result<Review, StoreError> {
        let mut g = self.lock();
        let missing = StoreError::NoReviewOf { user, product };
        let id = *g.by_buyer.get(&(user, product)).ok_or(missing)?;
        let Some(mut r) = g.reviews.get(&id).cloned() else {
            return Err(StoreError::NoReviewOf { user, product });
        };
        if r.state == ModState::Deleted {
            return Err(StoreError::NoReviewOf { user, product });
        }
        let before = Inner::counted(&r);
        r.rating = rating;
        r.body = body;
        r.updated_at = at;
        let delta = Delta::between(before, Inner::counted(&r));
        delta.apply(g.aggregates.entry(product).or_default());
        g.reviews.insert(id, r.clone());
        Ok(r)
    }

    async fn moderate(
        &self,
        review: ReviewId,
        event: ModEvent,
        actor: &str,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<Review, StoreError> {
        self.lock().transition(review, event, actor, reason, at)
    }

    async fn vote(
        &self,
        voter: UserId,
        review: ReviewId,
        at: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let mut g = self.lock();
        let r = g
            .reviews
            .get(&review)
            .ok_or(StoreError::ReviewNotFound(review))?;
        if r.user == voter {
            return Err(StoreError::OwnReview);
        }
        if r.state != ModState::Published {
            return Err(StoreError::NotVotable {
                review,
                state: r.state,
            });
        }
        if !g.users.contains_key(&voter) {
            return Err(StoreError::UnknownUser(voter));
        }
        let votes = g.votes.entry(review).or_default();
        if votes.iter().any(|(v, _)| *v == voter) {
            return Err(StoreError::AlreadyVoted { voter, review });
        }
        votes.push((voter, at));
        let r = g
            .reviews
            .get_mut(&review)
            .ok_or(StoreError::ReviewNotFound(review))?;
        r.helpful += 1;
        Ok(r.helpful)
    }

    async fn aggregate(&self, product: ProductId) -> Result<Aggregate, StoreError> {
        self.lock()
            .aggregates
            .get(&product)
            .copied()
            .ok_or(StoreError::UnknownProduct(product))
    }

    async fn recompute(&self, product: ProductId) -> Result<Aggregate, StoreError> {
        let g = self.lock();
        if !g.products.contains_key(&product) {
            return Err(StoreError::UnknownProduct(product));
        }
        Ok(Aggregate::recompute(
            g.reviews
                .values()
                .filter(|r| r.product == product)
                .filter_map(Inner::counted),
        ))
    }

    async fn review(&self, id: ReviewId) -> Result<Review, StoreError> {
        self.lock()
            .reviews
            .get(&id)
            .cloned()
            .ok_or(StoreError::ReviewNotFound(id))
    }

    async fn review_of(&self, user: UserId, product: ProductId) -> Result<Review, StoreError> {
        let g = self.lock();
        g.by_buyer
            .get(&(user, product))
            .and_then(|id| g.reviews.get(id))
            .filter(|r| r.state != ModState::Deleted)
            .cloned()
            .ok_or(StoreError::NoReviewOf { user, product })
    }

    async fn page(
        &self,
        product: ProductId,
        before: Option<ReviewId>,
        limit: i64,
    ) -> Result<Vec<Review>, StoreError> {
        let g = self.lock();
        let upper = before.unwrap_or(ReviewId(i64::MAX));
        let take = usize::try_from(limit.clamp(0, super::MAX_PAGE)).unwrap_or(0);
        Ok(g.reviews
            .range(..upper)
            .rev()
            .map(|(_, r)| r)
            .filter(|r| r.product == product && r.state == ModState::Published)
            .take(take)
            .cloned()
            .collect())
    }

    async fn audit(&self, review: ReviewId) -> Result<Vec<AuditEntry>, StoreError> {
        Ok(self
            .lock()
            .audit
            .iter()
            .filter(|a| a.review == review)
            .cloned()
            .collect())
    }

    async fn votes(&self, review: ReviewId) -> Result<Vec<Vote>, StoreError> {
        let g = self.lock();
        let votes = g.votes.get(&review).map(Vec::as_slice).unwrap_or_default();
        votes
            .iter()
            .map(|(voter, at)| {
                let since = g
                    .users
                    .get(voter)
                    .copied()
                    .ok_or(StoreError::UnknownUser(*voter))?;
                Ok(Vote {
                    voter_since: since,
                    at: *at,
                })
            })
            .collect()
    }

    async fn user_since(&self, user: UserId) -> Result<DateTime<Utc>, StoreError> {
        self.lock()
            .users
            .get(&user)
            .copied()
            .ok_or(StoreError::UnknownUser(user))
    }

    async fn reviews_by_since(
        &self,
        user: UserId,
        since: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let n = self
            .lock()
            .reviews
            .values()
            .filter(|r| r.user == user && r.created_at >= since)
            .count();
        Ok(i64::try_from(n).unwrap_or(i64::MAX))
    }

    async fn recent_bodies(
        &self,
        product: ProductId,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        let take = usize::try_from(limit.max(0)).unwrap_or(0);
        Ok(self
            .lock()
            .reviews
            .values()
            .rev()
            .filter(|r| r.product == product && r.state != ModState::Deleted)
            .take(take)
            .map(|r| r.body.as_str().to_owned())
            .collect())
    }

    async fn top_rated(
        &self,
        category: &str,
        limit: i64,
    ) -> Result<Vec<(ProductId, f64)>, StoreError> {
        let g = self.lock();
        let mut all: Vec<(ProductId, f64)> = g
            .products
            .iter()
            .filter(|(_, c)| c.as_str() == category)
            .map(|(p, _)| (*p, g.aggregates.get(p).copied().unwrap_or_default().score()))
            .collect();
        // Score descending, then id ascending: the index's order.
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        all.truncate(usize::try_from(limit.max(0)).unwrap_or(0));
        Ok(all)
    }
}
