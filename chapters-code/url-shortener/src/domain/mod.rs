//! Pure domain types: every value that crosses the HTTP boundary is parsed
//! into one of these before any I/O happens.
//!
//! A `Code`, an `Alias`, a `TargetUrl` and an `Expiry` cannot be built from an
//! invalid input, so the rest of the crate never re-checks them. Each
//! rejection is a named variant of the type's error enum; the service maps
//! those to HTTP statuses in one place (`service::error`).

mod alias;
mod code;
mod expiry;
mod link;
mod target;
mod token;

pub(crate) use alias::is_reserved;
pub use alias::{ALIAS_MAX_LEN, ALIAS_MIN_LEN, Alias, AliasError};
pub use code::{CODE_MAX_LEN, Code, CodeError};
pub use expiry::{Expiry, ExpiryError, MAX_LIFETIME_DAYS};
pub use link::{Link, LinkState, NewLink};
pub use target::{TARGET_MAX_LEN, TargetUrl, UrlError, UrlPolicy};
pub use token::{ManagementToken, TokenError, TokenHash};
