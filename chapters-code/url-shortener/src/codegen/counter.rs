//! Strategy 1: one global counter, written in base62.

use super::{BlockAllocator, BoxFuture, CodeGenerator, CodegenError, code_for};
use crate::domain::{Code, TargetUrl};

// ANCHOR: counter
/// Codes `0000000`, `0000001`, ... from a central counter (a ticket server
/// with blocks of one).
///
/// Simple and collision-free, with two flaws the tests demonstrate: anyone
/// can enumerate every link by counting, and the difference between two
/// codes tells a competitor how many links were created in between. Every
/// create also waits for one round trip to the counter.
pub struct CounterGenerator<A> {
    counter: A,
}

impl<A: BlockAllocator> CounterGenerator<A> {
    /// A generator drawing from `counter`.
    pub fn new(counter: A) -> Self {
        Self { counter }
    }
}

impl<A: BlockAllocator> CodeGenerator for CounterGenerator<A> {
    fn next_code<'a>(
        &'a self,
        _: &'a TargetUrl,
        _: u32,
    ) -> BoxFuture<'a, Result<Code, CodegenError>> {
        Box::pin(async move {
            let ids = self.counter.lease(1).await?;
            code_for(ids.start)
        })
    }
}
// ANCHOR_END: counter

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codegen::{MemoryAllocator, decode};
    use crate::domain::UrlPolicy;

    #[tokio::test]
    async fn counter_codes_leak_volume_and_are_guessable() {
        let target =
            TargetUrl::parse("https://example.com/", &UrlPolicy::default()).expect("valid");
        let ids = CounterGenerator::new(MemoryAllocator::starting_at(1_000_000));
        let mut issued = Vec::new();
        for _ in 0..4_322 {
            issued.push(ids.next_code(&target, 0).await.expect("code"));
        }
        let (monday, tuesday) = (&issued[0], &issued[issued.len() - 1]);
        assert_eq!(monday.as_str(), "0004C92");
        // Volume: the difference of two codes counts the links created in between.
        let n = |c: &Code| decode(c.as_str()).expect("base62");
        assert_eq!(n(tuesday) - n(monday), 4_321);
        // Guessable: counting down from any code finds other people's links.
        let guess = crate::codegen::encode_padded(n(tuesday) - 1, 7);
        assert!(issued.iter().any(|c| c.as_str() == guess));
    }
}
