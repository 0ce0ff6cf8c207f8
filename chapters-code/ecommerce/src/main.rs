//! `cargo run -p ecommerce`: the shop on `127.0.0.1:8082`.
//!
//! Start-up, the `ADDR`/`PORT`/`RUST_LOG` convention and the shutdown on
//! SIGINT or SIGTERM come from the service block (`block_service`). Also
//! read: `DATABASE_URL` (PostgreSQL instead of the in-memory store;
//! `sql/schema.sql` is applied to an empty database), `REDIS_URL` (carts and
//! the catalog's L2 in Redis), `CHECKOUT_PER_SECOND` (flash-sale admission;
//! off when unset or 0), `ACCOUNT_HEADER` (`refuse`, the default: a request
//! carrying `X-Account` is refused; `gateway`: `X-Account` is believed, which
//! is safe only behind a gateway that authenticates the shopper and removes
//! any copy of the header the client sent). The payment provider is the fake one: it always
//! succeeds. Demo products missing from the store are created on start (an
//! existing one keeps its stock); a job purges idempotency keys older than
//! 24 hours every hour. On PostgreSQL, the completer settles unfinished
//! checkouts and a worker drains the staged jobs (receipts).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use block_service::{Service, var_or};
use ecommerce::cart::{CartStore, MemoryCarts, RedisCarts};
use ecommerce::catalog::{Catalog, CatalogConfig, FillPolicy, RedisL2};
use ecommerce::checkout::provider::FakeProvider;
use ecommerce::checkout::{Checkout, complete};
use ecommerce::domain::{Currency, Money, Sku, TaxClass};
use ecommerce::idempotency::{Purged, retention};
use ecommerce::jobs::{FakeMailer, Worker};
use ecommerce::service::{AccountHeader, AppState, DRAIN_WITHIN, InFlight, admission, router_with};
use ecommerce::store::{MemoryStore, NewProduct, PgStore, Store, seed_missing};

/// This chapter's port (CONTRIBUTING.md lists one per chapter; 3000 is the book server's).
const DEFAULT_PORT: u16 = 8082;

// ANCHOR: purge_every
/// How often expired idempotency keys are deleted.
const PURGE_EVERY: Duration = Duration::from_secs(3600);
// ANCHOR_END: purge_every
/// How long the worker waits when it found no job.
const JOBS_POLL: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    block_service::main(DEFAULT_PORT, start)
}

async fn start(service: Service) -> Result<()> {
    let redis = service.engines().redis_url.clone();
    let provider = Arc::new(FakeProvider::new());
    match service.engines().database_url.clone() {
        Some(url) => {
            let store =
                block_service::open_database(PgStore::connect(&url, 16), PgStore::ensure_schema)
                    .await?;
            // Both loops end with the process; each step they take is committed.
            tokio::spawn(complete_checkouts(store.clone(), Arc::clone(&provider)));
            tokio::spawn(run_jobs(store.clone()));
            with_carts(service, Arc::new(store), provider, redis).await
        }
        None => with_carts(service, Arc::new(MemoryStore::new()), provider, redis).await,
    }
}

// ANCHOR: background
/// The completer, every [`complete::EVERY`]: settles the checkouts nobody finished.
async fn complete_checkouts(store: PgStore, provider: Arc<FakeProvider>) {
    let completer = complete::Completer::new(store, provider);
    let mut tick = tokio::time::interval(complete::EVERY);
    loop {
        tick.tick().await;
        match completer.pass().await {
            Ok(p) if p == complete::Pass::default() => {}
            Ok(p) => tracing::info!(?p, "completer pass"),
            Err(e) => tracing::warn!(error = %e, "completer pass failed"),
        }
    }
}

/// The staged-jobs worker: drains while there is work, then polls.
async fn run_jobs(store: PgStore) {
    let worker = Worker::new(store.pool().clone(), Arc::new(FakeMailer::default()));
    loop {
        match worker.drain_once().await {
            Ok(d) if d.claimed > 0 => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "staged-jobs worker failed"),
        }
        tokio::time::sleep(JOBS_POLL).await;
    }
}
// ANCHOR_END: background

async fn with_carts<S: Store>(
    service: Service,
    store: Arc<S>,
    provider: Arc<FakeProvider>,
    redis: Option<String>,
) -> Result<()> {
    match redis {
        Some(url) => {
            let carts = RedisCarts::connect(&url, "shop:")
                .await
                .context("connecting to REDIS_URL")?;
            let l2 = RedisL2::connect(&url, "shop:", FillPolicy::KeepHigherVersion).await?;
            run(service, store, provider, Arc::new(carts), Some(l2)).await
        }
        None => run(service, store, provider, Arc::new(MemoryCarts::new()), None).await,
    }
}

async fn run<S: Store, C: CartStore>(
    service: Service,
    store: Arc<S>,
    provider: Arc<FakeProvider>,
    carts: Arc<C>,
    l2: Option<RedisL2>,
) -> Result<()> {
    // A restart keeps what is sold: only missing products are created.
    let created = seed_missing(&*store, &demo_products()?).await?;
    tracing::info!(created, "demo products");
    let per_second: u32 = var_or("CHECKOUT_PER_SECOND", 0)?;
    let accounts = var_or("ACCOUNT_HEADER", AccountHeader::Refused)?;
    let state = AppState {
        catalog: Arc::new(Catalog::new(
            Arc::clone(&store),
            l2,
            CatalogConfig::default(),
        )),
        checkout: Checkout::new(Arc::clone(&store), provider),
        store: Arc::clone(&store),
        carts,
        admission: admission(per_second, per_second),
        in_flight: InFlight::default(),
    };
    let in_flight = state.in_flight.clone();
    let purge = tokio::spawn(purge_keys(Arc::clone(&store)));
    service.serve(router_with(state, accounts)).await?;
    // Connections are closed, but checkouts whose client hung up may still
    // be running: wait for them to record their outcome before exiting.
    let running = in_flight.running();
    if in_flight.drain(DRAIN_WITHIN).await {
        tracing::info!(running, "every checkout in flight has finished");
    } else {
        tracing::warn!(
            left = in_flight.running(),
            "checkouts still running at the drain deadline: their orders stay pending_payment"
        );
    }
    // A purge is a series of DELETEs, each committed; cutting it off loses nothing.
    purge.abort();
    Ok(())
}

// ANCHOR: purge_job
/// Deletes finished idempotency keys older than
/// [`KEY_TTL`](ecommerce::idempotency::KEY_TTL), forever: each tick deletes
/// batch after batch until none is left (or the block's purge budget is
/// spent, logged as `more_left`); unfinished ones are kept for their retry
/// and counted in the log.
async fn purge_keys<S: Store>(store: Arc<S>) {
    let mut tick = tokio::time::interval(PURGE_EVERY);
    loop {
        tick.tick().await;
        match store.purge_keys(retention(), chrono::Utc::now()).await {
            Ok(p) if p == Purged::default() => {}
            // An unfinished key a day old is a checkout the completer has
            // not settled (its charge still in progress, or the provider down).
            Ok(p) if p.unfinished_kept > 0 => tracing::warn!(
                deleted = p.deleted,
                unfinished_kept = p.unfinished_kept,
                more_left = p.more_left,
                "unfinished checkouts a day old: the completer has not settled them"
            ),
            Ok(p) => tracing::info!(
                deleted = p.deleted,
                unfinished_kept = p.unfinished_kept,
                more_left = p.more_left,
                "purged finished idempotency keys"
            ),
            // Retried at the next tick; an old key only costs space meanwhile.
            Err(e) => tracing::warn!(error = %e, "key purge failed"),
        }
    }
}
// ANCHOR_END: purge_job

fn demo_products() -> Result<Vec<NewProduct>> {
    let eur = |m| Money::new(m, Currency::Eur);
    Ok(vec![
        NewProduct {
            sku: Sku::parse("MUG-RED")?,
            name: "Red mug".into(),
            description: "A stoneware coffee mug, red glaze".into(),
            price: eur(1250)?,
            tax_class: TaxClass::Standard,
            stock: 1_000,
        },
        NewProduct {
            sku: Sku::parse("BOOK-RUST")?,
            name: "Rust in practice".into(),
            description: "A paperback book about systems programming".into(),
            price: eur(3999)?,
            tax_class: TaxClass::Reduced,
            stock: 1_000,
        },
    ])
}
