//! Storage behind one trait, an in-memory adapter and PostgreSQL; one
//! behaviour suite (`tests/store_behaviour.rs`) runs against both.
//!
//! Every write that changes which reviews are published, or the rating of
//! a published one, changes the product's aggregate in the same
//! transaction (under the same lock, in memory).

mod memory;
mod postgres;

use std::future::Future;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use memory::MemoryStore;
pub use postgres::{PAGE_SQL, PgStore, SCHEMA_SQL, TOP_RATED_SQL};

use crate::domain::moderation::IllegalTransition;
use crate::domain::votes::Vote;
use crate::domain::{
    Aggregate, Body, ModEvent, ModState, ProductId, Rating, Review, ReviewId, UserId,
};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such product.
    #[error("no product {}", .0.0)]
    UnknownProduct(ProductId),
    /// No such account.
    #[error("no user {}", .0.0)]
    UnknownUser(UserId),
    /// The user has no order of the product (verified purchase).
    #[error("user {} has not bought product {}", .user.0, .product.0)]
    NotPurchased {
        /// The user.
        user: UserId,
        /// The product.
        product: ProductId,
    },
    /// The user already reviewed the product (a deleted review counts too).
    #[error("user {} already reviewed product {}", .user.0, .product.0)]
    AlreadyReviewed {
        /// The user.
        user: UserId,
        /// The product.
        product: ProductId,
    },
    /// No review with this id.
    #[error("no review {}", .0.0)]
    ReviewNotFound(ReviewId),
    /// The user has no live review of the product.
    #[error("user {} has no review of product {}", .user.0, .product.0)]
    NoReviewOf {
        /// The user.
        user: UserId,
        /// The product.
        product: ProductId,
    },
    /// The moderation table has no such transition.
    #[error(transparent)]
    Illegal(#[from] IllegalTransition),
    /// This voter already voted this review helpful.
    #[error("user {} already voted review {} helpful", .voter.0, .review.0)]
    AlreadyVoted {
        /// The voter.
        voter: UserId,
        /// The review.
        review: ReviewId,
    },
    /// Authors do not vote on their own reviews.
    #[error("an author cannot vote on their own review")]
    OwnReview,
    /// Only published reviews take votes.
    #[error("review {} is {state}, not published", .review.0)]
    NotVotable {
        /// The review.
        review: ReviewId,
        /// Its state.
        state: ModState,
    },
    /// The database failed or refused.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// A stored value did not parse: a bug or a hand edit.
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

/// What the synchronous spam tier decided at submit time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The transition out of `pending`, or `None` to leave it there for the classifier.
    pub event: Option<ModEvent>,
    /// Who decided (`rules`).
    pub actor: String,
    /// Why, for the audit.
    pub reason: String,
}

impl Verdict {
    /// Publish at once.
    pub fn approve(reason: &str) -> Self {
        Self {
            event: Some(ModEvent::Approve),
            actor: "rules".into(),
            reason: reason.into(),
        }
    }

    /// Leave pending for the next tier; the hold and its reason are audited.
    pub fn hold(reason: &str) -> Self {
        Self {
            event: Some(ModEvent::Hold),
            actor: "rules".into(),
            reason: reason.into(),
        }
    }
}

/// A new review, parsed.
#[derive(Clone, Debug)]
pub struct NewReview {
    /// The author.
    pub user: UserId,
    /// The product.
    pub product: ProductId,
    /// The stars.
    pub rating: Rating,
    /// The text.
    pub body: Body,
}

/// One row of the moderation audit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// The review.
    pub review: ReviewId,
    /// Who did it (`rules`, `classifier`, `moderator:<name>`, `author`).
    pub actor: String,
    /// Why.
    pub reason: String,
    /// The event.
    pub event: ModEvent,
    /// From this state.
    pub from: ModState,
    /// To this one.
    pub to: ModState,
    /// When.
    pub at: DateTime<Utc>,
}

/// Most reviews one page returns.
pub const MAX_PAGE: i64 = 100;

// ANCHOR: trait
/// The chapter's storage. Each write is one transaction.
pub trait ReviewStore: Send + Sync + 'static {
    /// Registers an account created at `since` (idempotent).
    fn add_user(
        &self,
        user: UserId,
        since: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Registers a product and its empty aggregate (idempotent).
    fn add_product(
        &self,
        product: ProductId,
        category: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Records an order: the proof of purchase a review needs.
    fn record_order(
        &self,
        user: UserId,
        product: ProductId,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Stores a review as `pending`, then applies the verdict's transition.
    fn submit(
        &self,
        new: NewReview,
        verdict: Verdict,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<Review, StoreError>> + Send;
    /// Changes the author's rating and text; the aggregate follows if it is published.
    fn edit(
        &self,
        user: UserId,
        product: ProductId,
        rating: Rating,
        body: Body,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<Review, StoreError>> + Send;
    /// Applies a moderation event, audited; the aggregate follows.
    fn moderate(
        &self,
        review: ReviewId,
        event: ModEvent,
        actor: &str,
        reason: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<Review, StoreError>> + Send;
    /// Counts one helpful vote; returns the review's new total.
    fn vote(
        &self,
        voter: UserId,
        review: ReviewId,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;
    /// The incrementally kept aggregate.
    fn aggregate(
        &self,
        product: ProductId,
    ) -> impl Future<Output = Result<Aggregate, StoreError>> + Send;
    /// The aggregate counted from the published reviews themselves.
    fn recompute(
        &self,
        product: ProductId,
    ) -> impl Future<Output = Result<Aggregate, StoreError>> + Send;
    /// One review by id, in any state.
    fn review(&self, id: ReviewId) -> impl Future<Output = Result<Review, StoreError>> + Send;
    /// The user's live (not deleted) review of the product.
    fn review_of(
        &self,
        user: UserId,
        product: ProductId,
    ) -> impl Future<Output = Result<Review, StoreError>> + Send;
    /// Published reviews of a product, newest first, with ids below `before`.
    fn page(
        &self,
        product: ProductId,
        before: Option<ReviewId>,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<Review>, StoreError>> + Send;
    /// The audit of one review, oldest first.
    fn audit(
        &self,
        review: ReviewId,
    ) -> impl Future<Output = Result<Vec<AuditEntry>, StoreError>> + Send;
    /// The helpful votes of one review, with each voter's account age.
    fn votes(&self, review: ReviewId)
    -> impl Future<Output = Result<Vec<Vote>, StoreError>> + Send;
    /// When the account was created.
    fn user_since(
        &self,
        user: UserId,
    ) -> impl Future<Output = Result<DateTime<Utc>, StoreError>> + Send;
    /// Reviews the user wrote at or after `since` (any state).
    fn reviews_by_since(
        &self,
        user: UserId,
        since: DateTime<Utc>,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;
    /// The texts of the product's latest `limit` reviews that are not deleted.
    fn recent_bodies(
        &self,
        product: ProductId,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
    /// The best-scored products of a category, by the stored score.
    fn top_rated(
        &self,
        category: &str,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<(ProductId, f64)>, StoreError>> + Send;
}
// ANCHOR_END: trait
