//! Which machine, toolchain and commit produced a measurement.
//!
//! Every generated performance table in the book starts with a
//! [`MachineHeader`]: a number without the machine that produced it cannot be
//! compared with anything. The header names the CPU model (`model name` in
//! `/proc/cpuinfo`), the number of logical CPUs this process may use, the
//! output of `rustc -V`, the short git commit (with `-dirty` when the work
//! tree has uncommitted changes outside the generated folders), the date in UTC, and the one-minute load
//! average when the measurement started, so a reader can tell a figure taken
//! on a busy machine from one taken on an idle one.

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// The machine, toolchain, commit and date behind a set of measurements.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineHeader {
    /// The CPU model, from `/proc/cpuinfo` (`"unknown"` where that file has none).
    pub cpu_model: String,
    /// Logical CPUs available to this process (`std::thread::available_parallelism`).
    pub cores: usize,
    /// The compiler, as `rustc -V` prints it.
    pub rustc: String,
    /// The short commit hash, with `-dirty` appended when the tree has changes outside `generated/` folders.
    pub commit: String,
    /// The date of the measurement, `YYYY-MM-DD` in UTC.
    pub date_utc: String,
    /// The one-minute load average when detected (`/proc/loadavg`), if known.
    #[serde(default)]
    pub load_average: Option<f64>,
}

impl MachineHeader {
    /// Describes this machine, the `rustc` on `PATH`, and the git tree at `repo_root`.
    pub fn detect(repo_root: &Path) -> Result<Self> {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        Ok(Self {
            cpu_model: cpu_model(&cpuinfo).unwrap_or_else(|| "unknown".to_string()),
            cores: available_cores(),
            rustc: command_output(Command::new(rustc_program()).arg("-V"))?,
            commit: git_commit(repo_root)?,
            date_utc: utc_date(SystemTime::now())?,
            load_average: load_average(),
        })
    }

    /// True when other work shared the CPUs (load average above half the cores).
    pub fn busy(&self) -> bool {
        self.load_average
            .is_some_and(|l| l > 0.5 * self.cores as f64)
    }

    /// The load note of the header: empty on an idle machine.
    fn load_note(&self) -> String {
        match self.load_average {
            Some(l) if self.busy() => format!(
                "; **busy machine**: load average {l:.1} on {} CPUs when measured, so other work shared the CPUs",
                self.cores
            ),
            Some(l) => format!("; load average {l:.1}"),
            None => String::new(),
        }
    }

    /// The header as Markdown: one line, then a blank line, ready to precede a table.
    pub fn to_markdown(&self) -> String {
        format!(
            "**Measured on** {}, {} logical CPUs; `{}`; commit `{}`; {} (UTC){}.\n\n",
            self.cpu_model,
            self.cores,
            self.rustc,
            self.commit,
            self.date_utc,
            self.load_note()
        )
    }

    /// The header as one plain line, for plot captions.
    pub fn one_line(&self) -> String {
        format!(
            "{}, {} logical CPUs, {}, commit {}, {} UTC",
            self.cpu_model, self.cores, self.rustc, self.commit, self.date_utc
        )
    }
}

/// The first `model name` in the text of `/proc/cpuinfo`.
fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim().to_string())
    })
}

/// The one-minute load average, from `/proc/loadavg`.
/// The one-minute load average (`/proc/loadavg`), if known.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Logical CPUs this process may run on (respects affinity masks and cgroup quotas).
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// `$RUSTC` when cargo set it, else `rustc`.
fn rustc_program() -> String {
    std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string())
}

/// The short hash of `HEAD`, plus `-dirty` when `git status` reports changes to the code.
fn git_commit(repo_root: &Path) -> Result<String> {
    let hash = command_output(Command::new("git").arg("-C").arg(repo_root).args([
        "rev-parse",
        "--short",
        "HEAD",
    ]))?;
    let status = command_output(
        Command::new("git")
            .arg("-C")
            .arg(repo_root)
            .args(["status", "--porcelain"]),
    )?;
    Ok(if changes_code(&status) {
        format!("{hash}-dirty")
    } else {
        hash
    })
}

/// True when a line of `git status --porcelain` names a file outside the
/// books' `generated/` folders. Measuring writes results and tables there,
/// so a run after another chapter's run would otherwise always read `-dirty`
/// although the code measured is exactly the commit's.
fn changes_code(porcelain: &str) -> bool {
    porcelain.lines().any(|line| {
        // "XY path", or "XY from -> to" for a rename: both sides count.
        let paths = line.get(3..).unwrap_or_default();
        paths.split(" -> ").any(|path| {
            !path
                .trim_matches('"')
                .split('/')
                .any(|part| part == "generated")
        })
    })
}

/// Runs `cmd` and returns its trimmed standard output; a failure is an error.
fn command_output(cmd: &mut Command) -> Result<String> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().with_context(|| format!("running {shown}"))?;
    if !out.status.success() {
        bail!(
            "{shown} exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8(out.stdout).with_context(|| format!("output of {shown}"))?;
    Ok(text.trim().to_string())
}

/// `t` as `YYYY-MM-DD` in UTC.
fn utc_date(t: SystemTime) -> Result<String> {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_secs();
    let days = i64::try_from(secs / 86_400).context("date out of range")?;
    let (y, m, d) = civil_from_days(days);
    Ok(format!("{y:04}-{m:02}-{d:02}"))
}

/// The proleptic Gregorian date of `days` since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_gregorian() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(20_454), (2026, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn cpu_model_is_the_first_model_name() {
        let text = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t: x\nmodel name\t: other\n";
        assert_eq!(cpu_model(text).as_deref(), Some("AMD EPYC 7B13"));
        assert_eq!(cpu_model("processor : 0\n"), None);
    }

    #[test]
    fn only_changes_outside_generated_folders_make_a_commit_dirty() {
        assert!(!changes_code(""));
        assert!(!changes_code(
            " M src/url-shortener/generated/results/redirect.json\n?? src/inventory/generated/ladder.md"
        ));
        assert!(changes_code(" M chapters-code/inventory/src/lib.rs"));
        assert!(changes_code(
            " M src/inventory/generated/ladder.md\n?? chapters-code/inventory/benches/new.rs"
        ));
        assert!(changes_code("R  src/a/generated/x.md -> src/a/x.md"));
        // A source file merely named like the folder is code.
        assert!(changes_code(
            " M chapters-code/parking-reservation/src/generated.rs"
        ));
    }

    #[test]
    fn header_names_everything() {
        let h = MachineHeader {
            cpu_model: "CPU X".into(),
            cores: 2,
            rustc: "rustc 1.95.0".into(),
            commit: "abc1234-dirty".into(),
            date_utc: "2026-01-01".into(),
            load_average: Some(1.6),
        };
        let md = h.to_markdown();
        for part in [
            "CPU X",
            "2 logical CPUs",
            "rustc 1.95.0",
            "abc1234-dirty",
            "2026-01-01",
            "busy machine",
        ] {
            assert!(md.contains(part), "{md}");
        }
        assert!(md.ends_with("\n\n"));
    }
}
