//! A stored link and the state a redirect sees it in.

use chrono::{DateTime, Utc};

use super::{Code, Expiry, TargetUrl, TokenHash};

/// What the create path hands to the store: every field already validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewLink {
    /// The code, generated or a custom alias.
    pub code: Code,
    /// Where the code redirects.
    pub target: TargetUrl,
    /// When the link was created (the creating node's clock).
    pub created_at: DateTime<Utc>,
    /// When it stops redirecting, if ever.
    pub expires_at: Option<Expiry>,
    /// The hash of the management token handed to the creator.
    pub token_hash: TokenHash,
}

/// A link as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// The code, unique for ever: deleted codes are not reused.
    pub code: Code,
    /// Where the code redirects.
    pub target: TargetUrl,
    /// When the link was created.
    pub created_at: DateTime<Utc>,
    /// When it stops redirecting, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was deleted (soft delete), if it was.
    pub deleted_at: Option<DateTime<Utc>>,
    /// The hash of its management token; delete and stats need the token.
    pub token_hash: TokenHash,
}

// ANCHOR: link_state
/// What a redirect does with a link at a given moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// Redirect.
    Live,
    /// 410 Gone: the expiry has passed.
    Expired,
    /// 410 Gone: the owner deleted it.
    Deleted,
}

impl Link {
    /// The state of the link at `now`. Deletion wins over expiry.
    pub fn state(&self, now: DateTime<Utc>) -> LinkState {
        match self.expires_at {
            _ if self.deleted_at.is_some() => LinkState::Deleted,
            Some(at) if at <= now => LinkState::Expired,
            _ => LinkState::Live,
        }
    }
}
// ANCHOR_END: link_state

impl NewLink {
    /// The link as the store will hold it right after the insert.
    pub fn into_link(self) -> Link {
        Link {
            code: self.code,
            target: self.target,
            created_at: self.created_at,
            expires_at: self.expires_at.map(Expiry::instant),
            deleted_at: None,
            token_hash: self.token_hash,
        }
    }
}
