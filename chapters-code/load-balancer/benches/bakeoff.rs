//! `cargo xtask bench-report load-balancer`: the proxy's overhead beside a
//! direct request, and the bake-off of the algorithms on heterogeneous
//! backends, over loopback. Writes its results under `target/sdb-results/`.
//!
//! `LB_BENCH_SECONDS` shortens each measured phase (default below) for a
//! quick check that the harness works; such a run is not for the book.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use bookkit::loadgen::{LoadSpec, run_get};
use bookkit::results::write_result;
use bookkit::{BenchResult, ResultKind};
use load_balancer::algo::Algorithm;
use load_balancer::proxy::backends::{BackendSpec, Latency, TestBackend};
use load_balancer::proxy::{Proxy, ProxyConfig};
use load_balancer::report::CHAPTER;
use load_balancer::sim::max_over_mean;

// ANCHOR: workload
/// Mean latency of each backend of the bake-off, milliseconds: two fast,
/// one slower, one slow, exponentially distributed.
const BAKEOFF_MEANS_MS: [u64; 4] = [1, 1, 3, 10];
/// Closed-loop connections driving the proxy.
const CONNECTIONS: usize = 32;
/// Measured seconds per run when `LB_BENCH_SECONDS` is not set.
const SECONDS: f64 = 10.0;
// ANCHOR_END: workload

fn spec(seconds: f64) -> LoadSpec {
    LoadSpec {
        connections: CONNECTIONS,
        warmup_per_connection: 20,
        duration: Duration::from_secs_f64(seconds),
        max_requests: u64::MAX,
        expect_status: 200,
    }
}

async fn serve(proxy: &Proxy) -> Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let router = proxy.router();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok((addr, task))
}

async fn run() -> Result<()> {
    let seconds = std::env::var("LB_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(SECONDS);
    let paths = Arc::new((0..64).map(|i| format!("/item/{i}")).collect::<Vec<_>>());

    // The overhead: one instant backend, straight and through the proxy.
    let direct_backend = TestBackend::start(BackendSpec::instant(0)).await?;
    let direct = run_get(direct_backend.addr, paths.clone(), &spec(seconds)).await?;
    write_result(
        &BenchResult::new(CHAPTER, "overhead-direct", ResultKind::Load)
            .with_throughput(direct.ok + direct.errors, direct.errors, direct.elapsed)
            .with_latency_us(&direct.latency_us)
            .with_concurrency(CONNECTIONS as u32),
    )?;
    let proxy = Proxy::start(ProxyConfig::new(
        vec![(direct_backend.addr, 1)],
        Algorithm::RoundRobin,
    ))?;
    let (addr, task) = serve(&proxy).await?;
    let through = run_get(addr, paths.clone(), &spec(seconds)).await?;
    task.abort();
    write_result(
        &BenchResult::new(CHAPTER, "overhead-proxy", ResultKind::Load)
            .with_throughput(through.ok + through.errors, through.errors, through.elapsed)
            .with_latency_us(&through.latency_us)
            .with_concurrency(CONNECTIONS as u32)
            .with_ceiling("overhead-direct"),
    )?;
    eprintln!(
        "direct {:.0}/s, through the proxy {:.0}/s",
        direct.throughput(),
        through.throughput()
    );

    // The bake-off: every algorithm over the same heterogeneous pool.
    for algorithm in Algorithm::ALL {
        let mut pool = Vec::new();
        for (i, ms) in BAKEOFF_MEANS_MS.into_iter().enumerate() {
            pool.push(
                TestBackend::start(BackendSpec {
                    latency: Latency::Exponential(Duration::from_millis(ms)),
                    failure_rate: 0.0,
                    seed: i as u64,
                })
                .await?,
            );
        }
        let proxy = Proxy::start(ProxyConfig::new(
            pool.iter().map(|b| (b.addr, 1)).collect(),
            algorithm,
        ))?;
        let (addr, task) = serve(&proxy).await?;
        let outcome = run_get(addr, paths.clone(), &spec(seconds)).await?;
        task.abort();
        let counts: Vec<f64> = pool.iter().map(|b| b.requests() as f64).collect();
        let name = format!(
            "bakeoff-{}",
            serde_json::to_value(algorithm)?
                .as_str()
                .unwrap_or("unknown")
        );
        write_result(
            &BenchResult::new(CHAPTER, &name, ResultKind::Load)
                .with_throughput(outcome.ok + outcome.errors, outcome.errors, outcome.elapsed)
                .with_latency_us(&outcome.latency_us)
                .with_concurrency(CONNECTIONS as u32)
                .with_extra("max_over_mean", max_over_mean(&counts))
                .with_extra("algorithm", algorithm.to_string()),
        )?;
        eprintln!(
            "{algorithm}: p50 {} us, p99 {} us, max/mean {:.2}",
            outcome.quantile_us(0.5),
            outcome.quantile_us(0.99),
            max_over_mean(&counts)
        );
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    bookkit::bench_main(run)
}
