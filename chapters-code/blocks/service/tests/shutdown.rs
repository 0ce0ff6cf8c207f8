//! The start-up end to end: a real server on port 0, real TCP clients, and
//! the shutdown signal triggered by the test.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use block_service::{Config, ConfigError, EXIT_CONFIG, Engines, run};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, oneshot};

fn config() -> Config {
    Config {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        log_filter: "info".into(),
        engines: Engines::default(),
    }
}

/// One HTTP/1.1 GET on a fresh connection; the whole response as text.
async fn get_path(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response)
}

/// Polls until a new connection is refused: the server has stopped accepting.
async fn until_refused(addr: SocketAddr) -> bool {
    for _ in 0..500 {
        if TcpStream::connect(addr).await.is_err() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

// ANCHOR: in_flight
#[tokio::test]
async fn a_request_in_flight_finishes_before_the_server_returns() {
    let log = Arc::new(Mutex::new(Vec::<&str>::new()));
    let entered = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let router = {
        let (log, entered, release) = (log.clone(), entered.clone(), release.clone());
        Router::new()
            .route("/fast", get(|| async { "fast" }))
            .route(
                "/slow",
                get(move || async move {
                    entered.notify_one();
                    release.notified().await;
                    log.lock().map(|mut l| l.push("slow request answered")).ok();
                    "slow"
                }),
            )
    };
    let (stop, signal) = oneshot::channel::<()>();
    let (bound, addr) = oneshot::channel();
    let drain_log = log.clone();
    let server = tokio::spawn(run(
        config(),
        async move {
            let _ = signal.await;
        },
        move |service| async move {
            let listening = service.bind().await?;
            let _ = bound.send(listening.local_addr());
            listening.serve(router).await?;
            // The chapter's drain: runs only after the server has returned.
            drain_log.lock().map(|mut l| l.push("drain")).ok();
            Ok(())
        },
    ));
    let addr = addr.await.expect("the service binds");
    assert!(
        get_path(addr, "/fast")
            .await
            .expect("fast")
            .ends_with("fast")
    );

    let slow = tokio::spawn(get_path(addr, "/slow"));
    entered.notified().await;
    stop.send(()).expect("the signal is awaited");

    // Shutdown has begun: new connections are refused, but the server has
    // not returned, because a request is still in flight.
    assert!(
        until_refused(addr).await,
        "still accepting after the signal"
    );
    assert!(!server.is_finished(), "returned with a request in flight");
    assert!(log.lock().map(|l| l.is_empty()).unwrap_or(false));

    release.notify_one();
    let answer = slow.await.expect("client task").expect("slow response");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("slow"), "{answer}");
    let code = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server returns once the request is answered")
        .expect("server task");
    assert_eq!(code, ExitCode::SUCCESS);
    assert_eq!(
        *log.lock().expect("log"),
        vec!["slow request answered", "drain"]
    );
}
// ANCHOR_END: in_flight

#[tokio::test]
async fn a_bad_chapter_variable_exits_with_the_configuration_code() {
    let code = run(config(), std::future::pending(), |_service| async {
        Err(anyhow::Error::new(ConfigError::Var {
            name: "STRATEGY".into(),
            value: "sideways".into(),
            expected: "strategy",
        }))
    })
    .await;
    assert_eq!(code, ExitCode::from(EXIT_CONFIG));
}

#[tokio::test]
async fn an_address_in_use_is_an_error_not_a_panic() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let mut config = config();
    config.addr = taken.local_addr().expect("addr");
    let code = run(config, std::future::pending(), |service| async move {
        service.serve(Router::new()).await?;
        Ok(())
    })
    .await;
    assert_eq!(code, ExitCode::FAILURE);
}

#[tokio::test]
async fn every_holder_of_the_shutdown_handle_is_told() {
    let (stop, signal) = oneshot::channel::<()>();
    let service = block_service::Service::new(config(), async move {
        let _ = signal.await;
    });
    let (a, b) = (service.shutdown(), service.shutdown());
    let mut watch = a.watch();
    assert!(!a.is_requested());
    let relay = tokio::spawn(async move { watch.wait_for(|s| *s).await.map(|_| ()) });
    let worker = tokio::spawn(b.requested());
    stop.send(()).expect("signal");
    let within = Duration::from_secs(5);
    tokio::time::timeout(within, relay)
        .await
        .expect("relay told")
        .expect("task")
        .expect("watch");
    tokio::time::timeout(within, worker)
        .await
        .expect("worker told")
        .expect("task");
    assert!(a.is_requested());
}
