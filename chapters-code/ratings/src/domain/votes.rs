//! Helpfulness-vote manipulation: a burst of votes from new accounts.

use chrono::{DateTime, TimeDelta, Utc};

/// One helpful vote as the detector sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vote {
    /// When the voter's account was created.
    pub voter_since: DateTime<Utc>,
    /// When the vote was cast.
    pub at: DateTime<Utc>,
}

// ANCHOR: burst
/// The rule: at least `min_votes` votes within `window`, each from an
/// account younger than `new_account` when it voted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BurstRule {
    /// Accounts younger than this at the vote are "new".
    pub new_account: TimeDelta,
    /// The window the votes must fall in.
    pub window: TimeDelta,
    /// How many new-account votes in one window make a burst.
    pub min_votes: usize,
}

/// The rule the service runs: 5 votes from day-old accounts within 10 minutes.
pub const VOTE_BURST: BurstRule = BurstRule {
    new_account: TimeDelta::days(1),
    window: TimeDelta::minutes(10),
    min_votes: 5,
};

impl BurstRule {
    /// The start of the first burst among `votes` (any order), if there is one.
    pub fn first_burst(&self, votes: &[Vote]) -> Option<DateTime<Utc>> {
        if self.min_votes == 0 {
            return votes.iter().map(|v| v.at).min();
        }
        let mut new: Vec<DateTime<Utc>> = votes
            .iter()
            .filter(|v| v.at - v.voter_since < self.new_account)
            .map(|v| v.at)
            .collect();
        new.sort_unstable();
        // Two pointers: the window [new[i], new[i] + window] holds j - i votes.
        new.windows(self.min_votes)
            .find(|w| w[self.min_votes - 1] - w[0] <= self.window)
            .map(|w| w[0])
    }
}
// ANCHOR_END: burst

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_900_000_000 + secs, 0).expect("valid")
    }

    #[test]
    fn five_new_accounts_in_ten_minutes_are_a_burst() {
        let votes: Vec<Vote> = (0..5)
            .map(|i| Vote {
                voter_since: t(i * 60 - 3600),
                at: t(i * 60),
            })
            .collect();
        assert_eq!(VOTE_BURST.first_burst(&votes), Some(t(0)));
    }

    #[test]
    fn old_accounts_or_spread_votes_are_not() {
        let old: Vec<Vote> = (0..20)
            .map(|i| Vote {
                voter_since: t(-400 * 86_400),
                at: t(i),
            })
            .collect();
        assert_eq!(VOTE_BURST.first_burst(&old), None);
        let spread: Vec<Vote> = (0..20)
            .map(|i| Vote {
                voter_since: t(i * 3600 - 60),
                at: t(i * 3600),
            })
            .collect();
        assert_eq!(VOTE_BURST.first_burst(&spread), None);
    }

    proptest! {
        #[test]
        fn the_detector_agrees_with_a_brute_force_count(
            raw in proptest::collection::vec((0i64..3 * 86_400, 0i64..7200), 0..40)
        ) {
            let votes: Vec<Vote> = raw.iter().map(|&(age, at)| Vote { voter_since: t(at - age), at: t(at) }).collect();
            let brute = votes.iter().filter(|v| v.at - v.voter_since < VOTE_BURST.new_account).any(|start| {
                votes.iter().filter(|v| v.at - v.voter_since < VOTE_BURST.new_account
                    && v.at >= start.at && v.at - start.at <= VOTE_BURST.window).count() >= VOTE_BURST.min_votes
            });
            prop_assert_eq!(VOTE_BURST.first_burst(&votes).is_some(), brute);
        }
    }
}
