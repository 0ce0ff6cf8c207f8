//! Cart storage: the observed-remove cart of [`crate::domain::cart`] kept in
//! Redis (the production choice), PostgreSQL (for the comparison) or memory.
//!
//! Every write refreshes the cart's TTL ([`CART_TTL`]); an abandoned cart
//! disappears by itself, tombstones included. Adding never reads: it
//! succeeds as long as the store accepts a write.

mod memory;
mod postgres;
mod redis;

use std::fmt;
use std::future::Future;
use std::time::Duration;

use block_errors::Class;

pub use memory::MemoryCarts;
pub use postgres::PgCarts;
pub use redis::{REDIS_TIMEOUT, RedisCarts};

use crate::domain::{Cart, Quantity, Sku, Tag};

// ANCHOR: cart_ttl
/// A cart untouched this long is gone.
pub const CART_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
// ANCHOR_END: cart_ttl

// ANCHOR: cart_cap
/// Most adds and tombstones one cart may hold; the next add is refused
/// ([`CartError::Full`]). A removal reads the whole cart, so this bounds it.
pub const MAX_CART_ENTRIES: usize = 500;
// ANCHOR_END: cart_cap

/// Which cart: a guest's (`g-...`, from a cookie) or an account's (`a-...`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CartId(String);

/// Why a cart id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a cart id is `g-` or `a-` followed by 1 to 64 of A-Z, a-z, 0-9, '-' and '_'")]
pub struct CartIdError;

impl CartId {
    /// Checks `raw`.
    pub fn parse(raw: &str) -> Result<Self, CartIdError> {
        let rest = raw
            .strip_prefix("g-")
            .or_else(|| raw.strip_prefix("a-"))
            .ok_or(CartIdError)?;
        if rest.is_empty()
            || rest.len() > 64
            || !rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(CartIdError);
        }
        Ok(Self(raw.to_string()))
    }

    /// The cart of an account.
    pub fn account(account: &str) -> Result<Self, CartIdError> {
        Self::parse(&format!("a-{account}"))
    }

    /// A fresh guest cart.
    pub fn new_guest() -> Self {
        Self(format!("g-{}", uuid::Uuid::new_v4().simple()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CartId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a cart operation failed: the store did.
#[derive(Debug, thiserror::Error)]
pub enum CartError {
    /// Redis failed, timed out or refused, with the errors block's class of
    /// the failure: a retry may help, an operator must act, or the code is wrong.
    #[error("cart store failed ({0}): {1}")]
    Redis(Class, String),
    /// PostgreSQL failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// The cart holds [`MAX_CART_ENTRIES`] adds and tombstones already.
    #[error("a cart holds at most {MAX_CART_ENTRIES} adds and removals; this one is full")]
    Full,
}

impl CartError {
    /// The errors block's class, which decides the status and `Retry-After`.
    pub fn class(&self) -> Class {
        match self {
            CartError::Redis(class, _) => *class,
            CartError::Database(e) => block_errors::classify_sqlx(e),
            // Not a failure of the store: the service answers 409 `cart-full`.
            CartError::Full => Class::Final,
        }
    }
}

// ANCHOR: cart_store
/// Where carts live.
pub trait CartStore: Send + Sync + 'static {
    /// Adds `quantity` of `sku` under a fresh `tag`: a blind write, never a conflict.
    fn add(
        &self,
        cart: &CartId,
        tag: Tag,
        sku: &Sku,
        quantity: Quantity,
    ) -> impl Future<Output = Result<(), CartError>> + Send;

    /// Removes `sku`: the adds of it the store holds now become tombstones.
    fn remove(
        &self,
        cart: &CartId,
        sku: &Sku,
    ) -> impl Future<Output = Result<(), CartError>> + Send;

    /// Folds `from` into `into` (the guest cart into the account's at login)
    /// and deletes from `from` exactly the entries folded in: an add that
    /// lands during the merge stays in `from`, never lost. Idempotent: a
    /// retried merge changes nothing; a cart merged into itself is unchanged.
    fn merge(
        &self,
        from: &CartId,
        into: &CartId,
    ) -> impl Future<Output = Result<(), CartError>> + Send;

    /// The cart (empty when it does not exist or expired).
    fn get(&self, cart: &CartId) -> impl Future<Output = Result<Cart, CartError>> + Send;

    /// Empties the cart, tombstones included: the way out of a full cart
    /// (an account cart cannot be replaced by a new one). A stale copy of
    /// the cart merged in later brings its lines back, as an add would.
    fn clear(&self, cart: &CartId) -> impl Future<Output = Result<(), CartError>> + Send;
}
// ANCHOR_END: cart_store
