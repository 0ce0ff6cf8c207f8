//! The same state machine as types: an `OrderIn<S>` has only the methods
//! that are legal in state `S`, and each consumes the order and returns it
//! in its next state. An illegal transition is a compile error, not a 409;
//! `tests/typestate.rs` proves it with trybuild.
//!
//! The price: the state must be known at compile time. An order read back
//! from the database could be in any state, so the service uses the
//! run-time table ([`super::state::TRANSITIONS`]); the typestate API suits
//! code that walks one path, like a workflow written in a single function.
//! `tests/typestate.rs` also checks that each typestate method is a row of
//! the table, so the two encodings cannot drift apart.

use std::marker::PhantomData;

use uuid::Uuid;

use super::order::{
    Command, CommandError, Event, FoldError, NewOrder, Order, OrderError, ShipLine,
};
use super::state::State;

/// A state known at compile time.
pub trait Marker: sealed::Sealed {
    /// The run-time state this type stands for.
    const STATE: State;
}

mod sealed {
    /// Only this module's markers are states.
    pub trait Sealed {}
}

macro_rules! markers {
    ($($(#[$doc:meta])* $name:ident => $state:ident,)*) => {$(
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name;
        impl sealed::Sealed for $name {}
        impl Marker for $name {
            const STATE: State = State::$state;
        }
    )*};
}

// ANCHOR: markers
markers! {
    /// Built, not checked out.
    Created => Created,
    /// Checkout running.
    Pending => Pending,
    /// Paid.
    Paid => Paid,
    /// Payment failed.
    PaymentFailed => PaymentFailed,
    /// Rejected for stock.
    Rejected => Rejected,
    /// Some lines shipped.
    PartiallyShipped => PartiallyShipped,
    /// All lines shipped.
    Shipped => Shipped,
    /// Delivered.
    Delivered => Delivered,
    /// Cancelled before payment: there is nothing to refund.
    CancelledUnpaid => Cancelled,
    /// Cancelled after payment: a refund is owed.
    CancelledPaid => Cancelled,
    /// Returned.
    Returned => Returned,
    /// Refunded.
    Refunded => Refunded,
}
// ANCHOR_END: markers

/// An order whose state is the type parameter. Its fields are private, so
/// the only way to an `OrderIn<Paid>` is through `approve`.
#[derive(Debug)]
pub struct OrderIn<S: Marker> {
    order: Order,
    events: Vec<Event>,
    _state: PhantomData<S>,
}

/// What a shipment leads to: known only at run time, so the caller matches.
#[derive(Debug)]
pub enum Shipment {
    /// Something is left.
    Partial(OrderIn<PartiallyShipped>),
    /// Nothing is left.
    Complete(OrderIn<Shipped>),
}

impl<S: Marker> OrderIn<S> {
    /// The order's data.
    pub fn order(&self) -> &Order {
        &self.order
    }

    /// The events so far, oldest first (what a store would append).
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Records `event` and moves to `T`, whose state the caller's signature fixes.
    fn go<T: Marker>(mut self, event: Event) -> Result<OrderIn<T>, FoldError> {
        self.order.evolve(&event)?;
        self.events.push(event);
        debug_assert_eq!(self.order.state, T::STATE);
        Ok(OrderIn {
            order: self.order,
            events: self.events,
            _state: PhantomData,
        })
    }

    /// A transition whose legality the types already proved: evolving cannot
    /// fail, because a test walks every method through the table.
    fn step<T: Marker>(self, event: Event) -> OrderIn<T> {
        match self.go(event) {
            Ok(next) => next,
            Err(e) => unreachable!("typestate and table disagree: {e}"),
        }
    }
}

// ANCHOR: typestate
impl OrderIn<Created> {
    /// A new order, parsed like any other.
    pub fn new(id: Uuid, request: &NewOrder) -> Result<Self, OrderError> {
        let created = request.validate()?;
        let order = match Order::from_created(id, &created) {
            Ok(o) => o,
            Err(e) => unreachable!("validate returns a created event: {e}"),
        };
        Ok(OrderIn {
            order,
            events: vec![created],
            _state: PhantomData,
        })
    }

    /// Check out.
    pub fn place(self) -> OrderIn<Pending> {
        self.step(Event::Placed)
    }

    /// Cancel before payment.
    pub fn cancel(self, reason: &str) -> OrderIn<CancelledUnpaid> {
        self.step(Event::Cancelled {
            reason: reason.into(),
        })
    }
}

impl OrderIn<Pending> {
    /// The saga captured the total.
    pub fn approve(self) -> OrderIn<Paid> {
        let amount_cents = self.order.total_cents;
        self.step(Event::Approved { amount_cents })
    }

    /// The card was declined.
    pub fn fail_payment(self, reason: &str) -> OrderIn<PaymentFailed> {
        self.step(Event::PaymentFailed {
            reason: reason.into(),
        })
    }

    /// No stock.
    pub fn reject(self, reason: &str) -> OrderIn<Rejected> {
        self.step(Event::Rejected {
            reason: reason.into(),
        })
    }
}

impl OrderIn<PaymentFailed> {
    /// Try checking out again.
    pub fn place(self) -> OrderIn<Pending> {
        self.step(Event::Placed)
    }

    /// Give up.
    pub fn cancel(self, reason: &str) -> OrderIn<CancelledUnpaid> {
        self.step(Event::Cancelled {
            reason: reason.into(),
        })
    }
}

impl OrderIn<Paid> {
    /// Ship some units; which state follows depends on what is left.
    pub fn ship(self, lines: &[ShipLine]) -> Result<Shipment, Box<(Self, CommandError)>> {
        ship(self, lines)
    }

    /// Ship everything.
    pub fn ship_all(self) -> OrderIn<Shipped> {
        let lines = self.order.everything_left();
        self.step(Event::Shipped { lines })
    }

    /// Cancel a paid order: a refund is owed.
    pub fn cancel(self, reason: &str) -> OrderIn<CancelledPaid> {
        self.step(Event::Cancelled {
            reason: reason.into(),
        })
    }
}

impl OrderIn<PartiallyShipped> {
    /// Ship more units.
    pub fn ship(self, lines: &[ShipLine]) -> Result<Shipment, Box<(Self, CommandError)>> {
        ship(self, lines)
    }

    /// Ship the rest.
    pub fn ship_rest(self) -> OrderIn<Shipped> {
        let lines = self.order.everything_left();
        self.step(Event::Shipped { lines })
    }
}

impl OrderIn<Shipped> {
    /// Delivered.
    pub fn deliver(self) -> OrderIn<Delivered> {
        self.step(Event::Delivered)
    }
}

impl OrderIn<Delivered> {
    /// The goods came back.
    pub fn return_goods(self) -> OrderIn<Returned> {
        self.step(Event::Returned)
    }
}

impl OrderIn<CancelledPaid> {
    /// Pay back what was paid.
    pub fn refund(self) -> OrderIn<Refunded> {
        let amount_cents = self.order.paid_cents;
        self.step(Event::Refunded { amount_cents })
    }
}

impl OrderIn<Returned> {
    /// Pay back what was paid.
    pub fn refund(self) -> OrderIn<Refunded> {
        let amount_cents = self.order.paid_cents;
        self.step(Event::Refunded { amount_cents })
    }
}
// ANCHOR_END: typestate

/// Data errors (a bad line number) stay run-time errors: the order comes back unchanged.
fn ship<S: Marker>(
    from: OrderIn<S>,
    lines: &[ShipLine],
) -> Result<Shipment, Box<(OrderIn<S>, CommandError)>> {
    let command = Command::Ship {
        lines: lines.to_vec(),
    };
    let event = match from.order.decide(&command) {
        Ok(e) => e,
        Err(e) => return Err(Box::new((from, e))),
    };
    let rest = from.order.units_left() - lines.iter().map(|l| u64::from(l.quantity)).sum::<u64>();
    Ok(if rest == 0 {
        Shipment::Complete(from.step(event))
    } else {
        Shipment::Partial(from.step(event))
    })
}
