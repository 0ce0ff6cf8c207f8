//! The checkout saga on real PostgreSQL: the happy path, every failure
//! point with its compensations in reverse order, the pivot, the semantic
//! lock, timeouts and retries, the dead-letter state, a coordinator that
//! stops mid-saga (in-process), and one whose process dies for real
//! mid-compensation.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::saga::*;
use common::*;
use order_management::domain::{Command, CommandError, Refusal, State};
use order_management::saga::{
    CrashAt, Handoff, Orchestrator, PIVOT, STEPS, SagaError, SagaStatus, Step,
};
use order_management::store::{OrderStore, StoreError};
use uuid::Uuid;

#[tokio::test]
async fn a_checkout_runs_every_step_once_and_the_order_is_paid() {
    let Some(env) = saga_env().await else { return };
    let (o, id, saga, status) = env.checkout(|_| {}).await;
    assert_eq!(status, SagaStatus::Completed);
    assert_eq!(log(&o, saga).await, HAPPY);
    assert_eq!(env.state(id).await, State::Paid);
    assert_eq!(env.stock("A").await, (7, 0));
    assert_eq!(env.stock("B").await, (9, 0));
    assert_eq!(env.payment(saga).await.as_deref(), Some("captured"));
}

// ANCHOR: reverse_order
/// The pivot itself fails (the provider refuses the capture): every step
/// before it is undone, the last one first. This is the order the FTGO
/// reader expected (C3, C2, C1) and did not get.
#[tokio::test]
async fn a_failed_pivot_compensates_every_earlier_step_in_reverse_order() {
    let Some(env) = saga_env().await else { return };
    let (o, id, saga, status) = env.checkout(|o| o.faults.refuse_capture = true).await;
    assert_eq!(status, SagaStatus::Compensated);
    // place, reserve, authorize; then void, release, reject.
    assert_eq!(log(&o, saga).await, UNDONE_AFTER_AUTHORIZE);
    assert_eq!(env.state(id).await, State::PaymentFailed);
    assert_eq!(env.stock("A").await, (10, 0));
    assert_eq!(env.payment(saga).await.as_deref(), Some("voided"));
}
// ANCHOR_END: reverse_order

#[tokio::test]
async fn a_declined_card_releases_the_stock_and_fails_the_payment() {
    let Some(env) = saga_env().await else { return };
    let (o, id, saga, status) = env.checkout(|o| o.config.card_limit_cents = 100).await;
    assert_eq!(status, SagaStatus::Compensated);
    assert_eq!(log(&o, saga).await, UNDONE_BEFORE_AUTHORIZE);
    assert_eq!(env.state(id).await, State::PaymentFailed);
    assert_eq!(
        (env.stock("A").await, env.stock("B").await),
        ((10, 0), (10, 0))
    );
    assert_eq!(env.payment(saga).await, None);
    let (_, _, failure) = ok("status", o.status(saga).await);
    assert_eq!(failure.as_deref(), Some("card declined"));
}

#[tokio::test]
async fn no_stock_rejects_the_order_and_reserves_nothing() {
    let Some(env) = saga_env().await else { return };
    ok(
        "scarce",
        env.db
            .apply_sql("UPDATE stock SET on_hand = 2 WHERE sku = 'A'")
            .await,
    );
    let o = env.orchestrator();
    // B is reserved first, then A fails: B's reservation must not survive.
    let id = env.order(&new_order(&[("B", 1, 250), ("A", 3, 100)])).await;
    let (saga, status) = ok("checkout", o.checkout(id, 1).await);
    assert_eq!(status, SagaStatus::Compensated);
    assert_eq!(log(&o, saga).await, ["order.place", "order.reject"]);
    assert_eq!(env.state(id).await, State::Rejected);
    assert_eq!(
        (env.stock("A").await, env.stock("B").await),
        ((2, 0), (10, 0))
    );
}

// ANCHOR: semantic_lock
#[tokio::test]
async fn a_pending_order_refuses_client_commands_until_the_saga_ends() {
    let Some(env) = saga_env().await else { return };
    let o = env.orchestrator();
    let id = env.order(&two_lines()).await;
    let saga = ok("start", o.start(id, 1).await);
    for command in [
        Command::Cancel {
            reason: "wait".into(),
        },
        Command::Place,
    ] {
        let err = env.store.apply(id, 2, &command).await;
        assert!(
            matches!(refusal(&err), Some(Refusal::Locked { .. })),
            "{err:?}"
        );
    }
    assert_eq!(ok("run", o.run(saga).await), SagaStatus::Completed);
    // Unlocked: a paid order can be cancelled.
    let order = ok("get", env.store.get(id).await);
    ok(
        "cancel",
        env.store
            .apply(
                id,
                order.version,
                &Command::Cancel {
                    reason: "now".into(),
                },
            )
            .await,
    );
}
// ANCHOR_END: semantic_lock

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_checkouts_of_one_order_start_one_saga() {
    let Some(env) = saga_env().await else { return };
    let o = Arc::new(env.orchestrator());
    let id = env.order(&two_lines()).await;
    let (a, b) = tokio::join!(o.start(id, 1), o.start(id, 1));
    let started = [&a, &b].iter().filter(|r| r.is_ok()).count();
    assert_eq!(started, 1, "{a:?} {b:?}");
    let loser = if a.is_err() { a } else { b };
    assert!(
        matches!(
            loser,
            Err(SagaError::Store(StoreError::VersionConflict { .. }))
        ),
        "{loser:?}"
    );
    let sagas: i64 = ok(
        "sagas",
        sqlx::query_scalar("SELECT count(*) FROM sagas")
            .fetch_one(&env.db.pool)
            .await,
    );
    assert_eq!(sagas, 1);
}

/// The variable with the test database's URL for the coordinator child.
const CHILD_DB: &str = "OM_CHILD_DATABASE_URL";
/// The variable with the saga the coordinator child runs.
const CHILD_SAGA: &str = "OM_CHILD_SAGA";

// ANCHOR: saga_child
/// Not a test of its own: the body of the coordinator child process that
/// the crash test starts (`die_in_child`). It runs one saga whose capture
/// is refused and calls `std::process::abort()` right after the payment's
/// void committed. Run as an ordinary test, it does nothing.
#[tokio::test]
async fn saga_child() {
    let Ok(role) = std::env::var(CHILD_ROLE) else {
        return;
    };
    assert_eq!(role, "mid-compensation", "no saga crash is called {role:?}");
    let saga: Uuid = ok("saga id", child_var(CHILD_SAGA).parse());
    let mut o = Orchestrator::new(child_pool(&child_var(CHILD_DB)).await);
    o.faults.refuse_capture = true;
    o.faults.abort_on_crash = true;
    crash_at(&o, CrashAt::AfterCompensation(Step::AuthorizePayment));
    let ran = o.run(saga).await;
    panic!("the coordinator child outlived its failpoint: {ran:?}");
}
// ANCHOR_END: saga_child

// ANCHOR: crash_mid_compensation
/// A coordinator process dies (SIGABRT) after voiding the payment and
/// before recording it, holding the saga's claim; once PostgreSQL has
/// dropped its connection (and the claim with it), a fresh coordinator
/// resumes the compensation: the void is not repeated, the rest runs once,
/// in reverse order.
#[tokio::test]
async fn a_coordinator_killed_mid_compensation_resumes_and_undoes_each_step_once() {
    let Some(env) = saga_env().await else { return };
    let id = env.order(&two_lines()).await;
    let saga = ok("start", env.orchestrator().start(id, 1).await);
    die_in_child(
        "saga_child",
        "mid-compensation",
        &[
            (CHILD_DB, env.db.url.as_str()),
            (CHILD_SAGA, saga.to_string().as_str()),
        ],
    )
    .await;
    let fresh = env.orchestrator();
    let (status, _, _) = ok("status", fresh.status(saga).await);
    assert_eq!(status, SagaStatus::Compensating);
    assert_eq!(env.state(id).await, State::Pending);
    assert_eq!(
        log(&fresh, saga).await.last().map(String::as_str),
        Some("payment.void")
    );

    // `recover` skips a saga whose claim is still held: retry until the
    // dead coordinator's connection is gone.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let recovered = loop {
        let r = ok("recover", fresh.recover().await);
        if !r.is_empty() {
            break r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the claim outlived the coordinator"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(recovered, [(saga, SagaStatus::Compensated)]);
    assert_eq!(log(&fresh, saga).await, UNDONE_AFTER_AUTHORIZE);
    assert_eq!(env.state(id).await, State::PaymentFailed);
    assert_eq!(env.stock("A").await, (10, 0));
}
// ANCHOR_END: crash_mid_compensation

/// A coordinator that dies after any forward step is replaced and the saga
/// completes with every action executed once.
#[tokio::test]
async fn a_crash_after_any_step_resumes_to_completion_with_each_action_once() {
    let Some(env) = saga_env().await else { return };
    ok(
        "plenty",
        env.db.apply_sql("UPDATE stock SET on_hand = 100").await,
    );
    for step in &STEPS[1..] {
        let o = env.orchestrator();
        crash_at(&o, CrashAt::AfterStep(*step));
        let id = env.order(&two_lines()).await;
        let saga = ok("start", o.start(id, 1).await);
        assert!(
            matches!(o.run(saga).await, Err(SagaError::Crashed(_))),
            "{step}"
        );
        let fresh = env.orchestrator();
        assert_eq!(
            ok("recover", fresh.recover().await),
            [(saga, SagaStatus::Completed)]
        );
        assert_eq!(log(&fresh, saga).await, HAPPY, "crash after {step}");
        assert_eq!(env.state(id).await, State::Paid);
    }
    // One order of 3 A per crash point, each committed once.
    let n = i32::try_from(STEPS.len() - 1).unwrap_or(0);
    assert_eq!(env.stock("A").await, (100 - 3 * n, 0));
}

// ANCHOR: timeouts
/// A participant that hangs is cut off by the step timeout and retried;
/// one that did its work and then hung is retried too, and the retry
/// changes nothing (the work is keyed by the saga).
#[tokio::test]
async fn hung_steps_are_retried_after_their_timeout_and_act_once() {
    let Some(env) = saga_env().await else { return };
    let (o, _, saga, status) = env
        .checkout(|o| {
            inject(o, Fault::HangBefore, Step::ReserveStock, 2);
            inject(o, Fault::HangAfter, Step::AuthorizePayment, 1);
        })
        .await;
    assert_eq!(status, SagaStatus::Completed);
    assert_eq!(log(&o, saga).await, HAPPY);
    assert_eq!(env.stock("A").await, (7, 0));
}

/// Before the pivot, a participant that does not answer is given up on
/// after its retries and the saga compensates. The compensation starts with
/// the failed step's own (a void: the coordinator cannot know whether the
/// authorization happened), which finds nothing to undo once payments answer.
#[tokio::test]
async fn a_step_that_never_answers_before_the_pivot_is_compensated() {
    let Some(env) = saga_env().await else { return };
    let (o, id, saga, status) = env
        .checkout(|o| inject_always(o, Fault::Unavailable, Step::AuthorizePayment))
        .await;
    assert_eq!(status, SagaStatus::Compensated);
    assert_eq!(log(&o, saga).await, UNDONE_BEFORE_AUTHORIZE);
    assert_eq!(env.state(id).await, State::PaymentFailed);
}

/// After the pivot the money is taken: a step that keeps failing is not
/// compensated; once its stopped runs pass `park_after` (here at once) it
/// is parked in `dead_letter`, going forward, with the order still locked;
/// an operator's retry finishes it.
#[tokio::test]
async fn a_stuck_step_after_the_pivot_is_parked_then_finished_not_compensated() {
    let Some(env) = saga_env().await else { return };
    let (o, id, saga, status) = env
        .checkout(|o| {
            o.config.park_after = 0;
            inject_always(o, Fault::Unavailable, Step::CommitStock);
        })
        .await;
    assert_eq!(status, SagaStatus::DeadLetter);
    let (_, at, failure) = ok("status", o.status(saga).await);
    assert!(at > PIVOT);
    assert!(failure.is_some_and(|f| f.contains("unavailable")));
    assert_eq!(ok("direction", o.direction(saga).await), "forward");
    assert_eq!(env.state(id).await, State::Pending);
    assert_eq!(env.payment(saga).await.as_deref(), Some("captured"));
    assert_eq!(env.stock("A").await, (10, 3));
    // Nothing was compensated.
    assert_eq!(log(&o, saga).await, HAPPY[..4]);

    assert_eq!(
        ok("retry", o.retry_dead_letter(saga).await),
        SagaStatus::Completed
    );
    assert_eq!(log(&o, saga).await, HAPPY);
    assert_eq!(env.state(id).await, State::Paid);
    assert_eq!(env.stock("A").await, (7, 0));
}
// ANCHOR_END: timeouts

// ANCHOR: coordinators
/// Four coordinators recover the same sagas at once (each left at a
/// different step by a coordinator that died): every saga is run by exactly
/// one of them, no step is attempted by two, the saga completes, and every
/// action happens once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_coordinators_run_each_saga_exactly_once() {
    const SAGAS: usize = 8;
    const COORDINATORS: usize = 4;
    let Some(env) = saga_env().await else { return };
    ok(
        "plenty",
        env.db.apply_sql("UPDATE stock SET on_hand = 100").await,
    );
    let pool = env.db.pool_with(12).await;
    let mut sagas = Vec::new();
    // Step attempts left: a saga that died after step j re-runs j, then the rest.
    let mut left = 0;
    for i in 0..SAGAS {
        let id = env.order(&two_lines()).await;
        let dead = env.orchestrator();
        // Leave the saga mid-way, at a different step each time.
        let j = 1 + i % (STEPS.len() - 1);
        left += STEPS.len() - j;
        let step = STEPS[j];
        crash_at(&dead, CrashAt::AfterStep(step));
        let saga = ok("start", dead.start(id, 1).await);
        assert!(matches!(dead.run(saga).await, Err(SagaError::Crashed(_))));
        sagas.push((saga, id));
    }
    let coordinators: Vec<Orchestrator> = (0..COORDINATORS)
        .map(|_| Orchestrator::new(pool.clone()))
        .collect();
    // All of them list the same sagas and start on the first one at once.
    let runs = futures_util::future::join_all(coordinators.iter().map(|o| o.recover())).await;
    let mut ran = Vec::new();
    for r in runs {
        ran.extend(ok("recover", r));
    }
    ran.sort_by_key(|(saga, _)| *saga);
    let mut want: Vec<(Uuid, SagaStatus)> = sagas
        .iter()
        .map(|(s, _)| (*s, SagaStatus::Completed))
        .collect();
    want.sort_by_key(|(saga, _)| *saga);
    assert_eq!(ran, want, "each saga run by exactly one coordinator");
    let attempted: u64 = coordinators
        .iter()
        .map(|o| o.attempts.load(std::sync::atomic::Ordering::Relaxed))
        .sum();
    assert_eq!(attempted, left as u64, "no step attempted twice");
    for (saga, id) in &sagas {
        assert_eq!(log(&coordinators[0], *saga).await, HAPPY);
        assert_eq!(env.state(*id).await, State::Paid);
    }
    let n = i32::try_from(SAGAS).unwrap_or(0);
    assert_eq!(env.stock("A").await, (100 - 3 * n, 0));
}
// ANCHOR_END: coordinators

/// A coordinator that lost its claim (its lock connection was killed while
/// it waited on a step) and woke after another coordinator finished the
/// saga cannot move the saga row nor act on a participant: its whole run
/// was on that connection, now dead, so it stops with an error and the saga
/// stays completed. (This shows the dead connection; the row fences are
/// shown by the two paused-coordinator tests below.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_that_lost_its_claim_cannot_move_the_saga() {
    let Some(env) = saga_env().await else { return };
    let mut stale = env.orchestrator();
    stale.config.step_timeout = Duration::from_secs(1);
    // When it wakes, its payment provider declines: without the fence it
    // would compensate a saga that already completed.
    stale.config.card_limit_cents = 0;
    inject(&stale, Fault::HangBefore, Step::AuthorizePayment, 1);
    let id = env.order(&two_lines()).await;
    let saga = ok("start", stale.start(id, 1).await);
    let stale = Arc::new(stale);
    let running = tokio::spawn({
        let stale = Arc::clone(&stale);
        async move { stale.run(saga).await }
    });
    // Wait until it holds the claim and hangs in the authorization, then
    // kill the connection that holds its lock.
    let mut killed = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if ok("status", stale.status(saga).await).1 != 2 {
            continue;
        }
        let n: i64 = ok(
            "terminate",
            sqlx::query_scalar(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' AND granted
                  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            )
                .fetch_one(&env.db.pool)
                .await,
        );
        assert_eq!(n, 1, "the stale coordinator holds one claim");
        killed = true;
        break;
    }
    assert!(
        killed,
        "the stale coordinator never reached the authorization"
    );
    // The server releases the lock when the killed backend has exited.
    for _ in 0..100 {
        let left: i64 = ok(
            "claims",
            sqlx::query_scalar(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
                  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            )
            .fetch_one(&env.db.pool)
            .await,
        );
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let fresh = env.orchestrator();
    assert_eq!(
        ok("recover", fresh.recover().await),
        [(saga, SagaStatus::Completed)]
    );
    let stale_result = ok("join", running.await);
    // Its claim's connection is the one its whole run used: dead, so it
    // wrote nothing at all.
    assert!(
        matches!(
            stale_result,
            Err(SagaError::Superseded(_) | SagaError::Database(_))
        ),
        "{stale_result:?}"
    );
    assert_eq!(
        ok("status", fresh.status(saga).await).0,
        SagaStatus::Completed
    );
    assert_eq!(env.state(id).await, State::Paid);
    assert_eq!(log(&fresh, saga).await, HAPPY);
}

/// Moves the saga's row by hand (as another coordinator would) once the run
/// has reached `step`, while it is paused in that step's attempt.
async fn move_row_when_at(
    env: &SagaEnv,
    o: &Orchestrator,
    saga: Uuid,
    step: usize,
    to: &'static str,
) {
    for _ in 0..200 {
        if ok("status", o.status(saga).await).1 == step {
            ok(
                "move",
                sqlx::query(to).bind(saga).execute(&env.db.pool).await,
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the saga never reached step {step}");
}

// ANCHOR: fenced
/// A coordinator paused in a step (its connection alive, its claim held)
/// while the saga row moves on without it, as it would under a coordinator
/// that took the saga over: its next attempt locks the row at the status
/// and step it read, finds it moved, and acts on no participant. Without
/// that fence in the participant's transaction the authorization runs and
/// a payment is left for a saga past that step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_coordinator_whose_saga_moved_acts_on_no_participant() {
    let Some(env) = saga_env().await else { return };
    let mut o = env.orchestrator();
    o.config.step_timeout = Duration::from_secs(1);
    inject(&o, Fault::HangBefore, Step::AuthorizePayment, 1);
    let id = env.order(&two_lines()).await;
    let saga = ok("start", o.start(id, 1).await);
    let o = Arc::new(o);
    let running = tokio::spawn({
        let o = Arc::clone(&o);
        async move { o.run(saga).await }
    });
    move_row_when_at(&env, &o, saga, 2, "UPDATE sagas SET step = 3 WHERE id = $1").await;
    let result = ok("join", running.await);
    assert!(
        matches!(result, Err(SagaError::Superseded(_))),
        "{result:?}"
    );
    assert_eq!(env.payment(saga).await, None, "no authorization");
    assert_eq!(ok("status", o.status(saga).await).1, 3);
}

/// The same pause after the effect committed (the authorization is there,
/// its answer lost): the run gives up on the step and would start the
/// compensation, but the row has moved on, and the write that records the
/// compensation is fenced by the status and step the run read. The row
/// stays where the other coordinator put it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_coordinator_whose_saga_moved_cannot_move_it_back() {
    let Some(env) = saga_env().await else { return };
    let mut o = env.orchestrator();
    o.config.step_timeout = Duration::from_secs(1);
    // One attempt: the timeout ends the step, and the run goes straight to
    // recording the compensation.
    o.config.max_attempts = 1;
    inject(&o, Fault::HangAfter, Step::AuthorizePayment, 1);
    let id = env.order(&two_lines()).await;
    let saga = ok("start", o.start(id, 1).await);
    let o = Arc::new(o);
    let running = tokio::spawn({
        let o = Arc::clone(&o);
        async move { o.run(saga).await }
    });
    // Wait for the authorization to commit (the run is then paused).
    for _ in 0..200 {
        if env.payment(saga).await.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(env.payment(saga).await.as_deref(), Some("authorized"));
    ok(
        "move",
        sqlx::query("UPDATE sagas SET step = 3 WHERE id = $1")
            .bind(saga)
            .execute(&env.db.pool)
            .await,
    );
    let result = ok("join", running.await);
    assert!(
        matches!(result, Err(SagaError::Superseded(_))),
        "{result:?}"
    );
    let (status, at, _) = ok("status", o.status(saga).await);
    assert_eq!((status, at), (SagaStatus::Running, 3), "not moved back");
}
// ANCHOR_END: fenced

/// A step's statement waits on a row lock another session holds (an admin
/// transaction left open on SKU A). The step timeout gives up on the
/// attempt, and the server cancels the statement too (the run's connection
/// has a statement and lock timeout), so the retries and the compensation
/// run at once instead of queueing behind the abandoned statement until
/// the lock holder ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_blocked_on_a_row_lock_does_not_stall_the_run() {
    let Some(env) = saga_env().await else { return };
    let mut holder = ok("begin", env.db.pool.begin().await);
    ok(
        "hold",
        sqlx::query("SELECT 1 FROM stock WHERE sku = 'A' FOR UPDATE")
            .execute(&mut *holder)
            .await,
    );
    let o = env.orchestrator();
    let id = env.order(&two_lines()).await;
    let began = std::time::Instant::now();
    let checkout = tokio::time::timeout(Duration::from_secs(8), o.checkout(id, 1)).await;
    let took = began.elapsed();
    drop(holder);
    let Ok(checkout) = checkout else {
        panic!("the checkout waited 8 s on a lock its step timeout had given up on");
    };
    let (_, status) = ok("checkout", checkout);
    assert_eq!(status, SagaStatus::Compensated);
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert_eq!(env.state(id).await, State::Rejected);
}

/// A step that did its work and then timed out on every attempt counts as
/// failed, but its effect is there: the compensation undoes the failed step
/// too, not only the ones before it, so no authorization is left behind.
#[tokio::test]
async fn a_step_that_acted_then_timed_out_is_compensated_too() {
    let Some(env) = saga_env().await else { return };
    let (o, id, saga, status) = env
        .checkout(|o| inject_always(o, Fault::HangAfter, Step::AuthorizePayment))
        .await;
    assert_eq!(status, SagaStatus::Compensated);
    assert_eq!(env.payment(saga).await.as_deref(), Some("voided"));
    assert_eq!(log(&o, saga).await, UNDONE_AFTER_AUTHORIZE);
    assert_eq!(env.state(id).await, State::PaymentFailed);
    assert_eq!(env.stock("A").await, (10, 0));
}

/// The capture (the pivot) takes the money and then times out on every
/// attempt: its answer is lost, so the saga must not compensate (which would
/// release the stock and fail the order with the money taken). It stays at
/// the pivot; `recover` asks again, finds the capture done, and completes.
#[tokio::test]
async fn a_capture_whose_answer_was_lost_is_never_compensated() {
    let Some(env) = saga_env().await else { return };
    let (o, id, saga, status) = env
        .checkout(|o| inject_always(o, Fault::HangAfter, Step::CapturePayment))
        .await;
    assert_eq!(status, SagaStatus::Running);
    let (_, at, failure) = ok("status", o.status(saga).await);
    assert_eq!(at, PIVOT);
    assert!(failure.is_some_and(|f| f.contains("timed out")));
    assert_eq!(env.payment(saga).await.as_deref(), Some("captured"));
    assert_eq!(env.state(id).await, State::Pending);
    assert_eq!(env.stock("A").await, (10, 3));
    assert_eq!(log(&o, saga).await, HAPPY[..4]);

    assert_eq!(
        ok("recover", o.recover().await),
        [(saga, SagaStatus::Completed)]
    );
    assert_eq!(log(&o, saga).await, HAPPY);
    assert_eq!(env.state(id).await, State::Paid);
    assert_eq!(env.stock("A").await, (7, 0));
}

// ANCHOR: pool_bound
/// More checkouts at once than the pool has connections (the service
/// spawns one run per order): every run holds one connection, its claim,
/// and does all its work on it, and the orchestrator runs at most half the
/// pool's connections of sagas at a time, so the others wait for a turn
/// instead of for a second connection that never comes. Every saga
/// completes; none is compensated for a timeout that was only a queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_concurrent_checkouts_than_pool_connections_all_complete() {
    const POOL: u32 = 4;
    const CHECKOUTS: usize = 3 * POOL as usize;
    let Some(env) = saga_env().await else { return };
    ok(
        "plenty",
        env.db.apply_sql("UPDATE stock SET on_hand = 1000").await,
    );
    let mut ids = Vec::new();
    for _ in 0..CHECKOUTS {
        ids.push(env.order(&two_lines()).await);
    }
    let mut o = Orchestrator::new(env.db.pool_with(POOL).await);
    o.config.step_timeout = Duration::from_millis(500);
    let o = Arc::new(o);
    let runs = ids.iter().map(|id| {
        let o = Arc::clone(&o);
        let id = *id;
        tokio::spawn(async move { o.checkout(id, 1).await })
    });
    let all = tokio::time::timeout(
        Duration::from_secs(20),
        futures_util::future::join_all(runs),
    )
    .await;
    let Ok(all) = all else {
        panic!("{CHECKOUTS} checkouts on a pool of {POOL} did not finish in 20 s");
    };
    for (r, id) in all.into_iter().zip(&ids) {
        let (_, status) = ok("checkout", ok("join", r));
        assert_eq!(status, SagaStatus::Completed, "order {id}");
        assert_eq!(env.state(*id).await, State::Paid);
    }
}
// ANCHOR_END: pool_bound

/// The turns leave the rest of the pool to requests: with two turns on a
/// pool of four and ten runs waiting, every running saga paused in a step
/// (holding its connection), a request still gets a connection at once.
/// Without the turns the runs would take all four.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_waiting_for_a_turn_leave_connections_for_requests() {
    const RUNS: usize = 10;
    let Some(env) = saga_env().await else { return };
    ok(
        "plenty",
        env.db.apply_sql("UPDATE stock SET on_hand = 1000").await,
    );
    let pool = env.db.pool_with(4).await;
    let mut o = Orchestrator::with_max_runs(pool.clone(), 2);
    o.config.step_timeout = Duration::from_secs(1);
    inject(&o, Fault::HangBefore, Step::AuthorizePayment, RUNS as u32);
    let mut sagas = Vec::new();
    for _ in 0..RUNS {
        let id = env.order(&two_lines()).await;
        sagas.push(ok("start", o.start(id, 1).await));
    }
    let o = Arc::new(o);
    let runs: Vec<_> = sagas
        .iter()
        .map(|&saga| {
            let o = Arc::clone(&o);
            tokio::spawn(async move { o.run(saga).await })
        })
        .collect();
    // Wait until two runs are paused in the authorization.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let paused: i64 = ok(
            "paused",
            sqlx::query_scalar("SELECT count(*) FROM sagas WHERE step = 2")
                .fetch_one(&env.db.pool)
                .await,
        );
        if paused >= 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no run paused");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for _ in 0..3 {
        let got = tokio::time::timeout(Duration::from_millis(300), pool.acquire()).await;
        assert!(matches!(got, Ok(Ok(_))), "a request found no connection");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The hangs are shared: the first runs may spend every attempt on
    // them and compensate; each run still ends.
    for r in runs {
        let ended = ok("run", ok("join", r.await));
        assert!(
            matches!(ended, SagaStatus::Completed | SagaStatus::Compensated),
            "{ended:?}"
        );
    }
}

// ANCHOR: hand_off
/// A burst of checkouts while every turn is taken (one turn, held by a run
/// paused in a step): no task is spawned to wait for a turn in memory.
/// Each further saga is left to its timer, set to now, and the timer's
/// ticks run them all, a turn at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_beyond_the_turns_spawns_no_waiting_tasks_and_the_timer_runs_it() {
    const BURST: usize = 20;
    let Some(env) = saga_env().await else { return };
    ok(
        "plenty",
        env.db.apply_sql("UPDATE stock SET on_hand = 1000").await,
    );
    let mut o = Orchestrator::with_max_runs(env.db.pool.clone(), 1);
    o.config.step_timeout = Duration::from_secs(1);
    o.config.backoff = Duration::from_millis(10);
    inject(&o, Fault::HangBefore, Step::AuthorizePayment, 1);
    let o = Arc::new(o);
    let mut ids = Vec::new();
    let mut spawned = 0;
    for _ in 0..BURST {
        let id = env.order(&two_lines()).await;
        let saga = ok("start", o.start(id, 1).await);
        if let Handoff::Running(_) = ok("hand_off", o.hand_off(saga).await) {
            spawned += 1;
        }
        ids.push(id);
    }
    assert_eq!(spawned, 1, "one turn, one task");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let timer = tokio::spawn({
        let o = Arc::clone(&o);
        async move { o.run_timer(Duration::from_millis(50), stopped).await }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    for id in &ids {
        while env.state(*id).await != State::Paid {
            assert!(std::time::Instant::now() < deadline, "order {id} not paid");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    ok("stop", stop.send(true));
    ok("timer", timer.await);
}
// ANCHOR_END: hand_off

// ANCHOR: timer
/// Nothing but the durable timer: a capture whose answer was lost stops
/// the run at the pivot, and a saga whose process died right after `start`
/// was never run at all. Neither is touched by hand, and no `recover` runs:
/// the timer's tick finds both once their `wake_at` has passed and
/// completes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_durable_timer_resumes_stuck_sagas_without_a_restart() {
    let Some(env) = saga_env().await else { return };
    let mut o = env.orchestrator();
    o.config.resume_first = Duration::from_millis(50);
    o.config.stall_after = Duration::from_millis(300);
    inject_always(&o, Fault::HangAfter, Step::CapturePayment);
    let in_doubt = env.order(&two_lines()).await;
    let (_, status) = ok("checkout", o.checkout(in_doubt, 1).await);
    assert_eq!(status, SagaStatus::Running);
    // A process that died between `start` and its run.
    let orphan = env.order(&two_lines()).await;
    ok("start", o.start(orphan, 1).await);
    assert_eq!(env.state(in_doubt).await, State::Pending);
    assert_eq!(env.state(orphan).await, State::Pending);

    let o = Arc::new(o);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let timer = tokio::spawn({
        let o = Arc::clone(&o);
        async move { o.run_timer(Duration::from_millis(50), stopped).await }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while env.state(in_doubt).await != State::Paid || env.state(orphan).await != State::Paid {
        assert!(
            std::time::Instant::now() < deadline,
            "the timer did not resume the sagas in 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ok("stop", stop.send(true));
    ok("timer", timer.await);
    assert_eq!(env.stock("A").await, (4, 0));
}
// ANCHOR_END: timer

// ANCHOR: timer_due
/// Two coordinators list the same due saga. The first stops it (the
/// capture's answer lost) and sets its backoff; the second, working
/// through the list it read before, claims it afterwards. It re-reads the
/// timer under the claim and leaves the saga alone: the backoff holds, and
/// the stopped runs are counted once.
#[tokio::test]
async fn a_saga_stopped_by_one_timer_is_not_rerun_early_by_another() {
    let Some(env) = saga_env().await else { return };
    let (first, _, saga, status) = env
        .checkout(|o| {
            o.config.resume_first = Duration::from_secs(30);
            inject_always(o, Fault::HangAfter, Step::CapturePayment);
        })
        .await;
    assert_eq!(status, SagaStatus::Running);
    let second = env.orchestrator();
    assert_eq!(second.resume(&[saga]).await, []);
    assert_eq!(log(&first, saga).await, HAPPY[..4]);
    let resumes: i32 = ok(
        "resumes",
        sqlx::query_scalar("SELECT resumes FROM sagas WHERE id = $1")
            .bind(saga)
            .fetch_one(&env.db.pool)
            .await,
    );
    assert_eq!(resumes, 1);
}

/// One due saga whose run fails with a database error (its row refuses
/// every update) does not end the timer's tick: the other due saga is
/// still resumed, and the failing one's timer moves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failing_saga_does_not_stop_the_timer_tick() {
    let Some(env) = saga_env().await else { return };
    let mut o = env.orchestrator();
    o.config.stall_after = Duration::ZERO;
    let poisoned = env.order(&two_lines()).await;
    let poisoned = ok("start", o.start(poisoned, 1).await);
    let healthy = env.order(&two_lines()).await;
    let healthy_saga = ok("start", o.start(healthy, 1).await);
    ok(
        "poison",
        env.db
            .apply_sql(&format!(
                "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS
                   $$ BEGIN RAISE EXCEPTION 'poisoned row'; END $$;
                 CREATE TRIGGER poison BEFORE UPDATE ON sagas FOR EACH ROW
                   WHEN (OLD.id = '{poisoned}') EXECUTE FUNCTION poison();"
            ))
            .await,
    );
    let ran = ok("resume_due", o.resume_due().await);
    assert_eq!(ran, [(healthy_saga, SagaStatus::Completed)]);
    assert_eq!(env.state(healthy).await, State::Paid);
}
// ANCHOR_END: timer_due

// ANCHOR: compensation_retried
/// A compensation that fails on every attempt of a run (the inventory is
/// down while the stock is released): the saga stays compensating, going
/// backward, and the timer retries the compensation after a backoff until
/// it succeeds. The money is never captured; nothing is parked.
#[tokio::test]
async fn a_compensation_that_keeps_failing_is_retried_backward_until_it_succeeds() {
    let Some(env) = saga_env().await else { return };
    let (o, id, saga, status) = env
        .checkout(|o| {
            o.faults.refuse_capture = true;
            o.config.resume_first = Duration::from_millis(20);
            // Two runs' worth of failed releases.
            inject(
                o,
                Fault::UnavailableUndo,
                Step::ReserveStock,
                2 * o.config.max_attempts,
            );
        })
        .await;
    assert_eq!(status, SagaStatus::Compensating);
    assert_eq!(ok("direction", o.direction(saga).await), "backward");
    assert_eq!(env.state(id).await, State::Pending);
    assert_eq!(env.stock("A").await, (10, 3), "not released yet");
    // The first tick after the backoff fails again; a later one succeeds.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        tokio::time::sleep(Duration::from_millis(30)).await;
        let ran = ok("resume_due", o.resume_due().await);
        if ran == [(saga, SagaStatus::Compensated)] {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never compensated");
    }
    assert_eq!(log(&o, saga).await, UNDONE_AFTER_AUTHORIZE);
    assert_eq!(env.state(id).await, State::PaymentFailed);
    assert_eq!(env.stock("A").await, (10, 0));
    assert_eq!(env.payment(saga).await.as_deref(), Some("voided"));
}

/// The operator's path: a compensation still failing after `park_after`
/// stopped runs (here at once) is parked in `dead_letter` with its
/// direction, backward; the operator's retry resumes the compensation
/// (it does not go forward and capture the money).
#[tokio::test]
async fn a_parked_compensation_is_resumed_backward_by_the_operator() {
    let Some(env) = saga_env().await else { return };
    let (o, id, saga, status) = env
        .checkout(|o| {
            o.faults.refuse_capture = true;
            o.config.park_after = 0;
            inject_always(o, Fault::UnavailableUndo, Step::AuthorizePayment);
        })
        .await;
    assert_eq!(status, SagaStatus::DeadLetter);
    assert_eq!(ok("direction", o.direction(saga).await), "backward");
    assert_eq!(env.payment(saga).await.as_deref(), Some("authorized"));
    // The timer leaves a parked saga alone.
    assert_eq!(ok("resume_due", o.resume_due().await), []);
    assert_eq!(
        ok("retry", o.retry_dead_letter(saga).await),
        SagaStatus::Compensated
    );
    assert_eq!(env.payment(saga).await.as_deref(), Some("voided"));
    assert_eq!(log(&o, saga).await, UNDONE_AFTER_AUTHORIZE);
    assert_eq!(env.state(id).await, State::PaymentFailed);
    assert_eq!(env.stock("A").await, (10, 0));
}
// ANCHOR_END: compensation_retried

/// A `place` in the compensation window (the order is already
/// `payment_failed`, its saga not yet `compensated`) meets the one-live-saga
/// index: a conflict the API answers `409 order-locked`, not a server error.
#[tokio::test]
async fn placing_again_during_the_compensation_window_is_a_conflict() {
    let Some(env) = saga_env().await else { return };
    let o = env.orchestrator();
    let id = env.order(&two_lines()).await;
    let saga = ok("start", o.start(id, 1).await);
    ok(
        "window",
        sqlx::query("UPDATE sagas SET status = 'compensating', step = 0 WHERE id = $1;")
            .bind(saga)
            .execute(&env.db.pool)
            .await,
    );
    ok(
        "failed",
        sqlx::query("UPDATE orders SET state = 'payment_failed' WHERE id = $1")
            .bind(id)
            .execute(&env.db.pool)
            .await,
    );
    let version = ok("get", env.store.get(id).await).version;
    let again = o.start(id, version).await;
    assert!(matches!(again, Err(SagaError::Busy(_))), "{again:?}");
    let api: order_management::service::ApiError = match again {
        Err(e) => e.into(),
        Ok(_) => unreachable!("matched above"),
    };
    assert!(
        matches!(
            api,
            order_management::service::ApiError::Store(StoreError::Command(CommandError::Refused(
                Refusal::Locked { .. }
            )))
        ),
        "{api:?}"
    );
    let answer = axum::response::IntoResponse::into_response(api);
    assert_eq!(answer.status(), axum::http::StatusCode::CONFLICT);
    let body = ok(
        "body",
        http_body_util::BodyExt::collect(answer.into_body()).await,
    )
    .to_bytes();
    assert!(
        String::from_utf8_lossy(&body).contains("order-locked"),
        "{body:?}"
    );
}
