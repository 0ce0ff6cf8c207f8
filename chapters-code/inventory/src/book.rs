//! What this chapter publishes into the book (compiled with the `book` feature).

use bookkit::{Chapter, GeneratedFile, Report};

use crate::{generated, report};

/// The chapter's generated files and its performance report.
pub fn book() -> Chapter {
    Chapter {
        slug: report::CHAPTER,
        package: "inventory",
        generated: vec![
            GeneratedFile::pure(
                "src/inventory/generated/capacity.md",
                report::capacity_markdown,
            ),
            GeneratedFile::pure(report::LAG_PATH, report::lag_markdown),
            GeneratedFile::postgres("src/inventory/generated/explain.md", generated::explain),
            GeneratedFile::pure(report::LADDER_PATH, report::ladder_markdown),
            GeneratedFile::pure(report::LADDER_SVG_PATH, report::ladder_svg),
            GeneratedFile::pure(report::PERFORMANCE_PATH, report::performance_markdown),
            GeneratedFile::pure(report::KEY_NUMBERS_PATH, report::key_numbers_markdown),
            GeneratedFile::pure(
                "src/inventory/generated/state-diagram.md",
                generated::state_diagram,
            ),
        ],
        report: Some(Report {
            benches: &["ladder"],
            criterion_groups: &[],
            measure: None,
        }),
    }
}
