//! Storage: one trait, two adapters with the same semantics.
//!
//! [`ReservationStore`] is everything the service needs. [`MemoryStore`]
//! keeps a model behind one mutex, so it is trivially free of races and
//! serves as the reference behaviour; [`PgStore`] keeps the same data in
//! PostgreSQL, where the exclusion constraint, not this code, is what makes
//! double booking impossible. The behaviour suite in
//! `tests/store_behaviour.rs` runs the same assertions against both.
//!
//! Time-based transitions (lapsed holds, no-shows) are applied by
//! [`ReservationStore::expire_holds`] and [`ReservationStore::mark_no_shows`],
//! which the binary calls every few seconds. Until the sweeper runs, a lapsed
//! hold still occupies its spot (it cannot be confirmed, though: the domain
//! checks the clock). The delay is one sweep interval; the simplicity is that
//! the database's `state` column is the only truth the constraint sees.

use std::future::Future;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::assign::KindAvailability;
use crate::domain::{
    Event, Location, LotId, Reservation, ReserveRequest, SpotKind, TariffBook, TimeRange,
    Transition, TransitionError,
};
use crate::idempotency::IdempotencyKey;

mod memory;
mod postgres;

pub use memory::MemoryStore;
pub use postgres::{
    MAX_ASSIGN_ATTEMPTS, MAX_TRANSITION_ATTEMPTS, PgStore, RaceStats, ReservePath, SCHEMA_SQL,
    STATEMENT_TIMEOUT, SWEEP_LOCK,
};

/// The shape of a new lot: its levels and, per level, how many spots of each kind.
#[derive(Clone, Debug, PartialEq)]
pub struct LotLayout {
    /// A unique name, 1 to 100 characters.
    pub name: String,
    /// Where its entrance is, for "lots near a place"; none for a lot not on the map.
    pub location: Option<Location>,
    /// The levels, each with its spots.
    pub levels: Vec<LevelLayout>,
}

/// One level of a [`LotLayout`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LevelLayout {
    /// The level number (0 is the ground floor), -10 to 100.
    pub level: i16,
    /// Spots by kind; numbered 1, 2, ... on the level in this order.
    pub spots: Vec<(SpotKind, u32)>,
}

impl LotLayout {
    /// Checks the rules both stores enforce (and the schema's CHECKs repeat).
    pub fn validate(&self) -> Result<(), StoreError> {
        let bad = |why: &str| Err(StoreError::InvalidLayout(why.to_string()));
        if !(1..=100).contains(&self.name.chars().count()) {
            return bad("a lot name has 1 to 100 characters");
        }
        if self.levels.is_empty() {
            return bad("a lot has at least one level");
        }
        for (i, l) in self.levels.iter().enumerate() {
            if !(-10..=100).contains(&l.level) {
                return bad("levels run from -10 to 100");
            }
            if self.levels[..i].iter().any(|o| o.level == l.level) {
                return bad("each level appears once");
            }
            if l.spots.iter().map(|(_, n)| u64::from(*n)).sum::<u64>() > 10_000 {
                return bad("a level has at most 10000 spots");
            }
        }
        Ok(())
    }

    /// Every spot of the layout as (level, number, kind), in numbering order.
    pub fn spots(&self) -> impl Iterator<Item = (i16, i32, SpotKind)> + '_ {
        self.levels.iter().flat_map(|l| {
            l.spots
                .iter()
                .flat_map(|(kind, n)| std::iter::repeat_n(*kind, *n as usize))
                .zip(1..)
                .map(move |(kind, number)| (l.level, number, kind))
        })
    }
}

/// A lot found near a place.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LotNear {
    /// The lot.
    pub lot_id: LotId,
    /// Its name.
    pub name: String,
    /// Great-circle distance from the place to its entrance, metres.
    pub distance_m: f64,
}

// ANCHOR: store_error
/// What a reserve call produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reserved {
    /// The reservation, as first returned.
    pub reservation: Reservation,
    /// True when this is a replay of an earlier request with the same idempotency key.
    pub replayed: bool,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No lot has this id.
    #[error("lot {0} does not exist")]
    LotNotFound(LotId),
    /// No reservation has this id.
    #[error("reservation {0} does not exist")]
    ReservationNotFound(Uuid),
    /// Every spot of the kind is taken for some part of the range.
    #[error("no {kind} spot is free in lot {lot_id} for the whole range")]
    NoSpotAvailable {
        /// The lot.
        lot_id: LotId,
        /// The kind asked for.
        kind: SpotKind,
    },
    /// The chosen spot was taken by a concurrent request every time we tried
    /// (the exclusion constraint refused the insert; SQLSTATE 23P01).
    #[error("lost the race for a spot {attempts} times in a row; try again")]
    Conflict {
        /// How many times.
        attempts: u32,
    },
    /// The state machine or the clock refused the event.
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// The idempotency key was first used with a different request.
    #[error("idempotency key {0:?} was already used with a different request")]
    IdempotencyKeyReused(String),
    /// The lot layout breaks a rule.
    #[error("invalid lot layout: {0}")]
    InvalidLayout(String),
    /// Another lot has this name.
    #[error("a lot named {0:?} already exists")]
    LotNameTaken(String),
    /// A late confirm found its spot taken by someone else after the hold lapsed.
    #[error("the hold lapsed and its spot was taken meanwhile; reserve again")]
    SpotTaken,
    /// The plate already keeps [`MAX_HOLDS_PER_PLATE`](crate::domain::MAX_HOLDS_PER_PLATE) unconfirmed holds.
    #[error("this plate already holds {limit} unconfirmed spots; confirm or cancel one first")]
    TooManyHolds {
        /// The limit.
        limit: u32,
    },
    /// The plate already has [`MAX_ACTIVE_PER_PLATE`](crate::domain::MAX_ACTIVE_PER_PLATE)
    /// reservations that take a spot (unlapsed holds, confirmed, checked in).
    #[error("this plate already has {limit} reservations; use or cancel one first")]
    TooManyReservations {
        /// The limit.
        limit: u32,
    },
    /// A walk-in of a plate that is checked in already. The error names no
    /// reservation: a plate is public, written on the car, and a
    /// reservation's id is what authorises acting on it.
    #[error("this plate is parked already; check out first")]
    AlreadyParked,
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored row does not parse into the domain (a bug or a hand edit).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}
// ANCHOR_END: store_error

/// What one sweep changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Holds moved to `expired`.
    pub expired: u64,
    /// Confirmed reservations moved to `no_show`.
    pub no_shows: u64,
}

// ANCHOR: store_trait
/// Everything the service needs from storage.
///
/// `now` is always an argument: stores never read a clock, so the tests
/// and the service decide what time it is.
pub trait ReservationStore: Send + Sync + 'static {
    /// Creates a lot with its levels and spots; returns its id.
    fn create_lot(
        &self,
        layout: &LotLayout,
    ) -> impl Future<Output = Result<LotId, StoreError>> + Send;

    /// Per kind: the lot's spots and those free for all of `range`.
    fn availability(
        &self,
        lot_id: LotId,
        range: TimeRange,
    ) -> impl Future<Output = Result<Vec<KindAvailability>, StoreError>> + Send;

    /// Holds the free spot of the kind nearest the ground floor for the range.
    ///
    /// With a key: the same key and request return the first result (with
    /// `replayed` set); the same key with another request is
    /// [`StoreError::IdempotencyKeyReused`]; a failure remembers nothing.
    fn reserve(
        &self,
        request: &ReserveRequest,
        key: Option<&IdempotencyKey>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Reserved, StoreError>> + Send;

    /// A driver at the gate: holds the free spot of the kind nearest the
    /// ground floor for `request.range`, confirms it and checks in, all at
    /// `now` and all or nothing (one transaction in PostgreSQL). The history
    /// records the three steps. `key` works as for [`Self::reserve`], with
    /// the walk-in's own fingerprint
    /// ([`walk_in_fingerprint`](crate::idempotency::walk_in_fingerprint)).
    fn walk_in(
        &self,
        request: &ReserveRequest,
        key: Option<&IdempotencyKey>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Reserved, StoreError>> + Send;

    /// One reservation.
    fn get(&self, id: Uuid) -> impl Future<Output = Result<Reservation, StoreError>> + Send;

    /// Applies `event` at `now` (see [`Reservation::apply`]); nothing changes when it is refused.
    fn apply(
        &self,
        id: Uuid,
        event: Event,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Reservation, StoreError>> + Send;

    /// Moves every hold that lapsed by `now` to `expired`; returns how many.
    fn expire_holds(
        &self,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Moves every confirmed reservation whose check-in window closed by `now` to `no_show`; returns how many.
    fn mark_no_shows(
        &self,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// One sweep: [`expire_holds`](Self::expire_holds), then
    /// [`mark_no_shows`](Self::mark_no_shows). `None` when another process
    /// is sweeping right now and this one skipped (PostgreSQL: an advisory
    /// lock held for the sweep's transaction).
    fn sweep(
        &self,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<Swept>, StoreError>> + Send {
        async move {
            Ok(Some(Swept {
                expired: self.expire_holds(now).await?,
                no_shows: self.mark_no_shows(now).await?,
            }))
        }
    }

    /// Charges new holds, overstays and cancellation fees at `tariffs` from
    /// now on: a price change. Quotes already given are kept.
    fn set_tariffs(&self, tariffs: TariffBook);

    /// A reservation's history, oldest first: its birth and every
    /// transition since, each with its time and charge.
    fn history(&self, id: Uuid)
    -> impl Future<Output = Result<Vec<Transition>, StoreError>> + Send;

    /// Lots within `radius_m` metres of `at`, nearest first, at most
    /// [`NEAR_LIMIT`](crate::domain::NEAR_LIMIT).
    fn lots_near(
        &self,
        at: Location,
        radius_m: f64,
    ) -> impl Future<Output = Result<Vec<LotNear>, StoreError>> + Send;

    /// Every reservation of a lot, ordered by id (for audits and tests).
    fn reservations(
        &self,
        lot_id: LotId,
    ) -> impl Future<Output = Result<Vec<Reservation>, StoreError>> + Send;
}
// ANCHOR_END: store_trait
