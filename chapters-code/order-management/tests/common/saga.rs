//! The checkout saga's fixture: a database with stock, orchestrators with
//! short timeouts, and a checkout run with faults injected.

use std::time::Duration;

use order_management::domain::{NewOrder, State};
use order_management::saga::{CrashAt, Orchestrator, SagaStatus, Step};
use order_management::store::{OrderStore, PgStore};
use testkit::TestDb;
use uuid::Uuid;

use super::{ok, pg_store, two_lines};

/// Every forward action of a completed checkout, in order.
pub const HAPPY: [&str; 6] = [
    "order.place",
    "stock.reserve",
    "payment.authorize",
    "payment.capture",
    "stock.commit",
    "order.approve",
];

/// The log of a saga compensated after the authorization: the void, the
/// release and the rejection undo the first three steps, the last first.
pub const UNDONE_AFTER_AUTHORIZE: [&str; 6] = [
    "order.place",
    "stock.reserve",
    "payment.authorize",
    "payment.void",
    "stock.release",
    "order.reject",
];

/// The log of a saga compensated before any authorization took effect.
pub const UNDONE_BEFORE_AUTHORIZE: [&str; 4] = [
    "order.place",
    "stock.reserve",
    "stock.release",
    "order.reject",
];

/// A database with the schema and 10 each of SKUs A and B, and a store on it.
pub struct SagaEnv {
    /// The test database.
    pub db: TestDb,
    /// The order store over it.
    pub store: PgStore,
}

/// The saga fixture; `None` after a SKIPPED line.
pub async fn saga_env() -> Option<SagaEnv> {
    let (db, store) = pg_store().await?;
    ok(
        "stock",
        db.apply_sql("INSERT INTO stock (sku, on_hand) VALUES ('A', 10), ('B', 10)")
            .await,
    );
    Some(SagaEnv { db, store })
}

impl SagaEnv {
    /// An orchestrator with a 200 ms step timeout and a 10 ms backoff.
    pub fn orchestrator(&self) -> Orchestrator {
        let mut o = Orchestrator::new(self.db.pool.clone());
        o.config.step_timeout = Duration::from_millis(200);
        o.config.backoff = Duration::from_millis(10);
        o
    }

    /// Creates an order of `request`.
    pub async fn order(&self, request: &NewOrder) -> Uuid {
        let id = Uuid::new_v4();
        ok("create", self.store.create(id, request).await);
        id
    }

    /// Checks out the usual two-line order with an orchestrator that
    /// `setup` first configures (faults, limits); returns the orchestrator,
    /// the order, the saga and where the saga ended.
    pub async fn checkout(
        &self,
        setup: impl FnOnce(&mut Orchestrator),
    ) -> (Orchestrator, Uuid, Uuid, SagaStatus) {
        let mut o = self.orchestrator();
        setup(&mut o);
        let id = self.order(&two_lines()).await;
        let (saga, status) = ok("checkout", o.checkout(id, 1).await);
        (o, id, saga, status)
    }

    /// The order's state.
    pub async fn state(&self, id: Uuid) -> State {
        ok("get", self.store.get(id).await).state
    }

    /// (on hand, reserved) of a SKU.
    pub async fn stock(&self, sku: &str) -> (i32, i32) {
        ok(
            "stock",
            sqlx::query_as("SELECT on_hand, reserved FROM stock WHERE sku = $1")
                .bind(sku)
                .fetch_one(&self.db.pool)
                .await,
        )
    }

    /// The state of the saga's payment, if it has one.
    pub async fn payment(&self, saga: Uuid) -> Option<String> {
        ok(
            "payment",
            sqlx::query_scalar("SELECT state FROM payments WHERE saga_id = $1")
                .bind(saga)
                .fetch_optional(&self.db.pool)
                .await,
        )
    }
}

/// The actions the saga has executed, in order.
pub async fn log(o: &Orchestrator, saga: Uuid) -> Vec<String> {
    ok("log", o.log_of(saga).await)
}

/// A participant's misbehaviour, injected per attempt of a step.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// Hangs past the step timeout before doing anything.
    HangBefore,
    /// Does its work, then hangs past the step timeout.
    HangAfter,
    /// Answers "unavailable".
    Unavailable,
    /// Answers "unavailable" to the step's compensation.
    UnavailableUndo,
}

/// Makes the next `attempts` attempts of `step` by `o` take `fault`.
pub fn inject(o: &Orchestrator, fault: Fault, step: Step, attempts: u32) {
    let map = match fault {
        Fault::HangBefore => &o.faults.hang_before,
        Fault::HangAfter => &o.faults.hang_after,
        Fault::Unavailable => &o.faults.unavailable,
        Fault::UnavailableUndo => &o.faults.unavailable_undo,
    };
    map.lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(step, attempts);
}

/// Makes every attempt of `step` by `o` take `fault`, up to its last.
pub fn inject_always(o: &Orchestrator, fault: Fault, step: Step) {
    inject(o, fault, step, o.config.max_attempts);
}

/// Makes `o` die once at `at`.
pub fn crash_at(o: &Orchestrator, at: CrashAt) {
    *o.faults.crash.lock().unwrap_or_else(|p| p.into_inner()) = Some(at);
}
