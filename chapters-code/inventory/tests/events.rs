//! The availability read model over NATS JetStream: a consumer that dies
//! between applying and acking loses nothing and counts nothing twice (the
//! reader process lives on and keeps its model; only its consumer restarts),
//! and a reader process that restarts rebuilds its model from the stream.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use chrono::TimeDelta;
use common::*;
use inventory::domain::{Balance, StockKey};
use inventory::events::{
    DeltaModel, ReadModel, Relay, StockEvent, consume_batch, consumer, ensure_stream, lag_run,
};
use inventory::store::{InventoryStore, PgStore};

struct Nats {
    js: async_nats::jetstream::Context,
    stream: String,
    prefix: String,
}

impl Nats {
    async fn connect() -> Option<Nats> {
        let url = testkit::nats().await?;
        let client = async_nats::connect(url).await.expect("NATS connect");
        let tag = uuid::Uuid::new_v4().simple().to_string();
        Some(Nats {
            js: async_nats::jetstream::new(client),
            stream: format!("INV_{}", &tag[..12]),
            prefix: format!("inv{}", &tag[..12]),
        })
    }
}

impl Nats {
    /// Deletes this test's stream (and its consumers).
    async fn cleanup(self) {
        let _ = self.js.delete_stream(&self.stream).await;
    }
}

/// Receives and reserves on three positions; returns them.
async fn some_history(store: &PgStore) -> Vec<StockKey> {
    let keys = vec![key("A", "W1"), key("B", "W1"), key("C", "W2")];
    for k in &keys {
        stocked(store, k, 20).await;
    }
    let mut ids = Vec::new();
    for round in 0..6 {
        for k in &keys {
            ids.push(
                store
                    .reserve(k, qty(1 + round % 3), TimeDelta::minutes(10), t0())
                    .await
                    .expect("reserve")
                    .id,
            );
        }
    }
    for (i, id) in ids.iter().enumerate() {
        match i % 3 {
            0 => drop(store.commit(*id, t0()).await.expect("commit")),
            1 => drop(store.release(*id, t0()).await.expect("release")),
            _ => {}
        }
    }
    keys
}

async fn relay_all(relay: &Relay) -> usize {
    let mut n = 0;
    loop {
        let k = relay.relay_once(100).await.expect("relay");
        if k == 0 {
            return n;
        }
        n += k;
    }
}

// ANCHOR: restart_test
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_restart_loses_and_double_counts_nothing() {
    let Some((_db, store)) = pg_store(4).await else {
        return;
    };
    let Some(nats) = Nats::connect().await else {
        return;
    };
    let stream = ensure_stream(&nats.js, &nats.stream, &nats.prefix)
        .await
        .expect("stream");
    let keys = some_history(&store).await;
    let relay = Relay::new(store.pool().clone(), nats.js.clone(), &nats.prefix);
    let published = relay_all(&relay).await;
    assert!(published > 20);

    let ack_wait = Duration::from_millis(500);
    let mut model = ReadModel::default();
    let mut naive = DeltaModel::default();
    let mut seen: HashMap<i64, (u32, StockEvent)> = HashMap::new();
    let mut record = |e: &StockEvent, model: &mut ReadModel, naive: &mut DeltaModel| {
        model.apply(e);
        naive.apply(e);
        seen.entry(e.movement_id).or_insert((0, e.clone())).0 += 1;
    };
    // The first consumer applies 20 events but acks only 15, then dies.
    {
        let c = consumer(&stream, "availability", ack_wait)
            .await
            .expect("consumer");
        let got = consume_batch(&c, 20, Duration::from_secs(2), 15, |e| {
            record(e, &mut model, &mut naive)
        })
        .await
        .expect("batch");
        assert_eq!((got.received, got.acked), (20, 15));
    }
    // The restarted consumer (same durable name) resumes; after the ack
    // wait, the 5 unacked events come again.
    tokio::time::sleep(ack_wait * 2).await;
    let c = consumer(&stream, "availability", ack_wait)
        .await
        .expect("consumer");
    let mut idle = 0;
    while idle < 2 {
        let got = consume_batch(&c, 100, Duration::from_millis(700), usize::MAX, |e| {
            record(e, &mut model, &mut naive)
        })
        .await
        .expect("batch");
        idle = if got.received == 0 { idle + 1 } else { 0 };
    }
    let duplicates: Vec<&StockEvent> = seen
        .values()
        .filter(|(n, _)| *n > 1)
        .map(|(_, e)| e)
        .collect();
    assert_eq!(seen.len(), published, "no event lost");
    assert_eq!(
        duplicates.len(),
        5,
        "the unacked events were delivered twice"
    );
    assert_eq!(model.ignored, 5, "and the model ignored the repeats");
    for k in &keys {
        let db = store.stock(k, t0()).await.expect("stock");
        assert_eq!(model.get(k), Some((db.balance, db.version)), "{k}");
        // Adding deltas counts the repeats twice.
        let extra = duplicates
            .iter()
            .filter(|e| &e.key == k)
            .fold((0, 0, 0), |(a, b, c), e| {
                (a + e.d_on_hand, b + e.d_reserved, c + e.d_committed)
            });
        let want_naive = Balance {
            on_hand: db.balance.on_hand + extra.0,
            reserved: db.balance.reserved + extra.1,
            committed: db.balance.committed + extra.2,
        };
        assert_eq!(naive.get(k), Some(want_naive), "{k}");
    }
    assert!(
        keys.iter()
            .any(|k| naive.get(k).map(|b| b.reserved) != model.get(k).map(|(b, _)| b.reserved)),
        "the naive model is wrong somewhere"
    );
    drop(c);
    nats.cleanup().await;
}
// ANCHOR_END: restart_test

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_publishes_twice_stores_each_event_once() {
    let Some((_db, store)) = pg_store(4).await else {
        return;
    };
    let Some(nats) = Nats::connect().await else {
        return;
    };
    let mut stream = ensure_stream(&nats.js, &nats.stream, &nats.prefix)
        .await
        .expect("stream");
    some_history(&store).await;
    let relay = Relay::new(store.pool().clone(), nats.js.clone(), &nats.prefix);
    let published = relay_all(&relay).await;
    // A crash after publishing but before deleting the outbox rows: they
    // are all published again. The Nats-Msg-Id makes JetStream drop them.
    sqlx::query("INSERT INTO outbox (movement_id) SELECT id FROM movements")
        .execute(store.pool())
        .await
        .expect("re-queue");
    assert_eq!(relay_all(&relay).await, published);
    let info = stream.info().await.expect("info");
    assert_eq!(info.state.messages, published as u64);
    nats.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lag_run_delivers_every_event() {
    let Some((_db, store)) = pg_store(4).await else {
        return;
    };
    let Some(nats) = Nats::connect().await else {
        return;
    };
    let stream = ensure_stream(&nats.js, &nats.stream, &nats.prefix)
        .await
        .expect("stream");
    let k = key("LAG", "W1");
    stocked(&store, &k, 1_000).await;
    let relay = Relay::new(store.pool().clone(), nats.js.clone(), &nats.prefix);
    let c = consumer(&stream, "lag", Duration::from_secs(5))
        .await
        .expect("consumer");
    let run = lag_run(
        &store,
        &k,
        relay,
        c,
        50,
        Duration::from_millis(2),
        Duration::from_millis(10),
    )
    .await
    .expect("lag run");
    assert_eq!(run.events, 50);
    assert_eq!(run.lag_us.len(), 50);
    nats.cleanup().await;
}

/// Reads every event the stream has into `model`, until it is quiet.
async fn drain_into(c: &async_nats::jetstream::consumer::PullConsumer, model: &mut ReadModel) {
    let mut idle = 0;
    while idle < 2 {
        let got = consume_batch(c, 100, Duration::from_millis(700), usize::MAX, |e| {
            model.apply(e)
        })
        .await
        .expect("batch");
        idle = if got.received == 0 { idle + 1 } else { 0 };
    }
}

// ANCHOR: reader_restart
/// Finding 5 of issue 28: a reader process that really restarts has lost
/// its in-memory model. Resuming the dead reader's durable consumer gives
/// it only what came after the crash, so a position that has not moved
/// since is missing; replaying the stream from the start rebuilds it exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_reader_rebuilds_its_model_from_the_stream() {
    let Some((_db, store)) = pg_store(4).await else {
        return;
    };
    let Some(nats) = Nats::connect().await else {
        return;
    };
    let stream = ensure_stream(&nats.js, &nats.stream, &nats.prefix)
        .await
        .expect("stream");
    let relay = Relay::new(store.pool().clone(), nats.js.clone(), &nats.prefix);
    // Before the crash: a position that will not move again.
    let quiet = key("QUIET", "W1");
    stocked(&store, &quiet, 7).await;
    relay_all(&relay).await;
    {
        let c = consumer(&stream, "availability", Duration::from_secs(5))
            .await
            .expect("consumer");
        let mut before_crash = ReadModel::default();
        drain_into(&c, &mut before_crash).await;
        assert!(before_crash.get(&quiet).is_some());
        // The process dies here: its model goes with it.
    }
    let keys = some_history(&store).await;
    relay_all(&relay).await;

    // Wrong: a fresh model fed by the dead reader's durable consumer.
    let resumed = consumer(&stream, "availability", Duration::from_secs(5))
        .await
        .expect("consumer");
    let mut wrong = ReadModel::default();
    drain_into(&resumed, &mut wrong).await;
    assert_eq!(wrong.get(&quiet), None, "the quiet position is lost");

    // Right: replay the stream from its first event.
    let replay = inventory::events::replay_consumer(&stream)
        .await
        .expect("replay consumer");
    let mut rebuilt = ReadModel::default();
    drain_into(&replay, &mut rebuilt).await;
    for k in keys.iter().chain([&quiet]) {
        let db = store.stock(k, t0()).await.expect("stock");
        assert_eq!(rebuilt.get(k), Some((db.balance, db.version)), "{k}");
    }
    drop((resumed, replay));
    nats.cleanup().await;
}
// ANCHOR_END: reader_restart
