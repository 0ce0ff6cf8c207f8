//! What this chapter publishes into the book (compiled with the `book` feature).

use bookkit::{Chapter, GeneratedFile, Report};

use crate::report;

/// The chapter's generated files.
pub fn book() -> Chapter {
    Chapter {
        slug: report::CHAPTER,
        package: "load-balancer",
        generated: vec![
            GeneratedFile::pure(
                "src/load-balancer/generated/balls-into-bins.md",
                report::balls_markdown,
            ),
            GeneratedFile::pure(
                "src/load-balancer/generated/disruption.md",
                report::disruption_markdown,
            ),
            GeneratedFile::pure(
                "src/load-balancer/generated/key-numbers.md",
                report::key_numbers_markdown,
            ),
            GeneratedFile::pure(
                "src/load-balancer/generated/performance.md",
                report::performance_markdown,
            ),
            GeneratedFile::pure("src/load-balancer/generated/spread.svg", report::spread_svg),
            GeneratedFile::pure(
                "src/load-balancer/generated/stale.md",
                report::stale_markdown,
            ),
            GeneratedFile::pure("src/load-balancer/generated/stale.svg", report::stale_svg),
        ],
        report: Some(Report {
            benches: &["bakeoff"],
            criterion_groups: &[],
            measure: None,
        }),
    }
}
