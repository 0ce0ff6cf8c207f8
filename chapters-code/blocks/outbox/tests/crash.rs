//! Real process deaths of a relay publishing to real NATS JetStream: the
//! relay dies between claiming and publishing, and between the broker's
//! acknowledgement and marking the rows. Nothing is lost, and the message
//! id keeps the re-publish out of the stream. And a relay process stopped
//! (SIGSTOP) after its claim, which holds its rows only for its hold.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{AckPolicy, pull};
use block_outbox::{Crash, Drained, JetStream, Message, PublishError, Published, Publisher, Relay};
use common::*;
use futures_util::StreamExt;
use testkit::TestDb;
use uuid::Uuid;

/// Aggregates per test, each with `VERSIONS` messages.
const AGGREGATES: usize = 20;
const VERSIONS: i64 = 3;
const MESSAGES: usize = AGGREGATES * VERSIONS as usize;

// Variables the parent hands the relay child.
const CHILD_DB: &str = "OUTBOX_CHILD_DATABASE_URL";
const CHILD_NATS: &str = "OUTBOX_CHILD_NATS_URL";
const CHILD_STREAM: &str = "OUTBOX_CHILD_STREAM";
const CHILD_PREFIX: &str = "OUTBOX_CHILD_PREFIX";
const CHILD_IDS: &str = "OUTBOX_CHILD_MESSAGE_IDS";

struct Env {
    db: TestDb,
    broker: JetStream,
    nats: String,
}

async fn env() -> Option<Env> {
    let db = db().await?;
    let nats = testkit::nats().await?;
    let tag = Uuid::new_v4().simple().to_string();
    let broker = ok(
        "broker",
        JetStream::connect(&nats, &format!("OUTBOX_{tag}"), &format!("outbox_{tag}")).await,
    );
    enqueue_many(&db.pool, AGGREGATES, VERSIONS).await;
    Some(Env { db, broker, nats })
}

impl Env {
    /// Runs the relay child in a process that must die at `role`.
    async fn relay_dies(&self, role: &str) {
        let ids = if self.broker.message_ids { "1" } else { "0" };
        die_in_child(
            "relay_child",
            role,
            &[
                (CHILD_DB, self.db.url.as_str()),
                (CHILD_NATS, self.nats.as_str()),
                (CHILD_STREAM, self.broker.stream.as_str()),
                (CHILD_PREFIX, self.broker.prefix.as_str()),
                (CHILD_IDS, ids),
            ],
        )
        .await;
    }

    /// A fresh relay drains until the outbox is empty. The rows the dead
    /// relay claimed stay locked (and skipped) until PostgreSQL notices its
    /// connection closed, so an empty drain right after the death is not the end.
    async fn drain_after_the_death(&self) -> Drained {
        let relay = Relay::new(self.db.pool.clone(), self.broker.clone());
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut total = Drained::default();
        while unpublished(&self.db.pool).await > 0 {
            assert!(
                Instant::now() < deadline,
                "the dead relay's rows stayed locked"
            );
            let d = ok("drain", relay.drain_once().await);
            total.published += d.published;
            total.duplicates += d.duplicates;
            if d.rows() == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        total
    }

    async fn stream_messages(&self) -> u64 {
        ok("stream", self.broker.stream_messages().await)
    }

    /// Every message in the stream, read by a fresh consumer: how many times
    /// each outbox message id was delivered.
    async fn deliveries(&self) -> Vec<String> {
        let stream = ok(
            "stream",
            self.broker.js.get_stream(&self.broker.stream).await,
        );
        let consumer = ok(
            "consumer",
            stream
                .create_consumer(pull::Config {
                    ack_policy: AckPolicy::None,
                    ..Default::default()
                })
                .await,
        );
        let total = self.stream_messages().await as usize;
        let mut bodies = Vec::new();
        let mut messages = ok("messages", consumer.messages().await);
        while bodies.len() < total {
            let next = tokio::time::timeout(Duration::from_secs(10), messages.next()).await;
            let Ok(Some(m)) = next else {
                panic!("the stream ended after {} of {total}", bodies.len())
            };
            let m = ok("message", m);
            bodies.push(String::from_utf8_lossy(&m.payload).into_owned());
        }
        bodies
    }

    async fn done(self) {
        let _ = self.broker.delete().await;
    }
}

// ANCHOR: relay_child
/// Not a test of its own: the body of the relay child process the crash
/// tests start. It drains once with a failpoint that calls
/// `std::process::abort()`. Run as an ordinary test, it does nothing.
#[tokio::test]
async fn relay_child() {
    let Ok(role) = std::env::var(CHILD_ROLE) else {
        return;
    };
    let crash = match role.as_str() {
        "before-publish" => Crash::BeforePublish,
        "after-publish" => Crash::AfterPublish,
        "stall" => return stalled_child().await,
        other => panic!("no relay crash is called {other:?}"),
    };
    let mut broker = ok(
        "broker",
        JetStream::connect(
            &child_var(CHILD_NATS),
            &child_var(CHILD_STREAM),
            &child_var(CHILD_PREFIX),
        )
        .await,
    );
    broker.message_ids = child_var(CHILD_IDS) == "1";
    let pool = ok(
        "child pool",
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&child_var(CHILD_DB))
            .await,
    );
    let mut relay = Relay::new(pool, broker);
    relay.crash = crash;
    relay.abort_on_crash = true;
    let drained = relay.drain_once().await;
    panic!("the relay child outlived its failpoint: {drained:?}");
}
// ANCHOR_END: relay_child

/// A broker that never answers: the stalled child claims its rows and
/// waits here until the parent stops the whole process.
struct Silent;

impl Publisher for Silent {
    async fn publish(&self, _: &[Message]) -> Result<Published, PublishError> {
        std::future::pending().await
    }
}

/// The body of the stalled child: a relay with a hold of [`STALL_HOLD`]
/// claims its rows and waits for a broker that never answers; the parent
/// SIGSTOPs it there and SIGKILLs it at the end.
async fn stalled_child() {
    let pool = ok(
        "child pool",
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&child_var(CHILD_DB))
            .await,
    );
    let mut relay = Relay::new(pool, Silent);
    relay.hold = STALL_HOLD;
    let drained = relay.drain_once().await;
    panic!("the stalled child's publish returned: {drained:?}");
}

/// The stalled child's hold.
const STALL_HOLD: Duration = Duration::from_secs(1);

// ANCHOR: stopped_relay
/// A relay process claims its rows and is then stopped (SIGSTOP): its
/// connection stays open, no FIN, no RST, its transaction idle. After the
/// relay's hold PostgreSQL ends that transaction, and a fresh relay
/// publishes every message while the stopped one is still stopped.
#[tokio::test]
async fn a_stopped_relay_frees_its_rows_after_its_hold() {
    let Some(env) = env().await else { return };
    let exe = ok("current_exe", std::env::current_exe());
    let mut child = ok(
        "start the child",
        tokio::process::Command::new(exe)
            .args(["--exact", "relay_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ROLE, "stall")
            .env(CHILD_DB, env.db.url.as_str())
            .current_dir(std::env::temp_dir())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn(),
    );
    let pid = child.id().map(|p| p.to_string()).unwrap_or_default();
    let admin = admin().await;
    eventually(
        Duration::from_secs(20),
        "the child claims its rows",
        async || {
            let idle: i64 = ok(
                "pg_stat_activity",
                sqlx::query_scalar(
                    "SELECT count(*) FROM pg_stat_activity
                      WHERE datname = $1 AND state = 'idle in transaction'",
                )
                .bind(env.db.name())
                .fetch_one(&admin)
                .await,
            );
            idle > 0
        },
    )
    .await;
    let signal = |sig: &'static str| {
        let pid = pid.clone();
        async move {
            let status = ok(
                "kill",
                tokio::process::Command::new("kill")
                    .args([sig, pid.as_str()])
                    .status()
                    .await,
            );
            assert!(status.success(), "kill {sig} {pid}");
        }
    };
    signal("-STOP").await;
    let fresh = Relay::new(env.db.pool.clone(), env.broker.clone());
    assert_eq!(
        ok("a drain beside the stopped relay", fresh.drain_once().await).rows(),
        0,
        "the stopped relay holds every head"
    );
    let d = env.drain_after_the_death().await;
    assert_eq!((d.published, d.duplicates), (MESSAGES, 0));
    assert_eq!(
        ok("child", child.try_wait()),
        None,
        "the relay was still stopped, not dead"
    );
    signal("-KILL").await;
    let _ = child.wait().await;
    env.done().await;
}
// ANCHOR_END: stopped_relay

// ANCHOR: crash_tests
/// The relay process dies after claiming rows and before publishing: the
/// rows wait in the outbox and a fresh relay publishes each once.
#[tokio::test]
async fn a_relay_killed_before_publishing_loses_nothing() {
    let Some(env) = env().await else { return };
    env.relay_dies("before-publish").await;
    assert_eq!(env.stream_messages().await, 0);
    let d = env.drain_after_the_death().await;
    assert_eq!((d.published, d.duplicates), (MESSAGES, 0));
    assert_eq!(env.stream_messages().await, MESSAGES as u64);
    env.done().await;
}

/// The relay process dies after JetStream stored its first batch (the head
/// message of every aggregate) and before it marked the rows: a fresh relay
/// publishes those again, JetStream drops each as a duplicate of its
/// `Nats-Msg-Id`, and the stream holds every message exactly once.
#[tokio::test]
async fn a_relay_killed_between_publish_and_mark_delivers_no_duplicate() {
    let Some(env) = env().await else { return };
    env.relay_dies("after-publish").await;
    let first = env.stream_messages().await;
    assert_eq!(
        first, AGGREGATES as u64,
        "one head per aggregate was stored"
    );
    assert_eq!(unpublished(&env.db.pool).await, MESSAGES as i64);

    let d = env.drain_after_the_death().await;
    assert_eq!(d.duplicates as u64, first, "the re-published heads");
    let bodies = env.deliveries().await;
    let distinct: HashSet<&String> = bodies.iter().collect();
    assert_eq!(
        (bodies.len(), distinct.len()),
        (MESSAGES, MESSAGES),
        "each message is in the stream once"
    );
    env.done().await;
}

/// The same death without `Nats-Msg-Id`: the re-published heads are stored
/// a second time, and a consumer receives them twice. The header, not the
/// code around it, is the guard.
#[tokio::test]
async fn without_message_ids_the_same_death_delivers_duplicates() {
    let Some(mut env) = env().await else { return };
    env.broker.message_ids = false;
    env.relay_dies("after-publish").await;
    let d = env.drain_after_the_death().await;
    assert_eq!((d.published, d.duplicates), (MESSAGES, 0));
    let bodies = env.deliveries().await;
    let distinct: HashSet<&String> = bodies.iter().collect();
    assert_eq!(
        (bodies.len(), distinct.len()),
        (MESSAGES + AGGREGATES, MESSAGES),
        "every head twice"
    );
    env.done().await;
}
// ANCHOR_END: crash_tests
