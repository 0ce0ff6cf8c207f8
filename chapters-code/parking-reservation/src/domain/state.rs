//! The reservation state machine: its transition table is data (a
//! [`block_state_machine::Table`]), and the book's state diagram, the
//! schema's `CHECK` and the structural checks all come from that same table.

use std::fmt;
use std::str::FromStr;

use block_state_machine::{Table, Transition};
use serde::{Deserialize, Serialize};

/// Where a reservation is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// A spot is held for the driver, who has [`HOLD_TTL`](super::HOLD_TTL) to confirm.
    Held,
    /// The driver confirmed; the spot is theirs for the range.
    Confirmed,
    /// The car is in the spot.
    CheckedIn,
    /// The car left and the stay was charged.
    CheckedOut,
    /// The driver cancelled (a fee may apply).
    Cancelled,
    /// The hold lapsed unconfirmed.
    Expired,
    /// The driver never came; the spot was released and the quote charged.
    NoShow,
}

/// Something that happens to a reservation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// A driver holds a spot: the reservation is born `held` (no transition
    /// of the table leads into it; the history records it).
    Reserve,
    /// The driver confirms a hold.
    Confirm,
    /// The driver arrives.
    CheckIn,
    /// The driver leaves and pays.
    CheckOut,
    /// The driver cancels.
    Cancel,
    /// The hold's time ran out (the sweeper).
    Expire,
    /// The check-in window closed without the driver (the sweeper).
    MarkNoShow,
}

use Event::*;
use State::*;

// ANCHOR: transitions
/// Every legal transition. Anything not listed is refused.
pub const TRANSITIONS: &[Transition<State, Event>] = &[
    Transition::new(Held, Confirm, Confirmed),
    Transition::new(Held, Cancel, Cancelled),
    Transition::new(Held, Expire, Expired),
    // A late confirm: the payment went through after the hold lapsed. Legal
    // only within LATE_CONFIRM_WINDOW, and only if the spot is still free,
    // which the exclusion constraint checks on the UPDATE.
    Transition::new(Expired, Confirm, Confirmed),
    Transition::new(Confirmed, CheckIn, CheckedIn),
    Transition::new(Confirmed, Cancel, Cancelled),
    Transition::new(Confirmed, MarkNoShow, NoShow),
    Transition::new(CheckedIn, CheckOut, CheckedOut),
];

/// The whole machine: a reservation is born `held` by `reserve` and ends in
/// one of the terminal states. `the_table_is_sound` runs the block's checks.
pub const TABLE: Table<State, Event> = Table {
    initial: Held,
    born_by: Reserve.as_str(),
    states: &State::ALL,
    terminal: &[CheckedOut, Cancelled, NoShow],
    transitions: TRANSITIONS,
};

/// The state a reservation that received `event` in state `from` moves to.
pub fn next_state(from: State, event: Event) -> Result<State, IllegalTransition> {
    TABLE
        .next(from, event)
        .ok_or(IllegalTransition { from, event })
}

/// The states that occupy a spot. The exclusion constraint in
/// `sql/schema.sql` names exactly these (a test checks that).
pub const LIVE_STATES: [State; 3] = [Held, Confirmed, CheckedIn];
// ANCHOR_END: transitions

/// An event that the transition table does not allow in the current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot {event} a reservation that is {from}")]
pub struct IllegalTransition {
    /// The state the reservation was in.
    pub from: State,
    /// The event that was refused.
    pub event: Event,
}

impl State {
    /// Every state, in the order of the diagram.
    pub const ALL: [State; 7] = [
        Held, Confirmed, CheckedIn, CheckedOut, Cancelled, Expired, NoShow,
    ];

    /// True when a reservation in this state occupies its spot.
    pub fn is_live(self) -> bool {
        LIVE_STATES.contains(&self)
    }

    /// True when no event leads out of this state (the table declares it
    /// terminal, and its check proves no row leaves it).
    pub fn is_terminal(self) -> bool {
        TABLE.is_terminal(self)
    }

    /// The name used in JSON and in the `reservations.state` column.
    pub const fn as_str(self) -> &'static str {
        match self {
            Held => "held",
            Confirmed => "confirmed",
            CheckedIn => "checked_in",
            CheckedOut => "checked_out",
            Cancelled => "cancelled",
            Expired => "expired",
            NoShow => "no_show",
        }
    }
}

impl Event {
    /// Every event.
    pub const ALL: [Event; 7] = [
        Reserve, Confirm, CheckIn, CheckOut, Cancel, Expire, MarkNoShow,
    ];

    /// The event's name, as in the diagram and in error messages.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reserve => "reserve",
            Confirm => "confirm",
            CheckIn => "check_in",
            CheckOut => "check_out",
            Cancel => "cancel",
            Expire => "expire",
            MarkNoShow => "mark_no_show",
        }
    }
}

/// The text was not the name of a state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown reservation state {0:?}")]
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

/// The text was not the name of an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown reservation event {0:?}")]
pub struct UnknownEvent(pub String);

impl FromStr for Event {
    type Err = UnknownEvent;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Event::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| UnknownEvent(s.to_string()))
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ANCHOR: diagram
/// The transition table as a mermaid `stateDiagram-v2`, fenced for the book
/// (drawn by the state-machine block from [`TABLE`]).
pub fn state_diagram_mermaid() -> String {
    TABLE.mermaid()
}
// ANCHOR_END: diagram

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sound() {
        // Every state reachable from `held`, every non-terminal state able to
        // end, nothing out of a terminal state, one row per (state, event).
        assert_eq!(TABLE.check(), Ok(()));
        // A terminal state is never live, so nothing terminal holds a spot;
        // the one way from a state that holds no spot back into one that
        // does is a late confirm of an expired hold.
        for s in State::ALL {
            assert!(!(s.is_live() && s.is_terminal()), "{s}");
        }
        let back: Vec<_> = TRANSITIONS
            .iter()
            .filter(|t| !t.from.is_live() && t.to.is_live())
            .collect();
        assert_eq!(back, vec![&Transition::new(Expired, Confirm, Confirmed)]);
    }

    #[test]
    fn the_schema_checks_name_the_tables_states() {
        // The three state columns admit exactly the table's states, in its order.
        let squash = |s: &str| s.split_whitespace().collect::<String>();
        let schema = squash(include_str!("../../sql/schema.sql"));
        for column in ["state", "from_state", "to_state"] {
            let check = squash(&TABLE.sql_check(column));
            assert!(schema.contains(&check), "schema.sql lacks {check}");
        }
    }

    #[test]
    fn the_diagram_is_the_table() {
        expect_test::expect![[r#"
            ```mermaid
            stateDiagram-v2
                [*] --> held: reserve
                held --> confirmed: confirm
                held --> cancelled: cancel
                held --> expired: expire
                expired --> confirmed: confirm
                confirmed --> checked_in: check_in
                confirmed --> cancelled: cancel
                confirmed --> no_show: mark_no_show
                checked_in --> checked_out: check_out
                checked_out --> [*]
                cancelled --> [*]
                no_show --> [*]
            ```
        "#]]
        .assert_eq(&state_diagram_mermaid());
    }
}
