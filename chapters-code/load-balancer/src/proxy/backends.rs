//! In-process backends for the tests, the simulations' real twin and the
//! demo: HTTP servers on loopback with a latency distribution, a failure
//! rate, switches that make them fail, and a kill that drops every
//! connection at once, the way a crashed process does.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// How long a backend takes to answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Latency {
    /// Always this long.
    Fixed(Duration),
    /// Exponentially distributed with this mean.
    Exponential(Duration),
    /// `fast` usually, `slow` with probability `slow_share`.
    Bimodal {
        /// The usual latency.
        fast: Duration,
        /// The occasional one.
        slow: Duration,
        /// How often the slow one comes, 0 to 1.
        slow_share: f64,
    },
}

impl Latency {
    /// One latency drawn from the distribution.
    pub fn sample(&self, rng: &mut StdRng) -> Duration {
        match *self {
            Latency::Fixed(d) => d,
            Latency::Exponential(mean) => mean.mul_f64(-(1.0 - rng.random::<f64>()).ln()),
            Latency::Bimodal {
                fast,
                slow,
                slow_share,
            } => {
                if rng.random::<f64>() < slow_share {
                    slow
                } else {
                    fast
                }
            }
        }
    }
}

/// What a test backend does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackendSpec {
    /// Its latency distribution.
    pub latency: Latency,
    /// The share of requests it answers with a 500 (an application error), 0 to 1.
    pub failure_rate: f64,
    /// Seeds its random draws.
    pub seed: u64,
}

impl BackendSpec {
    /// A backend that answers at once and never fails.
    pub fn instant(seed: u64) -> Self {
        Self {
            latency: Latency::Fixed(Duration::ZERO),
            failure_rate: 0.0,
            seed,
        }
    }
}

/// What a backend counts and the switches a test flips.
#[derive(Debug, Default)]
pub struct Counters {
    /// Requests received, health checks excluded.
    pub requests: AtomicU64,
    /// Requests received with a method that is not idempotent (POST, PATCH).
    pub non_idempotent: AtomicU64,
    /// Requests answered in full.
    pub completed: AtomicU64,
    /// Health checks received.
    pub probes: AtomicU64,
    /// TCP connections accepted.
    pub connections: AtomicU64,
    /// When set, every request gets a 503: the backend cannot serve.
    pub failing: AtomicBool,
    /// When set, every health check gets a 503.
    pub probe_failing: AtomicBool,
}

/// A running in-process backend.
#[derive(Debug)]
pub struct TestBackend {
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it counted.
    pub counters: Arc<Counters>,
    latency: Arc<Mutex<Latency>>,
    server: Option<JoinHandle<()>>,
}

impl TestBackend {
    /// Starts a backend on a free loopback port.
    pub async fn start(spec: BackendSpec) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(Counters::default());
        let latency = Arc::new(Mutex::new(spec.latency));
        let rng = Arc::new(Mutex::new(StdRng::seed_from_u64(spec.seed)));
        let (c, l) = (counters.clone(), latency.clone());
        let server = tokio::spawn(async move {
            // Every connection lives in this set: aborting the server drops them all.
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    // Out of file descriptors, say: wait rather than spin.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                c.connections.fetch_add(1, Ordering::SeqCst);
                let (c, l, rng) = (c.clone(), l.clone(), rng.clone());
                let failure_rate = spec.failure_rate;
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        handle(req, addr, c.clone(), l.clone(), rng.clone(), failure_rate)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                // Reap finished connections so the set does not grow.
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(Self {
            addr,
            counters,
            latency,
            server: Some(server),
        })
    }

    /// Changes the latency of the requests that arrive from now on.
    pub fn set_latency(&self, latency: Latency) {
        *self.latency.lock().unwrap_or_else(|p| p.into_inner()) = latency;
    }

    /// Requests received so far (health checks excluded).
    pub fn requests(&self) -> u64 {
        self.counters.requests.load(Ordering::SeqCst)
    }

    /// Kills the backend: the listener closes and every open connection is
    /// dropped mid-request, as when the process crashes.
    pub async fn kill(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
            let _ = server.await;
        }
    }
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        if let Some(server) = &self.server {
            server.abort();
        }
    }
}

async fn handle(
    req: Request<Incoming>,
    addr: SocketAddr,
    counters: Arc<Counters>,
    latency: Arc<Mutex<Latency>>,
    rng: Arc<Mutex<StdRng>>,
    failure_rate: f64,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() == "/health" {
        counters.probes.fetch_add(1, Ordering::SeqCst);
        let status = if counters.probe_failing.load(Ordering::SeqCst) {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::OK
        };
        return Ok(reply(status, addr, "health"));
    }
    counters.requests.fetch_add(1, Ordering::SeqCst);
    if !matches!(
        *req.method(),
        hyper::Method::GET
            | hyper::Method::HEAD
            | hyper::Method::OPTIONS
            | hyper::Method::PUT
            | hyper::Method::DELETE
    ) {
        counters.non_idempotent.fetch_add(1, Ordering::SeqCst);
    }
    let (wait, fail) = {
        let mut rng = rng.lock().unwrap_or_else(|p| p.into_inner());
        let spec = *latency.lock().unwrap_or_else(|p| p.into_inner());
        (spec.sample(&mut rng), rng.random::<f64>() < failure_rate)
    };
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    counters.completed.fetch_add(1, Ordering::SeqCst);
    if fail {
        return Ok(reply(StatusCode::INTERNAL_SERVER_ERROR, addr, "failed"));
    }
    if counters.failing.load(Ordering::SeqCst) {
        return Ok(reply(StatusCode::SERVICE_UNAVAILABLE, addr, "unavailable"));
    }
    Ok(reply(StatusCode::OK, addr, "ok"))
}

/// The header that says which backend answered.
pub const BACKEND_HEADER: &str = "x-backend";

fn reply(status: StatusCode, addr: SocketAddr, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{body} from {addr}\n"))));
    *response.status_mut() = status;
    if let Ok(value) = addr.to_string().parse() {
        response.headers_mut().insert(BACKEND_HEADER, value);
    }
    response
}
