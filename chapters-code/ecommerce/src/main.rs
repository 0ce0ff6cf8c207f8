//! `cargo run -p ecommerce`: the shop on `127.0.0.1:8082`.
//!
//! Environment (the book's convention, CONTRIBUTING.md): `ADDR` and `PORT`
//! (default `127.0.0.1:8082`), `DATABASE_URL` (PostgreSQL instead of the
//! in-memory store; `sql/schema.sql` is applied to an empty database),
//! `REDIS_URL` (carts and the catalog's L2 in Redis), `CHECKOUT_PER_SECOND`
//! (flash-sale admission; off when unset), `RUST_LOG`. The payment provider
//! is the fake one: it always succeeds. Demo products are created on start;
//! a job purges idempotency keys older than 24 hours every hour.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use ecommerce::cart::{CartStore, MemoryCarts, RedisCarts};
use ecommerce::catalog::{Catalog, CatalogConfig, FillPolicy, RedisL2};
use ecommerce::checkout::Checkout;
use ecommerce::checkout::provider::FakeProvider;
use ecommerce::domain::{Currency, Money, Sku, TaxClass};
use ecommerce::idempotency::{Purged, retention};
use ecommerce::service::{AppState, admission, router};
use ecommerce::store::{MemoryStore, NewProduct, PgStore, Store};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

/// This chapter's port (CONTRIBUTING.md lists one per chapter; 3000 is the book server's).
const DEFAULT_PORT: u16 = 8082;

// ANCHOR: purge_every
/// How often expired idempotency keys are deleted.
const PURGE_EVERY: Duration = Duration::from_secs(3600);
// ANCHOR_END: purge_every

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let host = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1".to_string());
    let port = std::env::var("PORT").unwrap_or_else(|_| DEFAULT_PORT.to_string());
    let addr = format!("{host}:{port}");
    let listener = TcpListener::bind(&addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let redis = std::env::var("REDIS_URL").ok();
    match std::env::var("DATABASE_URL") {
        Ok(url) => {
            let store = PgStore::connect(&url, 16)
                .await
                .context("connecting to DATABASE_URL")?;
            if store.ensure_schema().await? {
                tracing::info!("applied sql/schema.sql");
            }
            with_carts(listener, Arc::new(store), redis).await
        }
        Err(_) => with_carts(listener, Arc::new(MemoryStore::new()), redis).await,
    }
}

async fn with_carts<S: Store>(
    listener: TcpListener,
    store: Arc<S>,
    redis: Option<String>,
) -> Result<()> {
    match redis {
        Some(url) => {
            let carts = RedisCarts::connect(&url, "shop:")
                .await
                .context("connecting to REDIS_URL")?;
            let l2 = RedisL2::connect(&url, "shop:", FillPolicy::KeepHigherVersion).await?;
            run(listener, store, Arc::new(carts), Some(l2)).await
        }
        None => run(listener, store, Arc::new(MemoryCarts::new()), None).await,
    }
}

async fn run<S: Store, C: CartStore>(
    listener: TcpListener,
    store: Arc<S>,
    carts: Arc<C>,
    l2: Option<RedisL2>,
) -> Result<()> {
    for p in demo_products()? {
        store.put_product(&p).await?;
    }
    let provider = Arc::new(FakeProvider::new());
    let per_second = std::env::var("CHECKOUT_PER_SECOND")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
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
    };
    let purge = tokio::spawn(purge_keys(Arc::clone(&store)));
    tracing::info!(addr = %listener.local_addr()?, "serving");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    purge.abort();
    Ok(())
}

// ANCHOR: purge_job
/// Deletes finished idempotency keys older than
/// [`KEY_TTL`](ecommerce::idempotency::KEY_TTL), forever;
/// unfinished ones are kept for their retry and counted in the log.
async fn purge_keys<S: Store>(store: Arc<S>) {
    let mut tick = tokio::time::interval(PURGE_EVERY);
    loop {
        tick.tick().await;
        match store.purge_keys(retention(), chrono::Utc::now()).await {
            Ok(p) if p == Purged::default() => {}
            Ok(p) => tracing::info!(
                deleted = p.deleted,
                unfinished_kept = p.unfinished_kept,
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
