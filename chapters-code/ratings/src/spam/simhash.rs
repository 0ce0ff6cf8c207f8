//! SimHash (Charikar 2002) over word shingles: near-duplicate texts get
//! fingerprints a few bits apart, so "the same review with two words
//! changed" is one comparison of 64-bit numbers.

use super::words;

/// FNV-1a, 64 bits: stable across runs and platforms (std's hasher is not).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The SplitMix64 finaliser: FNV-1a's last bytes reach few bits, and
/// SimHash needs every bit of a feature's hash to be a fair coin.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

// ANCHOR: simhash
/// Words per shingle.
pub const SHINGLE: usize = 2;

/// Fingerprints at most this many bits apart are near-duplicates.
pub const NEAR: u32 = 8;

/// The SimHash of a text: each bit is the majority vote of that bit over
/// the hashes of the text's word shingles.
pub fn simhash(text: &str) -> u64 {
    let w = words(text);
    let mut votes = [0i32; 64];
    let mut add = |piece: &str| {
        let h = mix(fnv1a(piece.as_bytes()));
        for (bit, v) in votes.iter_mut().enumerate() {
            *v += if h >> bit & 1 == 1 { 1 } else { -1 };
        }
    };
    if w.len() < SHINGLE {
        w.iter().for_each(|x| add(x));
    } else {
        w.windows(SHINGLE).for_each(|s| add(&s.join(" ")));
    }
    votes
        .iter()
        .enumerate()
        .filter(|(_, v)| **v > 0)
        .fold(0, |acc, (bit, _)| acc | 1 << bit)
}

/// True when two fingerprints are at most [`NEAR`] bits apart.
pub fn near(a: u64, b: u64) -> bool {
    (a ^ b).count_ones() <= NEAR
}
// ANCHOR_END: simhash

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_one_word_copies_are_near_and_almost_no_unrelated_reviews_are() {
        use crate::spam::corpus::{Kind, SEED, generate};
        let c = generate(SEED);
        let genuine: Vec<u64> = c
            .iter()
            .filter(|s| s.kind == Kind::Genuine)
            .map(|s| simhash(&s.text))
            .collect();
        // Unrelated: neighbours in time among genuine reviews.
        let false_near = genuine.windows(2).filter(|w| near(w[0], w[1])).count();
        assert!(
            false_near * 100 <= genuine.len(),
            "{false_near} of {}",
            genuine.len()
        );
        // A copy: the same text with its first word changed.
        let copies = c
            .iter()
            .filter(|s| s.kind == Kind::Genuine)
            .take(500)
            .filter(|s| {
                let changed = s.text.replacen(char::is_alphabetic, "Q", 1);
                near(simhash(&s.text), simhash(&changed))
            });
        assert!(copies.count() >= 250);
    }

    #[test]
    fn case_and_punctuation_do_not_change_the_fingerprint() {
        assert_eq!(
            simhash("Great value, works well!"),
            simhash("great VALUE works well")
        );
    }
}
