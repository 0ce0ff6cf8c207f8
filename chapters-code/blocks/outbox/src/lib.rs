//! Part II block: the transactional outbox and its relay.
//!
//! A service that changes its database and then tells a broker has two
//! writes and no transaction around them: a crash between the two loses the
//! event (commit, then publish) or announces a change that never happened
//! (publish, then a rollback). The outbox makes the second write part of the
//! first: [`enqueue`] inserts the message into the `outbox` table inside the
//! caller's transaction, and a [`Relay`] publishes committed rows afterwards.
//!
//! - [`message`]: what a caller enqueues, parsed before it is written, and
//!   what the relay reads back.
//! - [`store`]: the SQL (`sql/outbox.sql`), [`enqueue`], [`purge_published`] and the consumer's
//!   inbox ([`first_delivery`]).
//! - [`relay`]: the head-row claim, publish, mark after the broker's ack;
//!   woken by `LISTEN/NOTIFY` with a polling fallback; retries, never stops.
//! - [`jetstream`]: the [`Publisher`] for NATS JetStream, with `Nats-Msg-Id`.
//! - [`memory`]: a [`Publisher`] in memory that records what it was given,
//!   for tests of the relay's ordering without a broker.
//!
//! The guarantees: every committed message is published at least once, the
//! messages of one aggregate in the order of their ids, and the broker drops
//! a re-publish of the same message id inside its duplicate window; what gets
//! past the window is dropped by the consumer's inbox.

#[cfg(feature = "book")]
pub mod book;
pub mod jetstream;
pub mod memory;
pub mod message;
pub mod relay;
pub mod store;

pub use jetstream::JetStream;
pub use memory::MemoryPublisher;
pub use message::{InvalidMessage, Message, NewMessage};
pub use relay::{
    Backoff, CLAIM_SQL, Crash, DEFAULT_HOLD, Drained, PublishError, Published, Publisher, Relay,
    RelayError, Wake, begin_sql,
};
pub use store::{EnqueueError, SCHEMA_SQL, enqueue, first_delivery, purge_published};
