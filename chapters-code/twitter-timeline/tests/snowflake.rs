//! Properties of the Snowflake id generator, fed with arbitrary clocks.

use proptest::prelude::*;
use twitter_timeline::domain::{EPOCH_MS, IdError, MAX_DRIFT_MS, PostId, Snowflake};

/// A clock that wanders: each step moves it by `delta` ms, backwards too.
fn clock_walk() -> impl Strategy<Value = Vec<i64>> {
    prop::collection::vec(
        prop_oneof![
            8 => 0i64..3,                      // same or next milliseconds: sequence use
            1 => -(MAX_DRIFT_MS as i64)..0,    // a step back within the budget
            1 => 1i64..100_000,                // a jump forward
        ],
        1..2_000,
    )
}

fn run(node: u16, steps: &[i64]) -> Vec<Result<PostId, IdError>> {
    let mut g = Snowflake::new(node).expect("valid node");
    let mut now = EPOCH_MS as i64 + 1_000_000;
    steps
        .iter()
        .map(|d| {
            now += d;
            g.next_id(now as u64)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn ids_strictly_increase_per_node_whatever_the_clock_does(steps in clock_walk()) {
        let ids: Vec<PostId> = run(3, &steps).into_iter().filter_map(Result::ok).collect();
        for pair in ids.windows(2) {
            prop_assert!(pair[0] < pair[1], "{:?} then {:?}", pair[0], pair[1]);
        }
    }

    #[test]
    fn ids_are_unique_across_nodes(a in clock_walk(), b in clock_walk(), n1 in 0u16..1024, n2 in 0u16..1024) {
        prop_assume!(n1 != n2);
        let mut all: Vec<PostId> = run(n1, &a).into_iter().chain(run(n2, &b)).filter_map(Result::ok).collect();
        let issued = all.len();
        all.sort_unstable();
        all.dedup();
        prop_assert_eq!(all.len(), issued);
    }

    #[test]
    fn a_step_back_within_the_budget_is_absorbed_and_a_larger_one_refused(
        warmup in 1usize..50, back in 1u64..(3 * MAX_DRIFT_MS),
    ) {
        let mut g = Snowflake::new(1).expect("valid node");
        let t = EPOCH_MS + 10_000_000;
        let mut last = g.next_id(t).expect("id");
        for _ in 0..warmup {
            last = g.next_id(t).expect("id");
        }
        let stepped = g.next_id(t - back);
        if back <= MAX_DRIFT_MS {
            // The node keeps counting from where it was: still increasing,
            // and its time is the old clock's, not the stepped-back one.
            let id = stepped.expect("absorbed");
            prop_assert!(id > last);
            prop_assert_eq!(id.ms_since_epoch(), t - EPOCH_MS);
        } else {
            prop_assert_eq!(stepped, Err(IdError::ClockBehind { behind_ms: back }));
            // Refusing changed nothing: once the clock is back, ids resume in order.
            let next = g.next_id(t).expect("resumed");
            prop_assert_eq!(next.raw(), last.raw() + 1);
        }
    }

    #[test]
    fn the_time_in_an_id_is_never_earlier_than_the_clock(steps in clock_walk()) {
        let mut g = Snowflake::new(9).expect("valid node");
        let mut now = EPOCH_MS as i64 + 1_000_000;
        for d in steps {
            now += d;
            if let Ok(id) = g.next_id(now as u64) {
                let id_ms = id.ms_since_epoch() as i64 + EPOCH_MS as i64;
                prop_assert!(id_ms >= now && id_ms - now <= MAX_DRIFT_MS as i64);
            }
        }
    }
}
