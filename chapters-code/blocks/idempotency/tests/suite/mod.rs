//! The behaviour suite: every key store, the same properties.
#![allow(dead_code)] // each test binary uses a different subset

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use block_idempotency::{
    ClaimError, Claimed, FinalAnswer, Fingerprint, FinishError, IdempotencyKey, KeyScope, KeyStore,
    RETENTION,
};
use tokio::sync::Barrier;

/// Runs each named suite function against a store made by `$make`.
#[macro_export]
macro_rules! suite {
    ($make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some((_guard, store)) = $make.await else { return };
                suite::$name(std::sync::Arc::new(store)).await;
            }
        )*
    };
}

/// Clients at once in the one-key race: more than the pool's connections.
pub const CONCURRENT_CLIENTS: usize = 32;
/// The lease in the takeover tests: short, so the test waits little.
pub const SHORT_LEASE: Duration = Duration::from_millis(300);

pub fn scope(account: &str, key: &str) -> KeyScope {
    KeyScope {
        account: account.into(),
        endpoint: "POST /checkout",
        key: IdempotencyKey::parse(key.as_bytes()).expect("test key"),
    }
}

pub fn print(body: &str) -> Fingerprint {
    Fingerprint::of("POST", "/checkout", "alice", body.as_bytes())
}

pub fn answer(status: u16, who: &str) -> FinalAnswer {
    FinalAnswer {
        status,
        body: serde_json::json!({ "by": who }),
    }
}

// ANCHOR: one_key_race
/// Many clients send one key at once: exactly one does the work; every
/// other one is told "in use" or gets that one's answer.
pub async fn one_key_many_concurrent_requests_run_once<K: KeyStore>(store: Arc<K>) {
    let ran = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(CONCURRENT_CLIENTS));
    let mut tasks = Vec::new();
    for i in 0..CONCURRENT_CLIENTS {
        let (store, ran, barrier) = (Arc::clone(&store), Arc::clone(&ran), Arc::clone(&barrier));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            match store
                .claim(
                    &scope("alice", "double-click"),
                    &print("body"),
                    Duration::from_secs(30),
                )
                .await
            {
                Ok(Claimed::New(lock)) => {
                    ran.fetch_add(1, Ordering::SeqCst);
                    // The work takes a while, so the others arrive during it.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    store
                        .finish(lock, &answer(201, &format!("client {i}")))
                        .await
                        .expect("the only holder finishes");
                    "ran"
                }
                Ok(Claimed::Replay(_)) => "replay",
                Err(ClaimError::KeyInUse) => "in use",
                other => panic!("unexpected claim {other:?}"),
            }
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.expect("no panic"));
    }
    assert_eq!(
        ran.load(Ordering::SeqCst),
        1,
        "exactly one request ran: {outcomes:?}"
    );
    assert_eq!(outcomes.iter().filter(|o| **o == "ran").count(), 1);
    // Afterwards every retry gets the one answer.
    let again = store
        .claim(
            &scope("alice", "double-click"),
            &print("body"),
            Duration::from_secs(30),
        )
        .await
        .expect("a replay");
    assert!(
        matches!(again, Claimed::Replay(a) if a.status == 201),
        "replayed"
    );
}
// ANCHOR_END: one_key_race

// ANCHOR: takeover
/// A lease runs out while its holder still works; a retry takes the key
/// over. The first holder's late finish is refused, and the final answer
/// is the taker's.
pub async fn a_takeover_fences_the_first_holder<K: KeyStore>(store: Arc<K>) {
    let k = scope("alice", "slow-provider");
    let Ok(Claimed::New(first)) = store.claim(&k, &print("body"), SHORT_LEASE).await else {
        panic!("the first claim is new");
    };
    // Still held: a retry now is told to come back.
    let early = store.claim(&k, &print("body"), SHORT_LEASE).await;
    assert!(matches!(early, Err(ClaimError::KeyInUse)), "{early:?}");
    tokio::time::sleep(SHORT_LEASE + Duration::from_millis(150)).await;
    let Ok(Claimed::TakenOver { lock: second, .. }) =
        store.claim(&k, &print("body"), SHORT_LEASE).await
    else {
        panic!("the lease ran out: the retry takes the key over");
    };
    // The first holder wakes up and tries to answer, and to unlock.
    let late = store.finish(first, &answer(201, "first")).await;
    assert!(
        matches!(late, Err(FinishError::Fenced)),
        "the first holder's finish must be refused, got {late:?}"
    );
    let unlock = store.release(first).await;
    assert!(matches!(unlock, Err(FinishError::Fenced)), "{unlock:?}");
    store
        .finish(second, &answer(201, "second"))
        .await
        .expect("the taker finishes");
    let replay = store.claim(&k, &print("body"), SHORT_LEASE).await;
    assert!(
        matches!(&replay, Ok(Claimed::Replay(a)) if a.body["by"] == "second"),
        "the final answer is the taker's: {replay:?}"
    );
    assert!(
        second.generation > first.generation,
        "the generation went up"
    );
}
// ANCHOR_END: takeover

// ANCHOR: purge
/// The purge deletes finished keys older than the retention and keeps an
/// unfinished one of the same age (its work awaits a retry to resume it).
pub async fn a_purge_keeps_unfinished_keys<K: KeyStore>(store: Arc<K>) {
    let ttl = Duration::from_secs(30);
    // An unfinished key, unlocked: what a provider timeout leaves behind.
    let Ok(Claimed::New(open)) = store
        .claim(&scope("alice", "timed-out"), &print("a"), ttl)
        .await
    else {
        panic!("new");
    };
    store.release(open).await.expect("release");
    let Ok(Claimed::New(done)) = store.claim(&scope("alice", "paid"), &print("b"), ttl).await
    else {
        panic!("new");
    };
    store
        .finish(done, &answer(201, "paid"))
        .await
        .expect("finish");
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Both keys are older than this retention.
    let purged = store.purge(Duration::from_millis(20)).await.expect("purge");
    assert_eq!(
        (purged.deleted, purged.unfinished_kept),
        (1, 1),
        "only the finished key is deleted; the unfinished one is counted and kept"
    );
    // The retry of the unfinished key finds it and resumes: no second order.
    let retry = store
        .claim(&scope("alice", "timed-out"), &print("a"), ttl)
        .await;
    assert!(
        matches!(retry, Ok(Claimed::TakenOver { .. })),
        "the retry resumes the unfinished key, got {retry:?}"
    );
}
// ANCHOR_END: purge

/// A finished key younger than the retention stays.
pub async fn a_young_finished_key_is_not_purged<K: KeyStore>(store: Arc<K>) {
    let k = scope("alice", "k-1");
    let Ok(Claimed::New(lock)) = store.claim(&k, &print("a"), SHORT_LEASE).await else {
        panic!("new");
    };
    store.finish(lock, &answer(201, "a")).await.expect("finish");
    assert_eq!(store.purge(RETENTION).await.expect("purge").deleted, 0);
    let replay = store.claim(&k, &print("a"), SHORT_LEASE).await;
    assert!(matches!(replay, Ok(Claimed::Replay(_))), "{replay:?}");
}

/// A stored answer, a 5xx too, is replayed; the key with another request is refused.
pub async fn a_finished_key_replays_its_answer_and_refuses_another_request<K: KeyStore>(
    store: Arc<K>,
) {
    let k = scope("alice", "k-1");
    let Ok(Claimed::New(lock)) = store.claim(&k, &print("a"), SHORT_LEASE).await else {
        panic!("new");
    };
    store
        .finish(lock, &answer(502, "provider"))
        .await
        .expect("finish");
    let replay = store.claim(&k, &print("a"), SHORT_LEASE).await;
    assert!(
        matches!(&replay, Ok(Claimed::Replay(a)) if a == &answer(502, "provider")),
        "{replay:?}"
    );
    let other = store.claim(&k, &print("b"), SHORT_LEASE).await;
    assert!(matches!(other, Err(ClaimError::KeyReused)), "{other:?}");
    // Finishing twice is refused too: a finished key has no holder.
    let twice = store.finish(lock, &answer(201, "again")).await;
    assert!(matches!(twice, Err(FinishError::Fenced)), "{twice:?}");
}

/// Another request with a key still held is refused, not run and not queued.
pub async fn a_held_key_is_in_use<K: KeyStore>(store: Arc<K>) {
    let k = scope("alice", "k-1");
    let first = store.claim(&k, &print("a"), Duration::from_secs(30)).await;
    assert!(matches!(first, Ok(Claimed::New(_))), "{first:?}");
    let second = store.claim(&k, &print("a"), Duration::from_secs(30)).await;
    assert!(matches!(second, Err(ClaimError::KeyInUse)), "{second:?}");
    // A mismatch is reported before "in use": the client has a bug to fix.
    let other = store.claim(&k, &print("b"), Duration::from_secs(30)).await;
    assert!(matches!(other, Err(ClaimError::KeyReused)), "{other:?}");
}

/// The same key string for two accounts, or two endpoints, is two keys.
pub async fn keys_are_scoped_by_account_and_endpoint<K: KeyStore>(store: Arc<K>) {
    let lease = Duration::from_secs(30);
    let alice = store
        .claim(&scope("alice", "same"), &print("a"), lease)
        .await;
    let bob = store.claim(&scope("bob", "same"), &print("a"), lease).await;
    let mut refund = scope("alice", "same");
    refund.endpoint = "POST /refund";
    let other = store.claim(&refund, &print("a"), lease).await;
    for c in [alice, bob, other] {
        assert!(matches!(c, Ok(Claimed::New(_))), "{c:?}");
    }
}

/// A released key is taken over at once by its retry (no wait for the lease).
pub async fn a_released_key_is_taken_over_at_once<K: KeyStore>(store: Arc<K>) {
    let k = scope("alice", "k-1");
    let Ok(Claimed::New(lock)) = store.claim(&k, &print("a"), Duration::from_secs(30)).await else {
        panic!("new");
    };
    store.release(lock).await.expect("release");
    let retry = store.claim(&k, &print("a"), Duration::from_secs(30)).await;
    assert!(
        matches!(&retry, Ok(Claimed::TakenOver { lock: l, recovery_point }) if l.generation == lock.generation + 1 && recovery_point == "started"),
        "{retry:?}"
    );
}
