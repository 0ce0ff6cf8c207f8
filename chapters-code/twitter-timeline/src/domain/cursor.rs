//! Opaque pagination cursors: the last post id of a page, signed.
//!
//! A cursor is an id, not an offset: new posts arriving at the top of a
//! timeline do not shift the next page. It is signed so that a client
//! cannot hand us ids we did not give out (a guessed or edited cursor is
//! refused by name, before any store is touched).

use sha2::{Digest, Sha256};

use super::PostId;

/// Why a cursor was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    /// Not a cursor this service issued (wrong shape or signature).
    #[error("the cursor was not issued by this service")]
    NotOurs,
}

// ANCHOR: cursor
/// The signing key for cursors.
#[derive(Clone, Debug)]
pub struct CursorKey([u8; 32]);

impl CursorKey {
    /// A key from any secret bytes.
    pub fn new(secret: &[u8]) -> Self {
        Self(Sha256::digest(secret).into())
    }

    fn tag(&self, id: PostId) -> String {
        let mut h = Sha256::new();
        h.update(self.0);
        h.update(id.raw().to_be_bytes());
        let digest = h.finalize();
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The cursor that resumes after `id`: `<id>.<16 hex digits of tag>`.
    pub fn encode(&self, id: PostId) -> String {
        format!("{id}.{}", self.tag(id))
    }

    /// The id inside a cursor we issued.
    pub fn decode(&self, cursor: &str) -> Result<PostId, CursorError> {
        let (id, tag) = cursor.split_once('.').ok_or(CursorError::NotOurs)?;
        let id = id
            .parse::<u64>()
            .ok()
            .and_then(PostId::from_raw)
            .ok_or(CursorError::NotOurs)?;
        // Not constant-time: the tag protects against confusion, not secrets.
        if tag == self.tag(id) {
            Ok(id)
        } else {
            Err(CursorError::NotOurs)
        }
    }
}
// ANCHOR_END: cursor

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        let key = CursorKey::new(b"k");
        let id = PostId::compose(1_000, 3, 4);
        let c = key.encode(id);
        assert_eq!(key.decode(&c), Ok(id));
        let other = CursorKey::new(b"other");
        assert_eq!(other.decode(&c), Err(CursorError::NotOurs));
        let forged = c.replacen(&id.to_string(), &(id.raw() + 1).to_string(), 1);
        assert_eq!(key.decode(&forged), Err(CursorError::NotOurs));
        for bad in ["", ".", "12", "x.y", "0.0000000000000000", "-5.00"] {
            assert_eq!(key.decode(bad), Err(CursorError::NotOurs), "{bad}");
        }
    }
}
