//! A [`Publisher`] in memory: records every message it is given, in order.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use uuid::Uuid;

use crate::message::Message;
use crate::relay::{PublishError, Published, Publisher};

#[derive(Debug, Default)]
struct Log {
    received: Vec<Message>,
    seen: HashSet<Uuid>,
    fail_next: usize,
}

/// A broker in memory, for tests: every message it stored, in the order
/// it stored them, shared between clones (two relays can share one).
#[derive(Clone, Debug, Default)]
pub struct MemoryPublisher {
    log: Arc<Mutex<Log>>,
    /// Drop a message whose id was stored before, as JetStream does inside
    /// its window (on by default).
    pub dedupe: bool,
    /// A pause inside every publish, to widen the window in which two
    /// relays run at once.
    pub delay: Duration,
}

impl MemoryPublisher {
    /// A publisher that deduplicates by message id.
    pub fn new() -> Self {
        MemoryPublisher {
            dedupe: true,
            ..Default::default()
        }
    }

    /// The messages stored so far, in order.
    pub fn received(&self) -> Vec<Message> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .received
            .clone()
    }

    /// Makes the next `n` publishes fail (a broker that is down).
    pub fn fail_next(&self, n: usize) {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .fail_next = n;
    }
}

impl Publisher for MemoryPublisher {
    async fn publish(&self, batch: &[Message]) -> Result<Published, PublishError> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        if log.fail_next > 0 {
            log.fail_next -= 1;
            return Err(PublishError("the memory broker is down".into()));
        }
        let mut out = Published::default();
        for m in batch {
            if self.dedupe && !log.seen.insert(m.message_id) {
                out.duplicates += 1;
            } else {
                log.received.push(m.clone());
                out.stored += 1;
            }
        }
        Ok(out)
    }
}
