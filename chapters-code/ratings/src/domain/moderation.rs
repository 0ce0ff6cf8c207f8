//! The moderation state machine, as a table of the state-machine block:
//! the run-time lookup, the book's diagram and the schema's CHECK all come
//! from [`MODERATION`].

use std::fmt;

use block_state_machine::{Table, Transition};
use serde::{Deserialize, Serialize};

// ANCHOR: states
/// Where moderation has a review. Only `Published` reviews are shown and
/// counted in the aggregate; nothing is ever hard-deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModState {
    /// Waiting for a tier of the spam defence or a moderator.
    Pending,
    /// Shown and counted.
    Published,
    /// Kept, shown only behind a link, not counted (Yelp's term).
    NotRecommended,
    /// Hidden by a moderator; kept for the record and for an appeal.
    Removed,
    /// The author appealed; a moderator decides.
    Appealed,
    /// The author deleted it (a soft delete; the row stays).
    Deleted,
}

/// What moves a review between states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModEvent {
    /// A tier or a moderator finds nothing wrong.
    Approve,
    /// Suspicious: kept but not shown or counted.
    NotRecommend,
    /// Breaks the rules: hidden.
    Remove,
    /// The author asks for another look.
    Appeal,
    /// The author deletes the review.
    Delete,
    /// A tier keeps a new review pending; audited so the reason is kept.
    Hold,
}

use ModEvent as E;
use ModState as S;

/// The moderation machine: every legal (state, event) and where it leads.
pub const MODERATION: Table<ModState, ModEvent> = Table {
    initial: S::Pending,
    born_by: "submit",
    states: &[
        S::Pending,
        S::Published,
        S::NotRecommended,
        S::Removed,
        S::Appealed,
        S::Deleted,
    ],
    terminal: &[S::Deleted],
    transitions: &[
        Transition::new(S::Pending, E::Hold, S::Pending),
        Transition::new(S::Pending, E::Approve, S::Published),
        Transition::new(S::Pending, E::NotRecommend, S::NotRecommended),
        Transition::new(S::Pending, E::Remove, S::Removed),
        Transition::new(S::Published, E::NotRecommend, S::NotRecommended),
        Transition::new(S::Published, E::Remove, S::Removed),
        Transition::new(S::NotRecommended, E::Approve, S::Published),
        Transition::new(S::NotRecommended, E::Appeal, S::Appealed),
        Transition::new(S::Removed, E::Appeal, S::Appealed),
        Transition::new(S::Appealed, E::Approve, S::Published),
        Transition::new(S::Appealed, E::NotRecommend, S::NotRecommended),
        Transition::new(S::Appealed, E::Remove, S::Removed),
        Transition::new(S::Pending, E::Delete, S::Deleted),
        Transition::new(S::Published, E::Delete, S::Deleted),
        Transition::new(S::NotRecommended, E::Delete, S::Deleted),
        Transition::new(S::Removed, E::Delete, S::Deleted),
        Transition::new(S::Appealed, E::Delete, S::Deleted),
    ],
};
// ANCHOR_END: states

/// A transition the table does not have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a review in state {from} cannot take the event {event}")]
pub struct IllegalTransition {
    /// The state the review was in.
    pub from: ModState,
    /// The event refused.
    pub event: ModEvent,
}

impl ModState {
    /// The state after `event`, or the refusal.
    pub fn on(self, event: ModEvent) -> Result<ModState, IllegalTransition> {
        MODERATION
            .next(self, event)
            .ok_or(IllegalTransition { from: self, event })
    }

    /// True for the one state whose reviews are shown and counted.
    pub fn counts(self) -> bool {
        self == S::Published
    }

    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            S::Pending => "pending",
            S::Published => "published",
            S::NotRecommended => "not_recommended",
            S::Removed => "removed",
            S::Appealed => "appealed",
            S::Deleted => "deleted",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        MODERATION
            .states
            .iter()
            .copied()
            .find(|st| st.as_str() == s)
    }
}

impl ModEvent {
    /// The name stored in the audit table.
    pub fn as_str(self) -> &'static str {
        match self {
            E::Approve => "approve",
            E::NotRecommend => "not_recommend",
            E::Remove => "remove",
            E::Appeal => "appeal",
            E::Delete => "delete",
            E::Hold => "hold",
        }
    }

    /// True for the events only the author may send (the others are moderators' and tiers').
    pub fn is_authors(self) -> bool {
        matches!(self, E::Appeal | E::Delete)
    }
}

impl fmt::Display for ModState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for ModEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sound() {
        assert_eq!(MODERATION.check(), Ok(()));
    }

    #[test]
    fn the_schema_check_lists_exactly_the_tables_states() {
        let schema = include_str!("../../sql/schema.sql");
        assert!(
            schema.contains(&MODERATION.sql_check("state")),
            "sql/schema.sql must contain {}",
            MODERATION.sql_check("state")
        );
    }

    #[test]
    fn stored_names_round_trip() {
        for s in MODERATION.states {
            assert_eq!(ModState::parse(s.as_str()), Some(*s));
        }
    }

    #[test]
    fn nothing_leaves_deleted_and_a_removed_review_can_only_be_appealed_or_deleted() {
        for e in [
            E::Approve,
            E::NotRecommend,
            E::Remove,
            E::Appeal,
            E::Delete,
            E::Hold,
        ] {
            assert!(S::Deleted.on(e).is_err());
        }
        assert_eq!(
            S::Removed.on(E::Approve).map_err(|e| e.from),
            Err(S::Removed)
        );
        assert_eq!(S::Removed.on(E::Appeal), Ok(S::Appealed));
    }
}
