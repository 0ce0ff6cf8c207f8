//! The reservation state machine: its transition table is data, and the
//! book's state diagram is generated from that same table.

use std::fmt;
use std::str::FromStr;

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
/// Every legal transition: (from, event, to). Anything not listed is refused.
pub const TRANSITIONS: &[(State, Event, State)] = &[
    (Held, Confirm, Confirmed),
    (Held, Cancel, Cancelled),
    (Held, Expire, Expired),
    // A late confirm: the payment went through after the hold lapsed. Legal
    // only within LATE_CONFIRM_WINDOW, and only if the spot is still free,
    // which the exclusion constraint checks on the UPDATE.
    (Expired, Confirm, Confirmed),
    (Confirmed, CheckIn, CheckedIn),
    (Confirmed, Cancel, Cancelled),
    (Confirmed, MarkNoShow, NoShow),
    (CheckedIn, CheckOut, CheckedOut),
];

/// The state a reservation that received `event` in state `from` moves to.
pub fn next_state(from: State, event: Event) -> Result<State, IllegalTransition> {
    TRANSITIONS
        .iter()
        .find(|(f, e, _)| *f == from && *e == event)
        .map(|(_, _, to)| *to)
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

    /// True when no event leads out of this state.
    pub fn is_terminal(self) -> bool {
        !TRANSITIONS.iter().any(|(from, _, _)| *from == self)
    }

    /// The name used in JSON and in the `reservations.state` column.
    pub fn as_str(self) -> &'static str {
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
    pub fn as_str(self) -> &'static str {
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
/// The transition table as a mermaid `stateDiagram-v2`, fenced for the book.
///
/// A reservation is born `held` (by `reserve`); states with no way out end
/// at `[*]`.
pub fn state_diagram_mermaid() -> String {
    let mut out = String::from("```mermaid\nstateDiagram-v2\n    [*] --> held: reserve\n");
    for (from, event, to) in TRANSITIONS {
        out.push_str(&format!("    {from} --> {to}: {event}\n"));
    }
    for state in State::ALL.into_iter().filter(|s| s.is_terminal()) {
        out.push_str(&format!("    {state} --> [*]\n"));
    }
    out.push_str("```\n");
    out
}
// ANCHOR_END: diagram

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_deterministic_and_complete() {
        // At most one target per (state, event): the machine is deterministic.
        for (i, (f, e, _)) in TRANSITIONS.iter().enumerate() {
            assert!(
                !TRANSITIONS[i + 1..]
                    .iter()
                    .any(|(f2, e2, _)| f2 == f && e2 == e),
                "two transitions for ({f}, {e})"
            );
        }
        // Every state is reachable from `held`.
        let mut reached = vec![Held];
        while let Some(next) = TRANSITIONS
            .iter()
            .find(|(f, _, t)| reached.contains(f) && !reached.contains(t))
        {
            reached.push(next.2);
        }
        assert_eq!(reached.len(), State::ALL.len());
        // A terminal state is never live, so nothing terminal holds a spot;
        // the one way from a state that holds no spot back into one that
        // does is a late confirm of an expired hold.
        for s in State::ALL {
            assert!(!(s.is_live() && s.is_terminal()), "{s}");
        }
        let back: Vec<_> = TRANSITIONS
            .iter()
            .filter(|(f, _, t)| !f.is_live() && t.is_live())
            .collect();
        assert_eq!(back, vec![&(Expired, Confirm, Confirmed)]);
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
