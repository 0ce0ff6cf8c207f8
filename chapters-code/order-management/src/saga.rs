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
//! with a session-level advisory lock keyed by the saga id, held on its own
//! connection for the whole run. A second coordinator's claim fails and it
//! skips the saga; a coordinator that dies closes its connection and
//! PostgreSQL releases the lock. Every write of the saga row is also fenced
//! by the status and step it expects, so a coordinator that lost its claim
//! (its connection dropped while it kept going) cannot move the saga back.
//!
//! Steps run under a timeout and are retried with backoff. A step that
//! fails for good before the pivot starts the compensation (a refused
//! pivot too; a pivot whose answer was lost stays `running` for
//! [`Orchestrator::recover`], since it may have taken the money); after the pivot
//! there is nothing to compensate, so a step that keeps failing parks the
//! saga in `dead_letter` for an operator (or a later [`Orchestrator::run`]).

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::postgres::PgPool;
use sqlx::{Postgres, Row, Transaction};
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
    /// Past the pivot and stuck: needs an operator or a later retry.
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
}

impl Default for SagaConfig {
    fn default() -> Self {
        SagaConfig {
            step_timeout: Duration::from_millis(500),
            max_attempts: 3,
            backoff: Duration::from_millis(20),
            card_limit_cents: 1_000_000,
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

/// The coordinator.
pub struct Orchestrator {
    pool: PgPool,
    /// Timeouts and retries.
    pub config: SagaConfig,
    /// Injected failures.
    pub faults: Faults,
    /// Attempts of steps and compensations this coordinator made (a metric).
    pub attempts: AtomicU64,
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
    /// A coordinator over the database with the default configuration.
    pub fn new(pool: PgPool) -> Self {
        Orchestrator {
            pool,
            config: SagaConfig::default(),
            faults: Faults::default(),
            attempts: AtomicU64::new(0),
        }
    }

    // ANCHOR: start
    /// Starts checkout: the order goes to `pending` (the semantic lock) and
    /// the saga row is written, in one transaction. Returns the saga's id.
    pub async fn start(&self, order_id: Uuid, expected_version: i64) -> Result<Uuid, SagaError> {
        let saga = Uuid::new_v4();
        let mut tx = self.pool.begin().await?;
        PgStore::apply_in(&mut tx, order_id, expected_version, &Command::Place).await?;
        sqlx::query("INSERT INTO sagas (id, order_id, status, step) VALUES ($1, $2, 'running', 1)")
            .bind(saga)
            .bind(order_id)
            .execute(&mut *tx)
            .await?;
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
    pub async fn recover(&self) -> Result<Vec<(Uuid, SagaStatus)>, SagaError> {
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT id FROM sagas WHERE status IN ('running', 'compensating') ORDER BY updated_at",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            match self.claim_and_drive(id, true).await {
                Ok(Some(status)) => out.push((id, status)),
                // Another coordinator has it, or ran it to its end since
                // the list was read, or moved it under us: not ours.
                Ok(None) | Err(SagaError::Claimed(_) | SagaError::Superseded(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Drives a saga from wherever its row says it is to an end state, under its claim.
    pub async fn run(&self, saga: Uuid) -> Result<SagaStatus, SagaError> {
        match self.claim_and_drive(saga, false).await? {
            Some(status) => Ok(status),
            None => Ok(self.status(saga).await?.0),
        }
    }

    /// Claims a saga (a session advisory lock on a connection of its own,
    /// released when the run ends or the connection closes), then drives
    /// it. With `live_only`, a saga that is no longer running or
    /// compensating once claimed is left alone (`None`).
    async fn claim_and_drive(
        &self,
        saga: Uuid,
        live_only: bool,
    ) -> Result<Option<SagaStatus>, SagaError> {
        let mut claim = self.pool.acquire().await?;
        let held: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1::text, 0))")
                .bind(saga)
                .fetch_one(&mut *claim)
                .await?;
        if !held {
            return Err(SagaError::Claimed(saga));
        }
        let result = async {
            // Read after claiming: another coordinator may have finished it.
            let (status, _, _) = self.status(saga).await?;
            let live = matches!(status, SagaStatus::Running | SagaStatus::Compensating);
            if live_only && !live {
                return Ok(None);
            }
            self.drive(saga).await.map(Some)
        }
        .await;
        let released = sqlx::query_scalar::<_, bool>(
            "SELECT pg_advisory_unlock(hashtextextended($1::text, 0))",
        )
        .bind(saga)
        .fetch_one(&mut *claim)
        .await;
        if !matches!(released, Ok(true)) {
            // Never hand a connection that may still hold the lock back to the pool.
            drop(claim.detach());
        }
        result
    }
    // ANCHOR_END: recover

    /// An operator's retry of a saga parked in `dead_letter` past the pivot:
    /// it goes forward again from the step that was stuck.
    pub async fn retry_dead_letter(&self, saga: Uuid) -> Result<SagaStatus, SagaError> {
        let n = sqlx::query(
            "UPDATE sagas SET status = 'running', updated_at = now()
              WHERE id = $1 AND status = 'dead_letter' AND step > $2",
        )
        .bind(saga)
        .bind(i32::try_from(PIVOT).unwrap_or(0))
        .execute(&self.pool)
        .await?;
        if n.rows_affected() == 0 {
            return Ok(self.status(saga).await?.0);
        }
        self.run(saga).await
    }

    /// The actions the participants executed for a saga, in order.
    pub async fn log_of(&self, saga: Uuid) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT action FROM saga_log WHERE saga_id = $1 ORDER BY seq")
            .bind(saga)
            .fetch_all(&self.pool)
            .await
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
    async fn drive(&self, saga: Uuid) -> Result<SagaStatus, SagaError> {
        loop {
            let (status, at, _) = self.status(saga).await?;
            // Every write below expects the row still to be where it was read.
            let from = (status, at);
            match status {
                SagaStatus::Running if at == STEPS.len() => {
                    self.set(saga, from, "completed", at, None).await?;
                }
                SagaStatus::Running => {
                    let step = STEPS[at];
                    match self.attempt(saga, step, false).await {
                        Ok(()) => {
                            if self.faults.crash_here(CrashAt::AfterStep(step)) {
                                return Err(SagaError::Crashed(step.to_string()));
                            }
                            self.set(saga, from, "running", at + 1, None).await?;
                        }
                        // Up to and including the pivot, a failure is undone.
                        // A step that timed out may still have acted, so the
                        // failed step is compensated too (a no-op if it did
                        // nothing), then the `at` steps before it.
                        // The pivot's answer was lost (timeouts, unavailable):
                        // it may have taken the money, so it is never
                        // compensated on doubt. The saga stays at the pivot,
                        // the failure recorded, for `recover` to ask again.
                        Err(StepError::Transient(why)) if at == PIVOT => {
                            self.set(saga, from, "running", at, Some((step, &why)))
                                .await?;
                            return Ok(SagaStatus::Running);
                        }
                        Err(StepError::Refused(why) | StepError::Transient(why)) if at <= PIVOT => {
                            let undo = if step.compensation().is_some() {
                                at + 1
                            } else {
                                at
                            };
                            self.set(saga, from, "compensating", undo, Some((step, &why)))
                                .await?;
                        }
                        // Past the pivot there is no way back: park it.
                        Err(StepError::Refused(why) | StepError::Transient(why)) => {
                            self.set(saga, from, "dead_letter", at, Some((step, &why)))
                                .await?;
                        }
                    }
                }
                SagaStatus::Compensating if at == 0 => {
                    self.set(saga, from, "compensated", 0, None).await?;
                }
                SagaStatus::Compensating => {
                    // Reverse order: the last step done is undone first.
                    let step = STEPS[at - 1];
                    match self.attempt(saga, step, true).await {
                        Ok(()) => {
                            if self.faults.crash_here(CrashAt::AfterCompensation(step)) {
                                return Err(SagaError::Crashed(format!("undoing {step}")));
                            }
                            self.set(saga, from, "compensating", at - 1, None).await?;
                        }
                        Err(StepError::Refused(why) | StepError::Transient(why)) => {
                            self.set(saga, from, "dead_letter", at, Some((step, &why)))
                                .await?;
                        }
                    }
                }
                end => return Ok(end),
            }
        }
    }
    // ANCHOR_END: run

    /// Moves the saga row from `from` (the status and step this coordinator
    /// read) to `status` at `step`; `failure` is recorded once and kept.
    /// Fails with [`SagaError::Superseded`] if the row is no longer at `from`.
    async fn set(
        &self,
        saga: Uuid,
        from: (SagaStatus, usize),
        status: &str,
        step: usize,
        failure: Option<(Step, &str)>,
    ) -> Result<(), SagaError> {
        let n = sqlx::query(
            "UPDATE sagas SET status = $2, step = $3,
                    failed_step = COALESCE($4, failed_step), failure = COALESCE($5, failure),
                    updated_at = now()
              WHERE id = $1 AND status = $6 AND step = $7",
        )
        .bind(saga)
        .bind(status)
        .bind(i32::try_from(step).unwrap_or(i32::MAX))
        .bind(failure.map(|(s, _)| s.name()))
        .bind(failure.map(|(_, w)| w))
        .bind(from.0.name())
        .bind(i32::try_from(from.1).unwrap_or(i32::MAX))
        .execute(&self.pool)
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
    async fn attempt(&self, saga: Uuid, step: Step, undo: bool) -> Result<(), StepError> {
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
                let once = self.once(saga, step, undo);
                match tokio::time::timeout(self.config.step_timeout, once).await {
                    Ok(done) => done,
                    Err(_) => Err(StepError::Transient(format!("{step} timed out"))),
                }
            },
        )
        .await;
        tried.map_err(|e| match e {
            block_retry::RetryError::NotRetryable { error, .. } => error,
            block_retry::RetryError::Exhausted { error, attempts }
            | block_retry::RetryError::Deadline {
                error: Some(error),
                attempts,
            } => {
                let why = match error {
                    StepError::Transient(why) | StepError::Refused(why) => why,
                };
                StepError::Transient(format!("{why} ({attempts} attempts)"))
            }
            block_retry::RetryError::Deadline { attempts, .. } => {
                StepError::Transient(format!("{step} timed out ({attempts} attempts)"))
            }
        })
    }
    // ANCHOR_END: attempt

    async fn once(&self, saga: Uuid, step: Step, undo: bool) -> Result<(), StepError> {
        if take(&self.faults.hang_before, step) {
            tokio::time::sleep(self.config.step_timeout * 4).await;
        }
        if take(&self.faults.unavailable, step) {
            return Err(StepError::Transient(format!(
                "{step}: participant unavailable"
            )));
        }
        let mut tx = self.pool.begin().await.map_err(transient)?;
        let order_id: Uuid = sqlx::query_scalar("SELECT order_id FROM sagas WHERE id = $1")
            .bind(saga)
            .fetch_one(&mut *tx)
            .await
            .map_err(transient)?;
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
                for l in &lines {
                    let sku: String = l.try_get("sku").map_err(transient)?;
                    let quantity: i32 = l.try_get("quantity").map_err(transient)?;
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
    for l in &lines {
        sqlx::query(stock_sql)
            .bind(l.try_get::<String, _>("sku").map_err(transient)?)
            .bind(l.try_get::<i32, _>("quantity").map_err(transient)?)
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
