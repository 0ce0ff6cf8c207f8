//! The ANN index: recall against brute force, inserts, versioned swaps.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use recommendations::ann::hnsw::{Hnsw, Params, brute_force};
use recommendations::ann::reference::Reference;
use recommendations::ann::versioned::{HasVersion, StaleVersion, Versioned};
use recommendations::ann::{clustered_unit_vectors, recall};
use recommendations::model::{EF_SEARCH, HNSW};

fn mean_recall(
    index: &Hnsw,
    data: &recommendations::vector::Matrix,
    queries: &recommendations::vector::Matrix,
    ef: usize,
) -> f64 {
    let mut sum = 0.0;
    for i in 0..queries.rows() {
        let q = queries.row(i);
        sum += recall(&brute_force(data, q, 10), &index.search(q, 10, ef));
    }
    sum / queries.rows() as f64
}

#[test]
fn our_hnsw_finds_at_least_95_percent_of_the_exact_top_10() {
    let data = clustered_unit_vectors(1_000, 16, 20, 3);
    let queries = clustered_unit_vectors(100, 16, 20, 4);
    let index = Hnsw::build(&data, HNSW);
    let r = mean_recall(&index, &data, &queries, EF_SEARCH);
    assert!(r >= 0.95, "recall@10 {r}");
}

#[test]
fn our_hnsw_and_instant_distance_agree_on_a_small_set() {
    // The crate's build is slow in a debug build, so this comparison uses
    // fewer vectors than the others; the bench compares at full size.
    let data = clustered_unit_vectors(500, 16, 20, 3);
    let queries = clustered_unit_vectors(50, 16, 20, 4);
    let ours = Hnsw::build(&data, HNSW);
    let theirs = Reference::build(&data, HNSW.ef_construction, EF_SEARCH, 1);
    let (mut r_ours, mut r_theirs) = (0.0, 0.0);
    for i in 0..queries.rows() {
        let q = queries.row(i);
        let exact = brute_force(&data, q, 10);
        r_ours += recall(&exact, &ours.search(q, 10, EF_SEARCH));
        r_theirs += recall(&exact, &theirs.search(q, 10));
    }
    let n = queries.rows() as f64;
    assert!(r_ours / n >= 0.95, "ours {}", r_ours / n);
    assert!(r_theirs / n >= 0.95, "instant-distance {}", r_theirs / n);
}

#[test]
fn a_narrow_search_loses_recall() {
    // The knob is real: ef = 1 finds less than ef = 128 on the same graph.
    let data = clustered_unit_vectors(1_000, 16, 20, 3);
    let queries = clustered_unit_vectors(100, 16, 20, 4);
    let index = Hnsw::build(&data, Params { m: 4, ..HNSW });
    assert!(
        mean_recall(&index, &data, &queries, 1) < mean_recall(&index, &data, &queries, EF_SEARCH)
    );
}

#[test]
fn inserted_items_are_found_without_a_rebuild() {
    let all = clustered_unit_vectors(1_000, 16, 20, 5);
    let mut first = recommendations::vector::Matrix::zeros(0, 16);
    for i in 0..750 {
        first.push(all.row(i));
    }
    let mut index = Hnsw::build(&first, HNSW);
    for i in 750..1_000 {
        let id = index.insert(all.row(i));
        assert_eq!(id as usize, i);
    }
    // Every new item is its own nearest neighbour, and recall over the grown
    // set still holds.
    for i in 750..1_000 {
        assert_eq!(index.search(all.row(i), 1, EF_SEARCH)[0].0 as usize, i);
    }
    let queries = clustered_unit_vectors(100, 16, 20, 6);
    let r = mean_recall(&index, &all, &queries, EF_SEARCH);
    assert!(r >= 0.95, "recall@10 after inserts {r}");
}

struct Build {
    version: u64,
    ids: Vec<u64>,
}

impl HasVersion for Build {
    fn version(&self) -> u64 {
        self.version
    }
}

#[test]
fn a_stale_index_never_replaces_a_newer_one() {
    let handle = Versioned::new(Build {
        version: 2,
        ids: vec![],
    });
    assert_eq!(
        handle.swap(Build {
            version: 1,
            ids: vec![]
        }),
        Err(StaleVersion {
            offered: 1,
            served: 2
        })
    );
    assert_eq!(
        handle
            .swap(Build {
                version: 2,
                ids: vec![]
            })
            .map_err(|e| e.served),
        Err(2)
    );
    assert_eq!(handle.load().version, 2);
    assert_eq!(
        handle.swap(Build {
            version: 3,
            ids: vec![]
        }),
        Ok(2)
    );
}

#[test]
fn readers_see_the_old_or_the_new_version_never_a_mix() {
    // Each build's ids all carry its version; a reader that saw half of one
    // swap would find ids of two versions in one answer.
    let build = |v: u64| Build {
        version: v,
        ids: (0..1_000).map(|i| v * 1_000_000 + i).collect(),
    };
    let handle = Arc::new(Versioned::new(build(1)));
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (handle, stop, reads) = (handle.clone(), stop.clone(), reads.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let b = handle.load();
                    assert!(b.ids.iter().all(|id| id / 1_000_000 == b.version));
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let mut v = 2;
    while v < 200 || reads.load(Ordering::Relaxed) < 1_000 {
        handle.swap(build(v)).expect("newer");
        v += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().expect("a reader saw a mixed version");
    }
}
