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
