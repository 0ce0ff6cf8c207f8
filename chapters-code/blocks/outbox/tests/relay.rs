//! The relay on real PostgreSQL with the in-memory publisher: two relays
//! at once, a database that goes away, a broker that is down, and the
//! wake-ups (a notification, a lost one, a dropped LISTEN connection).

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use block_outbox::{
    Backoff, MemoryPublisher, Message, PublishError, Published, Publisher, Relay, RelayError, Wake,
};
use common::*;
use tokio::sync::watch;

/// Aggregates and versions of the two-relay test.
const AGGREGATES: usize = 40;
const VERSIONS: i64 = 5;

/// Drains with `relay` until the outbox stays empty for a moment.
async fn drain_until_idle(relay: &Relay<MemoryPublisher>) -> usize {
    let mut n = 0;
    let mut idle = 0;
    while idle < 5 {
        let d = ok("drain", relay.drain_once().await);
        n += d.rows();
        if d.rows() == 0 {
            idle += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        } else {
            idle = 0;
        }
    }
    n
}

// ANCHOR: two_relays
/// Two relays, each with its own pool, start at once on one outbox and one
/// broker that does not deduplicate: every message is published exactly
/// once, and each aggregate's versions arrive in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_started_at_once_publish_each_message_once_and_in_order() {
    let Some(db) = db().await else { return };
    enqueue_many(&db.pool, AGGREGATES, VERSIONS).await;
    let mut broker = MemoryPublisher::new();
    broker.dedupe = false; // a double publish must show, not be hidden
    broker.delay = Duration::from_millis(3);
    let mut relays = Vec::new();
    for _ in 0..2 {
        let mut r = Relay::new(db.pool_with(2).await, broker.clone());
        r.batch = 7;
        relays.push(Arc::new(r));
    }
    let start = Arc::new(tokio::sync::Barrier::new(relays.len()));
    let tasks: Vec<_> = relays
        .iter()
        .map(|r| {
            let (r, start) = (Arc::clone(r), Arc::clone(&start));
            tokio::spawn(async move {
                start.wait().await;
                drain_until_idle(&r).await
            })
        })
        .collect();
    let mut marked = Vec::new();
    for t in tasks {
        marked.push(ok("relay", t.await));
    }
    let messages = AGGREGATES * VERSIONS as usize;
    assert!(
        marked.iter().all(|n| *n > 0),
        "both relays worked: {marked:?}"
    );
    let received = broker.received();
    let mut ids: Vec<_> = received.iter().map(|m| m.message_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        (received.len(), ids.len()),
        (messages, messages),
        "each message published exactly once"
    );
    let mut last: HashMap<&str, i64> = HashMap::new();
    for m in &received {
        let v = last.entry(m.aggregate_id.as_str()).or_insert(0);
        assert_eq!(
            m.aggregate_version,
            Some(*v + 1),
            "aggregate {} out of order",
            m.aggregate_id
        );
        *v += 1;
    }
    assert_eq!(unpublished(&db.pool).await, 0);
}
// ANCHOR_END: two_relays

/// A broker that takes a batch and then hangs until the test releases it:
/// the relay has claimed its rows and makes no progress, as when its
/// process is stopped or its host is cut off from the database.
#[derive(Clone, Default)]
struct Stalled {
    claimed: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Notify>,
}

impl Publisher for Stalled {
    async fn publish(&self, batch: &[Message]) -> Result<Published, PublishError> {
        self.claimed.notify_one();
        self.release.notified().await;
        Ok(Published {
            stored: batch.len(),
            duplicates: 0,
        })
    }
}

// ANCHOR: stalled_relay
/// A relay claims every head row and then stalls, its connection open and
/// idle in its transaction. Another relay finds nothing while the stalled
/// one holds the rows, and publishes all of them, in order, once the hold
/// has passed: PostgreSQL ended the stalled transaction. When the stalled
/// relay resumes, its mark fails instead of marking rows it no longer holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_relay_frees_its_rows_after_its_hold() {
    let Some(db) = db().await else { return };
    let (aggregates, versions) = (4, 3);
    enqueue_many(&db.pool, aggregates, versions).await;
    let hold = Duration::from_secs(1);
    let stalled = Stalled::default();
    let mut first = Relay::new(db.pool_with(1).await, stalled.clone());
    first.hold = hold;
    let first = tokio::spawn(async move { first.drain_once().await });
    stalled.claimed.notified().await;

    let second = Relay::new(db.pool_with(1).await, MemoryPublisher::new());
    let d = ok("a drain beside the stalled one", second.drain_once().await);
    assert_eq!(d.rows(), 0, "the heads are held: nothing else is eligible");
    eventually(
        hold + Duration::from_secs(5),
        "the stalled relay's rows stayed locked",
        async || {
            ok("drain", second.drain_once().await);
            unpublished(&db.pool).await == 0
        },
    )
    .await;
    let received = second.publisher.received();
    assert_eq!(received.len(), aggregates * versions as usize);
    let mut last: HashMap<&str, i64> = HashMap::new();
    for m in &received {
        let v = last.entry(m.aggregate_id.as_str()).or_insert(0);
        assert_eq!(
            m.aggregate_version,
            Some(*v + 1),
            "{} out of order",
            m.aggregate_id
        );
        *v += 1;
    }

    stalled.release.notify_one();
    let resumed = ok("join", first.await);
    assert!(
        matches!(resumed, Err(RelayError::Database(_))),
        "the resumed relay's mark must fail: {resumed:?}"
    );
}
// ANCHOR_END: stalled_relay

/// A running relay and the means to stop it.
struct Running {
    relay: Arc<Relay<MemoryPublisher>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<block_outbox::Drained>,
}

fn start(relay: Relay<MemoryPublisher>, wake: Wake) -> Running {
    let relay = Arc::new(relay);
    let (stop, stop_rx) = watch::channel(false);
    let task = {
        let relay = Arc::clone(&relay);
        tokio::spawn(async move {
            match relay.run(wake, stop_rx).await {
                Ok(d) => d,
                Err(never) => match never {},
            }
        })
    };
    Running { relay, stop, task }
}

impl Running {
    async fn published(&self) -> usize {
        self.relay.publisher.received().len()
    }

    async fn wait_published(&self, n: usize, limit: Duration, what: &str) -> Duration {
        let t = Instant::now();
        eventually(limit, what, async || self.published().await >= n).await;
        t.elapsed()
    }

    async fn stop(self) -> block_outbox::Drained {
        let _ = self.stop.send(true);
        ok("join", self.task.await)
    }
}

/// Short pauses, so the test sees several retries in a second.
const QUICK: Backoff = Backoff {
    first: Duration::from_millis(20),
    max: Duration::from_millis(200),
};

// ANCHOR: database_goes_away
/// The relay's database refuses connections and its sessions are ended
/// under it: drains fail, the relay keeps retrying (it does not return),
/// and when the database is back it publishes what was written meanwhile.
#[tokio::test]
async fn a_relay_whose_database_goes_away_comes_back() {
    let Some(db) = db().await else { return };
    let mut relay = Relay::new(db.pool_with(2).await, MemoryPublisher::new());
    relay.backoff = QUICK;
    let running = start(relay, Wake::Poll(Duration::from_millis(20)));
    enqueue_one(&db.pool, "a1", 1).await;
    running
        .wait_published(1, Duration::from_secs(10), "the first message")
        .await;

    let admin = admin().await;
    let allow = |yes: bool| format!("ALTER DATABASE \"{}\" ALLOW_CONNECTIONS {yes}", db.name());
    ok(
        "refuse connections",
        sqlx::raw_sql(sqlx::AssertSqlSafe(allow(false)))
            .execute(&admin)
            .await,
    );
    terminate(&admin, db.name(), "%").await;
    let before = running.relay.failures();
    eventually(
        Duration::from_secs(10),
        "three failed drains, each retried",
        async || running.relay.failures() >= before + 3,
    )
    .await;
    assert!(
        !running.task.is_finished(),
        "the relay returned on an error"
    );
    ok(
        "allow connections",
        sqlx::raw_sql(sqlx::AssertSqlSafe(allow(true)))
            .execute(&admin)
            .await,
    );
    enqueue_one(&db.pool, "a1", 2).await;
    running
        .wait_published(
            2,
            Duration::from_secs(10),
            "the message written after the outage",
        )
        .await;
    let total = running.stop().await;
    assert_eq!(total.published, 2);
}
// ANCHOR_END: database_goes_away

/// The broker is down for a few drains: the relay retries the same batch
/// and publishes it once the broker is back, with nothing lost.
#[tokio::test]
async fn a_relay_retries_while_the_broker_is_down() {
    let Some(db) = db().await else { return };
    let broker = MemoryPublisher::new();
    broker.fail_next(3);
    let mut relay = Relay::new(db.pool_with(2).await, broker);
    relay.backoff = QUICK;
    enqueue_many(&db.pool, 3, 2).await;
    let running = start(relay, Wake::Poll(Duration::from_millis(20)));
    running
        .wait_published(6, Duration::from_secs(10), "every message after the outage")
        .await;
    assert_eq!(running.relay.failures(), 3);
    let total = running.stop().await;
    assert_eq!(total.published, 6);
    assert_eq!(unpublished(&db.pool).await, 0);
}

// ANCHOR: wakeups
/// The relay waits on `LISTEN outbox` with a fallback a minute long; a
/// committed message wakes it long before that.
#[tokio::test]
async fn a_notification_wakes_the_relay_before_its_fallback() {
    let Some(db) = db().await else { return };
    let relay = Relay::new(db.pool_with(3).await, MemoryPublisher::new());
    let running = start(relay, Wake::Notify(Duration::from_secs(60)));
    wait_listening(&db).await;
    enqueue_one(&db.pool, "a1", 1).await;
    running
        .wait_published(1, Duration::from_secs(10), "a notified message")
        .await;
    running.stop().await;
}

/// Every notification is lost (the trigger is gone): each message is still
/// published, by the fallback poll.
#[tokio::test]
async fn a_lost_notification_is_delivered_by_the_fallback_poll() {
    let Some(db) = db().await else { return };
    ok(
        "lose every notification",
        db.apply_sql("DROP TRIGGER outbox_wake_relay ON outbox")
            .await,
    );
    let fallback = Duration::from_millis(300);
    let relay = Relay::new(db.pool_with(3).await, MemoryPublisher::new());
    let running = start(relay, Wake::Notify(fallback));
    wait_listening(&db).await;
    for v in 1..=3 {
        enqueue_one(&db.pool, "a1", v).await;
        let took = running
            .wait_published(v as usize, Duration::from_secs(10), "an unnotified message")
            .await;
        println!("unnotified message {v} published after {took:?} (fallback {fallback:?})");
    }
    running.stop().await;
}

/// The relay's LISTEN session is ended under it, and a message commits
/// while it has none: the relay listens again and publishes it.
#[tokio::test]
async fn a_dropped_listen_connection_only_delays() {
    let Some(db) = db().await else { return };
    let relay = Relay::new(db.pool_with(3).await, MemoryPublisher::new());
    let running = start(relay, Wake::Notify(Duration::from_millis(300)));
    wait_listening(&db).await;
    let admin = admin().await;
    assert_eq!(terminate(&admin, db.name(), "LISTEN%").await, 1);
    enqueue_one(&db.pool, "a1", 1).await;
    running
        .wait_published(
            1,
            Duration::from_secs(10),
            "the message sent while nobody listened",
        )
        .await;
    // And it listens again: the next message is notified.
    wait_listening(&db).await;
    enqueue_one(&db.pool, "a1", 2).await;
    running
        .wait_published(2, Duration::from_secs(10), "the next message")
        .await;
    running.stop().await;
}
// ANCHOR_END: wakeups

/// Waits until a session of this test's database is waiting in `LISTEN`.
async fn wait_listening(db: &testkit::TestDb) {
    let admin = admin().await;
    eventually(Duration::from_secs(10), "a LISTEN session", async || {
        let n: i64 = ok(
            "pg_stat_activity",
            sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity
                  WHERE datname = $1 AND query ILIKE 'LISTEN%' AND state = 'idle'",
            )
            .bind(db.name())
            .fetch_one(&admin)
            .await,
        );
        n > 0
    })
    .await;
}
