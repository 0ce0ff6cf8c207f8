//! Properties of the pure pricing functions.

mod common;

use chrono::{DateTime, TimeDelta, Utc};
use common::now0;
use parking_reservation::domain::{
    MAX_RANGE_DAYS, Money, SLOT, SpotKind, State, TARIFFS, Tariff, TimeRange, cancellation_charge,
    checkout_charge, price,
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
    }

    #[test]
    fn check_out_never_charges_less_than_the_quote(t in tariff(), s in start(), n in 1..=MAX_SLOTS, stay_min in 0i64..20_000) {
        let r = range(s, n);
        let charged = checkout_charge(&r, r.start() + TimeDelta::minutes(stay_min), &t);
        prop_assert!(charged >= price(&r, &t));
    }
}
// ANCHOR_END: pricing_properties
