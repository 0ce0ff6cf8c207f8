//! Strategy 3: a truncated hash of the URL.

use sha2::{Digest, Sha256};

use super::{BoxFuture, CODE_SPACE, CodeGenerator, CodegenError, code_for};
use crate::domain::{Code, TargetUrl};

// ANCHOR: hash
/// The first 64 bits of SHA-256 of the URL, reduced to 7 base62 characters.
///
/// The same URL always gets the same first candidate, so shortening a URL
/// twice can return the existing link (deduplication). Two different URLs
/// can still land on the same code (the birthday bound applies exactly as
/// for random codes); then attempt `k` hashes the URL with salt `k`.
#[derive(Debug, Default)]
pub struct HashGenerator;

impl HashGenerator {
    /// The candidate number for `target` at `attempt`.
    pub fn candidate(target: &TargetUrl, attempt: u32) -> u64 {
        let mut h = Sha256::new();
        h.update(target.as_str().as_bytes());
        if attempt > 0 {
            // '\0' cannot occur in a normalised URL, so salted input never
            // equals another URL's unsalted input.
            h.update([0]);
            h.update(attempt.to_be_bytes());
        }
        let digest = h.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        // The modulo bias is 2^64 mod 62^7 / 2^64, below 1e-7: negligible.
        u64::from_be_bytes(first) % CODE_SPACE
    }
}

impl CodeGenerator for HashGenerator {
    fn next_code<'a>(
        &'a self,
        target: &'a TargetUrl,
        attempt: u32,
    ) -> BoxFuture<'a, Result<Code, CodegenError>> {
        let n = Self::candidate(target, attempt);
        Box::pin(async move { code_for(n) })
    }

    fn is_deterministic(&self) -> bool {
        true
    }
}
// ANCHOR_END: hash

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::UrlPolicy;

    fn url(s: &str) -> TargetUrl {
        TargetUrl::parse(s, &UrlPolicy::default()).expect("valid")
    }

    #[tokio::test]
    async fn same_url_same_code_and_salt_changes_it() {
        let a = url("https://example.com/a");
        let first = HashGenerator.next_code(&a, 0).await.expect("code");
        // Normalisation happens first, so spelling variants dedup too.
        let a_again = url("HTTPS://EXAMPLE.com:443/a");
        assert_eq!(
            HashGenerator.next_code(&a_again, 0).await.as_ref(),
            Ok(&first)
        );
        let salted = HashGenerator.next_code(&a, 1).await.expect("code");
        assert_ne!(salted, first);
        let other = HashGenerator
            .next_code(&url("https://example.com/b"), 0)
            .await
            .expect("code");
        assert_ne!(other, first);
        expect_test::expect!["pHMxsnU"].assert_eq(first.as_str());
    }
}
