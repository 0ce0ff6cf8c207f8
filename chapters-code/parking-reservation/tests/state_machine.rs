//! The state machine: the table is the whole truth, and the schema agrees with it.

mod common;

use common::*;
use parking_reservation::domain::{
    Event, LIVE_STATES, Money, Reservation, ReserveRequest, SpotKind, SpotRef, State, TRANSITIONS,
    Tariff, TransitionError, next_state,
};
use proptest::prelude::*;

fn held() -> Reservation {
    let req: ReserveRequest = request(1, SpotKind::Regular, slots(8, 4), "SM1");
    Reservation::hold(
        uuid::Uuid::nil(),
        SpotRef {
            id: 1,
            level: 0,
            number: 1,
        },
        &req,
        now0(),
        &Tariff::of(SpotKind::Regular),
    )
}

/// Today's tariff of the reservation's kind.
fn today(r: &Reservation) -> Tariff {
    Tariff::of(r.kind)
}

fn event() -> impl Strategy<Value = Event> {
    prop::sample::select(Event::ALL.to_vec())
}

proptest! {
    /// Any event not in the table, in any state, is refused with an error
    /// naming both, and the reservation is not changed.
    #[test]
    fn illegal_transitions_are_rejected(events in prop::collection::vec((event(), -60i64..600), 1..12)) {
        let mut r = held();
        for (event, minute) in events {
            let now = now0() + minutes(minute);
            let legal = TRANSITIONS.iter().any(|t| t.from == r.state && t.event == event);
            match r.apply(event, now, &today(&r)) {
                Ok(next) => {
                    prop_assert!(legal, "{} accepted in {}", event, r.state);
                    prop_assert_eq!(Ok(next.state), next_state(r.state, event));
                    // Only state, charge and updated_at may change.
                    prop_assert_eq!(
                        Reservation { state: r.state, charged_cents: r.charged_cents, updated_at: r.updated_at, ..next.clone() },
                        r.clone()
                    );
                    // A charge exactly when the reservation ended with one.
                    let charged = matches!(next.state, State::CheckedOut | State::Cancelled | State::NoShow);
                    prop_assert_eq!(next.charged_cents.is_some(), charged);
                    r = next;
                }
                Err(TransitionError::Illegal(i)) => {
                    prop_assert!(!legal);
                    prop_assert_eq!((i.from, i.event), (r.state, event));
                    let message = i.to_string();
                    prop_assert!(message.contains(event.as_str()) && message.contains(r.state.as_str()), "{}", message);
                }
                // Legal in the table but refused by the clock (hold lapsed, window closed).
                Err(_) => prop_assert!(legal),
            }
        }
    }
}

#[test]
fn terminal_states_accept_nothing() {
    for state in State::ALL.into_iter().filter(|s| s.is_terminal()) {
        for event in Event::ALL {
            assert!(
                next_state(state, event).is_err(),
                "{state} accepted {event}"
            );
        }
    }
}

// ANCHOR: live_states_test
#[test]
fn live_states_match_the_exclusion_constraint() {
    // The constraint's WHERE clause and LIVE_STATES must name the same states,
    // or the database and the code disagree about who occupies a spot.
    let schema = std::fs::read_to_string(schema_path()).unwrap_or_else(|e| panic!("{e}"));
    let quoted: Vec<String> = LIVE_STATES.iter().map(|s| format!("'{s}'")).collect();
    let clause = format!("WHERE (state IN ({}))", quoted.join(", "));
    let exclusion = schema
        .split("EXCLUDE USING gist")
        .nth(1)
        .unwrap_or_else(|| panic!("no exclusion constraint in schema.sql"));
    assert!(
        exclusion
            .trim_start()
            .lines()
            .nth(1)
            .is_some_and(|l| l.trim() == clause),
        "expected {clause}"
    );
    // And the assignment SQL uses the same list.
    assert!(
        parking_reservation::assign::ASSIGN_SQL
            .contains(&format!("r.state IN ({})", quoted.join(", ")))
    );
    assert!(
        parking_reservation::assign::AVAILABILITY_SQL
            .contains(&format!("r.state IN ({})", quoted.join(", ")))
    );
}
// ANCHOR_END: live_states_test

#[test]
fn a_late_confirmation_is_refused_and_names_the_expiry() {
    let r = held();
    let too_late = r.hold_expires_at + parking_reservation::domain::LATE_CONFIRM_WINDOW;
    let refused = r.apply(Event::Confirm, too_late, &today(&r));
    assert_eq!(
        refused,
        Err(TransitionError::HoldExpired {
            expired_at: r.hold_expires_at
        })
    );
    // Within the window the domain accepts it; the store asks the constraint.
    assert!(
        r.apply(Event::Confirm, too_late - minutes(1), &today(&r))
            .is_ok()
    );
    assert!(
        r.apply(Event::Confirm, r.hold_expires_at - minutes(1), &today(&r))
            .is_ok()
    );
    assert_eq!(r.quote_cents, Money::from_cents(450).unwrap_or_default());
}
