//! Pure types and rules: the state machine twice (a table checked at run
//! time, and types checked at compile time) and the order aggregate.

pub mod order;
pub mod state;
pub mod typestate;

pub use order::{
    Command, CommandError, Event, FoldError, Line, LineRequest, NewOrder, Order, OrderError,
    ShipLine,
};
pub use state::{
    CommandKind, Guard, Refusal, State, TRANSITIONS, next_state, state_diagram_mermaid,
};
