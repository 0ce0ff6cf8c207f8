//! Multinomial naive Bayes over word unigrams and bigrams, written here.

use std::collections::HashMap;

use super::words;

/// The features of a text: its words and its pairs of adjacent words.
pub fn features(text: &str) -> Vec<String> {
    let w = words(text);
    let mut out = w.clone();
    out.extend(w.windows(2).map(|p| format!("{} {}", p[0], p[1])));
    out
}

// ANCHOR: bayes
/// Counts per class; `predict` is a sum of logarithms.
#[derive(Clone, Debug, Default)]
pub struct NaiveBayes {
    /// Feature counts of [genuine, fake].
    counts: [HashMap<String, u32>; 2],
    /// All feature occurrences per class.
    totals: [u64; 2],
    /// Training documents per class.
    docs: [u64; 2],
    /// Distinct features seen in training.
    vocabulary: usize,
}

impl NaiveBayes {
    /// Trains on `(text, is_fake)` pairs.
    pub fn train<'a>(examples: impl IntoIterator<Item = (&'a str, bool)>) -> Self {
        let mut nb = Self::default();
        for (text, fake) in examples {
            let c = usize::from(fake);
            nb.docs[c] += 1;
            for f in features(text) {
                *nb.counts[c].entry(f).or_default() += 1;
                nb.totals[c] += 1;
            }
        }
        let mut vocab: std::collections::HashSet<&String> = nb.counts[0].keys().collect();
        vocab.extend(nb.counts[1].keys());
        nb.vocabulary = vocab.len();
        nb
    }

    /// log P(fake | text) − log P(genuine | text), with add-one smoothing:
    /// positive means "more likely fake".
    pub fn log_odds(&self, text: &str) -> f64 {
        let all = (self.docs[0] + self.docs[1]).max(1) as f64;
        let mut score = [0.0f64; 2];
        for (c, s) in score.iter_mut().enumerate() {
            // Add-one on the class prior too: a class never seen is not impossible.
            *s = ((self.docs[c] as f64 + 1.0) / (all + 2.0)).ln();
            let denom = self.totals[c] as f64 + self.vocabulary as f64 + 1.0;
            for f in features(text) {
                let n = self.counts[c].get(&f).copied().unwrap_or(0);
                *s += ((f64::from(n) + 1.0) / denom).ln();
            }
        }
        score[1] - score[0]
    }

    /// True when the text is more likely fake than genuine.
    pub fn is_fake(&self, text: &str) -> bool {
        self.log_odds(text) > 0.0
    }
}
// ANCHOR_END: bayes

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_learns_the_words_of_each_class() {
        let nb = NaiveBayes::train([
            ("best product ever amazing must buy", true),
            ("amazing amazing best ever five stars", true),
            ("the hinge squeaks after two weeks", false),
            ("battery lasts two days, screen is dim", false),
        ]);
        assert!(nb.is_fake("amazing best ever"));
        assert!(!nb.is_fake("the battery squeaks after two weeks"));
    }

    #[test]
    fn an_untrained_model_says_nothing_is_fake() {
        assert!(!NaiveBayes::default().is_fake("anything at all"));
    }
}
