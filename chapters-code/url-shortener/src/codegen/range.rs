//! The ticket server: nodes lease blocks of ids from a central allocator and
//! hand them out locally, with no coordination per code.
//!
//! With a block of 1,000 a node talks to the allocator once per 1,000
//! creates; at 1,000 creates a second fleet-wide that is one lease a second.
//! The price: a node that crashes loses the rest of its block (a gap in the
//! id space, harmless), and ids are only roughly ordered by creation time.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{BoxFuture, CodeGenerator, CodegenError, Scrambler, code_for};
use crate::domain::{Code, TargetUrl};

// ANCHOR: allocator
/// Hands out blocks of ids that no other caller, on any node, ever receives.
pub trait BlockAllocator: Send + Sync {
    /// Reserves `size` consecutive ids.
    fn lease(&self, size: u64) -> BoxFuture<'_, Result<Range<u64>, CodegenError>>;
}

/// An allocator for one process: an atomic counter.
#[derive(Debug, Default)]
pub struct MemoryAllocator {
    next: AtomicU64,
}

impl BlockAllocator for MemoryAllocator {
    fn lease(&self, size: u64) -> BoxFuture<'_, Result<Range<u64>, CodegenError>> {
        // `fetch_add` is the whole protocol: each caller gets a distinct start.
        let start = self.next.fetch_add(size, Ordering::Relaxed);
        Box::pin(async move { Ok(start..start + size) })
    }
}
// ANCHOR_END: allocator

impl MemoryAllocator {
    /// An allocator whose first id is `first`.
    pub fn starting_at(first: u64) -> Self {
        Self {
            next: AtomicU64::new(first),
        }
    }
}

impl<A: BlockAllocator + ?Sized> BlockAllocator for Arc<A> {
    fn lease(&self, size: u64) -> BoxFuture<'_, Result<Range<u64>, CodegenError>> {
        (**self).lease(size)
    }
}

// ANCHOR: range_generator
/// Codes from ids leased in blocks, optionally scrambled so they do not look sequential.
pub struct RangeGenerator<A> {
    allocator: A,
    block_size: u64,
    // An async mutex because a refill awaits the allocator while holding it:
    // tasks that find the block empty wait for the one refill instead of
    // each leasing a block of their own.
    block: tokio::sync::Mutex<Range<u64>>,
    scrambler: Option<Scrambler>,
}

impl<A: BlockAllocator> RangeGenerator<A> {
    /// A generator leasing `block_size` ids at a time, codes not scrambled.
    pub fn new(allocator: A, block_size: u64) -> Self {
        Self {
            allocator,
            block_size: block_size.max(1),
            block: tokio::sync::Mutex::new(0..0),
            scrambler: None,
        }
    }

    /// The same generator, passing each id through a keyed permutation of the code space.
    pub fn scrambled(mut self, key: u64) -> Self {
        self.scrambler = Some(Scrambler::new(key, super::CODE_SPACE));
        self
    }

    /// The next id of this node's block, leasing a new block when it is used up.
    pub async fn next_id(&self) -> Result<u64, CodegenError> {
        let mut block = self.block.lock().await;
        if block.is_empty() {
            *block = self.allocator.lease(self.block_size).await?;
        }
        let id = block.start;
        block.start += 1;
        Ok(id)
    }
}

impl<A: BlockAllocator> CodeGenerator for RangeGenerator<A> {
    fn next_code<'a>(
        &'a self,
        _: &'a TargetUrl,
        _: u32,
    ) -> BoxFuture<'a, Result<Code, CodegenError>> {
        Box::pin(async move {
            let id = self.next_id().await?;
            let n = match &self.scrambler {
                Some(s) => s.permute(id).ok_or(CodegenError::SpaceExhausted)?,
                None => id,
            };
            code_for(n)
        })
    }
}
// ANCHOR_END: range_generator

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codegen::decode;
    use crate::domain::UrlPolicy;

    #[tokio::test]
    async fn a_node_leases_only_when_its_block_is_used_up() {
        #[derive(Default)]
        struct Counting(MemoryAllocator, AtomicU64);
        impl BlockAllocator for Counting {
            fn lease(&self, size: u64) -> BoxFuture<'_, Result<Range<u64>, CodegenError>> {
                self.1.fetch_add(1, Ordering::Relaxed);
                self.0.lease(size)
            }
        }
        let node = RangeGenerator::new(Counting::default(), 100);
        for expected in 0..250 {
            assert_eq!(node.next_id().await, Ok(expected));
        }
        assert_eq!(node.allocator.1.load(Ordering::Relaxed), 3);
    }

    #[tokio::test]
    async fn unscrambled_codes_are_consecutive_scrambled_ones_are_not() {
        let target =
            TargetUrl::parse("https://example.com/", &UrlPolicy::default()).expect("valid");
        let plain = RangeGenerator::new(MemoryAllocator::default(), 10);
        let mixed = RangeGenerator::new(MemoryAllocator::default(), 10).scrambled(99);
        let mut plain_ids = Vec::new();
        let mut mixed_ids = Vec::new();
        for _ in 0..20 {
            let p = plain.next_code(&target, 0).await.expect("code");
            let m = mixed.next_code(&target, 0).await.expect("code");
            plain_ids.push(decode(p.as_str()).expect("base62"));
            mixed_ids.push(decode(m.as_str()).expect("base62"));
        }
        assert_eq!(plain_ids, (0..20).collect::<Vec<_>>());
        assert!(
            mixed_ids.windows(2).all(|w| w[1] != w[0] + 1),
            "{mixed_ids:?}"
        );
    }

    #[tokio::test]
    async fn the_end_of_the_code_space_is_a_named_error() {
        let target =
            TargetUrl::parse("https://example.com/", &UrlPolicy::default()).expect("valid");
        let node = RangeGenerator::new(
            MemoryAllocator::starting_at(super::super::CODE_SPACE - 1),
            10,
        );
        assert_eq!(
            node.next_code(&target, 0).await.map(|c| c.to_string()),
            Ok("zzzzzzz".into())
        );
        assert_eq!(
            node.next_code(&target, 0).await,
            Err(CodegenError::SpaceExhausted)
        );
    }
}
