//! What the binary reads from its environment besides the service block's
//! variables: the instance's identity and whom it trusts.
//!
//! With PostgreSQL (a real deployment, `DATABASE_URL` set), three settings
//! have no safe default and the service refuses to start without them:
//! `NODE_ID`, since two instances with the same node issue the same post
//! ids; `CURSOR_SECRET`, since the demo secret is in the source and anyone
//! could sign cursors with it; and `TRUST_USER_HEADER`, since trusting
//! `X-User-Id` is safe only behind a gateway that strips the client's copy,
//! and the service cannot tell whether one is there. With `false` the
//! service has no other way to know the caller, so every route but user
//! creation and the health check answers 401. The in-memory demo runs as
//! node 0 with the demo secret and trusts the header.

use block_service::var_or_in;

// ANCHOR: config
/// The demo's cursor secret; refused with PostgreSQL.
pub const DEMO_CURSOR_SECRET: &str = "demo";

/// The settings the use cases and routes need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// This instance's Snowflake node (`NODE_ID`, 0 to 1023), unique per instance.
    pub node: u16,
    /// The key that signs cursors (`CURSOR_SECRET`).
    pub cursor_secret: String,
    /// Whether `X-User-Id` is taken as the acting user (`TRUST_USER_HEADER`,
    /// required with PostgreSQL, true in the demo): only behind a gateway
    /// that authenticates the caller and removes any copy the client sent.
    pub trust_user_header: bool,
}

impl Settings {
    /// Reads the settings through `var`; `durable` is true when PostgreSQL
    /// is used, and then `NODE_ID`, `CURSOR_SECRET` and `TRUST_USER_HEADER`
    /// are required.
    pub fn from_lookup(
        var: impl Fn(&str) -> Option<String>,
        durable: bool,
    ) -> anyhow::Result<Self> {
        let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        if durable && set("NODE_ID").is_none() {
            anyhow::bail!(
                "NODE_ID (0 to 1023, different on every instance) must be set with \
                 DATABASE_URL: two instances on one node issue the same post ids"
            );
        }
        let cursor_secret = match set("CURSOR_SECRET") {
            Some(s) => s,
            None if durable => anyhow::bail!(
                "CURSOR_SECRET must be set with DATABASE_URL: the demo secret is in \
                 the source, so anyone could sign cursors with it"
            ),
            None => DEMO_CURSOR_SECRET.to_string(),
        };
        if durable && cursor_secret == DEMO_CURSOR_SECRET {
            anyhow::bail!("CURSOR_SECRET is the demo secret, which is public");
        }
        if durable && set("TRUST_USER_HEADER").is_none() {
            anyhow::bail!(
                "TRUST_USER_HEADER must be set with DATABASE_URL: true only behind a \
                 gateway that authenticates callers and strips a client's X-User-Id; \
                 false answers 401 on every route but user creation and health"
            );
        }
        Ok(Self {
            node: var_or_in(&var, "NODE_ID", 0u16)?,
            cursor_secret,
            trust_user_header: var_or_in(&var, "TRUST_USER_HEADER", true)?,
        })
    }

    /// [`Settings::from_lookup`] over the process environment.
    pub fn from_env(durable: bool) -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok(), durable)
    }
}
// ANCHOR_END: config

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    // ANCHOR: refuses
    /// Seen failing when the binary defaulted `NODE_ID` to 0 and
    /// `CURSOR_SECRET` to the demo secret with PostgreSQL, and when it
    /// trusted `X-User-Id` by default there.
    #[test]
    fn a_deployment_on_postgres_must_bring_its_node_id_and_cursor_secret() {
        let node = ("NODE_ID", "7");
        let secret = ("CURSOR_SECRET", "s3cret");
        let err = Settings::from_lookup(env(&[secret]), true).expect_err("no node");
        assert!(err.to_string().contains("NODE_ID"), "{err}");
        let err = Settings::from_lookup(env(&[node]), true).expect_err("no secret");
        assert!(err.to_string().contains("CURSOR_SECRET"), "{err}");
        let demo = ("CURSOR_SECRET", DEMO_CURSOR_SECRET);
        assert!(Settings::from_lookup(env(&[node, demo]), true).is_err());
        let err = Settings::from_lookup(env(&[node, secret]), true).expect_err("no trust");
        assert!(err.to_string().contains("TRUST_USER_HEADER"), "{err}");
        let trust = ("TRUST_USER_HEADER", "true");
        let ok = Settings::from_lookup(env(&[node, secret, trust]), true).expect("all three");
        assert_eq!((ok.node, ok.cursor_secret.as_str()), (7, "s3cret"));
        assert!(ok.trust_user_header);
        let ids = ("NODE_ID", "x");
        assert!(Settings::from_lookup(env(&[ids, secret, trust]), true).is_err());
        // The in-memory demo runs without either.
        let demo = Settings::from_lookup(env(&[]), false).expect("demo");
        assert_eq!(
            (demo.node, demo.cursor_secret.as_str()),
            (0, DEMO_CURSOR_SECRET)
        );
        assert!(demo.trust_user_header);
        let untrusting =
            Settings::from_lookup(env(&[("TRUST_USER_HEADER", "false")]), false).expect("set");
        assert!(!untrusting.trust_user_header);
    }
    // ANCHOR_END: refuses
}
