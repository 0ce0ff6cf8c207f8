//! The HTTP service: named errors, the cold-start path, the ranking
//! deadline, the business filters, and one model version per answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use recommendations::ann::versioned::Versioned;
use recommendations::candidates::two_tower::TrainConfig;
use recommendations::data::{Config, Dataset, Kind, generate};
use recommendations::model::{Catalog, Model, build};
use recommendations::rank::{Features, Rank};
use recommendations::service::{AppState, Recommendations, router};
use recommendations::store::{Interactions, MemoryStore};
use tower::ServiceExt;

fn world() -> (Dataset, Model) {
    let data = generate(Config::TINY);
    let model = build(&data, TrainConfig::BOOK, 1, 1);
    (data, model)
}

async fn store_of(data: &Dataset) -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::new());
    for (u, events) in data.train.iter().enumerate() {
        for e in events {
            store
                .record(u as i64 + 1, i64::from(e.item) + 1, e.kind)
                .await
                .expect("memory");
        }
    }
    store
}

async fn get(app: &axum::Router, uri: &str) -> (StatusCode, serde_json::Value) {
    let res = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let status = res.status();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    )
}

fn problem_type(body: &serde_json::Value) -> &str {
    body["type"]
        .as_str()
        .and_then(|t| t.rsplit('#').next())
        .unwrap_or("")
}

#[tokio::test]
async fn every_bad_input_is_a_named_problem() {
    let (data, model) = world();
    let app = router(AppState::new(
        Arc::new(Versioned::new(model)),
        store_of(&data).await,
    ));
    for (uri, ty) in [
        ("/users/1/recommendations?k=0", "invalid-k"),
        ("/users/1/recommendations?k=51", "invalid-k"),
        ("/users/1/recommendations?k=ten", "invalid-k"),
        ("/users/1/recommendations?k=", "invalid-k"),
        ("/users/1/recommendations?k=-3", "invalid-k"),
        ("/users/abc/recommendations", "invalid-user-id"),
        ("/users/0/recommendations", "invalid-user-id"),
        ("/users/-1/recommendations", "invalid-user-id"),
        ("/nowhere", "no-such-route"),
    ] {
        let (status, body) = get(&app, uri).await;
        assert!(status.is_client_error(), "{uri}: {status}");
        assert_eq!(problem_type(&body), ty, "{uri}: {body}");
    }
}

#[tokio::test]
async fn an_unknown_user_gets_the_cold_start_path() {
    let (data, model) = world();
    let app = router(AppState::new(
        Arc::new(Versioned::new(model)),
        store_of(&data).await,
    ));
    let (status, body) = get(&app, "/users/999999/recommendations?k=5").await;
    assert_eq!(status, StatusCode::OK);
    let r: Recommendations = serde_json::from_value(body).expect("shape");
    assert_eq!(r.path, "cold-start");
    assert_eq!(r.items.len(), 5);
    assert!(r.items.iter().all(|i| i.stage == "popularity"));
}

#[tokio::test]
async fn a_known_user_gets_personal_items_never_out_of_stock_bought_or_seen() {
    let (data, model) = world();
    let app = router(AppState::new(
        Arc::new(Versioned::new(model)),
        store_of(&data).await,
    ));
    let mut stages = std::collections::HashSet::new();
    for u in 0..40usize {
        let (status, body) = get(&app, &format!("/users/{}/recommendations?k=20", u + 1)).await;
        assert_eq!(status, StatusCode::OK);
        let r: Recommendations = serde_json::from_value(body).expect("shape");
        assert_eq!(r.path, "personal");
        assert!(r.ranked);
        assert_eq!(r.items.len(), 20);
        let seen: Vec<i64> = data.train[u]
            .iter()
            .map(|e| i64::from(e.item) + 1)
            .collect();
        for item in &r.items {
            let ix = (item.item - 1) as usize;
            assert!(data.in_stock[ix], "out of stock {}", item.item);
            assert!(!seen.contains(&item.item), "already seen {}", item.item);
            stages.insert(item.stage.clone());
        }
    }
    assert!(stages.contains("two-tower"), "{stages:?}");
}

#[tokio::test]
async fn an_item_bought_after_training_is_never_recommended() {
    // The already-bought filter reads the live history, not the model.
    let (data, model) = world();
    let store = store_of(&data).await;
    let app = router(AppState::new(
        Arc::new(Versioned::new(model)),
        store.clone(),
    ));
    let (_, body) = get(&app, "/users/3/recommendations?k=10").await;
    let before: Recommendations = serde_json::from_value(body).expect("shape");
    let top = before.items[0].item;
    store.record(3, top, Kind::Purchase).await.expect("memory");
    let (_, body) = get(&app, "/users/3/recommendations?k=10").await;
    let after: Recommendations = serde_json::from_value(body).expect("shape");
    assert!(after.items.iter().all(|i| i.item != top));
}

/// A ranker that takes far longer than the deadline.
struct Slow(Duration);

impl Rank for Slow {
    fn scores(&self, features: &[Features]) -> Vec<f32> {
        std::thread::sleep(self.0);
        vec![0.0; features.len()]
    }
}

#[tokio::test]
async fn a_slow_ranker_falls_back_to_the_retrieval_order_within_the_deadline() {
    let (data, model) = world();
    let store = store_of(&data).await;
    let model = Arc::new(Versioned::new(model));
    let slow = AppState::new(model.clone(), store.clone())
        .with_ranker(Arc::new(Slow(Duration::from_secs(3))));
    let app = router(slow);
    let started = Instant::now();
    let (status, body) = get(&app, "/users/2/recommendations?k=10").await;
    let took = started.elapsed();
    assert_eq!(status, StatusCode::OK);
    let r: Recommendations = serde_json::from_value(body).expect("shape");
    assert!(!r.ranked, "the answer must say it was not ranked");
    assert_eq!(r.items.len(), 10);
    assert!(took < Duration::from_secs(1), "took {took:?}");
    // The fallback is the retrieval order: scores do not increase down the list
    // before MMR moves an item, so at least the first item is the best retrieved.
    let first = &r.items[0];
    assert_eq!(first.stage, "two-tower");
}

/// The same model under another version, its ids renumbered to
/// `version * 1,000,000 + 1 ..` (a cheap stand-in for a rebuilt index).
fn rebadged(model: &Model, version: u64) -> Model {
    let catalog = model.catalog.read().expect("lock").clone();
    let base = version as i64 * 1_000_000 + 1;
    let ids = (0..catalog.ids.len() as i64).map(|i| base + i).collect();
    Model {
        version,
        popularity: model.popularity.clone(),
        co_occurrence: model.co_occurrence.clone(),
        towers: model.towers.clone(),
        ranker: model.ranker.clone(),
        catalog: std::sync::RwLock::new(Catalog::new(
            catalog.index,
            ids,
            catalog.category,
            catalog.in_stock,
        )),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn answers_during_model_swaps_come_from_one_version() {
    // An answer that mixed two versions would hold ids whose prefix
    // differs from the version it reports. The store's histories use
    // version 1's ids, so under later versions users take the cold-start
    // path: every answer still runs retrieval, ranking and the id lookup.
    let data = generate(Config::TINY);
    let store = Arc::new(MemoryStore::new());
    for (u, events) in data.train.iter().enumerate() {
        for e in events {
            store
                .record(u as i64 + 1, 1_000_001 + i64::from(e.item), e.kind)
                .await
                .expect("memory");
        }
    }
    let base = build(&data, TrainConfig::BOOK, 1, 1_000_001);
    let handle = Arc::new(Versioned::new(rebadged(&base, 1)));
    let app = router(AppState::new(handle.clone(), store));
    let swaps: u64 = 400;
    let requests: Vec<_> = (0..4)
        .map(|t| {
            let app = app.clone();
            tokio::spawn(async move {
                let mut versions = std::collections::HashSet::new();
                for n in 0..60 {
                    let u = 1 + (t * 60 + n) % 200;
                    let (status, body) =
                        get(&app, &format!("/users/{u}/recommendations?k=10")).await;
                    assert_eq!(status, StatusCode::OK);
                    let r: Recommendations = serde_json::from_value(body).expect("shape");
                    for i in &r.items {
                        assert_eq!(
                            i.item / 1_000_000,
                            r.version as i64,
                            "a mixed answer: {r:?}"
                        );
                    }
                    versions.insert(r.version);
                }
                versions
            })
        })
        .collect();
    let swapper = tokio::task::spawn_blocking(move || {
        for v in 2..=swaps {
            handle.swap(rebadged(&base, v)).expect("newer");
            std::thread::sleep(Duration::from_micros(200));
        }
    });
    let mut seen = std::collections::HashSet::new();
    for r in requests {
        seen.extend(r.await.expect("a request task"));
    }
    swapper.await.expect("swapper");
    assert!(seen.len() >= 2, "saw only {seen:?}");
}

#[tokio::test]
async fn an_item_inserted_after_the_build_is_known_at_once() {
    // No rebuild: the new item joins the live index and the id map, so a
    // user whose only event is that item gets the personal path, and the
    // item is findable by its own vector.
    let (data, model) = world();
    let new_id = 900_000_001;
    let ix = model.insert_item(
        new_id,
        data.item_features.row(0),
        data.item_category[0],
        true,
    );
    {
        let catalog = model.catalog.read().expect("lock");
        assert_eq!(catalog.index_of(new_id), Some(ix));
        let v = catalog.index.vector(ix as usize).to_vec();
        assert_eq!(catalog.index.search(&v, 1, 64)[0].0, ix);
    }
    let store = store_of(&data).await;
    store
        .record(777_777, new_id, Kind::View)
        .await
        .expect("memory");
    let app = router(AppState::new(Arc::new(Versioned::new(model)), store));
    let (status, body) = get(&app, "/users/777777/recommendations?k=5").await;
    assert_eq!(status, StatusCode::OK);
    let r: Recommendations = serde_json::from_value(body).expect("shape");
    // The new item has no row in the user tower's table, so its history
    // gives no user vector: the cold-start path, not a "personal" answer
    // searched with a zero vector.
    assert_eq!(r.path, "cold-start", "{r:?}");
    assert!(r.items.iter().all(|i| i.stage == "popularity"), "{r:?}");
    assert!(
        r.items.iter().all(|i| i.item != new_id),
        "the seen item itself is excluded"
    );
}

#[tokio::test]
async fn after_a_swap_answers_are_ranked_by_the_new_versions_ranker() {
    // The ranker is part of the model: a swap must change the weights that
    // order the answer, not only the index. v2 is v1 with the ranker's
    // weights negated; its answers must equal those of a service that
    // started on v2.
    let (data, v1) = world();
    let store = store_of(&data).await;
    let mut v2 = rebadged(&v1, 2);
    for w in &mut v2.ranker.weights {
        *w = -*w;
    }
    let started_on_v2 = rebadged(&v2, 2);
    let handle = Arc::new(Versioned::new(rebadged(&v1, 1)));
    let swapped = router(AppState::new(handle.clone(), store.clone()));
    handle.swap(v2).expect("newer");
    let direct = router(AppState::new(
        Arc::new(Versioned::new(started_on_v2)),
        store,
    ));
    for u in 1..=10 {
        let uri = format!("/users/{u}/recommendations?k=10");
        let (_, a) = get(&swapped, &uri).await;
        let (_, b) = get(&direct, &uri).await;
        assert_eq!(
            a, b,
            "user {u}: the swapped service must rank with v2's weights"
        );
    }
}
