//! Strategy 2: seven random base62 characters.

use rand::Rng;

use super::{BoxFuture, CODE_SPACE, CodeGenerator, CodegenError, code_for};
use crate::domain::{Code, TargetUrl};

// ANCHOR: random
/// A uniformly random 7-character code on every call.
///
/// No coordination at all, and a code says nothing about other codes. The
/// cost is collisions: with `n` links stored, a fresh code is taken with
/// probability `n / 62^7` (0.03% at a billion links), and the create path
/// retries. The birthday table in `collisions` shows when that starts to bite.
#[derive(Debug, Default)]
pub struct RandomGenerator;

impl CodeGenerator for RandomGenerator {
    fn next_code<'a>(
        &'a self,
        _: &'a TargetUrl,
        _: u32,
    ) -> BoxFuture<'a, Result<Code, CodegenError>> {
        // `rand::rng()` is the thread-local generator, seeded from the OS; it
        // is not `Send`, so draw before building the future.
        let n = rand::rng().random_range(0..CODE_SPACE);
        Box::pin(async move { code_for(n) })
    }
}
// ANCHOR_END: random

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::UrlPolicy;
    use std::collections::HashSet;

    #[tokio::test]
    async fn codes_are_seven_base62_characters_and_rarely_repeat() {
        let target =
            TargetUrl::parse("https://example.com/", &UrlPolicy::default()).expect("valid");
        let mut seen = HashSet::new();
        for _ in 0..10_000 {
            let code = RandomGenerator.next_code(&target, 0).await.expect("code");
            assert_eq!(code.as_str().len(), 7);
            assert!(code.as_str().bytes().all(|b| b.is_ascii_alphanumeric()));
            seen.insert(code);
        }
        // P(any repeat among 10^4 draws from 3.5e12) is about 1.4e-5.
        assert_eq!(seen.len(), 10_000);
    }
}
