//! The `LinkStore` contract, run against both adapters, plus the ticket
//! server's uniqueness under concurrency.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{NaiveDate, TimeDelta, Utc};
use tokio::task::JoinSet;
use url_shortener::codegen::{BlockAllocator, MemoryAllocator, RangeGenerator};
use url_shortener::domain::{Code, Expiry, NewLink, TargetUrl, UrlPolicy};
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
    clicks_add_up_per_day,
);

fn link(code: &str, url: &str) -> NewLink {
    NewLink {
        code: Code::parse(code).expect("code"),
        target: TargetUrl::parse(url, &UrlPolicy::default()).expect("url"),
        created_at: Utc::now(),
        expires_at: None,
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
        .delete(&code("taken"), Utc::now())
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
    assert_eq!(
        store.delete(&code("gone"), at).await,
        Ok(DeleteOutcome::Deleted)
    );
    assert_eq!(
        store.delete(&code("gone"), at).await,
        Ok(DeleteOutcome::AlreadyDeleted)
    );
    assert_eq!(
        store.delete(&code("never"), at).await,
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

/// The database refuses what the domain types refuse, even from a buggy client.
#[tokio::test]
async fn the_schema_enforces_the_domain_rules() {
    let Some(db) = testkit::postgres(Some(common::schema())).await else {
        return;
    };
    let bad = [
        (
            "INSERT INTO links (code, target, created_at) VALUES ('a/b', 'https://e.com/', now())",
            "links_code_format",
        ),
        (
            "INSERT INTO links (code, target, created_at) VALUES ('', 'https://e.com/', now())",
            "links_code_format",
        ),
        (
            "INSERT INTO links (code, target, created_at) VALUES ('ok1', 'javascript:alert(1)', now())",
            "links_target_format",
        ),
        (
            "INSERT INTO links (code, target, created_at, expires_at) VALUES ('ok2', 'https://e.com/', now(), now() - interval '1 s')",
            "links_expires_after_creation",
        ),
    ];
    for (sql, constraint) in bad {
        let err = sqlx::query(sql).execute(&db.pool).await.expect_err(sql);
        let db_err = err.as_database_error().expect("a database error");
        assert_eq!(db_err.constraint(), Some(constraint), "{sql}");
    }
}
