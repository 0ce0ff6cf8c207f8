//! Hashing schemes that send one key to one backend: a consistent-hash ring
//! with virtual nodes, Maglev, rendezvous hashing and jump hash.
//!
//! Each scheme is first a pure map from a key to an index in a list of
//! backend ids (what the disruption and spread tables measure), then a
//! [`Balancer`] that keeps its table for the current list and, when the
//! backend a key maps to is down, falls back to the key's next choice.

use crate::hash::{below, mix2, mix64};

use super::{Balancer, Candidate};

/// Points per backend on the ring when the configuration does not say.
pub const DEFAULT_VNODES: usize = 160;

// ANCHOR: maglev_size
/// Envoy's default Maglev table size: a prime, and more than 100 times any
/// pool this chapter runs, the paper's condition for shares within about 1%.
pub const MAGLEV_DEFAULT_SIZE: usize = 65_537;
// ANCHOR_END: maglev_size

/// True when `ids` lists exactly the candidates' ids, in order.
fn same_ids(ids: &[u64], backends: &[Candidate]) -> bool {
    ids.len() == backends.len() && ids.iter().zip(backends).all(|(a, b)| *a == b.id)
}

fn ids_of(backends: &[Candidate]) -> Vec<u64> {
    backends.iter().map(|c| c.id).collect()
}

// ANCHOR: ring
/// A consistent-hash ring: `vnodes` points per backend at hashed positions;
/// a key belongs to the first point clockwise from its hash.
#[derive(Debug, Clone)]
pub struct Ring {
    /// (position, backend index), sorted by position.
    points: Vec<(u64, usize)>,
}

impl Ring {
    /// The ring of `ids` with `vnodes` points each.
    pub fn new(ids: &[u64], vnodes: usize) -> Self {
        let mut points: Vec<(u64, usize)> = ids
            .iter()
            .enumerate()
            .flat_map(|(i, &id)| (0..vnodes as u64).map(move |v| (mix2(id, v), i)))
            .collect();
        points.sort_unstable();
        Self { points }
    }

    /// The index of the first point at or after the key's hash (wrapping).
    fn start(&self, key: u64) -> usize {
        let h = mix64(key);
        self.points.partition_point(|&(p, _)| p < h) % self.points.len().max(1)
    }

    /// The backend `key` maps to, or `None` for an empty ring.
    pub fn lookup(&self, key: u64) -> Option<usize> {
        self.points.get(self.start(key)).map(|&(_, i)| i)
    }

    /// The first backend clockwise from `key` for which `ok` holds.
    pub fn lookup_where(&self, key: u64, ok: impl Fn(usize) -> bool) -> Option<usize> {
        let n = self.points.len();
        let s = self.start(key);
        (0..n).map(|k| self.points[(s + k) % n].1).find(|&i| ok(i))
    }

    /// Each of `n` backends' exact share of the hash space: a point owns
    /// the arc from the previous point up to itself.
    pub fn shares(&self, n: usize) -> Vec<f64> {
        let mut shares = vec![0.0; n];
        for (j, &(p, owner)) in self.points.iter().enumerate() {
            let prev = match j {
                0 => self.points[self.points.len() - 1].0,
                _ => self.points[j - 1].0,
            };
            if let Some(s) = shares.get_mut(owner) {
                *s += p.wrapping_sub(prev) as f64 / 2f64.powi(64);
            }
        }
        shares
    }
}
// ANCHOR_END: ring

// ANCHOR: maglev
/// Google's Maglev table (Eisenbud et al., NSDI 2016): each backend walks
/// its own permutation of the `size` slots (an offset and a skip from two
/// hashes of its id) and the backends take turns claiming their next free
/// slot, so each ends with `size / n` slots, give or take one. `size` must
/// be prime for every skip to visit every slot.
#[derive(Debug, Clone)]
pub struct Maglev {
    table: Vec<usize>,
}

impl Maglev {
    /// The table of `ids` with `size` slots (`size` prime, larger than the pool).
    pub fn new(ids: &[u64], size: usize) -> Self {
        let n = ids.len();
        if n == 0 || size == 0 {
            return Self { table: Vec::new() };
        }
        let perm: Vec<(usize, usize)> = ids
            .iter()
            .map(|&id| {
                let offset = below(mix2(id, 1), size);
                let skip = below(mix2(id, 2), size - 1) + 1;
                (offset, skip)
            })
            .collect();
        let mut next = vec![0usize; n];
        let mut table = vec![usize::MAX; size];
        let mut filled = 0;
        'fill: loop {
            for i in 0..n {
                let (offset, skip) = perm[i];
                // The backend's next preferred slot that nobody holds yet.
                let mut slot = (offset + next[i] * skip) % size;
                while table[slot] != usize::MAX {
                    next[i] += 1;
                    slot = (offset + next[i] * skip) % size;
                }
                table[slot] = i;
                next[i] += 1;
                filled += 1;
                if filled == size {
                    break 'fill;
                }
            }
        }
        Self { table }
    }

    /// The backend `key` maps to, or `None` for an empty table.
    pub fn lookup(&self, key: u64) -> Option<usize> {
        let slot = below(mix64(key), self.table.len());
        self.table.get(slot).copied()
    }

    /// How many slots each of `n` backends holds.
    pub fn slots_per_backend(&self, n: usize) -> Vec<usize> {
        let mut counts = vec![0; n];
        for &i in &self.table {
            if let Some(c) = counts.get_mut(i) {
                *c += 1;
            }
        }
        counts
    }
}
// ANCHOR_END: maglev

// ANCHOR: rendezvous
/// Rendezvous (highest random weight) hashing: a key goes to the backend
/// whose hash with the key is the highest. No table; a lookup costs O(n).
pub fn rendezvous(ids: &[u64], key: u64, ok: impl Fn(usize) -> bool) -> Option<usize> {
    let k = mix64(key);
    ids.iter()
        .enumerate()
        .filter(|&(i, _)| ok(i))
        .max_by_key(|&(_, &id)| mix2(id, k))
        .map(|(i, _)| i)
}
// ANCHOR_END: rendezvous

// ANCHOR: jump
/// Lamping and Veach's jump consistent hash (2014): the bucket in `0..n` of
/// `key`'s hash, with no table. Growing `n` by one moves exactly the keys that land
/// in the new bucket; it can only add or remove the LAST bucket.
pub fn jump(key: u64, n: usize) -> Option<usize> {
    if n == 0 {
        return None;
    }
    let mut k = mix64(key);
    let (mut b, mut j): (i64, i64) = (-1, 0);
    while j < n as i64 {
        b = j;
        k = k.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = (((b + 1) as f64) * ((1u64 << 31) as f64 / (((k >> 33) + 1) as f64))) as i64;
    }
    usize::try_from(b).ok()
}
// ANCHOR_END: jump

/// How many times a table-based scheme re-hashes a key whose backend is
/// down before it scans for any backend that is up.
const REHASH_TRIES: u64 = 16;

/// The ring as a [`Balancer`]; a key whose backend is down goes to the next one clockwise.
#[derive(Debug)]
pub struct RingBalancer {
    vnodes: usize,
    ids: Vec<u64>,
    ring: Ring,
}

impl RingBalancer {
    /// A ring balancer with `vnodes` points per backend.
    pub fn new(vnodes: usize) -> Self {
        Self {
            vnodes,
            ids: Vec::new(),
            ring: Ring::new(&[], vnodes),
        }
    }
}

impl Balancer for RingBalancer {
    fn name(&self) -> &'static str {
        "ring hash"
    }

    fn pick(&mut self, backends: &[Candidate], key: u64) -> Option<usize> {
        if !same_ids(&self.ids, backends) {
            self.ids = ids_of(backends);
            self.ring = Ring::new(&self.ids, self.vnodes);
        }
        self.ring.lookup_where(key, |i| backends[i].up)
    }
}

/// A key whose backend is down is re-hashed, then any up backend is taken.
fn rehash_then_scan(
    backends: &[Candidate],
    key: u64,
    lookup: impl Fn(u64) -> Option<usize>,
) -> Option<usize> {
    (0..REHASH_TRIES)
        .filter_map(|t| lookup(if t == 0 { key } else { mix2(key, t) }))
        .find(|&i| backends[i].up)
        .or_else(|| backends.iter().position(|c| c.up))
}

/// Maglev as a [`Balancer`].
#[derive(Debug)]
pub struct MaglevBalancer {
    size: usize,
    ids: Vec<u64>,
    table: Maglev,
}

impl MaglevBalancer {
    /// A Maglev balancer with a table of `size` slots (a prime).
    pub fn new(size: usize) -> Self {
        Self {
            size,
            ids: Vec::new(),
            table: Maglev::new(&[], size),
        }
    }
}

impl Balancer for MaglevBalancer {
    fn name(&self) -> &'static str {
        "Maglev"
    }

    fn pick(&mut self, backends: &[Candidate], key: u64) -> Option<usize> {
        if !same_ids(&self.ids, backends) {
            self.ids = ids_of(backends);
            self.table = Maglev::new(&self.ids, self.size);
        }
        rehash_then_scan(backends, key, |k| self.table.lookup(k))
    }
}

/// Rendezvous hashing as a [`Balancer`]; a key whose backend is down goes to its second choice.
#[derive(Debug)]
pub struct RendezvousBalancer;

impl Balancer for RendezvousBalancer {
    fn name(&self) -> &'static str {
        "rendezvous"
    }

    fn pick(&mut self, backends: &[Candidate], key: u64) -> Option<usize> {
        let ids = ids_of(backends);
        rendezvous(&ids, key, |i| backends[i].up)
    }
}

/// Jump hash as a [`Balancer`], over the backends in list order.
#[derive(Debug, Default)]
pub struct JumpBalancer;

impl Balancer for JumpBalancer {
    fn name(&self) -> &'static str {
        "jump hash"
    }

    fn pick(&mut self, backends: &[Candidate], key: u64) -> Option<usize> {
        rehash_then_scan(backends, key, |k| jump(k, backends.len()))
    }
}
