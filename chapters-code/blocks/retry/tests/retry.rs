//! Retry, backoff and deadlines over random failure schedules, in tokio's
//! paused (virtual) time: the attempt limit, the deadline, the bounds of
//! every jittered delay, and the classification of errors.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use block_retry::backoff::{Backoff, BackoffError, Jitter, Rng};
use block_retry::deadline::{Deadline, DeadlineError};
use block_retry::retry::{RetryError, RetryPolicy, retry};
use proptest::prelude::*;
use tokio::time::Instant;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A current-thread runtime whose clock only moves when every task sleeps.
fn paused() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime")
}

/// How one attempt of the scheduled operation ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Succeeds after this long.
    Ok(u64),
    /// Fails with a retryable error after this long.
    Transient(u64),
    /// Fails with an error not worth retrying after this long.
    Fatal(u64),
}

/// The operation's error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Error {
    Transient,
    Fatal,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => (0u64..300).prop_map(Step::Ok),
        3 => (0u64..300).prop_map(Step::Transient),
        1 => (0u64..300).prop_map(Step::Fatal),
    ]
}

fn jitter() -> impl Strategy<Value = Jitter> {
    prop_oneof![
        Just(Jitter::None),
        Just(Jitter::Full),
        Just(Jitter::Equal),
        Just(Jitter::Decorrelated),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    // ANCHOR: retry_properties
    /// Whatever the operation does: at most `1 + max_retries` attempts, the
    /// whole call ends by the deadline, a success is returned at once, and
    /// an error the caller does not retry is never retried.
    #[test]
    fn attempts_and_elapsed_stay_within_the_policy_and_the_deadline(
        schedule in proptest::collection::vec(step(), 1..12),
        max_retries in 0u32..8,
        base in 1u64..100,
        cap_factor in 1u64..50,
        jitter in jitter(),
        budget in 0u64..3_000,
        seed in any::<u64>(),
    ) {
        let backoff = Backoff::new(ms(base), ms(base * cap_factor), jitter).expect("valid");
        let policy = RetryPolicy { max_retries, backoff };
        let (result, attempts, elapsed) = paused().block_on(async {
            let start = Instant::now();
            let deadline = Deadline::after(ms(budget));
            let calls = Arc::new(Mutex::new(0usize));
            let mut rng = Rng::seeded(seed);
            let result = retry(&policy, deadline, &mut rng, |e| *e == Error::Transient, |a| {
                let calls = Arc::clone(&calls);
                let schedule = schedule.clone();
                async move {
                    let i = {
                        let mut c = calls.lock().expect("lock");
                        *c += 1;
                        *c - 1
                    };
                    assert_eq!(a.number as usize, i + 1, "attempts are numbered from 1");
                    match schedule.get(i).copied().unwrap_or(Step::Transient(0)) {
                        Step::Ok(d) => { tokio::time::sleep(ms(d)).await; Ok(i) }
                        Step::Transient(d) => { tokio::time::sleep(ms(d)).await; Err(Error::Transient) }
                        Step::Fatal(d) => { tokio::time::sleep(ms(d)).await; Err(Error::Fatal) }
                    }
                }
            }).await;
            let attempts = *calls.lock().expect("lock");
            (result, attempts, start.elapsed())
        });
        prop_assert!(attempts <= 1 + max_retries as usize, "{attempts} attempts, max_retries {max_retries}");
        prop_assert!(elapsed <= ms(budget), "took {elapsed:?}, deadline {budget} ms");
        match result {
            Ok(i) => {
                prop_assert_eq!(i + 1, attempts);
                prop_assert!(matches!(schedule.get(i), Some(Step::Ok(_))));
            }
            Err(RetryError::NotRetryable { error, attempts: a }) => {
                prop_assert_eq!(error, Error::Fatal);
                prop_assert_eq!(a as usize, attempts);
            }
            Err(RetryError::Exhausted { error, attempts: a }) => {
                prop_assert_eq!(error, Error::Transient);
                prop_assert_eq!(a, 1 + max_retries);
            }
            Err(RetryError::Deadline { attempts: a, .. }) => {
                prop_assert_eq!(a as usize, attempts);
            }
        }
        // Every attempt before the last one failed with a retryable error.
        for s in schedule.iter().take(attempts.saturating_sub(1)) {
            prop_assert!(matches!(s, Step::Transient(_)), "retried after {s:?}");
        }
    }
    // ANCHOR_END: retry_properties

    // ANCHOR: jitter_properties
    /// Every delay is within the bounds of its jitter: none = the ceiling,
    /// full in [0, ceiling], equal in [ceiling/2, ceiling], decorrelated in
    /// [base, min(cap, 3 * prev)]; and no delay exceeds the cap.
    #[test]
    fn each_jittered_delay_is_within_its_bounds(
        base in 1u64..10_000,
        cap_factor in 1u64..1_000,
        jitter in jitter(),
        retries in 1u32..80,
        seed in any::<u64>(),
    ) {
        let b = Backoff::new(ms(base), ms(base * cap_factor), jitter).expect("valid");
        let mut rng = Rng::seeded(seed);
        let mut prev = b.base();
        for n in 0..retries {
            let ceiling = b.ceiling(n);
            prop_assert_eq!(ceiling, ms(base).saturating_mul(1u32.checked_shl(n).unwrap_or(u32::MAX)).min(b.cap()));
            let d = b.delay(n, prev, &mut rng);
            prop_assert!(d <= b.cap(), "{d:?} over the cap");
            match jitter {
                Jitter::None => prop_assert_eq!(d, ceiling),
                Jitter::Full => prop_assert!(d <= ceiling),
                Jitter::Equal => prop_assert!(d >= ceiling / 2 && d <= ceiling, "{d:?} vs {ceiling:?}"),
                Jitter::Decorrelated => prop_assert!(
                    d >= b.base() && d <= (prev * 3).min(b.cap()),
                    "{d:?} outside [{:?}, min(cap, 3 x {prev:?})]", b.base()
                ),
            }
            prev = d;
        }
    }
    // ANCHOR_END: jitter_properties
}

#[test]
fn bad_backoffs_are_refused() {
    assert_eq!(
        Backoff::new(Duration::ZERO, ms(10), Jitter::Full).err(),
        Some(BackoffError::ZeroBase)
    );
    assert_eq!(
        Backoff::new(ms(10), ms(5), Jitter::Full).err(),
        Some(BackoffError::CapBelowBase)
    );
}

#[test]
fn the_same_seed_draws_the_same_delays() {
    let b = Backoff::new(ms(5), ms(2_000), Jitter::Full).expect("valid");
    let draw = |seed| {
        let mut rng = Rng::seeded(seed);
        (0..10)
            .map(|n| b.delay(n, b.base(), &mut rng))
            .collect::<Vec<_>>()
    };
    assert_eq!(draw(7), draw(7));
    assert_ne!(draw(7), draw(8));
}

/// A retry that would sleep past the deadline gives up at once, with the
/// error it has, instead of sleeping and then being cut short.
#[tokio::test(start_paused = true)]
async fn a_backoff_that_would_pass_the_deadline_is_not_slept() {
    let backoff = Backoff::new(ms(400), ms(400), Jitter::None).expect("valid");
    let policy = RetryPolicy {
        max_retries: 10,
        backoff,
    };
    let start = Instant::now();
    let got: Result<(), _> = retry(
        &policy,
        Deadline::after(ms(1_000)),
        &mut Rng::seeded(1),
        |_: &Error| true,
        |_| async { Err(Error::Transient) },
    )
    .await;
    // Attempts at 0, 400 and 800 ms; a fourth would start at 1,200 ms.
    assert_eq!(
        got,
        Err(RetryError::Deadline {
            error: Some(Error::Transient),
            attempts: 3
        })
    );
    assert_eq!(start.elapsed(), ms(800), "no sleep past the deadline");
}

// ANCHOR: deadline_tests
#[tokio::test(start_paused = true)]
async fn a_deadline_becomes_each_call_timeout_and_refuses_work_that_cannot_finish() {
    let deadline = Deadline::after(ms(1_000));
    assert_eq!(deadline.budget_for(ms(100)), Ok(ms(1_000)));
    tokio::time::sleep(ms(950)).await;
    assert_eq!(deadline.remaining(), ms(50));
    assert_eq!(
        deadline.budget_for(ms(100)),
        Err(DeadlineError::TooLittleTime {
            left: ms(50),
            needed: ms(100)
        })
    );
    let mut started = false;
    let refused = deadline
        .run(ms(100), async {
            started = true;
        })
        .await;
    assert!(
        refused.is_err() && !started,
        "work that cannot finish is not started"
    );
    let cut = deadline.run(ms(10), tokio::time::sleep(ms(60))).await;
    assert_eq!(cut, Err(DeadlineError::Elapsed));
    assert!(deadline.is_expired());
}

#[tokio::test(start_paused = true)]
async fn a_child_deadline_only_shrinks() {
    let parent = Deadline::after(ms(500));
    assert_eq!(parent.child(ms(2_000)), parent, "a callee never gets more");
    let child = parent.child(ms(100));
    assert_eq!(child.remaining(), ms(100));
    assert!(child < parent);
}
// ANCHOR_END: deadline_tests
