//! The synchronous tier: cheap rules run before a review is stored.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use block_rate_limiter::{Clock, KeyedBuckets, Limiter, Quota};

use super::simhash::{near, simhash};

// ANCHOR: limits
/// Per account: a burst of 3 reviews, then one per 20 minutes.
pub const PER_ACCOUNT_PERIOD: Duration = Duration::from_secs(20 * 60);
/// The burst of the per-account limit.
pub const PER_ACCOUNT_BURST: u32 = 3;
/// Accounts tracked by the limiter at most (the block bounds its memory).
pub const MAX_ACCOUNTS: usize = 100_000;
/// Texts with fewer words carry no template: "Great!" twice is not a copy.
pub const MIN_NEAR_WORDS: usize = 5;
/// Fingerprints of recent reviews compared against (a bounded window).
pub const RECENT: usize = 5_000;
/// An account younger than this is "new" for the velocity rule (seconds).
pub const NEW_ACCOUNT_SECS: i64 = 7 * 86_400;
/// A new account writing this many reviews within a day is held.
pub const VELOCITY_REVIEWS: i64 = 3;
/// Reviews on one product from accounts younger than a day, within an hour, that make a burst.
pub const BURST_REVIEWS: usize = 5;
/// The burst rule's window and account age (seconds).
pub const BURST_WINDOW_SECS: i64 = 3600;
/// Accounts younger than this count towards a product burst (seconds).
pub const BURST_ACCOUNT_SECS: i64 = 86_400;
// ANCHOR_END: limits

/// Why the rules flagged a review.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Flag {
    /// The account is over its rate: refused outright.
    RateLimited,
    /// Nearly the same text as a recent review.
    NearDuplicate,
    /// A new account writing many reviews in a day.
    NewAccountVelocity,
    /// One of many reviews of one product from brand-new accounts.
    ProductBurst,
}

impl Flag {
    /// The reason written to the audit.
    pub fn reason(self) -> &'static str {
        match self {
            Flag::RateLimited => "rate limited",
            Flag::NearDuplicate => "near-duplicate of a recent review",
            Flag::NewAccountVelocity => "new account writing many reviews",
            Flag::ProductBurst => "burst of reviews from new accounts on this product",
        }
    }
}

/// A review as the rules see it.
#[derive(Clone, Copy, Debug)]
pub struct Submission<'a> {
    /// The account.
    pub user: i64,
    /// The product.
    pub product: i64,
    /// Seconds since the account was created.
    pub account_age: i64,
    /// Reviews the account wrote in the last day, this one included.
    pub reviews_last_day: i64,
    /// Seconds on the caller's clock (the corpus's or the wall clock's).
    pub at: i64,
    /// The text.
    pub text: &'a str,
}

/// True when a text has enough words for the near-duplicate rule.
fn long_enough(text: &str) -> bool {
    super::words(text).len() >= MIN_NEAR_WORDS
}

// ANCHOR: rules
/// The rules' state: the limiter, recent fingerprints, recent new-account reviews per product.
pub struct Rules<C: Clock> {
    limiter: KeyedBuckets<i64, C>,
    recent: VecDeque<u64>,
    bursts: HashMap<i64, VecDeque<i64>>,
}

impl<C: Clock> Rules<C> {
    /// Rules on `clock` (the limiter's).
    pub fn new(clock: C) -> Self {
        let quota = match Quota::with_period(PER_ACCOUNT_PERIOD, PER_ACCOUNT_BURST) {
            Ok(q) => q,
            // Constants: a refusal here is a bug caught by the first test.
            Err(e) => panic!("per-account quota: {e}"),
        };
        Self {
            limiter: KeyedBuckets::with_clock(quota, MAX_ACCOUNTS, clock),
            recent: VecDeque::with_capacity(RECENT),
            bursts: HashMap::new(),
        }
    }

    /// Judges one review: counts it against the account's rate, and
    /// compares it with what was remembered. Remembers nothing else.
    pub fn judge(&mut self, s: &Submission<'_>) -> Result<(), Flag> {
        if self.limiter.check(&s.user).is_err() {
            return Err(Flag::RateLimited);
        }
        if long_enough(s.text) {
            let fingerprint = simhash(s.text);
            if self.recent.iter().any(|&f| near(f, fingerprint)) {
                return Err(Flag::NearDuplicate);
            }
        }
        if s.account_age < BURST_ACCOUNT_SECS {
            let earlier = self.bursts.get(&s.product).map_or(0, |t| {
                t.iter().filter(|&&t| s.at - t <= BURST_WINDOW_SECS).count()
            });
            if earlier + 1 >= BURST_REVIEWS {
                return Err(Flag::ProductBurst);
            }
        }
        if s.account_age < NEW_ACCOUNT_SECS && s.reviews_last_day >= VELOCITY_REVIEWS {
            return Err(Flag::NewAccountVelocity);
        }
        Ok(())
    }

    /// Remembers a stored review, so later ones are compared with it.
    /// Called only after the store accepted it: a refused submit (not
    /// bought, already reviewed) must not make its own retry a duplicate.
    pub fn remember(&mut self, s: &Submission<'_>) {
        if long_enough(s.text) {
            if self.recent.len() == RECENT {
                self.recent.pop_front();
            }
            self.recent.push_back(simhash(s.text));
        }
        if s.account_age < BURST_ACCOUNT_SECS {
            let times = self.bursts.entry(s.product).or_default();
            while times.front().is_some_and(|&t| s.at - t > BURST_WINDOW_SECS) {
                times.pop_front();
            }
            times.push_back(s.at);
        }
        // Forget products with no recent new-account review, so the map
        // stays bounded by the reviews of one window.
        if self.bursts.len() > RECENT {
            self.bursts.retain(|_, t| {
                t.back()
                    .is_some_and(|&last| s.at - last <= BURST_WINDOW_SECS)
            });
        }
    }

    /// [`Rules::judge`], then [`Rules::remember`]: the corpus evaluation,
    /// where every review is stored whatever the verdict.
    pub fn check(&mut self, s: &Submission<'_>) -> Result<(), Flag> {
        let verdict = self.judge(s);
        if verdict != Err(Flag::RateLimited) {
            self.remember(s);
        }
        verdict
    }
}
// ANCHOR_END: rules

#[cfg(test)]
mod tests {
    use super::*;
    use block_rate_limiter::ManualClock;

    fn sub(user: i64, product: i64, age: i64, at: i64, text: &str) -> Submission<'_> {
        Submission {
            user,
            product,
            account_age: age,
            reviews_last_day: 1,
            at,
            text,
        }
    }

    #[test]
    fn the_fourth_review_in_a_minute_from_one_account_is_rate_limited() {
        let mut r = Rules::new(ManualClock::new());
        let texts = [
            "the hinge squeaks after a month of use",
            "battery lasts two days on one charge",
            "zip came loose on the first trip",
            "lid leaks a little when it is full",
        ];
        for (i, t) in texts.iter().enumerate().take(3) {
            assert_eq!(r.check(&sub(1, i as i64, 999_999, 0, t)), Ok(()));
        }
        assert_eq!(
            r.check(&sub(1, 9, 999_999, 0, texts[3])),
            Err(Flag::RateLimited)
        );
    }

    #[test]
    fn the_fifth_new_account_review_of_a_product_within_an_hour_is_a_burst() {
        let mut r = Rules::new(ManualClock::new());
        let texts = [
            "alpha beta gamma delta",
            "one two three four five",
            "red green blue yellow",
            "north south east west",
            "spring summer autumn winter",
        ];
        for (i, t) in texts.iter().enumerate() {
            let got = r.check(&sub(i as i64, 7, 60, i as i64 * 60, t));
            assert_eq!(got.is_err(), i == 4, "{i}: {got:?}");
        }
        assert_eq!(
            r.check(&sub(99, 7, 60, 3 * 3600, "a quiet later review of it")),
            Ok(())
        );
    }

    #[test]
    fn short_reviews_are_never_near_duplicates() {
        let mut r = Rules::new(ManualClock::new());
        for (u, t) in [(1, "Great!"), (2, "great"), (3, "👍"), (4, "👍👍")] {
            assert_eq!(r.check(&sub(u, u, 999_999, u, t)), Ok(()), "{t}");
        }
    }

    #[test]
    fn a_near_copy_is_flagged() {
        let mut r = Rules::new(ManualClock::new());
        let a = "I take it to work. The strap feels solid after a month. Delivery took four days.";
        let b = "I TAKE it to work! The strap feels solid after a month; delivery took four days!!";
        assert_eq!(r.check(&sub(1, 1, 999_999, 0, a)), Ok(()));
        assert_eq!(
            r.check(&sub(2, 2, 999_999, 10, b)),
            Err(Flag::NearDuplicate)
        );
    }
}
