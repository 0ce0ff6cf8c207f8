//! Crash tests with real process deaths: the test binary re-runs itself as
//! a child that plays one role and aborts at a failpoint.

use std::os::unix::process::ExitStatusExt;

/// SIGABRT on Linux.
const SIGABRT: i32 = 6;

/// Re-runs this test binary as a child process that runs only the test
/// `entry` with `role_var=role` and `vars`, waits for it, and checks that it
/// died of SIGABRT: the `std::process::abort()` at its failpoint, a real
/// process death (no destructor, no ROLLBACK, no goodbye to a broker).
///
/// Panics when the child cannot be run or did not abort: this is test support.
pub async fn die_in_child(role_var: &str, entry: &str, role: &str, vars: &[(&str, &str)]) {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    let out = tokio::process::Command::new(exe)
        .args(["--exact", entry, "--nocapture", "--test-threads=1"])
        .env(role_var, role)
        .envs(vars.iter().copied())
        // A core file, if this machine writes them, lands outside the repository.
        .current_dir(std::env::temp_dir())
        .output()
        .await
        .unwrap_or_else(|e| panic!("run the child: {e}"));
    assert_eq!(
        out.status.signal(),
        Some(SIGABRT),
        "the {role} child should have died at its failpoint, but {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
}
