//! The one 64-bit mixing function every hashing scheme here uses.
//!
//! The finaliser of SplitMix64 (Steele, Lea and Flood, 2014): a bijection on
//! `u64` whose output bits each depend on every input bit. It is not a
//! cryptographic hash: a client who can choose keys can aim them at one
//! backend, which is why the proxy hashes a key it derives itself.

// ANCHOR: mix
/// Mixes `x` into a well-spread 64-bit value (SplitMix64's finaliser).
pub fn mix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
// ANCHOR_END: mix

/// Hashes two values into one: the `seed`-th hash of `x`.
pub fn mix2(x: u64, seed: u64) -> u64 {
    mix64(x ^ mix64(seed))
}

/// Hashes bytes (an address, a header value) to a `u64`: FNV-1a, then [`mix64`].
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    mix64(h)
}

/// A uniform index below `n` from a 64-bit hash (Lemire's multiply-shift, no modulo bias to speak of).
pub fn below(h: u64, n: usize) -> usize {
    ((u128::from(h) * n as u128) >> 64) as usize
}
