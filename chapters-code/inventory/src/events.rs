//! Availability for readers: the outbox relay to NATS JetStream and the
//! read model that consumes it.
//!
//! Every movement is written with an `outbox` row in the same statement
//! (`sql/schema.sql`), so a movement and its "to publish" note commit or
//! vanish together. The [`Relay`] publishes outbox rows to JetStream with
//! the movement id as `Nats-Msg-Id` (JetStream drops a re-publish within its
//! duplicate window) and deletes them once JetStream acknowledged them.
//!
//! Delivery is at least once: a consumer that applied an event but died
//! before acking gets it again. The [`ReadModel`] therefore does not add
//! deltas. Each event carries the position's balance *after* the movement
//! and its version, and the model keeps an event only when its version is
//! newer than what it holds: a repeat or a late event is a no-op.
//! ([`DeltaModel`], which adds deltas, is kept to show the double count.)
//!
//! This is not the outbox block's relay (`block_outbox`), which order
//! management uses: here the outbox row is a pointer written inside the
//! movement's single autocommitted statement (there is no transaction in
//! Rust to enqueue into), rows are deleted rather than marked, the relay
//! polls, and no head-row claim orders a position's events, because the
//! read model keeps the newest version whatever the order of arrival.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::PullConsumer, stream::Stream};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Row};

use crate::domain::{Balance, MovementKind, Sku, StockKey, Warehouse};

// ANCHOR: event
/// What the relay publishes for each movement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockEvent {
    /// The movement's id: unique, used as `Nats-Msg-Id`.
    pub movement_id: i64,
    /// The position.
    pub key: StockKey,
    /// What happened.
    pub kind: MovementKind,
    /// Change of on hand (for consumers that want the flow).
    pub d_on_hand: i64,
    /// Change of reserved.
    pub d_reserved: i64,
    /// Change of committed (sold, not shipped).
    #[serde(default)]
    pub d_committed: i64,
    /// The balance right after the movement.
    pub after: Balance,
    /// The position's version right after the movement.
    pub version: i64,
    /// When the movement was written (Unix milliseconds), for the lag.
    pub at_ms: i64,
}
// ANCHOR_END: event

/// Subjects are `<prefix>.stock.<sku>.<warehouse>`; codes hold only `A-Z0-9-`, safe in a subject.
pub fn subject(prefix: &str, key: &StockKey) -> String {
    format!("{prefix}.stock.{}.{}", key.sku, key.warehouse)
}

/// Creates (or finds) the stream `name` holding `<prefix>.stock.>`.
pub async fn ensure_stream(
    js: &jetstream::Context,
    name: &str,
    prefix: &str,
) -> anyhow::Result<Stream> {
    Ok(js
        .get_or_create_stream(jetstream::stream::Config {
            name: name.to_string(),
            subjects: vec![format!("{prefix}.stock.>")],
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await?)
}

/// Publishes outbox rows to JetStream.
pub struct Relay {
    pool: PgPool,
    js: jetstream::Context,
    prefix: String,
}

impl Relay {
    /// A relay from `pool`'s outbox to subjects under `prefix`.
    pub fn new(pool: PgPool, js: jetstream::Context, prefix: &str) -> Self {
        Self {
            pool,
            js,
            prefix: prefix.to_string(),
        }
    }

    // ANCHOR: relay
    /// Publishes up to `limit` outbox rows; returns how many.
    pub async fn relay_once(&self, limit: i64) -> anyhow::Result<usize> {
        let mut tx = self.pool.begin().await?;
        // SKIP LOCKED: several relays share the work without waiting on each other.
        let rows = sqlx::query(
            "SELECT m.id, m.sku, m.warehouse, m.kind, m.d_on_hand, m.d_reserved, m.d_committed,
                    m.on_hand_after, m.reserved_after, m.committed_after, m.version,
                    (extract(epoch FROM m.at) * 1000)::bigint AS at_ms
               FROM outbox AS o JOIN movements AS m ON m.id = o.movement_id
              ORDER BY o.movement_id LIMIT $1
              FOR UPDATE OF o SKIP LOCKED",
        )
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let mut acks = Vec::with_capacity(rows.len());
        let mut ids = Vec::with_capacity(rows.len());
        for row in &rows {
            let event = decode_event(row)?;
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", event.movement_id.to_string().as_str());
            let payload = serde_json::to_vec(&event)?;
            acks.push(
                self.js
                    .publish_with_headers(
                        subject(&self.prefix, &event.key),
                        headers,
                        payload.into(),
                    )
                    .await?,
            );
            ids.push(event.movement_id);
        }
        // Wait for JetStream to store them all, then forget them. A crash
        // before the DELETE commits publishes them again; the Msg-Id dedups.
        for ack in acks {
            ack.await?;
        }
        sqlx::query("DELETE FROM outbox WHERE movement_id = ANY($1)")
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(ids.len())
    }
    // ANCHOR_END: relay
}

fn decode_event(row: &sqlx::postgres::PgRow) -> anyhow::Result<StockEvent> {
    let kind: String = row.try_get("kind")?;
    let sku: String = row.try_get("sku")?;
    let warehouse: String = row.try_get("warehouse")?;
    Ok(StockEvent {
        movement_id: row.try_get("id")?,
        key: StockKey::new(Sku::parse(&sku)?, Warehouse::parse(&warehouse)?),
        kind: MovementKind::parse(&kind)
            .ok_or_else(|| anyhow::anyhow!("movement kind {kind:?}"))?,
        d_on_hand: row.try_get("d_on_hand")?,
        d_reserved: row.try_get("d_reserved")?,
        d_committed: row.try_get("d_committed")?,
        after: Balance {
            on_hand: row.try_get("on_hand_after")?,
            reserved: row.try_get("reserved_after")?,
            committed: row.try_get("committed_after")?,
        },
        version: row.try_get("version")?,
        at_ms: row.try_get("at_ms")?,
    })
}

// ANCHOR: read_model
/// Availability per position, built from events; repeats and stale events are no-ops.
#[derive(Debug, Default, Clone)]
pub struct ReadModel {
    positions: HashMap<StockKey, (Balance, i64)>,
    /// Events that changed the model.
    pub applied: u64,
    /// Events ignored because the model already had that version or a newer one.
    pub ignored: u64,
}

impl ReadModel {
    /// Keeps `e` if it is newer than what the model holds for its position.
    pub fn apply(&mut self, e: &StockEvent) {
        let newer = self
            .positions
            .get(&e.key)
            .is_none_or(|(_, version)| e.version > *version);
        if newer {
            self.positions.insert(e.key.clone(), (e.after, e.version));
            self.applied += 1;
        } else {
            self.ignored += 1;
        }
    }

    /// The balance and version the model holds for `key`.
    pub fn get(&self, key: &StockKey) -> Option<(Balance, i64)> {
        self.positions.get(key).copied()
    }
}
// ANCHOR_END: read_model

/// The naive read model: adds each event's deltas. Right only if every
/// event arrives exactly once, which at-least-once delivery does not promise.
#[derive(Debug, Default, Clone)]
pub struct DeltaModel {
    positions: HashMap<StockKey, Balance>,
}

impl DeltaModel {
    /// Adds `e`'s deltas.
    pub fn apply(&mut self, e: &StockEvent) {
        let b = self.positions.entry(e.key.clone()).or_default();
        b.on_hand += e.d_on_hand;
        b.reserved += e.d_reserved;
        b.committed += e.d_committed;
    }

    /// The summed balance of `key`.
    pub fn get(&self, key: &StockKey) -> Option<Balance> {
        self.positions.get(key).copied()
    }
}

/// A durable pull consumer `name` on `stream`, acks explicit, redelivery after `ack_wait`.
pub async fn consumer(
    stream: &Stream,
    name: &str,
    ack_wait: Duration,
) -> anyhow::Result<PullConsumer> {
    Ok(stream
        .get_or_create_consumer(
            name,
            jetstream::consumer::pull::Config {
                durable_name: Some(name.to_string()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait,
                ..Default::default()
            },
        )
        .await?)
}

/// A consumer for a reader that starts with an empty model: ephemeral (no
/// durable name, so no position to resume from), delivering the stream from
/// its first event. The model lives in the reader's memory, so a restarted
/// reader has lost it; resuming a durable consumer where the dead one
/// stopped would skip every position whose last movement came before that
/// point. Replaying everything is correct because applying an event is
/// idempotent (the newest version wins); its cost grows with the stream,
/// which a reader with much history would bound with a snapshot of the model
/// and the stream sequence it was taken at.
pub async fn replay_consumer(stream: &Stream) -> anyhow::Result<PullConsumer> {
    Ok(stream
        .create_consumer(jetstream::consumer::pull::Config {
            deliver_policy: jetstream::consumer::DeliverPolicy::All,
            ack_policy: jetstream::consumer::AckPolicy::None,
            ..Default::default()
        })
        .await?)
}

/// What [`consume_batch`] did with one batch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Consumed {
    /// Messages received.
    pub received: u64,
    /// Messages acknowledged.
    pub acked: u64,
    /// Messages that did not parse (acked and dropped, counted as a metric).
    pub garbage: u64,
}

// ANCHOR: consume
/// Pulls up to `max` messages, hands each parsed event to `apply`, and acks
/// it, except the messages after the first `ack_limit` (a test uses this to
/// crash between applying and acking). Waits up to `wait` for messages.
pub async fn consume_batch(
    consumer: &PullConsumer,
    max: usize,
    wait: Duration,
    ack_limit: usize,
    mut apply: impl FnMut(&StockEvent),
) -> anyhow::Result<Consumed> {
    let mut out = Consumed::default();
    let mut batch = consumer
        .batch()
        .max_messages(max)
        .expires(wait)
        .messages()
        .await?;
    while let Some(msg) = batch.next().await {
        let msg = msg.map_err(|e| anyhow::anyhow!("{e}"))?;
        out.received += 1;
        // A broker's bytes are parsed like input: garbage is counted, never applied.
        match serde_json::from_slice::<StockEvent>(&msg.payload) {
            Ok(event) => apply(&event),
            Err(_) => out.garbage += 1,
        }
        if (out.acked as usize) < ack_limit {
            msg.ack().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            out.acked += 1;
        }
    }
    Ok(out)
}
// ANCHOR_END: consume

/// What [`lag_run`] measured: milliseconds from a movement's write to its
/// arrival in the read model.
#[derive(Debug)]
pub struct LagRun {
    /// Events that reached the model.
    pub events: u64,
    /// Lag per event, in microseconds.
    pub lag_us: hdrhistogram::Histogram<u64>,
}

// ANCHOR: lag_run
/// Writes `ops` reserves (one every `every`) through `store` while a relay
/// polls the outbox every `poll` and a consumer feeds a read model; records
/// each event's lag from the movement's timestamp to its application.
pub async fn lag_run(
    store: &crate::store::PgStore,
    key: &StockKey,
    relay: Relay,
    consumer: PullConsumer,
    ops: u32,
    every: Duration,
    poll: Duration,
) -> anyhow::Result<LagRun> {
    use crate::store::InventoryStore;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let relay_task = {
        let stop = std::sync::Arc::clone(&stop);
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if relay.relay_once(500).await? == 0 {
                    tokio::time::sleep(poll).await;
                }
            }
            relay.relay_once(10_000).await?;
            anyhow::Ok(())
        })
    };
    let writer = async {
        for _ in 0..ops {
            store
                .reserve(
                    key,
                    crate::domain::Qty::new(1)?,
                    chrono::TimeDelta::minutes(10),
                    chrono::Utc::now(),
                )
                .await?;
            tokio::time::sleep(every).await;
        }
        anyhow::Ok(())
    };
    let mut lag_us = crate::ladder::load::empty_histogram();
    let mut model = ReadModel::default();
    let mut events = 0u64;
    let reader = async {
        // A continuous pull (not one batch after another): a batch request
        // that expires while a message is in flight leaves that message to
        // be redelivered after `ack_wait`, which would show up as lag.
        let mut messages = consumer.messages().await?;
        let wanted = u64::from(ops);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60) + every * ops;
        while events < wanted {
            let next = tokio::time::timeout_at(deadline, messages.next()).await;
            let Ok(Some(msg)) = next else { break };
            let msg = msg.map_err(|e| anyhow::anyhow!("{e}"))?;
            if let Ok(e) = serde_json::from_slice::<StockEvent>(&msg.payload) {
                if e.kind == MovementKind::Reserve {
                    let now = chrono::Utc::now().timestamp_micros();
                    let lag = u64::try_from(now - e.at_ms * 1_000).unwrap_or(1);
                    let _ = lag_us.record(lag.clamp(1, 60_000_000));
                    events += 1;
                }
                model.apply(&e);
            }
            msg.ack().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        anyhow::Ok(())
    };
    let (w, r) = tokio::join!(writer, reader);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    relay_task.await??;
    w?;
    r?;
    Ok(LagRun { events, lag_us })
}
// ANCHOR_END: lag_run
