//! Precision, recall and F1 of each tier on the seeded corpus.

use std::collections::{BTreeMap, HashMap};

use block_rate_limiter::ManualClock;

use super::bayes::NaiveBayes;
use super::corpus::{Kind, Sample, generate};
use super::rules::{Flag, Rules, Submission};
use super::simhash::fnv1a;

/// Share of the corpus the classifier trains on (in tenths); the rest is the test set.
pub const TRAIN_TENTHS: u64 = 7;

/// The tiers measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tier {
    /// The synchronous rules alone.
    Rules,
    /// The classifier alone.
    Classifier,
    /// Either tier flags it: the defence as designed (the service runs the
    /// rules; the classifier is measured here, its worker is not built).
    Both,
}

impl Tier {
    /// Every tier.
    pub const ALL: [Tier; 3] = [Tier::Rules, Tier::Classifier, Tier::Both];

    /// Its name in the tables.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Rules => "rules (synchronous)",
            Tier::Classifier => "naive Bayes (asynchronous)",
            Tier::Both => "rules or naive Bayes (offline)",
        }
    }
}

/// Counts of one tier on the test set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Confusion {
    /// Fakes flagged.
    pub tp: u64,
    /// Genuine reviews flagged.
    pub fp: u64,
    /// Fakes missed.
    pub fn_: u64,
    /// Genuine reviews passed.
    pub tn: u64,
}

impl Confusion {
    fn add(&mut self, fake: bool, flagged: bool) {
        match (fake, flagged) {
            (true, true) => self.tp += 1,
            (false, true) => self.fp += 1,
            (true, false) => self.fn_ += 1,
            (false, false) => self.tn += 1,
        }
    }

    /// Flagged fakes over all flagged.
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }

    /// Flagged fakes over all fakes.
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }

    /// Harmonic mean of precision and recall.
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }

    /// Right answers over all answers.
    pub fn accuracy(&self) -> f64 {
        ratio(self.tp + self.tn, self.tp + self.fp + self.fn_ + self.tn)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// The result of one evaluation.
#[derive(Clone, Debug, Default)]
pub struct Evaluation {
    /// Samples in the training and the test set.
    pub train: usize,
    /// Samples in the test set.
    pub test: usize,
    /// Per tier, on the test set.
    pub tiers: BTreeMap<Tier, Confusion>,
    /// Per tier and kind: (flagged, of) on the test set.
    pub by_kind: BTreeMap<(Tier, Kind), (u64, u64)>,
    /// Which rule flagged how many test samples.
    pub flags: BTreeMap<Flag, u64>,
}

fn in_train(i: usize, seed: u64) -> bool {
    fnv1a(&(seed ^ i as u64).to_le_bytes()) % 10 < TRAIN_TENTHS
}

// ANCHOR: evaluate
/// Runs the rules over the whole corpus in time order, trains the
/// classifier on the training share, and scores every tier on the rest.
pub fn evaluate(seed: u64) -> Evaluation {
    let corpus: Vec<Sample> = generate(seed);
    let clock = ManualClock::new();
    let mut rules = Rules::new(clock.clone());
    let mut last_day: HashMap<u32, Vec<i64>> = HashMap::new();
    let verdicts: Vec<Result<(), Flag>> = corpus
        .iter()
        .map(|s| {
            clock.set(u64::try_from(s.at).unwrap_or(0) * 1_000_000_000);
            let mine = last_day.entry(s.user).or_default();
            mine.retain(|&t| s.at - t < 86_400);
            mine.push(s.at);
            rules.check(&Submission {
                user: i64::from(s.user),
                product: i64::from(s.product),
                account_age: s.account_age,
                reviews_last_day: i64::try_from(mine.len()).unwrap_or(i64::MAX),
                at: s.at,
                text: &s.text,
            })
        })
        .collect();
    let nb = NaiveBayes::train(
        corpus
            .iter()
            .enumerate()
            .filter(|(i, _)| in_train(*i, seed))
            .map(|(_, s)| (s.text.as_str(), s.kind.is_fake())),
    );
    let mut e = Evaluation::default();
    for (i, s) in corpus.iter().enumerate() {
        if in_train(i, seed) {
            e.train += 1;
            continue;
        }
        e.test += 1;
        // A 429 stores nothing and the author may retry: a delay, not a catch.
        let by_rules = verdicts[i].is_err_and(|f| f != Flag::RateLimited);
        if let Err(f) = verdicts[i] {
            *e.flags.entry(f).or_default() += 1;
        }
        let by_nb = nb.is_fake(&s.text);
        for (tier, flagged) in [
            (Tier::Rules, by_rules),
            (Tier::Classifier, by_nb),
            (Tier::Both, by_rules || by_nb),
        ] {
            e.tiers
                .entry(tier)
                .or_default()
                .add(s.kind.is_fake(), flagged);
            let k = e.by_kind.entry((tier, s.kind)).or_default();
            k.0 += u64::from(flagged);
            k.1 += 1;
        }
    }
    e
}
// ANCHOR_END: evaluate

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spam::corpus::SEED;

    #[test]
    fn each_tier_catches_what_it_is_built_for() {
        let e = evaluate(SEED);
        let recall = |t, k| {
            let (f, n) = e.by_kind[&(t, k)];
            f as f64 / n as f64
        };
        // The rules see bursts and coordination; the text model sees templates.
        assert!(recall(Tier::Rules, Kind::Burst) > 0.5);
        assert!(recall(Tier::Classifier, Kind::Templated) > 0.9);
        // Both together never catch less than either alone.
        for k in Kind::ALL.into_iter().filter(|k| k.is_fake()) {
            assert!(
                recall(Tier::Both, k) >= recall(Tier::Rules, k).max(recall(Tier::Classifier, k))
            );
        }
        assert_eq!(e.train + e.test, generate(SEED).len());
        // A 429 only delays a review (the service stores nothing and the
        // author may retry), so it is not counted as caught.
        let rules = e.tiers[&Tier::Rules];
        let held: u64 = e
            .flags
            .iter()
            .filter(|(f, _)| **f != Flag::RateLimited)
            .map(|(_, n)| n)
            .sum();
        assert_eq!(rules.tp + rules.fp, held);
    }
}
