//! Redis errors get their class. BUSY, READONLY and MISCONF are provoked on
//! a `redis-server` this test starts on a port of its own (the shared one
//! must not be blocked by a busy script or made a replica); LOADING lasts
//! only while a large dataset loads, so it is parsed from the exact reply a
//! server sends, as are the cluster codes.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use block_errors::{Class, Transient, classify_redis};
use redis::aio::MultiplexedConnection;

/// A `redis-server` of this test's own, killed on drop.
struct OwnServer {
    child: Child,
    url: String,
    dir: std::path::PathBuf,
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts a server, or skips loudly (fails with `SDB_REQUIRE_SERVICES=1`).
async fn own_server() -> Option<OwnServer> {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"));
    let dir = std::env::temp_dir().join(format!("block-errors-redis-{port}"));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let url = format!("redis://127.0.0.1:{port}");
    let spawned = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .args(["--enable-protected-configs", "yes"])
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let child = match spawned {
        Ok(c) => c,
        Err(e) => {
            testkit::unavailable("redis-server", &url, &e, testkit::services_required());
            return None;
        }
    };
    let server = OwnServer { child, url, dir };
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        if connect(&server.url).await.is_some() {
            return Some(server);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("redis-server on {} did not answer", server.url);
}

async fn connect(url: &str) -> Option<MultiplexedConnection> {
    let client = redis::Client::open(url).ok()?;
    let mut conn = client.get_multiplexed_async_connection().await.ok()?;
    let pong: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut conn).await;
    pong.ok().map(|_| conn)
}

async fn conn(server: &OwnServer) -> MultiplexedConnection {
    connect(&server.url)
        .await
        .unwrap_or_else(|| panic!("connect to {}", server.url))
}

async fn ok(conn: &mut MultiplexedConnection, cmd: &mut redis::Cmd) {
    let r: redis::RedisResult<redis::Value> = cmd.query_async(conn).await;
    r.unwrap_or_else(|e| panic!("{e}"));
}

async fn refused(conn: &mut MultiplexedConnection, cmd: &mut redis::Cmd) -> redis::RedisError {
    let r: redis::RedisResult<redis::Value> = cmd.query_async(conn).await;
    r.err().unwrap_or_else(|| panic!("the server accepted it"))
}

// ANCHOR: provoked
#[tokio::test]
async fn a_busy_script_makes_busy_a_retryable_overload() {
    let Some(server) = own_server().await else {
        return;
    };
    let (mut runner, mut other) = (conn(&server).await, conn(&server).await);
    ok(
        &mut other,
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("busy-reply-threshold")
            .arg(50),
    )
    .await;
    // A read-only script that never ends: SCRIPT KILL can stop it.
    let spin = tokio::spawn(async move {
        let r: redis::RedisResult<redis::Value> = redis::cmd("EVAL")
            .arg("while true do end")
            .arg(0)
            .query_async(&mut runner)
            .await;
        r
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let e = refused(&mut other, &mut redis::cmd("PING")).await;
    assert_eq!(e.code(), Some("BUSY"), "{e}");
    assert_eq!(classify_redis(&e), Class::Retryable(Transient::Overloaded));
    ok(&mut other, redis::cmd("SCRIPT").arg("KILL")).await;
    assert!(
        spin.await.is_ok_and(|r| r.is_err()),
        "the script was killed"
    );
}

#[tokio::test]
async fn a_write_to_a_replica_makes_readonly_retryable() {
    let Some(server) = own_server().await else {
        return;
    };
    let mut c = conn(&server).await;
    // A primary that does not exist: the server turns replica and waits.
    ok(&mut c, redis::cmd("REPLICAOF").arg("127.0.0.1").arg(1)).await;
    let e = refused(&mut c, redis::cmd("SET").arg("k").arg("v")).await;
    assert_eq!(e.code(), Some("READONLY"), "{e}");
    assert_eq!(classify_redis(&e), Class::Retryable(Transient::Unavailable));
}

#[tokio::test]
async fn a_failed_snapshot_makes_misconf_retryable() {
    let Some(server) = own_server().await else {
        return;
    };
    let mut c = conn(&server).await;
    // Snapshot into a folder that is gone by the time the child writes.
    let gone = server.dir.join("gone");
    std::fs::create_dir_all(&gone).unwrap_or_else(|e| panic!("{e}"));
    ok(
        &mut c,
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("dir")
            .arg(gone.to_string_lossy().as_ref()),
    )
    .await;
    std::fs::remove_dir_all(&gone).unwrap_or_else(|e| panic!("{e}"));
    // Writes stop after a failed snapshot only where snapshots are configured.
    ok(
        &mut c,
        redis::cmd("CONFIG").arg("SET").arg("save").arg("3600 1"),
    )
    .await;
    ok(&mut c, &mut redis::cmd("BGSAVE")).await;
    let started = Instant::now();
    loop {
        let info: String = redis::cmd("INFO")
            .arg("persistence")
            .query_async(&mut c)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        if info.contains("rdb_last_bgsave_status:err") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{info}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let e = refused(&mut c, redis::cmd("SET").arg("k").arg("v")).await;
    assert_eq!(e.code(), Some("MISCONF"), "{e}");
    assert_eq!(classify_redis(&e), Class::Retryable(Transient::Unavailable));
}

#[tokio::test]
async fn a_command_the_code_got_wrong_is_a_bug() {
    let Some(server) = own_server().await else {
        return;
    };
    let mut c = conn(&server).await;
    ok(&mut c, redis::cmd("SET").arg("k").arg("v")).await;
    let e = refused(&mut c, redis::cmd("LPUSH").arg("k").arg("x")).await;
    assert_eq!(e.code(), Some("WRONGTYPE"), "{e}");
    assert_eq!(classify_redis(&e), Class::Bug);
    let e = refused(&mut c, redis::cmd("EVALSHA").arg("0".repeat(40)).arg(0)).await;
    assert_eq!(e.code(), Some("NOSCRIPT"), "{e}");
    assert_eq!(classify_redis(&e), Class::Bug);
}

#[tokio::test]
async fn a_server_at_maxclients_is_retryable() {
    let Some(server) = own_server().await else {
        return;
    };
    let mut c = conn(&server).await;
    ok(
        &mut c,
        redis::cmd("CONFIG").arg("SET").arg("maxclients").arg(1),
    )
    .await;
    // The server accepts the socket, writes `-ERR max number of clients
    // reached` and closes it: the client reads either that reply
    // (overloaded, the parsed test below) or a broken pipe (unavailable).
    let client = redis::Client::open(server.url.as_str()).unwrap_or_else(|e| panic!("{e}"));
    let e = match client.get_multiplexed_async_connection().await {
        Err(e) => e,
        Ok(mut other) => refused(&mut other, &mut redis::cmd("PING")).await,
    };
    assert!(classify_redis(&e).is_retryable(), "{e:?}");
}

#[tokio::test]
async fn a_closed_port_is_retryable_unavailable() {
    let client = redis::Client::open("redis://127.0.0.1:1").unwrap_or_else(|e| panic!("{e}"));
    let e = client
        .get_multiplexed_async_connection()
        .await
        .err()
        .unwrap_or_else(|| panic!("connected to port 1"));
    assert_eq!(
        classify_redis(&e),
        Class::Retryable(Transient::Unavailable),
        "{e}"
    );
}
// ANCHOR_END: provoked

// ANCHOR: parsed
/// The replies a server sends while loading or while its cluster is broken,
/// parsed by the client exactly as off the wire.
#[test]
fn loading_and_cluster_replies_are_retryable() {
    let replies: &[(&[u8], Class)] = &[
        (
            b"-LOADING Redis is loading the dataset in memory\r\n",
            Class::Retryable(Transient::Unavailable),
        ),
        (
            b"-BUSY Redis is busy running a script.\r\n",
            Class::Retryable(Transient::Overloaded),
        ),
        (
            b"-MISCONF Redis is configured to save RDB snapshots\r\n",
            Class::Retryable(Transient::Unavailable),
        ),
        (
            b"-READONLY You can't write against a read only replica.\r\n",
            Class::Retryable(Transient::Unavailable),
        ),
        (
            b"-TRYAGAIN Multiple keys request during rehashing of slot\r\n",
            Class::Retryable(Transient::Unavailable),
        ),
        (
            b"-CLUSTERDOWN The cluster is down\r\n",
            Class::Retryable(Transient::Unavailable),
        ),
        (
            b"-MASTERDOWN Link with MASTER is down\r\n",
            Class::Retryable(Transient::Unavailable),
        ),
        (b"-NOPERM this user has no permissions\r\n", Class::Final),
        (
            b"-OOM command not allowed when used memory\r\n",
            Class::Final,
        ),
        (
            b"-ERR max number of clients reached\r\n",
            Class::Retryable(Transient::Overloaded),
        ),
        (b"-ERR unknown command 'FOO'\r\n", Class::Bug),
        (
            b"-SOMETHINGNEW a code this block does not know\r\n",
            Class::Bug,
        ),
    ];
    for (bytes, class) in replies {
        let e = redis::parse_redis_value(bytes)
            .and_then(|v| v.extract_error())
            .err()
            .unwrap_or_else(|| panic!("{bytes:?} is not an error reply"));
        assert_eq!(classify_redis(&e), *class, "{e}");
    }
}
// ANCHOR_END: parsed
