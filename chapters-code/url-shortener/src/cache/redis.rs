//! The shared cache layer on Redis: the cache-aside block's
//! [`RedisCache`], with the link codec and the chapter's settings.
//!
//! Fills, tombstones, the negative limit, timeouts and the breaker are the
//! block's (see the book's cache-aside page). What is the chapter's own is
//! the mapping of its configuration and the value encoding: keys are
//! `{prefix}link:{code}` (`:v` appended for the version), values short
//! strings (see [`LinkCodec`]).

use std::sync::Arc;

use block_cache_aside::{Codec, FillMode, RedisCache, RedisConfig as BlockConfig};
use chrono::DateTime;

use super::Entry;
use crate::config::RedisConfig;
use crate::domain::{TargetUrl, UrlPolicy};
use crate::metrics::Metrics;

// ANCHOR: redis_ops
/// Most "no such code" entries in Redis at once: a scanner's guesses cost
/// database reads (the miss budget limits those), never unbounded memory.
pub const NEGATIVE_LIMIT: u64 = 100_000;

/// The Redis layer of [`super::LinkCache`].
#[derive(Clone)]
pub struct RedisLayer {
    pub(super) inner: RedisCache<LinkCodec>,
}

impl RedisLayer {
    /// A layer on the server in `config`. Connects lazily, so the service
    /// starts (and redirects, from the store) while Redis is down. Must be
    /// called inside a tokio runtime.
    /// Values that point where `policy` refuses are garbage (see [`LinkCodec`]).
    pub fn new(
        config: &RedisConfig,
        policy: &UrlPolicy,
        metrics: Arc<Metrics>,
    ) -> Result<Self, ::redis::RedisError> {
        let block = BlockConfig {
            url: config.url.clone(),
            prefix: format!("{}link:", config.key_prefix),
            ttl: config.ttl,
            negative_ttl: config.negative_ttl,
            negative_limit: NEGATIVE_LIMIT,
            // A delete is final (codes are never reused): its tombstone
            // may live as long as any entry.
            tombstone_ttl: config.ttl,
            version_ttl: config.ttl,
            timeout: config.timeout,
            cooldown: config.cooldown,
            fill: FillMode::Conditional,
        };
        Ok(Self {
            inner: RedisCache::new(block, Arc::new(LinkCodec::new(policy)), metrics)?,
        })
    }
}
// ANCHOR_END: redis_ops

// ANCHOR: redis_encoding
/// `L <expires-ms or -> <target>` for a live link, `D` deleted, `M` missing.
/// A normalised URL contains no space, so the target is everything after the second one.
#[derive(Clone, Debug)]
pub struct LinkCodec {
    /// What a create accepts: a value pointing at us or at a private
    /// address cannot have come from a create, so it is garbage.
    policy: UrlPolicy,
}

impl LinkCodec {
    /// A codec that decodes only targets `policy` accepts.
    pub fn new(policy: &UrlPolicy) -> Self {
        Self {
            policy: policy.clone(),
        }
    }
}

impl Codec for LinkCodec {
    type Value = Entry;

    fn encode(&self, entry: &Entry) -> String {
        match entry {
            Entry::Live { target, expires_at } => {
                let exp = expires_at
                    .map_or_else(|| "-".to_string(), |t| t.timestamp_millis().to_string());
                format!("L {exp} {target}")
            }
            Entry::Deleted => "D".to_string(),
            Entry::Missing => "M".to_string(),
        }
    }

    /// The inverse of `encode`; `None` for anything else. The target must
    /// be what [`TargetUrl`] accepts under the create's policy and already
    /// in its normalised form: exactly what a create could have stored. (A
    /// link stored under an older, looser policy is then never served from
    /// Redis, only from the store and moka.)
    fn decode(&self, value: &str) -> Option<Entry> {
        match value {
            "D" => Some(Entry::Deleted),
            "M" => Some(Entry::Missing),
            _ => {
                let mut parts = value.splitn(3, ' ');
                let (kind, exp, target) = (parts.next()?, parts.next()?, parts.next()?);
                if kind != "L" {
                    return None;
                }
                let parsed = TargetUrl::parse(target, &self.policy).ok()?;
                if parsed.as_str() != target {
                    return None;
                }
                let expires_at = match exp {
                    "-" => None,
                    ms => Some(DateTime::from_timestamp_millis(ms.parse().ok()?)?),
                };
                Some(Entry::Live {
                    target: Arc::from(target),
                    expires_at,
                })
            }
        }
    }

    /// "No such code" is cached briefly and within [`NEGATIVE_LIMIT`]; a
    /// deleted link is not negative: its tombstone is final.
    fn is_negative(&self, entry: &Entry) -> bool {
        matches!(entry, Entry::Missing)
    }
}
// ANCHOR_END: redis_encoding

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_the_round_trip() {
        let at = DateTime::from_timestamp_millis(1_767_225_600_123);
        let c = LinkCodec::new(&UrlPolicy::refusing(["sho.rt"]));
        for entry in [
            Entry::Live {
                target: Arc::from("https://example.com/a?b=c#d"),
                expires_at: None,
            },
            Entry::Live {
                target: Arc::from("https://example.com/"),
                expires_at: at,
            },
            Entry::Deleted,
            Entry::Missing,
        ] {
            assert_eq!(c.decode(&c.encode(&entry)), Some(entry));
        }
        for garbage in [
            "",
            "X",
            "L",
            "L -",
            "L - ",
            "L x https://e.com/",
            "L 99999999999999999999 https://e.com/",
            "L - javascript:alert(1)",
            "L - https://e.com/with space",
            "L - HTTPS://E.COM/",
            "L - https://e.com",
            "L - //e.com/",
            "L - https://sho.rt/loop",
            "L - http://127.0.0.1/",
        ] {
            assert_eq!(c.decode(garbage), None, "{garbage:?}");
        }
    }
}
