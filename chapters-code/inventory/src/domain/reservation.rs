//! A reservation's life: a transition table (data), the rules that read the
//! clock, and the book's state diagram generated from the same table.

use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::ids::{Qty, StockKey};

/// How long a checkout may hold units when the client does not say.
pub const DEFAULT_TTL: TimeDelta = TimeDelta::minutes(10);
/// The shortest hold a client may ask for, in seconds.
pub const MIN_TTL_SECS: i64 = 1;
/// The longest hold a client may ask for, in seconds (one hour).
pub const MAX_TTL_SECS: i64 = 3_600;

/// Where a reservation is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Units are held for a checkout until `expires_at`.
    Held,
    /// Paid: the units are sold, still on the shelf until they ship.
    Committed,
    /// The sold units left the building.
    Shipped,
    /// The customer cancelled: the units are available again.
    Released,
    /// The hold ran out: the units are available again.
    Expired,
}

/// What can happen to a reservation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// Payment succeeded.
    Commit,
    /// The warehouse sent the sold units out.
    Ship,
    /// The checkout was abandoned or cancelled.
    Release,
    /// The clock passed `expires_at` (the sweeper, or a reserve that reclaims lazily).
    Expire,
}

use Event::*;
use State::*;

// ANCHOR: transitions
/// Every legal transition: (from, event, to). Anything else is refused,
/// except repeating the event that produced the current state (idempotent).
pub const TRANSITIONS: &[(State, Event, State)] = &[
    (Held, Commit, Committed),
    (Held, Release, Released),
    (Held, Expire, Expired),
    (Committed, Ship, Shipped),
];
// ANCHOR_END: transitions

impl State {
    /// Every state, in diagram order.
    pub const ALL: [State; 5] = [Held, Committed, Shipped, Released, Expired];

    /// The name used in JSON and in the `reservations.state` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Held => "held",
            Committed => "committed",
            Shipped => "shipped",
            Released => "released",
            Expired => "expired",
        }
    }

    /// The state named `s`.
    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// True when no event leads out of this state.
    pub fn is_terminal(self) -> bool {
        !TRANSITIONS.iter().any(|(f, _, _)| *f == self)
    }
}

impl Event {
    /// The event's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Commit => "commit",
            Ship => "ship",
            Release => "release",
            Expire => "expire",
        }
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

/// A hold on units of one position.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// Its id.
    pub id: Uuid,
    /// The position the units come from.
    pub key: StockKey,
    /// How many units.
    pub qty: Qty,
    /// Where it is in its life.
    pub state: State,
    /// When a hold stops counting; commit is refused from this instant on.
    pub expires_at: DateTime<Utc>,
}

// ANCHOR: decide
/// What an event does to a reservation in `state`, judged at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Move to this state (and move the units).
    Apply(State),
    /// The event already happened: answer as before, change nothing.
    AlreadyDone,
}

/// Why an event was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// Commit after the hold's time ran out (judged by the request's clock,
    /// not by whether the sweeper has run yet).
    #[error("the hold expired at {expires_at}")]
    HoldExpired {
        /// When it expired.
        expires_at: DateTime<Utc>,
    },
    /// An event the table does not allow from this state.
    #[error("cannot {event} a reservation that is {from}")]
    Illegal {
        /// The current state.
        from: State,
        /// The refused event.
        event: Event,
    },
    /// Expire before `expires_at`.
    #[error("the hold runs until {expires_at}")]
    NotDue {
        /// When it will expire.
        expires_at: DateTime<Utc>,
    },
}

/// The rule for every (state, event) pair, with the clock.
pub fn decide(
    r: &Reservation,
    event: Event,
    now: DateTime<Utc>,
) -> Result<Decision, TransitionError> {
    let due = now >= r.expires_at;
    match (r.state, event) {
        (Held, Commit) if due => Err(TransitionError::HoldExpired {
            expires_at: r.expires_at,
        }),
        (Held, Expire) if !due => Err(TransitionError::NotDue {
            expires_at: r.expires_at,
        }),
        // A release after an expiry wanted the units back; they are back.
        // A commit retried after the units shipped was done long ago.
        (Committed, Commit)
        | (Shipped, Commit)
        | (Shipped, Ship)
        | (Released, Release)
        | (Expired, Release)
        | (Expired, Expire) => Ok(Decision::AlreadyDone),
        (Expired, Commit) => Err(TransitionError::HoldExpired {
            expires_at: r.expires_at,
        }),
        (from, event) => TRANSITIONS
            .iter()
            .find(|(f, e, _)| *f == from && *e == event)
            .map(|(_, _, to)| Decision::Apply(*to))
            .ok_or(TransitionError::Illegal { from, event }),
    }
}
// ANCHOR_END: decide

// ANCHOR: diagram
/// The transition table as a mermaid `stateDiagram-v2`, fenced for the book.
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
    use crate::domain::{Sku, Warehouse};

    fn held(expires_at: DateTime<Utc>) -> Reservation {
        Reservation {
            id: Uuid::nil(),
            key: StockKey::new(
                Sku::parse("A").expect("valid"),
                Warehouse::parse("W").expect("valid"),
            ),
            qty: Qty::new(1).expect("valid"),
            state: Held,
            expires_at,
        }
    }

    #[test]
    fn the_clock_decides_commit_against_expire() {
        let t = DateTime::from_timestamp(1_000_000, 0).expect("valid");
        let r = held(t);
        let before = t - TimeDelta::milliseconds(1);
        assert_eq!(decide(&r, Commit, before), Ok(Decision::Apply(Committed)));
        assert_eq!(
            decide(&r, Commit, t),
            Err(TransitionError::HoldExpired { expires_at: t })
        );
        assert_eq!(
            decide(&r, Expire, before),
            Err(TransitionError::NotDue { expires_at: t })
        );
        assert_eq!(decide(&r, Expire, t), Ok(Decision::Apply(Expired)));
        assert_eq!(decide(&r, Release, t), Ok(Decision::Apply(Released)));
    }

    #[test]
    fn repeats_are_idempotent_and_crossings_refused() {
        let t = DateTime::from_timestamp(1_000_000, 0).expect("valid");
        let mut r = held(t);
        let now = t - TimeDelta::seconds(1);
        for (state, event, want) in [
            (Committed, Commit, Ok(Decision::AlreadyDone)),
            (Shipped, Commit, Ok(Decision::AlreadyDone)),
            (Shipped, Ship, Ok(Decision::AlreadyDone)),
            (
                Held,
                Ship,
                Err(TransitionError::Illegal {
                    from: Held,
                    event: Ship,
                }),
            ),
            (Released, Release, Ok(Decision::AlreadyDone)),
            (Expired, Release, Ok(Decision::AlreadyDone)),
            (Expired, Expire, Ok(Decision::AlreadyDone)),
            (
                Committed,
                Release,
                Err(TransitionError::Illegal {
                    from: Committed,
                    event: Release,
                }),
            ),
            (
                Released,
                Commit,
                Err(TransitionError::Illegal {
                    from: Released,
                    event: Commit,
                }),
            ),
            (
                Expired,
                Commit,
                Err(TransitionError::HoldExpired { expires_at: t }),
            ),
        ] {
            r.state = state;
            assert_eq!(decide(&r, event, now), want, "{state} + {event}");
        }
    }

    #[test]
    fn the_diagram_is_the_table() {
        expect_test::expect![[r#"
            ```mermaid
            stateDiagram-v2
                [*] --> held: reserve
                held --> committed: commit
                held --> released: release
                held --> expired: expire
                committed --> shipped: ship
                shipped --> [*]
                released --> [*]
                expired --> [*]
            ```
        "#]]
        .assert_eq(&state_diagram_mermaid());
    }
}
