//! Pure domain types and rules: no I/O, no clock of their own.
//!
//! Every value that crosses the HTTP boundary is parsed into one of these
//! before anything else happens: a [`TimeRange`] is aligned, ordered and
//! bounded; a [`Plate`] is normalised; a [`SpotKind`] is one of five. Time
//! enters only as an argument (`now`), so tests decide what time it is.

mod geo;
mod kind;
mod money;
mod plate;
mod policy;
mod pricing;
mod range;
mod reservation;
mod state;

pub use geo::{EARTH_RADIUS_M, Location, LocationError, NEAR_LIMIT, NEAR_RADIUS_MAX_M, distance_m};
pub use kind::{KindError, SpotKind};
pub use money::{Money, NegativeMoney};
pub use plate::{PLATE_MAX_LEN, PLATE_MIN_LEN, Plate, PlateError};
pub use policy::{
    BOOKING_HORIZON_DAYS, BookingError, EARLY_CHECK_IN, FREE_CANCELLATION_NOTICE, HOLD_TTL,
    LATE_CONFIRM_WINDOW, MAX_ACTIVE_PER_PLATE, MAX_HOLDS_PER_PLATE, NO_SHOW_GRACE, check_bookable,
};
pub use pricing::{
    TARIFFS, Tariff, TariffBook, cancellation_charge, check_in_closes, checkout_charge,
    no_show_charge, price,
};
pub use range::{
    MAX_RANGE_DAYS, RangeError, SLOT, SLOT_MINUTES, TimeRange, ceil_to_slot, floor_to_slot,
    is_aligned,
};
pub use reservation::{LotId, Reservation, ReserveRequest, SpotRef, Transition, TransitionError};
pub use state::{
    Event, IllegalTransition, LIVE_STATES, State, TRANSITIONS, UnknownEvent, UnknownState,
    next_state, state_diagram_mermaid,
};
