//! A reservation, and the pure rule that moves it from one state to the next.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::kind::SpotKind;
use super::money::Money;
use super::plate::Plate;
use super::policy::{EARLY_CHECK_IN, HOLD_TTL, LATE_CONFIRM_WINDOW};
use super::pricing::{
    Tariff, cancellation_charge, check_in_closes, checkout_charge, no_show_charge, price,
};
use super::range::TimeRange;
use super::state::{Event, IllegalTransition, State, next_state};

/// A lot's identifier.
pub type LotId = i64;

/// Which spot a reservation holds, as a driver reads it on the sign.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SpotRef {
    /// The spot's identifier.
    pub id: i64,
    /// The level (0 is the ground floor; negative levels are underground).
    pub level: i16,
    /// The spot's number on its level.
    pub number: i32,
}

// ANCHOR: request_types
/// A request to reserve a spot of some kind in a lot, parsed and checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReserveRequest {
    /// The lot.
    pub lot_id: LotId,
    /// The kind of spot wanted.
    pub kind: SpotKind,
    /// When.
    #[serde(flatten)]
    pub range: TimeRange,
    /// Who.
    pub plate: Plate,
}

/// A reservation as stored and as returned to clients.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// Its identifier, chosen by the service.
    pub id: Uuid,
    /// The lot.
    pub lot_id: LotId,
    /// The assigned spot.
    pub spot: SpotRef,
    /// The kind that was asked for (the spot's kind).
    pub kind: SpotKind,
    /// Who the spot is for.
    pub plate: Plate,
    /// When.
    #[serde(flatten)]
    pub range: TimeRange,
    /// Where it is in its life.
    pub state: State,
    /// A `held` reservation lapses at this instant unless confirmed.
    pub hold_expires_at: DateTime<Utc>,
    /// The price of the range, fixed when the spot was held.
    pub quote_cents: Money,
    /// What was charged when the reservation ended (check-out, late cancel, no-show).
    pub charged_cents: Option<Money>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}
// ANCHOR_END: request_types

// ANCHOR: transition_record
/// One line of a reservation's history: what happened, when, from which
/// state to which, and what it charged. Written in the transaction that
/// made the change, never changed afterwards: the record for disputes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// When (the reservation's `updated_at` after the change).
    pub at: DateTime<Utc>,
    /// What happened (`reserve` for the birth of the reservation).
    pub event: Event,
    /// The state before; none for `reserve`.
    pub from: Option<State>,
    /// The state after.
    pub to: State,
    /// What the change charged, if it ended the reservation with a charge.
    pub charged_cents: Option<Money>,
}

impl Transition {
    /// The birth of `r`.
    pub fn reserved(r: &Reservation) -> Self {
        Self {
            at: r.created_at,
            event: Event::Reserve,
            from: None,
            to: r.state,
            charged_cents: None,
        }
    }

    /// The step from `before` to `after` by `event`.
    pub fn step(before: &Reservation, event: Event, after: &Reservation) -> Self {
        Self {
            at: after.updated_at,
            event,
            from: Some(before.state),
            to: after.state,
            charged_cents: after.charged_cents,
        }
    }
}
// ANCHOR_END: transition_record

// ANCHOR: transition_error
/// Why an event was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// The transition table has no such move.
    #[error(transparent)]
    Illegal(#[from] IllegalTransition),
    /// Confirming after the hold lapsed.
    #[error("the hold expired at {expired_at}; reserve again")]
    HoldExpired {
        /// When the hold lapsed.
        expired_at: DateTime<Utc>,
    },
    /// Checking in before the window opens.
    #[error("check-in opens at {opens_at}")]
    TooEarlyToCheckIn {
        /// When check-in opens.
        opens_at: DateTime<Utc>,
    },
    /// Checking in, cancelling or confirming after the check-in window closed.
    #[error("check-in closed at {closed_at}")]
    CheckInClosed {
        /// When check-in closed.
        closed_at: DateTime<Utc>,
    },
    /// A sweeper event (expire, no-show) before its time.
    #[error("{event} is not due until {due_at}")]
    NotDue {
        /// The event.
        event: Event,
        /// When it becomes due.
        due_at: DateTime<Utc>,
    },
}
// ANCHOR_END: transition_error

impl Reservation {
    /// A new hold on `spot` for `request`, made at `now` and quoted at `tariff`.
    pub fn hold(
        id: Uuid,
        spot: SpotRef,
        request: &ReserveRequest,
        now: DateTime<Utc>,
        tariff: &Tariff,
    ) -> Self {
        Self {
            id,
            lot_id: request.lot_id,
            spot,
            kind: request.kind,
            plate: request.plate.clone(),
            range: request.range,
            state: State::Held,
            hold_expires_at: now + HOLD_TTL,
            quote_cents: price(&request.range, tariff),
            charged_cents: None,
            created_at: now,
            updated_at: now,
        }
    }

    // ANCHOR: apply
    /// The reservation after `event` at `now`, or why the event is refused.
    ///
    /// The transition table decides which events are legal in which state;
    /// this function adds the clock's rules (a lapsed hold cannot be
    /// confirmed, check-in has a window that also ends the right to cancel)
    /// and the charges: the stored quote, plus what `today`'s tariff (the
    /// one in force at `now`) says about an overstay or a late cancellation.
    /// It is pure, so both stores call it inside their own locking and agree
    /// exactly.
    pub fn apply(
        &self,
        event: Event,
        now: DateTime<Utc>,
        today: &Tariff,
    ) -> Result<Reservation, TransitionError> {
        let to = next_state(self.state, event)?;
        let start = self.range.start();
        let closes = check_in_closes(&self.range);
        let charged = match event {
            // A confirm once check-in has closed would make a reservation
            // that can be neither used nor cancelled, only charged as a
            // no-show: refused, whatever the hold's late window says.
            Event::Confirm if now >= closes => {
                return Err(TransitionError::CheckInClosed { closed_at: closes });
            }
            // A confirm after the hold lapsed is accepted for a while (a
            // late payment); whether the spot is still free is the store's
            // question, answered by the exclusion constraint.
            Event::Confirm if now >= self.hold_expires_at + LATE_CONFIRM_WINDOW => {
                return Err(TransitionError::HoldExpired {
                    expired_at: self.hold_expires_at,
                });
            }
            Event::CheckIn if now < start - EARLY_CHECK_IN => {
                return Err(TransitionError::TooEarlyToCheckIn {
                    opens_at: start - EARLY_CHECK_IN,
                });
            }
            // Cancelling a confirmed reservation after the window closed
            // would be cheaper than the no-show it already is: refused.
            Event::CheckIn | Event::Cancel
                if now >= closes && self.state == super::state::State::Confirmed =>
            {
                return Err(TransitionError::CheckInClosed { closed_at: closes });
            }
            Event::Expire if now < self.hold_expires_at => {
                return Err(TransitionError::NotDue {
                    event,
                    due_at: self.hold_expires_at,
                });
            }
            Event::MarkNoShow if now < closes => {
                return Err(TransitionError::NotDue {
                    event,
                    due_at: closes,
                });
            }
            Event::Confirm | Event::CheckIn | Event::Expire | Event::Reserve => None,
            Event::CheckOut => Some(checkout_charge(self.quote_cents, &self.range, now, today)),
            Event::Cancel => Some(cancellation_charge(
                self.state,
                &self.range,
                self.quote_cents,
                now,
                today,
            )),
            Event::MarkNoShow => Some(no_show_charge(self.quote_cents)),
        };
        Ok(Reservation {
            state: to,
            charged_cents: charged,
            // A clock that steps back must not make a row older than its birth.
            updated_at: now.max(self.created_at),
            ..self.clone()
        })
    }
    // ANCHOR_END: apply
}
