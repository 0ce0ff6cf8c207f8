//! `block_service::main` in a real process: its exit codes, and SIGTERM.

#![cfg(unix)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use block_service::{EXIT_CONFIG, EXIT_INTERRUPTED};

fn demo() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_service-demo"));
    cmd.env_clear()
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Starts the demo and returns it with the address it listens on.
fn start() -> (
    Child,
    std::net::SocketAddr,
    BufReader<std::process::ChildStdout>,
) {
    let mut child = demo().env("PORT", "0").spawn().expect("spawn the demo");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout);
    let mut line = String::new();
    lines.read_line(&mut line).expect("first line");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    (child, addr, lines)
}

fn kill(child: &Child, signal: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -{signal}");
}

/// Waits for the child's exit code, at most `limit`.
fn exit_code(child: &mut Child, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    panic!("the demo did not exit within {limit:?}");
}

#[test]
fn a_bad_port_exits_with_the_configuration_code_and_names_it() {
    let out = demo().env("PORT", "80a").output().expect("run the demo");
    assert_eq!(out.status.code(), Some(i32::from(EXIT_CONFIG)));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("PORT=\"80a\""), "{stderr}");
    assert!(out.stdout.is_empty(), "it started: {:?}", out.stdout);
}

// ANCHOR: sigterm_process
#[test]
fn sigterm_drains_and_exits_zero() {
    let (mut child, addr, mut lines) = start();
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .expect("request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    kill(&child, "TERM");
    assert_eq!(exit_code(&mut child, Duration::from_secs(10)), Some(0));
    let mut rest = String::new();
    lines.read_to_string(&mut rest).expect("stdout");
    assert_eq!(rest.trim(), "drained");
}

#[test]
fn a_second_signal_cuts_a_stuck_drain_short() {
    let (mut child, addr, mut lines) = start();
    let mut stuck = TcpStream::connect(addr).expect("connect");
    stuck
        .write_all(b"GET /hang HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("request");
    // The request is inside its handler before the first signal.
    let mut line = String::new();
    lines.read_line(&mut line).expect("the handler's line");
    assert_eq!(line.trim(), "hanging");
    kill(&child, "TERM");
    // The drain waits for /hang, which never answers.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        matches!(child.try_wait(), Ok(None)),
        "exited with a request in flight"
    );
    kill(&child, "INT");
    assert_eq!(
        exit_code(&mut child, Duration::from_secs(10)),
        Some(i32::from(EXIT_INTERRUPTED))
    );
}
// ANCHOR_END: sigterm_process
