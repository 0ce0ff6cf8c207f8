//! Protocol-level probes for the message brokers.
//!
//! A bare TCP connect is not proof that the broker is up (a proxy or a
//! half-started server accepts connections too), so each probe checks the
//! first bytes of the protocol: NATS greets with `INFO {...}`, and an AMQP
//! 0-9-1 server answers the protocol header with a `Connection.Start` frame.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{services_required, unavailable};

/// Default NATS URL; `NATS_URL` overrides it.
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";
/// Default RabbitMQ URL; `AMQP_URL` overrides it.
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672";

const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The NATS URL from `NATS_URL`, or the default.
pub fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| DEFAULT_NATS_URL.to_string())
}

/// The RabbitMQ URL from `AMQP_URL`, or the default.
pub fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| DEFAULT_AMQP_URL.to_string())
}

/// The NATS URL when a NATS server greets on it; `None` after a `SKIPPED` line otherwise.
pub async fn nats() -> Option<String> {
    let url = nats_url();
    let res = tokio::time::timeout(PROBE_TIMEOUT, greet(&url, 4222, None, b"INFO ")).await;
    settle("NATS", url, res)
}

/// The AMQP URL when RabbitMQ answers the AMQP 0-9-1 header; `None` after a `SKIPPED` line otherwise.
pub async fn rabbitmq() -> Option<String> {
    let url = amqp_url();
    // Frame type 1 (method), channel 0: the server's Connection.Start.
    let res = tokio::time::timeout(
        PROBE_TIMEOUT,
        greet(&url, 5672, Some(b"AMQP\x00\x00\x09\x01"), b"\x01\x00\x00"),
    )
    .await;
    settle("RabbitMQ", url, res)
}

fn settle(
    service: &str,
    url: String,
    res: Result<std::io::Result<()>, tokio::time::error::Elapsed>,
) -> Option<String> {
    match res {
        Ok(Ok(())) => Some(url),
        Ok(Err(e)) => {
            unavailable(service, &url, &e, services_required());
            None
        }
        Err(_) => {
            unavailable(service, &url, &"no answer in time", services_required());
            None
        }
    }
}

/// Connects to the host of `url`, optionally sends `hello`, and expects the reply to start with `expect`.
async fn greet(
    url: &str,
    default_port: u16,
    hello: Option<&[u8]>,
    expect: &[u8],
) -> std::io::Result<()> {
    let parsed = url::Url::parse(url)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let host = parsed.host_str().unwrap_or("127.0.0.1").to_string();
    let port = parsed.port().unwrap_or(default_port);
    let mut stream = TcpStream::connect((host.as_str(), port)).await?;
    if let Some(hello) = hello {
        stream.write_all(hello).await?;
    }
    let mut buf = vec![0u8; expect.len()];
    stream.read_exact(&mut buf).await?;
    if buf == expect {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "unexpected greeting {:?}",
            String::from_utf8_lossy(&buf)
        )))
    }
}
