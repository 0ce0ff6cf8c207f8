//! Pure types and rules: no I/O, no clock.
//!
//! - [`money`]: integer minor units of one currency;
//! - [`product`]: SKUs, quantities, tax classes and the product record;
//! - [`pricing`]: tax and discounts, in one function;
//! - [`cart`]: the cart as an observed-remove set, so a merge never brings back a removal.

pub mod cart;
pub mod money;
pub mod pricing;
pub mod product;

pub use cart::{Cart, Tag};
pub use money::{Currency, Money, MoneyError, UnknownCurrency};
pub use pricing::{
    PricedLine, PricingError, Promotion, Quote, QuoteLine, TAX_RATES, TaxRates, quote,
};
pub use product::{MAX_QUANTITY, Product, Quantity, QuantityError, Sku, SkuError, TaxClass};
