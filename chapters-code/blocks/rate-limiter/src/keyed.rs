//! A bucket per client, in a map whose memory is bounded.
//!
//! A client that invents keys (a new source address per request, a random
//! API key) must not grow the map without bound. The map holds at most
//! `max_keys` buckets, split over shards by a per-process random hash, so
//! a client cannot aim its keys at one shard. A new key in a full shard:
//!
//! 1. first the shard forgets every bucket that is full again. That loses
//!    nothing: a full bucket and a forgotten one give the same answers.
//!    The shard remembers when its first bucket can be full again and does
//!    not sweep before then, so a flood of new keys costs one sweep per
//!    such moment, not one per key;
//! 2. if no bucket was full, the new key is not stored: it is counted
//!    against the shard's overflow bucket, one bucket with the same quota
//!    shared by every key that found no room. So invented keys together get
//!    at most one client's rate per shard, and known clients keep theirs.
//!    The cost: a genuine new client that arrives during such a flood shares
//!    the overflow bucket with the flood until buckets fill again.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::Mutex;

use crate::Limiter;
use crate::bucket::TokenBucket;
use crate::clock::{Clock, MonotonicClock};
use crate::quota::{Decision, Quota};

/// Shards of the map: enough that two cores rarely wait on one lock.
const SHARDS: usize = 16;

// ANCHOR: keyed
/// A token bucket per key, at most `max_keys` of them in memory.
pub struct KeyedBuckets<K, C = MonotonicClock> {
    quota: Quota,
    clock: C,
    hasher: RandomState,
    per_shard: usize,
    shards: Box<[Mutex<Shard<K>>]>,
}

struct Shard<K> {
    buckets: HashMap<K, TokenBucket>,
    /// Shared by the keys that found the shard full.
    overflow: TokenBucket,
    /// No bucket of this shard can be full before this time.
    next_sweep: u64,
}

impl<K: Hash + Eq + Clone, C: Clock> KeyedBuckets<K, C> {
    fn check_at(&self, key: &K, now: u64) -> Decision {
        let shard = &self.shards[self.hasher.hash_one(key) as usize % self.shards.len()];
        let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(bucket) = shard.buckets.get_mut(key) {
            return bucket.check(&self.quota, now);
        }
        if shard.buckets.len() >= self.per_shard && now >= shard.next_sweep {
            let quota = self.quota;
            shard.buckets.retain(|_, b| !b.is_full(&quota, now));
            shard.next_sweep = shard
                .buckets
                .values()
                .map(|b| b.full_at(&quota))
                .min()
                .unwrap_or(now);
        }
        if shard.buckets.len() < self.per_shard {
            let mut bucket = TokenBucket::full(&self.quota, now);
            let decision = bucket.check(&self.quota, now);
            shard.next_sweep = shard.next_sweep.min(bucket.full_at(&self.quota));
            shard.buckets.insert(key.clone(), bucket);
            return decision;
        }
        shard.overflow.check(&self.quota, now)
    }
}
// ANCHOR_END: keyed

impl<K: Hash + Eq + Clone> KeyedBuckets<K, MonotonicClock> {
    /// Buckets with `quota` on the process's clock, at most `max_keys` (at least 1) in memory.
    pub fn new(quota: Quota, max_keys: usize) -> Self {
        Self::with_clock(quota, max_keys, MonotonicClock::new())
    }
}

impl<K: Hash + Eq + Clone, C: Clock> KeyedBuckets<K, C> {
    /// Buckets with `quota` on `clock`, at most `max_keys` (at least 1) in memory.
    pub fn with_clock(quota: Quota, max_keys: usize, clock: C) -> Self {
        let max_keys = max_keys.max(1);
        let shards = SHARDS.min(max_keys);
        let per_shard = max_keys / shards;
        let now = clock.now();
        Self {
            quota,
            hasher: RandomState::new(),
            per_shard,
            shards: (0..shards)
                .map(|_| {
                    Mutex::new(Shard {
                        buckets: HashMap::new(),
                        overflow: TokenBucket::full(&quota, now),
                        next_sweep: 0,
                    })
                })
                .collect(),
            clock,
        }
    }

    /// The limit each key gets.
    pub fn quota(&self) -> &Quota {
        &self.quota
    }

    /// Buckets held now.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).buckets.len())
            .sum()
    }

    /// True when no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most buckets ever held at once (at most the `max_keys` asked for).
    pub fn capacity(&self) -> usize {
        self.per_shard * self.shards.len()
    }
}

impl<K: Hash + Eq + Clone + Send + 'static, C: Clock> Limiter<K> for KeyedBuckets<K, C> {
    fn check(&self, key: &K) -> Decision {
        self.check_at(key, self.clock.now())
    }
}

/// Memory of one tracked key besides the map's spare slots: the key, its
/// bucket, and the map's one control byte per entry.
pub const fn bytes_per_key<K>() -> usize {
    std::mem::size_of::<(K, TokenBucket)>() + 1
}
