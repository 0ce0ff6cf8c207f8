//! `chapters gen [--check] [slug]` and `chapters bench-report [--render-only] [filter]`.
//!
//! Run through `cargo xtask gen` and `cargo xtask bench-report`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match chapters::runner::cli(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
