//! The real signals: this test process sends itself SIGTERM and SIGINT.
//! A test binary of its own, so no other test shares the handlers.

#![cfg(unix)]

use std::time::Duration;

/// Sends `signal` to this process with kill(1), so no unsafe code is needed.
fn send(signal: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &std::process::id().to_string()])
        .status()
        .expect("kill(1) runs");
    assert!(status.success(), "kill -{signal}");
}

// ANCHOR: sigterm
#[tokio::test]
async fn sigterm_and_sigint_each_request_shutdown() {
    for signal in ["TERM", "INT"] {
        // The handlers are in place when os_signal returns, so the signal
        // cannot arrive before them and kill the test process.
        let received = block_service::os_signal();
        send(signal);
        tokio::time::timeout(Duration::from_secs(10), received)
            .await
            .unwrap_or_else(|_| panic!("SIG{signal} did not complete the shutdown signal"));
    }
}
// ANCHOR_END: sigterm
