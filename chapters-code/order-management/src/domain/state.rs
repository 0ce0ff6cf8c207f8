//! The order state machine as data: a table of (from, command, guard, to)
//! rows (a [`block_state_machine::Table`]), checked at run time. The book's
//! state diagram and the schema's `CHECK` are generated from the same table,
//! so the picture, the database and the code cannot disagree.

use std::fmt;
use std::str::FromStr;

use block_state_machine::{Miss, Table, Transition};
use serde::{Deserialize, Serialize};

/// Where an order is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// The customer built the order; nothing is reserved or charged.
    Created,
    /// The checkout saga is running: a semantic lock, no other command applies.
    Pending,
    /// Stock is reserved and the payment captured.
    Paid,
    /// The checkout saga failed at the payment step and was compensated.
    PaymentFailed,
    /// The checkout saga failed before payment (no stock) and was compensated.
    Rejected,
    /// Some line items left the warehouse, not all.
    PartiallyShipped,
    /// Every line item left the warehouse.
    Shipped,
    /// The carrier delivered the parcel.
    Delivered,
    /// The order was cancelled before anything shipped.
    Cancelled,
    /// The customer sent the goods back.
    Returned,
    /// The money was paid back.
    Refunded,
}

/// What a client or the saga asks an order to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandKind {
    /// Check out: start the saga (reserve stock, charge the card).
    Place,
    /// The saga succeeded (saga only).
    Approve,
    /// The saga's payment step failed (saga only).
    FailPayment,
    /// The saga failed before payment (saga only).
    Reject,
    /// Some or all of the remaining line items leave the warehouse.
    Ship,
    /// The carrier delivered.
    Deliver,
    /// The customer or support cancels.
    Cancel,
    /// The customer sends the goods back.
    Return,
    /// Pay the money back.
    Refund,
}

/// A condition on the order that a transition needs besides its state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Guard {
    /// No condition.
    Always,
    /// After this shipment nothing is left to ship.
    ShipsTheRest,
    /// After this shipment something is still left to ship.
    LeavesSomeUnshipped,
    /// The order was paid (and not yet refunded).
    WasPaid,
}

use CommandKind::*;
use Guard::*;
use State::*;

// ANCHOR: transitions
/// Every legal transition: (from, command, guard, to). Anything else is refused.
///
/// Rows with the same (from, command) are tried in order; the first whose
/// guard holds wins. There is deliberately no `cancel` out of
/// `partially_shipped`, `shipped` or `delivered`: no cancel after shipping.
#[rustfmt::skip]
pub const TRANSITIONS: &[Transition<State, CommandKind, Guard>] = &[
    Transition::guarded(Created,          Place,       Always,              Pending),
    Transition::guarded(Created,          Cancel,      Always,              Cancelled),
    Transition::guarded(Pending,          Approve,     Always,              Paid),
    Transition::guarded(Pending,          FailPayment, Always,              PaymentFailed),
    Transition::guarded(Pending,          Reject,      Always,              Rejected),
    Transition::guarded(PaymentFailed,    Place,       Always,              Pending),
    Transition::guarded(PaymentFailed,    Cancel,      Always,              Cancelled),
    Transition::guarded(Paid,             Ship,        ShipsTheRest,        Shipped),
    Transition::guarded(Paid,             Ship,        LeavesSomeUnshipped, PartiallyShipped),
    Transition::guarded(Paid,             Cancel,      Always,              Cancelled),
    Transition::guarded(PartiallyShipped, Ship,        ShipsTheRest,        Shipped),
    Transition::guarded(PartiallyShipped, Ship,        LeavesSomeUnshipped, PartiallyShipped),
    Transition::guarded(Shipped,          Deliver,     Always,              Delivered),
    Transition::guarded(Delivered,        Return,      Always,              Returned),
    Transition::guarded(Cancelled,        Refund,      WasPaid,             Refunded),
    Transition::guarded(Returned,         Refund,      WasPaid,             Refunded),
];

/// The whole machine: an order is born `created`; nothing leaves `rejected`
/// or `refunded`. `delivered` and an unpaid `cancelled` are ends too in
/// practice (their only rows out are a return, or a guarded refund that
/// never holds for them). `the_table_is_sound` runs the block's checks on it.
pub const TABLE: Table<State, CommandKind, Guard> = Table {
    initial: Created,
    born_by: "create",
    states: &State::ALL,
    terminal: &[Rejected, Refunded],
    transitions: TRANSITIONS,
};

/// The states that hold a semantic lock: only saga commands apply.
pub const LOCKED_STATES: [State; 1] = [Pending];

/// The commands only the checkout saga may send.
pub const SAGA_COMMANDS: [CommandKind; 3] = [Approve, FailPayment, Reject];
// ANCHOR_END: transitions

impl State {
    /// Every state, in the order of the diagram.
    pub const ALL: [State; 11] = [
        Created,
        Pending,
        Paid,
        PaymentFailed,
        Rejected,
        PartiallyShipped,
        Shipped,
        Delivered,
        Cancelled,
        Returned,
        Refunded,
    ];

    /// True when no command leads out of this state (the table declares it
    /// terminal, and its check proves no row leaves it).
    pub fn is_terminal(self) -> bool {
        TABLE.is_terminal(self)
    }

    /// True while the checkout saga holds the order.
    pub fn is_locked(self) -> bool {
        LOCKED_STATES.contains(&self)
    }

    /// The name used in JSON, in the diagram and in the `orders.state` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Created => "created",
            Pending => "pending",
            Paid => "paid",
            PaymentFailed => "payment_failed",
            Rejected => "rejected",
            PartiallyShipped => "partially_shipped",
            Shipped => "shipped",
            Delivered => "delivered",
            Cancelled => "cancelled",
            Returned => "returned",
            Refunded => "refunded",
        }
    }
}

impl CommandKind {
    /// Every command.
    pub const ALL: [CommandKind; 9] = [
        Place,
        Approve,
        FailPayment,
        Reject,
        Ship,
        Deliver,
        Cancel,
        Return,
        Refund,
    ];

    /// The name used in JSON, in the diagram and in error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Place => "place",
            Approve => "approve",
            FailPayment => "fail_payment",
            Reject => "reject",
            Ship => "ship",
            Deliver => "deliver",
            Cancel => "cancel",
            Return => "return",
            Refund => "refund",
        }
    }

    /// True for the commands only the saga sends.
    pub fn is_saga_only(self) -> bool {
        SAGA_COMMANDS.contains(&self)
    }
}

impl Guard {
    /// How the guard reads in the diagram (empty for [`Guard::Always`]).
    pub fn label(self) -> &'static str {
        match self {
            Always => "",
            ShipsTheRest => "nothing left to ship",
            LeavesSomeUnshipped => "some lines left",
            WasPaid => "was paid",
        }
    }
}

/// The text was not the name of a state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown order state {0:?}")]
pub struct UnknownState(pub String);

impl FromStr for State {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        State::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_string()))
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for CommandKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl block_state_machine::Guard for Guard {
    fn condition(&self) -> Option<&'static str> {
        match self {
            Always => None,
            g => Some(g.label()),
        }
    }
}

impl fmt::Display for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

// ANCHOR: lookup
/// Why the table refuses a command, before any data is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No row leaves `from` on `command`.
    #[error("cannot {command} an order that is {from}")]
    Illegal {
        /// The order's state.
        from: State,
        /// The command refused.
        command: CommandKind,
    },
    /// The saga holds the order (a semantic lock); try again when it is done.
    #[error("the order is {from}: checkout is in progress, {command} must wait")]
    Locked {
        /// The locked state.
        from: State,
        /// The command refused.
        command: CommandKind,
    },
    /// Rows exist, but no guard holds.
    #[error("cannot {command} an order that is {from}: it {}", guard_failure(*guard))]
    GuardFailed {
        /// The order's state.
        from: State,
        /// The command refused.
        command: CommandKind,
        /// The (last) guard that did not hold.
        guard: Guard,
    },
}

fn guard_failure(guard: Guard) -> &'static str {
    match guard {
        Always => "is refused",
        ShipsTheRest | LeavesSomeUnshipped => "has nothing left to ship",
        WasPaid => "was never paid",
    }
}

/// The target state of `command` in `from`, given a predicate that says which guards hold.
pub fn next_state(
    from: State,
    command: CommandKind,
    holds: impl Fn(Guard) -> bool,
) -> Result<State, Refusal> {
    match TABLE.step(from, command, holds) {
        Ok(to) => Ok(to),
        Err(Miss::NoRow) if from.is_locked() && !command.is_saga_only() => {
            Err(Refusal::Locked { from, command })
        }
        Err(Miss::NoRow) => Err(Refusal::Illegal { from, command }),
        Err(Miss::GuardFailed(guard)) => Err(Refusal::GuardFailed {
            from,
            command,
            guard,
        }),
    }
}
// ANCHOR_END: lookup

// ANCHOR: diagram
/// The transition table as a mermaid `stateDiagram-v2`, fenced for the book
/// (drawn by the state-machine block from [`TABLE`]); the locked state
/// carries a note.
pub fn state_diagram_mermaid() -> String {
    let notes: Vec<_> = LOCKED_STATES
        .iter()
        .map(|s| (*s, "semantic lock: only the saga's commands apply"))
        .collect();
    TABLE.mermaid_with_notes(&notes)
}
// ANCHOR_END: diagram

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sound() {
        // Every state reachable from `created`, every non-terminal state able
        // to end, nothing out of a terminal state, and rows that share a
        // (state, command) all guarded, each by a different guard.
        assert_eq!(TABLE.check(), Ok(()));
    }

    #[test]
    fn the_schema_check_names_the_tables_states() {
        let squash = |s: &str| s.split_whitespace().collect::<String>();
        let schema = squash(include_str!("../../sql/schema.sql"));
        let check = squash(&TABLE.sql_check("state"));
        assert!(schema.contains(&check), "schema.sql lacks {check}");
    }

    #[test]
    fn no_cancel_after_anything_shipped() {
        for from in [PartiallyShipped, Shipped, Delivered, Returned, Refunded] {
            assert_eq!(
                next_state(from, Cancel, |_| true),
                Err(Refusal::Illegal {
                    from,
                    command: Cancel
                })
            );
        }
    }

    #[test]
    fn pending_refuses_every_client_command_as_locked() {
        for command in CommandKind::ALL.into_iter().filter(|c| !c.is_saga_only()) {
            assert_eq!(
                next_state(Pending, command, |_| true),
                Err(Refusal::Locked {
                    from: Pending,
                    command
                })
            );
        }
    }

    #[test]
    fn refund_needs_payment() {
        assert_eq!(
            next_state(Cancelled, Refund, |g| g != WasPaid),
            Err(Refusal::GuardFailed {
                from: Cancelled,
                command: Refund,
                guard: WasPaid
            })
        );
        assert_eq!(next_state(Cancelled, Refund, |_| true), Ok(Refunded));
    }

    #[test]
    fn names_round_trip() {
        for s in State::ALL {
            assert_eq!(s.as_str().parse::<State>(), Ok(s));
        }
        assert!("shipping".parse::<State>().is_err());
    }

    #[test]
    fn the_diagram_is_the_table() {
        expect_test::expect![[r#"
            ```mermaid
            stateDiagram-v2
                [*] --> created: create
                created --> pending: place
                created --> cancelled: cancel
                pending --> paid: approve
                pending --> payment_failed: fail_payment
                pending --> rejected: reject
                payment_failed --> pending: place
                payment_failed --> cancelled: cancel
                paid --> shipped: ship [nothing left to ship]
                paid --> partially_shipped: ship [some lines left]
                paid --> cancelled: cancel
                partially_shipped --> shipped: ship [nothing left to ship]
                partially_shipped --> partially_shipped: ship [some lines left]
                shipped --> delivered: deliver
                delivered --> returned: return
                cancelled --> refunded: refund [was paid]
                returned --> refunded: refund [was paid]
                rejected --> [*]
                refunded --> [*]
                note right of pending
                    semantic lock: only the saga's commands apply
                end note
            ```
        "#]]
        .assert_eq(&state_diagram_mermaid());
    }
}
