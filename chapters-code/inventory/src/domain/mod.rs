//! Pure types and rules: no I/O, no clock of their own.

mod ids;
mod ledger;
mod reservation;

pub use ids::{CodeError, Count, MAX_COUNT, MAX_QTY, Qty, QtyError, Sku, StockKey, Warehouse};
pub use ledger::{Balance, Movement, MovementKind, WouldBreak, fold};
pub use reservation::{
    DEFAULT_TTL, Decision, Event, MAX_TTL_SECS, MIN_TTL_SECS, Reservation, State, TRANSITIONS,
    TransitionError, decide, state_diagram_mermaid,
};
