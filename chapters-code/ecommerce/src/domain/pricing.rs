//! Tax and discounts, computed in one place.
//!
//! Every amount the shopper sees (the cart page, the checkout review, the
//! order, the charge) comes from [`quote`], so they cannot disagree. Prices
//! are exclusive of tax. The rules, in order:
//!
//! 1. lines are sorted by SKU (a SKU appears once), so the result does not
//!    depend on the order the client sent them in;
//! 2. each line's subtotal is unit price x quantity;
//! 3. the promotion gives one order-level discount (a percentage, rounded
//!    half up, or a fixed amount, at most the subtotal) which is spread over
//!    the lines in proportion to their subtotals by the largest-remainder
//!    method, so the line discounts add up to it exactly;
//! 4. tax is computed per line on the discounted amount, at the rate of the
//!    line's tax class, rounded half up;
//! 5. total = subtotal - discount + tax, per line and for the order.

use serde::{Deserialize, Serialize};

use super::money::{Currency, Money, MoneyError};
use super::product::{Quantity, Sku, TaxClass};

/// 100% in basis points.
pub const BP_100: u32 = 10_000;

// ANCHOR: rates
/// Tax rates per class, in basis points (2000 = 20%).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxRates {
    /// The standard rate.
    pub standard_bp: u32,
    /// The reduced rate.
    pub reduced_bp: u32,
}

/// The rates the shop charges (a single jurisdiction; see the chapter's scope).
pub const TAX_RATES: TaxRates = TaxRates {
    standard_bp: 2_000,
    reduced_bp: 550,
};

impl TaxRates {
    /// The rate of `class`.
    pub fn rate_bp(&self, class: TaxClass) -> u32 {
        match class {
            TaxClass::Standard => self.standard_bp,
            TaxClass::Reduced => self.reduced_bp,
            TaxClass::Exempt => 0,
        }
    }
}
// ANCHOR_END: rates

/// An order-level promotion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Promotion {
    /// A percentage off the subtotal, in basis points (1000 = 10%).
    PercentOff {
        /// The percentage, at most 10,000.
        bp: u32,
    },
    /// A fixed amount off the subtotal (never more than the subtotal).
    AmountOff {
        /// The amount.
        amount: Money,
    },
}

/// One line to price: the product's current price and tax class, and how many.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PricedLine {
    /// The product.
    pub sku: Sku,
    /// Its unit price now.
    pub unit: Money,
    /// How many.
    pub quantity: Quantity,
    /// Its tax class.
    pub tax_class: TaxClass,
}

/// One line of a [`Quote`]; amounts in minor units of the quote's currency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuoteLine {
    /// The product.
    pub sku: Sku,
    /// How many.
    pub quantity: u32,
    /// Unit price before tax.
    pub unit_minor: i64,
    /// unit x quantity.
    pub subtotal_minor: i64,
    /// This line's share of the order's discount.
    pub discount_minor: i64,
    /// Tax on (subtotal - discount).
    pub tax_minor: i64,
    /// subtotal - discount + tax.
    pub total_minor: i64,
}

// ANCHOR: quote_type
/// What an order costs: the lines and the sums, all from [`quote`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    /// The one currency of every amount.
    pub currency: Currency,
    /// Sorted by SKU.
    pub lines: Vec<QuoteLine>,
    /// Sum of line subtotals.
    pub subtotal_minor: i64,
    /// Sum of line discounts.
    pub discount_minor: i64,
    /// Sum of line taxes.
    pub tax_minor: i64,
    /// What the shopper pays.
    pub total_minor: i64,
}
// ANCHOR_END: quote_type

impl Quote {
    /// The total as money.
    pub fn total(&self) -> Money {
        // Built from non-negative parts by `quote`.
        Money::new(self.total_minor, self.currency).unwrap_or(Money::zero(self.currency))
    }
}

/// Why a quote could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    /// No lines.
    #[error("an order needs at least one line")]
    Empty,
    /// A SKU appears twice.
    #[error("product {0} appears in two lines")]
    DuplicateLine(Sku),
    /// Lines (or the promotion) in different currencies.
    #[error("currency mismatch: the order is in {expected}, but {what} is in {found}")]
    CurrencyMismatch {
        /// The currency of the first line.
        expected: Currency,
        /// The other currency.
        found: Currency,
        /// What carried it.
        what: String,
    },
    /// A percentage over 100.
    #[error("a discount cannot exceed 100%")]
    DiscountOver100,
    /// An amount does not fit.
    #[error("amount too large")]
    Overflow,
}

impl From<MoneyError> for PricingError {
    fn from(_: MoneyError) -> Self {
        // Lines are checked for one currency first, and amounts are never
        // negative, so overflow is the only arithmetic failure left.
        PricingError::Overflow
    }
}

/// `round(n / d)`, halves up, for `n >= 0`, `d > 0`.
fn div_round_half_up(n: i128, d: i128) -> i128 {
    (2 * n + d) / (2 * d)
}

// ANCHOR: quote
/// Prices `lines` with `promotion` and `rates`: the only place tax and discounts are computed.
pub fn quote(
    lines: &[PricedLine],
    promotion: Option<&Promotion>,
    rates: &TaxRates,
) -> Result<Quote, PricingError> {
    let first = lines.first().ok_or(PricingError::Empty)?;
    let currency = first.unit.currency();
    let mut sorted: Vec<&PricedLine> = lines.iter().collect();
    sorted.sort_by(|a, b| a.sku.cmp(&b.sku));
    for pair in sorted.windows(2) {
        if pair[0].sku == pair[1].sku {
            return Err(PricingError::DuplicateLine(pair[0].sku.clone()));
        }
    }
    let mut subtotals = Vec::with_capacity(sorted.len());
    for line in &sorted {
        if line.unit.currency() != currency {
            return Err(PricingError::CurrencyMismatch {
                expected: currency,
                found: line.unit.currency(),
                what: format!("product {}", line.sku),
            });
        }
        subtotals.push(line.unit.times(line.quantity.get())?.minor());
    }
    let subtotal: i64 = subtotals
        .iter()
        .try_fold(0i64, |acc, s| acc.checked_add(*s))
        .ok_or(PricingError::Overflow)?;

    // Step 3: one discount for the order...
    let discount = match promotion {
        None => 0,
        Some(Promotion::PercentOff { bp }) => {
            if *bp > BP_100 {
                return Err(PricingError::DiscountOver100);
            }
            div_round_half_up(i128::from(subtotal) * i128::from(*bp), i128::from(BP_100)) as i64
        }
        Some(Promotion::AmountOff { amount }) => {
            if amount.currency() != currency {
                return Err(PricingError::CurrencyMismatch {
                    expected: currency,
                    found: amount.currency(),
                    what: "the promotion".to_string(),
                });
            }
            amount.minor().min(subtotal)
        }
    };
    // ...spread over the lines by largest remainder.
    let shares = allocate(discount, &subtotals);

    let mut out = Vec::with_capacity(sorted.len());
    let (mut tax_sum, mut total_sum) = (0i64, 0i64);
    for ((line, sub), disc) in sorted.iter().zip(&subtotals).zip(&shares) {
        let taxable = sub - disc;
        let rate = i128::from(rates.rate_bp(line.tax_class));
        let tax = div_round_half_up(i128::from(taxable) * rate, i128::from(BP_100)) as i64;
        let total = taxable.checked_add(tax).ok_or(PricingError::Overflow)?;
        tax_sum = tax_sum.checked_add(tax).ok_or(PricingError::Overflow)?;
        total_sum = total_sum.checked_add(total).ok_or(PricingError::Overflow)?;
        out.push(QuoteLine {
            sku: line.sku.clone(),
            quantity: line.quantity.get(),
            unit_minor: line.unit.minor(),
            subtotal_minor: *sub,
            discount_minor: *disc,
            tax_minor: tax,
            total_minor: total,
        });
    }
    Ok(Quote {
        currency,
        lines: out,
        subtotal_minor: subtotal,
        discount_minor: discount,
        tax_minor: tax_sum,
        total_minor: total_sum,
    })
}

/// Splits `amount` (at most the sum of `weights`) in proportion to
/// `weights`: each share is the floor of its exact share, and the units left
/// over go to the largest remainders (the earlier line on a tie).
pub fn allocate(amount: i64, weights: &[i64]) -> Vec<i64> {
    let total: i128 = weights.iter().map(|w| i128::from(*w)).sum();
    if total == 0 || amount == 0 {
        return vec![0; weights.len()];
    }
    let mut shares = Vec::with_capacity(weights.len());
    let mut remainders = Vec::with_capacity(weights.len());
    for (i, w) in weights.iter().enumerate() {
        let exact = i128::from(amount) * i128::from(*w);
        shares.push((exact / total) as i64);
        remainders.push((exact % total, i));
    }
    let mut left = amount - shares.iter().sum::<i64>();
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, i) in remainders {
        if left == 0 {
            break;
        }
        shares[i] += 1;
        left -= 1;
    }
    shares
}
// ANCHOR_END: quote
