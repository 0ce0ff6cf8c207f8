//! One behaviour suite, run against both stores: `memory::<test>` and
//! `postgres::<test>` assert exactly the same things.

mod common;

use chrono::TimeDelta;
use common::*;
use parking_reservation::domain::{
    Event, HOLD_TTL, LATE_CONFIRM_WINDOW, MAX_ACTIVE_PER_PLATE, MAX_HOLDS_PER_PLATE, NO_SHOW_GRACE,
    SpotKind, State, TransitionError,
};
use parking_reservation::idempotency::IdempotencyKey;
use parking_reservation::store::{ReservationStore, StoreError};

fn key(s: &str) -> IdempotencyKey {
    match IdempotencyKey::parse(s.as_bytes()) {
        Ok(k) => k,
        Err(e) => panic!("bad test key: {e}"),
    }
}

/// Runs each listed `async fn(&impl ReservationStore)` once per store.
macro_rules! behaviour_suite {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(&parking_reservation::store::MemoryStore::new()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some((_db, store)) = super::common::pg_store().await else { return };
                    super::$name(&store).await;
                }
            )*
        }
    };
}

behaviour_suite!(
    reserve_assigns_the_lowest_free_level_first,
    reserve_prefers_the_ground_floor_to_the_basement,
    unconfirmed_holds_expire,
    confirmed_stay_is_charged_at_check_out,
    no_shows_are_released_and_charged,
    cancellation_follows_the_policy_and_frees_the_spot,
    illegal_transitions_change_nothing,
    a_repeated_confirm_is_refused_and_changes_nothing,
    a_payment_after_the_hold_lapsed_confirms_only_a_free_spot,
    a_plate_may_keep_only_a_few_holds,
    every_change_is_in_the_history,
    lots_near_a_place_come_nearest_first,
    a_price_change_keeps_the_quotes_given,
    bad_requests_change_nothing,
    same_idempotency_key_same_body_returns_first_result,
    same_idempotency_key_other_body_is_refused,
    failed_reserve_does_not_consume_the_key,
    retry_without_idempotency_key_creates_two_holds,
    availability_counts_free_spots,
    invalid_lots_are_refused,
    a_walk_in_is_parked_at_once_or_leaves_nothing,
    a_walk_in_is_not_held_to_the_hold_limit,
    a_walk_in_retried_with_its_key_parks_once,
    a_confirm_after_check_in_closed_is_refused,
    a_plate_may_have_only_a_few_reservations,
    a_walk_in_retried_without_a_key_parks_once,
    a_parked_plate_is_blocked_only_until_its_stay_ends,
    a_plate_parks_in_one_spot_at_a_time,
    an_unknown_lot_is_named_before_the_plate_limits,
);

/// Both stores name an unknown lot first, even for a plate at its limits:
/// a reserve of a plate with its holds used up, and a walk-in of a parked
/// plate, into a lot that does not exist are `LotNotFound`.
async fn an_unknown_lot_is_named_before_the_plate_limits(store: &impl ReservationStore) {
    let lot = store
        .create_lot(&lot_of(4))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let now = now0() + minutes(7);
    for i in 0..i64::from(MAX_HOLDS_PER_PLATE) {
        let r = request(lot, SpotKind::Regular, slots(8 + 4 * i, 4), "FULL1");
        store
            .reserve(&r, None, now)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let parked = request(lot, SpotKind::Regular, slots(0, 4), "FULL1");
    store
        .walk_in(&parked, None, now)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let nowhere = 999_999;
    let reserve = request(nowhere, SpotKind::Regular, slots(40, 4), "FULL1");
    let refused = store.reserve(&reserve, None, now).await;
    assert!(
        matches!(refused, Err(StoreError::LotNotFound(l)) if l == nowhere),
        "{refused:?}"
    );
    let gate = request(nowhere, SpotKind::Regular, slots(0, 4), "FULL1");
    let refused = store.walk_in(&gate, None, now).await;
    assert!(
        matches!(refused, Err(StoreError::LotNotFound(l)) if l == nowhere),
        "{refused:?}"
    );
}

/// A plate is public, so a stranger can walk a known plate in without a
/// key, or a gate can lose the answer of a keyless walk-in: either way
/// nobody holds the id to check it out. Such a stay blocks the plate's
/// walk-ins (whatever its dashes) until its end, and no longer: two weeks
/// later the plate parks, and the stale stay does not count against its
/// reservations.
async fn a_parked_plate_is_blocked_only_until_its_stay_ends(store: &impl ReservationStore) {
    let a = store
        .create_lot(&lot_of(2))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let b = store
        .create_lot(&lot_of(3))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let now = now0() + minutes(7);
    let lost = request(a, SpotKind::Regular, slots(0, 4), "VICTIM1");
    store
        .walk_in(&lost, None, now)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // During the stay, the same car at another gate, its plate typed with a dash.
    let again = request(b, SpotKind::Regular, slots(0, 4), "VIC-TIM1");
    let refused = store.walk_in(&again, None, now + minutes(1)).await;
    assert!(
        matches!(refused, Err(StoreError::AlreadyParked)),
        "{refused:?}"
    );
    // Two weeks later: parked again, and the stale stay takes none of the
    // plate's places (the limit minus one more reserves fit).
    let later = now + TimeDelta::days(14);
    let first = 14 * 24 * 4;
    let back = request(b, SpotKind::Regular, slots(first, 4), "VICTIM1");
    let parked = store.walk_in(&back, None, later).await;
    assert_eq!(
        parked.as_ref().map(|r| r.reservation.state).ok(),
        Some(State::CheckedIn),
        "{parked:?}"
    );
    for i in 1..i64::from(MAX_ACTIVE_PER_PLATE) {
        let r = request(b, SpotKind::Regular, slots(first + 8 * i, 4), "VICTIM1");
        let held = store.reserve(&r, None, later).await;
        let held = held.unwrap_or_else(|e| panic!("reserve {i}: {e}"));
        store
            .apply(held.reservation.id, Event::Confirm, later)
            .await
            .unwrap_or_else(|e| panic!("confirm {i}: {e}"));
    }
}

/// A car parks in one spot at a time, by walk-in or by check-in: a plate
/// parked at one lot cannot check in a reservation at another (it stays
/// confirmed) until the first stay is checked out.
async fn a_plate_parks_in_one_spot_at_a_time(store: &impl ReservationStore) {
    let a = store
        .create_lot(&lot_of(2))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let b = store
        .create_lot(&lot_of(3))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let now = now0() + minutes(7);
    let parked = store
        .walk_in(
            &request(a, SpotKind::Regular, slots(0, 8), "TWO1"),
            None,
            now,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .reservation;
    let booked = store
        .reserve(
            &request(b, SpotKind::Regular, slots(0, 8), "TWO-1"),
            None,
            now,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .reservation;
    store
        .apply(booked.id, Event::Confirm, now)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let second = store
        .apply(booked.id, Event::CheckIn, now + minutes(1))
        .await;
    assert!(
        matches!(second, Err(StoreError::AlreadyParked)),
        "{second:?}"
    );
    assert_eq!(
        store.get(booked.id).await.ok().map(|r| r.state),
        Some(State::Confirmed)
    );
    store
        .apply(parked.id, Event::CheckOut, now + minutes(2))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let checked_in = store
        .apply(booked.id, Event::CheckIn, now + minutes(3))
        .await;
    assert_eq!(checked_in.map(|r| r.state).ok(), Some(State::CheckedIn));
}

// ANCHOR: active_limit_test
/// Confirming is free too, so the hold limit alone would let one plate book
/// a lot ahead, a few holds at a time. A plate may have at most
/// MAX_ACTIVE_PER_PLATE reservations that take a spot at once: a reserve, a
/// late confirm (which brings a lapsed hold back) and a walk-in beyond that
/// are refused and change nothing; another plate is not affected; a cancel
/// frees a place.
async fn a_plate_may_have_only_a_few_reservations(store: &impl ReservationStore) {
    let lot = store
        .create_lot(&lot_of(10))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let t = |m: i64| now0() + minutes(m);
    let req = |i: i64, who: &str| request(lot, SpotKind::Regular, slots(8 + 4 * i, 4), who);
    let mut confirmed = Vec::new();
    for i in 0..i64::from(MAX_ACTIVE_PER_PLATE) - 1 {
        let held = store
            .reserve(&req(i, "HOG1"), None, t(0))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .reservation;
        store
            .apply(held.id, Event::Confirm, t(1))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        confirmed.push(held);
    }
    // A hold that lapses and is swept: it no longer counts...
    let lapsed = store
        .reserve(&req(10, "HOG1"), None, t(2))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .reservation;
    assert_eq!(store.expire_holds(t(12)).await.ok(), Some(1));
    // ...so one more reserve reaches the limit, and the next is refused.
    store
        .reserve(&req(11, "HOG1"), None, t(13))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let over = |e: Option<&StoreError>| matches!(e, Some(StoreError::TooManyReservations { limit }) if *limit == MAX_ACTIVE_PER_PLATE);
    let refused = store.reserve(&req(12, "HOG1"), None, t(13)).await;
    assert!(over(refused.as_ref().err()), "{refused:?}");
    // The late confirm of the lapsed hold would make one too many.
    let before = store.get(lapsed.id).await.unwrap_or_else(|e| panic!("{e}"));
    let late = store.apply(lapsed.id, Event::Confirm, t(14)).await;
    assert!(over(late.as_ref().err()), "{late:?}");
    assert_eq!(store.get(lapsed.id).await.ok(), Some(before));
    // A walk-in counts as well.
    let gate = request(lot, SpotKind::Regular, slots(0, 4), "HOG1");
    let walk_in = store.walk_in(&gate, None, t(14)).await;
    assert!(over(walk_in.as_ref().err()), "{walk_in:?}");
    // Another plate is not affected; a cancel frees a place.
    assert!(store.reserve(&req(12, "OTHER2"), None, t(14)).await.is_ok());
    store
        .apply(confirmed[0].id, Event::Cancel, t(15))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(store.reserve(&req(13, "HOG1"), None, t(15)).await.is_ok());
    let rows = store.reservations(lot).await.unwrap_or_default();
    let live = rows
        .iter()
        .filter(|r| r.plate.as_str() == "HOG1" && r.state.is_live())
        .count();
    assert_eq!(u32::try_from(live).ok(), Some(MAX_ACTIVE_PER_PLATE));
}
// ANCHOR_END: active_limit_test

// ANCHOR: walk_in_natural_key_test
/// A gate that retries a walk-in without an Idempotency-Key, after a lost
/// answer: the plate is checked in already, so the retry is refused
/// (`AlreadyParked`, naming no reservation: a plate is public) and parks
/// nothing, here or in another lot; after check-out the plate walks in again.
async fn a_walk_in_retried_without_a_key_parks_once(store: &impl ReservationStore) {
    let lot = store
        .create_lot(&lot_of(3))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let other_lot = store
        .create_lot(&lot_of(1).renamed("Other lot"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let stay = request(lot, SpotKind::Regular, slots(0, 8), "GATE6");
    let first = store
        .walk_in(&stay, None, now0() + minutes(7))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let retry = request(lot, SpotKind::Regular, slots(1, 7), "GATE6");
    let elsewhere = request(other_lot, SpotKind::Regular, slots(1, 7), "GATE6");
    for again in [retry, elsewhere] {
        let refused = store.walk_in(&again, None, now0() + minutes(16)).await;
        assert!(
            matches!(refused, Err(StoreError::AlreadyParked)),
            "{refused:?}"
        );
    }
    assert_eq!(store.reservations(lot).await.map(|v| v.len()).ok(), Some(1));
    assert_eq!(
        store.reservations(other_lot).await.map(|v| v.len()).ok(),
        Some(0)
    );
    store
        .apply(first.reservation.id, Event::CheckOut, now0() + minutes(30))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let next = request(lot, SpotKind::Regular, slots(2, 4), "GATE6");
    let parked = store.walk_in(&next, None, now0() + minutes(31)).await;
    assert!(parked.is_ok_and(|p| !p.replayed));
}
// ANCHOR_END: walk_in_natural_key_test

// ANCHOR: confirm_after_close_test
/// A hold taken just before its booking starts can still be within its late
/// window when check-in closes. A confirm then would make a reservation the
/// driver can neither check in to nor cancel, charged in full as a no-show
/// at the next sweep: refused from the instant check-in closes, and nothing
/// changes; one instant before, it confirms.
async fn a_confirm_after_check_in_closed_is_refused(store: &impl ReservationStore) {
    let lot = store
        .create_lot(&lot_of(2))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Booked 09:00 to 10:00, held at 09:12: the hold lapses at 09:22, the
    // late window runs to 09:37, check-in closes at 09:30.
    let booking = slots(4, 4);
    let held_at = booking.start() + minutes(12);
    let closes = booking.start() + NO_SHOW_GRACE;
    assert!(closes < held_at + HOLD_TTL + LATE_CONFIRM_WINDOW);
    let hold = |who: &'static str| {
        let req = request(lot, SpotKind::Regular, booking, who);
        async move {
            store
                .reserve(&req, None, held_at)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .reservation
        }
    };
    let (late, just_in_time) = (hold("CLOSE1").await, hold("CLOSE2").await);
    let before = store.get(late.id).await.unwrap_or_else(|e| panic!("{e}"));
    let refused = store.apply(late.id, Event::Confirm, closes).await;
    assert!(
        matches!(
            refused,
            Err(StoreError::Transition(TransitionError::CheckInClosed { closed_at })) if closed_at == closes
        ),
        "{refused:?}"
    );
    assert_eq!(store.get(late.id).await.ok(), Some(before));
    let confirmed = store
        .apply(
            just_in_time.id,
            Event::Confirm,
            closes - chrono::TimeDelta::seconds(1),
        )
        .await;
    assert_eq!(confirmed.map(|r| r.state).ok(), Some(State::Confirmed));
}
// ANCHOR_END: confirm_after_close_test

/// A walk-in is one step: parked (held, confirmed and checked in, three
/// entries of history) on a spot no reservation needs, or refused with
/// nothing stored, even when the refusal comes at its last step.
async fn a_walk_in_is_parked_at_once_or_leaves_nothing(store: &impl ReservationStore) {
    let lot = store
        .create_lot(&lot_of(2))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let now = now0() + minutes(7);
    let later = request(lot, SpotKind::Regular, slots(4, 12), "BOOKED");
    let booked = store
        .reserve(&later, None, now)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .reservation;
    let stay = request(lot, SpotKind::Regular, slots(0, 12), "GATE1");
    let parked = store
        .walk_in(&stay, None, now)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .reservation;
    assert_eq!(parked.state, State::CheckedIn);
    assert_ne!(parked.spot, booked.spot);
    assert_eq!(store.get(parked.id).await.ok(), Some(parked.clone()));
    let steps: Vec<Event> = store
        .history(parked.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(|t| t.event)
        .collect();
    assert_eq!(steps, [Event::Reserve, Event::Confirm, Event::CheckIn]);
    let count = || async { store.reservations(lot).await.map(|v| v.len()).ok() };
    // The lot is full for this stay: refused, nothing stored.
    let full = store
        .walk_in(
            &request(lot, SpotKind::Regular, slots(0, 8), "GATE2"),
            None,
            now,
        )
        .await;
    assert!(
        matches!(full, Err(StoreError::NoSpotAvailable { .. })),
        "{full:?}"
    );
    // A stay that starts in two hours has a free spot but cannot check in
    // yet: the last step is refused, and the hold and confirm go with it.
    let early = store
        .walk_in(
            &request(lot, SpotKind::Regular, slots(16, 4), "GATE3"),
            None,
            now,
        )
        .await;
    assert!(matches!(early, Err(StoreError::Transition(_))), "{early:?}");
    assert_eq!(
        count().await,
        Some(2),
        "a refused walk-in left something behind: {:?}",
        store.reservations(lot).await
    );
}

/// The hold limit is on unconfirmed holds, and a walk-in leaves none: a
/// plate that keeps MAX_HOLDS_PER_PLATE holds is still parked at the gate,
/// and the walk-in does not count against it afterwards (its next reserve
/// is refused, as before, and no sooner).
async fn a_walk_in_is_not_held_to_the_hold_limit(store: &impl ReservationStore) {
    let lot = store
        .create_lot(&lot_of(5))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let now = now0() + minutes(7);
    for i in 0..MAX_HOLDS_PER_PLATE {
        let r = request(
            lot,
            SpotKind::Regular,
            slots(8 + 4 * i64::from(i), 4),
            "GATE9",
        );
        store
            .reserve(&r, None, now)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let stay = request(lot, SpotKind::Regular, slots(0, 4), "GATE9");
    let parked = store.walk_in(&stay, None, now).await;
    assert_eq!(
        parked.map(|r| r.reservation.state).ok(),
        Some(State::CheckedIn),
        "a plate at its hold limit was turned away at the gate"
    );
    let one_more = request(lot, SpotKind::Regular, slots(40, 4), "GATE9");
    let refused = store.reserve(&one_more, None, now).await;
    assert!(
        matches!(refused, Err(StoreError::TooManyHolds { .. })),
        "{refused:?}"
    );
}

/// A gate that loses the answer and retries with the same Idempotency-Key
/// gets the first walk-in back, even from the next 15-minute slot (the
/// service takes the start from the clock); the key with another walk-in,
/// or a reserve's key used for a walk-in, is refused. One car, one spot.
async fn a_walk_in_retried_with_its_key_parks_once(store: &impl ReservationStore) {
    let lot = store
        .create_lot(&lot_of(3))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let now = now0() + minutes(7);
    let gate = key("gate-4/2026-03-02/0807-GATE7");
    let stay = request(lot, SpotKind::Regular, slots(0, 8), "GATE7");
    let first = store
        .walk_in(&stay, Some(&gate), now)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (first.replayed, first.reservation.state),
        (false, State::CheckedIn)
    );
    // The retry, sent at 08:16: its stay starts in the next slot.
    let retry = request(lot, SpotKind::Regular, slots(1, 7), "GATE7");
    let again = store
        .walk_in(&retry, Some(&gate), now0() + minutes(16))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(again.replayed, "{again:?}");
    assert_eq!(again.reservation, first.reservation);
    let other = request(lot, SpotKind::Regular, slots(0, 8), "GATE8");
    let reused = store.walk_in(&other, Some(&gate), now).await;
    assert!(
        matches!(reused, Err(StoreError::IdempotencyKeyReused(_))),
        "{reused:?}"
    );
    // A reserve's key names the reserve, not a walk-in of the same request.
    let online = key("app-9/order-1");
    store
        .reserve(&other, Some(&online), now)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let reused = store.walk_in(&other, Some(&online), now).await;
    assert!(
        matches!(reused, Err(StoreError::IdempotencyKeyReused(_))),
        "{reused:?}"
    );
    assert_eq!(
        store.reservations(lot).await.map(|v| v.len()).ok(),
        Some(2),
        "{:?}",
        store.reservations(lot).await
    );
}

async fn reserve_assigns_the_lowest_free_level_first(store: &impl ReservationStore) {
    let lot = store
        .create_lot(&small_lot())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let nine_to_ten = slots(4, 4);
    let mut got = Vec::new();
    for who in ["AA1", "AA2", "AA3", "AA4"] {
        let r = store
            .reserve(
                &request(lot, SpotKind::Regular, nine_to_ten, who),
                None,
                now0(),
            )
            .await;
        let r = r.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.reservation.state, State::Held);
        assert_eq!(r.reservation.kind, SpotKind::Regular);
        got.push((r.reservation.spot.level, r.reservation.spot.number));
    }
    assert_eq!(got, vec![(0, 1), (0, 2), (1, 1), (1, 2)]);
    // The fifth overlapping request finds nothing.
    let fifth = store
        .reserve(
            &request(lot, SpotKind::Regular, slots(7, 2), "AA5"),
            None,
            now0(),
        )
        .await;
    assert!(
        matches!(
            fifth,
            Err(StoreError::NoSpotAvailable {
                kind: SpotKind::Regular,
                ..
            })
        ),
        "{fifth:?}"
    );
    // Back to back is not an overlap: the lowest spot again.
    let after = store
        .reserve(
            &request(lot, SpotKind::Regular, slots(8, 4), "AA6"),
            None,
            now0(),
        )
        .await;
    let after = after.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (after.reservation.spot.level, after.reservation.spot.number),
        (0, 1)
    );
    // Kinds do not mix: the EV spot is number 3 on level 0.
    let ev = store
        .reserve(
            &request(lot, SpotKind::Ev, nine_to_ten, "EV1"),
            None,
            now0(),
        )
        .await;
    let ev = ev.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (ev.reservation.spot.level, ev.reservation.spot.number),
        (0, 3)
    );
    let no_large = store
        .reserve(
            &request(lot, SpotKind::Large, nine_to_ten, "LG1"),
            None,
            now0(),
        )
        .await;
    assert!(matches!(no_large, Err(StoreError::NoSpotAvailable { .. })));
}

// ANCHOR: ground_floor_test
/// The entrance is on level 0: the nearest level to it comes first, so a
/// basement (-1) is not preferred to the ground floor, and on equal
/// distance the level above is taken before the level below.
async fn reserve_prefers_the_ground_floor_to_the_basement(store: &impl ReservationStore) {
    use parking_reservation::store::{LevelLayout, LotLayout};
    let level = |level: i16| LevelLayout {
        level,
        spots: vec![(SpotKind::Regular, 1)],
    };
    let layout = LotLayout {
        name: "Basements".to_string(),
        location: None,
        levels: vec![level(-2), level(-1), level(0), level(1), level(2)],
    };
    let lot = store
        .create_lot(&layout)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut got = Vec::new();
    for who in ["GF1", "GF2", "GF3", "GF4", "GF5"] {
        let r = store
            .reserve(
                &request(lot, SpotKind::Regular, slots(4, 4), who),
                None,
                now0(),
            )
            .await;
        got.push(r.unwrap_or_else(|e| panic!("{e}")).reservation.spot.level);
    }
    assert_eq!(got, vec![0, 1, -1, 2, -2]);
}
// ANCHOR_END: ground_floor_test

async fn unconfirmed_holds_expire(store: &impl ReservationStore) {
    let lot = store
        .create_lot(&lot_of(1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let r = slots(8, 4);
    let held = store
        .reserve(&request(lot, SpotKind::Regular, r, "HOLD1"), None, now0())
        .await;
    let held = held.unwrap_or_else(|e| panic!("{e}")).reservation;
    assert_eq!(held.hold_expires_at, now0() + minutes(10));
    // While the hold lives, nobody else gets the spot.
    let other = store
        .reserve(
            &request(lot, SpotKind::Regular, r, "HOLD2"),
            None,
            now0() + minutes(9),
        )
        .await;
    assert!(matches!(other, Err(StoreError::NoSpotAvailable { .. })));
    // Confirming after the late-confirm window is too late, and changes nothing.
    let late = store
        .apply(held.id, Event::Confirm, now0() + minutes(25))
        .await;
    assert!(
        matches!(
            late,
            Err(StoreError::Transition(TransitionError::HoldExpired { .. }))
        ),
        "{late:?}"
    );
    assert_eq!(store.get(held.id).await.ok(), Some(held.clone()));
    // The sweeper expires exactly the lapsed holds.
    assert_eq!(store.expire_holds(now0() + minutes(9)).await.ok(), Some(0));
    assert_eq!(store.expire_holds(now0() + minutes(10)).await.ok(), Some(1));
    let expired = store.get(held.id).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(expired.state, State::Expired);
    assert_eq!(expired.charged_cents, None);
    // The spot is free again.
    let again = store
        .reserve(
            &request(lot, SpotKind::Regular, r, "HOLD2"),
            None,
            now0() + minutes(11),
        )
        .await;
    assert!(again.is_ok(), "{again:?}");
    // A hold confirmed in time is not swept.
    let lot2 = store
        .create_lot(&lot_of(1).renamed("Second"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let kept = store
        .reserve(&request(lot2, SpotKind::Regular, r, "KEEP1"), None, now0())
        .await;
    let kept = kept.unwrap_or_else(|e| panic!("{e}")).reservation;
    let confirmed = store
        .apply(kept.id, Event::Confirm, now0() + minutes(9))
        .await;
    assert_eq!(confirmed.map(|c| c.state).ok(), Some(State::Confirmed));
    // (HOLD2, made at +11 minutes, lapses at +21.)
    assert_eq!(store.expire_holds(now0() + minutes(20)).await.ok(), Some(0));
}

async fn confirmed_stay_is_charged_at_check_out(store: &impl ReservationStore) {
    let lot = store
        .create_lot(&lot_of(1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Monday 09:00-10:00 is peak: 4.50.
    let r = range("2026-03-02T09:00:00Z", "2026-03-02T10:00:00Z");
    let res = store
        .reserve(&request(lot, SpotKind::Regular, r, "PAY1"), None, now0())
        .await;
    let res = res.unwrap_or_else(|e| panic!("{e}")).reservation;
    assert_eq!(res.quote_cents.cents(), 450);
    let id = res.id;
    assert!(
        store
            .apply(id, Event::Confirm, now0() + minutes(1))
            .await
            .is_ok()
    );
    let early = store
        .apply(id, Event::CheckIn, at("2026-03-02T08:44:59Z"))
        .await;
    assert!(
        matches!(
            early,
            Err(StoreError::Transition(
                TransitionError::TooEarlyToCheckIn { .. }
            ))
        ),
        "{early:?}"
    );
    let inside = store
        .apply(id, Event::CheckIn, at("2026-03-02T08:50:00Z"))
        .await;
    assert_eq!(inside.map(|r| r.state).ok(), Some(State::CheckedIn));
    // Leaving at 10:05 pays to 10:15: five peak slots, 5.625 rounded up once.
    let out = store
        .apply(id, Event::CheckOut, at("2026-03-02T10:05:00Z"))
        .await;
    let out = out.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.state, State::CheckedOut);
    assert_eq!(out.charged_cents.map(|m| m.cents()), Some(563));
    assert_eq!(store.get(id).await.ok(), Some(out));
}

async fn no_shows_are_released_and_charged(store: &impl ReservationStore) {
    let lot = store
        .create_lot(&lot_of(1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let r = range("2026-03-02T09:00:00Z", "2026-03-02T11:00:00Z");
    let res = store
        .reserve(&request(lot, SpotKind::Regular, r, "GONE1"), None, now0())
        .await;
    let res = res.unwrap_or_else(|e| panic!("{e}")).reservation;
    assert!(store.apply(res.id, Event::Confirm, now0()).await.is_ok());
    assert_eq!(
        store.mark_no_shows(at("2026-03-02T09:29:59Z")).await.ok(),
        Some(0)
    );
    // The check-in window closes at start + 30 minutes, swept or not.
    let late = store
        .apply(res.id, Event::CheckIn, at("2026-03-02T09:30:00Z"))
        .await;
    assert!(
        matches!(
            late,
            Err(StoreError::Transition(
                TransitionError::CheckInClosed { .. }
            ))
        ),
        "{late:?}"
    );
    assert_eq!(
        store.mark_no_shows(at("2026-03-02T09:30:00Z")).await.ok(),
        Some(1)
    );
    let gone = store.get(res.id).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(gone.state, State::NoShow);
    assert_eq!(gone.charged_cents, Some(gone.quote_cents));
    // The rest of the range is free for someone else.
    let rest = range("2026-03-02T09:30:00Z", "2026-03-02T11:00:00Z");
    let taken = store
        .reserve(
            &request(lot, SpotKind::Regular, rest, "NEXT1"),
            None,
            at("2026-03-02T09:30:00Z"),
        )
        .await;
    assert!(taken.is_ok(), "{taken:?}");
}

async fn cancellation_follows_the_policy_and_frees_the_spot(store: &impl ReservationStore) {
    let lot = store
        .create_lot(&lot_of(1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let r = range("2026-03-02T12:00:00Z", "2026-03-02T14:00:00Z");
    // A hold is free to drop.
    let a = store
        .reserve(&request(lot, SpotKind::Regular, r, "CAN1"), None, now0())
        .await;
    let a = a.unwrap_or_else(|e| panic!("{e}")).reservation;
    let dropped = store.apply(a.id, Event::Cancel, now0() + minutes(1)).await;
    assert_eq!(
        dropped
            .ok()
            .and_then(|d| d.charged_cents)
            .map(|m| m.cents()),
        Some(0)
    );
    // The spot is free again; confirm, then cancel 30 minutes before the start: the fee.
    let b = store
        .reserve(
            &request(lot, SpotKind::Regular, r, "CAN2"),
            None,
            now0() + minutes(2),
        )
        .await;
    let b = b.unwrap_or_else(|e| panic!("{e}")).reservation;
    assert!(
        store
            .apply(b.id, Event::Confirm, now0() + minutes(3))
            .await
            .is_ok()
    );
    let late = store
        .apply(b.id, Event::Cancel, at("2026-03-02T11:30:00Z"))
        .await;
    let late = late.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (late.state, late.charged_cents.map(|m| m.cents())),
        (State::Cancelled, Some(500))
    );
    // And free again.
    let c = store
        .reserve(
            &request(lot, SpotKind::Regular, r, "CAN3"),
            None,
            at("2026-03-02T11:30:00Z"),
        )
        .await;
    assert!(c.is_ok(), "{c:?}");
}

async fn illegal_transitions_change_nothing(store: &impl ReservationStore) {
    let lot = store
        .create_lot(&lot_of(1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let res = store
        .reserve(
            &request(lot, SpotKind::Regular, slots(8, 4), "ILL1"),
            None,
            now0(),
        )
        .await;
    let res = res.unwrap_or_else(|e| panic!("{e}")).reservation;
    let before = store
        .reservations(lot)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for event in [Event::CheckIn, Event::CheckOut, Event::MarkNoShow] {
        let refused = store.apply(res.id, event, now0() + minutes(1)).await;
        assert!(
            matches!(refused, Err(StoreError::Transition(TransitionError::Illegal(i))) if i.from == State::Held && i.event == event),
            "{event}: {refused:?}"
        );
    }
    let missing = store.apply(uuid::Uuid::nil(), Event::Confirm, now0()).await;
    assert!(matches!(missing, Err(StoreError::ReservationNotFound(_))));
    assert_eq!(store.reservations(lot).await.ok(), Some(before));
}

// ANCHOR: repeated_confirm_test
/// Events are not idempotent: a confirm sent twice (its first answer lost)
/// is refused the second time, 409 `illegal-transition`, and the
/// reservation is as the first confirm left it.
async fn a_repeated_confirm_is_refused_and_changes_nothing(store: &impl ReservationStore) {
    let lot = store
        .create_lot(&lot_of(1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let held = store
        .reserve(
            &request(lot, SpotKind::Regular, slots(8, 4), "TWICE1"),
            None,
            now0(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .reservation;
    let first = store
        .apply(held.id, Event::Confirm, now0() + minutes(1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let second = store
        .apply(held.id, Event::Confirm, now0() + minutes(2))
        .await;
    assert!(
        matches!(
            second,
            Err(StoreError::Transition(TransitionError::Illegal(i)))
                if i.from == State::Confirmed && i.event == Event::Confirm
        ),
        "{second:?}"
    );
    assert_eq!(store.get(held.id).await.ok(), Some(first));
}
// ANCHOR_END: repeated_confirm_test

// ANCHOR: late_payment_test
/// The payment succeeds, but the confirm arrives after the hold lapsed.
/// Within LATE_CONFIRM_WINDOW it confirms if the spot is still free, swept
/// or not; if someone took the spot it is refused with `SpotTaken` (the app
/// voids the payment); after the window it is `HoldExpired`.
async fn a_payment_after_the_hold_lapsed_confirms_only_a_free_spot(store: &impl ReservationStore) {
    let lot = store
        .create_lot(&lot_of(1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let r = slots(8, 4);
    let hold = |who: &'static str, at| {
        let req = request(lot, SpotKind::Regular, r, who);
        async move { store.reserve(&req, None, at).await }
    };
    // Lapsed and swept, nobody else came: the late confirm keeps the spot.
    let a = hold("LATE1", now0())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .reservation;
    assert_eq!(store.expire_holds(now0() + minutes(10)).await.ok(), Some(1));
    let revived = store
        .apply(a.id, Event::Confirm, now0() + minutes(12))
        .await;
    assert_eq!(revived.map(|c| c.state).ok(), Some(State::Confirmed));
    store
        .apply(a.id, Event::Cancel, now0() + minutes(13))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Lapsed, swept, and the spot taken by someone else: refused, nothing changes.
    let b = hold("LATE2", now0() + minutes(14))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .reservation;
    assert_eq!(store.expire_holds(now0() + minutes(24)).await.ok(), Some(1));
    let c = hold("LATE3", now0() + minutes(25))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .reservation;
    assert_eq!(c.spot, b.spot);
    let before = store.get(b.id).await.unwrap_or_else(|e| panic!("{e}"));
    let refused = store
        .apply(b.id, Event::Confirm, now0() + minutes(26))
        .await;
    assert!(matches!(refused, Err(StoreError::SpotTaken)), "{refused:?}");
    assert_eq!(store.get(b.id).await.ok(), Some(before));
    // After the window: expired for good.
    let d = store
        .apply(
            c.id,
            Event::Confirm,
            now0() + minutes(25) + HOLD_TTL + LATE_CONFIRM_WINDOW,
        )
        .await;
    assert!(
        matches!(
            d,
            Err(StoreError::Transition(TransitionError::HoldExpired { .. }))
        ),
        "{d:?}"
    );
}
// ANCHOR_END: late_payment_test

// ANCHOR: hold_limit_test
/// Holds are free, so one plate may keep only MAX_HOLDS_PER_PLATE of them
/// unconfirmed at once; a lapsed or confirmed hold no longer counts.
async fn a_plate_may_keep_only_a_few_holds(store: &impl ReservationStore) {
    let lot = store
        .create_lot(&lot_of(5))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut held = Vec::new();
    for i in 0..MAX_HOLDS_PER_PLATE {
        let r = request(
            lot,
            SpotKind::Regular,
            slots(8 + 4 * i64::from(i), 4),
            "SQUAT1",
        );
        held.push(
            store
                .reserve(&r, None, now0())
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .reservation,
        );
    }
    let one_more = request(lot, SpotKind::Regular, slots(40, 4), "SQUAT1");
    let refused = store.reserve(&one_more, None, now0()).await;
    assert!(
        matches!(refused, Err(StoreError::TooManyHolds { limit }) if limit == MAX_HOLDS_PER_PLATE),
        "{refused:?}"
    );
    // Another plate is not affected.
    assert!(
        store
            .reserve(
                &request(lot, SpotKind::Regular, slots(40, 4), "OTHER1"),
                None,
                now0()
            )
            .await
            .is_ok()
    );
    // Confirming one frees a place in the limit.
    store
        .apply(held[0].id, Event::Confirm, now0() + minutes(1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        store
            .reserve(&one_more, None, now0() + minutes(1))
            .await
            .is_ok()
    );
    // And lapsed holds do not count, swept or not.
    let later = request(lot, SpotKind::Regular, slots(60, 4), "SQUAT1");
    assert!(
        store
            .reserve(&later, None, now0() + HOLD_TTL + minutes(2))
            .await
            .is_ok()
    );
}
// ANCHOR_END: hold_limit_test

// ANCHOR: history_test
/// The audit trail: the birth and every change, in order, with its time and
/// charge; a refused event writes nothing; the sweeper's changes are there too.
async fn every_change_is_in_the_history(store: &impl ReservationStore) {
    use parking_reservation::domain::Transition;
    let lot = store
        .create_lot(&lot_of(2))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let r = range("2026-03-02T09:00:00Z", "2026-03-02T10:00:00Z");
    let stay = store
        .reserve(&request(lot, SpotKind::Regular, r, "AUDIT1"), None, now0())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .reservation;
    let steps = [
        (Event::Confirm, now0() + minutes(1)),
        (Event::CheckIn, at("2026-03-02T08:50:00Z")),
        (Event::CheckOut, at("2026-03-02T10:05:00Z")),
    ];
    for (event, when) in steps {
        assert!(store.apply(stay.id, event, when).await.is_ok(), "{event}");
    }
    assert!(
        store
            .apply(stay.id, Event::Cancel, at("2026-03-02T10:06:00Z"))
            .await
            .is_err()
    );
    let history = store
        .history(stay.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let seen: Vec<(Event, Option<State>, State, Option<i64>)> = history
        .iter()
        .map(|t: &Transition| (t.event, t.from, t.to, t.charged_cents.map(|m| m.cents())))
        .collect();
    assert_eq!(
        seen,
        vec![
            (Event::Reserve, None, State::Held, None),
            (Event::Confirm, Some(State::Held), State::Confirmed, None),
            (
                Event::CheckIn,
                Some(State::Confirmed),
                State::CheckedIn,
                None
            ),
            (
                Event::CheckOut,
                Some(State::CheckedIn),
                State::CheckedOut,
                Some(563)
            ),
        ]
    );
    let times: Vec<_> = history.iter().map(|t| t.at).collect();
    assert_eq!(
        times,
        vec![
            now0(),
            now0() + minutes(1),
            at("2026-03-02T08:50:00Z"),
            at("2026-03-02T10:05:00Z")
        ]
    );
    // The sweeper's changes are recorded like the drivers'.
    let lapsing = store
        .reserve(&request(lot, SpotKind::Regular, r, "AUDIT2"), None, now0())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .reservation;
    assert_eq!(store.expire_holds(now0() + minutes(10)).await.ok(), Some(1));
    let h = store
        .history(lapsing.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        h.last().map(|t| (t.event, t.from, t.to, t.at)),
        Some((
            Event::Expire,
            Some(State::Held),
            State::Expired,
            now0() + minutes(10)
        ))
    );
    assert!(matches!(
        store.history(uuid::Uuid::nil()).await,
        Err(StoreError::ReservationNotFound(_))
    ));
}
// ANCHOR_END: history_test

// ANCHOR: near_test
/// Lots near a place, nearest first, within the radius; lots without a
/// location are never found.
async fn lots_near_a_place_come_nearest_first(store: &impl ReservationStore) {
    use parking_reservation::domain::Location;
    let place = |lat, lon| Location::new(lat, lon).unwrap_or_else(|e| panic!("{e}"));
    // A station, and lots about 150 m, 1.1 km and 3.3 km north of it, and one off the map.
    let station = place(48.8443, 2.3743);
    let mut ids = Vec::new();
    for (name, north_deg) in [("Far", 0.03), ("Next door", 0.00135), ("Across", 0.01)] {
        let layout = parking_reservation::store::LotLayout {
            location: Some(place(48.8443 + north_deg, 2.3743)),
            ..lot_of(1).renamed(name)
        };
        ids.push(
            store
                .create_lot(&layout)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        );
    }
    store
        .create_lot(&lot_of(1).renamed("Nowhere"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let near = store
        .lots_near(station, 2_000.0)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let found: Vec<(i64, i64)> = near
        .iter()
        .map(|n| (n.lot_id, n.distance_m.round() as i64))
        .collect();
    assert_eq!(found, vec![(ids[1], 150), (ids[2], 1_112)]);
    let wider = store
        .lots_near(station, 5_000.0)
        .await
        .map(|v| v.len())
        .ok();
    assert_eq!(wider, Some(3));
}
// ANCHOR_END: near_test

// ANCHOR: price_change_test
/// A price change between the hold and the check-out: the driver who
/// leaves on time pays the quote; new holds are quoted at the new price.
async fn a_price_change_keeps_the_quotes_given(store: &impl ReservationStore) {
    use parking_reservation::domain::{Tariff, TariffBook};
    let lot = store
        .create_lot(&lot_of(2))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Monday 09:00-10:00 is peak: 4.50 at today's prices.
    let r = range("2026-03-02T09:00:00Z", "2026-03-02T10:00:00Z");
    let held = store
        .reserve(&request(lot, SpotKind::Regular, r, "PRICE1"), None, now0())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .reservation;
    assert_eq!(held.quote_cents.cents(), 450);
    // Prices double.
    let dearer = Tariff {
        hourly_cents: 600,
        ..Tariff::of(SpotKind::Regular)
    };
    store.set_tariffs(TariffBook::CURRENT.with(SpotKind::Regular, dearer));
    for (event, at_) in [
        (Event::Confirm, now0() + minutes(1)),
        (Event::CheckIn, at("2026-03-02T08:50:00Z")),
    ] {
        assert!(store.apply(held.id, event, at_).await.is_ok(), "{event}");
    }
    let out = store
        .apply(held.id, Event::CheckOut, at("2026-03-02T10:00:00Z"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.charged_cents.map(|m| m.cents()), Some(450));
    let next = store
        .reserve(&request(lot, SpotKind::Regular, r, "PRICE2"), None, now0())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .reservation;
    assert_eq!(next.quote_cents.cents(), 900);
}
// ANCHOR_END: price_change_test

async fn bad_requests_change_nothing(store: &impl ReservationStore) {
    let lot = store
        .create_lot(&small_lot())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let before = store
        .reservations(lot)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let unknown = store
        .reserve(
            &request(lot + 1000, SpotKind::Regular, slots(8, 4), "BAD1"),
            None,
            now0(),
        )
        .await;
    assert!(
        matches!(unknown, Err(StoreError::LotNotFound(_))),
        "{unknown:?}"
    );
    let none = store
        .reserve(
            &request(lot, SpotKind::Large, slots(8, 4), "BAD1"),
            None,
            now0(),
        )
        .await;
    assert!(
        matches!(none, Err(StoreError::NoSpotAvailable { .. })),
        "{none:?}"
    );
    assert!(matches!(
        store.availability(lot + 1000, slots(8, 4)).await,
        Err(StoreError::LotNotFound(_))
    ));
    assert!(matches!(
        store.reservations(lot + 1000).await,
        Err(StoreError::LotNotFound(_))
    ));
    assert_eq!(store.reservations(lot).await.ok(), Some(before));
}

async fn same_idempotency_key_same_body_returns_first_result(store: &impl ReservationStore) {
    let lot = store
        .create_lot(&small_lot())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let req = request(lot, SpotKind::Regular, slots(8, 4), "IDEM1");
    let k = key("client-7/order-1");
    let first = store
        .reserve(&req, Some(&k), now0())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!first.replayed);
    // The client changes nothing and retries, later, after confirming elsewhere.
    assert!(
        store
            .apply(first.reservation.id, Event::Confirm, now0() + minutes(1))
            .await
            .is_ok()
    );
    let again = store
        .reserve(&req, Some(&k), now0() + minutes(2))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(again.replayed);
    // The first response, verbatim (still "held": it is a replay, not a read).
    assert_eq!(again.reservation, first.reservation);
    let all = store
        .reservations(lot)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].state, State::Confirmed);
}

async fn same_idempotency_key_other_body_is_refused(store: &impl ReservationStore) {
    let lot = store
        .create_lot(&small_lot())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let k = key("client-7/order-2");
    let req = request(lot, SpotKind::Regular, slots(8, 4), "IDEM2");
    assert!(store.reserve(&req, Some(&k), now0()).await.is_ok());
    let before = store
        .reservations(lot)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for other in [
        request(lot, SpotKind::Regular, slots(8, 5), "IDEM2"),
        request(lot, SpotKind::Ev, slots(8, 4), "IDEM2"),
        request(lot, SpotKind::Regular, slots(8, 4), "IDEM3"),
    ] {
        let refused = store.reserve(&other, Some(&k), now0()).await;
        assert!(
            matches!(refused, Err(StoreError::IdempotencyKeyReused(ref s)) if s == "client-7/order-2"),
            "{refused:?}"
        );
    }
    // A normalised plate is the same request: "idem 2" is "IDEM2".
    let same = store
        .reserve(
            &request(lot, SpotKind::Regular, slots(8, 4), "idem 2"),
            Some(&k),
            now0(),
        )
        .await;
    assert!(same.is_ok_and(|r| r.replayed));
    assert_eq!(store.reservations(lot).await.ok(), Some(before));
}

async fn failed_reserve_does_not_consume_the_key(store: &impl ReservationStore) {
    let lot = store
        .create_lot(&lot_of(1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let blocker = store
        .reserve(
            &request(lot, SpotKind::Regular, slots(8, 4), "BLOCK1"),
            None,
            now0(),
        )
        .await;
    let blocker = blocker.unwrap_or_else(|e| panic!("{e}")).reservation;
    let k = key("retry-after-409");
    let req = request(lot, SpotKind::Regular, slots(8, 4), "WAIT1");
    let refused = store.reserve(&req, Some(&k), now0()).await;
    assert!(matches!(refused, Err(StoreError::NoSpotAvailable { .. })));
    // The refusal was not remembered: once the spot frees, the same key works.
    assert!(
        store
            .apply(blocker.id, Event::Cancel, now0() + minutes(1))
            .await
            .is_ok()
    );
    let later = store.reserve(&req, Some(&k), now0() + minutes(2)).await;
    assert!(later.as_ref().is_ok_and(|r| !r.replayed), "{later:?}");
}

// ANCHOR: two_holds
async fn retry_without_idempotency_key_creates_two_holds(store: &impl ReservationStore) {
    // The failure mode the key exists for: the client never saw the first
    // answer, retried, and now holds two spots.
    let lot = store
        .create_lot(&small_lot())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let req = request(lot, SpotKind::Regular, slots(8, 4), "TWICE1");
    let a = store
        .reserve(&req, None, now0())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let b = store
        .reserve(&req, None, now0())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(a.reservation.id, b.reservation.id);
    assert_ne!(a.reservation.spot, b.reservation.spot);
    assert_eq!(store.reservations(lot).await.map(|v| v.len()).ok(), Some(2));
}
// ANCHOR_END: two_holds

async fn availability_counts_free_spots(store: &impl ReservationStore) {
    let lot = store
        .create_lot(&small_lot())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        store
            .reserve(
                &request(lot, SpotKind::Regular, slots(8, 4), "AV1"),
                None,
                now0()
            )
            .await
            .is_ok()
    );
    let cancelled = store
        .reserve(
            &request(lot, SpotKind::Regular, slots(8, 4), "AV2"),
            None,
            now0(),
        )
        .await;
    let cancelled = cancelled.unwrap_or_else(|e| panic!("{e}")).reservation;
    assert!(
        store
            .apply(cancelled.id, Event::Cancel, now0())
            .await
            .is_ok()
    );
    let a = store
        .availability(lot, slots(10, 1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let summary: Vec<(SpotKind, i64, i64)> = a.iter().map(|k| (k.kind, k.total, k.free)).collect();
    assert_eq!(
        summary,
        vec![(SpotKind::Regular, 4, 3), (SpotKind::Ev, 1, 1)]
    );
    let later = store
        .availability(lot, slots(12, 4))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(later.iter().map(|k| k.free).collect::<Vec<_>>(), vec![4, 1]);
}

async fn invalid_lots_are_refused(store: &impl ReservationStore) {
    let mut dup = small_lot();
    dup.levels[1].level = 0;
    assert!(matches!(
        store.create_lot(&dup).await,
        Err(StoreError::InvalidLayout(_))
    ));
    let mut empty = small_lot();
    empty.name.clear();
    assert!(matches!(
        store.create_lot(&empty).await,
        Err(StoreError::InvalidLayout(_))
    ));
    assert!(store.create_lot(&small_lot()).await.is_ok());
    assert!(matches!(
        store.create_lot(&small_lot()).await,
        Err(StoreError::LotNameTaken(_))
    ));
}

trait Renamed {
    fn renamed(self, name: &str) -> Self;
}

impl Renamed for parking_reservation::store::LotLayout {
    fn renamed(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }
}
