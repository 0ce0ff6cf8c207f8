//! Pure types and rules: no I/O. Every value from outside is parsed here once,
//! with a named reason for each refusal.

pub mod aggregate;
pub mod catalog;
pub mod moderation;
pub mod review;
pub mod score;
pub mod votes;

pub use aggregate::Aggregate;
pub use moderation::{MODERATION, ModEvent, ModState};
pub use review::{Body, BodyError, ProductId, Rating, RatingError, Review, ReviewId, UserId};
