//! `cargo bench -p recommendations --features book --bench funnel`: the ANN
//! sweep and the training time. Writes results for `cargo xtask
//! bench-report recommendations`; prints a line per configuration.
//!
//! Size: `REC_BENCH_N` vectors (default 100,000; the book's claim needs a
//! run with 1,000,000) of dimension `REC_BENCH_DIM` (default 64). Each
//! configuration of our HNSW (M x ef_construction) is built once and
//! searched at every ef; instant-distance (M fixed at 32) once per
//! ef_construction; brute force is the ceiling every queries/s is divided by.

use std::time::Instant;

use anyhow::Result;
use bookkit::results::write_result;
use bookkit::{BenchResult, ResultKind};
use recommendations::ann::hnsw::{Hnsw, Params, brute_force};
use recommendations::ann::reference::Reference;
use recommendations::ann::{clustered_unit_vectors, recall};
use recommendations::candidates::two_tower::{TrainConfig, TwoTower};
use recommendations::data::{Config, generate};
use recommendations::report::CHAPTER;
use recommendations::vector::Matrix;

const QUERIES: usize = 200;
const K: usize = 10;
const M: [usize; 3] = [8, 16, 32];
const EF_CONSTRUCTION: [usize; 2] = [64, 200];
const EF: [usize; 4] = [16, 64, 128, 256];

fn var(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(v) => Ok(v.parse()?),
        Err(_) => Ok(default),
    }
}

/// Resident memory of this process, from /proc (Linux), in bytes.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn measure(
    name: &str,
    queries: &Matrix,
    exact: &[Vec<(u32, f32)>],
    search: impl Fn(&[f32]) -> Vec<(u32, f32)>,
) -> BenchResult {
    let started = Instant::now();
    let mut hits = 0.0;
    for (i, truth) in exact.iter().enumerate() {
        hits += recall(truth, &search(queries.row(i)));
    }
    BenchResult::new(CHAPTER, name, ResultKind::Simulation)
        .with_throughput(queries.rows() as u64, 0, started.elapsed())
        .with_extra("recall_at_10", hits / queries.rows() as f64)
}

fn main() -> std::process::ExitCode {
    bookkit::bench_main(run)
}

async fn run() -> Result<()> {
    let n = var("REC_BENCH_N", 100_000)?;
    let dim = var("REC_BENCH_DIM", 64)?;
    let vectors = clustered_unit_vectors(n, dim, 100, 11);
    let queries = clustered_unit_vectors(QUERIES, dim, 100, 12);

    let started = Instant::now();
    let exact: Vec<_> = (0..QUERIES)
        .map(|i| brute_force(&vectors, queries.row(i), K))
        .collect();
    let brute = BenchResult::new(CHAPTER, "ann-brute-force", ResultKind::Simulation)
        .with_throughput(QUERIES as u64, 0, started.elapsed())
        .with_extra("recall_at_10", 1.0)
        .with_extra("n", n as u64);
    println!(
        "brute force: {:.0} queries/s",
        brute.ops_per_sec.unwrap_or(0.0)
    );
    write_result(&brute)?;

    for m in M {
        for ef_construction in EF_CONSTRUCTION {
            let before = resident_bytes();
            let started = Instant::now();
            let index = Hnsw::build(
                &vectors,
                Params {
                    m,
                    ef_construction,
                    seed: 1,
                },
            );
            let build_s = started.elapsed().as_secs_f64();
            let rss = resident_bytes()
                .zip(before)
                .map(|(a, b)| a.saturating_sub(b));
            for ef in EF {
                let name = format!("ann-ours-m{m}-efc{ef_construction}-ef{ef}");
                let r = measure(&name, &queries, &exact, |q| index.search(q, K, ef))
                    .with_ceiling("ann-brute-force")
                    .with_extra("build_s", build_s)
                    .with_extra("heap_bytes", index.heap_bytes() as u64)
                    .with_extra("rss_growth_bytes", rss.unwrap_or(0))
                    .with_extra("n", n as u64);
                println!(
                    "{name}: recall@10 {:.3}, {:.0} queries/s, build {build_s:.1} s",
                    r.extra_f64("recall_at_10").unwrap_or(0.0),
                    r.ops_per_sec.unwrap_or(0.0)
                );
                write_result(&r)?;
            }
        }
    }
    for ef_construction in EF_CONSTRUCTION {
        for ef in [EF[1], EF[2]] {
            let started = Instant::now();
            let theirs = Reference::build(&vectors, ef_construction, ef, 1);
            let build_s = started.elapsed().as_secs_f64();
            let name = format!("ann-instant-distance-efc{ef_construction}-ef{ef}");
            let r = measure(&name, &queries, &exact, |q| theirs.search(q, K))
                .with_ceiling("ann-brute-force")
                .with_extra("build_s", build_s)
                .with_extra("n", n as u64);
            println!(
                "{name}: recall@10 {:.3}, {:.0} queries/s, build {build_s:.1} s (parallel)",
                r.extra_f64("recall_at_10").unwrap_or(0.0),
                r.ops_per_sec.unwrap_or(0.0)
            );
            write_result(&r)?;
        }
    }

    // Training time of the two-tower model on the book's world.
    let data = generate(Config::BOOK);
    let started = Instant::now();
    let (_, losses) = TwoTower::train(&data, TrainConfig::BOOK);
    let train = BenchResult::new(CHAPTER, "train-two-tower", ResultKind::Simulation)
        .with_throughput(TrainConfig::BOOK.epochs as u64, 0, started.elapsed())
        .with_extra(
            "final_loss",
            f64::from(losses.last().copied().unwrap_or(0.0)),
        );
    println!("two-tower training: {:.2} s", train.duration_s);
    write_result(&train)?;
    Ok(())
}
