//! The checkout saga, orchestrated: one coordinator tells each participant
//! what to do, in order, and on a failure tells the ones that already acted
//! to undo it, in reverse order.
//!
//! ```text
//!   step                 compensation       kind
//!   0 order.place        order.reject       compensatable (the semantic lock: Pending)
//!   1 stock.reserve      stock.release      compensatable
//!   2 payment.authorize  payment.void       compensatable
//!   3 payment.capture    -                  PIVOT: once it succeeds, the saga only goes forward
//!   4 stock.commit       -                  retriable until it succeeds
//!   5 order.approve      -                  retriable until it succeeds
//! ```
//!
//! The saga's progress lives in the `sagas` row, updated after every step
//! and every compensation. Each participant action is idempotent, keyed by
//! the saga id, and records itself in `saga_log` in its own transaction
//! only when it changed something. A coordinator that dies anywhere is
//! replaced by [`Orchestrator::recover`], which re-runs the step or
//! compensation it was in: the participant sees the repeat and does
//! nothing, so every effect happens once.
//!
//! One coordinator at a time: [`Orchestrator::run`] first claims the saga
//! with a session-level advisory lock keyed by the saga id, and then does
//! the whole run on that one connection: every read and write of the saga
//! row and every participant's transaction. A run therefore needs exactly
//! one connection, and the orchestrator runs at most
//! [`Orchestrator::max_runs`] sagas at a time (half the pool by default),
//! so a burst of checkouts cannot deadlock the pool; a checkout that finds
//! every turn taken is left to the timer ([`Orchestrator::hand_off`]). Each
//! participant transaction carries a statement and lock timeout of three
//! quarters of the step timeout. A second coordinator's claim fails and it skips the saga; a
//! coordinator that dies closes its connection and PostgreSQL releases the
//! lock. Every write of the saga row is also fenced by the status and step
//! it expects, and each participant's transaction locks the saga row at
//! that status and step first, so a coordinator paused while the row moved
//! on cannot move the saga back nor act on a participant.
//!
//! Steps run under a timeout and are retried with backoff. A step that
//! fails for good before the pivot starts the compensation (a refused
//! pivot too; a pivot whose answer was lost stays `running`, since it may
//! have taken the money). A run that cannot go on (a pivot in doubt, a
//! step past the pivot or a compensation that keeps failing) stops where
//! it is, with its direction, and sets the saga's durable timer
//! (`sagas.wake_at`) after a backoff that doubles each time (equal jitter):
//! [`Orchestrator::resume_due`], which the service calls on a tick, resumes
//! it then, and also any saga whose coordinator vanished without a word.
//! Compensations are retried this way until they succeed (Garcia-Molina
//! and Salem's assumption); after [`SagaConfig::park_after`] stopped runs
//! the saga is parked in `dead_letter`, still with its direction, for an
//! operator, whose [`Orchestrator::retry_dead_letter`] resumes it in that
//! direction.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::postgres::PgPool;
use sqlx::{Postgres, Row, Transaction};
use tokio::sync::{Mutex as ClaimLock, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::domain::{Command, Order, State};
use crate::store::{PgStore, StoreError};

// ANCHOR: steps
/// The saga's steps, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    /// Lock the order: `created` -> `pending`.
    PlaceOrder,
    /// Reserve every line's stock.
    ReserveStock,
    /// Authorize the card for the total.
    AuthorizePayment,
    /// Capture the authorized amount: the pivot.
    CapturePayment,
    /// Turn the reservations into shipments-to-be (on hand goes down).
    CommitStock,
    /// Unlock the order: `pending` -> `paid`.
    ApproveOrder,
}

/// Every step, in execution order.
pub const STEPS: [Step; 6] = [
    Step::PlaceOrder,
    Step::ReserveStock,
    Step::AuthorizePayment,
    Step::CapturePayment,
    Step::CommitStock,
    Step::ApproveOrder,
];

/// The index of the pivot in [`STEPS`].
pub const PIVOT: usize = 3;
// ANCHOR_END: steps

impl Step {
    /// The action's name in `saga_log`.
    pub fn name(self) -> &'static str {
        match self {
            Step::PlaceOrder => "order.place",
            Step::ReserveStock => "stock.reserve",
            Step::AuthorizePayment => "payment.authorize",
            Step::CapturePayment => "payment.capture",
            Step::CommitStock => "stock.commit",
            Step::ApproveOrder => "order.approve",
        }
    }

    /// The compensation's name in `saga_log`, if the step has one.
    pub fn compensation(self) -> Option<&'static str> {
        match self {
            Step::PlaceOrder => Some("order.reject"),
            Step::ReserveStock => Some("stock.release"),
            Step::AuthorizePayment => Some("payment.void"),
            _ => None,
        }
    }

    fn from_name(s: &str) -> Option<Step> {
        STEPS.into_iter().find(|st| st.name() == s)
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a saga is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SagaStatus {
    /// Going forward.
    Running,
    /// Undoing.
    Compensating,
    /// Every step done; the order is paid.
    Completed,
    /// Every done step undone; the order is rejected or payment_failed.
    Compensated,
    /// Stuck after [`SagaConfig::park_after`] stopped runs, in either
    /// direction (kept in `sagas.direction`): needs an operator.
    DeadLetter,
}

impl SagaStatus {
    fn name(self) -> &'static str {
        match self {
            SagaStatus::Running => "running",
            SagaStatus::Compensating => "compensating",
            SagaStatus::Completed => "completed",
            SagaStatus::Compensated => "compensated",
            SagaStatus::DeadLetter => "dead_letter",
        }
    }

    fn parse(s: &str) -> Option<SagaStatus> {
        Some(match s {
            "running" => SagaStatus::Running,
            "compensating" => SagaStatus::Compensating,
            "completed" => SagaStatus::Completed,
            "compensated" => SagaStatus::Compensated,
            "dead_letter" => SagaStatus::DeadLetter,
            _ => return None,
        })
    }
}

/// Why a step did not succeed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepError {
    /// A business refusal (no stock, card declined): retrying will not help.
    Refused(String),
    /// A timeout or an unavailable dependency: worth retrying.
    Transient(String),
    /// The saga row is no longer where this run read it: another
    /// coordinator moved it. Not retried; the run stops.
    Fenced,
}

/// Why the orchestrator stopped.
#[derive(Debug, thiserror::Error)]
pub enum SagaError {
    /// The order refused to start checkout (wrong state, stale version, ...).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The saga's own table failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// No saga has this id.
    #[error("saga {0} does not exist")]
    NotFound(Uuid),
    /// A crash injected by a test, simulated in-process: the coordinator stopped here.
    #[error("crashed after {0}")]
    Crashed(String),
    /// Another coordinator holds the saga's claim.
    #[error("saga {0} is being run by another coordinator")]
    Claimed(Uuid),
    /// The saga row moved under this coordinator (it lost its claim).
    #[error("saga {0} was moved by another coordinator")]
    Superseded(Uuid),
    /// The order already has a live saga (a second checkout while the
    /// first is still compensating): a conflict, not a server error.
    #[error("order {0} is already being checked out")]
    Busy(Uuid),
}

/// Timeouts, retries and the card's limit.
#[derive(Clone, Debug)]
pub struct SagaConfig {
    /// How long one attempt of a step may take.
    pub step_timeout: Duration,
    /// Attempts per step (and per compensation) before giving up.
    pub max_attempts: u32,
    /// First retry delay; doubled each time.
    pub backoff: Duration,
    /// Authorizations above this are declined (the test's payment provider).
    pub card_limit_cents: i64,
    /// The durable timer's bound: a live saga whose row has not advanced for
    /// this long is resumed by [`Orchestrator::resume_due`] (its coordinator
    /// died, or its process stopped). Longer than a step's attempts take.
    pub stall_after: Duration,
    /// The timer's pause after the first run that stopped without an end;
    /// doubled for each further one, never more than [`Self::resume_max`].
    pub resume_first: Duration,
    /// The longest pause between two resumptions of a stuck saga.
    pub resume_max: Duration,
    /// Stopped runs in a row after which the saga is parked in
    /// `dead_letter` for an operator (its direction kept).
    pub park_after: u32,
}

impl Default for SagaConfig {
    fn default() -> Self {
        SagaConfig {
            step_timeout: Duration::from_millis(500),
            max_attempts: 3,
            backoff: Duration::from_millis(20),
            card_limit_cents: 1_000_000,
            stall_after: Duration::from_secs(30),
            resume_first: Duration::from_secs(1),
            resume_max: Duration::from_secs(300),
            park_after: 12,
        }
    }
}

/// Where a test makes the coordinator die.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashAt {
    /// After the step's effect committed, before the saga row records it.
    AfterStep(Step),
    /// After the compensation's effect committed, before the saga row records it.
    AfterCompensation(Step),
}

/// Failures a test injects.
#[derive(Debug, Default)]
pub struct Faults {
    /// Attempts of a step that hang (longer than the timeout) before doing anything.
    pub hang_before: Mutex<HashMap<Step, u32>>,
    /// Attempts of a step that do their work, then hang (so the retry repeats done work).
    pub hang_after: Mutex<HashMap<Step, u32>>,
    /// Attempts of a step that fail as "unavailable".
    pub unavailable: Mutex<HashMap<Step, u32>>,
    /// Attempts of a step's compensation that fail as "unavailable".
    pub unavailable_undo: Mutex<HashMap<Step, u32>>,
    /// The payment provider refuses to capture.
    pub refuse_capture: bool,
    /// Die once here.
    pub crash: Mutex<Option<CrashAt>>,
    /// How to die there: `false` returns [`SagaError::Crashed`]; `true` calls
    /// `std::process::abort()`, a real death (the crash tests run such a
    /// coordinator in a child process).
    pub abort_on_crash: bool,
}

fn take(map: &Mutex<HashMap<Step, u32>>, step: Step) -> bool {
    let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
    match m.get_mut(&step) {
        Some(n) if *n > 0 => {
            *n -= 1;
            true
        }
        _ => false,
    }
}

impl Faults {
    fn crash_here(&self, at: CrashAt) -> bool {
        let mut c = self.crash.lock().unwrap_or_else(|p| p.into_inner());
        if *c == Some(at) {
            if self.abort_on_crash {
                // The claim's connection closes with the process, so
                // PostgreSQL releases the advisory lock; nothing else runs.
                std::process::abort();
            }
            *c = None;
            true
        } else {
            false
        }
    }
}

/// Where [`Orchestrator::hand_off`] put a saga.
#[derive(Debug)]
pub enum Handoff {
    /// A task runs it now, holding a turn.
    Running(JoinHandle<Result<SagaStatus, SagaError>>),
    /// Every turn was taken: the timer's next tick runs it.
    Timer,
}

/// Which sagas a claim goes on to drive.
#[derive(Clone, Copy)]
enum Only {
    /// Whatever its status (a request's run, an operator's retry).
    Any,
    /// Running or compensating (recovery at start).
    Live,
    /// Live and its timer passed (the timer's tick).
    Due,
}

/// The connection a run holds its claim on, and does all its work on.
type Claim = ClaimLock<PoolConnection<Postgres>>;

/// The coordinator.
pub struct Orchestrator {
    pool: PgPool,
    /// Timeouts and retries.
    pub config: SagaConfig,
    /// Injected failures.
    pub faults: Faults,
    /// Attempts of steps and compensations this coordinator made (a metric).
    pub attempts: AtomicU64,
    /// One permit per saga run at a time.
    runs: Arc<Semaphore>,
    max_runs: usize,
}

async fn log(
    tx: &mut Transaction<'_, Postgres>,
    saga: Uuid,
    action: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO saga_log (saga_id, action) VALUES ($1, $2)")
        .bind(saga)
        .bind(action)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn transient(e: impl fmt::Display) -> StepError {
    StepError::Transient(e.to_string())
}

impl Orchestrator {
    /// A coordinator over the database with the default configuration,
    /// running at most half the pool's connections of sagas at a time (the
    /// other half serves the requests, the relay and the timer).
    pub fn new(pool: PgPool) -> Self {
        let half = usize::try_from(pool.options().get_max_connections() / 2).unwrap_or(1);
        Self::with_max_runs(pool, half)
    }

    /// Like [`Orchestrator::new`], running at most `max_runs` sagas at a
    /// time (at least one); keep it below the pool's size.
    pub fn with_max_runs(pool: PgPool, max_runs: usize) -> Self {
        let max_runs = max_runs.max(1);
        Orchestrator {
            pool,
            config: SagaConfig::default(),
            faults: Faults::default(),
            attempts: AtomicU64::new(0),
            runs: Arc::new(Semaphore::new(max_runs)),
            max_runs,
        }
    }

    /// How many sagas this orchestrator runs at once, at most.
    pub fn max_runs(&self) -> usize {
        self.max_runs
    }

    // ANCHOR: start
    /// Starts checkout: the order goes to `pending` (the semantic lock) and
    /// the saga row is written, in one transaction. Returns the saga's id.
    pub async fn start(&self, order_id: Uuid, expected_version: i64) -> Result<Uuid, SagaError> {
        let saga = Uuid::new_v4();
        let mut tx = self.pool.begin().await?;
        PgStore::apply_in(&mut tx, order_id, expected_version, &Command::Place).await?;
        // The timer is set at once: if this process dies before the run
        // starts, another one's timer resumes the saga.
        let inserted = sqlx::query(
            "INSERT INTO sagas (id, order_id, status, step, wake_at)
             VALUES ($1, $2, 'running', 1, now() + $3)",
        )
        .bind(saga)
        .bind(order_id)
        .bind(self.config.stall_after)
        .execute(&mut *tx)
        .await;
        match inserted {
            // The order left `pending` for a re-placeable state, but its
            // last saga has not recorded its end yet: a short conflict.
            Err(e) if crate::store::is_unique_violation(&e) => {
                return Err(SagaError::Busy(order_id));
            }
            other => other?,
        };
        log(&mut tx, saga, Step::PlaceOrder.name()).await?;
        tx.commit().await?;
        Ok(saga)
    }
    // ANCHOR_END: start

    /// Starts and runs a saga to its end.
    pub async fn checkout(
        &self,
        order_id: Uuid,
        expected_version: i64,
    ) -> Result<(Uuid, SagaStatus), SagaError> {
        let saga = self.start(order_id, expected_version).await?;
        Ok((saga, self.run(saga).await?))
    }

    // ANCHOR: recover
    /// Resumes every saga that is running or compensating (after a
    /// coordinator died) and that no other coordinator holds; returns the
    /// ones this coordinator ran.
    /// Unlike the timer it does not wait for a stopped saga's backoff. Runs
    /// go concurrently, up to [`Orchestrator::max_runs`]; one saga's error
    /// is logged and does not stop the others.
    pub async fn recover(&self) -> Result<Vec<(Uuid, SagaStatus)>, SagaError> {
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT id FROM sagas WHERE status IN ('running', 'compensating') ORDER BY updated_at",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(self.resume_each(&ids, Only::Live).await)
    }

    /// Resumes the listed sagas that are still due once claimed (live, and
    /// `wake_at` passed: a list read before another coordinator stopped one
    /// and set its backoff does not run it again early). Concurrent up to
    /// [`Orchestrator::max_runs`]; returns the ones this coordinator ran.
    pub async fn resume(&self, ids: &[Uuid]) -> Vec<(Uuid, SagaStatus)> {
        self.resume_each(ids, Only::Due).await
    }

    async fn resume_each(&self, ids: &[Uuid], only: Only) -> Vec<(Uuid, SagaStatus)> {
        let runs = ids.iter().map(|&id| async move {
            match self.claim_and_drive(id, only, None).await {
                Ok(Some(status)) => Some((id, status)),
                // Another coordinator has it, or ran it to its end since
                // the list was read, or moved it under us: not ours.
                Ok(None) | Err(SagaError::Claimed(_) | SagaError::Superseded(_)) => None,
                // One saga's failure (its row, the database for a moment)
                // does not stop the others; its timer moves on, so a
                // saga that fails every time is not first in every tick.
                Err(e) => {
                    tracing::warn!(saga = %id, error = %e, "resuming a saga failed");
                    let later = sqlx::query("UPDATE sagas SET wake_at = now() + $2 WHERE id = $1")
                        .bind(id)
                        .bind(self.config.resume_first)
                        .execute(&self.pool)
                        .await;
                    if let Err(e) = later {
                        tracing::warn!(saga = %id, error = %e, "could not delay a failing saga");
                    }
                    None
                }
            }
        });
        futures_util::future::join_all(runs)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// Drives a saga from wherever its row says it is to an end state, under its claim.
    pub async fn run(&self, saga: Uuid) -> Result<SagaStatus, SagaError> {
        self.run_in_turn(saga, None).await
    }

    async fn run_in_turn(
        &self,
        saga: Uuid,
        turn: Option<OwnedSemaphorePermit>,
    ) -> Result<SagaStatus, SagaError> {
        match self.claim_and_drive(saga, Only::Any, turn).await? {
            Some(status) => Ok(status),
            None => Ok(self.status(saga).await?.0),
        }
    }

    /// Hands a started saga to the background without queueing work in
    /// memory: if a turn is free, a task runs it now; if not, no task is
    /// spawned and the saga's timer is set to now, so the next tick (of any
    /// process) runs it. At most [`Orchestrator::max_runs`] such tasks exist.
    pub async fn hand_off(self: &Arc<Self>, saga: Uuid) -> Result<Handoff, SagaError> {
        match Arc::clone(&self.runs).try_acquire_owned() {
            Ok(turn) => {
                let o = Arc::clone(self);
                Ok(Handoff::Running(tokio::spawn(async move {
                    let ended = o.run_in_turn(saga, Some(turn)).await;
                    if let Err(e) = &ended {
                        tracing::warn!(%saga, error = %e, "saga stopped; its timer resumes it");
                    }
                    ended
                })))
            }
            Err(_) => {
                sqlx::query("UPDATE sagas SET wake_at = now() WHERE id = $1")
                    .bind(saga)
                    .execute(&self.pool)
                    .await?;
                Ok(Handoff::Timer)
            }
        }
    }

    /// Waits for a turn (at most [`Orchestrator::max_runs`] at once), claims
    /// the saga (a session advisory lock on one pooled connection, released
    /// when the run ends or the connection closes), then drives it on that
    /// same connection. A saga that `only` excludes once claimed is left
    /// alone (`None`).
    async fn claim_and_drive(
        &self,
        saga: Uuid,
        only: Only,
        turn: Option<OwnedSemaphorePermit>,
    ) -> Result<Option<SagaStatus>, SagaError> {
        // The semaphore is never closed; a closed one would only mean no limit.
        let _turn = match turn {
            Some(turn) => Some(turn),
            None => Arc::clone(&self.runs).acquire_owned().await.ok(),
        };
        let mut conn = self.pool.acquire().await?;
        let held = sqlx::query_scalar::<_, bool>(
            "SELECT pg_try_advisory_lock(hashtextextended($1::text, 0))",
        )
        .bind(saga)
        .fetch_one(&mut *conn)
        .await;
        if !matches!(held, Ok(true)) {
            release(conn, None).await;
            return match held {
                Err(e) => Err(e.into()),
                Ok(_) => Err(SagaError::Claimed(saga)),
            };
        }
        let claim = ClaimLock::new(conn);
        let result = async {
            // Read after claiming: another coordinator may have finished
            // it, or stopped it and set its backoff.
            let (status, _) = self.status_on(&claim, saga).await?;
            let live = matches!(status, SagaStatus::Running | SagaStatus::Compensating);
            let skip = match only {
                Only::Any => false,
                Only::Live => !live,
                Only::Due => !live || !self.due_on(&claim, saga).await?,
            };
            if skip {
                return Ok(None);
            }
            self.drive(&claim, saga).await.map(Some)
        }
        .await;
        release(claim.into_inner(), Some(saga)).await;
        result
    }
    // ANCHOR_END: recover

    // ANCHOR: timer
    /// The durable timer's tick: resumes every live saga whose `wake_at`
    /// has passed (a run that stopped without an end, or a coordinator that
    /// vanished), oldest first, that no other coordinator holds; returns
    /// the ones this coordinator ran. Safe to call from every process.
    pub async fn resume_due(&self) -> Result<Vec<(Uuid, SagaStatus)>, SagaError> {
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT id FROM sagas WHERE status IN ('running', 'compensating')
                AND wake_at <= now() ORDER BY wake_at LIMIT 100",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(self.resume(&ids).await)
    }

    /// Calls [`Orchestrator::resume_due`] every `every` until `stop` turns
    /// true (or its sender is gone). A failed tick is logged and retried at
    /// the next: the due sagas stay in the table.
    pub async fn run_timer(&self, every: Duration, mut stop: watch::Receiver<bool>) {
        while !*stop.borrow() {
            match self.resume_due().await {
                Ok(ran) => {
                    for (saga, status) in ran {
                        tracing::info!(%saga, ?status, "the saga timer resumed a saga");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "the saga timer failed; retrying"),
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                changed = stop.changed() => if changed.is_err() { return },
            }
        }
    }
    // ANCHOR_END: timer

    /// An operator's retry of a saga parked in `dead_letter`: it resumes in
    /// the direction it was going, from the step or compensation that was
    /// stuck. A compensation is resumed as a compensation: it never turns
    /// forward (which would capture the money of an order being undone).
    pub async fn retry_dead_letter(&self, saga: Uuid) -> Result<SagaStatus, SagaError> {
        let n = sqlx::query(
            "UPDATE sagas SET status = CASE direction WHEN 'backward' THEN 'compensating'
                                                      ELSE 'running' END,
                    resumes = 0, wake_at = now() + $2, updated_at = now()
              WHERE id = $1 AND status = 'dead_letter'",
        )
        .bind(saga)
        .bind(self.config.stall_after)
        .execute(&self.pool)
        .await?;
        if n.rows_affected() == 0 {
            return Ok(self.status(saga).await?.0);
        }
        self.run(saga).await
    }

    /// The direction a saga goes (`forward` or `backward`), kept when parked.
    pub async fn direction(&self, saga: Uuid) -> Result<String, SagaError> {
        sqlx::query_scalar("SELECT direction FROM sagas WHERE id = $1")
            .bind(saga)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(SagaError::NotFound(saga))
    }

    /// The actions the participants executed for a saga, in order.
    pub async fn log_of(&self, saga: Uuid) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT action FROM saga_log WHERE saga_id = $1 ORDER BY seq")
            .bind(saga)
            .fetch_all(&self.pool)
            .await
    }

    /// Whether the saga's timer has passed, read on the run's own connection.
    async fn due_on(&self, claim: &Claim, saga: Uuid) -> Result<bool, SagaError> {
        let mut conn = claim.lock().await;
        let due: Option<bool> =
            sqlx::query_scalar("SELECT wake_at <= now() FROM sagas WHERE id = $1")
                .bind(saga)
                .fetch_optional(&mut **conn)
                .await?;
        Ok(due.unwrap_or(false))
    }

    /// The status and step, read on the run's own connection.
    async fn status_on(&self, claim: &Claim, saga: Uuid) -> Result<(SagaStatus, usize), SagaError> {
        let mut conn = claim.lock().await;
        let row = sqlx::query("SELECT status, step FROM sagas WHERE id = $1")
            .bind(saga)
            .fetch_optional(&mut **conn)
            .await?
            .ok_or(SagaError::NotFound(saga))?;
        let status: String = row.try_get("status")?;
        let step: i32 = row.try_get("step")?;
        Ok((
            SagaStatus::parse(&status).unwrap_or(SagaStatus::DeadLetter),
            usize::try_from(step).unwrap_or(0),
        ))
    }

    /// A saga's status, the index it is at, and its failure if any.
    pub async fn status(
        &self,
        saga: Uuid,
    ) -> Result<(SagaStatus, usize, Option<String>), SagaError> {
        let row = sqlx::query("SELECT status, step, failure FROM sagas WHERE id = $1")
            .bind(saga)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(SagaError::NotFound(saga))?;
        let status: String = row.try_get("status")?;
        let step: i32 = row.try_get("step")?;
        Ok((
            SagaStatus::parse(&status).unwrap_or(SagaStatus::DeadLetter),
            usize::try_from(step).unwrap_or(0),
            row.try_get("failure")?,
        ))
    }

    // ANCHOR: run
    /// The saga's loop: one step or compensation per turn, recorded in its row.
    async fn drive(&self, claim: &Claim, saga: Uuid) -> Result<SagaStatus, SagaError> {
        loop {
            let (status, at) = self.status_on(claim, saga).await?;
            // Every write below expects the row still to be where it was read.
            let from = (status, at);
            match status {
                SagaStatus::Running if at == STEPS.len() => {
                    self.set(claim, saga, from, "completed", at, None).await?;
                }
                SagaStatus::Running => {
                    let step = STEPS[at];
                    match self.attempt(claim, saga, from, step, false).await {
                        Ok(()) => {
                            if self.faults.crash_here(CrashAt::AfterStep(step)) {
                                return Err(SagaError::Crashed(step.to_string()));
                            }
                            self.set(claim, saga, from, "running", at + 1, None).await?;
                        }
                        Err(StepError::Fenced) => return Err(SagaError::Superseded(saga)),
                        // Up to and including the pivot, a failure is undone.
                        // A step that timed out may still have acted, so the
                        // failed step is compensated too (a no-op if it did
                        // nothing), then the `at` steps before it.
                        // The pivot's answer was lost (timeouts, unavailable):
                        // it may have taken the money, so it is never
                        // compensated on doubt. The saga stops at the pivot,
                        // the failure recorded, and its timer asks again.
                        Err(StepError::Transient(why)) if at == PIVOT => {
                            return self.stop(claim, saga, from, step, &why).await;
                        }
                        Err(StepError::Refused(why) | StepError::Transient(why)) if at <= PIVOT => {
                            let undo = if step.compensation().is_some() {
                                at + 1
                            } else {
                                at
                            };
                            self.set(claim, saga, from, "compensating", undo, Some((step, &why)))
                                .await?;
                        }
                        // Past the pivot there is no way back: stop, and
                        // let the timer go forward again later.
                        Err(StepError::Refused(why) | StepError::Transient(why)) => {
                            return self.stop(claim, saga, from, step, &why).await;
                        }
                    }
                }
                SagaStatus::Compensating if at == 0 => {
                    self.set(claim, saga, from, "compensated", 0, None).await?;
                }
                SagaStatus::Compensating => {
                    // Reverse order: the last step done is undone first.
                    let step = STEPS[at - 1];
                    match self.attempt(claim, saga, from, step, true).await {
                        Ok(()) => {
                            if self.faults.crash_here(CrashAt::AfterCompensation(step)) {
                                return Err(SagaError::Crashed(format!("undoing {step}")));
                            }
                            self.set(claim, saga, from, "compensating", at - 1, None)
                                .await?;
                        }
                        Err(StepError::Fenced) => return Err(SagaError::Superseded(saga)),
                        // A compensation is retried until it succeeds: the
                        // saga stops, still compensating, and its timer
                        // resumes the compensation after a backoff.
                        Err(StepError::Refused(why) | StepError::Transient(why)) => {
                            return self.stop(claim, saga, from, step, &why).await;
                        }
                    }
                }
                end => return Ok(end),
            }
        }
    }
    // ANCHOR_END: run

    // ANCHOR: stop
    /// A run that cannot go on: the saga keeps its status, step and
    /// direction, records the failure, and its timer is set after a backoff
    /// that doubles with each stopped run in a row. After
    /// [`SagaConfig::park_after`] of them it is parked in `dead_letter`
    /// (direction kept) for an operator. Returns where the saga is now.
    async fn stop(
        &self,
        claim: &Claim,
        saga: Uuid,
        from: (SagaStatus, usize),
        step: Step,
        why: &str,
    ) -> Result<SagaStatus, SagaError> {
        let first = self.config.resume_first.max(Duration::from_millis(1));
        let max = self.config.resume_max.max(first);
        // Equal jitter: sagas stopped by one outage do not all wake together.
        let Ok(backoff) = block_retry::Backoff::new(first, max, block_retry::Jitter::Equal) else {
            unreachable!("a base above zero and a cap at or above it are valid");
        };
        let mut conn = claim.lock().await;
        let resumes: Option<i32> = sqlx::query_scalar(
            "UPDATE sagas SET resumes = resumes + 1, last_error = $4,
                    failed_step = COALESCE(failed_step, $5), failure = COALESCE(failure, $4),
                    updated_at = now()
              WHERE id = $1 AND status = $2 AND step = $3
          RETURNING resumes",
        )
        .bind(saga)
        .bind(from.0.name())
        .bind(i32::try_from(from.1).unwrap_or(i32::MAX))
        .bind(why)
        .bind(step.name())
        .fetch_optional(&mut **conn)
        .await?;
        let Some(resumes) = resumes else {
            return Err(SagaError::Superseded(saga));
        };
        let resumes = u32::try_from(resumes).unwrap_or(u32::MAX);
        if resumes > self.config.park_after {
            sqlx::query("UPDATE sagas SET status = 'dead_letter' WHERE id = $1")
                .bind(saga)
                .execute(&mut **conn)
                .await?;
            return Ok(SagaStatus::DeadLetter);
        }
        let pause = backoff.delay(resumes - 1, first, &mut block_retry::Rng::from_entropy());
        // PostgreSQL intervals hold microseconds.
        let pause = Duration::from_micros(u64::try_from(pause.as_micros()).unwrap_or(u64::MAX));
        sqlx::query("UPDATE sagas SET wake_at = now() + $2 WHERE id = $1")
            .bind(saga)
            .bind(pause)
            .execute(&mut **conn)
            .await?;
        Ok(from.0)
    }
    // ANCHOR_END: stop

    /// Moves the saga row from `from` (the status and step this coordinator
    /// read) to `status` at `step`; `failure` is recorded once and kept. The
    /// direction follows the status (a parked saga keeps its own); the
    /// timer moves to the stall bound and the stopped runs start again from 0.
    /// Fails with [`SagaError::Superseded`] if the row is no longer at `from`.
    async fn set(
        &self,
        claim: &Claim,
        saga: Uuid,
        from: (SagaStatus, usize),
        status: &str,
        step: usize,
        failure: Option<(Step, &str)>,
    ) -> Result<(), SagaError> {
        let mut conn = claim.lock().await;
        let n = sqlx::query(
            "UPDATE sagas SET status = $2, step = $3,
                    failed_step = COALESCE($4, failed_step), failure = COALESCE($5, failure),
                    direction = CASE WHEN $2 IN ('running', 'completed') THEN 'forward'
                                     ELSE 'backward' END,
                    wake_at = now() + $8, resumes = 0, updated_at = now()
              WHERE id = $1 AND status = $6 AND step = $7",
        )
        .bind(saga)
        .bind(status)
        .bind(i32::try_from(step).unwrap_or(i32::MAX))
        .bind(failure.map(|(s, _)| s.name()))
        .bind(failure.map(|(_, w)| w))
        .bind(from.0.name())
        .bind(i32::try_from(from.1).unwrap_or(i32::MAX))
        .bind(self.config.stall_after)
        .execute(&mut **conn)
        .await?;
        if n.rows_affected() == 0 {
            return Err(SagaError::Superseded(saga));
        }
        Ok(())
    }

    // ANCHOR: attempt
    /// Runs a step (or its compensation) with a timeout per attempt and
    /// exponential backoff with full jitter between attempts (the retry
    /// block's loop, Part II). A refusal is final at once.
    async fn attempt(
        &self,
        claim: &Claim,
        saga: Uuid,
        from: (SagaStatus, usize),
        step: Step,
        undo: bool,
    ) -> Result<(), StepError> {
        // The block refuses a zero base; 1 ms is the least pause it takes.
        let base = self.config.backoff.max(Duration::from_millis(1));
        let Ok(backoff) =
            block_retry::Backoff::new(base, base.saturating_mul(64), block_retry::Jitter::Full)
        else {
            unreachable!("a base above zero and a cap above it are valid");
        };
        let policy = block_retry::RetryPolicy {
            max_retries: self.config.max_attempts.saturating_sub(1),
            backoff,
        };
        let tried = block_retry::retry(
            &policy,
            // No deadline of its own: the step timeout bounds each attempt.
            block_retry::Deadline::after(Duration::MAX),
            &mut block_retry::Rng::from_entropy(),
            |e| matches!(e, StepError::Transient(_)),
            |_| async {
                self.attempts.fetch_add(1, Ordering::Relaxed);
                let once = self.once(claim, saga, from, step, undo);
                match tokio::time::timeout(self.config.step_timeout, once).await {
                    Ok(done) => done,
                    Err(_) => Err(StepError::Transient(format!("{step} timed out"))),
                }
            },
        )
        .await;
        tried.map_err(|e| match e {
            block_retry::RetryError::NotRetryable { error, .. } => error,
            block_retry::RetryError::Exhausted {
                error: StepError::Fenced,
                ..
            } => StepError::Fenced,
            block_retry::RetryError::Exhausted { error, attempts }
            | block_retry::RetryError::Deadline {
                error: Some(error),
                attempts,
            } => {
                let why = match error {
                    StepError::Transient(why) | StepError::Refused(why) => why,
                    StepError::Fenced => return StepError::Fenced,
                };
                StepError::Transient(format!("{why} ({attempts} attempts)"))
            }
            block_retry::RetryError::Deadline { attempts, .. } => {
                StepError::Transient(format!("{step} timed out ({attempts} attempts)"))
            }
        })
    }
    // ANCHOR_END: attempt

    /// One attempt, in one transaction on the run's connection. The
    /// transaction first locks the saga row at the status and step this run
    /// read: a coordinator whose saga moved on acts on no participant.
    async fn once(
        &self,
        claim: &Claim,
        saga: Uuid,
        from: (SagaStatus, usize),
        step: Step,
        undo: bool,
    ) -> Result<(), StepError> {
        if take(&self.faults.hang_before, step) {
            tokio::time::sleep(self.config.step_timeout * 4).await;
        }
        let faults = if undo {
            &self.faults.unavailable_undo
        } else {
            &self.faults.unavailable
        };
        if take(faults, step) {
            return Err(StepError::Transient(format!(
                "{step}: participant unavailable"
            )));
        }
        let mut conn = claim.lock().await;
        let mut tx = sqlx::Connection::begin(&mut **conn)
            .await
            .map_err(transient)?;
        // The server cancels a statement of the step before the step
        // timeout would drop it (a lock wait, a slow query): the attempt
        // gets the error itself, and nothing is left running on the
        // connection for the next statement to wait behind.
        let limit = (self.config.step_timeout * 3 / 4).as_millis().max(1);
        sqlx::query(
            "SELECT set_config('statement_timeout', $1, true), set_config('lock_timeout', $1, true)",
        )
        .bind(format!("{limit}ms"))
        .execute(&mut *tx)
        .await
        .map_err(transient)?;
        let order_id: Option<Uuid> = sqlx::query_scalar(
            "SELECT order_id FROM sagas WHERE id = $1 AND status = $2 AND step = $3 FOR UPDATE",
        )
        .bind(saga)
        .bind(from.0.name())
        .bind(i32::try_from(from.1).unwrap_or(i32::MAX))
        .fetch_optional(&mut *tx)
        .await
        .map_err(transient)?;
        let Some(order_id) = order_id else {
            return Err(StepError::Fenced);
        };
        let changed = if undo {
            self.compensate(&mut tx, saga, order_id, step).await?
        } else {
            self.forward(&mut tx, saga, order_id, step).await?
        };
        if changed {
            let name = if undo {
                step.compensation().unwrap_or("?")
            } else {
                step.name()
            };
            log(&mut tx, saga, name).await.map_err(transient)?;
        }
        tx.commit().await.map_err(transient)?;
        drop(conn);
        if take(&self.faults.hang_after, step) {
            tokio::time::sleep(self.config.step_timeout * 4).await;
        }
        Ok(())
    }

    // ANCHOR: participants
    /// A step's effect, inside the participant's transaction; false when it was already done.
    async fn forward(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        saga: Uuid,
        order_id: Uuid,
        step: Step,
    ) -> Result<bool, StepError> {
        match step {
            // Done in `start`, with the saga row.
            Step::PlaceOrder => Ok(false),
            Step::ReserveStock => {
                let lines = sqlx::query(
                    "INSERT INTO stock_reservations (saga_id, sku, quantity, state)
                     SELECT $1, sku, quantity, 'reserved' FROM order_lines WHERE order_id = $2
                     ON CONFLICT DO NOTHING RETURNING sku, quantity",
                )
                .bind(saga)
                .bind(order_id)
                .fetch_all(&mut **tx)
                .await
                .map_err(transient)?;
                for (sku, quantity) in by_sku(&lines)? {
                    let reserved = sqlx::query(
                        "UPDATE stock SET reserved = reserved + $2
                          WHERE sku = $1 AND on_hand - reserved >= $2",
                    )
                    .bind(&sku)
                    .bind(quantity)
                    .execute(&mut **tx)
                    .await
                    .map_err(transient)?;
                    if reserved.rows_affected() == 0 {
                        // The transaction rolls back: no line stays reserved.
                        return Err(StepError::Refused(format!("out of stock: {sku}")));
                    }
                }
                Ok(!lines.is_empty())
            }
            Step::AuthorizePayment => {
                let order = PgStore::load(&mut **tx, order_id)
                    .await
                    .map_err(transient)?;
                if order.total_cents > self.config.card_limit_cents {
                    return Err(StepError::Refused("card declined".into()));
                }
                let n = sqlx::query(
                    "INSERT INTO payments (saga_id, order_id, amount_cents, state)
                     VALUES ($1, $2, $3, 'authorized') ON CONFLICT DO NOTHING",
                )
                .bind(saga)
                .bind(order_id)
                .bind(order.total_cents)
                .execute(&mut **tx)
                .await
                .map_err(transient)?;
                Ok(n.rows_affected() == 1)
            }
            Step::CapturePayment => {
                if self.faults.refuse_capture {
                    return Err(StepError::Refused(
                        "the provider refused the capture".into(),
                    ));
                }
                settle_payment(tx, saga, "captured").await
            }
            Step::CommitStock => settle_reservations(
                tx,
                saga,
                "committed",
                "UPDATE stock SET on_hand = on_hand - $2, reserved = reserved - $2 WHERE sku = $1",
            )
            .await,
            Step::ApproveOrder => {
                let Some(order) = pending_order(tx, order_id).await? else {
                    return Ok(false);
                };
                let amount_cents = order.total_cents;
                PgStore::apply_in(
                    tx,
                    order_id,
                    order.version,
                    &Command::Approve { amount_cents },
                )
                .await
                .map_err(transient)?;
                Ok(true)
            }
        }
    }

    /// A compensation's effect; false when it was already done (or nothing was there to undo).
    async fn compensate(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        saga: Uuid,
        order_id: Uuid,
        step: Step,
    ) -> Result<bool, StepError> {
        match step {
            Step::PlaceOrder => {
                let Some(order) = pending_order(tx, order_id).await? else {
                    return Ok(false);
                };
                let (failed_step, failure): (Option<String>, Option<String>) =
                    sqlx::query_as("SELECT failed_step, failure FROM sagas WHERE id = $1")
                        .bind(saga)
                        .fetch_one(&mut **tx)
                        .await
                        .map_err(transient)?;
                let reason = failure.unwrap_or_default();
                let payment = matches!(
                    failed_step.as_deref().and_then(Step::from_name),
                    Some(Step::AuthorizePayment | Step::CapturePayment)
                );
                let command = if payment {
                    Command::FailPayment { reason }
                } else {
                    Command::Reject { reason }
                };
                PgStore::apply_in(tx, order_id, order.version, &command)
                    .await
                    .map_err(transient)?;
                Ok(true)
            }
            Step::ReserveStock => {
                settle_reservations(
                    tx,
                    saga,
                    "released",
                    "UPDATE stock SET reserved = reserved - $2 WHERE sku = $1",
                )
                .await
            }
            Step::AuthorizePayment => settle_payment(tx, saga, "voided").await,
            // Nothing after the pivot is ever compensated.
            Step::CapturePayment | Step::CommitStock | Step::ApproveOrder => Ok(false),
        }
    }
}

/// Gives a run's connection back to the pool: unlocks the claim on `saga`
/// (if it was taken) and resets the timeouts (set per transaction; reset
/// again in case). A connection that may still hold the lock is closed
/// instead.
async fn release(mut conn: PoolConnection<Postgres>, saga: Option<Uuid>) {
    let unlocked = match saga {
        Some(saga) => matches!(
            sqlx::query_scalar::<_, bool>(
                "SELECT pg_advisory_unlock(hashtextextended($1::text, 0))"
            )
            .bind(saga)
            .fetch_one(&mut *conn)
            .await,
            Ok(true)
        ),
        None => true,
    };
    let reset = sqlx::raw_sql("RESET statement_timeout; RESET lock_timeout")
        .execute(&mut *conn)
        .await
        .is_ok();
    if !(unlocked && reset) {
        drop(conn.detach());
    }
}

/// (sku, quantity) of reservation rows, sorted by sku: every saga locks
/// stock rows in the same order, so two checkouts of the same SKUs wait
/// for each other instead of deadlocking (which the step timeout, shorter
/// than PostgreSQL's `deadlock_timeout`, would report as a timeout).
fn by_sku(rows: &[sqlx::postgres::PgRow]) -> Result<Vec<(String, i32)>, StepError> {
    let mut lines = rows
        .iter()
        .map(|l| Ok((l.try_get("sku")?, l.try_get("quantity")?)))
        .collect::<Result<Vec<(String, i32)>, sqlx::Error>>()
        .map_err(transient)?;
    lines.sort();
    Ok(lines)
}

/// The order, if it is still `pending` (its saga's step not yet done).
async fn pending_order(
    tx: &mut Transaction<'_, Postgres>,
    order_id: Uuid,
) -> Result<Option<Order>, StepError> {
    let order = PgStore::load(&mut **tx, order_id)
        .await
        .map_err(transient)?;
    Ok((order.state == State::Pending).then_some(order))
}

/// Moves the saga's `reserved` stock to `to` (`committed` or `released`)
/// and runs `stock_sql` (`$1` sku, `$2` quantity) for each line; false when
/// nothing was reserved (settled before, or never reserved).
async fn settle_reservations(
    tx: &mut Transaction<'_, Postgres>,
    saga: Uuid,
    to: &str,
    stock_sql: &'static str,
) -> Result<bool, StepError> {
    let lines = sqlx::query(
        "UPDATE stock_reservations SET state = $2
          WHERE saga_id = $1 AND state = 'reserved' RETURNING sku, quantity",
    )
    .bind(saga)
    .bind(to)
    .fetch_all(&mut **tx)
    .await
    .map_err(transient)?;
    for (sku, quantity) in by_sku(&lines)? {
        sqlx::query(stock_sql)
            .bind(sku)
            .bind(quantity)
            .execute(&mut **tx)
            .await
            .map_err(transient)?;
    }
    Ok(!lines.is_empty())
}

/// Moves the saga's `authorized` payment to `to` (`captured` or `voided`);
/// false when there was none (settled before, or never authorized).
async fn settle_payment(
    tx: &mut Transaction<'_, Postgres>,
    saga: Uuid,
    to: &str,
) -> Result<bool, StepError> {
    let n =
        sqlx::query("UPDATE payments SET state = $2 WHERE saga_id = $1 AND state = 'authorized'")
            .bind(saga)
            .bind(to)
            .execute(&mut **tx)
            .await
            .map_err(transient)?;
    Ok(n.rows_affected() == 1)
}
// ANCHOR_END: participants
