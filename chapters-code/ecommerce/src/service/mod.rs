//! The HTTP API (axum): parse, call the domain, map errors in one place.
//!
//! | route | does |
//! |---|---|
//! | `GET /products/{sku}` | one product, through the L1/L2 cache |
//! | `GET /search?q=&limit=` | full-text search (PostgreSQL GIN) |
//! | `GET /carts/{cart}` | the cart's lines |
//! | `DELETE /carts/{cart}` | empty the cart (the way out of a full one) |
//! | `POST /carts/{cart}/items` | add `{sku, quantity}`; never conflicts |
//! | `DELETE /carts/{cart}/items/{sku}` | remove a product |
//! | `POST /carts/{cart}/merge` | fold `{from}` (a guest cart) into this one, at login |
//! | `POST /checkout` | price, reserve, charge, create the order; `Idempotency-Key` required |
//! | `GET /orders/{id}` | one of the caller's orders |
//!
//! Authentication is out of the chapter's scope: a gateway is assumed to
//! put the signed-in account in `X-Account`. Account carts (`a-<account>`)
//! and orders are visible to their account only; a guest cart id is a
//! random 128-bit bearer token. Handlers parse everything into domain types
//! before touching a store, so a bad input is refused with a named error and
//! changes nothing.

mod error;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use block_rate_limiter::{GovernorGcra, Quota, RateLimitLayer, everyone};
use serde::{Deserialize, Serialize};

pub use error::{ApiError, problem_response};

use crate::cart::{CartId, CartStore};
use crate::catalog::Catalog;
use crate::checkout::provider::PaymentProvider;
use crate::checkout::{CHECKOUT_ENDPOINT, Checkout, CheckoutRequest, Order};
use crate::domain::{Currency, Product, Quantity, Sku, Tag};
use crate::idempotency::{IdempotencyKey, KeyScope};
use crate::store::Store;

// ANCHOR: headers
/// The header a client sets to make a checkout safe to retry.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Set to `true` on a response that replays an earlier request's answer.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";
/// The signed-in account, set by the gateway.
pub const ACCOUNT: &str = "x-account";
/// A request taking longer than this is answered 503.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest search query, in bytes.
pub const QUERY_MAX_LEN: usize = 200;
/// Most lines in one checkout (each line's quantity is at most 99): phase 1
/// locks one product row per line, so a request may not name thousands.
pub const MAX_LINES: usize = 100;
/// Largest request body, in bytes (axum's default is 2 MiB).
pub const BODY_LIMIT: usize = 64 * 1024;
// ANCHOR_END: headers

/// What every handler shares.
pub struct AppState<S, C, P> {
    /// Products, orders, keys.
    pub store: Arc<S>,
    /// The cached read path.
    pub catalog: Arc<Catalog<S>>,
    /// Carts.
    pub carts: Arc<C>,
    /// The checkout flow.
    pub checkout: Checkout<S, P>,
    /// Flash-sale admission in front of checkout, if any.
    pub admission: Option<Arc<Admission>>,
    /// The checkouts running in their own tasks: bounded, drained at shutdown.
    pub in_flight: InFlight,
}

impl<S, C, P> Clone for AppState<S, C, P> {
    fn clone(&self) -> Self {
        Self {
            store: Arc::clone(&self.store),
            catalog: Arc::clone(&self.catalog),
            carts: Arc::clone(&self.carts),
            checkout: self.checkout.clone(),
            admission: self.admission.clone(),
            in_flight: self.in_flight.clone(),
        }
    }
}

// ANCHOR: checkout_tasks
/// Most checkouts running at once on one instance: twice the PostgreSQL
/// pool (16), so a client that sends checkouts and hangs up at once leaves
/// at most this many running behind it, not one per request.
pub const MAX_CHECKOUTS_IN_FLIGHT: u32 = 32;

/// How long a shutdown waits for the checkouts still running: longer than
/// the longest one (a 5 s pool wait, phase 1, the provider's
/// [`PROVIDER_TIMEOUT`](crate::checkout::PROVIDER_TIMEOUT), another 5 s pool
/// wait, phase 2), and within the 30 s an orchestrator gives by default
/// between SIGTERM and SIGKILL.
pub const DRAIN_WITHIN: Duration = Duration::from_secs(20);

/// The checkouts running in tasks of their own. Each holds a permit from
/// start to end: a checkout that finds none left is refused at once
/// (`checkout-busy`, 429), and a shutdown takes every permit back, which
/// completes only when the last checkout has recorded its outcome.
#[derive(Clone)]
pub struct InFlight {
    permits: Arc<tokio::sync::Semaphore>,
    capacity: u32,
}

impl Default for InFlight {
    fn default() -> Self {
        Self::new(MAX_CHECKOUTS_IN_FLIGHT)
    }
}

impl InFlight {
    /// At most `capacity` checkouts at once.
    pub fn new(capacity: u32) -> Self {
        Self {
            permits: Arc::new(tokio::sync::Semaphore::new(capacity as usize)),
            capacity,
        }
    }

    /// How many checkouts are running now.
    pub fn running(&self) -> usize {
        (self.capacity as usize).saturating_sub(self.permits.available_permits())
    }

    /// A permit for one checkout, or `checkout-busy` when all are taken
    /// (or the service is draining).
    fn start(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        Arc::clone(&self.permits)
            .try_acquire_owned()
            .map_err(|_| ApiError::Busy)
    }

    /// Waits, up to `within`, for every running checkout to end, and
    /// refuses new ones from then on. False when some were still running
    /// at the deadline: their orders are left `pending_payment`, as after
    /// a SIGKILL, for the client's retry (there is no completer yet).
    pub async fn drain(&self, within: Duration) -> bool {
        let all = tokio::time::timeout(within, self.permits.acquire_many(self.capacity)).await;
        self.permits.close();
        matches!(all, Ok(Ok(_)))
    }
}
// ANCHOR_END: checkout_tasks

// ANCHOR: admission
/// The flash-sale limit: one GCRA state for every shopper (the block's
/// `governor` limiter: lock-free, which matters on a limit every request hits).
pub type Admission = GovernorGcra;

/// Admission of `per_second` checkouts, with bursts of `burst` (0: one
/// second's worth); `None` when `per_second` is 0, which turns it off.
pub fn admission(per_second: u32, burst: u32) -> Option<Arc<Admission>> {
    let burst = if burst == 0 { per_second } else { burst };
    let quota = Quota::per_second(per_second, burst).ok()?;
    Some(Arc::new(GovernorGcra::new(quota)))
}

/// The block's layer over checkout: it refuses at once (429) when the
/// bucket is empty, before the body is read; a refused shopper retries in a
/// second (at 1/s or more, the wait is at most a second, which is the
/// `Retry-After` of `checkout-busy`); an admitted one is served at full speed.
fn admit(admission: Option<Arc<Admission>>) -> Option<RateLimitLayer<Admission, ()>> {
    admission.map(|limiter| {
        RateLimitLayer::new(limiter, everyone).refusing_with(|_| ApiError::Busy.into_response())
    })
}
// ANCHOR_END: admission

// ANCHOR: account_header
/// Whether `X-Account` is believed. The header is only as good as the
/// gateway in front: it must authenticate the shopper, remove any
/// `X-Account` the client sent, and set its own. Without such a gateway,
/// anyone could act as anyone, so the service refuses the header instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountHeader {
    /// Behind a gateway that strips a client's copy and sets its own.
    FromGateway,
    /// No such gateway: a request carrying `X-Account` is refused (400
    /// `account-header-refused`), so account carts and orders are out of reach.
    Refused,
}

impl std::str::FromStr for AccountHeader {
    type Err = ();

    /// `gateway` or `refuse`, as in the `ACCOUNT_HEADER` variable.
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "gateway" => Ok(Self::FromGateway),
            "refuse" => Ok(Self::Refused),
            _ => Err(()),
        }
    }
}
// ANCHOR_END: account_header

/// The service's routes over `state`, behind a gateway that sets `X-Account`.
pub fn router<S: Store, C: CartStore, P: PaymentProvider>(state: AppState<S, C, P>) -> Router {
    router_with(state, AccountHeader::FromGateway)
}

// ANCHOR: router
/// The service's routes over `state`, with `X-Account` trusted or refused.
pub fn router_with<S: Store, C: CartStore, P: PaymentProvider>(
    state: AppState<S, C, P>,
    accounts: AccountHeader,
) -> Router {
    // Admission is spent after authentication: `identified` runs first
    // (the outer route layer), so a request without an account or a key is
    // refused for that and takes no token from the shoppers who have one.
    let checkout = post(checkout::<S, C, P>)
        .route_layer(tower::util::option_layer(admit(state.admission.clone())))
        .route_layer(axum::middleware::from_fn(identified));
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/products/{sku}", get(product::<S, C, P>))
        .route("/search", get(search::<S, C, P>))
        .route(
            "/carts/{cart}",
            get(cart::<S, C, P>).delete(clear_cart::<S, C, P>),
        )
        .route("/carts/{cart}/items", post(add_item::<S, C, P>))
        .route("/carts/{cart}/items/{sku}", delete(remove_item::<S, C, P>))
        .route("/carts/{cart}/merge", post(merge::<S, C, P>))
        .route("/checkout", checkout)
        .route("/orders/{id}", get(order::<S, C, P>))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        // The errors block's answer: a problem document with Retry-After.
        .layer(axum::middleware::from_fn(block_errors::timeout(
            crate::problem::PROBLEM_BASE,
            REQUEST_TIMEOUT,
        )))
        .layer(tower::util::option_layer(
            (accounts == AccountHeader::Refused)
                .then(|| axum::middleware::from_fn(refuse_account_header)),
        ))
        .with_state(state)
}

/// Refuses a checkout without an account or an `Idempotency-Key`, before admission.
async fn identified(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if let Err(e) = account(request.headers()).and_then(|_| idempotency_key(request.headers())) {
        return e.into_response();
    }
    next.run(request).await
}

fn idempotency_key(headers: &HeaderMap) -> Result<IdempotencyKey, ApiError> {
    let raw = headers.get(IDEMPOTENCY_KEY).ok_or(ApiError::MissingKey)?;
    Ok(IdempotencyKey::parse(raw.as_bytes())?)
}

/// Refuses a request that carries `X-Account` when no gateway vouches for it.
async fn refuse_account_header(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if request.headers().contains_key(ACCOUNT) {
        return ApiError::AccountHeaderRefused.into_response();
    }
    next.run(request).await
}
// ANCHOR_END: router

fn malformed(e: impl std::fmt::Display) -> ApiError {
    ApiError::Malformed(e.to_string())
}

/// A JSON body refused: too large (past [`BODY_LIMIT`]), or malformed.
fn bad_body(e: JsonRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::BodyTooLarge
    } else {
        malformed(e)
    }
}

fn account(headers: &HeaderMap) -> Result<String, ApiError> {
    let raw = headers
        .get(ACCOUNT)
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty())
        .ok_or(ApiError::Unauthenticated)?;
    // The account names its cart, so it must make a valid cart id.
    CartId::account(raw)?;
    Ok(raw.to_string())
}

/// A cart id from the path, refused when it is another account's cart.
fn cart_for(raw: &str, headers: &HeaderMap) -> Result<CartId, ApiError> {
    let id = CartId::parse(raw)?;
    if let Some(owner) = raw.strip_prefix("a-") {
        let me = account(headers)?;
        if me != owner {
            return Err(ApiError::Forbidden);
        }
    }
    Ok(id)
}

async fn product<S: Store, C: CartStore, P: PaymentProvider>(
    State(app): State<AppState<S, C, P>>,
    sku: Result<Path<String>, PathRejection>,
) -> Result<Json<Product>, ApiError> {
    let Path(raw) = sku.map_err(malformed)?;
    let sku = Sku::parse(&raw)?;
    app.catalog
        .get(&sku)
        .await?
        .map(Json)
        .ok_or(ApiError::ProductNotFound(raw))
}

/// The query of `GET /search`.
#[derive(Debug, Deserialize)]
pub struct SearchQuery {
    /// Words, as a shopper types them (`websearch_to_tsquery` syntax).
    pub q: String,
    /// At most this many results (default 20, at most 100).
    pub limit: Option<u32>,
}

async fn search<S: Store, C: CartStore, P: PaymentProvider>(
    State(app): State<AppState<S, C, P>>,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Json<Vec<Product>>, ApiError> {
    let Query(q) = query.map_err(malformed)?;
    if q.q.len() > QUERY_MAX_LEN {
        return Err(ApiError::Query("a search query has at most 200 bytes"));
    }
    if !q.q.chars().any(char::is_alphanumeric) {
        return Err(ApiError::Query("a search query needs at least one word"));
    }
    let limit = q.limit.unwrap_or(20).clamp(1, 100);
    Ok(Json(app.store.search(&q.q, limit).await?))
}

// ANCHOR: cart_types
/// A cart as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartView {
    /// The cart.
    pub cart: String,
    /// Products and quantities.
    pub lines: Vec<LineBody>,
}

/// One line: a product and a quantity (also the body of `POST /carts/{cart}/items`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineBody {
    /// The SKU.
    pub sku: String,
    /// How many (1 to 99).
    pub quantity: i64,
}

/// The body of `POST /carts/{cart}/merge`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MergeBody {
    /// The guest cart to fold in.
    pub from: String,
}
// ANCHOR_END: cart_types

async fn view<C: CartStore>(carts: &C, id: &CartId) -> Result<Json<CartView>, ApiError> {
    let cart = carts.get(id).await?;
    Ok(Json(CartView {
        cart: id.to_string(),
        lines: cart
            .lines()
            .into_iter()
            .map(|(sku, q)| LineBody {
                sku: sku.to_string(),
                quantity: i64::from(q),
            })
            .collect(),
    }))
}

async fn cart<S: Store, C: CartStore, P: PaymentProvider>(
    State(app): State<AppState<S, C, P>>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<CartView>, ApiError> {
    let Path(raw) = path.map_err(malformed)?;
    let id = cart_for(&raw, &headers)?;
    view(&*app.carts, &id).await
}

// ANCHOR: add_item
async fn add_item<S: Store, C: CartStore, P: PaymentProvider>(
    State(app): State<AppState<S, C, P>>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<LineBody>, JsonRejection>,
) -> Result<Json<CartView>, ApiError> {
    let Path(raw) = path.map_err(malformed)?;
    let id = cart_for(&raw, &headers)?;
    let Json(line) = body.map_err(bad_body)?;
    let sku = Sku::parse(&line.sku)?;
    let quantity = Quantity::new(line.quantity)?;
    // An unknown product is bad input; stock is not checked: an add fails only at the cart's cap.
    if app.catalog.get(&sku).await?.is_none() {
        return Err(ApiError::ProductNotFound(line.sku));
    }
    app.carts.add(&id, Tag::random(), &sku, quantity).await?;
    view(&*app.carts, &id).await
}
// ANCHOR_END: add_item

async fn clear_cart<S: Store, C: CartStore, P: PaymentProvider>(
    State(app): State<AppState<S, C, P>>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<CartView>, ApiError> {
    let Path(raw) = path.map_err(malformed)?;
    let id = cart_for(&raw, &headers)?;
    app.carts.clear(&id).await?;
    view(&*app.carts, &id).await
}

async fn remove_item<S: Store, C: CartStore, P: PaymentProvider>(
    State(app): State<AppState<S, C, P>>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<CartView>, ApiError> {
    let Path((raw, sku)) = path.map_err(malformed)?;
    let id = cart_for(&raw, &headers)?;
    let sku = Sku::parse(&sku)?;
    app.carts.remove(&id, &sku).await?;
    view(&*app.carts, &id).await
}

async fn merge<S: Store, C: CartStore, P: PaymentProvider>(
    State(app): State<AppState<S, C, P>>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<MergeBody>, JsonRejection>,
) -> Result<Json<CartView>, ApiError> {
    let Path(raw) = path.map_err(malformed)?;
    let into = cart_for(&raw, &headers)?;
    let Json(body) = body.map_err(bad_body)?;
    let from = CartId::parse(&body.from)?;
    if !body.from.starts_with("g-") {
        // Only a guest cart may be folded into another: never another account's.
        return Err(ApiError::Forbidden);
    }
    app.carts.merge(&from, &into).await?;
    view(&*app.carts, &into).await
}

// ANCHOR: checkout_body
/// The body of `POST /checkout`: what the shopper confirmed on the review page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckoutBody {
    /// One line per product.
    pub lines: Vec<LineBody>,
    /// `EUR`, `USD` or `JPY`.
    pub currency: String,
    /// The total shown to the shopper, in minor units.
    pub expected_total_minor: i64,
    /// A promotion code.
    #[serde(default)]
    pub promotion: Option<String>,
    /// The provider's card token.
    pub payment_method: String,
}

impl CheckoutBody {
    /// The request, parsed; the first bad field is the error.
    pub fn parse(&self) -> Result<CheckoutRequest, ApiError> {
        let mut lines = Vec::with_capacity(self.lines.len().min(MAX_LINES + 1));
        for l in &self.lines {
            lines.push((Sku::parse(&l.sku)?, Quantity::new(l.quantity)?));
        }
        if lines.is_empty() {
            return Err(ApiError::EmptyOrder);
        }
        if lines.len() > MAX_LINES {
            return Err(ApiError::TooManyLines(lines.len()));
        }
        lines.sort();
        if let Some(w) = lines.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(ApiError::DuplicateLine(w[0].0.to_string()));
        }
        if self.expected_total_minor < 0 {
            return Err(ApiError::Malformed(
                "expected_total_minor cannot be negative".into(),
            ));
        }
        if self.payment_method.is_empty() || self.payment_method.len() > 64 {
            return Err(ApiError::Malformed(
                "payment_method has 1 to 64 characters".into(),
            ));
        }
        Ok(CheckoutRequest {
            lines,
            currency: self.currency.parse::<Currency>()?,
            expected_total_minor: self.expected_total_minor,
            promotion: self.promotion.clone(),
            payment_method: self.payment_method.clone(),
        })
    }
}
// ANCHOR_END: checkout_body

// ANCHOR: checkout_handler
async fn checkout<S: Store, C: CartStore, P: PaymentProvider>(
    State(app): State<AppState<S, C, P>>,
    headers: HeaderMap,
    body: Result<Json<CheckoutBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let account = account(&headers)?;
    let key = idempotency_key(&headers)?;
    let Json(body) = body.map_err(bad_body)?;
    let request = body.parse()?;
    let scope = KeyScope {
        account: account.clone(),
        endpoint: CHECKOUT_ENDPOINT,
        key,
    };
    // The checkout runs in a task of its own, to its end: a client that hangs
    // up (or the request timeout) drops this handler, not the charge. So the
    // breaker hears only what the provider answered, and phase 2 records
    // the outcome the provider gave, not a cancellation. The permit is taken
    // before the spawn and held by the task to its end: tasks are bounded,
    // and a shutdown waits for them (`InFlight::drain`).
    let permit = app.in_flight.start()?;
    let checkout = app.checkout.clone();
    let answer = tokio::spawn(async move {
        let answer = checkout
            .run(&account, Some(&scope), &request, chrono::Utc::now())
            .await;
        drop(permit);
        answer
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    let status =
        StatusCode::from_u16(answer.response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = if status.is_success() {
        (status, Json(&answer.response.body)).into_response()
    } else {
        let mut r = (status, Json(&answer.response.body)).into_response();
        r.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        r
    };
    if answer.replayed {
        response
            .headers_mut()
            .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    Ok(response)
}
// ANCHOR_END: checkout_handler

async fn order<S: Store, C: CartStore, P: PaymentProvider>(
    State(app): State<AppState<S, C, P>>,
    headers: HeaderMap,
    path: Result<Path<uuid::Uuid>, PathRejection>,
) -> Result<Json<Order>, ApiError> {
    let me = account(&headers)?;
    let Path(id) = path.map_err(malformed)?;
    match app.store.order(id).await? {
        // Another account's order is "not found", not "forbidden": ids are not confirmed to strangers.
        Some(o) if o.account == me => Ok(Json(o)),
        _ => Err(ApiError::OrderNotFound(id.to_string())),
    }
}
