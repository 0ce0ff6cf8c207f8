//! The typestate encoding: illegal transitions do not compile (trybuild),
//! and every method that does compile is a row of the run-time table.

use order_management::domain::typestate::{Marker, OrderIn, Shipment};
use order_management::domain::{
    CommandKind, Event, LineRequest, NewOrder, Order, ShipLine, State, TRANSITIONS,
};
use uuid::Uuid;

// ANCHOR: trybuild
/// Each file under `tests/typestate/` is a program; the `.stderr` beside a
/// failing one is the compiler error it must produce.
#[test]
fn illegal_transitions_do_not_compile() {
    let t = trybuild::TestCases::new();
    t.pass("tests/typestate/ok.rs");
    t.compile_fail("tests/typestate/cancel_after_shipping.rs");
    t.compile_fail("tests/typestate/refund_unpaid.rs");
    t.compile_fail("tests/typestate/ship_before_payment.rs");
    t.compile_fail("tests/typestate/cancel_while_pending.rs");
    t.compile_fail("tests/typestate/use_after_transition.rs");
    t.compile_fail("tests/typestate/forge_state.rs");
}
// ANCHOR_END: trybuild

fn request() -> NewOrder {
    NewOrder {
        customer_id: Uuid::nil(),
        lines: vec![
            LineRequest {
                sku: "A".into(),
                quantity: 2,
                unit_price_cents: 250,
            },
            LineRequest {
                sku: "B".into(),
                quantity: 1,
                unit_price_cents: 999,
            },
        ],
    }
}

fn new() -> OrderIn<order_management::domain::typestate::Created> {
    match OrderIn::new(Uuid::nil(), &request()) {
        Ok(o) => o,
        Err(e) => panic!("{e}"),
    }
}

/// The (from, command, to) rows a typestate path used.
fn rows_of<S: Marker>(end: &OrderIn<S>) -> Vec<(State, CommandKind, State)> {
    let events = end.events();
    let mut order = match Order::fold(Uuid::nil(), &events[..1]) {
        Ok(o) => o,
        Err(e) => panic!("{e}"),
    };
    let mut rows = Vec::new();
    for e in &events[1..] {
        let from = order.state;
        if let Err(err) = order.evolve(e) {
            panic!("the table refuses a typestate step: {err}");
        }
        rows.push((from, kind(e), order.state));
    }
    assert_eq!(order.state, S::STATE, "the type and the table end apart");
    assert_eq!(&order, end.order());
    rows
}

fn kind(e: &Event) -> CommandKind {
    match e {
        Event::Placed => CommandKind::Place,
        Event::Approved { .. } => CommandKind::Approve,
        Event::PaymentFailed { .. } => CommandKind::FailPayment,
        Event::Rejected { .. } => CommandKind::Reject,
        Event::Shipped { .. } => CommandKind::Ship,
        Event::Delivered => CommandKind::Deliver,
        Event::Cancelled { .. } => CommandKind::Cancel,
        Event::Returned => CommandKind::Return,
        Event::Refunded { .. } => CommandKind::Refund,
        Event::Created { .. } => panic!("created is not a command"),
    }
}

#[test]
fn every_typestate_method_is_a_row_of_the_table() {
    let mut used = Vec::new();
    used.extend(rows_of(&new().cancel("x")));
    used.extend(rows_of(&new().place().reject("no stock")));
    used.extend(rows_of(
        &new().place().fail_payment("declined").place().approve(),
    ));
    used.extend(rows_of(&new().place().fail_payment("declined").cancel("x")));
    used.extend(rows_of(&new().place().approve().cancel("x").refund()));
    used.extend(rows_of(
        &new()
            .place()
            .approve()
            .ship_all()
            .deliver()
            .return_goods()
            .refund(),
    ));
    let one = [ShipLine {
        line: 1,
        quantity: 1,
    }];
    let Ok(Shipment::Partial(partial)) = new().place().approve().ship(&one) else {
        panic!("one unit of three leaves some unshipped")
    };
    let Ok(Shipment::Partial(partial)) = partial.ship(&one) else {
        panic!("two of three leaves some unshipped")
    };
    used.extend(rows_of(&partial.ship_rest()));
    // Every row of the table is reachable through the types.
    for row in TRANSITIONS {
        let (from, command, to) = (&row.from, &row.event, &row.to);
        assert!(
            used.contains(&(*from, *command, *to)),
            "no typestate method for {from} --{command}--> {to}"
        );
    }
}

#[test]
fn a_bad_shipment_returns_the_order_unchanged() {
    let paid = new().place().approve();
    let before = paid.order().clone();
    let Err(refused) = paid.ship(&[ShipLine {
        line: 9,
        quantity: 1,
    }]) else {
        panic!("line 9 does not exist")
    };
    let (paid, _why) = *refused;
    assert_eq!(paid.order(), &before);
}
