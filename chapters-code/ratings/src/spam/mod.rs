//! The spam defence in tiers, and the seeded corpus it is measured on.
//!
//! - [`rules`]: the synchronous tier, run before a review is stored: a rate
//!   limit per account (the rate-limiter block), near-duplicate text by
//!   [`simhash`], new-account velocity and review bursts on one product;
//! - [`bayes`]: the asynchronous tier, multinomial naive Bayes over word
//!   unigrams and bigrams, written here: it is a page of code, it trains in
//!   milliseconds on the corpus, and the mechanism is the point (a crate
//!   such as linfa-bayes would hide the counting the chapter explains);
//! - [`corpus`]: genuine reviews and four kinds of fake, from a seed;
//! - [`eval`]: precision, recall and F1 per tier, and the confusion table.

pub mod bayes;
pub mod corpus;
pub mod eval;
pub mod rules;
pub mod simhash;

/// The words of a text: lower case, letters and digits only.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}
