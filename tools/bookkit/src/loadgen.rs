//! A bounded, closed-loop HTTP/1.1 load generator for loopback load tests.
//!
//! Each of `connections` tasks owns one keep-alive connection and sends one
//! request at a time, recording the latency of each in an HDR histogram
//! (microsecond resolution). The run stops by itself after `duration` or
//! `max_requests`, whichever comes first; only `127.0.0.1` targets are
//! accepted, because load tests in this book never leave the machine.
//!
//! Closed-loop means the generator waits for each response before sending
//! the next request, so it measures the server's throughput at a fixed
//! concurrency. It does not model open arrivals and so under-reports tail
//! latency when the server stalls (coordinated omission): the numbers are
//! for comparing paths within one run, which is how the book uses them.
//!
//! [`constant_server`] is the ceiling used beside such measurements: an
//! axum server that answers every request with a fixed response and does no
//! work, so a path's ratio to it is the share of the machine the design
//! leaves for the HTTP stack itself.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use tokio::net::TcpStream;

/// The shape of one load run.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Concurrent keep-alive connections, each with one request in flight.
    pub connections: usize,
    /// Requests sent before measuring, per connection (fills caches, warms the pool).
    pub warmup_per_connection: u64,
    /// Measurement stops after this long...
    pub duration: Duration,
    /// ...or after this many measured requests, whichever comes first.
    pub max_requests: u64,
    /// The status every response must have; others count as errors.
    pub expect_status: u16,
}

/// What one load run measured.
#[derive(Debug)]
pub struct LoadOutcome {
    /// Measured requests answered with the expected status.
    pub ok: u64,
    /// Measured requests answered with another status, or failed.
    pub errors: u64,
    /// Wall time of the measured phase.
    pub elapsed: Duration,
    /// Latency of every measured request, in microseconds.
    pub latency_us: Histogram<u64>,
}

impl LoadOutcome {
    /// Successful requests per second over the measured phase.
    pub fn throughput(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// The latency at `quantile` (0.0..=1.0) in microseconds.
    pub fn quantile_us(&self, quantile: f64) -> u64 {
        self.latency_us.value_at_quantile(quantile)
    }
}

/// Runs `spec` against `addr`, cycling through `paths` (each connection starts at its own offset).
pub async fn run_get(
    addr: SocketAddr,
    paths: Arc<Vec<String>>,
    spec: &LoadSpec,
) -> Result<LoadOutcome> {
    if !addr.ip().is_loopback() {
        bail!("load tests only target loopback addresses, not {addr}");
    }
    if paths.is_empty() || spec.connections == 0 {
        bail!("a load run needs at least one path and one connection");
    }
    let issued = Arc::new(AtomicU64::new(0));
    // Every connection finishes its warm-up before any starts measuring.
    let barrier = Arc::new(tokio::sync::Barrier::new(spec.connections));
    let mut tasks = Vec::with_capacity(spec.connections);
    for conn_index in 0..spec.connections {
        let paths = Arc::clone(&paths);
        let issued = Arc::clone(&issued);
        let barrier = Arc::clone(&barrier);
        let spec = spec.clone();
        tasks.push(tokio::spawn(async move {
            connection_loop(addr, &paths, conn_index, &spec, &issued, &barrier).await
        }));
    }
    let mut latency_us = new_histogram()?;
    let (mut ok, mut errors, mut elapsed) = (0, 0, Duration::ZERO);
    for t in tasks {
        // A connection that failed its warm-up leaves the others at the
        // barrier; the bound makes the run stop by itself anyway.
        let part = tokio::time::timeout(spec.duration + WARMUP_BOUND, t)
            .await
            .context("load run did not finish in time (a connection failed?)")?
            .context("load task panicked")??;
        ok += part.ok;
        errors += part.errors;
        elapsed = elapsed.max(part.elapsed);
        latency_us
            .add(&part.latency_us)
            .context("merging histograms")?;
    }
    Ok(LoadOutcome {
        ok,
        errors,
        elapsed,
        latency_us,
    })
}

/// Upper bound on warm-up plus shutdown time, on top of the measured duration.
const WARMUP_BOUND: Duration = Duration::from_secs(120);

fn new_histogram() -> Result<Histogram<u64>> {
    // 1 us .. 60 s with 3 significant figures.
    Histogram::new_with_bounds(1, 60_000_000, 3).context("creating histogram")
}

async fn connection_loop(
    addr: SocketAddr,
    paths: &[String],
    conn_index: usize,
    spec: &LoadSpec,
    issued: &AtomicU64,
    barrier: &tokio::sync::Barrier,
) -> Result<LoadOutcome> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(io)
        .await
        .context("HTTP/1.1 handshake")?;
    let driver = tokio::spawn(conn);

    let host = addr.to_string();
    let mut latency_us = new_histogram()?;
    let (mut ok, mut errors) = (0u64, 0u64);
    let mut i = conn_index * 7919; // spread connections over the path list
    let mut warmup_left = spec.warmup_per_connection;
    let mut started = Instant::now();
    let mut deadline = started + spec.duration;
    if warmup_left == 0 {
        barrier.wait().await;
        started = Instant::now();
        deadline = started + spec.duration;
    }
    loop {
        let measuring = warmup_left == 0;
        if measuring
            && (Instant::now() >= deadline
                || issued.fetch_add(1, Ordering::Relaxed) >= spec.max_requests)
        {
            break;
        }
        let path = &paths[i % paths.len()];
        i = i.wrapping_add(1);
        let req = hyper::Request::get(path.as_str())
            .header(hyper::header::HOST, host.as_str())
            .body(Empty::<Bytes>::new())
            .context("building request")?;
        sender.ready().await.context("connection closed")?;
        let t0 = Instant::now();
        let result = sender.send_request(req).await;
        let status = match result {
            Ok(resp) => {
                let status = resp.status().as_u16();
                // Drain the body so the connection can be reused.
                let _ = resp.into_body().collect().await;
                Some(status)
            }
            Err(_) => None,
        };
        let micros = t0.elapsed().as_micros().clamp(1, 60_000_000) as u64;
        if !measuring {
            if status.is_none() {
                bail!(
                    "request {} of the warm-up failed",
                    spec.warmup_per_connection - warmup_left + 1
                );
            }
            warmup_left -= 1;
            if warmup_left == 0 {
                barrier.wait().await;
                started = Instant::now();
                deadline = started + spec.duration;
            }
            continue;
        }
        match status {
            Some(s) if s == spec.expect_status => {
                ok += 1;
                latency_us.record(micros).context("recording latency")?;
            }
            Some(_) => errors += 1,
            None => {
                errors += 1;
                break;
            }
        }
    }
    drop(sender);
    driver.abort();
    Ok(LoadOutcome {
        ok,
        errors,
        elapsed: started.elapsed(),
        latency_us,
    })
}

/// A server that answers every request with `status` and the given headers, doing no other work.
///
/// Returns its address and a handle; dropping the `oneshot::Sender` stops it.
pub async fn constant_server(
    status: u16,
    headers: Vec<(&'static str, &'static str)>,
) -> Result<(
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
)> {
    use axum::http::{HeaderName, HeaderValue, StatusCode};
    let status = StatusCode::from_u16(status).context("invalid status")?;
    let mut map = axum::http::HeaderMap::new();
    for (k, v) in headers {
        map.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
    }
    let app = axum::Router::new().fallback(move || {
        let map = map.clone();
        async move { (status, map) }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding")?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await;
    });
    Ok((addr, tx, handle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn measures_a_constant_server_and_stops_by_itself() {
        let (addr, stop, handle) = constant_server(302, vec![("location", "https://example.com/")])
            .await
            .expect("server");
        let spec = LoadSpec {
            connections: 4,
            warmup_per_connection: 10,
            duration: Duration::from_secs(5),
            max_requests: 2_000,
            expect_status: 302,
        };
        let out = run_get(addr, Arc::new(vec!["/a".into(), "/b".into()]), &spec)
            .await
            .expect("run");
        assert_eq!(out.errors, 0);
        assert!(
            out.ok >= 1_996 && out.ok <= 2_000,
            "stops at max_requests, got {}",
            out.ok
        );
        assert_eq!(out.latency_us.len(), out.ok);
        assert!(out.quantile_us(0.5) <= out.quantile_us(0.99));
        drop(stop);
        let _ = handle.await;
    }

    #[tokio::test]
    async fn wrong_status_counts_as_error() {
        let (addr, _stop, _h) = constant_server(200, vec![]).await.expect("server");
        let spec = LoadSpec {
            connections: 1,
            warmup_per_connection: 0,
            duration: Duration::from_secs(5),
            max_requests: 10,
            expect_status: 302,
        };
        let out = run_get(addr, Arc::new(vec!["/".into()]), &spec)
            .await
            .expect("run");
        assert_eq!(out.ok, 0);
        assert_eq!(out.errors, 10);
    }

    #[tokio::test]
    async fn refuses_non_loopback_targets() {
        let spec = LoadSpec {
            connections: 1,
            warmup_per_connection: 0,
            duration: Duration::from_millis(10),
            max_requests: 1,
            expect_status: 200,
        };
        let addr: SocketAddr = "192.0.2.1:80".parse().expect("addr");
        assert!(
            run_get(addr, Arc::new(vec!["/".into()]), &spec)
                .await
                .is_err()
        );
    }
}
