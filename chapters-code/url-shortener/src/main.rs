//! `cargo run -p url-shortener`: the shortener on `127.0.0.1:8080`.
//!
//! Start-up, the `ADDR`/`PORT`/`RUST_LOG` convention and the shutdown on
//! SIGINT or SIGTERM come from the service block (`block_service`). Also
//! read: `BASE_URL` (public address, default `http://ADDR:PORT`),
//! `DATABASE_URL` (PostgreSQL instead of the in-memory store; the schema is
//! applied at start), `REDIS_URL` (adds the Redis cache layer),
//! `SCRAMBLE_KEY` (64-bit hex key of the code scrambler; required with
//! `DATABASE_URL`, since the demo key is public), `TRUST_FORWARDED_FOR`
//! (the proxies we run, addresses or CIDR ranges separated by commas: the
//! per-client limits then count the client they report, not the proxy; list
//! only proxies, never a range clients live in, or a client there chooses
//! its own identity), `OWN_HOSTS` (the service's other names and addresses,
//! such as the balancer's, refused as targets like `BASE_URL`'s host),
//! `ALLOW_PRIVATE_TARGETS` (`true` accepts targets on loopback and private
//! addresses, refused by default). A value that does not parse stops the
//! binary with exit code 78.

use std::process::ExitCode;

use anyhow::Context;
use block_service::Service;
use url_shortener::store::PgStore;
use url_shortener::{App, Config};

/// This chapter's port (CONTRIBUTING.md lists one per chapter; 3000 is the book server's).
const DEFAULT_PORT: u16 = 8080;

/// Connections per process: redirects mostly hit the caches, and the
/// database's connection budget is shared by the whole fleet.
const PG_POOL_SIZE: u32 = 16;

fn main() -> ExitCode {
    block_service::main(DEFAULT_PORT, start)
}

// ANCHOR: main
/// Wires the shortener; its own `serve` stops accepting on shutdown,
/// finishes the requests in flight, then flushes the clicks they recorded.
async fn start(service: Service) -> anyhow::Result<()> {
    let database_url = service.engines().database_url.clone();
    // Bound first: the default BASE_URL is the address actually bound.
    let listening = service.bind().await?;
    let mut config = Config::from_env(&format!("http://{}", listening.local_addr()))?;
    // Whatever BASE_URL says, a target on the address we listen on is us.
    config
        .own_hosts
        .push(listening.local_addr().ip().to_string());
    let (listener, shutdown) = listening.into_parts();
    let served = match database_url {
        Some(url) => {
            let store = PgStore::connect(&url, PG_POOL_SIZE)
                .await
                .context("connecting to PostgreSQL")?;
            store.migrate().await.context("applying the schema")?;
            tracing::info!(redis = config.redis.is_some(), "serving from PostgreSQL");
            App::postgres(store, config)?
                .serve(listener, shutdown.requested())
                .await
        }
        None => {
            tracing::info!(redis = config.redis.is_some(), "serving from memory");
            App::in_memory(config)?
                .serve(listener, shutdown.requested())
                .await
        }
    };
    served?;
    tracing::info!("stopped; clicks flushed");
    Ok(())
}
// ANCHOR_END: main
