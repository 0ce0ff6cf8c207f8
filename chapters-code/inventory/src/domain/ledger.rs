//! The ledger: two stored numbers per position, one derived, and every
//! change an append-only movement.
//!
//! `on_hand` counts the units physically in the warehouse; `reserved` counts
//! those promised to a checkout that has not finished; `committed` counts
//! those sold but not yet shipped, still on the shelf. `available` is never
//! stored: it is `on_hand - reserved - committed`, so it can never disagree
//! with them. A sale does not change `on_hand` (the unit is still there);
//! shipping does. So a stock count, which counts what is on the shelf, is
//! compared with `on_hand` alone.
//! Every change is a [`Movement`] row, and folding a position's movements
//! from zero gives its balance (a property test checks it for random
//! histories, and a PostgreSQL test checks it for the real tables).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ids::StockKey;

// ANCHOR: balance
/// What a stock position holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    /// Units in the building.
    pub on_hand: i64,
    /// Units promised to open reservations.
    pub reserved: i64,
    /// Units sold (paid) but not yet shipped: still in the building.
    #[serde(default)]
    pub committed: i64,
}

impl Balance {
    /// Units a new reservation may take: derived, never stored.
    pub fn available(&self) -> i64 {
        self.on_hand - self.reserved - self.committed
    }

    /// Units promised to someone: held or sold and not shipped. A count may
    /// not go below this.
    pub fn promised(&self) -> i64 {
        self.reserved + self.committed
    }

    /// The rules the database's CHECK constraints also enforce.
    pub fn is_valid(&self) -> bool {
        self.on_hand >= 0
            && self.reserved >= 0
            && self.committed >= 0
            && self.promised() <= self.on_hand
    }
}
// ANCHOR_END: balance

// ANCHOR: movement
/// The kinds of change, each with its effect on the two stored numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MovementKind {
    /// Goods arrived: `on_hand += q`.
    Receive,
    /// A checkout holds units: `reserved += q`.
    Reserve,
    /// The order was paid: `reserved -= q`, `committed += q` (the units
    /// are still on the shelf).
    Commit,
    /// The sold units left the building: `on_hand -= q`, `committed -= q`.
    Ship,
    /// The customer gave the units back: `reserved -= q`.
    Release,
    /// The hold's time ran out: `reserved -= q`.
    Expire,
    /// A stock count corrected `on_hand` by a signed amount.
    Adjust,
}

/// One append-only ledger row: what changed, by how much.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Movement {
    /// The position it changed.
    pub key: StockKey,
    /// What happened.
    pub kind: MovementKind,
    /// Change of `on_hand`.
    pub d_on_hand: i64,
    /// Change of `reserved`.
    pub d_reserved: i64,
    /// Change of `committed`.
    pub d_committed: i64,
}

impl MovementKind {
    /// `(d_on_hand, d_reserved, d_committed)` of a movement of `q` units
    /// (`q` is signed only for `Adjust`).
    pub fn deltas(self, q: i64) -> (i64, i64, i64) {
        match self {
            MovementKind::Receive | MovementKind::Adjust => (q, 0, 0),
            MovementKind::Reserve => (0, q, 0),
            MovementKind::Commit => (0, -q, q),
            MovementKind::Ship => (-q, 0, -q),
            MovementKind::Release | MovementKind::Expire => (0, -q, 0),
        }
    }

    /// The name used in JSON, in events and in the `movements.kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            MovementKind::Receive => "receive",
            MovementKind::Reserve => "reserve",
            MovementKind::Commit => "commit",
            MovementKind::Ship => "ship",
            MovementKind::Release => "release",
            MovementKind::Expire => "expire",
            MovementKind::Adjust => "adjust",
        }
    }

    /// Every kind.
    pub const ALL: [MovementKind; 7] = [
        MovementKind::Receive,
        MovementKind::Reserve,
        MovementKind::Commit,
        MovementKind::Ship,
        MovementKind::Release,
        MovementKind::Expire,
        MovementKind::Adjust,
    ];

    /// The kind named `s`, as stored in the database.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A movement would break a balance rule; nothing was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?} would leave on_hand={} reserved={} committed={}", after.on_hand, after.reserved, after.committed)]
pub struct WouldBreak {
    /// The refused movement's kind.
    pub kind: MovementKind,
    /// The balance it would have produced.
    pub after: Balance,
}

impl Balance {
    /// The balance after `kind` of `q` units, or why not.
    pub fn apply(&self, kind: MovementKind, q: i64) -> Result<Balance, WouldBreak> {
        let (d_on_hand, d_reserved, d_committed) = kind.deltas(q);
        let after = Balance {
            on_hand: self.on_hand + d_on_hand,
            reserved: self.reserved + d_reserved,
            committed: self.committed + d_committed,
        };
        if after.is_valid() {
            Ok(after)
        } else {
            Err(WouldBreak { kind, after })
        }
    }
}

/// Every position's balance, computed from nothing but its movements.
pub fn fold<'a>(movements: impl IntoIterator<Item = &'a Movement>) -> BTreeMap<StockKey, Balance> {
    let mut out: BTreeMap<StockKey, Balance> = BTreeMap::new();
    for m in movements {
        let b = out.entry(m.key.clone()).or_default();
        b.on_hand += m.d_on_hand;
        b.reserved += m.d_reserved;
        b.committed += m.d_committed;
    }
    out
}
// ANCHOR_END: movement

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_moves_the_right_column() {
        let b = Balance {
            on_hand: 10,
            reserved: 4,
            committed: 2,
        };
        let after = |k, q| b.apply(k, q).map(|b| (b.on_hand, b.reserved, b.committed));
        assert_eq!(after(MovementKind::Receive, 5), Ok((15, 4, 2)));
        assert_eq!(after(MovementKind::Reserve, 4), Ok((10, 8, 2)));
        assert_eq!(after(MovementKind::Commit, 4), Ok((10, 0, 6)));
        assert_eq!(after(MovementKind::Ship, 2), Ok((8, 4, 0)));
        assert_eq!(after(MovementKind::Release, 4), Ok((10, 0, 2)));
        assert_eq!(after(MovementKind::Expire, 1), Ok((10, 3, 2)));
        assert_eq!(after(MovementKind::Adjust, -4), Ok((6, 4, 2)));
        // The rules: never more promised than on hand, nothing negative.
        assert!(b.apply(MovementKind::Reserve, 5).is_err());
        assert!(b.apply(MovementKind::Adjust, -5).is_err());
        assert!(b.apply(MovementKind::Commit, 5).is_err());
        assert!(b.apply(MovementKind::Ship, 3).is_err());
        assert!(b.apply(MovementKind::Release, 5).is_err());
    }

    #[test]
    fn kinds_round_trip_through_their_names() {
        for k in MovementKind::ALL {
            assert_eq!(MovementKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(MovementKind::parse("steal"), None);
    }
}
