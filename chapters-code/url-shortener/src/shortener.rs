//! The use cases: create, resolve (redirect), delete, stats.
//!
//! This is where the pieces meet: validated domain types in, the store
//! behind a timeout, the cache in front of it, the click recorder beside
//! the redirect. It knows nothing about HTTP; `service` translates.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::cache::{Entry, LinkCache};
use crate::clicks::ClickRecorder;
use crate::codegen::{CodeGenerator, CodegenError};
use crate::domain::{
    Alias, AliasError, Code, Expiry, ExpiryError, Link, LinkState, ManagementToken, NewLink,
    TargetUrl, TokenError, UrlError, UrlPolicy, is_reserved,
};
use crate::metrics::Metrics;
use crate::scan::{MissBudget, Taken};
use crate::store::{DayCount, DeleteOutcome, LinkStore, StoreError};

// ANCHOR: errors
/// Why a use case failed. `service::error` maps each variant to an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The request is well-formed but a value breaks a rule.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// No link has this code.
    #[error("no link has this code")]
    NotFound,
    /// The link existed but no longer redirects.
    #[error("the link {0}")]
    Gone(Gone),
    /// The custom alias belongs to another link.
    #[error("the alias is taken")]
    AliasTaken,
    /// The request may not manage this link.
    #[error(transparent)]
    Forbidden(#[from] TokenError),
    /// This client's lookups found nothing too often; retry after the wait.
    #[error("too many unknown codes from this client; retry in {0:?}")]
    TooManyMisses(Duration),
    /// Every generated candidate was taken.
    #[error("no free code after {0} attempts")]
    NoFreeCode(u32),
    /// The code generator failed.
    #[error(transparent)]
    Codegen(#[from] CodegenError),
    /// The store failed or timed out.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Which rule a create request broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// The target URL.
    #[error("invalid url: {0}")]
    Url(#[from] UrlError),
    /// The custom alias.
    #[error("invalid alias: {0}")]
    Alias(#[from] AliasError),
    /// The expiry.
    #[error("invalid expiry: {0}")]
    Expiry(#[from] ExpiryError),
}

/// Why a link no longer redirects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Gone {
    /// Its expiry passed.
    #[error("has expired")]
    Expired,
    /// Its owner deleted it.
    #[error("was deleted")]
    Deleted,
}
// ANCHOR_END: errors

impl Invalid {
    /// Every name [`Invalid::reason`] can return; a unit test checks the list
    /// against the variants, and the behaviour suite sends one request per name.
    pub const REASONS: &[&str] = &[
        "url_empty",
        "url_too_long",
        "url_missing_scheme",
        "url_malformed",
        "url_scheme_not_allowed",
        "url_missing_host",
        "url_credentials_not_allowed",
        "url_points_at_us",
        "url_private_address",
        "alias_too_short",
        "alias_too_long",
        "alias_invalid_char",
        "alias_reserved",
        "alias_offensive",
        "expiry_both_given",
        "expiry_not_in_future",
        "expiry_too_far",
    ];

    /// The machine-readable name of the broken rule.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Url(e) => e.reason(),
            Self::Alias(e) => e.reason(),
            Self::Expiry(e) => e.reason(),
        }
    }
}

/// A create request whose every field has been parsed.
#[derive(Clone, Debug)]
pub struct LinkRequest {
    /// Where the link goes.
    pub target: TargetUrl,
    /// The code the user chose, if any.
    pub alias: Option<Alias>,
    /// When it stops redirecting, if ever.
    pub expires_at: Option<Expiry>,
}

impl LinkRequest {
    /// The row to insert under `code`, owned by the holder of `token`.
    fn new_link(&self, code: Code, token: &ManagementToken, now: DateTime<Utc>) -> NewLink {
        NewLink {
            code,
            target: self.target.clone(),
            created_at: now,
            expires_at: self.expires_at,
            token_hash: token.hash(),
        }
    }
}

/// The result of a create.
#[derive(Clone, Debug)]
pub struct Created {
    /// The link.
    pub link: Link,
    /// False when an identical existing link was returned: the hash
    /// strategy's dedup, or a retried alias create.
    pub is_new: bool,
    /// The management token, only for a new link: an existing link's
    /// token was handed to whoever created it, and is not stored.
    pub token: Option<ManagementToken>,
}

// ANCHOR: stats_type
/// Click statistics of one link.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// The link.
    pub code: Code,
    /// All clicks written so far (the last `flush_every` may still be in flight).
    pub total: u64,
    /// Clicks per UTC day, oldest first; days without clicks are absent.
    pub by_day: Vec<DayCount>,
}
// ANCHOR_END: stats_type

/// The shortener's use cases; a cheap handle, cloned into every request.
pub struct Shortener<S> {
    inner: Arc<Parts<S>>,
}

impl<S> Clone for Shortener<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

/// The parts a [`Shortener`] is built from.
pub struct Parts<S> {
    /// The source of truth.
    pub store: S,
    /// The code strategy.
    pub ids: Arc<dyn CodeGenerator>,
    /// The cache in front of the store.
    pub cache: LinkCache,
    /// Where redirects report clicks.
    pub clicks: ClickRecorder,
    /// Which targets are refused as ours.
    pub policy: UrlPolicy,
    /// Longest wait for a store call.
    pub store_timeout: Duration,
    /// Attempts at a free generated code.
    pub max_code_attempts: u32,
    /// Per-client budget of lookups that find nothing; `None` turns it off.
    pub misses: Option<MissBudget>,
    /// The same for delete and stats, kept apart so that a scanner on the
    /// redirects does not lock an owner behind the same address out of a
    /// takedown.
    pub manage_misses: Option<MissBudget>,
    /// Shared counters.
    pub metrics: Arc<Metrics>,
}

impl<S: LinkStore> Shortener<S> {
    /// Assembles a shortener.
    pub fn new(parts: Parts<S>) -> Self {
        Self {
            inner: Arc::new(parts),
        }
    }

    /// The store (for tests and benchmarks that seed data directly).
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    /// The shared counters.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    // ANCHOR: validate
    /// Parses the raw fields of a create request. Nothing is written.
    pub fn validate(
        &self,
        url: &str,
        alias: Option<&str>,
        expires_at: Option<DateTime<Utc>>,
        ttl_seconds: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<LinkRequest, Invalid> {
        Ok(LinkRequest {
            target: TargetUrl::parse(url, &self.inner.policy)?,
            alias: alias.map(Alias::parse).transpose()?,
            expires_at: Expiry::from_request(expires_at, ttl_seconds, now)?,
        })
    }
    // ANCHOR_END: validate

    /// Creates a link with the requested alias, or with a generated code.
    pub async fn create(&self, req: LinkRequest, now: DateTime<Utc>) -> Result<Created, LinkError> {
        let token = ManagementToken::generate();
        let (link, is_new) = match &req.alias {
            Some(alias) => {
                self.create_alias(alias.as_code().clone(), &req, &token, now)
                    .await?
            }
            None => self.create_generated(&req, &token, now).await?,
        };
        Ok(Created {
            link,
            is_new,
            token: is_new.then_some(token),
        })
    }

    // ANCHOR: create_alias
    /// No read-before-write: the insert is the check, and of two concurrent
    /// inserts the database lets one commit. After a conflict, an identical
    /// request (a retry after a timeout whose insert did commit) gets the
    /// existing link instead of a 409.
    async fn create_alias(
        &self,
        code: Code,
        req: &LinkRequest,
        token: &ManagementToken,
        now: DateTime<Utc>,
    ) -> Result<(Link, bool), LinkError> {
        match self.insert(req.new_link(code.clone(), token, now)).await {
            Ok(link) => Ok((link, true)),
            Err(StoreError::CodeTaken) => match self.same_link(&code, req, now).await? {
                Some(link) => Ok((link, false)),
                None => Err(LinkError::AliasTaken),
            },
            Err(e) => Err(e.into()),
        }
    }
    // ANCHOR_END: create_alias

    // ANCHOR: create_generated
    /// Asks the generator for candidates until one inserts, at most
    /// `max_code_attempts` times.
    async fn create_generated(
        &self,
        req: &LinkRequest,
        token: &ManagementToken,
        now: DateTime<Utc>,
    ) -> Result<(Link, bool), LinkError> {
        for attempt in 0..self.inner.max_code_attempts {
            let code = self.next_code(&req.target, attempt).await?;
            if is_reserved(code.as_str()) {
                continue; // a generated code must not shadow a route either
            }
            match self.insert(req.new_link(code.clone(), token, now)).await {
                Ok(link) => return Ok((link, true)),
                // The hash strategy gives the same URL the same code: the
                // taken code may be this very link, created before.
                Err(StoreError::CodeTaken) if self.inner.ids.is_deterministic() => {
                    if let Some(link) = self.same_link(&code, req, now).await? {
                        return Ok((link, false));
                    }
                }
                // Taken by an alias or by a random twin: draw again.
                Err(StoreError::CodeTaken) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(LinkError::NoFreeCode(self.inner.max_code_attempts))
    }
    // ANCHOR_END: create_generated

    /// A candidate code; bounded by the store timeout, because a strategy
    /// may ask a central allocator (on the same database) for ids.
    async fn next_code(&self, target: &TargetUrl, attempt: u32) -> Result<Code, CodegenError> {
        let limit = self.inner.store_timeout;
        tokio::time::timeout(limit, self.inner.ids.next_code(target, attempt))
            .await
            .unwrap_or_else(|_| {
                Err(CodegenError::AllocatorUnavailable(
                    block_errors::Class::Retryable(block_errors::Transient::Timeout),
                    format!("no answer within {limit:?}"),
                ))
            })
    }

    // ANCHOR: same_link
    /// The existing link under `code` if it is what `req` would create:
    /// same target, live, and neither has an expiry.
    async fn same_link(
        &self,
        code: &Code,
        req: &LinkRequest,
        now: DateTime<Utc>,
    ) -> Result<Option<Link>, StoreError> {
        let existing = self.within(self.inner.store.get(code)).await?;
        Ok(existing.filter(|l| {
            l.target == req.target
                && l.state(now) == LinkState::Live
                && l.expires_at.is_none()
                && req.expires_at.is_none()
        }))
    }

    /// Inserts, then tells the caches: the code may be cached as "missing".
    async fn insert(&self, link: NewLink) -> Result<Link, StoreError> {
        let link = self.within(self.inner.store.insert(link)).await?;
        if let Err(e) = self.inner.cache.created(&link).await {
            // The link exists; a cached "missing" may hide it for the negative TTL.
            tracing::warn!(error = %e, "create not applied to Redis");
        }
        Ok(link)
    }
    // ANCHOR_END: same_link

    /// The target to redirect `code` to, recording the click; no client, so
    /// no miss budget (benchmarks and cache priming use it).
    pub async fn resolve(&self, code: &str, now: DateTime<Utc>) -> Result<Arc<str>, LinkError> {
        self.resolve_for(None, code, now).await
    }

    // ANCHOR: resolve
    /// The target to redirect `code` to for `client`, recording the click.
    pub async fn resolve_for(
        &self,
        client: Option<IpAddr>,
        code: &str,
        now: DateTime<Utc>,
    ) -> Result<Arc<str>, LinkError> {
        // A string that cannot be a code names no link; no I/O needed.
        let code = Code::parse(code).map_err(|_| LinkError::NotFound)?;
        let budget = client.zip(self.inner.misses.as_ref());
        // A client past its budget is answered by the caches without
        // starting a load: a load would write a version key to Redis first.
        if let Some(wait) = budget.and_then(|(ip, misses)| misses.would_refuse(ip, now)) {
            return match self.inner.cache.cached(&code).await {
                Some(entry) => self.answer(code, entry, now),
                None => {
                    Metrics::inc(&self.inner.metrics.misses_refused);
                    Err(LinkError::TooManyMisses(wait))
                }
            };
        }
        // A lookup that shared another client's load, refused by that
        // client's budget, tries once more with its own.
        let mut retried = false;
        loop {
            let ran = AtomicBool::new(false);
            let store = &self.inner.store;
            let load = || async {
                ran.store(true, Ordering::Relaxed);
                // Only a lookup that both caches miss reaches here. The miss
                // is taken before the read, atomically, so concurrent
                // lookups cannot all pass a check; and given back if the
                // read found a link or failed other than by timing out (a
                // read that timed out did cost the store).
                let taken = match budget.map(|(ip, misses)| misses.take(ip, now)) {
                    Some(Err(wait)) => {
                        Metrics::inc(&self.inner.metrics.misses_refused);
                        return Err(LinkError::TooManyMisses(wait));
                    }
                    Some(Ok(taken)) => Some(taken),
                    None => None,
                };
                Metrics::inc(&self.inner.metrics.store_loads);
                let read = self.within(store.get(&code)).await;
                if let Some((taken, (_, misses))) = taken.zip(budget)
                    && !matches!(read, Ok(None) | Err(StoreError::Timeout(_)))
                {
                    misses.give_back(taken, now);
                }
                Ok(read?)
            };
            match self.inner.cache.get_or_load(&code, load).await {
                Err(LinkError::TooManyMisses(_)) if !retried && !ran.load(Ordering::Relaxed) => {
                    retried = true;
                }
                entry => return self.answer(code, entry?, now),
            }
        }
    }

    /// The answer to a redirect of `code` given what the caches or the store know.
    fn answer(&self, code: Code, entry: Entry, now: DateTime<Utc>) -> Result<Arc<str>, LinkError> {
        match entry {
            Entry::Missing => Err(LinkError::NotFound),
            Entry::Deleted => Err(LinkError::Gone(Gone::Deleted)),
            // Expiry is checked here, at read time, so a cached entry can
            // never outlive its link's expiry.
            Entry::Live {
                expires_at: Some(at),
                ..
            } if at <= now => Err(LinkError::Gone(Gone::Expired)),
            Entry::Live { target, .. } => {
                // Fire and forget: the redirect never waits for the click write.
                self.inner.clicks.record(code, now);
                Ok(target)
            }
        }
    }
    // ANCHOR_END: resolve

    // ANCHOR: delete
    /// Deletes the link (soft) if `token` is its management token, then
    /// marks it deleted in both cache layers.
    ///
    /// A wrong token and an unknown code get the same answer (no existence
    /// oracle), and each spends one miss of `client`'s management budget,
    /// as large as the redirects' but apart from it: guessing through this
    /// route costs what guessing through the redirect does, and a scanner
    /// on the redirects does not block an owner's takedown. One guessing
    /// here does, from the same address.
    pub async fn delete(
        &self,
        client: Option<IpAddr>,
        code: &str,
        token: &ManagementToken,
        now: DateTime<Utc>,
    ) -> Result<(), LinkError> {
        let code = Code::parse(code).map_err(|_| TokenError::Wrong)?;
        let taken = self.take_miss(client, now)?;
        let outcome = self
            .within(self.inner.store.delete(&code, &token.hash(), now))
            .await;
        if !matches!(
            outcome,
            Ok(DeleteOutcome::WrongToken | DeleteOutcome::NotFound) | Err(StoreError::Timeout(_))
        ) {
            self.give_back(taken, now);
        }
        let outcome = outcome?;
        // Also on AlreadyDeleted: it repeats a tombstone that may have
        // failed the first time (Redis down), which would otherwise leave a
        // live entry in Redis until its TTL.
        // If every try fails, the store's answer stands; Redis may redirect
        // to the link until its TTL, or until this delete is repeated.
        if matches!(
            outcome,
            DeleteOutcome::Deleted | DeleteOutcome::AlreadyDeleted
        ) && let Err(e) = self.inner.cache.deleted(&code).await
        {
            tracing::error!(error = %e, "tombstone not applied to Redis after every try");
        }
        match outcome {
            DeleteOutcome::Deleted => Ok(()),
            DeleteOutcome::AlreadyDeleted => Err(LinkError::Gone(Gone::Deleted)),
            DeleteOutcome::WrongToken | DeleteOutcome::NotFound => Err(TokenError::Wrong.into()),
        }
    }
    // ANCHOR_END: delete

    // ANCHOR: stats
    /// Click statistics, for the holder of the management token; available
    /// for expired links, not for deleted ones. Refused like [`Self::delete`].
    pub async fn stats(
        &self,
        client: Option<IpAddr>,
        code: &str,
        token: &ManagementToken,
        now: DateTime<Utc>,
    ) -> Result<Stats, LinkError> {
        let code = Code::parse(code).map_err(|_| TokenError::Wrong)?;
        let taken = self.take_miss(client, now)?;
        let link = self.within(self.inner.store.get(&code)).await;
        let owned = match link {
            Ok(Some(link)) if link.token_hash.admits(token) => link,
            Ok(_) => return Err(TokenError::Wrong.into()),
            Err(e) => {
                if !matches!(e, StoreError::Timeout(_)) {
                    self.give_back(taken, now);
                }
                return Err(e.into());
            }
        };
        self.give_back(taken, now);
        if owned.deleted_at.is_some() {
            return Err(LinkError::Gone(Gone::Deleted));
        }
        let by_day = self.within(self.inner.store.daily_clicks(&code)).await?;
        let total = by_day.iter().map(|d| d.count).sum();
        Ok(Stats {
            code,
            total,
            by_day,
        })
    }

    /// One miss of `client`'s budget, taken before a store read whose
    /// failure to find anything counts as a miss; 429 when it is spent.
    fn take_miss(
        &self,
        client: Option<IpAddr>,
        now: DateTime<Utc>,
    ) -> Result<Option<Taken>, LinkError> {
        match client.zip(self.inner.manage_misses.as_ref()) {
            Some((ip, misses)) => misses.take(ip, now).map(Some).map_err(|wait| {
                Metrics::inc(&self.inner.metrics.misses_refused);
                LinkError::TooManyMisses(wait)
            }),
            None => Ok(None),
        }
    }

    /// Returns a miss that [`Self::take_miss`] took for a read that found what it looked for.
    fn give_back(&self, taken: Option<Taken>, now: DateTime<Utc>) {
        if let (Some(taken), Some(misses)) = (taken, self.inner.manage_misses.as_ref()) {
            misses.give_back(taken, now);
        }
    }
    // ANCHOR_END: stats

    // ANCHOR: within
    /// Bounds a store call by `store_timeout`. Without it a hung database
    /// would hold every request (and graceful shutdown) hostage.
    async fn within<T>(
        &self,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let limit = self.inner.store_timeout;
        tokio::time::timeout(limit, call)
            .await
            .unwrap_or(Err(StoreError::Timeout(limit)))
    }
    // ANCHOR_END: within
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn reasons_lists_exactly_what_reason_returns() {
        let every = [
            Invalid::from(UrlError::Empty),
            UrlError::TooLong(0).into(),
            UrlError::MissingScheme.into(),
            UrlError::Malformed(String::new()).into(),
            UrlError::SchemeNotAllowed(String::new()).into(),
            UrlError::MissingHost.into(),
            UrlError::CredentialsNotAllowed.into(),
            UrlError::PointsAtUs(String::new()).into(),
            UrlError::PrivateAddress(String::new()).into(),
            AliasError::TooShort(0).into(),
            AliasError::TooLong(0).into(),
            AliasError::InvalidChar('/').into(),
            AliasError::Reserved(String::new()).into(),
            AliasError::Offensive.into(),
            ExpiryError::BothGiven.into(),
            ExpiryError::NotInFuture.into(),
            ExpiryError::TooFar.into(),
        ];
        let returned: BTreeSet<&str> = every.iter().map(Invalid::reason).collect();
        let listed: BTreeSet<&str> = Invalid::REASONS.iter().copied().collect();
        assert_eq!(returned, listed);
        assert_eq!(listed.len(), Invalid::REASONS.len());
    }
}
