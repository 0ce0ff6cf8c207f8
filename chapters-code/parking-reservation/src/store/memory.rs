//! The in-memory store: the whole model behind one mutex.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{LotLayout, LotNear, ReservationStore, Reserved, StoreError};
use crate::assign::{KindAvailability, Spot, assign_reference, availability_reference, is_free};
use crate::domain::{
    Event, Location, LotId, MAX_ACTIVE_PER_PLATE, MAX_HOLDS_PER_PLATE, NEAR_LIMIT, Plate,
    Reservation, ReserveRequest, SpotRef, State, TariffBook, TimeRange, Transition, distance_m,
};
use crate::idempotency::{Fingerprint, IdempotencyKey, fingerprint, scope, walk_in_fingerprint};
use block_idempotency::{ClaimError, Claimed, Decision, FinalAnswer, MemoryKeys};

// ANCHOR: memory_store
/// A [`ReservationStore`] in process memory; the default of `cargo run --bin parking-reservation`.
///
/// Every operation takes the one lock, does its work without awaiting, and
/// releases it, so operations are serializable by construction. A std
/// `Mutex`, not tokio's: it is never held across an `.await`, and an
/// uncontended std lock is a few nanoseconds.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}
// ANCHOR_END: memory_store

#[derive(Debug, Default)]
struct Inner {
    lot_names: BTreeMap<LotId, String>,
    lot_locations: BTreeMap<LotId, Location>,
    /// Each reservation's history, oldest first.
    history: HashMap<Uuid, Vec<Transition>>,
    spots: Vec<Spot>,
    reservations: BTreeMap<Uuid, Reservation>,
    /// The idempotency block's key table, under the store's one lock.
    keys: MemoryKeys,
    next_lot_id: LotId,
    next_spot_id: i64,
    tariffs: TariffBook,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied change:
        // every mutation below is a single insert or replace at the end.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Inner {
    fn lot_reservations(&self, lot_id: LotId) -> Vec<Reservation> {
        self.reservations
            .values()
            .filter(|r| r.lot_id == lot_id)
            .cloned()
            .collect()
    }

    fn check_lot(&self, lot_id: LotId) -> Result<(), StoreError> {
        if self.lot_names.contains_key(&lot_id) {
            Ok(())
        } else {
            Err(StoreError::LotNotFound(lot_id))
        }
    }

    /// Applies `event` to every reservation in `state` for which it is due at `now`.
    fn sweep(&mut self, state: State, event: Event, now: DateTime<Utc>) -> u64 {
        let mut n = 0;
        let tariffs = self.tariffs;
        for r in self.reservations.values_mut().filter(|r| r.state == state) {
            if let Ok(next) = r.apply(event, now, &tariffs.of(r.kind)) {
                self.history
                    .entry(r.id)
                    .or_default()
                    .push(Transition::step(r, event, &next));
                *r = next;
                n += 1;
            }
        }
        n
    }

    /// What an earlier use of `key` answers: its first response when it was
    /// used with the same fingerprint, an error when with another; `None`
    /// when there is no key or it is new.
    fn replay(
        &self,
        key: Option<&IdempotencyKey>,
        fingerprint: Option<&Fingerprint>,
        now: DateTime<Utc>,
    ) -> Option<Result<Reserved, StoreError>> {
        let (key, fp) = key.zip(fingerprint)?;
        let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt(e.to_string());
        match self.keys.check(&scope(key), fp, now) {
            Ok(None) => None,
            Ok(Some(Decision::Replay)) => Some(match self.keys.final_answer(&scope(key), fp) {
                Ok(Some(answer)) => serde_json::from_value(answer.body)
                    .map(|reservation| Reserved {
                        reservation,
                        replayed: true,
                    })
                    .map_err(|e| corrupt(&e)),
                other => Err(corrupt(&format!(
                    "a finished key without its answer: {other:?}"
                ))),
            }),
            Err(ClaimError::KeyReused) => {
                Some(Err(StoreError::IdempotencyKeyReused(key.to_string())))
            }
            // Keys are claimed and finished under one lock: none is left unfinished.
            Ok(Some(Decision::TakeOver)) => Some(Err(corrupt(&"an unfinished key"))),
            Err(e) => Some(Err(corrupt(&e))),
        }
    }

    /// Records the response of the request that used `key` first.
    fn remember(
        &mut self,
        key: Option<&IdempotencyKey>,
        fingerprint: Option<Fingerprint>,
        response: &Reservation,
        now: DateTime<Utc>,
    ) {
        if let (Some(key), Some(fp)) = (key, fingerprint)
            && let Ok(Claimed::New(lock)) =
                self.keys
                    .claim(&scope(key), &fp, block_idempotency::DEFAULT_LEASE, now)
            && let Ok(body) = serde_json::to_value(response)
        {
            let answer = FinalAnswer { status: 201, body };
            // The claim above is this lock's own: the finish cannot be fenced.
            let _ = self.keys.finish(lock, &answer, now);
        }
    }

    /// A hold of the free spot the rule assigns for `request`, not yet
    /// stored. The plate's reservation limit applies to both; `limited`
    /// applies its hold limit too (a reserve, not a walk-in, whose hold is
    /// confirmed before anyone can see it).
    fn new_hold(
        &self,
        request: &ReserveRequest,
        now: DateTime<Utc>,
        limited: bool,
    ) -> Result<Reservation, StoreError> {
        self.check_lot(request.lot_id)?;
        let (holds, active) = self.plate_counts(&request.plate, now, None);
        if limited && holds >= MAX_HOLDS_PER_PLATE {
            return Err(StoreError::TooManyHolds {
                limit: MAX_HOLDS_PER_PLATE,
            });
        }
        if active >= MAX_ACTIVE_PER_PLATE {
            return Err(StoreError::TooManyReservations {
                limit: MAX_ACTIVE_PER_PLATE,
            });
        }
        let reservations = self.lot_reservations(request.lot_id);
        let spot = assign_reference(
            &self.spots,
            &reservations,
            request.lot_id,
            request.kind,
            &request.range,
        )
        .ok_or(StoreError::NoSpotAvailable {
            lot_id: request.lot_id,
            kind: request.kind,
        })?;
        let tariff = self.tariffs.of(request.kind);
        Ok(Reservation::hold(
            Uuid::new_v4(),
            spot,
            request,
            now,
            &tariff,
        ))
    }

    /// Of `plate`'s reservations other than `except`: the unconfirmed holds
    /// that have not lapsed at `now`, and those that take a spot (the same
    /// holds, confirmed and checked in); the same rule as `plate_counts` in
    /// the PostgreSQL store.
    fn plate_counts(&self, plate: &Plate, now: DateTime<Utc>, except: Option<Uuid>) -> (u32, u32) {
        let (mut holds, mut active) = (0u32, 0u32);
        for r in self
            .reservations
            .values()
            .filter(|r| r.plate == *plate && Some(r.id) != except)
        {
            let held = r.state == State::Held && r.hold_expires_at > now;
            holds += u32::from(held);
            let parked = r.state == State::CheckedIn && r.range.end() > now;
            active += u32::from(held || parked || r.state == State::Confirmed);
        }
        (holds, active)
    }

    /// Whether `plate` is checked in anywhere, by a reservation other than
    /// `except` whose stay has not ended at `now`; the same rule as
    /// `is_parked` in the PostgreSQL store.
    fn is_parked(&self, plate: &Plate, now: DateTime<Utc>, except: Option<Uuid>) -> bool {
        self.reservations.values().any(|r| {
            r.plate == *plate
                && r.state == State::CheckedIn
                && r.range.end() > now
                && Some(r.id) != except
        })
    }
}

impl ReservationStore for MemoryStore {
    async fn create_lot(&self, layout: &LotLayout) -> Result<LotId, StoreError> {
        layout.validate()?;
        let mut inner = self.lock();
        if inner.lot_names.values().any(|n| *n == layout.name) {
            return Err(StoreError::LotNameTaken(layout.name.clone()));
        }
        inner.next_lot_id += 1;
        let lot_id = inner.next_lot_id;
        inner.lot_names.insert(lot_id, layout.name.clone());
        if let Some(at) = layout.location {
            inner.lot_locations.insert(lot_id, at);
        }
        for (level, number, kind) in layout.spots() {
            inner.next_spot_id += 1;
            let id = inner.next_spot_id;
            inner.spots.push(Spot {
                lot_id,
                kind,
                at: SpotRef { id, level, number },
            });
        }
        Ok(lot_id)
    }

    async fn availability(
        &self,
        lot_id: LotId,
        range: TimeRange,
    ) -> Result<Vec<KindAvailability>, StoreError> {
        let inner = self.lock();
        inner.check_lot(lot_id)?;
        let reservations = inner.lot_reservations(lot_id);
        Ok(availability_reference(
            &inner.spots,
            &reservations,
            lot_id,
            &range,
        ))
    }

    async fn reserve(
        &self,
        request: &ReserveRequest,
        key: Option<&IdempotencyKey>,
        now: DateTime<Utc>,
    ) -> Result<Reserved, StoreError> {
        let mut inner = self.lock();
        let fingerprint = key.map(|_| fingerprint(request));
        if let Some(replay) = inner.replay(key, fingerprint.as_ref(), now) {
            return replay;
        }
        let reservation = inner.new_hold(request, now, true)?;
        inner
            .reservations
            .insert(reservation.id, reservation.clone());
        inner
            .history
            .insert(reservation.id, vec![Transition::reserved(&reservation)]);
        inner.remember(key, fingerprint, &reservation, now);
        Ok(Reserved {
            reservation,
            replayed: false,
        })
    }

    async fn walk_in(
        &self,
        request: &ReserveRequest,
        key: Option<&IdempotencyKey>,
        now: DateTime<Utc>,
    ) -> Result<Reserved, StoreError> {
        let mut inner = self.lock();
        let fingerprint = key.map(|_| walk_in_fingerprint(request));
        if let Some(replay) = inner.replay(key, fingerprint.as_ref(), now) {
            return replay;
        }
        // A plate parks once: a second walk-in is the gate retrying without
        // a key, or another car with the same plate typed; either way, no spot.
        inner.check_lot(request.lot_id)?;
        if inner.is_parked(&request.plate, now, None) {
            return Err(StoreError::AlreadyParked);
        }
        let held = inner.new_hold(request, now, false)?;
        let tariff = inner.tariffs.of(request.kind);
        // All three steps under the one lock, stored only if all succeed.
        let mut history = vec![Transition::reserved(&held)];
        let mut current = held;
        for event in [Event::Confirm, Event::CheckIn] {
            let next = current.apply(event, now, &tariff)?;
            history.push(Transition::step(&current, event, &next));
            current = next;
        }
        inner.history.insert(current.id, history);
        inner.reservations.insert(current.id, current.clone());
        inner.remember(key, fingerprint, &current, now);
        Ok(Reserved {
            reservation: current,
            replayed: false,
        })
    }

    async fn get(&self, id: Uuid) -> Result<Reservation, StoreError> {
        self.lock()
            .reservations
            .get(&id)
            .cloned()
            .ok_or(StoreError::ReservationNotFound(id))
    }

    async fn apply(
        &self,
        id: Uuid,
        event: Event,
        now: DateTime<Utc>,
    ) -> Result<Reservation, StoreError> {
        let mut inner = self.lock();
        let current = inner
            .reservations
            .get(&id)
            .cloned()
            .ok_or(StoreError::ReservationNotFound(id))?;
        let next = current.apply(event, now, &inner.tariffs.of(current.kind))?;
        if event == Event::CheckIn && inner.is_parked(&current.plate, now, Some(id)) {
            return Err(StoreError::AlreadyParked);
        }
        if event == Event::Confirm
            && inner.plate_counts(&current.plate, now, Some(id)).1 >= MAX_ACTIVE_PER_PLATE
        {
            return Err(StoreError::TooManyReservations {
                limit: MAX_ACTIVE_PER_PLATE,
            });
        }
        // Back into a live state (a late confirm): the spot must still be
        // free, as the exclusion constraint checks the UPDATE in PostgreSQL.
        if !current.state.is_live() && next.state.is_live() {
            let others: Vec<Reservation> = inner
                .lot_reservations(current.lot_id)
                .into_iter()
                .filter(|r| r.id != id)
                .collect();
            if !is_free(current.spot.id, &others, &current.range) {
                return Err(StoreError::SpotTaken);
            }
        }
        let step = Transition::step(&current, event, &next);
        inner.history.entry(id).or_default().push(step);
        inner.reservations.insert(id, next.clone());
        Ok(next)
    }

    async fn expire_holds(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(self.lock().sweep(State::Held, Event::Expire, now))
    }

    async fn mark_no_shows(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(self.lock().sweep(State::Confirmed, Event::MarkNoShow, now))
    }

    fn set_tariffs(&self, tariffs: TariffBook) {
        self.lock().tariffs = tariffs;
    }

    async fn history(&self, id: Uuid) -> Result<Vec<Transition>, StoreError> {
        self.lock()
            .history
            .get(&id)
            .cloned()
            .ok_or(StoreError::ReservationNotFound(id))
    }

    async fn lots_near(&self, at: Location, radius_m: f64) -> Result<Vec<LotNear>, StoreError> {
        let inner = self.lock();
        let mut near: Vec<LotNear> = inner
            .lot_locations
            .iter()
            .map(|(lot_id, l)| LotNear {
                lot_id: *lot_id,
                name: inner.lot_names.get(lot_id).cloned().unwrap_or_default(),
                distance_m: distance_m(&at, l),
            })
            .filter(|n| n.distance_m <= radius_m)
            .collect();
        near.sort_by(|a, b| {
            a.distance_m
                .total_cmp(&b.distance_m)
                .then(a.lot_id.cmp(&b.lot_id))
        });
        near.truncate(usize::try_from(NEAR_LIMIT).unwrap_or(usize::MAX));
        Ok(near)
    }

    async fn reservations(&self, lot_id: LotId) -> Result<Vec<Reservation>, StoreError> {
        let inner = self.lock();
        inner.check_lot(lot_id)?;
        Ok(inner.lot_reservations(lot_id))
    }
}
