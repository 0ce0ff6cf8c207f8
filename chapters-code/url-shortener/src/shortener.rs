//! The use cases: create, resolve (redirect), delete, stats.
//!
//! This is where the pieces meet: validated domain types in, the store
//! behind a timeout, the cache in front of it, the click recorder beside
//! the redirect. It knows nothing about HTTP; `service` translates.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::cache::{Entry, LinkCache};
use crate::clicks::ClickRecorder;
use crate::codegen::{CodeGenerator, CodegenError};
use crate::domain::{
    Alias, AliasError, Code, Expiry, ExpiryError, Link, LinkState, NewLink, TargetUrl, UrlError,
    UrlPolicy, is_reserved,
};
use crate::metrics::Metrics;
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
    /// The row to insert under `code`.
    fn new_link(&self, code: Code, now: DateTime<Utc>) -> NewLink {
        NewLink {
            code,
            target: self.target.clone(),
            created_at: now,
            expires_at: self.expires_at,
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
        match &req.alias {
            Some(alias) => self.create_alias(alias.as_code().clone(), &req, now).await,
            None => self.create_generated(&req, now).await,
        }
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
        now: DateTime<Utc>,
    ) -> Result<Created, LinkError> {
        match self.insert(req.new_link(code.clone(), now)).await {
            Ok(link) => Ok(Created { link, is_new: true }),
            Err(StoreError::CodeTaken) => match self.same_link(&code, req, now).await? {
                Some(link) => Ok(Created {
                    link,
                    is_new: false,
                }),
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
        now: DateTime<Utc>,
    ) -> Result<Created, LinkError> {
        for attempt in 0..self.inner.max_code_attempts {
            let code = self.next_code(&req.target, attempt).await?;
            if is_reserved(code.as_str()) {
                continue; // a generated code must not shadow a route either
            }
            match self.insert(req.new_link(code.clone(), now)).await {
                Ok(link) => return Ok(Created { link, is_new: true }),
                // The hash strategy gives the same URL the same code: the
                // taken code may be this very link, created before.
                Err(StoreError::CodeTaken) if self.inner.ids.is_deterministic() => {
                    if let Some(link) = self.same_link(&code, req, now).await? {
                        return Ok(Created {
                            link,
                            is_new: false,
                        });
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
                Err(CodegenError::AllocatorUnavailable(format!(
                    "no answer within {limit:?}"
                )))
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

    /// Inserts, then clears the code from the caches: it may be cached as "missing".
    async fn insert(&self, link: NewLink) -> Result<Link, StoreError> {
        let code = link.code.clone();
        let link = self.within(self.inner.store.insert(link)).await?;
        self.inner.cache.invalidate(&code).await;
        Ok(link)
    }
    // ANCHOR_END: same_link

    // ANCHOR: resolve
    /// The target to redirect `code` to, recording the click.
    pub async fn resolve(&self, code: &str, now: DateTime<Utc>) -> Result<Arc<str>, LinkError> {
        // A string that cannot be a code names no link; no I/O needed.
        let code = Code::parse(code).map_err(|_| LinkError::NotFound)?;
        let store = &self.inner.store;
        let entry = self
            .inner
            .cache
            .get_or_load(&code, || self.within(store.get(&code)))
            .await?;
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
    /// Deletes the link (soft), then forgets it in both cache layers.
    pub async fn delete(&self, code: &str, now: DateTime<Utc>) -> Result<(), LinkError> {
        let code = Code::parse(code).map_err(|_| LinkError::NotFound)?;
        let outcome = self.within(self.inner.store.delete(&code, now)).await?;
        // Also on AlreadyDeleted: it retries an invalidation that may have
        // failed the first time (Redis down), which would otherwise leave a
        // stale entry redirecting until its TTL.
        if outcome != DeleteOutcome::NotFound {
            self.inner.cache.invalidate(&code).await;
        }
        match outcome {
            DeleteOutcome::Deleted => Ok(()),
            DeleteOutcome::AlreadyDeleted => Err(LinkError::Gone(Gone::Deleted)),
            DeleteOutcome::NotFound => Err(LinkError::NotFound),
        }
    }
    // ANCHOR_END: delete

    // ANCHOR: stats
    /// Click statistics; available for expired links, not for deleted ones.
    pub async fn stats(&self, code: &str) -> Result<Stats, LinkError> {
        let code = Code::parse(code).map_err(|_| LinkError::NotFound)?;
        let link = self
            .within(self.inner.store.get(&code))
            .await?
            .ok_or(LinkError::NotFound)?;
        if link.deleted_at.is_some() {
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
