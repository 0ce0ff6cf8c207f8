//! A consumer of order events that applies each one exactly once.
//!
//! JetStream delivers at least once: a message is redelivered when its ack
//! is lost or late, and the relay may publish a message twice. The consumer
//! makes the *effect* happen once: the effect (here, a per-order
//! projection) and the outbox block's inbox row keyed by the message id
//! ([`block_outbox::first_delivery`]) commit in one transaction, and the
//! inbox's UNIQUE constraint refuses a message id seen before, so a
//! duplicate changes nothing and is simply acked.
//!
//! A message that keeps failing is nak'ed with a delay that doubles and
//! redelivered; on its [`MAX_DELIVER`]th delivery it goes to the
//! `dead_letters` table and is terminated, so it neither blocks the others
//! nor disappears. JetStream itself never gives up on a message (the
//! consumer's `max_deliver` is unlimited): the dead letter is the only way
//! out, so a dead-letter insert that fails (PostgreSQL down just then)
//! leaves the message to be delivered again, not lost. A message delivered
//! more than [`MAX_DELIVER`] times without an answer (a consumer that
//! crashes on it) is dead-lettered before it is tried again.
//! A message that does not parse is a dead letter at once: retrying garbage
//! cannot help.
//!
//! Messages of one order can be applied out of order (a nak'ed one comes
//! back after later ones): the projection keeps the fields of the newest
//! version it has seen, so a late event is counted but overwrites nothing.

use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::PullConsumer};
use futures_util::StreamExt;
use sqlx::postgres::PgPool;
use uuid::Uuid;

use crate::relay::{Broker, OutboxMessage};

/// Why the consumer could not go on.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    /// PostgreSQL failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// NATS failed.
    #[error("broker: {0}")]
    Broker(String),
}

/// Deliveries before a message goes to the dead letters.
pub const MAX_DELIVER: i64 = 4;

/// How long JetStream waits for an ack before redelivering (the default of
/// [`Consumer::create`]; a test may choose another with [`Consumer::create_with_ack_wait`]).
pub const ACK_WAIT: Duration = Duration::from_secs(2);

/// Delay before a nak'ed message comes back the first time; doubled for
/// each further delivery, never more than [`NAK_DELAY_MAX`].
pub const NAK_DELAY: Duration = Duration::from_millis(100);

/// The longest delay before a nak'ed message comes back.
pub const NAK_DELAY_MAX: Duration = Duration::from_secs(30);

/// The delay before delivery `delivered + 1`.
fn nak_delay(delivered: i64) -> Duration {
    let doublings = u32::try_from(delivered.saturating_sub(1).clamp(0, 16)).unwrap_or(16);
    NAK_DELAY.saturating_mul(1 << doublings).min(NAK_DELAY_MAX)
}

/// Failures a test injects into the consumer.
#[derive(Debug, Default)]
pub struct Faults {
    /// Die after committing the next fresh effect, before acking it:
    /// `std::process::abort()`, a real death with no cleanup (the crash test
    /// runs such a consumer in a child process).
    pub abort_before_ack: bool,
    /// The effect fails for this order (a dependency that is down for it).
    pub failing_order: Option<Uuid>,
    /// The effect fails once for this (order, version), then works: a
    /// message nak'ed and redelivered after later ones.
    pub fail_once: std::sync::Mutex<Option<(Uuid, i64)>>,
    /// The next this many dead-letter inserts fail (PostgreSQL down then).
    pub dead_letter_failures: std::sync::atomic::AtomicU32,
}

/// What happened to one delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The effect was applied and the message acked.
    Applied,
    /// The inbox had the message id: acked, nothing applied.
    Duplicate,
    /// The effect failed; nak'ed for a later retry.
    Retry,
    /// Moved to `dead_letters` and terminated.
    DeadLettered,
}

/// Counts of outcomes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// [`Outcome::Applied`].
    pub applied: usize,
    /// [`Outcome::Duplicate`].
    pub duplicates: usize,
    /// [`Outcome::Retry`].
    pub retries: usize,
    /// [`Outcome::DeadLettered`].
    pub dead_lettered: usize,
}

impl Tally {
    fn add(&mut self, o: Outcome) {
        match o {
            Outcome::Applied => self.applied += 1,
            Outcome::Duplicate => self.duplicates += 1,
            Outcome::Retry => self.retries += 1,
            Outcome::DeadLettered => self.dead_lettered += 1,
        }
    }
}

/// A durable pull consumer of the order stream with its inbox.
pub struct Consumer {
    pool: PgPool,
    consumer: PullConsumer,
    name: String,
    /// Injected failures.
    pub faults: Faults,
}

fn broker_err(e: impl std::fmt::Display) -> ConsumerError {
    ConsumerError::Broker(e.to_string())
}

impl Consumer {
    /// Creates (or reuses) the durable consumer `name` on the broker's stream.
    pub async fn create(pool: PgPool, broker: &Broker, name: &str) -> Result<Self, ConsumerError> {
        Self::create_with_ack_wait(pool, broker, name, ACK_WAIT).await
    }

    /// Like [`Consumer::create`], with JetStream redelivering an unacked
    /// message after `ack_wait`.
    pub async fn create_with_ack_wait(
        pool: PgPool,
        broker: &Broker,
        name: &str,
        ack_wait: Duration,
    ) -> Result<Self, ConsumerError> {
        let stream = broker
            .js
            .get_stream(&broker.stream)
            .await
            .map_err(broker_err)?;
        let consumer = stream
            // Create, or update an existing durable to this config (an
            // older one may have had a delivery limit JetStream enforces).
            .create_consumer(jetstream::consumer::pull::Config {
                durable_name: Some(name.to_string()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait,
                // Unlimited: JetStream never drops a message on its
                // own; the consumer's dead letter is the only way out.
                max_deliver: -1,
                ..Default::default()
            })
            .await
            .map_err(broker_err)?;
        Ok(Consumer {
            pool,
            consumer,
            name: name.to_string(),
            faults: Faults::default(),
        })
    }

    /// Fetches up to `max` messages (waiting at most `wait`) and handles each.
    pub async fn poll(&self, max: usize, wait: Duration) -> Result<Tally, ConsumerError> {
        let mut batch = self
            .consumer
            .fetch()
            .max_messages(max)
            .expires(wait)
            .messages()
            .await
            .map_err(broker_err)?;
        let mut tally = Tally::default();
        while let Some(msg) = batch.next().await {
            let msg = msg.map_err(broker_err)?;
            tally.add(self.handle(&msg).await?);
        }
        Ok(tally)
    }

    /// Fetches up to `max` messages in stream order, acks them and returns
    /// them parsed, with no effect (an audit reader; unparseable ones are skipped).
    pub async fn raw_batch(&self, max: usize) -> Result<Vec<OutboxMessage>, ConsumerError> {
        let mut batch = self
            .consumer
            .fetch()
            .max_messages(max)
            .expires(Duration::from_millis(300))
            .messages()
            .await
            .map_err(broker_err)?;
        let mut out = Vec::new();
        while let Some(msg) = batch.next().await {
            let msg = msg.map_err(broker_err)?;
            if let Ok(m) = serde_json::from_slice::<OutboxMessage>(&msg.payload) {
                out.push(m);
            }
            msg.ack().await.map_err(broker_err)?;
        }
        Ok(out)
    }

    // ANCHOR: handle
    /// Handles one delivery: parse, apply once, ack (or nak, or dead-letter).
    pub async fn handle(&self, msg: &jetstream::Message) -> Result<Outcome, ConsumerError> {
        let info = msg.info().map_err(broker_err)?;
        let (stream_seq, delivered) = (info.stream_sequence, info.delivered);
        let parsed: Result<OutboxMessage, _> = serde_json::from_slice(&msg.payload);
        let Ok(m) = parsed else {
            // Garbage from the broker gets the same rules as any input.
            return self
                .dead_letter_or_retry(msg, stream_seq, delivered, "unparseable payload")
                .await;
        };
        if delivered > MAX_DELIVER {
            // Delivered that often with no answer: whatever handles it dies.
            let why = format!("delivered {delivered} times without an answer");
            return self
                .dead_letter_or_retry(msg, stream_seq, delivered, &why)
                .await;
        }
        match self.apply_once(&m).await {
            Ok(applied) => {
                if applied && self.faults.abort_before_ack {
                    // The effect is committed; the ack never leaves. JetStream
                    // redelivers after the ack wait and the inbox drops it.
                    std::process::abort();
                }
                msg.ack().await.map_err(broker_err)?;
                Ok(if applied {
                    Outcome::Applied
                } else {
                    Outcome::Duplicate
                })
            }
            Err(why) if delivered >= MAX_DELIVER => {
                self.dead_letter_or_retry(msg, stream_seq, delivered, &why)
                    .await
            }
            Err(_) => {
                msg.ack_with(AckKind::Nak(Some(nak_delay(delivered))))
                    .await
                    .map_err(broker_err)?;
                Ok(Outcome::Retry)
            }
        }
    }

    /// Dead-letters the message; if the insert fails, nak's it so that it
    /// comes back (JetStream has deliveries left: its limit is unlimited).
    async fn dead_letter_or_retry(
        &self,
        msg: &jetstream::Message,
        stream_seq: u64,
        delivered: i64,
        why: &str,
    ) -> Result<Outcome, ConsumerError> {
        match self.dead_letter(msg, stream_seq, why).await {
            Ok(()) => Ok(Outcome::DeadLettered),
            Err(e) => {
                tracing::warn!(error = %e, stream_seq, "dead letter failed; the message comes back");
                msg.ack_with(AckKind::Nak(Some(nak_delay(delivered))))
                    .await
                    .map_err(broker_err)?;
                Ok(Outcome::Retry)
            }
        }
    }
    // ANCHOR_END: handle

    // ANCHOR: apply_once
    /// The effect and the inbox row in one transaction. `Ok(false)`: seen before.
    async fn apply_once(&self, m: &OutboxMessage) -> Result<bool, String> {
        if self.faults.failing_order == Some(m.order_id) {
            return Err(format!("the projection store refused order {}", m.order_id));
        }
        {
            let mut once = self
                .faults
                .fail_once
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if *once == Some((m.order_id, m.version)) {
                *once = None;
                return Err(format!(
                    "the projection store refused version {}",
                    m.version
                ));
            }
        }
        let work = async {
            let mut tx = self.pool.begin().await?;
            let fresh = block_outbox::first_delivery(&mut tx, &self.name, m.message_id).await?;
            if fresh {
                let kind = m.event.get("type").and_then(|t| t.as_str()).unwrap_or("?");
                sqlx::query(
                    "INSERT INTO order_projection (order_id, events_applied, last_version, last_kind)
                     VALUES ($1, 1, $2, $3)
                     ON CONFLICT (order_id) DO UPDATE
                        SET events_applied = order_projection.events_applied + 1,
                            last_version = GREATEST(order_projection.last_version, EXCLUDED.last_version),
                            -- Only a newer version moves the fields: a late
                            -- redelivery of an older event is counted, no more.
                            last_kind = CASE
                                WHEN EXCLUDED.last_version > order_projection.last_version
                                THEN EXCLUDED.last_kind ELSE order_projection.last_kind END",
                )
                .bind(m.order_id)
                .bind(m.version)
                .bind(kind)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok::<bool, sqlx::Error>(fresh)
        };
        work.await.map_err(|e| e.to_string())
    }
    // ANCHOR_END: apply_once

    async fn dead_letter(
        &self,
        msg: &jetstream::Message,
        stream_seq: u64,
        reason: &str,
    ) -> Result<(), ConsumerError> {
        let failures = &self.faults.dead_letter_failures;
        if failures
            .fetch_update(
                std::sync::atomic::Ordering::Relaxed,
                std::sync::atomic::Ordering::Relaxed,
                |n| n.checked_sub(1),
            )
            .is_ok()
        {
            return Err(ConsumerError::Database(sqlx::Error::PoolTimedOut));
        }
        sqlx::query(
            "INSERT INTO dead_letters (consumer, stream_seq, subject, reason, payload)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (consumer, stream_seq) DO NOTHING",
        )
        .bind(&self.name)
        .bind(i64::try_from(stream_seq).unwrap_or(i64::MAX))
        .bind(msg.subject.as_str())
        .bind(reason)
        .bind(msg.payload.as_ref())
        .execute(&self.pool)
        .await?;
        msg.ack_with(AckKind::Term).await.map_err(broker_err)?;
        Ok(())
    }
}
