//! The table: rows of (from, event, guard, to), and the lookup over them.

use std::fmt;

// ANCHOR: guard
/// A condition on the data that a row needs besides its state and event.
pub trait Guard: Copy + PartialEq + fmt::Debug {
    /// How the condition reads in the diagram; `None` when the row needs none.
    fn condition(&self) -> Option<&'static str>;
}

/// The guard of a table whose rows need no condition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Unguarded;

impl Guard for Unguarded {
    fn condition(&self) -> Option<&'static str> {
        None
    }
}
// ANCHOR_END: guard

// ANCHOR: types
/// One row of the table: in `from`, `event` leads to `to` when `guard` holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Transition<S, E, G = Unguarded> {
    /// The state the row leaves.
    pub from: S,
    /// What happens.
    pub event: E,
    /// The condition the row needs besides `from` and `event`.
    pub guard: G,
    /// The state the row enters.
    pub to: S,
}

impl<S, E> Transition<S, E, Unguarded> {
    /// A row with no condition.
    pub const fn new(from: S, event: E, to: S) -> Self {
        Self {
            from,
            event,
            guard: Unguarded,
            to,
        }
    }
}

impl<S, E, G> Transition<S, E, G> {
    /// A row that fires only when `guard` holds.
    pub const fn guarded(from: S, event: E, guard: G, to: S) -> Self {
        Self {
            from,
            event,
            guard,
            to,
        }
    }
}

/// A whole state machine, as data. Build it as a `const`; a test runs
/// [`Table::check`] on it.
#[derive(Clone, Copy, Debug)]
pub struct Table<S: 'static, E: 'static, G: 'static = Unguarded> {
    /// The state every instance is born in.
    pub initial: S,
    /// The name of what creates an instance (the diagram's `[*] --> initial` label).
    pub born_by: &'static str,
    /// Every state, in the order the diagram lists the terminal ones.
    pub states: &'static [S],
    /// The states an instance never leaves.
    pub terminal: &'static [S],
    /// Every legal transition; anything else is refused. Rows with the same
    /// (from, event) are tried in order and the first whose guard holds wins.
    pub transitions: &'static [Transition<S, E, G>],
}
// ANCHOR_END: types

/// Why [`Table::step`] found no target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Miss<G> {
    /// No row leaves the state on the event.
    NoRow,
    /// Rows exist, but no guard holds; this is the last one tried.
    GuardFailed(G),
}

// ANCHOR: lookup
impl<S, E, G> Table<S, E, G>
where
    S: Copy + PartialEq,
    E: Copy + PartialEq,
    G: Guard,
{
    /// The rows that leave `from` on `event`, in table order.
    pub fn rows(&self, from: S, event: E) -> impl Iterator<Item = &Transition<S, E, G>> {
        self.transitions
            .iter()
            .filter(move |t| t.from == from && t.event == event)
    }

    /// The state `event` leads to from `from`, given which guards hold.
    pub fn step(&self, from: S, event: E, holds: impl Fn(G) -> bool) -> Result<S, Miss<G>> {
        let mut miss = Miss::NoRow;
        for row in self.rows(from, event) {
            if holds(row.guard) {
                return Ok(row.to);
            }
            miss = Miss::GuardFailed(row.guard);
        }
        Err(miss)
    }

    /// True when `state` is one the table declares terminal.
    pub fn is_terminal(&self, state: S) -> bool {
        self.terminal.contains(&state)
    }
}

impl<S: Copy + PartialEq, E: Copy + PartialEq> Table<S, E, Unguarded> {
    /// The state `event` leads to from `from`, if a row allows it.
    pub fn next(&self, from: S, event: E) -> Option<S> {
        self.step(from, event, |_| true).ok()
    }
}
// ANCHOR_END: lookup

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Paid {
        Yes,
        No,
    }

    impl Guard for Paid {
        fn condition(&self) -> Option<&'static str> {
            Some(match self {
                Paid::Yes => "paid",
                Paid::No => "unpaid",
            })
        }
    }

    const GUARDED: Table<u8, char, Paid> = Table {
        initial: 0,
        born_by: "create",
        states: &[0, 1, 2],
        terminal: &[1, 2],
        transitions: &[
            Transition::guarded(0, 'x', Paid::Yes, 1),
            Transition::guarded(0, 'x', Paid::No, 2),
        ],
    };

    #[test]
    fn the_first_row_whose_guard_holds_wins() {
        assert_eq!(GUARDED.step(0, 'x', |g| g == Paid::No), Ok(2));
        assert_eq!(GUARDED.step(0, 'x', |_| true), Ok(1));
    }

    #[test]
    fn no_row_and_no_guard_are_told_apart() {
        assert_eq!(GUARDED.step(0, 'y', |_| true), Err(Miss::NoRow));
        assert_eq!(GUARDED.step(1, 'x', |_| true), Err(Miss::NoRow));
        assert_eq!(
            GUARDED.step(0, 'x', |_| false),
            Err(Miss::GuardFailed(Paid::No))
        );
    }
}
