//! One behaviour suite, run against the in-memory store and PostgreSQL.

mod common;

use common::*;
use ratings::domain::{ModEvent, ModState, ProductId, ReviewId, UserId};
use ratings::store::{ReviewStore, StoreError, Verdict};

/// Runs the body against both adapters: `memory` and `postgres` variants.
macro_rules! both {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test]
            async fn memory() {
                super::$body(&ratings::store::MemoryStore::new()).await;
            }
            #[tokio::test]
            async fn postgres() {
                let Some((_db, store)) = super::pg_store(4).await else {
                    return;
                };
                super::$body(&store).await;
            }
        }
    };
}

both!(edits_and_deletes_flow_into_the_aggregate, edits_and_deletes);
both!(
    only_a_verified_buyer_may_review_and_only_once,
    verified_once
);
both!(moderation_moves_the_aggregate_and_is_audited, moderation);
both!(one_helpful_vote_per_voter_and_not_on_ones_own, votes);
both!(pages_are_newest_first_and_never_repeat, pages);
both!(a_held_review_is_pending_and_not_counted, held);
both!(top_rated_orders_by_the_stored_score, top_rated);

async fn edits_and_deletes<S: ReviewStore>(s: &S) {
    buyers(s, 1, [1, 2, 3]).await;
    s.submit(review(1, 1, 5), approve(), t0())
        .await
        .expect("submit");
    s.submit(review(2, 1, 3), approve(), t0())
        .await
        .expect("submit");
    let a = s.aggregate(ProductId(1)).await.expect("agg");
    assert_eq!((a.count, a.sum, a.stars), (2, 8, [0, 0, 1, 0, 1]));
    s.edit(
        UserId(1),
        ProductId(1),
        stars(1),
        body("changed my mind"),
        t0(),
    )
    .await
    .expect("edit");
    let a = s.aggregate(ProductId(1)).await.expect("agg");
    assert_eq!((a.count, a.sum, a.stars), (2, 4, [1, 0, 1, 0, 0]));
    let r = s.review_of(UserId(2), ProductId(1)).await.expect("mine");
    let d = s
        .moderate(r.id, ModEvent::Delete, "author", "gone", t0())
        .await
        .expect("delete");
    assert_eq!(d.state, ModState::Deleted);
    let a = s.aggregate(ProductId(1)).await.expect("agg");
    assert_eq!((a.count, a.sum, a.stars), (1, 1, [1, 0, 0, 0, 0]));
    // Soft: the row is still there, in state deleted; an edit no longer finds it.
    assert_eq!(s.review(r.id).await.expect("kept").state, ModState::Deleted);
    assert!(matches!(
        s.edit(UserId(2), ProductId(1), stars(4), body("back"), t0())
            .await,
        Err(StoreError::NoReviewOf { .. })
    ));
    agrees(s, 1).await;
}

async fn verified_once<S: ReviewStore>(s: &S) {
    buyers(s, 1, [1]).await;
    s.add_user(UserId(9), t0()).await.expect("user");
    assert!(matches!(
        s.submit(review(9, 1, 5), approve(), t0()).await,
        Err(StoreError::NotPurchased { .. })
    ));
    assert!(matches!(
        s.submit(review(1, 77, 5), approve(), t0()).await,
        Err(StoreError::UnknownProduct(_))
    ));
    s.submit(review(1, 1, 4), approve(), t0())
        .await
        .expect("first");
    assert!(matches!(
        s.submit(review(1, 1, 2), approve(), t0()).await,
        Err(StoreError::AlreadyReviewed { .. })
    ));
    // The refused submits changed nothing.
    let a = s.aggregate(ProductId(1)).await.expect("agg");
    assert_eq!((a.count, a.sum), (1, 4));
    assert_eq!(s.page(ProductId(1), None, 10).await.expect("page").len(), 1);
}

async fn moderation<S: ReviewStore>(s: &S) {
    buyers(s, 1, [1]).await;
    let r = s
        .submit(review(1, 1, 5), approve(), t0())
        .await
        .expect("submit");
    assert_eq!(r.state, ModState::Published);
    s.moderate(r.id, ModEvent::Remove, "moderator:ann", "spam link", t0())
        .await
        .expect("remove");
    assert_eq!(s.aggregate(ProductId(1)).await.expect("agg").count, 0);
    // An illegal transition is refused and changes nothing.
    assert!(matches!(
        s.moderate(r.id, ModEvent::Approve, "moderator:ann", "oops", t0())
            .await,
        Err(StoreError::Illegal(_))
    ));
    s.moderate(
        r.id,
        ModEvent::Appeal,
        "author",
        "it was a real review",
        t0(),
    )
    .await
    .expect("appeal");
    s.moderate(
        r.id,
        ModEvent::Approve,
        "moderator:bob",
        "appeal upheld",
        t0(),
    )
    .await
    .expect("approve");
    assert_eq!(s.aggregate(ProductId(1)).await.expect("agg").count, 1);
    let trail: Vec<(String, ModState, ModState)> = s
        .audit(r.id)
        .await
        .expect("audit")
        .into_iter()
        .map(|e| (e.actor, e.from, e.to))
        .collect();
    use ModState::*;
    assert_eq!(
        trail,
        vec![
            ("rules".into(), Pending, Published),
            ("moderator:ann".into(), Published, Removed),
            ("author".into(), Removed, Appealed),
            ("moderator:bob".into(), Appealed, Published),
        ]
    );
    assert!(matches!(
        s.moderate(ReviewId(999), ModEvent::Remove, "m", "r", t0())
            .await,
        Err(StoreError::ReviewNotFound(_))
    ));
    agrees(s, 1).await;
}

async fn votes<S: ReviewStore>(s: &S) {
    buyers(s, 1, [1, 2]).await;
    let r = s
        .submit(review(1, 1, 5), approve(), t0())
        .await
        .expect("submit");
    assert_eq!(s.vote(UserId(2), r.id, t0()).await.expect("vote"), 1);
    assert!(matches!(
        s.vote(UserId(2), r.id, t0()).await,
        Err(StoreError::AlreadyVoted { .. })
    ));
    assert!(matches!(
        s.vote(UserId(1), r.id, t0()).await,
        Err(StoreError::OwnReview)
    ));
    assert!(matches!(
        s.vote(UserId(55), r.id, t0()).await,
        Err(StoreError::UnknownUser(_))
    ));
    assert!(matches!(
        s.vote(UserId(2), ReviewId(999), t0()).await,
        Err(StoreError::ReviewNotFound(_))
    ));
    assert_eq!(s.review(r.id).await.expect("r").helpful, 1);
    assert_eq!(s.votes(r.id).await.expect("votes").len(), 1);
}

async fn pages<S: ReviewStore>(s: &S) {
    buyers(s, 1, 1..=25).await;
    for u in 1..=25 {
        let verdict = if u % 5 == 0 {
            Verdict::hold("test")
        } else {
            approve()
        };
        s.submit(review(u, 1, 1 + u % 5), verdict, t0())
            .await
            .expect("submit");
    }
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = s.page(ProductId(1), before, 7).await.expect("page");
        if page.is_empty() {
            break;
        }
        assert!(page.windows(2).all(|w| w[0].id > w[1].id), "newest first");
        before = page.last().map(|r| r.id);
        seen.extend(page.into_iter().map(|r| r.id));
    }
    let mut dedup = seen.clone();
    dedup.dedup();
    assert_eq!(seen, dedup);
    // Every published review once: 20 of 25 (every fifth was held).
    assert_eq!(seen.len(), 20);
}

async fn held<S: ReviewStore>(s: &S) {
    buyers(s, 1, [1]).await;
    let r = s
        .submit(review(1, 1, 5), Verdict::hold("near-duplicate"), t0())
        .await
        .expect("submit");
    assert_eq!(r.state, ModState::Pending);
    assert_eq!(s.aggregate(ProductId(1)).await.expect("agg").count, 0);
    // The hold is audited too: who held it and why.
    let trail = s.audit(r.id).await.expect("audit");
    assert_eq!(trail.len(), 1);
    assert_eq!(
        (
            trail[0].actor.as_str(),
            trail[0].reason.as_str(),
            trail[0].from,
            trail[0].to
        ),
        (
            "rules",
            "near-duplicate",
            ModState::Pending,
            ModState::Pending
        )
    );
    s.moderate(
        r.id,
        ModEvent::Approve,
        "classifier",
        "log-odds below zero",
        t0(),
    )
    .await
    .expect("approve");
    assert_eq!(s.aggregate(ProductId(1)).await.expect("agg").count, 1);
}

async fn top_rated<S: ReviewStore>(s: &S) {
    buyers(s, 1, 1..=10).await;
    buyers(s, 2, 1..=10).await;
    s.add_product(ProductId(3), "garden")
        .await
        .expect("other category");
    for u in 1..=10 {
        s.submit(review(u, 1, 5), approve(), t0())
            .await
            .expect("submit");
    }
    s.submit(review(1, 2, 5), approve(), t0())
        .await
        .expect("submit");
    let top = s.top_rated("kitchen", 10).await.expect("top");
    let ids: Vec<i64> = top.iter().map(|(p, _)| p.0).collect();
    // Ten 5-star reviews beat one: the Wilson bound, not the mean.
    assert_eq!(ids, vec![1, 2]);
    let agg = s.aggregate(ProductId(1)).await.expect("agg");
    assert!((top[0].1 - agg.score()).abs() < 1e-12);
}
