//! The request's fingerprint: what "the same request" means.

use std::fmt;

use sha2::{Digest, Sha256};

// ANCHOR: canonical
/// The canonical form of a request: each field length-prefixed, so no two
/// different requests share one (`("ab", "c")` and `("a", "bc")` differ).
///
/// The body is the caller's canonical form of the *parsed* request (fields
/// in declaration order, lines sorted), so that key order and white space
/// in the JSON do not make two equal requests differ.
pub fn canonical(method: &str, route: &str, account: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + method.len() + route.len() + account.len() + body.len());
    out.extend_from_slice(b"idempotency-fingerprint-v1");
    for field in [
        method.as_bytes(),
        route.as_bytes(),
        account.as_bytes(),
        body,
    ] {
        out.extend_from_slice(&(field.len() as u64).to_be_bytes());
        out.extend_from_slice(field);
    }
    out
}
// ANCHOR_END: canonical

/// SHA-256 of a request's canonical form, as 64 lowercase hex digits.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// The fingerprint of a request: method, route, account and canonical body.
    pub fn of(method: &str, route: &str, account: &str, body: &[u8]) -> Self {
        let digest = Sha256::digest(canonical(method, route, account, body));
        Self(digest.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The fingerprint of a parsed request serialized as JSON (fields in
    /// declaration order); `endpoint` is `"METHOD /route"`.
    pub fn of_json<T: serde::Serialize>(
        endpoint: &str,
        account: &str,
        request: &T,
    ) -> Result<Self, serde_json::Error> {
        let (method, route) = endpoint.split_once(' ').unwrap_or(("", endpoint));
        Ok(Self::of(
            method,
            route,
            account,
            &serde_json::to_vec(request)?,
        ))
    }

    /// A fingerprint read back from the store, if it has the right form.
    pub fn parse(hex: &str) -> Option<Self> {
        (hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| Self(hex.to_string()))
    }

    /// The 64 hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
