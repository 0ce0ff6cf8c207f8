//! Properties of the pure pricing functions.

mod common;

use chrono::{DateTime, TimeDelta, Utc};
use common::now0;
use parking_reservation::domain::{
    Event, MAX_RANGE_DAYS, Money, Reservation, SLOT, SpotKind, SpotRef, State, TARIFFS, Tariff,
    TimeRange, TransitionError, cancellation_charge, checkout_charge, no_show_charge, price,
};
use proptest::prelude::*;

const MAX_SLOTS: i32 = (MAX_RANGE_DAYS * 24 * 4) as i32;

fn tariff() -> impl Strategy<Value = Tariff> {
    prop_oneof![
        prop::sample::select(TARIFFS.iter().map(|(_, t)| *t).collect::<Vec<_>>()),
        // Arbitrary tariffs too: the properties must not depend on our numbers.
        (
            0u32..100_000,
            0u32..1_000_000,
            100u32..400,
            0u32..24,
            0u32..=24,
            0u32..10_000
        )
            .prop_map(|(hourly, cap, peak, from, to, fee)| Tariff {
                hourly_cents: hourly,
                daily_cap_cents: cap,
                peak_percent: peak,
                peak_hours: (from.min(to), from.max(to)),
                cancellation_fee_cents: fee,
            }),
    ]
}

/// A start somewhere in a year of slots, on a boundary.
fn start() -> impl Strategy<Value = DateTime<Utc>> {
    (0i32..35_040).prop_map(|slot| now0() + SLOT * slot)
}

fn range(start: DateTime<Utc>, slots: i32) -> TimeRange {
    TimeRange::new(start, start + SLOT * slots).unwrap_or_else(|e| panic!("{e}"))
}

// ANCHOR: pricing_properties
proptest! {
    #[test]
    fn price_is_never_negative(t in tariff(), s in start(), n in 1..=MAX_SLOTS) {
        prop_assert!(price(&range(s, n), &t).cents() >= 0);
    }

    #[test]
    fn price_is_monotone_in_duration(t in tariff(), s in start(), n in 1..MAX_SLOTS, more in 1..=96i32) {
        let longer = (n + more).min(MAX_SLOTS);
        prop_assert!(price(&range(s, n), &t) <= price(&range(s, longer), &t));
    }

    #[test]
    fn daily_cap_is_respected(t in tariff(), s in start(), n in 1..=MAX_SLOTS) {
        let r = range(s, n);
        // Each started 24-hour period costs at most the cap.
        let periods = (i64::from(n) + 95) / 96;
        prop_assert!(price(&r, &t).cents() <= periods * i64::from(t.daily_cap_cents));
    }

    #[test]
    fn off_peak_hours_cost_the_hourly_rate(s in start(), hours in 1i32..=6) {
        // With no peak at all, n hours cost n times the rate, capped.
        let t = Tariff { peak_hours: (0, 0), ..Tariff::of(SpotKind::Regular) };
        let expected = (i64::from(hours) * i64::from(t.hourly_cents)).min(i64::from(t.daily_cap_cents));
        prop_assert_eq!(price(&range(s, hours * 4), &t).cents(), expected);
    }

    #[test]
    fn cancellation_never_costs_more_than_the_quote(
        t in tariff(), s in start(), n in 1..=MAX_SLOTS, before_min in -600i64..6_000, confirmed in any::<bool>()
    ) {
        let r = range(s, n);
        let quote = price(&r, &t);
        let state = if confirmed { State::Confirmed } else { State::Held };
        let at = r.start() - TimeDelta::minutes(before_min);
        let fee = cancellation_charge(state, &r, quote, at, &t);
        prop_assert!(fee >= Money::ZERO && fee <= quote);
        if !confirmed {
            prop_assert_eq!(fee, Money::ZERO);
        }
        // From the start on, cancelling costs what not coming costs.
        if confirmed && at >= r.start() {
            prop_assert_eq!(fee, no_show_charge(quote));
        }
    }

    #[test]
    fn check_out_never_charges_less_than_the_quote(
        quoted in tariff(), today in tariff(), s in start(), n in 1..=MAX_SLOTS, stay_min in 0i64..20_000
    ) {
        let r = range(s, n);
        let quote = price(&r, &quoted);
        let left = r.start() + TimeDelta::minutes(stay_min);
        let charged = checkout_charge(quote, &r, left, &today);
        prop_assert!(charged >= quote);
        // Leaving by the end costs exactly the quote, whatever today's tariff.
        if left <= r.end() {
            prop_assert_eq!(charged, quote);
        }
    }
}
// ANCHOR_END: pricing_properties

// ANCHOR: money_bugs
fn regular_hold(r: TimeRange, at: DateTime<Utc>, tariff: &Tariff) -> Reservation {
    let req = common::request(1, SpotKind::Regular, r, "MONEY1");
    let spot = SpotRef {
        id: 1,
        level: 0,
        number: 1,
    };
    Reservation::hold(uuid::Uuid::nil(), spot, &req, at, tariff)
}

/// A quote is the price: a tariff that changed between the hold and the
/// check-out changes nothing for a driver who leaves on time, and prices
/// only the overstay of one who leaves late.
#[test]
fn check_out_charges_the_quote_kept_at_the_hold() {
    // Monday 09:00-10:00 (peak), held at 08:00 under an older, cheaper tariff.
    let r = common::range("2026-03-02T09:00:00Z", "2026-03-02T10:00:00Z");
    let older = Tariff {
        hourly_cents: 200,
        ..Tariff::of(SpotKind::Regular)
    };
    let today = Tariff::of(SpotKind::Regular);
    let held = regular_hold(r, now0(), &older);
    assert_eq!(held.quote_cents.cents(), 300);
    let checked_in = held
        .apply(Event::Confirm, now0(), &today)
        .and_then(|c| c.apply(Event::CheckIn, common::at("2026-03-02T08:50:00Z"), &today))
        .unwrap_or_else(|e| panic!("{e}"));
    let out = |s: &str| {
        checked_in
            .apply(Event::CheckOut, common::at(s), &today)
            .map(|c| c.charged_cents.map(Money::cents))
    };
    assert_eq!(out("2026-03-02T09:55:00Z"), Ok(Some(300)));
    assert_eq!(out("2026-03-02T10:00:00Z"), Ok(Some(300)));
    // Five minutes late: one overstay slot, 10:00-10:15 at today's peak rate
    // (4.50 an hour, so 1.125, rounded up once): 3.00 + 1.13.
    assert_eq!(out("2026-03-02T10:05:00Z"), Ok(Some(413)));
}

/// Cancelling is never cheaper than not showing up: from the start on, it
/// costs the full quote, and once the check-in window has closed the
/// reservation is a no-show and cannot be cancelled at all.
#[test]
fn cancelling_after_the_start_costs_what_a_no_show_costs() {
    let r = common::range("2026-03-02T09:00:00Z", "2026-03-02T11:00:00Z");
    let today = Tariff::of(SpotKind::Regular);
    let confirmed = regular_hold(r, now0(), &today)
        .apply(Event::Confirm, now0(), &today)
        .unwrap_or_else(|e| panic!("{e}"));
    let quote = confirmed.quote_cents;
    let fee = Money::from(today.cancellation_fee_cents).min(quote);
    let cancel_at = |s: &str| {
        confirmed
            .apply(Event::Cancel, common::at(s), &today)
            .map(|c| c.charged_cents)
    };
    assert_eq!(cancel_at("2026-03-02T08:00:00Z"), Ok(Some(Money::ZERO)));
    assert_eq!(cancel_at("2026-03-02T08:00:01Z"), Ok(Some(fee)));
    assert_eq!(cancel_at("2026-03-02T08:59:59Z"), Ok(Some(fee)));
    assert_eq!(cancel_at("2026-03-02T09:00:00Z"), Ok(Some(quote)));
    assert_eq!(cancel_at("2026-03-02T09:29:59Z"), Ok(Some(quote)));
    assert!(
        matches!(
            cancel_at("2026-03-02T09:30:00Z"),
            Err(TransitionError::CheckInClosed { .. })
        ),
        "{:?}",
        cancel_at("2026-03-02T09:30:00Z")
    );
}
// ANCHOR_END: money_bugs

/// Sums of money saturate at `i64::MAX` cents instead of wrapping or
/// panicking, and the most a stay can be charged is far below that.
#[test]
fn sums_saturate_and_the_largest_charge_is_far_from_it() {
    let (Ok(max), Ok(one)) = (Money::from_cents(i64::MAX), Money::from_cents(1)) else {
        panic!("test amounts")
    };
    assert_eq!(max.plus(one), max);
    assert_eq!(one.plus(max), max);
    let Ok(longest) = TimeRange::new(now0(), now0() + SLOT * MAX_SLOTS) else {
        panic!("the longest stay")
    };
    let dearest = Tariff {
        hourly_cents: u32::MAX,
        daily_cap_cents: u32::MAX,
        peak_percent: 399,
        peak_hours: (0, 24),
        cancellation_fee_cents: u32::MAX,
    };
    let quote = price(&longest, &dearest);
    assert!(quote.cents() < i64::MAX / 1_000, "{quote:?}");
}
