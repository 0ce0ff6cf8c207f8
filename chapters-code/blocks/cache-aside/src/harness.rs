//! A reusable staleness harness: two (or more) service instances over one
//! database and one Redis, a load on one of them paused between its
//! database read and its cache fill, a change made through another while
//! it waits, and readers that must not see the old value once the bound
//! has passed.
//!
//! Any chapter can drive it: [`FillGate`] is the pause (installed with
//! [`crate::CacheAside::with_fill_hook`], or called from a store wrapper
//! after its read), and [`Race::run`] the scenario, with the reads and the
//! change given as futures, so the instances may be caches, services or
//! HTTP clients.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::aside::FillHook;
use crate::rule::Key;

/// Pauses one load of one key at the point where it calls [`FillGate::pause`].
#[derive(Clone, Default)]
pub struct FillGate {
    inner: Arc<GateInner>,
}

#[derive(Default)]
struct GateInner {
    armed: Mutex<Option<String>>,
    loaded: Notify,
    release: Notify,
}

impl FillGate {
    /// A gate that pauses nothing until armed.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next load of `key` that reaches [`FillGate::pause`] waits there.
    pub fn arm(&self, key: &str) {
        *self.lock() = Some(key.to_string());
    }

    /// The pause point: waits for [`FillGate::release`] if the gate is armed
    /// for `key` (then disarms it, so only one load pauses).
    pub async fn pause(&self, key: &str) {
        let mine = {
            let mut armed = self.lock();
            let mine = armed.as_deref() == Some(key);
            if mine {
                *armed = None;
            }
            mine
        };
        if mine {
            self.inner.loaded.notify_one();
            self.inner.release.notified().await;
        }
    }

    /// Waits until the armed load has read the database and paused.
    pub async fn loaded(&self) {
        self.inner.loaded.notified().await;
    }

    /// Lets the paused load go on to its fill.
    pub fn release(&self) {
        self.inner.release.notify_one();
    }

    /// The gate as a [`crate::CacheAside`] fill hook.
    pub fn hook(&self) -> FillHook {
        let gate = self.clone();
        Arc::new(move |key: &Key| {
            let (gate, key) = (gate.clone(), key.as_str().to_string());
            Box::pin(async move { gate.pause(&key).await })
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.inner.armed.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One reader of the race: a name, its own staleness bound, and a read.
pub struct Reader<T> {
    /// Names the instance in a failure ("node C, no in-process cache").
    pub name: String,
    /// How long after the change returned this reader may still see the old value.
    pub bound: Duration,
    /// One read through that instance.
    pub read: Arc<dyn Fn() -> Pin<Box<dyn Future<Output = T> + Send>> + Send + Sync>,
}

impl<T> Reader<T> {
    /// A reader called `name`, allowed `bound`, that runs `read`.
    pub fn new<F, Fut>(name: &str, bound: Duration, read: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        Self {
            name: name.to_string(),
            bound,
            read: Arc::new(move || Box::pin(read())),
        }
    }
}

/// A read that saw the old value after the bound.
#[derive(Debug, thiserror::Error)]
#[error(
    "{reader} read the old value {value} {after:?} after the change returned \
     (the bound is {bound:?})"
)]
pub struct StaleRead {
    /// Which reader.
    pub reader: String,
    /// What it read.
    pub value: String,
    /// When its read started, after the change returned.
    pub after: Duration,
    /// The bound it broke.
    pub bound: Duration,
}

/// What a race that kept the bound observed.
#[derive(Debug)]
pub struct Verdict<S> {
    /// What the paused read returned (it began before the change, so either value is right).
    pub slow_read: S,
    /// Reads checked against the bound.
    pub reads: usize,
    /// Reads within the bound that still saw the old value (allowed).
    pub stale_within_bound: usize,
}

// ANCHOR: race
/// How long the readers are watched, and how often they read.
#[derive(Clone, Copy, Debug)]
pub struct Race {
    /// How long to keep reading after the longest reader bound has passed.
    pub watch: Duration,
    /// Pause between two rounds of reads.
    pub every: Duration,
}

impl Race {
    /// Arms `gate` for `key`, starts `slow_read` (on the instance whose
    /// load calls the gate), waits until it has read the database, runs
    /// `change` to completion on another instance (the database write and
    /// its invalidation), then lets the slow load fill. From then until
    /// `watch` past the longest reader bound, every reader reads in turn; a
    /// read that starts after its reader's bound and sees a value for which
    /// `is_old` holds fails the race.
    pub async fn run<S, T>(
        &self,
        gate: &FillGate,
        key: &str,
        slow_read: S,
        change: impl Future<Output = ()>,
        readers: &[Reader<T>],
        is_old: impl Fn(&T) -> bool,
    ) -> Result<Verdict<S::Output>, StaleRead>
    where
        S: Future + Send + 'static,
        S::Output: Send + 'static,
        T: Debug,
    {
        gate.arm(key);
        let slow = tokio::spawn(slow_read);
        let paused = tokio::time::timeout(Duration::from_secs(10), gate.loaded()).await;
        assert!(
            paused.is_ok(),
            "the armed load of {key:?} never reached its fill"
        );
        change.await;
        let changed = Instant::now();
        gate.release();
        let slow_read = slow.await.expect("the slow read panicked");
        let (mut reads, mut stale_within_bound) = (0, 0);
        let longest = readers.iter().map(|r| r.bound).max().unwrap_or_default();
        while changed.elapsed() < longest + self.watch {
            for reader in readers {
                let started = changed.elapsed();
                let value = (reader.read)().await;
                reads += 1;
                if !is_old(&value) {
                    continue;
                }
                if started <= reader.bound {
                    stale_within_bound += 1;
                } else {
                    return Err(StaleRead {
                        reader: reader.name.clone(),
                        value: format!("{value:?}"),
                        after: started,
                        bound: reader.bound,
                    });
                }
            }
            tokio::time::sleep(self.every).await;
        }
        Ok(Verdict {
            slow_read,
            reads,
            stale_within_bound,
        })
    }
}
// ANCHOR_END: race
