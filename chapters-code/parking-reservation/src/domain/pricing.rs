//! What a stay costs: a pure function of the range and the tariff, in integer cents.

use chrono::{DateTime, Datelike, TimeDelta, Timelike, Utc, Weekday};

use super::kind::SpotKind;
use super::money::Money;
use super::policy::{FREE_CANCELLATION_NOTICE, NO_SHOW_GRACE};
use super::range::{SLOT, TimeRange, ceil_to_slot};
use super::state::State;

// ANCHOR: tariff
/// The prices of one kind of spot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tariff {
    /// Price of one hour off-peak, cents.
    pub hourly_cents: u32,
    /// No 24-hour period (counted from the start of the stay) costs more than this, cents.
    pub daily_cap_cents: u32,
    /// Peak slots cost this percentage of the hourly rate (at least 100).
    pub peak_percent: u32,
    /// Peak hours on weekdays, `[start, end)`, hours of the day in UTC.
    pub peak_hours: (u32, u32),
    /// Charged for a late cancellation, cents (never more than the quote).
    pub cancellation_fee_cents: u32,
}

/// The tariff of each kind. Lots run on UTC in this chapter; a real lot
/// would take its peak hours in its own time zone.
pub const TARIFFS: [(SpotKind, Tariff); 5] = [
    (SpotKind::Compact, Tariff::new(250, 1_800)),
    (SpotKind::Regular, Tariff::new(300, 2_400)),
    (SpotKind::Large, Tariff::new(400, 3_200)),
    (SpotKind::Ev, Tariff::new(450, 3_600)),
    (SpotKind::Accessible, Tariff::new(300, 2_400)),
];

/// The tariff of every kind that a running service charges: [`TARIFFS`]
/// unless a price change replaced them. Quotes already given are kept
/// (they are stored with the reservation); the book only prices new holds,
/// overstays and cancellation fees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TariffBook([(SpotKind, Tariff); 5]);

impl TariffBook {
    /// The tariffs of this build.
    pub const CURRENT: TariffBook = TariffBook(TARIFFS);

    /// The tariff of `kind`.
    pub fn of(&self, kind: SpotKind) -> Tariff {
        self.0
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(self.0[1].1, |(_, t)| *t)
    }

    /// The same book with `kind` charged at `tariff`.
    pub fn with(mut self, kind: SpotKind, tariff: Tariff) -> Self {
        for (k, t) in &mut self.0 {
            if *k == kind {
                *t = tariff;
            }
        }
        self
    }
}

impl Default for TariffBook {
    fn default() -> Self {
        Self::CURRENT
    }
}
// ANCHOR_END: tariff

impl Tariff {
    /// A tariff with the chapter's common peak rule (150% from 08:00 to 18:00
    /// on weekdays) and a 5.00 late-cancellation fee.
    pub const fn new(hourly_cents: u32, daily_cap_cents: u32) -> Self {
        Self {
            hourly_cents,
            daily_cap_cents,
            peak_percent: 150,
            peak_hours: (8, 18),
            cancellation_fee_cents: 500,
        }
    }

    /// The tariff of `kind` in [`TARIFFS`], the prices of this build.
    pub fn of(kind: SpotKind) -> Tariff {
        TariffBook::CURRENT.of(kind)
    }

    /// True when the slot starting at `t` is charged at the peak rate.
    pub fn is_peak(&self, t: DateTime<Utc>) -> bool {
        let weekday = !matches!(t.weekday(), Weekday::Sat | Weekday::Sun);
        weekday && (self.peak_hours.0..self.peak_hours.1).contains(&t.hour())
    }
}

// ANCHOR: price
/// The price of a stay over `range`.
///
/// Each 15-minute slot costs a quarter of the hourly rate, times the peak
/// percentage when it starts in peak hours. Slots are summed per 24-hour
/// period from the start of the stay, each period rounded up to a cent once
/// and capped at the daily cap. Summing in 1/400-cent units first and
/// rounding once per period keeps a day of quarter-hours from gaining a
/// cent of rounding per slot.
pub fn price(range: &TimeRange, tariff: &Tariff) -> Money {
    price_between(range.start(), range.end(), tariff)
}

fn price_between(start: DateTime<Utc>, end: DateTime<Utc>, tariff: &Tariff) -> Money {
    const UNITS_PER_CENT: u64 = 4 * 100; // 4 slots an hour, percent
    let mut total_cents: u64 = 0;
    let mut period_start = start;
    while period_start < end {
        let period_end = (period_start + TimeDelta::days(1)).min(end);
        let mut units: u64 = 0;
        let mut slot = period_start;
        while slot < period_end {
            let percent = if tariff.is_peak(slot) {
                tariff.peak_percent.max(100)
            } else {
                100
            };
            units += u64::from(tariff.hourly_cents) * u64::from(percent);
            slot += SLOT;
        }
        total_cents += units
            .div_ceil(UNITS_PER_CENT)
            .min(u64::from(tariff.daily_cap_cents));
        period_start = period_end;
    }
    // A stay is at most a few days of capped periods; this cannot saturate.
    Money::from_cents(i64::try_from(total_cents).unwrap_or(i64::MAX)).unwrap_or_default()
}
// ANCHOR_END: price

// ANCHOR: charges
/// What cancelling costs, at `at`, a reservation in `state` quoted `quote`.
///
/// Holds are free to drop (nothing was promised). A confirmed reservation
/// is free to cancel up to [`FREE_CANCELLATION_NOTICE`] before its start;
/// later, the fee applies, never more than the quote. From the start on the
/// spot has been kept for the driver, so cancelling costs the full quote,
/// exactly what not showing up costs ([`no_show_charge`]); once the
/// check-in window has closed, `Reservation::apply` refuses the cancel:
/// the reservation is a no-show.
pub fn cancellation_charge(
    state: State,
    range: &TimeRange,
    quote: Money,
    at: DateTime<Utc>,
    tariff: &Tariff,
) -> Money {
    match state {
        State::Confirmed if at >= range.start() => no_show_charge(quote),
        State::Confirmed if at + FREE_CANCELLATION_NOTICE > range.start() => {
            Money::from(tariff.cancellation_fee_cents).min(quote)
        }
        _ => Money::ZERO,
    }
}

/// The last instant a confirmed reservation can be cancelled or checked
/// into; from then on it is a no-show.
pub fn check_in_closes(range: &TimeRange) -> DateTime<Utc> {
    range.start() + NO_SHOW_GRACE
}

/// What a driver pays at check-out: the quote given at the hold, whatever
/// the tariff is today, plus any overstay. An overstay runs from the
/// reserved end to the next slot boundary after the car left, and is priced
/// as a stay of its own at `today`'s tariff (the tariff in force at
/// check-out). Leaving early refunds nothing.
pub fn checkout_charge(
    quote: Money,
    range: &TimeRange,
    checked_out_at: DateTime<Utc>,
    today: &Tariff,
) -> Money {
    let left = ceil_to_slot(checked_out_at);
    if left <= range.end() {
        return quote;
    }
    quote.plus(price_between(range.end(), left, today))
}

/// What a no-show pays: the full quote, since the spot was kept for them.
pub fn no_show_charge(quote: Money) -> Money {
    quote
}
// ANCHOR_END: charges

#[cfg(test)]
mod tests {
    use super::*;

    fn range(start: &str, end: &str) -> TimeRange {
        TimeRange::parse(start, end).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn worked_examples() {
        let regular = Tariff::of(SpotKind::Regular);
        // Monday 2026-03-02. One off-peak hour: 3.00.
        let off_peak = range("2026-03-02T06:00:00Z", "2026-03-02T07:00:00Z");
        assert_eq!(price(&off_peak, &regular).cents(), 300);
        // One peak hour: 4.50.
        let peak = range("2026-03-02T09:00:00Z", "2026-03-02T10:00:00Z");
        assert_eq!(price(&peak, &regular).cents(), 450);
        // 07:45 to 08:15 straddles the peak start: 0.75 + 1.125 = 1.875, rounded up once.
        let straddle = range("2026-03-02T07:45:00Z", "2026-03-02T08:15:00Z");
        assert_eq!(price(&straddle, &regular).cents(), 188);
        // A whole weekday would be 14 x 3.00 + 10 x 4.50 = 87.00; the cap is 24.00.
        let day = range("2026-03-02T00:00:00Z", "2026-03-03T00:00:00Z");
        assert_eq!(price(&day, &regular).cents(), 2_400);
        // Saturday has no peak.
        let saturday = range("2026-03-07T09:00:00Z", "2026-03-07T10:00:00Z");
        assert_eq!(price(&saturday, &regular).cents(), 300);
    }

    #[test]
    fn cancellation_follows_the_policy() {
        let t = Tariff::of(SpotKind::Regular);
        let r = range("2026-03-02T12:00:00Z", "2026-03-02T14:00:00Z");
        let quote = price(&r, &t);
        let at = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .map(|d| d.to_utc())
                .unwrap_or_default()
        };
        let early = at("2026-03-02T11:00:00Z");
        let late = at("2026-03-02T11:00:01Z");
        assert_eq!(
            cancellation_charge(State::Held, &r, quote, late, &t),
            Money::ZERO
        );
        assert_eq!(
            cancellation_charge(State::Confirmed, &r, quote, early, &t),
            Money::ZERO
        );
        assert_eq!(
            cancellation_charge(State::Confirmed, &r, quote, late, &t).cents(),
            500
        );
        let cheap = Money::from_cents(120).unwrap_or_default();
        assert_eq!(
            cancellation_charge(State::Confirmed, &r, cheap, late, &t),
            cheap
        );
    }

    #[test]
    fn leaving_late_extends_the_charge_to_the_next_slot() {
        let t = Tariff::of(SpotKind::Regular);
        let r = range("2026-03-07T10:00:00Z", "2026-03-07T11:00:00Z");
        let at = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .map(|d| d.to_utc())
                .unwrap_or_default()
        };
        let quote = price(&r, &t);
        assert_eq!(
            checkout_charge(quote, &r, at("2026-03-07T10:20:00Z"), &t).cents(),
            300
        );
        assert_eq!(
            checkout_charge(quote, &r, at("2026-03-07T11:00:00Z"), &t).cents(),
            300
        );
        assert_eq!(
            checkout_charge(quote, &r, at("2026-03-07T11:01:00Z"), &t).cents(),
            375
        );
    }
}
