//! A proxy on loopback in front of in-process backends, and a client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use load_balancer::algo::Algorithm;
use load_balancer::proxy::backends::{BACKEND_HEADER, BackendSpec, Latency, TestBackend};
use load_balancer::proxy::config::HealthPolicy;
use load_balancer::proxy::{Proxy, ProxyConfig};
use tokio::task::JoinHandle;

/// The admin token the tests use.
pub const TOKEN: &str = "test-admin-token";

/// A proxy serving on a loopback port.
pub struct Running {
    pub addr: SocketAddr,
    pub proxy: Proxy,
    server: JoinHandle<()>,
    pub client: Client<HttpConnector, Full<Bytes>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Health checks every 50 ms, so the tests see them act in a fraction of a second.
pub fn fast_policy() -> HealthPolicy {
    HealthPolicy {
        probe_interval: Duration::from_millis(50),
        probe_timeout: Duration::from_millis(200),
        ..HealthPolicy::default()
    }
}

pub async fn backends(specs: &[BackendSpec]) -> Vec<TestBackend> {
    let mut out = Vec::new();
    for spec in specs {
        out.push(TestBackend::start(*spec).await.expect("backend starts"));
    }
    out
}

pub fn slow(ms: u64, seed: u64) -> BackendSpec {
    BackendSpec {
        latency: Latency::Fixed(Duration::from_millis(ms)),
        failure_rate: 0.0,
        seed,
    }
}

pub async fn serve(config: ProxyConfig) -> Running {
    let proxy = Proxy::start(ProxyConfig {
        admin_token: Some(TOKEN.to_string()),
        ..config
    })
    .expect("valid set");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = proxy.router();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Running {
        addr,
        proxy,
        server,
        client: Client::builder(TokioExecutor::new()).build_http(),
    }
}

pub async fn proxy_over(
    backends: &[TestBackend],
    algorithm: Algorithm,
    health: HealthPolicy,
) -> Running {
    let set = backends.iter().map(|b| (b.addr, 1)).collect();
    serve(ProxyConfig {
        health,
        ..ProxyConfig::new(set, algorithm)
    })
    .await
}

/// What came back: the status, the backend that answered (if one did), the body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub backend: Option<String>,
    pub body: String,
}

impl Answer {
    /// The problem type's slug, for a problem+json answer.
    pub fn problem_type(&self) -> Option<String> {
        let v: serde_json::Value = serde_json::from_str(&self.body).ok()?;
        let t = v.get("type")?.as_str()?;
        Some(t.rsplit('#').next()?.to_string())
    }
}

impl Running {
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let request = request
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("request");
        let response = self
            .client
            .request(request)
            .await
            .expect("the proxy answers");
        let status = response.status();
        let backend = response
            .headers()
            .get(BACKEND_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        Answer {
            status,
            backend,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, &[], "").await
    }

    pub async fn put_set(&self, json: &str) -> Answer {
        let auth = format!("Bearer {TOKEN}");
        self.send(
            Method::PUT,
            "/_lb/backends",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            json,
        )
        .await
    }

    pub async fn pool_addrs(&self) -> Vec<String> {
        let auth = format!("Bearer {TOKEN}");
        let a = self
            .send(
                Method::GET,
                "/_lb/backends",
                &[("authorization", &auth)],
                "",
            )
            .await;
        let v: serde_json::Value = serde_json::from_str(&a.body).expect("json");
        v["backends"]
            .as_array()
            .expect("array")
            .iter()
            .map(|b| b["addr"].as_str().expect("addr").to_string())
            .collect()
    }
}

/// Waits until `f` holds, polling every 10 ms, at most `limit`.
pub async fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    f()
}
