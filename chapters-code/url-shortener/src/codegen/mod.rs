//! Where short codes come from.
//!
//! Four strategies sit behind one trait, [`CodeGenerator`], so the service and
//! the tests can swap them:
//!
//! | strategy | coordination per code | collisions | code reveals |
//! |---|---|---|---|
//! | [`CounterGenerator`] | one round trip to the allocator | none | creation order and volume |
//! | [`RandomGenerator`] | none | possible: retry | nothing |
//! | [`HashGenerator`] | none | possible: retry with a salt | nothing; same URL, same code |
//! | [`RangeGenerator`] | one round trip per block of N | none | nothing, when scrambled |
//!
//! A generator only proposes a code. The store's unique constraint decides:
//! when the insert says the code is taken, the create path asks the generator
//! again with `attempt + 1` (see `shortener::Shortener::create`).

mod base62;
mod counter;
mod hash;
mod random;
mod range;
mod scramble;

use std::future::Future;
use std::pin::Pin;

pub use base62::{ALPHABET, Base62Error, MAX_DIGITS, decode, encode, encode_padded};
pub use counter::CounterGenerator;
pub use hash::HashGenerator;
pub use random::RandomGenerator;
pub use range::{BlockAllocator, MemoryAllocator, RangeGenerator};
pub use scramble::Scrambler;

use crate::domain::{Code, TargetUrl};

// ANCHOR: code_len
/// Length of every generated code.
pub const CODE_LEN: usize = 7;

/// How many distinct 7-character codes exist: 62^7 = 3,521,614,606,208.
pub const CODE_SPACE: u64 = 62u64.pow(CODE_LEN as u32);
// ANCHOR_END: code_len

/// A boxed future that can be sent between threads.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

// ANCHOR: generator
/// A strategy that proposes short codes.
///
/// The future is boxed so the service can hold any strategy as
/// `Arc<dyn CodeGenerator>` and choose one at run time. The allocation costs
/// nanoseconds on the create path, which is 1% of traffic and waits for a
/// database insert anyway; the redirect path never calls a generator.
pub trait CodeGenerator: Send + Sync {
    /// A candidate code for `target`; `attempt` counts earlier candidates the
    /// store refused as taken (0 on the first call).
    fn next_code<'a>(
        &'a self,
        target: &'a TargetUrl,
        attempt: u32,
    ) -> BoxFuture<'a, Result<Code, CodegenError>>;

    /// True when the same target always gets the same first code, so a taken
    /// code may be the same link created before (see [`HashGenerator`]).
    fn is_deterministic(&self) -> bool {
        false
    }
}

/// Why no candidate code could be produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodegenError {
    /// Every 7-character code has been handed out.
    #[error("the {CODE_LEN}-character code space is exhausted")]
    SpaceExhausted,
    /// The central id allocator could not lease a block; the errors block's
    /// class says whether a retry may help, an operator must act, or it is a bug.
    #[error("the id allocator failed ({0}): {1}")]
    AllocatorUnavailable(block_errors::Class, String),
}
// ANCHOR_END: generator

/// The 7-character code of a number below [`CODE_SPACE`].
pub(crate) fn code_for(n: u64) -> Result<Code, CodegenError> {
    if n >= CODE_SPACE {
        return Err(CodegenError::SpaceExhausted);
    }
    Ok(Code::from_valid(encode_padded(n, CODE_LEN)))
}
