//! Base62: a number written with the 62 characters that are safe in a URL
//! path without escaping and survive being read aloud less badly than base64's `+/`.

/// The digits, in value order. The same order as the `base62` crate's
/// standard alphabet, which a test checks.
pub const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `u64::MAX` has 11 base62 digits.
pub const MAX_DIGITS: usize = 11;

/// Why a string is not a base62 number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Base62Error {
    /// No digits.
    #[error("empty base62 string")]
    Empty,
    /// A character outside [`ALPHABET`].
    #[error("{0:?} is not a base62 digit")]
    InvalidDigit(char),
    /// The value does not fit in a u64.
    #[error("base62 value does not fit in 64 bits")]
    Overflow,
}

// ANCHOR: encode
/// Writes `n` in base62 with no leading zeros (`0` is `"0"`).
pub fn encode(mut n: u64) -> String {
    // Digits come out least significant first, so fill a buffer from the end.
    let mut buf = [0u8; MAX_DIGITS];
    let mut start = MAX_DIGITS;
    loop {
        start -= 1;
        buf[start] = ALPHABET[(n % 62) as usize];
        n /= 62;
        if n == 0 {
            break;
        }
    }
    buf[start..].iter().map(|&b| b as char).collect()
}

/// Writes `n` in base62, left-padded with `0` to at least `width` digits.
pub fn encode_padded(n: u64, width: usize) -> String {
    let digits = encode(n);
    let pad = width.saturating_sub(digits.len());
    let mut out = String::with_capacity(pad + digits.len());
    out.extend(std::iter::repeat_n('0', pad));
    out.push_str(&digits);
    out
}
// ANCHOR_END: encode

// ANCHOR: decode
/// The value of each byte as a base62 digit, or `NOT_A_DIGIT`.
const DIGIT_VALUE: [u8; 256] = {
    let mut table = [NOT_A_DIGIT; 256];
    let mut i = 0;
    while i < 62 {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
};
const NOT_A_DIGIT: u8 = u8::MAX;

/// Reads a base62 number; leading zeros are allowed.
pub fn decode(s: &str) -> Result<u64, Base62Error> {
    if s.is_empty() {
        return Err(Base62Error::Empty);
    }
    s.chars().try_fold(0u64, |acc, c| {
        let digit = if c.is_ascii() {
            DIGIT_VALUE[c as usize]
        } else {
            NOT_A_DIGIT
        };
        if digit == NOT_A_DIGIT {
            return Err(Base62Error::InvalidDigit(c));
        }
        acc.checked_mul(62)
            .and_then(|v| v.checked_add(u64::from(digit)))
            .ok_or(Base62Error::Overflow)
    })
}
// ANCHOR_END: decode

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_values() {
        assert_eq!(encode(0), "0");
        assert_eq!(encode(61), "z");
        assert_eq!(encode(62), "10");
        assert_eq!(encode(u64::MAX), "LygHa16AHYF");
        assert_eq!(encode_padded(1, 7), "0000001");
        assert_eq!(encode_padded(62u64.pow(7) - 1, 7), "zzzzzzz");
        assert_eq!(decode("LygHa16AHYF"), Ok(u64::MAX));
        assert_eq!(decode("LygHa16AHYG"), Err(Base62Error::Overflow));
        assert_eq!(decode(""), Err(Base62Error::Empty));
        assert_eq!(decode("ab-c"), Err(Base62Error::InvalidDigit('-')));
        assert_eq!(decode("abé"), Err(Base62Error::InvalidDigit('é')));
    }

    proptest! {
        #[test]
        fn decode_inverts_encode(n in any::<u64>(), width in 0usize..14) {
            prop_assert_eq!(decode(&encode(n)), Ok(n));
            prop_assert_eq!(decode(&encode_padded(n, width)), Ok(n));
            prop_assert!(encode_padded(n, width).len() >= width);
        }

        #[test]
        fn agrees_with_the_base62_crate(n in any::<u64>()) {
            prop_assert_eq!(encode(n), base62::encode(n));
            prop_assert_eq!(u128::from(decode(&encode(n)).unwrap_or_default()), base62::decode(encode(n)).unwrap_or_default());
        }

        #[test]
        fn order_of_equal_length_codes_is_numeric_order(a in any::<u64>(), b in any::<u64>()) {
            // Useful to know: padded codes sort like the numbers they encode.
            prop_assert_eq!(encode_padded(a, 11).cmp(&encode_padded(b, 11)), a.cmp(&b));
        }

        #[test]
        fn any_string_decodes_or_names_its_error(s in any::<String>()) {
            match decode(&s) {
                Ok(n) => prop_assert_eq!(encode_padded(n, s.len()), s),
                Err(Base62Error::Empty) => prop_assert!(s.is_empty()),
                Err(Base62Error::InvalidDigit(c)) => prop_assert!(s.contains(c) && !c.is_ascii_alphanumeric()),
                Err(Base62Error::Overflow) => prop_assert!(s.len() >= MAX_DIGITS),
            }
        }
    }
}
