//! The circuit breaker, driven by a fake clock (a `Duration` since an
//! origin): every transition, the guard that reports a dropped call, the
//! stale answer, and properties over any history of calls, answers and time.

use std::time::Duration;

use block_retry::breaker::{
    Breaker, BreakerConfig, CircuitBreaker, ConfigError, Outcome, Permit, Refused, State,
    TRANSITIONS, state_diagram,
};
use proptest::prelude::*;

/// The fake clock: `s` seconds after its origin.
fn t(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn breaker(threshold: u32, cool_s: u64) -> CircuitBreaker<Duration> {
    CircuitBreaker::new(BreakerConfig {
        failure_threshold: threshold,
        cool_down: t(cool_s),
    })
    .expect("a valid config")
}

fn fail(b: &mut CircuitBreaker<Duration>, now: Duration) {
    let p = b.acquire(now).expect("a permit");
    b.record(p, Outcome::Failure, now);
}

#[test]
fn bad_configs_are_refused() {
    let c = BreakerConfig {
        failure_threshold: 5,
        cool_down: t(30),
    };
    let zero = BreakerConfig {
        failure_threshold: 0,
        ..c
    };
    let none = BreakerConfig {
        cool_down: Duration::ZERO,
        ..c
    };
    assert_eq!(
        CircuitBreaker::<Duration>::new(zero).err(),
        Some(ConfigError::ZeroThreshold)
    );
    assert_eq!(
        CircuitBreaker::<Duration>::new(none).err(),
        Some(ConfigError::NoCoolDown)
    );
    let b = Breaker::<Duration>::new(c).expect("valid");
    assert_eq!(b.state(t(0)), State::Closed { failures: 0 });
}

// ANCHOR: transitions
#[test]
fn threshold_failures_in_a_row_open_it_and_a_success_resets_the_count() {
    let mut b = breaker(3, 30);
    fail(&mut b, t(0));
    fail(&mut b, t(0));
    let p = b.acquire(t(1)).expect("still closed");
    b.record(p, Outcome::Success, t(1));
    assert_eq!(b.state(t(1)), State::Closed { failures: 0 });
    fail(&mut b, t(2));
    fail(&mut b, t(2));
    assert_eq!(b.state(t(2)), State::Closed { failures: 2 });
    fail(&mut b, t(2));
    assert_eq!(b.state(t(2)), State::Open { until: t(32) });
    let refused = b.acquire(t(12)).expect_err("open");
    assert_eq!(refused.retry_after, t(20));
}

#[test]
fn after_the_cool_down_one_probe_goes_and_its_success_closes_it() {
    let mut b = breaker(1, 30);
    fail(&mut b, t(0));
    assert!(b.acquire(t(29)).is_err(), "open for the whole cool-down");
    assert_eq!(b.state(t(30)), State::HalfOpen { probing: false });
    let probe = b.acquire(t(30)).expect("the probe");
    assert!(probe.is_probe());
    let other = b.acquire(t(30)).expect_err("only one probe");
    assert_eq!(other.retry_after_secs(), 1);
    b.record(probe, Outcome::Success, t(31));
    assert_eq!(b.state(t(31)), State::Closed { failures: 0 });
    assert!(!b.acquire(t(31)).expect("closed").is_probe());
}

#[test]
fn a_failed_probe_opens_it_for_another_cool_down() {
    let mut b = breaker(1, 30);
    fail(&mut b, t(0));
    let probe = b.acquire(t(40)).expect("the probe");
    b.record(probe, Outcome::Failure, t(42));
    assert_eq!(b.state(t(42)), State::Open { until: t(72) });
}

#[test]
fn a_probe_that_never_called_hands_the_probe_back() {
    let mut b = breaker(1, 30);
    fail(&mut b, t(0));
    let probe = b.acquire(t(30)).expect("the probe");
    b.record(probe, Outcome::NotCalled, t(30));
    assert_eq!(b.state(t(30)), State::HalfOpen { probing: false });
    assert!(b.acquire(t(30)).expect("a new probe").is_probe());
}

#[test]
fn a_late_answer_from_before_the_change_counts_for_nothing() {
    let mut b = breaker(2, 30);
    let slow_ok = b.acquire(t(0)).expect("closed");
    let slow_fail = b.acquire(t(0)).expect("closed");
    fail(&mut b, t(0));
    fail(&mut b, t(0));
    assert!(matches!(b.state(t(1)), State::Open { .. }));
    // A success issued while closed must not close an open breaker...
    b.record(slow_ok, Outcome::Success, t(1));
    assert_eq!(b.state(t(1)), State::Open { until: t(30) });
    // ...nor a half-open one, whose probe is still out.
    let probe = b.acquire(t(30)).expect("the probe");
    b.record(slow_ok, Outcome::Success, t(31));
    b.record(slow_fail, Outcome::Failure, t(31));
    assert_eq!(b.state(t(31)), State::HalfOpen { probing: true });
    b.record(probe, Outcome::Success, t(31));
    assert_eq!(b.state(t(31)), State::Closed { failures: 0 });
}
// ANCHOR_END: transitions

// ANCHOR: dropped_guard
#[tokio::test(start_paused = true)]
async fn a_guard_dropped_during_the_call_fails_and_before_it_hands_the_probe_back() {
    let b = Breaker::new(BreakerConfig {
        failure_threshold: 1,
        cool_down: t(30),
    })
    .expect("a valid config");
    let mut call = b.guard(t(0)).expect("closed");
    call.calling();
    drop(call);
    assert!(matches!(b.state(t(0)), State::Open { until } if until >= t(30)));
    drop(b.guard(t(31)).expect("the probe"));
    assert_eq!(b.state(t(31)), State::HalfOpen { probing: false });
    let mut probe = b.guard(t(31)).expect("the probe again");
    probe.calling();
    drop(probe);
    assert!(matches!(b.state(t(31)), State::Open { until } if until >= t(61)));
}
// ANCHOR_END: dropped_guard

/// A cancelled `call` future (a client hanging up) counts as a failure,
/// and the cool-down counts from when the call was abandoned: the guard
/// adds the monotonic time elapsed to the caller's time.
#[tokio::test(start_paused = true)]
async fn a_call_cancelled_in_flight_opens_it_from_when_it_was_abandoned() {
    let b = Breaker::new(BreakerConfig {
        failure_threshold: 1,
        cool_down: t(30),
    })
    .expect("a valid config");
    let hung = b.call(t(0), std::future::pending::<()>(), |_| Outcome::Success);
    let gave_up = tokio::time::timeout(t(5), hung).await;
    assert!(gave_up.is_err(), "the call hangs");
    assert_eq!(b.state(t(5)), State::Open { until: t(35) });
    let refused = b
        .call(t(10), async { 1 }, |_| Outcome::Success)
        .await
        .expect_err("open");
    assert_eq!(refused.retry_after, t(25));
    let answered = b.call(t(35), async { 7 }, |_| Outcome::Success).await;
    assert_eq!(answered, Ok(7));
    assert_eq!(b.state(t(35)), State::Closed { failures: 0 });
}

/// Many threads ask a half-open breaker for the probe at the same instant:
/// exactly one gets it, and every other is refused.
#[test]
fn concurrent_callers_get_exactly_one_probe() {
    const CALLERS: usize = 16;
    for _ in 0..50 {
        let b = Breaker::new(BreakerConfig {
            failure_threshold: 1,
            cool_down: t(30),
        })
        .expect("a valid config");
        let p = b.acquire(t(0)).expect("closed");
        b.record(p, Outcome::Failure, t(0));
        let start = std::sync::Barrier::new(CALLERS);
        let probes = std::thread::scope(|s| {
            let handles: Vec<_> = (0..CALLERS)
                .map(|_| {
                    s.spawn(|| {
                        start.wait();
                        b.acquire(t(30)).ok()
                    })
                })
                .collect();
            handles
                .into_iter()
                .filter_map(|h| h.join().expect("no panic"))
                .collect::<Vec<_>>()
        });
        assert_eq!(probes.len(), 1, "{probes:?}");
        assert!(probes[0].is_probe());
    }
}

#[test]
fn retry_after_rounds_up_to_whole_seconds() {
    let r = |ms| Refused {
        retry_after: Duration::from_millis(ms),
    };
    assert_eq!(r(1).retry_after_secs(), 1);
    assert_eq!(r(1_001).retry_after_secs(), 2);
    assert_eq!(r(0).retry_after_secs(), 1);
    assert_eq!(r(3_000).retry_after_secs(), 3);
}

/// The machine in `state` at `now` (a fresh breaker with threshold 2 and a
/// 30 s cool-down), and a permit when the state has one out.
fn in_state(state: &str) -> (CircuitBreaker<Duration>, Option<Permit>, Duration) {
    let mut b = breaker(2, 30);
    match state {
        "Closed" => (b, None, t(0)),
        "Open" => {
            fail(&mut b, t(0));
            fail(&mut b, t(0));
            (b, None, t(0))
        }
        "HalfOpen" => {
            fail(&mut b, t(0));
            fail(&mut b, t(0));
            let probe = b.acquire(t(30)).expect("the probe");
            (b, Some(probe), t(30))
        }
        other => panic!("no state {other}"),
    }
}

fn name(s: State<Duration>) -> &'static str {
    match s {
        State::Closed { .. } => "Closed",
        State::Open { .. } => "Open",
        State::HalfOpen { .. } => "HalfOpen",
    }
}

/// Every row of the generated diagram is what the machine does.
#[test]
fn the_state_diagram_is_the_machine() {
    for &(from, event, to) in TRANSITIONS {
        let (mut b, probe, now) = in_state(from);
        match (from, event) {
            ("Closed", e) if e.starts_with("success") => {
                fail(&mut b, now);
                let p = b.acquire(now).expect("closed");
                b.record(p, Outcome::Success, now);
                assert_eq!(b.state(now), State::Closed { failures: 0 });
            }
            ("Closed", e) if e.starts_with("failure below") => fail(&mut b, now),
            ("Closed", _) => {
                fail(&mut b, now);
                fail(&mut b, now);
            }
            ("Open", e) if e.starts_with("call before") => {
                assert!(b.acquire(t(29)).is_err());
            }
            ("Open", _) => assert!(b.acquire(t(30)).expect("the probe").is_probe()),
            ("HalfOpen", e) if e.starts_with("other call") => {
                assert!(b.acquire(now).is_err());
            }
            ("HalfOpen", e) => {
                let outcome = if e.contains("not called") {
                    Outcome::NotCalled
                } else if e.contains("succeeds") {
                    Outcome::Success
                } else {
                    Outcome::Failure
                };
                b.record(probe.expect("a probe"), outcome, now);
            }
            _ => panic!("row not covered: {from} {event}"),
        }
        let at = if (from, to) == ("Open", "HalfOpen") {
            t(30)
        } else {
            now
        };
        assert_eq!(name(b.state(at)), to, "{from} --{event}--> {to}");
    }
    let diagram = state_diagram();
    assert_eq!(diagram.matches("-->").count(), TRANSITIONS.len() + 1);
}

#[derive(Clone, Debug)]
enum Op {
    /// Move the clock on by this many seconds.
    Wait(u64),
    /// Ask for a permit.
    Acquire,
    /// End the `n`th outstanding permit (modulo) with an outcome.
    End(usize, u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u64..40).prop_map(Op::Wait),
        Just(Op::Acquire),
        (any::<usize>(), 0u8..3).prop_map(|(n, o)| Op::End(n, o)),
    ]
}

proptest! {
    // ANCHOR: properties
    /// Under any interleaving of calls, answers and time: an open breaker
    /// admits no call until its cool-down has passed, at most one probe is
    /// ever out, a closed breaker's count stays below the threshold, and
    /// `threshold` failures in a row from a closed breaker open it.
    #[test]
    fn invariants_hold_under_any_history(
        threshold in 1u32..5,
        cool in 1u64..60,
        ops in proptest::collection::vec(op(), 0..200),
    ) {
        let mut b = breaker(threshold, cool);
        let mut now = t(0);
        let mut out: Vec<Permit> = Vec::new();
        let mut failures_in_a_row = 0u32;
        let mut opened_at: Option<Duration> = None;
        for op in ops {
            match op {
                Op::Wait(s) => now += t(s),
                Op::Acquire => {
                    let before = b.state(now);
                    match b.acquire(now) {
                        Ok(p) => {
                            prop_assert!(!matches!(before, State::Open { .. }), "an open breaker gave a permit");
                            if let Some(at) = opened_at {
                                prop_assert!(now >= at + t(cool), "a permit {:?} after opening, cool-down {cool} s", now - at);
                            }
                            prop_assert!(before != State::HalfOpen { probing: true }, "a second probe");
                            prop_assert_eq!(p.is_probe(), matches!(before, State::HalfOpen { .. }));
                            out.push(p);
                        }
                        Err(r) => {
                            prop_assert!(r.retry_after_secs() >= 1);
                            prop_assert!(!matches!(before, State::Closed { .. }), "a closed breaker refused");
                        }
                    }
                }
                Op::End(n, o) if !out.is_empty() => {
                    let p = out.remove(n % out.len());
                    let outcome = [Outcome::Success, Outcome::Failure, Outcome::NotCalled][usize::from(o)];
                    let before = b.state(now);
                    let live = p.epoch() == b.epoch();
                    b.record(p, outcome, now);
                    let after = b.state(now);
                    if live && matches!(before, State::Closed { .. }) {
                        match outcome {
                            Outcome::Failure => failures_in_a_row += 1,
                            Outcome::Success => failures_in_a_row = 0,
                            Outcome::NotCalled => {}
                        }
                        if failures_in_a_row >= threshold {
                            prop_assert_eq!(after, State::Open { until: now + t(cool) });
                        }
                    }
                    if !live {
                        prop_assert_eq!(before, after, "a stale permit changed the state");
                    }
                    if matches!(after, State::Open { .. }) && !matches!(before, State::Open { .. }) {
                        opened_at = Some(now);
                    }
                    if matches!(after, State::Closed { .. }) {
                        opened_at = None;
                    }
                }
                Op::End(..) => {}
            }
            if !matches!(b.state(now), State::Closed { .. }) {
                failures_in_a_row = 0;
            }
            if let State::Closed { failures } = b.state(now) {
                prop_assert!(failures < threshold);
                prop_assert_eq!(failures, failures_in_a_row);
            }
            let probes_live = out.iter().filter(|p| p.is_probe() && p.epoch() == b.epoch()).count();
            prop_assert!(probes_live <= 1, "two probes out");
        }
    }
    // ANCHOR_END: properties
}
