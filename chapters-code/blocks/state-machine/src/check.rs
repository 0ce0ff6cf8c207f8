//! The structural checks every table must pass; a chapter runs them in a test.

use std::fmt;

use crate::table::{Guard, Table};

/// A way in which a table is broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Defect<S, E> {
    /// A row, the initial state or a terminal state names a state missing from `states`.
    #[error("{0} is used by the table but missing from its list of states")]
    Unlisted(S),
    /// No path of rows leads from the initial state to this state.
    #[error("{0} cannot be reached from the initial state")]
    Unreachable(S),
    /// Not terminal, yet no path of rows leads from it to a terminal state:
    /// an instance that enters it stays there for ever.
    #[error("{0} is not terminal, but no path leads from it to a terminal state")]
    DeadEnd(S),
    /// A row leaves a state the table declares terminal.
    #[error("{from} is terminal, yet {event} leads out of it")]
    OutOfTerminal {
        /// The terminal state.
        from: S,
        /// The event of the row that leaves it.
        event: E,
    },
    /// Two rows for one (state, event) could both fire: an unguarded row
    /// that is not alone, or two rows with the same guard.
    #[error("two rows for ({from}, {event}) can both fire")]
    Ambiguous {
        /// The state.
        from: S,
        /// The event.
        event: E,
    },
}

// ANCHOR: check
impl<S, E, G> Table<S, E, G>
where
    S: Copy + PartialEq + fmt::Display,
    E: Copy + PartialEq + fmt::Display,
    G: Guard,
{
    /// Every defect of the table, in a stable order; empty for a sound table.
    pub fn defects(&self) -> Vec<Defect<S, E>> {
        let mut out = self.unlisted();
        let reached = self.closure(&[self.initial], |t| (t.from, t.to));
        let reaches_end = self.closure(self.terminal, |t| (t.to, t.from));
        for &s in self.states {
            if !reached.contains(&s) {
                out.push(Defect::Unreachable(s));
            }
        }
        for &s in self.states {
            if !self.is_terminal(s) && !reaches_end.contains(&s) {
                out.push(Defect::DeadEnd(s));
            }
        }
        for t in self.transitions.iter().filter(|t| self.is_terminal(t.from)) {
            out.push(Defect::OutOfTerminal {
                from: t.from,
                event: t.event,
            });
        }
        out.extend(self.ambiguous());
        out
    }

    /// `Ok` when the table has no defect; otherwise every defect.
    pub fn check(&self) -> Result<(), Vec<Defect<S, E>>> {
        let defects = self.defects();
        if defects.is_empty() {
            Ok(())
        } else {
            Err(defects)
        }
    }

    /// The states reachable from `start` by following `edge` (from, to) of each row.
    fn closure(&self, start: &[S], edge: impl Fn(&crate::Transition<S, E, G>) -> (S, S)) -> Vec<S> {
        let mut reached = start.to_vec();
        let mut i = 0;
        // Breadth-first: each reached state's rows are followed once.
        while let Some(&s) = reached.get(i) {
            for (from, to) in self.transitions.iter().map(&edge) {
                if from == s && !reached.contains(&to) {
                    reached.push(to);
                }
            }
            i += 1;
        }
        reached
    }

    fn unlisted(&self) -> Vec<Defect<S, E>> {
        let named = std::iter::once(self.initial)
            .chain(self.terminal.iter().copied())
            .chain(self.transitions.iter().flat_map(|t| [t.from, t.to]));
        let mut out: Vec<S> = Vec::new();
        for s in named {
            if !self.states.contains(&s) && !out.contains(&s) {
                out.push(s);
            }
        }
        out.into_iter().map(Defect::Unlisted).collect()
    }

    fn ambiguous(&self) -> Vec<Defect<S, E>> {
        let mut out = Vec::new();
        for (i, t) in self.transitions.iter().enumerate() {
            let clash = self.transitions[..i].iter().any(|u| {
                u.from == t.from
                    && u.event == t.event
                    && (u.guard == t.guard
                        || u.guard.condition().is_none()
                        || t.guard.condition().is_none())
            });
            let defect = Defect::Ambiguous {
                from: t.from,
                event: t.event,
            };
            if clash && !out.contains(&defect) {
                out.push(defect);
            }
        }
        out
    }
}
// ANCHOR_END: check
