//! The outbox relay and the consumer on real PostgreSQL and real NATS
//! JetStream: relay processes that really die between commit and publish
//! and between publish and marking (nothing lost, nothing applied twice),
//! the two dedupe layers, a consumer process that really dies between its
//! effect and its ack, the dead-letter path, and per-order order with several relays.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use order_management::consumer::{Consumer, MAX_DELIVER, Tally};
use order_management::domain::Command;
use order_management::relay::{AGGREGATE_TYPE, Broker, Crash, Drained, OutboxMessage, Relay, Wake};
use order_management::store::{OrderStore, PgStore};
use testkit::TestDb;
use uuid::Uuid;

/// Orders per test, each taken to `paid` (three events, three messages).
const ORDERS: u128 = 20;

struct Env {
    db: TestDb,
    store: PgStore,
    broker: Broker,
    nats: String,
}

async fn env() -> Option<Env> {
    let (db, store) = pg_store().await?;
    let url = testkit::nats().await?;
    let tag = Uuid::new_v4().simple().to_string();
    let broker = ok(
        "broker",
        Broker::connect(&url, &format!("OM_{tag}"), &format!("om_{tag}")).await,
    );
    Some(Env {
        db,
        store,
        broker,
        nats: url,
    })
}

impl Env {
    /// `ORDERS` paid orders: 3 * ORDERS outbox rows.
    async fn orders(&self) -> Vec<Uuid> {
        let mut ids = Vec::new();
        for n in 0..ORDERS {
            let id = Uuid::from_u128(n + 1);
            paid_order(&self.store, id, &two_lines()).await;
            ids.push(id);
        }
        ids
    }

    fn relay(&self) -> Relay {
        Relay::new(self.db.pool.clone(), self.broker.clone())
    }

    async fn drain(&self, relay: &Relay) -> Drained {
        let mut total = Drained::default();
        loop {
            let d = ok("drain", relay.drain_once().await);
            if d.published + d.duplicates == 0 {
                return total;
            }
            total.published += d.published;
            total.duplicates += d.duplicates;
        }
    }

    async fn unpublished(&self) -> i64 {
        ok(
            "unpublished",
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                .fetch_one(&self.db.pool)
                .await,
        )
    }

    async fn consumer(&self, name: &str) -> Consumer {
        ok(
            "consumer",
            Consumer::create(self.db.pool.clone(), &self.broker, name).await,
        )
    }

    /// Every order's projection saw each of its events exactly once.
    async fn assert_each_event_applied_once(&self, ids: &[Uuid]) {
        let rows: Vec<(Uuid, i64, i64)> = ok(
            "projection",
            sqlx::query_as("SELECT order_id, events_applied, last_version FROM order_projection")
                .fetch_all(&self.db.pool)
                .await,
        );
        let seen: HashMap<Uuid, (i64, i64)> =
            rows.into_iter().map(|(id, n, v)| (id, (n, v))).collect();
        for id in ids {
            let version = ok("get", self.store.get(*id).await).version;
            assert_eq!(seen.get(id), Some(&(version, version)), "order {id}");
        }
    }

    async fn done(self) {
        let _ = self.broker.delete().await;
    }
}

/// Polls until `enough(tally)` or a deadline; returns the tally.
async fn consume(consumer: &Consumer, enough: impl Fn(&Tally) -> bool) -> Tally {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut total = Tally::default();
    while !enough(&total) {
        assert!(Instant::now() < deadline, "consumer stalled at {total:?}");
        let t = ok("poll", consumer.poll(100, Duration::from_millis(300)).await);
        total.applied += t.applied;
        total.duplicates += t.duplicates;
        total.retries += t.retries;
        total.dead_lettered += t.dead_lettered;
    }
    total
}

const MESSAGES: usize = 3 * ORDERS as usize;

// Variables the parent hands the relay child.
const CHILD_DB: &str = "OM_CHILD_DATABASE_URL";
const CHILD_NATS: &str = "OM_CHILD_NATS_URL";
const CHILD_STREAM: &str = "OM_CHILD_STREAM";
const CHILD_PREFIX: &str = "OM_CHILD_PREFIX";

/// The parent's stream, from a child process.
async fn child_broker() -> Broker {
    ok(
        "broker",
        Broker::connect(
            &child_var(CHILD_NATS),
            &child_var(CHILD_STREAM),
            &child_var(CHILD_PREFIX),
        )
        .await,
    )
}

// ANCHOR: relay_child
/// Not a test of its own: the body of the relay child process that the
/// crash tests start (`die_in_child`). It drains once with a failpoint that
/// calls `std::process::abort()`. Run as an ordinary test, it does nothing.
#[tokio::test]
async fn relay_child() {
    let Ok(role) = std::env::var(CHILD_ROLE) else {
        return;
    };
    let crash = match role.as_str() {
        "before-publish" => Crash::BeforePublish,
        "after-publish" => Crash::AfterPublish,
        other => panic!("no relay crash is called {other:?}"),
    };
    let broker = child_broker().await;
    let mut relay = Relay::new(child_pool(&child_var(CHILD_DB)).await, broker);
    relay.crash = crash;
    relay.abort_on_crash = true;
    let drained = relay.drain_once().await;
    panic!("the relay child outlived its failpoint: {drained:?}");
}
// ANCHOR_END: relay_child

impl Env {
    /// Runs the child test `entry` (a relay or a consumer) in a child
    /// process that must die for real at its failpoint `role`.
    async fn dies_in_child(&self, entry: &str, role: &str) {
        die_in_child(
            entry,
            role,
            &[
                (CHILD_DB, self.db.url.as_str()),
                (CHILD_NATS, self.nats.as_str()),
                (CHILD_STREAM, self.broker.stream.as_str()),
                (CHILD_PREFIX, self.broker.prefix.as_str()),
            ],
        )
        .await;
    }

    /// A fresh relay drains until the outbox is empty. The rows the dead
    /// relay claimed stay locked (and skipped) until PostgreSQL notices that
    /// its connection closed and rolls its transaction back, so an empty
    /// drain right after the death does not mean done.
    async fn drain_after_a_death(&self) -> Drained {
        let relay = self.relay();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut total = Drained::default();
        while self.unpublished().await > 0 {
            assert!(
                Instant::now() < deadline,
                "the dead relay's rows stayed locked"
            );
            let d = self.drain(&relay).await;
            total.published += d.published;
            total.duplicates += d.duplicates;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        total
    }
}

// ANCHOR: crash_before_publish
/// A relay process dies (SIGABRT) after the business transactions committed
/// and after it claimed rows, before it published anything: the rows wait
/// in the outbox, and a fresh relay sends each of them once.
#[tokio::test]
async fn a_relay_killed_between_commit_and_publish_loses_nothing() {
    let Some(env) = env().await else { return };
    let ids = env.orders().await;
    env.dies_in_child("relay_child", "before-publish").await;
    assert_eq!(ok("stream", env.broker.stream_messages().await), 0);
    assert_eq!(env.unpublished().await, MESSAGES as i64);

    let d = env.drain_after_a_death().await;
    assert_eq!((d.published, d.duplicates), (MESSAGES, 0));
    let consumer = env.consumer("projection").await;
    let t = consume(&consumer, |t| t.applied >= MESSAGES).await;
    assert_eq!((t.applied, t.duplicates), (MESSAGES, 0));
    env.assert_each_event_applied_once(&ids).await;
    env.done().await;
}
// ANCHOR_END: crash_before_publish

// ANCHOR: crash_after_publish
/// A relay process dies (SIGABRT) after JetStream stored its first batch
/// (the head event of every order) and before the rows were marked: a
/// fresh relay publishes them again, JetStream drops each as a duplicate of
/// its `Nats-Msg-Id`, and the consumer applies every event once.
#[tokio::test]
async fn a_relay_killed_between_publish_and_marking_is_dropped_by_jetstream() {
    let Some(env) = env().await else { return };
    let ids = env.orders().await;
    env.dies_in_child("relay_child", "after-publish").await;
    let first = ok("stream", env.broker.stream_messages().await);
    assert_eq!(first, ORDERS as u64, "one head per order was published");
    assert_eq!(env.unpublished().await, MESSAGES as i64);

    let d = env.drain_after_a_death().await;
    assert_eq!(d.duplicates as u64, first);
    assert_eq!(d.published + d.duplicates, MESSAGES);
    assert_eq!(
        ok("stream", env.broker.stream_messages().await),
        MESSAGES as u64
    );
    let consumer = env.consumer("projection").await;
    let t = consume(&consumer, |t| t.applied >= MESSAGES).await;
    assert_eq!((t.applied, t.duplicates), (MESSAGES, 0));
    env.assert_each_event_applied_once(&ids).await;
    env.done().await;
}
// ANCHOR_END: crash_after_publish

/// Publishes every message twice, without `Nats-Msg-Id` (as after the
/// duplicate window): a relay drains everything, its marks are lost (the
/// crash after publishing, for every batch at once), and a relay drains again.
async fn published_twice(env: &Env) {
    let mut relay = env.relay();
    relay.publisher.message_ids = false;
    env.drain(&relay).await;
    ok(
        "lose the marks",
        env.db
            .apply_sql("UPDATE outbox SET published_at = NULL")
            .await,
    );
    env.drain(&relay).await;
    assert_eq!(
        ok("stream", env.broker.stream_messages().await),
        2 * MESSAGES as u64
    );
}

// ANCHOR: inbox_dedupe
/// Past JetStream's window (simulated by leaving out the header), every
/// message arrives twice; the inbox applies each once.
#[tokio::test]
async fn the_inbox_applies_a_republished_message_once() {
    let Some(env) = env().await else { return };
    let ids = env.orders().await;
    published_twice(&env).await;
    let consumer = env.consumer("projection").await;
    let t = consume(&consumer, |t| t.applied + t.duplicates >= 2 * MESSAGES).await;
    assert_eq!((t.applied, t.duplicates), (MESSAGES, MESSAGES));
    env.assert_each_event_applied_once(&ids).await;
    env.done().await;
}

/// The same run with the inbox's UNIQUE constraint dropped: every effect
/// happens twice. The constraint, not the code around it, is the guard.
#[tokio::test]
async fn without_the_inbox_unique_constraint_effects_happen_twice() {
    let Some(env) = env().await else { return };
    ok(
        "drop the guard",
        env.db
            .apply_sql("ALTER TABLE inbox DROP CONSTRAINT inbox_once")
            .await,
    );
    let ids = env.orders().await;
    published_twice(&env).await;
    let consumer = env.consumer("projection").await;
    let t = consume(&consumer, |t| t.applied + t.duplicates >= 2 * MESSAGES).await;
    assert_eq!((t.applied, t.duplicates), (2 * MESSAGES, 0));
    for id in &ids {
        let applied: i64 = ok(
            "projection",
            sqlx::query_scalar("SELECT events_applied FROM order_projection WHERE order_id = $1")
                .bind(id)
                .fetch_one(&env.db.pool)
                .await,
        );
        let version = ok("get", env.store.get(*id).await).version;
        assert_eq!(applied, 2 * version, "order {id}: applied twice");
    }
    env.done().await;
}
// ANCHOR_END: inbox_dedupe

/// The ack wait of the consumers in the consumer crash test: short, so the
/// redelivery after the death comes quickly, and long enough that a live
/// consumer acks a whole fetch before JetStream gives up on it.
const CRASH_ACK_WAIT: Duration = Duration::from_secs(1);

/// Messages the consumer child applies and acks before it dies on the next one.
const ACKED_BEFORE_DEATH: usize = 10;

// ANCHOR: consumer_child
/// Not a test of its own: the body of the consumer child process that the
/// consumer crash test starts (`die_in_child`). It applies and acks
/// `ACKED_BEFORE_DEATH` messages, makes sure those acks reached NATS, then
/// applies one more and calls `std::process::abort()` before acking it.
/// Run as an ordinary test, it does nothing.
#[tokio::test]
async fn consumer_child() {
    let Ok(role) = std::env::var(CHILD_ROLE) else {
        return;
    };
    assert_eq!(role, "before-ack", "no consumer crash is called {role:?}");
    let broker = child_broker().await;
    let pool = child_pool(&child_var(CHILD_DB)).await;
    let mut consumer = ok(
        "consumer",
        Consumer::create_with_ack_wait(pool, &broker, "projection", CRASH_ACK_WAIT).await,
    );
    let mut applied = 0;
    while applied < ACKED_BEFORE_DEATH {
        let t = ok(
            "poll",
            consumer
                .poll(ACKED_BEFORE_DEATH - applied, Duration::from_millis(300))
                .await,
        );
        applied += t.applied;
    }
    // An ack is a publish NATS may still hold in its write buffer: flush, so
    // the death loses only the ack it is meant to lose.
    ok("flush the acks", broker.js.client().flush().await);
    consumer.faults.abort_before_ack = true;
    let polled = consumer.poll(100, Duration::from_millis(300)).await;
    panic!("the consumer child outlived its failpoint: {polled:?}");
}
// ANCHOR_END: consumer_child

// ANCHOR: crash_before_ack
/// A consumer process dies (SIGABRT) after its effect and inbox row
/// committed and before its ack left: JetStream redelivers the message to a
/// fresh consumer after the ack wait, and the inbox drops it, so every
/// event is applied once.
#[tokio::test]
async fn a_consumer_killed_between_its_effect_and_its_ack_applies_the_message_once() {
    let Some(env) = env().await else { return };
    let ids = env.orders().await;
    env.drain(&env.relay()).await;
    assert_eq!(
        ok("stream", env.broker.stream_messages().await),
        MESSAGES as u64
    );
    env.dies_in_child("consumer_child", "before-ack").await;
    // The dying message's effect committed: one inbox row more than acks.
    let inbox: i64 = ok(
        "inbox",
        sqlx::query_scalar("SELECT count(*) FROM inbox")
            .fetch_one(&env.db.pool)
            .await,
    );
    assert_eq!(inbox, ACKED_BEFORE_DEATH as i64 + 1);

    let consumer = ok(
        "fresh consumer",
        Consumer::create_with_ack_wait(
            env.db.pool.clone(),
            &env.broker,
            "projection",
            CRASH_ACK_WAIT,
        )
        .await,
    );
    let fresh = MESSAGES - ACKED_BEFORE_DEATH - 1;
    // Every delivery the dead consumer left unacked: the fresh ones and the
    // one whose effect committed.
    let t = consume(&consumer, |t| t.applied + t.duplicates > fresh).await;
    assert_eq!(
        (t.applied, t.duplicates),
        (fresh, 1),
        "the redelivered message is a duplicate, and only it"
    );
    env.assert_each_event_applied_once(&ids).await;
    env.done().await;
}
// ANCHOR_END: crash_before_ack

// ANCHOR: dead_letter
/// A message whose effect keeps failing is tried `MAX_DELIVER` times, then
/// kept in `dead_letters`; the others are not held up.
#[tokio::test]
async fn a_message_that_keeps_failing_is_dead_lettered_after_max_deliver() {
    let Some(env) = env().await else { return };
    let poison = Uuid::from_u128(999);
    ok("create", env.store.create(poison, &two_lines()).await);
    let ids = env.orders().await;
    env.drain(&env.relay()).await;
    let mut consumer = env.consumer("projection").await;
    consumer.faults.failing_order = Some(poison);
    let t = consume(&consumer, |t| t.dead_lettered >= 1 && t.applied >= MESSAGES).await;
    assert_eq!(t.retries as i64, MAX_DELIVER - 1);
    assert_eq!((t.applied, t.dead_lettered), (MESSAGES, 1));
    let dead: Vec<(String, Vec<u8>)> = ok(
        "dead letters",
        sqlx::query_as("SELECT subject, payload FROM dead_letters")
            .fetch_all(&env.db.pool)
            .await,
    );
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0, env.broker.subject(AGGREGATE_TYPE, poison));
    let m: OutboxMessage = ok("payload", serde_json::from_slice(&dead[0].1));
    assert_eq!(m.order_id, poison);
    env.assert_each_event_applied_once(&ids).await;
    env.done().await;
}

/// Garbage on an order subject is a dead letter at once, not a panic or a retry loop.
#[tokio::test]
async fn garbage_from_the_broker_is_a_dead_letter() {
    let Some(env) = env().await else { return };
    let ack = ok(
        "publish",
        env.broker
            .js
            .publish(
                env.broker.subject(AGGREGATE_TYPE, Uuid::nil()),
                "not json".into(),
            )
            .await,
    );
    ok("ack", ack.await);
    let consumer = env.consumer("projection").await;
    let t = consume(&consumer, |t| t.dead_lettered >= 1).await;
    assert_eq!((t.dead_lettered, t.retries, t.applied), (1, 0, 0));
    env.done().await;
}
// ANCHOR_END: dead_letter

// ANCHOR: ordering
/// Four relays drain one outbox at once: every message is published once,
/// and on each order's subject the versions arrive in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_relays_keep_each_orders_events_in_order() {
    let Some(env) = env().await else { return };
    let ids = env.orders().await;
    // More events per order, so that relays contend for the same orders.
    for id in &ids {
        let o = ok("get", env.store.get(*id).await);
        ok(
            "ship",
            env.store.apply(*id, o.version, &ship_everything(&o)).await,
        );
        ok(
            "deliver",
            env.store.apply(*id, o.version + 1, &Command::Deliver).await,
        );
    }
    let relays: Vec<_> = (0..4)
        .map(|_| {
            let mut r = env.relay();
            r.batch = 7;
            Arc::new(r)
        })
        .collect();
    let tasks: Vec<_> = relays
        .iter()
        .map(|r| {
            let r = Arc::clone(r);
            tokio::spawn(async move {
                let mut n = 0;
                // Keep draining until the outbox stays empty for a moment.
                let mut idle = 0;
                while idle < 5 {
                    let d = ok("drain", r.drain_once().await);
                    n += d.published;
                    if d.published == 0 {
                        idle += 1;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    } else {
                        idle = 0;
                    }
                }
                n
            })
        })
        .collect();
    let mut published = 0;
    for t in tasks {
        published += ok("relay", t.await);
    }
    let messages = 5 * ids.len();
    assert_eq!(published, messages);
    assert_eq!(env.unpublished().await, 0);
    // Read the stream in sequence order and check versions per subject.
    let consumer = env.consumer("audit").await;
    let mut last: HashMap<Uuid, i64> = HashMap::new();
    let mut read = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while read < messages {
        assert!(Instant::now() < deadline);
        let msgs = ok("fetch", consumer.raw_batch(100).await);
        for m in msgs {
            let v = last.entry(m.order_id).or_insert(0);
            assert_eq!(m.version, *v + 1, "order {} out of order", m.order_id);
            *v = m.version;
            read += 1;
        }
    }
    env.done().await;
}
// ANCHOR_END: ordering

/// The two ways to wake a relay both deliver everything while orders keep coming.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_and_notify_relays_both_publish_everything() {
    for wake in [
        Wake::Poll(Duration::from_millis(20)),
        Wake::Notify(Duration::from_secs(1)),
    ] {
        let Some(env) = env().await else { return };
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let relay = Arc::new(env.relay());
        let running = {
            let relay = Arc::clone(&relay);
            tokio::spawn(async move { relay.run(wake, stop_rx).await })
        };
        env.orders().await;
        let deadline = Instant::now() + Duration::from_secs(20);
        while env.unpublished().await > 0 {
            assert!(Instant::now() < deadline, "{wake:?} left messages behind");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = stop_tx.send(true);
        let total = ok("relay", ok("join", running.await));
        assert_eq!(total.published, MESSAGES, "{wake:?}");
        env.done().await;
    }
}

// ANCHOR: redelivered_late
/// An order's second event fails once and is nak'ed; its third is applied
/// meanwhile; the second comes back after it. The projection keeps the
/// newest event: version 3 with version 3's kind, not the late version 2's.
#[tokio::test]
async fn a_failed_then_redelivered_event_does_not_overwrite_a_newer_one() {
    let Some(env) = env().await else { return };
    let id = Uuid::from_u128(7);
    paid_order(&env.store, id, &two_lines()).await;
    env.drain(&env.relay()).await;
    let consumer = env.consumer("projection").await;
    *consumer
        .faults
        .fail_once
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = Some((id, 2));
    let t = consume(&consumer, |t| t.applied >= 3).await;
    assert_eq!((t.applied, t.retries), (3, 1));
    let last: (i64, i64, String) = ok(
        "projection",
        sqlx::query_as(
            "SELECT events_applied, last_version, last_kind FROM order_projection WHERE order_id = $1",
        )
        .bind(id)
        .fetch_one(&env.db.pool)
        .await,
    );
    let kind: String = ok(
        "kind",
        sqlx::query_scalar("SELECT kind FROM order_events WHERE order_id = $1 AND version = 3")
            .bind(id)
            .fetch_one(&env.db.pool)
            .await,
    );
    assert_eq!(last, (3, 3, kind));
    env.done().await;
}
// ANCHOR_END: redelivered_late

// ANCHOR: dead_letter_retried
/// The dead-letter insert itself fails on the delivery that gives up
/// (PostgreSQL down just then). The message is not lost: JetStream still
/// has deliveries to give, the consumer dead-letters it on the next one.
#[tokio::test]
async fn a_failed_dead_letter_insert_is_retried_not_lost() {
    let Some(env) = env().await else { return };
    let poison = Uuid::from_u128(999);
    ok("create", env.store.create(poison, &two_lines()).await);
    env.drain(&env.relay()).await;
    let mut consumer = ok(
        "consumer",
        Consumer::create_with_ack_wait(
            env.db.pool.clone(),
            &env.broker,
            "projection",
            Duration::from_millis(500),
        )
        .await,
    );
    consumer.faults.failing_order = Some(poison);
    consumer
        .faults
        .dead_letter_failures
        .store(1, std::sync::atomic::Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        // A poll that meets the failed insert reports it; keep polling.
        let _ = consumer.poll(10, Duration::from_millis(300)).await;
        let dead: i64 = ok(
            "dead letters",
            sqlx::query_scalar("SELECT count(*) FROM dead_letters")
                .fetch_one(&env.db.pool)
                .await,
        );
        if dead == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the poison message was lost");
    }
    env.done().await;
}
// ANCHOR_END: dead_letter_retried

/// A TCP proxy to the real NATS server that a test can cut and restore
/// (the shared server itself must not be stopped): when down, it closes
/// every piped connection and every new one at once.
struct Proxy {
    url: String,
    up: Arc<std::sync::atomic::AtomicBool>,
    pipes: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn to(nats_url: &str) -> Proxy {
        let target = nats_url
            .trim_start_matches("nats://")
            .trim_end_matches('/')
            .to_string();
        let listener = ok("bind", tokio::net::TcpListener::bind("127.0.0.1:0").await);
        let url = format!("nats://{}", ok("addr", listener.local_addr()));
        let up = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let pipes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let accept = tokio::spawn({
            let (up, pipes) = (Arc::clone(&up), Arc::clone(&pipes));
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if !up.load(std::sync::atomic::Ordering::SeqCst) {
                        continue; // dropped: closed at once
                    }
                    let target = target.clone();
                    let pipe = tokio::spawn(async move {
                        if let Ok(mut server) = tokio::net::TcpStream::connect(&target).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    pipes.lock().unwrap_or_else(|p| p.into_inner()).push(pipe);
                }
            }
        });
        Proxy {
            url,
            up,
            pipes,
            accept,
        }
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, std::sync::atomic::Ordering::SeqCst);
        if !up {
            for pipe in self
                .pipes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .drain(..)
            {
                pipe.abort();
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.set_up(false);
        self.accept.abort();
    }
}

// ANCHOR: broker_restart
/// The service's relay starts while the broker is unreachable, keeps
/// trying, and publishes once it answers; the broker then goes away and
/// comes back, and the events written meanwhile go out too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_starts_without_the_broker_and_survives_its_restart() {
    let Some(env) = env().await else { return };
    let proxy = Proxy::to(&env.nats).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let relay = tokio::spawn({
        let (pool, url) = (env.db.pool.clone(), proxy.url.clone());
        let (stream, prefix) = (env.broker.stream.clone(), env.broker.prefix.clone());
        async move {
            order_management::relay::connect_and_run(
                pool,
                &url,
                &stream,
                &prefix,
                Wake::Poll(Duration::from_millis(50)),
                stopped,
            )
            .await
        }
    });
    paid_order(&env.store, Uuid::from_u128(1), &two_lines()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !relay.is_finished(),
        "the relay gave up on a broker that is down"
    );
    assert_eq!(env.unpublished().await, 3);

    proxy.set_up(true);
    let published = |n: u64| {
        let env = &env;
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            while env.unpublished().await > 0
                || ok("stream", env.broker.stream_messages().await) < n
            {
                assert!(Instant::now() < deadline, "not published in 30 s");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    published(3).await;

    // The broker goes away, events are written, the broker comes back.
    proxy.set_up(false);
    paid_order(&env.store, Uuid::from_u128(2), &two_lines()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.set_up(true);
    published(6).await;
    assert_eq!(ok("stream", env.broker.stream_messages().await), 6);

    ok("stop", stop.send(true));
    let total = ok("relay", relay.await);
    assert_eq!(total.published, 6);
    drop(proxy);
    env.done().await;
}
// ANCHOR_END: broker_restart

/// A durable consumer left by an older version with a delivery limit of 4
/// (JetStream would then drop a message on its own after four failures):
/// creating the consumer updates its config to unlimited, instead of
/// reusing the old one as it is.
#[tokio::test]
async fn an_existing_consumer_gets_the_unlimited_delivery_config() {
    let Some(env) = env().await else { return };
    let stream = ok("stream", env.broker.js.get_stream(&env.broker.stream).await);
    ok(
        "old consumer",
        stream
            .create_consumer(async_nats::jetstream::consumer::pull::Config {
                durable_name: Some("projection".to_string()),
                ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
                max_deliver: 4,
                ..Default::default()
            })
            .await,
    );
    ok(
        "consumer",
        Consumer::create_with_ack_wait(
            env.db.pool.clone(),
            &env.broker,
            "projection",
            Duration::from_secs(30),
        )
        .await,
    );
    let stream = ok("stream", env.broker.js.get_stream(&env.broker.stream).await);
    let info = ok("info", stream.consumer_info("projection").await);
    assert_eq!(info.config.max_deliver, -1);
    env.done().await;
}

/// A relay woken by `NOTIFY outbox` publishes a commit at once, not at its
/// fallback poll: the relay here starts on an empty outbox with a fallback
/// of a minute, and the orders placed after it went to sleep must all be
/// published within a few seconds. Without the outbox's notify trigger the
/// relay sleeps the whole minute (the test above, with a one-second
/// fallback, passes either way).
#[tokio::test]
async fn a_notify_relay_publishes_a_commit_without_waiting_for_its_fallback() {
    let Some(env) = env().await else { return };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let relay = Arc::new(env.relay());
    let running = {
        let relay = Arc::clone(&relay);
        tokio::spawn(async move {
            relay
                .run(Wake::Notify(Duration::from_secs(60)), stop_rx)
                .await
        })
    };
    // Let it listen, drain the empty outbox and go to sleep.
    tokio::time::sleep(Duration::from_millis(500)).await;
    env.orders().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while env.unpublished().await > 0 {
        assert!(
            Instant::now() < deadline,
            "the relay slept through the commits: no NOTIFY woke it"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop_tx.send(true);
    let total = ok("relay", ok("join", running.await));
    assert_eq!(total.published, MESSAGES);
    env.done().await;
}
