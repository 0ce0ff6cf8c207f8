//! What this chapter publishes into the book (compiled with the `book` feature).
//!
//! The runner of `cargo xtask gen` and `cargo xtask bench-report` lists this
//! function; nothing else in the tools knows about the chapter.

use bookkit::{Chapter, GeneratedFile, Report};

use crate::{collisions, generated, report};

/// The chapter's generated files and its performance report.
pub fn book() -> Chapter {
    Chapter {
        slug: report::CHAPTER,
        package: "url-shortener",
        generated: vec![
            GeneratedFile::postgres(
                "src/url-shortener/generated/alias-race.md",
                generated::alias_race_markdown,
            ),
            GeneratedFile::pure(
                "src/url-shortener/generated/alphabets.md",
                report::alphabets_markdown,
            ),
            GeneratedFile::pure(
                "src/url-shortener/generated/availability.md",
                report::availability_markdown,
            ),
            GeneratedFile::pure(
                "src/url-shortener/generated/capacity.md",
                report::capacity_markdown,
            ),
            GeneratedFile::pure(
                "src/url-shortener/generated/codegen.md",
                report::codegen_markdown,
            ),
            GeneratedFile::pure(
                "src/url-shortener/generated/collision-simulation.md",
                || Ok(collisions::collision_simulation_markdown()),
            ),
            GeneratedFile::pure("src/url-shortener/generated/collisions.md", || {
                collisions::collision_table_markdown()
            }),
            GeneratedFile::postgres(
                "src/url-shortener/generated/explain-redirect.md",
                generated::explain_redirect,
            ),
            GeneratedFile::postgres(
                "src/url-shortener/generated/explain-stats.md",
                generated::explain_stats,
            ),
            GeneratedFile::pure(
                "src/url-shortener/generated/key-numbers.md",
                report::key_numbers_markdown,
            ),
            GeneratedFile::pure(
                "src/url-shortener/generated/measured.json",
                report::measured_json,
            ),
            GeneratedFile::pure(
                "src/url-shortener/generated/redirects.md",
                report::redirects_markdown,
            ),
            GeneratedFile::pure(
                "src/url-shortener/generated/redirects.svg",
                report::redirects_svg,
            ),
            GeneratedFile::pure(
                "src/url-shortener/generated/scaling.md",
                report::scaling_markdown,
            ),
            GeneratedFile::pure("src/url-shortener/generated/scan.md", report::scan_markdown),
        ],
        report: Some(Report {
            benches: &["codegen", "redirect-load"],
            criterion_groups: &[report::GROUP],
            measure: None,
        }),
    }
}
