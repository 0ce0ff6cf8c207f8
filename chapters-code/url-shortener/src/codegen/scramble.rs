//! A keyed bijection on `[0, domain)`, so sequential ids give codes that do
//! not look sequential.
//!
//! Why not the simpler `id * a mod 62^7`? It is a bijection too, but it is
//! linear: two consecutive codes reveal `a`, and then every code is
//! predictable. A Feistel network mixes the bits non-linearly. This is
//! obfuscation, not cryptography: the round function is a fast mixer, not a
//! PRF, so do not rely on it to keep ids secret from a determined analyst.

// ANCHOR: feistel
/// Rounds of the Feistel network; four is the classic minimum for good mixing.
const ROUNDS: usize = 4;

/// A permutation of `[0, domain)` keyed by a secret.
#[derive(Clone, Debug)]
pub struct Scrambler {
    round_keys: [u64; ROUNDS],
    half_bits: u32,
    domain: u64,
}

impl Scrambler {
    /// A permutation of `[0, domain)` derived from `key`. `domain` must be at least 2.
    pub fn new(key: u64, domain: u64) -> Self {
        let domain = domain.max(2);
        // Smallest even bit width that covers the domain: 62^7 needs 42 bits.
        let bits = 64 - (domain - 1).leading_zeros();
        let half_bits = bits.div_ceil(2);
        let mut state = key;
        let round_keys = std::array::from_fn(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            mix(state)
        });
        Self {
            round_keys,
            half_bits,
            domain,
        }
    }

    /// The image of `x`, or `None` when `x` is outside the domain.
    pub fn permute(&self, x: u64) -> Option<u64> {
        (x < self.domain).then(|| self.walk(x, Self::encrypt))
    }

    /// The inverse of [`permute`](Self::permute).
    pub fn unpermute(&self, y: u64) -> Option<u64> {
        (y < self.domain).then(|| self.walk(y, Self::decrypt))
    }

    /// Cycle walking: the Feistel network permutes `[0, 2^(2*half_bits))`,
    /// which is larger than the domain; re-applying it until the value falls
    /// back inside gives a permutation of the domain itself (the walk follows
    /// the cycle through `x`, which must return to the domain). With 42 bits
    /// for 62^7 codes a step lands inside with probability 0.8.
    fn walk(&self, mut x: u64, step: fn(&Self, u64) -> u64) -> u64 {
        loop {
            x = step(self, x);
            if x < self.domain {
                return x;
            }
        }
    }

    fn encrypt(&self, x: u64) -> u64 {
        let mask = (1u64 << self.half_bits) - 1;
        let (mut left, mut right) = (x >> self.half_bits, x & mask);
        for k in self.round_keys {
            (left, right) = (right, left ^ (mix(right ^ k) & mask));
        }
        (left << self.half_bits) | right
    }

    fn decrypt(&self, y: u64) -> u64 {
        let mask = (1u64 << self.half_bits) - 1;
        let (mut left, mut right) = (y >> self.half_bits, y & mask);
        for k in self.round_keys.iter().rev() {
            (left, right) = (right ^ (mix(left ^ k) & mask), left);
        }
        (left << self.half_bits) | right
    }
}

/// The SplitMix64 finaliser: every input bit affects every output bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
// ANCHOR_END: feistel

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codegen::CODE_SPACE;
    use proptest::prelude::*;

    #[test]
    fn is_a_bijection_on_small_domains_checked_exhaustively() {
        for domain in [2, 3, 1000, 62u64.pow(3)] {
            let s = Scrambler::new(42, domain);
            let mut seen = vec![false; domain as usize];
            for x in 0..domain {
                let y = s.permute(x).expect("in domain");
                assert!(
                    !seen[y as usize],
                    "two inputs map to {y} in a domain of {domain}"
                );
                seen[y as usize] = true;
                assert_eq!(s.unpermute(y), Some(x));
            }
        }
    }

    #[test]
    fn sequential_ids_do_not_give_sequential_outputs() {
        let s = Scrambler::new(7, CODE_SPACE);
        let out: Vec<u64> = (0..100).filter_map(|x| s.permute(x)).collect();
        let ascending = out.windows(2).filter(|w| w[1] == w[0] + 1).count();
        assert_eq!(ascending, 0, "{out:?}");
        assert_eq!(s.permute(CODE_SPACE), None);
    }

    proptest! {
        #[test]
        fn unpermute_inverts_permute_on_the_code_space(x in 0..CODE_SPACE, key in any::<u64>()) {
            let s = Scrambler::new(key, CODE_SPACE);
            let y = s.permute(x).expect("x is in the domain");
            prop_assert!(y < CODE_SPACE);
            // An inverse exists, so the map is injective; a map from a finite
            // set into itself that is injective is a bijection.
            prop_assert_eq!(s.unpermute(y), Some(x));
        }
    }
}
