//! Properties of `quote`, the one place tax and discounts are computed.

use ecommerce::domain::pricing::{BP_100, allocate};
use ecommerce::domain::{
    Currency, Money, PricedLine, PricingError, Promotion, Quantity, Sku, TAX_RATES, TaxClass, quote,
};
use proptest::prelude::*;

fn line(sku: &str, unit: i64, qty: i64, class: TaxClass) -> PricedLine {
    PricedLine {
        sku: Sku::parse(sku).expect("test SKU"),
        unit: Money::new(unit, Currency::Eur).expect("test price"),
        quantity: Quantity::new(qty).expect("test quantity"),
        tax_class: class,
    }
}

fn arb_class() -> impl Strategy<Value = TaxClass> {
    prop_oneof![
        Just(TaxClass::Standard),
        Just(TaxClass::Reduced),
        Just(TaxClass::Exempt)
    ]
}

/// 1 to 6 lines with distinct SKUs, prices up to 10,000.00.
fn arb_lines() -> impl Strategy<Value = Vec<PricedLine>> {
    proptest::collection::btree_map(0u32..50, (0i64..1_000_000, 1i64..=99, arb_class()), 1..6)
        .prop_map(|m| {
            m.into_iter()
                .map(|(k, (unit, qty, class))| line(&format!("SKU-{k}"), unit, qty, class))
                .collect()
        })
}

fn arb_promotion() -> impl Strategy<Value = Option<Promotion>> {
    prop_oneof![
        Just(None),
        (0u32..=BP_100).prop_map(|bp| Some(Promotion::PercentOff { bp })),
        (0i64..50_000_000).prop_map(|a| Some(Promotion::AmountOff {
            amount: Money::new(a, Currency::Eur).expect("non-negative")
        })),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn totals_add_up_per_line_and_per_order(lines in arb_lines(), promo in arb_promotion()) {
        let q = quote(&lines, promo.as_ref(), &TAX_RATES).expect("valid lines");
        let sum = |f: fn(&ecommerce::domain::QuoteLine) -> i64| q.lines.iter().map(f).sum::<i64>();
        prop_assert_eq!(sum(|l| l.subtotal_minor), q.subtotal_minor);
        prop_assert_eq!(sum(|l| l.discount_minor), q.discount_minor);
        prop_assert_eq!(sum(|l| l.tax_minor), q.tax_minor);
        prop_assert_eq!(sum(|l| l.total_minor), q.total_minor);
        prop_assert_eq!(q.total_minor, q.subtotal_minor - q.discount_minor + q.tax_minor);
        for l in &q.lines {
            prop_assert_eq!(l.subtotal_minor, l.unit_minor * i64::from(l.quantity));
            prop_assert_eq!(l.total_minor, l.subtotal_minor - l.discount_minor + l.tax_minor);
        }
    }

    #[test]
    fn a_discount_never_exceeds_what_it_discounts(lines in arb_lines(), promo in arb_promotion()) {
        let q = quote(&lines, promo.as_ref(), &TAX_RATES).expect("valid lines");
        prop_assert!(q.discount_minor >= 0 && q.discount_minor <= q.subtotal_minor);
        for l in &q.lines {
            prop_assert!(l.discount_minor >= 0 && l.discount_minor <= l.subtotal_minor);
            prop_assert!(l.tax_minor >= 0 && l.total_minor >= 0);
        }
        if let Some(Promotion::PercentOff { bp }) = promo {
            // Within half a minor unit of the exact percentage.
            let exact2 = 2 * i128::from(q.subtotal_minor) * i128::from(bp);
            let got2 = 2 * i128::from(q.discount_minor) * i128::from(BP_100);
            prop_assert!((got2 - exact2).abs() <= i128::from(BP_100));
        }
    }

    #[test]
    fn each_line_gets_its_proportional_share_within_one_unit(lines in arb_lines(), promo in arb_promotion()) {
        let q = quote(&lines, promo.as_ref(), &TAX_RATES).expect("valid lines");
        if q.subtotal_minor > 0 {
            for l in &q.lines {
                // |share - D * sub / S| < 1, in integers: |share*S - D*sub| < S.
                let lhs = i128::from(l.discount_minor) * i128::from(q.subtotal_minor)
                    - i128::from(q.discount_minor) * i128::from(l.subtotal_minor);
                prop_assert!(lhs.abs() < i128::from(q.subtotal_minor));
            }
        }
    }

    #[test]
    fn tax_is_the_rate_of_the_discounted_line_rounded_half_up(lines in arb_lines(), promo in arb_promotion()) {
        let q = quote(&lines, promo.as_ref(), &TAX_RATES).expect("valid lines");
        for (l, input) in q.lines.iter().zip(sorted(&lines)) {
            let rate = i128::from(TAX_RATES.rate_bp(input.tax_class));
            let exact2 = 2 * i128::from(l.subtotal_minor - l.discount_minor) * rate;
            let got2 = 2 * i128::from(l.tax_minor) * i128::from(BP_100);
            // Within half a unit, and a half rounds up.
            prop_assert!(got2 - exact2 <= i128::from(BP_100) && exact2 - got2 < i128::from(BP_100));
        }
    }

    #[test]
    fn line_order_does_not_change_the_quote(lines in arb_lines(), promo in arb_promotion(), seed in any::<u64>()) {
        let mut shuffled = lines.clone();
        let n = shuffled.len();
        for i in (1..n).rev() {
            shuffled.swap(i, (seed as usize).wrapping_add(i * 7) % (i + 1));
        }
        prop_assert_eq!(
            quote(&lines, promo.as_ref(), &TAX_RATES),
            quote(&shuffled, promo.as_ref(), &TAX_RATES)
        );
    }

    #[test]
    fn allocation_is_exact(amount in 0i64..1_000_000, weights in proptest::collection::vec(0i64..100_000, 1..8)) {
        let total: i64 = weights.iter().sum();
        let amount = amount.min(total);
        let shares = allocate(amount, &weights);
        prop_assert_eq!(shares.iter().sum::<i64>(), amount);
        for (s, w) in shares.iter().zip(&weights) {
            prop_assert!(*s >= 0 && s <= w);
        }
    }
}

fn sorted(lines: &[PricedLine]) -> Vec<PricedLine> {
    let mut v = lines.to_vec();
    v.sort_by(|a, b| a.sku.cmp(&b.sku));
    v
}

#[test]
fn a_worked_example() {
    // 2 x 12.50 standard, 1 x 8.00 reduced, 10% off.
    let lines = [
        line("MUG", 1250, 2, TaxClass::Standard),
        line("BOOK", 800, 1, TaxClass::Reduced),
    ];
    let q = quote(
        &lines,
        Some(&Promotion::PercentOff { bp: 1000 }),
        &TAX_RATES,
    )
    .expect("valid");
    assert_eq!(q.subtotal_minor, 3300);
    assert_eq!(q.discount_minor, 330);
    // BOOK: 800 - 80 = 720, tax 5.5% = 39.6 -> 40; MUG: 2500 - 250 = 2250, tax 20% = 450.
    assert_eq!(q.lines[0].sku.as_str(), "BOOK");
    assert_eq!((q.lines[0].discount_minor, q.lines[0].tax_minor), (80, 40));
    assert_eq!(
        (q.lines[1].discount_minor, q.lines[1].tax_minor),
        (250, 450)
    );
    assert_eq!(q.total_minor, 3300 - 330 + 490);
}

#[test]
fn mixed_currencies_and_bad_promotions_are_refused() {
    let mut usd = line("HAT", 500, 1, TaxClass::Standard);
    usd.unit = Money::new(500, Currency::Usd).expect("valid");
    let eur = line("MUG", 1250, 1, TaxClass::Standard);
    assert!(matches!(
        quote(&[eur.clone(), usd], None, &TAX_RATES),
        Err(PricingError::CurrencyMismatch { .. })
    ));
    let usd_off = Promotion::AmountOff {
        amount: Money::new(100, Currency::Usd).expect("valid"),
    };
    assert!(matches!(
        quote(std::slice::from_ref(&eur), Some(&usd_off), &TAX_RATES),
        Err(PricingError::CurrencyMismatch { .. })
    ));
    assert_eq!(
        quote(
            std::slice::from_ref(&eur),
            Some(&Promotion::PercentOff { bp: 10_001 }),
            &TAX_RATES
        ),
        Err(PricingError::DiscountOver100)
    );
    assert!(matches!(
        quote(&[eur.clone(), eur], None, &TAX_RATES),
        Err(PricingError::DuplicateLine(_))
    ));
    assert_eq!(quote(&[], None, &TAX_RATES), Err(PricingError::Empty));
}
