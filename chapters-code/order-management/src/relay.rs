//! The outbox relay: from the `outbox` table to NATS JetStream.
//!
//! A drain claims a batch of unpublished rows with `FOR UPDATE SKIP LOCKED`
//! (so several relays share the work without blocking each other),
//! publishes each to the subject of its order with `Nats-Msg-Id` set to the
//! row's message id, waits for JetStream's acks, marks the rows published
//! and commits. A relay that dies anywhere in between leaves the rows
//! unpublished and unlocked (the transaction rolls back), so the next drain
//! publishes them again: at least once. A second publish inside the
//! stream's duplicate window is dropped by JetStream; one that gets past it
//! is dropped by the consumer's inbox ([`crate::consumer`]).
//!
//! Two ways to know when to drain: poll every few milliseconds, or wait for
//! the `NOTIFY outbox` the insert trigger sends ([`Wake`]).

use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage, stream};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::postgres::{PgListener, PgPool};
use uuid::Uuid;

/// The default JetStream duplicate window (the server's default too).
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// A JetStream stream for order events, and the subject of each order.
#[derive(Clone)]
pub struct Broker {
    /// The JetStream context.
    pub js: jetstream::Context,
    /// The stream's name.
    pub stream: String,
    /// Subjects are `<prefix>.<order id>`: one subject per aggregate.
    pub prefix: String,
}

/// Why the relay or the consumer stopped.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// PostgreSQL failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// NATS failed.
    #[error("broker: {0}")]
    Broker(String),
    /// A crash injected by a test, simulated in-process: the drain stopped here.
    #[error("crashed {0}")]
    Crashed(&'static str),
}

fn broker_err(e: impl std::fmt::Display) -> RelayError {
    RelayError::Broker(e.to_string())
}

impl Broker {
    /// Connects and creates (or reuses) the stream `<stream>` over `<prefix>.>`.
    pub async fn connect(url: &str, stream: &str, prefix: &str) -> Result<Broker, RelayError> {
        let client = async_nats::connect(url).await.map_err(broker_err)?;
        let js = jetstream::new(client);
        js.get_or_create_stream(stream::Config {
            name: stream.to_string(),
            subjects: vec![format!("{prefix}.>")],
            duplicate_window: DUPLICATE_WINDOW,
            ..Default::default()
        })
        .await
        .map_err(broker_err)?;
        Ok(Broker {
            js,
            stream: stream.to_string(),
            prefix: prefix.to_string(),
        })
    }

    /// The subject of one order's events.
    pub fn subject(&self, order_id: Uuid) -> String {
        format!("{}.{order_id}", self.prefix)
    }

    /// How many messages the stream holds.
    pub async fn stream_messages(&self) -> Result<u64, RelayError> {
        let mut s = self.js.get_stream(&self.stream).await.map_err(broker_err)?;
        Ok(s.info().await.map_err(broker_err)?.state.messages)
    }

    /// Deletes the stream (tests clean up after themselves).
    pub async fn delete(&self) -> Result<(), RelayError> {
        self.js
            .delete_stream(&self.stream)
            .await
            .map_err(broker_err)?;
        Ok(())
    }
}

/// The JSON of one outbox row and of the message published for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxMessage {
    /// The row's message id (also the `Nats-Msg-Id` header).
    pub message_id: Uuid,
    /// The order.
    pub order_id: Uuid,
    /// The order's version after the event.
    pub version: i64,
    /// The event, as in `order_events.payload`.
    pub event: serde_json::Value,
}

/// Where a test makes the relay die during a drain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crash {
    /// Never.
    Never,
    /// After claiming the rows, before publishing anything.
    BeforePublish,
    /// After JetStream acknowledged every message, before the rows are marked published.
    AfterPublish,
}

/// When a relay drains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// Drain, then sleep this long when the outbox was empty.
    Poll(Duration),
    /// Drain, then wait for `NOTIFY outbox`, or at most this long.
    Notify(Duration),
}

// ANCHOR: claim_sql
/// The oldest unpublished rows, at most one per order (the head of each
/// order's queue), locked, skipping rows another relay holds. Taking only
/// heads keeps each order's events in version order with any number of
/// relays: a later event of an order is not eligible while an earlier one
/// is unpublished, even when that one is locked by someone else.
pub const CLAIM_SQL: &str = "
SELECT o.id, o.message_id, o.aggregate_id, o.payload
  FROM outbox AS o
 WHERE o.published_at IS NULL
   AND NOT EXISTS (SELECT 1 FROM outbox AS e
                    WHERE e.aggregate_id = o.aggregate_id
                      AND e.published_at IS NULL AND e.id < o.id)
 ORDER BY o.id
 LIMIT $1
   FOR UPDATE OF o SKIP LOCKED";
// ANCHOR_END: claim_sql

/// One relay process.
pub struct Relay {
    pool: PgPool,
    broker: Broker,
    /// Rows per drain.
    pub batch: i64,
    /// Send `Nats-Msg-Id` (true in production; tests turn it off to show the inbox alone).
    pub dedupe_header: bool,
    /// Where to die, for the crash tests.
    pub crash: Crash,
    /// How to die there: `false` returns [`RelayError::Crashed`] (the
    /// transaction is dropped in-process); `true` calls
    /// `std::process::abort()`, a real death with no cleanup at all (the
    /// crash tests run such a relay in a child process).
    pub abort_on_crash: bool,
}

/// What one drain did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drained {
    /// Messages JetStream stored.
    pub published: usize,
    /// Messages JetStream recognised as duplicates and dropped.
    pub duplicates: usize,
}

impl Relay {
    /// A relay with batches of 100 and no injected crash.
    pub fn new(pool: PgPool, broker: Broker) -> Relay {
        Relay {
            pool,
            broker,
            batch: 100,
            dedupe_header: true,
            crash: Crash::Never,
            abort_on_crash: false,
        }
    }

    /// The failpoint: dies here if this is where the test asked for a crash.
    fn crash_point(&self, here: Crash, what: &'static str) -> Result<(), RelayError> {
        if self.crash != here {
            return Ok(());
        }
        if self.abort_on_crash {
            // No destructor runs and no ROLLBACK is sent: PostgreSQL learns of
            // the death only when the socket closes, as after a SIGKILL.
            std::process::abort();
        }
        Err(RelayError::Crashed(what))
    }

    // ANCHOR: drain
    /// Claims, publishes, marks and commits one batch.
    pub async fn drain_once(&self) -> Result<Drained, RelayError> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(CLAIM_SQL)
            .bind(self.batch)
            .fetch_all(&mut *tx)
            .await?;
        if rows.is_empty() {
            return Ok(Drained::default());
        }
        self.crash_point(Crash::BeforePublish, "before publishing")?;
        // Send every message, then wait for the acks: one round trip per
        // batch instead of one per message.
        let mut acks = Vec::with_capacity(rows.len());
        let mut ids = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: i64 = row.try_get("id")?;
            let message_id: Uuid = row.try_get("message_id")?;
            let order_id: Uuid = row.try_get("aggregate_id")?;
            let payload: serde_json::Value = row.try_get("payload")?;
            let body = serde_json::to_vec(&payload).map_err(broker_err)?;
            let mut publish = PublishMessage::build().payload(body.into());
            if self.dedupe_header {
                publish = publish.message_id(message_id.to_string());
            }
            let ack = self
                .broker
                .js
                .send_publish(self.broker.subject(order_id), publish)
                .await
                .map_err(broker_err)?;
            acks.push(ack);
            ids.push(id);
        }
        let mut drained = Drained::default();
        for ack in acks {
            if ack.await.map_err(broker_err)?.duplicate {
                drained.duplicates += 1;
            } else {
                drained.published += 1;
            }
        }
        self.crash_point(Crash::AfterPublish, "after publishing, before marking")?;
        sqlx::query("UPDATE outbox SET published_at = clock_timestamp() WHERE id = ANY($1)")
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(drained)
    }
    // ANCHOR_END: drain

    // ANCHOR: run
    /// Drains until `stop` turns true; returns the totals.
    pub async fn run(
        &self,
        wake: Wake,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> Result<Drained, RelayError> {
        let mut listener = match wake {
            Wake::Notify(_) => {
                let mut l = PgListener::connect_with(&self.pool).await?;
                l.listen("outbox").await?;
                Some(l)
            }
            Wake::Poll(_) => None,
        };
        let mut total = Drained::default();
        while !*stop.borrow() {
            let d = self.drain_once().await?;
            total.published += d.published;
            total.duplicates += d.duplicates;
            if d.published + d.duplicates > 0 {
                continue; // there may be more
            }
            match (&mut listener, wake) {
                (Some(l), Wake::Notify(fallback)) => {
                    // A notification sent while we drained is buffered, so
                    // none is lost; the fallback covers a dropped connection.
                    tokio::select! {
                        _ = tokio::time::timeout(fallback, l.recv()) => {}
                        _ = stop.changed() => {}
                    }
                }
                (_, Wake::Poll(every) | Wake::Notify(every)) => {
                    tokio::select! {
                        _ = tokio::time::sleep(every) => {}
                        _ = stop.changed() => {}
                    }
                }
            }
        }
        Ok(total)
    }
    // ANCHOR_END: run
}
