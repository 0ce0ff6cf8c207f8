//! The retry budget: retries may add at most a fixed share to the traffic.

// ANCHOR: budget
/// A token bucket of retries: every request puts `ratio` of a token in,
/// every retry takes one out, and the bucket holds at most `reserve`. So
/// over any run, retries granted <= `reserve + ratio * requests`: when a
/// backend fails everything, retries cannot multiply the load on the rest
/// (Finagle's and Linkerd's budgets work the same way).
#[derive(Debug, Clone, PartialEq)]
pub struct RetryBudget {
    tokens: f64,
    ratio: f64,
    reserve: f64,
}

impl RetryBudget {
    /// A full budget: `reserve` retries at once, then `ratio` per request.
    pub fn new(ratio: f64, reserve: f64) -> Self {
        Self {
            tokens: reserve,
            ratio,
            reserve,
        }
    }

    /// Counts one request (not a retry).
    pub fn deposit(&mut self) {
        self.tokens = (self.tokens + self.ratio).min(self.reserve);
    }

    /// Takes a token for one retry; false when the budget is spent.
    pub fn withdraw(&mut self) -> bool {
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
// ANCHOR_END: budget

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Whatever the order of requests and retries, retries granted stay within the budget.
        #[test]
        fn retries_stay_within_reserve_plus_ratio(ops in prop::collection::vec(any::<bool>(), 0..2_000)) {
            let mut budget = RetryBudget::new(0.2, 10.0);
            let (mut requests, mut granted) = (0u32, 0u32);
            for is_request in ops {
                if is_request {
                    budget.deposit();
                    requests += 1;
                } else if budget.withdraw() {
                    granted += 1;
                }
            }
            prop_assert!(f64::from(granted) <= 10.0 + 0.2 * f64::from(requests) + 1e-9);
        }
    }
}
