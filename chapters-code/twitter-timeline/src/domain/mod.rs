//! Pure types and rules: ids, bodies, cursors, and the k-way merge.

mod cursor;
mod merge;
mod post;
mod snowflake;

pub use cursor::{CursorError, CursorKey};
pub use merge::merge_newest;
pub use post::{BodyError, Handle, HandleError, MAX_POST_CHARS, Post, PostBody, UserId};
pub use snowflake::{
    EPOCH_MS, IdError, MAX_DRIFT_MS, MAX_NODE, NODE_BITS, PostId, SEQUENCE_BITS, Snowflake,
    TIME_BITS, unix_ms_now,
};
