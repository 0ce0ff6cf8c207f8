//! The k-way merge at the heart of fan-out on read.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::PostId;

// ANCHOR: merge
/// The `limit` newest distinct items of `sources`, each already sorted
/// newest first (by `id`), newest first.
///
/// A heap holds the head of each source, so the cost is
/// O(limit x log k) comparisons for k sources, and at most `limit` items
/// of each source are ever looked at. An item present in several sources
/// (a post both pushed to a timeline and pulled from its author) appears
/// once.
pub fn merge_newest<T>(sources: Vec<Vec<T>>, limit: usize, id: impl Fn(&T) -> PostId) -> Vec<T> {
    let mut iters: Vec<_> = sources.into_iter().map(|s| s.into_iter()).collect();
    // (id, source index), max-heap on id; the item itself waits in `heads`.
    let mut heap = BinaryHeap::with_capacity(iters.len());
    let mut heads: Vec<Option<T>> = Vec::with_capacity(iters.len());
    for (i, it) in iters.iter_mut().enumerate() {
        let head = it.next();
        if let Some(h) = &head {
            heap.push((id(h), Reverse(i)));
        }
        heads.push(head);
    }
    let mut out: Vec<T> = Vec::with_capacity(limit);
    while out.len() < limit {
        let Some((top, Reverse(i))) = heap.pop() else {
            break;
        };
        let Some(item) = heads[i].take() else { break };
        if out.last().is_none_or(|last| id(last) != top) {
            out.push(item);
        }
        if let Some(next) = iters[i].next() {
            heap.push((id(&next), Reverse(i)));
            heads[i] = Some(next);
        }
    }
    out
}
// ANCHOR_END: merge

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(n: u64) -> PostId {
        PostId::from_raw(n).expect("positive")
    }

    proptest! {
        #[test]
        fn merge_equals_sort_dedupe_truncate(
            sources in prop::collection::vec(prop::collection::btree_set(1u64..200, 0..20), 0..8),
            limit in 0usize..50,
        ) {
            let lists: Vec<Vec<PostId>> = sources
                .iter()
                .map(|s| s.iter().rev().map(|n| id(*n)).collect())
                .collect();
            let mut expected: Vec<PostId> = lists.iter().flatten().copied().collect();
            expected.sort_unstable_by(|a, b| b.cmp(a));
            expected.dedup();
            expected.truncate(limit);
            prop_assert_eq!(merge_newest(lists, limit, |p| *p), expected);
        }
    }
}
