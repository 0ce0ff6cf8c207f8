//! The demo binary in a real process: the settings it reads from the
//! environment, refused at start when they do not parse, and obeyed when
//! they do. In memory, so no service is needed.

#![cfg(unix)]

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use block_service::EXIT_CONFIG;
use hyper::StatusCode;

mod common;

/// The binary with a clean environment, on a free port of loopback.
fn binary(vars: &[(&str, &str)]) -> (Command, SocketAddr) {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_url-shortener"));
    cmd.env_clear()
        .env("RUST_LOG", "warn")
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    (cmd, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Waits for the child's exit code, at most `limit`; kills it and panics past that.
fn exit_code(child: &mut Child, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the binary did not exit within {limit:?}");
}

/// Kills the child when the test ends, passed or failed.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary and waits until `/health` answers.
async fn serve(vars: &[(&str, &str)]) -> (Running, common::Client) {
    let (mut cmd, addr) = binary(vars);
    let child = Running(cmd.spawn().expect("spawn the binary"));
    let client = common::Client::at(addr);
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if client.try_get("/health").await == Some(StatusCode::OK) {
            return (child, client);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the binary did not start within 20 s");
}

// ANCHOR: bad_setting
/// A list of proxies that does not parse stops the binary before it
/// serves, with the configuration exit code: a typo must not silently
/// trust nobody (or everybody).
#[test]
fn a_bad_trust_forwarded_for_stops_the_binary_with_exit_78() {
    for bad in ["not-an-address", "10.0.0.0/33", "10.0.0.1,,"] {
        let (mut cmd, _) = binary(&[("TRUST_FORWARDED_FOR", bad)]);
        let mut child = cmd.spawn().expect("spawn the binary");
        let code = exit_code(&mut child, Duration::from_secs(10));
        assert_eq!(code, Some(i32::from(EXIT_CONFIG)), "{bad:?}");
    }
}
// ANCHOR_END: bad_setting

/// `count` lookups of unknown codes from `client` (its `X-Forwarded-For`),
/// each code new (a repeated one would be answered by the negative cache);
/// the statuses in order.
async fn misses(c: &common::Client, client: &str, count: usize) -> Vec<StatusCode> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let mut statuses = Vec::new();
    for _ in 0..count {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = format!("/nope{n:04}");
        let reply = c
            .send(
                hyper::Method::GET,
                &path,
                &[("x-forwarded-for", client)],
                None,
            )
            .await;
        statuses.push(reply.status);
    }
    statuses
}

// ANCHOR: proxy_test
/// Behind a proxy the binary is told to trust (here the test itself, on
/// 127.0.0.1), each client behind it has its own miss budget: a scanner
/// spends its own, and the next client is not refused. From a peer that is
/// not on the list, `X-Forwarded-For` is ignored: rotating forged addresses
/// does not buy a scanner a fresh budget.
#[tokio::test]
async fn each_client_behind_a_trusted_proxy_has_its_own_budget_and_others_cannot_forge_one() {
    let (_child, c) = serve(&[("TRUST_FORWARDED_FOR", "192.0.2.1, 127.0.0.0/8")]).await;
    let scanner = misses(&c, "203.0.113.5, 198.51.100.1", 40).await;
    assert!(
        scanner.contains(&StatusCode::TOO_MANY_REQUESTS),
        "the scanner spent its budget: {scanner:?}"
    );
    let other = misses(&c, "198.51.100.2", 1).await;
    assert_eq!(
        other,
        [StatusCode::NOT_FOUND],
        "another client behind the proxy"
    );
    drop(_child);

    // The same binary trusting another proxy: we are a direct client now.
    let (_child, c) = serve(&[("TRUST_FORWARDED_FOR", "192.0.2.1")]).await;
    let mut statuses = Vec::new();
    for i in 0..40 {
        let forged = format!("198.51.100.{i}");
        statuses.extend(misses(&c, &forged, 1).await);
    }
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "forged addresses from an untrusted peer share the peer's budget: {statuses:?}"
    );
}
// ANCHOR_END: proxy_test
