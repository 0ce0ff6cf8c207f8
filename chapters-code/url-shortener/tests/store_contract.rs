//! The `LinkStore` contract, run against both adapters, plus the ticket
//! server's uniqueness under concurrency.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{NaiveDate, TimeDelta, Utc};
use tokio::task::JoinSet;
use url_shortener::codegen::{BlockAllocator, MemoryAllocator, RangeGenerator};
use url_shortener::domain::{
    Code, Expiry, ManagementToken, NewLink, TargetUrl, TokenHash, UrlPolicy,
};
use url_shortener::store::{DailyClicks, DayCount, DeleteOutcome, LinkStore, PgStore, StoreError};

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(url_shortener::store::MemoryStore::new()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(db) = testkit::postgres(Some(crate::common::schema())).await else { return };
                    super::$name(url_shortener::store::PgStore::new(db.pool_with(16).await)).await;
                }
            )*
        }
    };
}

contract!(
    insert_then_get_round_trips,
    a_code_is_unique_in_every_state,
    concurrent_inserts_of_one_code_have_one_winner,
    delete_reports_what_it_found,
    concurrent_deletes_have_one_winner,
    clicks_add_up_per_day,
    concurrent_flushes_of_one_counter_add_up,
);

/// The management token of every link these tests create.
fn token() -> TokenHash {
    ManagementToken::parse(&"ab".repeat(32))
        .expect("token")
        .hash()
}

fn link(code: &str, url: &str) -> NewLink {
    NewLink {
        code: Code::parse(code).expect("code"),
        target: TargetUrl::parse(url, &UrlPolicy::default()).expect("url"),
        created_at: Utc::now(),
        expires_at: None,
        token_hash: token(),
    }
}

fn code(s: &str) -> Code {
    Code::parse(s).expect("code")
}

async fn insert_then_get_round_trips<S: LinkStore>(store: S) {
    let now = Utc::now();
    let new = NewLink {
        expires_at: Some(Expiry::at(now + TimeDelta::days(3), now).expect("expiry")),
        ..link("abc", "https://example.com/x")
    };
    let inserted = store.insert(new).await.expect("insert");
    assert_eq!(store.get(&code("abc")).await, Ok(Some(inserted.clone())));
    assert_eq!(inserted.deleted_at, None);
    assert_eq!(
        store.get(&code("ABC")).await,
        Ok(None),
        "codes are case-sensitive"
    );
}

async fn a_code_is_unique_in_every_state<S: LinkStore>(store: S) {
    store
        .insert(link("taken", "https://example.com/1"))
        .await
        .expect("insert");
    assert_eq!(
        store.insert(link("taken", "https://example.com/2")).await,
        Err(StoreError::CodeTaken)
    );
    store
        .delete(&code("taken"), &token(), Utc::now())
        .await
        .expect("delete");
    assert_eq!(
        store.insert(link("taken", "https://example.com/3")).await,
        Err(StoreError::CodeTaken)
    );
    let kept = store
        .get(&code("taken"))
        .await
        .expect("get")
        .expect("still stored");
    assert_eq!(kept.target.as_str(), "https://example.com/1");
}

async fn concurrent_inserts_of_one_code_have_one_winner<S: LinkStore>(store: S) {
    let mut tasks = JoinSet::new();
    for i in 0..32 {
        let store = store.clone();
        tasks.spawn(async move {
            store
                .insert(link("race", &format!("https://example.com/{i}")))
                .await
        });
    }
    let mut ok = 0;
    while let Some(result) = tasks.join_next().await {
        match result.expect("task") {
            Ok(_) => ok += 1,
            Err(StoreError::CodeTaken) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(ok, 1);
}

async fn delete_reports_what_it_found<S: LinkStore>(store: S) {
    store
        .insert(link("gone", "https://example.com/"))
        .await
        .expect("insert");
    let at = Utc::now();
    let other = ManagementToken::parse(&"cd".repeat(32))
        .expect("token")
        .hash();
    assert_eq!(
        store.delete(&code("gone"), &other, at).await,
        Ok(DeleteOutcome::WrongToken)
    );
    assert_eq!(
        store
            .get(&code("gone"))
            .await
            .expect("get")
            .expect("kept")
            .deleted_at,
        None,
        "a wrong token changes nothing"
    );
    assert_eq!(
        store.delete(&code("gone"), &token(), at).await,
        Ok(DeleteOutcome::Deleted)
    );
    assert_eq!(
        store.delete(&code("gone"), &token(), at).await,
        Ok(DeleteOutcome::AlreadyDeleted)
    );
    assert_eq!(
        store.delete(&code("never"), &token(), at).await,
        Ok(DeleteOutcome::NotFound)
    );
    assert!(
        store
            .get(&code("gone"))
            .await
            .expect("get")
            .expect("kept")
            .deleted_at
            .is_some()
    );
}

/// 32 concurrent deletes of one link: one `Deleted`, 31 `AlreadyDeleted`.
/// On PostgreSQL, `deleted_at IS NULL` is re-checked on the locked row.
async fn concurrent_deletes_have_one_winner<S: LinkStore>(store: S) {
    store
        .insert(link("contested", "https://example.com/"))
        .await
        .expect("insert");
    let mut tasks = JoinSet::new();
    for _ in 0..32 {
        let store = store.clone();
        tasks.spawn(async move { store.delete(&code("contested"), &token(), Utc::now()).await });
    }
    let mut outcomes = Vec::new();
    while let Some(done) = tasks.join_next().await {
        outcomes.push(done.expect("task").expect("delete"));
    }
    let won = outcomes
        .iter()
        .filter(|o| **o == DeleteOutcome::Deleted)
        .count();
    let late = outcomes
        .iter()
        .filter(|o| **o == DeleteOutcome::AlreadyDeleted)
        .count();
    assert_eq!((won, late), (1, 31), "{outcomes:?}");
}

/// 16 flushers add to the same (link, day) counter at once, 20 batches of
/// one click each: the counter holds all 320. On PostgreSQL the upsert adds
/// under the row's lock, so no flush overwrites another.
async fn concurrent_flushes_of_one_counter_add_up<S: LinkStore>(store: S) {
    store
        .insert(link("viral", "https://example.com/"))
        .await
        .expect("insert");
    let day = NaiveDate::from_ymd_opt(2026, 3, 1).expect("date");
    let mut flushers = JoinSet::new();
    for _ in 0..16 {
        let store = store.clone();
        flushers.spawn(async move {
            for _ in 0..20 {
                let batch = [DailyClicks {
                    code: code("viral"),
                    day,
                    count: 1,
                }];
                store.add_clicks(&batch).await.expect("flush");
            }
        });
    }
    while let Some(done) = flushers.join_next().await {
        done.expect("flusher");
    }
    assert_eq!(
        store.daily_clicks(&code("viral")).await,
        Ok(vec![DayCount { day, count: 320 }])
    );
}

async fn clicks_add_up_per_day<S: LinkStore>(store: S) {
    store
        .insert(link("clicked", "https://example.com/"))
        .await
        .expect("insert");
    let day = |d| NaiveDate::from_ymd_opt(2026, 3, d).expect("date");
    let batch = |d, count| DailyClicks {
        code: code("clicked"),
        day: day(d),
        count,
    };
    store
        .add_clicks(&[batch(2, 5), batch(1, 1)])
        .await
        .expect("first batch");
    store
        .add_clicks(&[batch(2, 7)])
        .await
        .expect("second batch");
    // Clicks for a code that does not exist are ignored, not an error.
    let stray = DailyClicks {
        code: code("nobody"),
        day: day(1),
        count: 3,
    };
    store.add_clicks(&[stray]).await.expect("stray batch");
    store.add_clicks(&[]).await.expect("empty batch");
    assert_eq!(
        store.daily_clicks(&code("clicked")).await,
        Ok(vec![
            DayCount {
                day: day(1),
                count: 1
            },
            DayCount {
                day: day(2),
                count: 12
            }
        ])
    );
    assert_eq!(store.daily_clicks(&code("nobody")).await, Ok(vec![]));
}

// ANCHOR: ticket_test
/// Eight nodes, each with its own generator (and, on PostgreSQL, its own
/// connection pool), draw 2,000 ids each in blocks of 50 at the same time:
/// no id is handed out twice.
async fn nodes_never_share_an_id(allocators: Vec<Arc<dyn BlockAllocator>>) {
    let mut nodes = JoinSet::new();
    for allocator in allocators {
        nodes.spawn(async move {
            let node = RangeGenerator::new(allocator, 50);
            let mut ids = Vec::with_capacity(2_000);
            for _ in 0..2_000 {
                ids.push(node.next_id().await.expect("id"));
                tokio::task::yield_now().await; // interleave the nodes
            }
            ids
        });
    }
    let mut seen = HashSet::new();
    while let Some(ids) = nodes.join_next().await {
        for id in ids.expect("node") {
            assert!(seen.insert(id), "id {id} was handed out twice");
        }
    }
    assert_eq!(seen.len(), 16_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_never_share_an_id_in_process() {
    let shared: Arc<dyn BlockAllocator> = Arc::new(MemoryAllocator::default());
    nodes_never_share_an_id(vec![shared; 8]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_never_share_an_id_on_postgres() {
    let Some(db) = testkit::postgres(Some(common::schema())).await else {
        return;
    };
    let mut allocators: Vec<Arc<dyn BlockAllocator>> = Vec::new();
    for _ in 0..8 {
        allocators.push(Arc::new(
            PgStore::new(db.pool_with(2).await).allocator("links"),
        ));
    }
    nodes_never_share_an_id(allocators).await;
}
// ANCHOR_END: ticket_test

/// The schema is idempotent: applying it again (as every service start does) changes nothing.
#[tokio::test]
async fn migrate_twice_is_harmless() {
    let Some(db) = testkit::postgres(None).await else {
        return;
    };
    let store = PgStore::new(db.pool.clone());
    store.migrate().await.expect("first");
    store
        .insert(link("kept", "https://example.com/"))
        .await
        .expect("insert");
    store.migrate().await.expect("second");
    assert!(store.get(&code("kept")).await.expect("get").is_some());
}

// ANCHOR: no_constraint_test
/// The alias race through the use case, on the real schema and on a scratch
/// copy without `links_code_key`: one winner with the constraint, more than
/// one without it. The constraint, not the timing, is what the behaviour
/// test `alias_race_has_one_winner` relies on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_the_unique_constraint_the_alias_race_has_many_winners() {
    use url_shortener::race::{CONTENDERS, alias_race, schema_without_unique_code};
    let Some(guarded) = testkit::postgres(Some(common::schema())).await else {
        return;
    };
    let Some(scratch) = testkit::postgres(None).await else {
        return;
    };
    scratch
        .apply_sql(&schema_without_unique_code().expect("the constraint line"))
        .await
        .expect("scratch schema");
    let with = alias_race(PgStore::new(guarded.pool_with(16).await))
        .await
        .expect("race");
    assert_eq!(
        (with.winners, with.conflicts, with.rows),
        (1, CONTENDERS - 1, 1)
    );
    let without = alias_race(PgStore::new(scratch.pool_with(16).await))
        .await
        .expect("race");
    assert!(without.winners > 1, "{without:?}");
    assert_eq!(without.rows, without.winners as i64);
}
// ANCHOR_END: no_constraint_test

// ANCHOR: schema_test
/// The database refuses what the domain types refuse, even from a buggy
/// client, and accepts the longest values the domain types accept.
#[tokio::test]
async fn the_schema_enforces_the_domain_rules() {
    use url_shortener::domain::{CODE_MAX_LEN, TARGET_MAX_LEN};
    let Some(db) = testkit::postgres(Some(common::schema())).await else {
        return;
    };
    let insert = "INSERT INTO links (code, target, created_at, expires_at, token_hash)
                  VALUES ($1, $2, now(), now() + $3 * interval '1 s', $4)";
    let url_of_len = |n: usize| format!("https://e.com/{}", "a".repeat(n - "https://e.com/".len()));
    let good_hash = vec![0u8; 32];
    let bad: Vec<(String, String, i32, Vec<u8>, &str)> = vec![
        (
            "a/b".into(),
            "https://e.com/".into(),
            60,
            good_hash.clone(),
            "links_code_format",
        ),
        (
            "".into(),
            "https://e.com/".into(),
            60,
            good_hash.clone(),
            "links_code_format",
        ),
        (
            "c".repeat(CODE_MAX_LEN + 1),
            "https://e.com/".into(),
            60,
            good_hash.clone(),
            "links_code_format",
        ),
        (
            "ok1".into(),
            "javascript:alert(1)".into(),
            60,
            good_hash.clone(),
            "links_target_format",
        ),
        (
            "ok2".into(),
            url_of_len(TARGET_MAX_LEN + 1),
            60,
            good_hash.clone(),
            "links_target_format",
        ),
        (
            "ok3".into(),
            "https://e.com/".into(),
            -1,
            good_hash.clone(),
            "links_expires_after_creation",
        ),
        (
            "ok4".into(),
            "https://e.com/".into(),
            60,
            vec![0u8; 16],
            "links_token_hash_length",
        ),
    ];
    for (code, target, ttl, hash, constraint) in &bad {
        let err = sqlx::query(insert)
            .bind(code)
            .bind(target)
            .bind(ttl)
            .bind(hash)
            .execute(&db.pool)
            .await
            .expect_err(constraint);
        let db_err = err.as_database_error().expect("a database error");
        assert_eq!(
            db_err.constraint(),
            Some(*constraint),
            "{code} {}",
            target.len()
        );
    }
    // The limits are inclusive: the longest code and target are stored.
    sqlx::query(insert)
        .bind("c".repeat(CODE_MAX_LEN))
        .bind(url_of_len(TARGET_MAX_LEN))
        .bind(60)
        .bind(&good_hash)
        .execute(&db.pool)
        .await
        .expect("the longest valid code and target");
}
// ANCHOR_END: schema_test
