//! The [`Publisher`] for NATS JetStream.

use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage, stream};

use crate::message::Message;
use crate::relay::{PublishError, Published, Publisher};

/// The JetStream duplicate window the stream is created with (the server's default too).
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// How long a publish of one batch may wait for its acknowledgements
/// before it fails (and the relay retries it). async-nats gives each ack
/// 5 s of its own; this bounds the batch as a whole.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

// A healthy publish must fit in the relay's hold (or every slow batch
// would lose its transaction after publishing, and be published again and
// again), and the hold must end inside the duplicate window (or the batch
// of a stalled relay, re-published by another, would be stored twice).
const _: () = assert!(
    PUBLISH_TIMEOUT.as_millis() < crate::relay::DEFAULT_HOLD.as_millis()
        && crate::relay::DEFAULT_HOLD.as_millis() < DUPLICATE_WINDOW.as_millis()
);

fn broker_err(e: impl std::fmt::Display) -> PublishError {
    PublishError(e.to_string())
}

/// A JetStream stream over `<prefix>.>`; a message goes to
/// `<prefix>.<aggregate type>.<aggregate id>`, one subject per aggregate.
#[derive(Clone)]
pub struct JetStream {
    /// The JetStream context.
    pub js: jetstream::Context,
    /// The stream's name.
    pub stream: String,
    /// The first token of every subject.
    pub prefix: String,
    /// Send `Nats-Msg-Id` (true; a test turns it off to show what it prevents).
    pub message_ids: bool,
}

impl JetStream {
    /// Connects and creates (or reuses) the stream `stream` over `<prefix>.>`.
    pub async fn connect(url: &str, stream: &str, prefix: &str) -> Result<JetStream, PublishError> {
        let client = async_nats::connect(url).await.map_err(broker_err)?;
        JetStream::on(jetstream::new(client), stream, prefix).await
    }

    /// Creates (or reuses) the stream on an existing context.
    pub async fn on(
        js: jetstream::Context,
        stream: &str,
        prefix: &str,
    ) -> Result<JetStream, PublishError> {
        js.get_or_create_stream(stream::Config {
            name: stream.to_string(),
            subjects: vec![format!("{prefix}.>")],
            duplicate_window: DUPLICATE_WINDOW,
            ..Default::default()
        })
        .await
        .map_err(broker_err)?;
        Ok(JetStream {
            js,
            stream: stream.to_string(),
            prefix: prefix.to_string(),
            message_ids: true,
        })
    }

    /// The subject of one aggregate's messages.
    pub fn subject(&self, aggregate_type: &str, aggregate_id: impl std::fmt::Display) -> String {
        format!("{}.{aggregate_type}.{aggregate_id}", self.prefix)
    }

    /// How many messages the stream holds.
    pub async fn stream_messages(&self) -> Result<u64, PublishError> {
        let mut s = self.js.get_stream(&self.stream).await.map_err(broker_err)?;
        Ok(s.info().await.map_err(broker_err)?.state.messages)
    }

    /// Deletes the stream (tests clean up after themselves).
    pub async fn delete(&self) -> Result<(), PublishError> {
        self.js
            .delete_stream(&self.stream)
            .await
            .map_err(broker_err)?;
        Ok(())
    }
}

// ANCHOR: publish
impl Publisher for JetStream {
    async fn publish(&self, batch: &[Message]) -> Result<Published, PublishError> {
        tokio::time::timeout(PUBLISH_TIMEOUT, self.publish_batch(batch))
            .await
            .map_err(|_| PublishError(format!("no ack within {PUBLISH_TIMEOUT:?}")))?
    }
}

impl JetStream {
    async fn publish_batch(&self, batch: &[Message]) -> Result<Published, PublishError> {
        // Send every message, then wait for the acks: one round trip per
        // batch instead of one per message. A batch holds at most one message
        // per aggregate, so the order across subjects does not matter.
        let mut acks = Vec::with_capacity(batch.len());
        for m in batch {
            let mut publish = PublishMessage::build().payload(m.payload.clone().into());
            if self.message_ids {
                // JetStream drops a second message with this id inside its
                // duplicate window and acks it with `duplicate: true`.
                publish = publish.message_id(m.message_id.to_string());
            }
            let ack = self
                .js
                .send_publish(self.subject(&m.aggregate_type, &m.aggregate_id), publish)
                .await
                .map_err(broker_err)?;
            acks.push(ack);
        }
        let mut out = Published::default();
        for ack in acks {
            if ack.await.map_err(broker_err)?.duplicate {
                out.duplicates += 1;
            } else {
                out.stored += 1;
            }
        }
        Ok(out)
    }
}
// ANCHOR_END: publish
