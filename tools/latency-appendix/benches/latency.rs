//! Latency numbers, measured: the appendix's benchmarks.
//!
//! Every benchmark is in the criterion group `latency`, so its results land in
//! `target/criterion/latency/<id>/new/` and `cargo xtask bench-report latency`
//! turns them into `src/appendix/generated/latency.md` and `latency.svg`.
//! The ids below are stable: the report looks them up by name.
//!
//! - `hashmap_hit_1k`, `hashmap_hit_10m`: a hit in a `std` `HashMap<u64, u64>`
//!   (default SipHash-1-3 hasher) with 1,024 and 10,000,000 random keys. The
//!   1K table lives in the CPU caches; the 10M table (hundreds of MiB) does
//!   not, so a random hit there is a trip to main memory.
//! - `random_read_1gib`: one 8-byte read at a random index of a 1 GiB buffer.
//! - `sha256_1kib`: SHA-256 (the `sha2` crate) of 1 KiB.
//! - `json_parse_1kib`: `serde_json::from_slice` of a 1 KiB document into `Value`.
//! - `redis_ping`: one `PING` round trip over loopback (multiplexed async
//!   connection on a current-thread tokio runtime).
//! - `postgres_select_1`: one `SELECT 1` round trip on a single connection
//!   (a prepared statement that sqlx caches, so each iteration is one round trip).
//! - `fsync_4kib`: overwrite 4 KiB at offset 0 of a file under `target/` and
//!   call `File::sync_data` (fdatasync) on it.
//!
//! The in-memory reads are chained: each iteration's address depends on the
//! value the previous iteration loaded (through a zero the compiler cannot
//! see), so the CPU cannot overlap cache misses and the figure is the latency
//! of one access, not the throughput of many in flight. Random indices and keys
//! are drawn before timing starts, so the random number generator is not
//! measured. Large tables are built once, on first use.
//!
//! Redis and PostgreSQL benchmarks are skipped with a `SKIPPED:` line when the
//! server is unreachable, and fail instead when `SDB_REQUIRE_SERVICES=1`.

use std::collections::HashMap;
use std::hint::black_box;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, criterion_group};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use sqlx::Connection;

/// The criterion group; results go to `target/criterion/latency/<id>/`.
const GROUP: &str = "latency";
/// Seed of every random sequence, so two runs read the same addresses.
const SEED: u64 = 0x5D_B00C;
/// Length of a precomputed sequence of random lookups (a power of two).
///
/// One pass touches 4M random cache lines (256 MiB), so by the time the
/// sequence wraps around, the lines it touched last time have left the caches.
const LOOKUPS: usize = 1 << 22;
/// How long a server may take to accept a connection before it counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

fn latency(c: &mut Criterion) {
    let mut group = c.benchmark_group(GROUP);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));

    // Built on first use, so running one benchmark with a filter does not
    // pay for the others' setup; kept until the group ends. Criterion calls
    // each closure once per sample, so the position in the lookup sequence
    // lives out here: restarting it every sample would revisit lines the
    // previous sample left in the caches.
    let mut small_map = None;
    group.bench_function("hashmap_hit_1k", |b| {
        let (map, keys, at) = small_map.get_or_insert_with(|| random_map(1_024, 4_096));
        hashmap_hits(b, map, keys, at);
    });
    let mut big_map = None;
    group.bench_function("hashmap_hit_10m", |b| {
        let (map, keys, at) = big_map.get_or_insert_with(|| random_map(10_000_000, LOOKUPS));
        hashmap_hits(b, map, keys, at);
    });
    drop(big_map);

    let mut buffer = None;
    group.bench_function("random_read_1gib", |b| {
        let (buf, idx, at) = buffer.get_or_insert_with(gib_buffer);
        random_reads(b, buf, idx, at);
    });
    drop(buffer);

    // ANCHOR: cpu
    let block = [0xA5u8; 1024];
    group.bench_function("sha256_1kib", |b| {
        b.iter(|| Sha256::digest(black_box(&block[..])))
    });

    let doc = json_document();
    group.bench_function("json_parse_1kib", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(&doc)))
    });
    // ANCHOR_END: cpu

    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => {
            redis_ping(&mut group, &rt);
            postgres_select_1(&mut group, &rt);
        }
        Err(e) => panic!("building a tokio runtime: {e}"),
    }

    // An fsync takes from microseconds to milliseconds depending on the
    // device; flat sampling keeps the run bounded at the slow end.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(20);
    fsync_4kib(&mut group);

    group.finish();
}

/// A map of `n` random keys (each mapped to itself), `lookups` keys drawn from it, and a cursor.
fn random_map(n: usize, lookups: usize) -> (HashMap<u64, u64>, Vec<u64>, usize) {
    let mut rng = StdRng::seed_from_u64(SEED);
    let mut map = HashMap::with_capacity(n);
    while map.len() < n {
        let k: u64 = rng.random();
        map.insert(k, k);
    }
    let keys: Vec<u64> = map.keys().copied().collect();
    let order = (0..lookups)
        .map(|_| keys[rng.random_range(0..keys.len())])
        .collect();
    (map, order, 0)
}

// ANCHOR: hashmap
/// Times one hit per iteration; the next key depends on the value just found.
///
/// `at` is the position in `keys`, kept from one sample to the next.
fn hashmap_hits(
    b: &mut criterion::Bencher<'_>,
    map: &HashMap<u64, u64>,
    keys: &[u64],
    at: &mut usize,
) {
    let zero = black_box(0u64); // always 0, but the compiler cannot know
    let mask = keys.len() - 1;
    let mut prev = 0u64;
    b.iter(|| {
        let key = keys[*at & mask] ^ (prev & zero);
        *at = at.wrapping_add(1);
        prev = map.get(&key).copied().unwrap_or_default();
        prev
    });
}
// ANCHOR_END: hashmap

/// A 1 GiB buffer with every page written (so none is the shared zero page),
/// `LOOKUPS` random indices into it, and a cursor.
fn gib_buffer() -> (Vec<u64>, Vec<u32>, usize) {
    const WORDS: usize = (1 << 30) / 8;
    let buf: Vec<u64> = (0..WORDS as u64)
        .map(|w| w.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .collect();
    let mut rng = StdRng::seed_from_u64(SEED);
    let idx = (0..LOOKUPS)
        .map(|_| rng.random_range(0..WORDS as u32))
        .collect();
    (buf, idx, 0)
}

// ANCHOR: random_read
/// Times one 8-byte read at a random index; the next index depends on the value read.
fn random_reads(b: &mut criterion::Bencher<'_>, buf: &[u64], idx: &[u32], at: &mut usize) {
    let zero = black_box(0u64);
    let mask = idx.len() - 1;
    let mut prev = 0u64;
    b.iter(|| {
        let word = (u64::from(idx[*at & mask]) ^ (prev & zero)) as usize;
        *at = at.wrapping_add(1);
        prev = buf[word];
        prev
    });
}
// ANCHOR_END: random_read

/// A JSON document of about 1 KiB: an order with customer, address and items.
fn json_document() -> Vec<u8> {
    let items: Vec<serde_json::Value> = (0..6)
        .map(|i| {
            serde_json::json!({
                "sku": format!("SKU-{:06}", 1000 + i),
                "name": format!("Item number {i}"),
                "quantity": i + 1,
                "unit_price_cents": 1299 + 100 * i,
                "tags": ["gift", "fragile"],
            })
        })
        .collect();
    let doc = serde_json::json!({
        "id": "ord_01J8Z3Q4K9X2M7",
        "created_at": "2025-01-15T10:23:45Z",
        "customer": { "id": 42, "name": "Ada Lovelace", "email": "ada@example.com" },
        "shipping": { "street": "12 Analytical Row", "city": "London", "postcode": "N1 9GU", "country": "GB" },
        "items": items,
        "paid": true,
        "total_cents": 12345,
    });
    match serde_json::to_vec(&doc) {
        Ok(bytes) => bytes,
        Err(e) => panic!("serializing the sample document: {e}"),
    }
}

// ANCHOR: redis
fn redis_ping(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &tokio::runtime::Runtime,
) {
    // `testkit::redis` prints `SKIPPED: ...` (or panics under
    // SDB_REQUIRE_SERVICES=1) when the server does not answer PING.
    let Some(redis) = rt.block_on(testkit::redis()) else {
        return;
    };
    let conn = redis.conn.clone();
    group.bench_function("redis_ping", |b| {
        b.to_async(rt).iter(|| {
            let mut conn = conn.clone(); // a handle to the same connection
            async move { redis::cmd("PING").query_async::<String>(&mut conn).await }
        })
    });
}
// ANCHOR_END: redis

// ANCHOR: postgres
fn postgres_select_1(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &tokio::runtime::Runtime,
) {
    let url = testkit::database_url();
    let connect =
        async { tokio::time::timeout(CONNECT_TIMEOUT, sqlx::PgConnection::connect(&url)).await };
    let conn = match rt.block_on(connect) {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            return testkit::unavailable("PostgreSQL", &url, &e, testkit::services_required());
        }
        Err(_) => {
            return testkit::unavailable(
                "PostgreSQL",
                &url,
                &"timed out",
                testkit::services_required(),
            );
        }
    };
    let conn = Arc::new(tokio::sync::Mutex::new(conn));
    group.bench_function("postgres_select_1", |b| {
        b.to_async(rt).iter_custom(|iters| {
            let conn = Arc::clone(&conn);
            async move {
                let mut conn = conn.lock().await; // once per sample, outside the timing
                let start = Instant::now();
                for _ in 0..iters {
                    let one: i32 = match sqlx::query_scalar("SELECT 1").fetch_one(&mut *conn).await
                    {
                        Ok(v) => v,
                        Err(e) => panic!("SELECT 1: {e}"),
                    };
                    black_box(one);
                }
                start.elapsed()
            }
        })
    });
}
// ANCHOR_END: postgres

// ANCHOR: fsync
fn fsync_4kib(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    // Under target/, not /tmp: /tmp is often tmpfs, where fsync does nothing.
    let dir = target_dir();
    let file = match tempfile::NamedTempFile::new_in(&dir) {
        Ok(f) => f,
        Err(e) => panic!("creating a temporary file in {}: {e}", dir.display()),
    };
    let block = [0x5Au8; 4096];
    let f = file.as_file();
    if let Err(e) = f.write_all_at(&block, 0).and_then(|()| f.sync_all()) {
        panic!("preparing {}: {e}", file.path().display());
    }
    group.bench_function("fsync_4kib", |b| {
        b.iter(|| {
            // Same offset, same size: the file's length never changes, so
            // sync_data (fdatasync) flushes the data block without the inode.
            if let Err(e) = f.write_all_at(&block, 0).and_then(|()| f.sync_data()) {
                panic!("write + fdatasync: {e}");
            }
        })
    });
}
// ANCHOR_END: fsync

/// The cargo target directory: `CARGO_TARGET_DIR`, or `target/` in the workspace.
fn target_dir() -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        let _ = writeln!(std::io::stderr(), "creating {}: {e}", dir.display());
    }
    dir
}

criterion_group!(benches, latency);

fn main() {
    let started = Environment::detect();
    benches();
    Criterion::default().configure_from_args().final_summary();
    if let Err(e) = started.finish() {
        eprintln!("error: recording the environment: {e:#}");
        std::process::exit(1);
    }
}

// ANCHOR: environment
/// What the table's header names besides the machine: the servers' versions,
/// the file system and disk that took the `fdatasync`, and the load on the
/// machine before and after the run. Written as the result `environment`.
struct Environment {
    postgres: Option<String>,
    redis: Option<String>,
    disk: String,
    load_before: Option<f64>,
}

impl Environment {
    fn detect() -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        let (postgres, redis) = match rt {
            Ok(rt) => rt.block_on(async { (postgres_version().await, redis_version().await) }),
            Err(_) => (None, None),
        };
        Self {
            postgres,
            redis,
            disk: disk_of(&target_dir()),
            load_before: load_average(),
        }
    }

    /// Adds the load after the run and writes `target/sdb-results/appendix/environment.json`.
    fn finish(self) -> anyhow::Result<()> {
        let mut r = bookkit::BenchResult::new("appendix", "environment", bookkit::ResultKind::Load);
        // Not a measurement of its own: the header of the criterion results says the machine.
        r.machine = None;
        let text = |v: Option<String>| v.unwrap_or_else(|| "not reachable".to_string());
        r = r
            .with_extra("postgres", text(self.postgres))
            .with_extra("redis", text(self.redis))
            .with_extra("disk", self.disk);
        for (key, load) in [
            ("load_before", self.load_before),
            ("load_after", load_average()),
        ] {
            if let Some(l) = load {
                r = r.with_extra(key, l);
            }
        }
        bookkit::results::write_result(&r)?;
        Ok(())
    }
}

async fn postgres_version() -> Option<String> {
    let url = testkit::database_url();
    let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, sqlx::PgConnection::connect(&url))
        .await
        .ok()?
        .ok()?;
    let v: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&mut conn)
        .await
        .ok()?;
    Some(format!("PostgreSQL {v}"))
}

async fn redis_version() -> Option<String> {
    let client = redis::Client::open(testkit::redis_url()).ok()?;
    let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, client.get_multiplexed_async_connection())
        .await
        .ok()?
        .ok()?;
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut conn)
        .await
        .ok()?;
    let v = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))?
        .trim()
        .to_string();
    Some(format!("Redis {v}"))
}

/// The file system of `dir` and what is under it: `ext4 on /dev/vda (virtio_blk, write back cache)`.
fn disk_of(dir: &std::path::Path) -> String {
    let out = std::process::Command::new("df")
        .args(["--output=source,fstype"])
        .arg(dir)
        .output();
    let Some((source, fstype)) = out.ok().and_then(|o| {
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let line = text.lines().nth(1)?.to_string();
        let mut parts = line.split_whitespace();
        Some((parts.next()?.to_string(), parts.next()?.to_string()))
    }) else {
        return "unknown file system".to_string();
    };
    let mut about = Vec::new();
    if let Some(dev) = source.strip_prefix("/dev/") {
        // A partition's queue is its disk's: /sys/class/block/<dev>/.. for a partition.
        let block = std::path::Path::new("/sys/class/block").join(dev);
        let disk = if block.join("partition").exists() {
            block.join("..")
        } else {
            block
        };
        let read = |p: &str| {
            std::fs::read_to_string(disk.join(p))
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        };
        if let Some(model) = read("device/model") {
            about.push(model);
        } else if let Some(driver) = std::fs::read_link(disk.join("device/driver"))
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        {
            about.push(driver);
        }
        match read("queue/rotational").as_deref() {
            Some("0") => about.push("not rotational".to_string()),
            Some("1") => about.push("rotational".to_string()),
            _ => {}
        }
        if let Some(cache) = read("queue/write_cache") {
            about.push(format!("{cache} cache"));
        }
    }
    if about.is_empty() {
        format!("{fstype} on {source}")
    } else {
        format!("{fstype} on {source} ({})", about.join(", "))
    }
}

/// The one-minute load average.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
// ANCHOR_END: environment
