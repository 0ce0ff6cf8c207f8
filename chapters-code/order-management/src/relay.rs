//! The outbox relay: this chapter's use of the outbox block
//! ([`block_outbox`]), publishing order events to NATS JetStream.
//!
//! The block does the work: the head-row claim keeps each order's events
//! in version order with any number of relays, the broker's acknowledgement
//! comes before the mark, `Nats-Msg-Id` makes a re-publish after a crash a
//! duplicate that JetStream drops, and the relay retries with a backoff
//! instead of stopping. What stays here is what is particular to orders:
//! the stream, and the JSON of one message ([`OutboxMessage`]), which the
//! store writes and the consumer ([`crate::consumer`]) reads.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use block_outbox::jetstream::DUPLICATE_WINDOW;
pub use block_outbox::{CLAIM_SQL, Crash, Drained, RelayError, Wake};

/// The JetStream stream of order events: subjects `<prefix>.order.<order id>`.
pub type Broker = block_outbox::JetStream;

/// One relay process, from the `outbox` table to the order stream.
pub type Relay = block_outbox::Relay<Broker>;

/// The aggregate type of every order message (the subject's second token).
pub const AGGREGATE_TYPE: &str = "order";

// ANCHOR: message
/// The JSON of one outbox row and of the message published for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxMessage {
    /// The row's message id (also the `Nats-Msg-Id` header): the consumer's
    /// inbox keys on it even when a message reaches it without the header.
    pub message_id: Uuid,
    /// The order.
    pub order_id: Uuid,
    /// The order's version after the event.
    pub version: i64,
    /// The event, as in `order_events.payload`.
    pub event: serde_json::Value,
}
// ANCHOR_END: message

// ANCHOR: connect_and_run
/// The service's relay: connects to the broker at `url` (stream `stream`
/// over `<prefix>.>`), retrying with the relay's backoff for as long as
/// the broker does not answer, then runs the relay until `stop` turns true;
/// returns what it published. The service starts without the broker: the
/// events wait in the outbox. Once connected, the NATS client reconnects by
/// itself and the relay retries every failed drain after its backoff, so a
/// broker restart only delays the events.
pub async fn connect_and_run(
    pool: sqlx::PgPool,
    url: &str,
    stream: &str,
    prefix: &str,
    wake: Wake,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Drained {
    let backoff = block_outbox::relay::Backoff::default();
    let mut failures = 0u32;
    let broker = loop {
        if *stop.borrow() {
            return Drained::default();
        }
        match Broker::connect(url, stream, prefix).await {
            Ok(broker) => break broker,
            Err(e) => {
                failures = failures.saturating_add(1);
                let pause = backoff.after(failures);
                tracing::warn!(error = %e.0, failures, ?pause, "broker unreachable; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    changed = stop.changed() => if changed.is_err() { return Drained::default() },
                }
            }
        }
    };
    let relay = Relay::new(pool, broker);
    let Ok(total) = relay.run(wake, stop).await;
    total
}
// ANCHOR_END: connect_and_run
