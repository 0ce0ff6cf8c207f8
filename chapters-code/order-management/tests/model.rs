//! Model-based testing: proptest-state-machine generates random command
//! sequences (legal, illegal, malformed and stale), applies each to a
//! reference model and to a real store, and checks after every step that
//! they agree: the same answer (success or which refusal), the same row,
//! a history that folds back to the row, and on PostgreSQL one outbox row
//! per event.
//!
//! The model is written independently of `domain::state::TRANSITIONS`: a
//! plain `match` over (state, command) as the requirements state them. If
//! the table and the requirements disagree, this test finds the sequence.

mod common;

use std::cell::RefCell;
use std::sync::Arc;

use common::*;
use order_management::domain::{Command, CommandError, Order, Refusal, ShipLine, State};
use order_management::store::{MemoryStore, OrderStore, PgStore, StoreError};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest};
use uuid::Uuid;

// ANCHOR: model
/// The reference: what the requirements say, nothing more.
#[derive(Clone, Debug)]
struct Model {
    state: State,
    version: i64,
    quantities: Vec<u32>,
    prices: Vec<i64>,
    shipped: Vec<u32>,
    paid: i64,
    refunded: i64,
    /// What the last transition should have produced.
    expect: Expect,
}

/// The answer a step must give.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Ok,
    Stale,
    Illegal,
    Locked,
    NotPaid,
    Malformed,
}

/// A step of the random script.
#[derive(Clone, Debug)]
enum Step {
    Place,
    Approve,
    /// Approve with the wrong amount: malformed in any state.
    ApproveWrongAmount,
    FailPayment,
    Reject,
    /// (line, quantity) pairs, possibly out of range, zero or too many.
    Ship(Vec<(u32, u32)>),
    Deliver,
    Cancel,
    Return,
    Refund,
    /// The step, sent with an old version.
    Stale(Box<Step>),
}

impl Model {
    fn total(&self) -> i64 {
        self.quantities
            .iter()
            .zip(&self.prices)
            .map(|(q, p)| i64::from(*q) * p)
            .sum()
    }

    fn left(&self) -> u32 {
        self.quantities
            .iter()
            .zip(&self.shipped)
            .map(|(q, s)| q - s)
            .sum()
    }

    /// Is the shipment well formed against this order?
    fn shipment_ok(&self, lines: &[(u32, u32)]) -> bool {
        !lines.is_empty()
            && lines.iter().enumerate().all(|(i, (line, qty))| {
                let n = *line as usize;
                n >= 1
                    && n <= self.quantities.len()
                    && *qty >= 1
                    && *qty <= self.quantities[n - 1] - self.shipped[n - 1]
                    && !lines[..i].iter().any(|(l, _)| l == line)
            })
    }

    fn next(mut self, step: &Step) -> Model {
        use State::*;
        let client = !matches!(step, Step::Approve | Step::FailPayment | Step::Reject);
        let (expect, to) = match (self.state, step) {
            (_, Step::Stale(_)) => (Expect::Stale, self.state),
            (_, Step::ApproveWrongAmount) => (Expect::Malformed, self.state),
            (_, Step::Ship(l)) if !self.shipment_ok(l) => (Expect::Malformed, self.state),
            (Pending, _) if client => (Expect::Locked, self.state),
            (Created, Step::Place) | (PaymentFailed, Step::Place) => (Expect::Ok, Pending),
            (Created | PaymentFailed | Paid, Step::Cancel) => (Expect::Ok, Cancelled),
            (Pending, Step::Approve) => (Expect::Ok, Paid),
            (Pending, Step::FailPayment) => (Expect::Ok, PaymentFailed),
            (Pending, Step::Reject) => (Expect::Ok, Rejected),
            (Paid | PartiallyShipped, Step::Ship(lines)) => {
                let units: u32 = lines.iter().map(|(_, q)| q).sum();
                let to = if units == self.left() {
                    Shipped
                } else {
                    PartiallyShipped
                };
                (Expect::Ok, to)
            }
            (Shipped, Step::Deliver) => (Expect::Ok, Delivered),
            (Delivered, Step::Return) => (Expect::Ok, Returned),
            (Cancelled | Returned, Step::Refund) if self.paid > 0 && self.refunded == 0 => {
                (Expect::Ok, Refunded)
            }
            (Cancelled | Returned, Step::Refund) => (Expect::NotPaid, self.state),
            _ => (Expect::Illegal, self.state),
        };
        self.expect = expect;
        if expect == Expect::Ok {
            match step {
                Step::Approve => self.paid = self.total(),
                Step::Refund => self.refunded = self.paid,
                Step::Ship(lines) => {
                    for (line, qty) in lines {
                        self.shipped[*line as usize - 1] += qty;
                    }
                }
                _ => {}
            }
            self.state = to;
            self.version += 1;
        }
        self
    }
}
// ANCHOR_END: model

/// The steps a happy (or unhappy) customer would take next.
fn likely_steps(m: &Model) -> Vec<Step> {
    use State::*;
    let left: Vec<(u32, u32)> = m
        .quantities
        .iter()
        .zip(&m.shipped)
        .zip(1..)
        .filter(|((q, s), _)| s < q)
        .map(|((q, s), line)| (line, q - s))
        .collect();
    let ship_all = Step::Ship(left.clone());
    let ship_one = Step::Ship(left.iter().take(1).map(|(l, _)| (*l, 1)).collect());
    match m.state {
        Created | PaymentFailed => vec![Step::Place, Step::Place, Step::Cancel],
        Pending => vec![
            Step::Approve,
            Step::Approve,
            Step::FailPayment,
            Step::Reject,
        ],
        Paid => vec![ship_all, ship_one, Step::Cancel],
        PartiallyShipped => vec![ship_all, ship_one],
        Shipped => vec![Step::Deliver],
        Delivered => vec![Step::Return, Step::Cancel],
        Cancelled | Returned => vec![Step::Refund],
        Rejected | Refunded => vec![Step::Cancel, Step::Refund, Step::Place],
    }
}

struct Reference;

impl ReferenceStateMachine for Reference {
    type State = Model;
    type Transition = Step;

    fn init_state() -> BoxedStrategy<Model> {
        prop::collection::vec((1u32..=3, 0i64..=500), 1..=3)
            .prop_map(|lines| Model {
                state: State::Created,
                version: 1,
                quantities: lines.iter().map(|(q, _)| *q).collect(),
                prices: lines.iter().map(|(_, p)| *p).collect(),
                shipped: vec![0; lines.len()],
                paid: 0,
                refunded: 0,
                expect: Expect::Ok,
            })
            .boxed()
    }

    fn transitions(model: &Model) -> BoxedStrategy<Step> {
        let lines = u32::try_from(model.quantities.len()).unwrap_or(1);
        let ship = prop::collection::vec((1..=lines + 1, 0u32..=3), 0..=3).prop_map(Step::Ship);
        let plain = prop_oneof![
            3 => Just(Step::Place),
            3 => Just(Step::Approve),
            1 => Just(Step::ApproveWrongAmount),
            1 => Just(Step::FailPayment),
            1 => Just(Step::Reject),
            4 => ship,
            2 => Just(Step::Deliver),
            2 => Just(Step::Cancel),
            1 => Just(Step::Return),
            2 => Just(Step::Refund),
        ];
        // Mostly a step the requirements allow now, so that scripts get
        // deep into the life of an order; the rest are anything at all.
        let likely = likely_steps(model);
        prop_oneof![
            6 => prop::sample::select(likely),
            3 => plain.clone(),
            1 => plain.prop_map(|s| Step::Stale(Box::new(s))),
        ]
        .boxed()
    }

    fn apply(model: Model, step: &Step) -> Model {
        model.next(step)
    }
}

/// The system under test: a store, its runtime, and the order it drives.
struct Sut<S> {
    rt: Arc<tokio::runtime::Runtime>,
    store: Arc<S>,
    pool: Option<sqlx::PgPool>,
    id: Uuid,
    version: i64,
}

/// A runtime, the store over the test's database, and its pool.
type PgContext = (Arc<tokio::runtime::Runtime>, Arc<PgStore>, sqlx::PgPool);

thread_local! {
    /// The store the current test drives (set by the `#[test]` below, read by `init_test`).
    static PG: RefCell<Option<PgContext>> = const { RefCell::new(None) };
}

fn command(step: &Step, model_before_total: i64) -> Command {
    match step {
        Step::Place => Command::Place,
        Step::Approve => Command::Approve {
            amount_cents: model_before_total,
        },
        Step::ApproveWrongAmount => Command::Approve {
            amount_cents: model_before_total + 1,
        },
        Step::FailPayment => Command::FailPayment {
            reason: "declined".into(),
        },
        Step::Reject => Command::Reject {
            reason: "no stock".into(),
        },
        Step::Ship(lines) => Command::Ship {
            lines: lines
                .iter()
                .map(|(line, quantity)| ShipLine {
                    line: *line,
                    quantity: *quantity,
                })
                .collect(),
        },
        Step::Deliver => Command::Deliver,
        Step::Cancel => Command::Cancel {
            reason: "changed my mind".into(),
        },
        Step::Return => Command::Return,
        Step::Refund => Command::Refund,
        Step::Stale(inner) => command(inner, model_before_total),
    }
}

fn classify(r: &Result<Order, StoreError>) -> Expect {
    match r {
        Ok(_) => Expect::Ok,
        Err(StoreError::VersionConflict { .. }) => Expect::Stale,
        Err(StoreError::Command(CommandError::Refused(Refusal::Illegal { .. }))) => Expect::Illegal,
        Err(StoreError::Command(CommandError::Refused(Refusal::Locked { .. }))) => Expect::Locked,
        Err(StoreError::Command(CommandError::Refused(Refusal::GuardFailed { .. }))) => {
            Expect::NotPaid
        }
        Err(StoreError::Command(CommandError::InvalidShipment(_) | CommandError::Invalid(_))) => {
            Expect::Malformed
        }
        Err(e) => panic!("unexpected store error: {e}"),
    }
}

trait Backend: OrderStore + Sized {
    fn init(ref_state: &Model) -> Sut<Self>;
}

fn request_of(model: &Model) -> order_management::domain::NewOrder {
    let lines: Vec<(String, u32, i64)> = model
        .quantities
        .iter()
        .zip(&model.prices)
        .enumerate()
        .map(|(i, (q, p))| (format!("SKU-{i}"), *q, *p))
        .collect();
    let refs: Vec<(&str, u32, i64)> = lines.iter().map(|(s, q, p)| (s.as_str(), *q, *p)).collect();
    new_order(&refs)
}

impl Backend for MemoryStore {
    fn init(model: &Model) -> Sut<MemoryStore> {
        let rt = Arc::new(ok(
            "runtime",
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build(),
        ));
        let store = Arc::new(MemoryStore::new());
        let id = Uuid::new_v4();
        ok("create", rt.block_on(store.create(id, &request_of(model))));
        Sut {
            rt,
            store,
            pool: None,
            id,
            version: 1,
        }
    }
}

impl Backend for PgStore {
    fn init(model: &Model) -> Sut<PgStore> {
        let (rt, store, pool) = PG.with(|pg| match &*pg.borrow() {
            Some((rt, store, pool)) => (Arc::clone(rt), Arc::clone(store), pool.clone()),
            None => panic!("the PostgreSQL model test sets its store first"),
        });
        // One database per test, one new order per generated case.
        let id = Uuid::new_v4();
        ok("create", rt.block_on(store.create(id, &request_of(model))));
        Sut {
            rt,
            store,
            pool: Some(pool),
            id,
            version: 1,
        }
    }
}

struct ModelTest<S>(std::marker::PhantomData<S>);

impl<S: Backend> StateMachineTest for ModelTest<S> {
    type SystemUnderTest = Sut<S>;
    type Reference = Reference;

    fn init_test(model: &Model) -> Sut<S> {
        S::init(model)
    }

    // ANCHOR: agree
    fn apply(mut sut: Sut<S>, after: &Model, step: Step) -> Sut<S> {
        let total = after.total();
        let expected_version = match step {
            // An old version: the one before the current (or a future one at version 1).
            Step::Stale(_) if sut.version > 1 => sut.version - 1,
            Step::Stale(_) => sut.version + 1,
            _ => sut.version,
        };
        let before = sut.rt.block_on(sut.store.get(sut.id));
        let result = sut.rt.block_on(sut.store.apply(
            sut.id,
            expected_version,
            &command(&step, total),
        ));
        assert_eq!(classify(&result), after.expect, "{step:?} gave {result:?}");
        if let Ok(o) = &result {
            sut.version = o.version;
        } else {
            // A refusal changes nothing.
            assert_eq!(
                sut.rt.block_on(sut.store.get(sut.id)).ok(),
                before.ok(),
                "{step:?} was refused but changed the order"
            );
        }
        sut
    }

    fn check_invariants(sut: &Sut<S>, model: &Model) {
        let order = ok("get", sut.rt.block_on(sut.store.get(sut.id)));
        assert_eq!(order.state, model.state);
        assert_eq!(order.version, model.version);
        assert_eq!(
            order.lines.iter().map(|l| l.shipped).collect::<Vec<_>>(),
            model.shipped
        );
        assert_eq!(
            (order.paid_cents, order.refunded_cents),
            (model.paid, model.refunded)
        );
        // The history folds back to the row.
        let events: Vec<_> = ok("history", sut.rt.block_on(sut.store.history(sut.id)))
            .into_iter()
            .map(|r| r.event)
            .collect();
        assert_eq!(ok("fold", Order::fold(sut.id, &events)), order);
        // One outbox message per event.
        if let Some(pool) = &sut.pool {
            let messages = sut.rt.block_on(count_rows(pool, "outbox", sut.id));
            assert_eq!(messages, model.version);
        }
    }
    // ANCHOR_END: agree
}

fn run<S: Backend>(cases: u32, max_steps: usize) {
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config.clone());
    let result = runner.run(
        &Reference::sequential_strategy(1..max_steps),
        |(initial, steps, seen)| {
            ModelTest::<S>::test_sequential(config.clone(), initial, steps, seen);
            Ok(())
        },
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn the_memory_store_agrees_with_the_model() {
    run::<MemoryStore>(256, 40);
}

// ANCHOR: pg_model
#[test]
fn postgres_agrees_with_the_model_after_every_step() {
    let rt = Arc::new(ok(
        "runtime",
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build(),
    ));
    let Some((db, store)) = rt.block_on(pg_store()) else {
        return;
    };
    PG.with(|pg| *pg.borrow_mut() = Some((Arc::clone(&rt), Arc::new(store), db.pool.clone())));
    run::<PgStore>(48, 30);
    PG.with(|pg| *pg.borrow_mut() = None);
    drop(db);
}
// ANCHOR_END: pg_model
