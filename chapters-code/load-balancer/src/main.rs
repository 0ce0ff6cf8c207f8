//! `cargo run -p load-balancer`: the proxy on `127.0.0.1:8089`.
//!
//! Start-up, `ADDR`/`PORT`/`RUST_LOG` and the shutdown on SIGINT or SIGTERM
//! (stop accepting, finish the requests in flight) come from the service
//! block. Also read: `BACKENDS` (`ip:port=weight` separated by commas; when
//! unset, three in-process demo backends of different speeds are started),
//! `ALGORITHM` (`p2c` by default; any name of `Algorithm`, such as
//! `round-robin` or `maglev`), `ADMIN_TOKEN` (the bearer token of
//! `/_lb/backends`; unset, the admin routes refuse every request). A value
//! that does not parse stops the binary with exit code 78.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use block_service::{ConfigError, Service};
use load_balancer::algo::Algorithm;
use load_balancer::proxy::backends::{BackendSpec, Latency, TestBackend};
use load_balancer::proxy::{Proxy, ProxyConfig};

/// This chapter's port (CONTRIBUTING.md lists one per chapter).
const DEFAULT_PORT: u16 = 8089;

fn main() -> ExitCode {
    block_service::main(DEFAULT_PORT, start)
}

fn bad(name: &str, value: &str, expected: &'static str) -> ConfigError {
    ConfigError::Var {
        name: name.to_string(),
        value: value.to_string(),
        expected,
    }
}

/// `ip:port=weight,ip:port` (weight 1 when left out).
fn parse_backends(list: &str) -> Result<Vec<(SocketAddr, u32)>, ConfigError> {
    list.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|item| {
            let (addr, weight) = item.split_once('=').unwrap_or((item, "1"));
            let addr = addr
                .trim()
                .parse()
                .map_err(|_| bad("BACKENDS", item, "ip:port=weight"))?;
            let weight = weight
                .trim()
                .parse()
                .map_err(|_| bad("BACKENDS", item, "ip:port=weight"))?;
            Ok((addr, weight))
        })
        .collect()
}

async fn start(service: Service) -> anyhow::Result<()> {
    let algorithm = match std::env::var("ALGORITHM") {
        Ok(name) if !name.trim().is_empty() => {
            serde_json::from_value(serde_json::Value::String(name.trim().to_string()))
                .map_err(|_| bad("ALGORITHM", &name, "an algorithm name such as p2c"))?
        }
        _ => Algorithm::P2c,
    };
    let admin_token = std::env::var("ADMIN_TOKEN").ok().filter(|t| !t.is_empty());
    // Kept alive for as long as the proxy serves.
    let mut demo = Vec::new();
    let backends = match std::env::var("BACKENDS") {
        Ok(list) if !list.trim().is_empty() => parse_backends(&list)?,
        _ => {
            for (i, mean_ms) in [1u64, 5, 25].into_iter().enumerate() {
                let spec = BackendSpec {
                    latency: Latency::Exponential(Duration::from_millis(mean_ms)),
                    failure_rate: 0.0,
                    seed: i as u64,
                };
                demo.push(TestBackend::start(spec).await?);
            }
            demo.iter().map(|b| (b.addr, 1)).collect()
        }
    };
    tracing::info!(?backends, %algorithm, demo = !demo.is_empty(), "proxying");
    let proxy = Proxy::start(ProxyConfig {
        admin_token,
        ..ProxyConfig::new(backends, algorithm)
    })
    .map_err(|e| bad("BACKENDS", &e.to_string(), "a valid backend set"))?;
    service.serve(proxy.router()).await?;
    drop(demo);
    Ok(())
}
