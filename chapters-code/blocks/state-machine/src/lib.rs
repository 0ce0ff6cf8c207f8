//! Part II block: a state machine as a table of data.
//!
//! A state machine described in prose, or spread over `match` arms, drifts
//! from the code that runs: a transition is added to the handler and not to
//! the diagram, or a state is left that nothing ever leaves. Here the machine
//! is one constant, a [`Table`] of [`Transition`] rows, and everything else is
//! computed from it:
//!
//! - the run-time lookup ([`Table::step`], [`Table::next`]): a row that is
//!   not in the table is refused;
//! - the mermaid state diagram the book shows ([`Table::mermaid`]);
//! - the database's `CHECK (state IN (...))` ([`Table::sql_check`]);
//! - the structural checks a test runs on every table ([`Table::check`]):
//!   every state reachable from the initial one, every non-terminal state
//!   able to reach a terminal one along the table's rows (guards are not
//!   evaluated), nothing out of a terminal state, and no unguarded row
//!   beside another row for the same state and event, nor two rows with the
//!   same guard (whether two different guards overlap is the chapter's to
//!   test).
//!
//! The block is generic over the chapter's own state, event and guard types,
//! which only need `Copy`, `Eq` and a `Display` name. Case studies depend on
//! the block, never the reverse.

#[cfg(feature = "book")]
pub mod book;
mod check;
mod diagram;
mod table;

pub use check::Defect;
pub use table::{Guard, Miss, Table, Transition, Unguarded};
