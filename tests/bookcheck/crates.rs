//! Check 5: every chapter crate is shown in the book, is tested, and is tested
//! by a plain `cargo test`.
//!
//! A chapter crate is a directory with a `Cargo.toml` directly under
//! `chapters-code/` or under `chapters-code/blocks/`; `testkit` is support
//! code and exempt. Each one must
//!
//! - be included by at least one page (some include directive points inside it);
//! - have tests: a `.rs` file in `tests/`, or `#[test]` / `#[tokio::test]` /
//!   `proptest!` in `src/`;
//! - be a workspace member and a default member, or `cargo test` at the root
//!   never compiles it.

use std::path::{Path, PathBuf};

use super::{Problem, files_with_extension, includes, normalize, relative, slash};

/// Crates under `chapters-code/` that are support code, not chapters.
pub const EXEMPT: &[&str] = &["testkit"];

/// Every chapter crate directory, relative to the root, sorted.
pub fn chapter_crates(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for parent in ["chapters-code", "chapters-code/blocks"] {
        let Ok(entries) = std::fs::read_dir(root.join(parent)) else {
            continue;
        };
        for entry in entries.flatten() {
            let dir = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if dir.join("Cargo.toml").is_file()
                && !(parent == "chapters-code" && EXEMPT.contains(&name.as_str()))
            {
                out.push(Path::new(parent).join(name));
            }
        }
    }
    out.sort();
    out
}

/// Check 5.
pub fn check(root: &Path) -> Vec<Problem> {
    let (directives, mut problems) = includes::scan(root);
    let targets: Vec<PathBuf> = directives
        .iter()
        .map(|d| relative(root, &normalize(&d.target)))
        .collect();
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap_or_default();
    let members = workspace_list(&manifest, "members");
    let default_members = workspace_list(&manifest, "default-members");

    for krate in chapter_crates(root) {
        let cargo_toml = krate.join("Cargo.toml");
        let name = slash(&krate);
        if !targets.iter().any(|t| t.starts_with(&krate)) {
            problems.push(Problem::file(
                &cargo_toml,
                format!("chapter crate {name} is not included by any page in src/: show its code with {{{{#include}}}}"),
            ));
        }
        if !has_tests(root, &root.join(&krate)) {
            problems.push(Problem::file(
                &cargo_toml,
                format!(
                    "chapter crate {name} has no tests (no .rs file in {name}/tests/, no #[test] in {name}/src/)"
                ),
            ));
        }
        for (list, key) in [(&members, "members"), (&default_members, "default-members")] {
            if !list.iter().any(|pattern| matches_member(pattern, &name)) {
                problems.push(Problem::file(
                    &cargo_toml,
                    format!("chapter crate {name} is not in the root Cargo.toml's [workspace] {key}, so `cargo test` skips it"),
                ));
            }
        }
    }
    problems
}

fn has_tests(root: &Path, krate: &Path) -> bool {
    let (integration, _) = files_with_extension(root, &krate.join("tests"), "rs");
    if !integration.is_empty() {
        return true;
    }
    let (sources, _) = files_with_extension(root, &krate.join("src"), "rs");
    sources.iter().any(|f| {
        std::fs::read_to_string(f).is_ok_and(|s| {
            s.contains("#[test]") || s.contains("#[tokio::test") || s.contains("proptest!")
        })
    })
}

/// The strings of `key = [ ... ]` in the manifest's `[workspace]` table.
fn workspace_list(manifest: &str, key: &str) -> Vec<String> {
    let mut in_workspace = false;
    let mut collecting = false;
    let mut out = Vec::new();
    for line in manifest.lines() {
        let code = line.split('#').next().unwrap_or("").trim();
        if !collecting && code.starts_with('[') {
            in_workspace = code == "[workspace]";
            continue;
        }
        if !in_workspace {
            continue;
        }
        let rest = if collecting {
            code
        } else if let Some((k, v)) = code.split_once('=')
            && k.trim() == key
        {
            collecting = true;
            v.trim().trim_start_matches('[')
        } else {
            continue;
        };
        let (items, done) = match rest.split_once(']') {
            Some((items, _)) => (items, true),
            None => (rest, false),
        };
        out.extend(
            items
                .split(',')
                .map(|s| s.trim().trim_matches('"').to_string())
                .filter(|s| !s.is_empty()),
        );
        if done {
            collecting = false;
        }
    }
    out
}

/// Cargo's member globs: `*` matches within one path segment.
fn matches_member(pattern: &str, path: &str) -> bool {
    let pattern = pattern.trim_end_matches('/');
    let p: Vec<&str> = pattern.split('/').collect();
    let s: Vec<&str> = path.split('/').collect();
    p.len() == s.len() && p.iter().zip(&s).all(|(p, s)| glob_segment(p, s))
}

fn glob_segment(pattern: &str, s: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == s,
        Some((prefix, suffix)) => {
            s.len() >= prefix.len() + suffix.len() && s.starts_with(prefix) && s.ends_with(suffix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_workspace_lists() {
        let toml = "[workspace]\nmembers = [\n  \".\", # root\n  \"chapters-code/*\",\n]\ndefault-members = [\"a\", \"b\"]\n[package]\nmembers = [\"no\"]\n";
        assert_eq!(
            workspace_list(toml, "members"),
            vec![".", "chapters-code/*"]
        );
        assert_eq!(workspace_list(toml, "default-members"), vec!["a", "b"]);
        assert!(matches_member(
            "chapters-code/*",
            "chapters-code/parking-reservation"
        ));
        assert!(!matches_member(
            "chapters-code/*",
            "chapters-code/blocks/cache"
        ));
    }
}
