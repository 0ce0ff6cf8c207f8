//! The versioned handle the service reads its model and index through.
//!
//! A rebuilt index is built off to the side and published whole: one
//! pointer swap under a write lock held for nanoseconds. A request takes
//! one `Arc` of the current version at its start and uses only that, so it
//! sees the old version or the new one, never a mix, and the old version is
//! freed when its last reader finishes. A version that is not newer than
//! the one served is refused: a stale index never replaces a fresh one.

use std::sync::{Arc, RwLock};

/// Why a swap was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("version {offered} is not newer than the served version {served}")]
pub struct StaleVersion {
    /// The version offered.
    pub offered: u64,
    /// The version being served.
    pub served: u64,
}

/// Something with a version number.
pub trait HasVersion {
    /// Its version; a newer build has a larger one.
    fn version(&self) -> u64;
}

// ANCHOR: versioned
/// The current version of `T`, swapped whole.
#[derive(Debug)]
pub struct Versioned<T> {
    current: RwLock<Arc<T>>,
}

impl<T: HasVersion> Versioned<T> {
    /// Starts serving `first`.
    pub fn new(first: T) -> Self {
        Self {
            current: RwLock::new(Arc::new(first)),
        }
    }

    /// The version to use for one whole request.
    pub fn load(&self) -> Arc<T> {
        // A poisoned lock only means a swapper panicked between two
        // complete states; the Arc inside is still whole.
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Publishes `next` if it is newer; returns the version it replaced.
    pub fn swap(&self, next: T) -> Result<u64, StaleVersion> {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        let served = current.version();
        if next.version() <= served {
            return Err(StaleVersion {
                offered: next.version(),
                served,
            });
        }
        *current = Arc::new(next);
        Ok(served)
    }
}
// ANCHOR_END: versioned
