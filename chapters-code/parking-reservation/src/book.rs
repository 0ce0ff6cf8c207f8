//! What this chapter publishes into the book (compiled with the `book` feature).
//!
//! The runner of `cargo xtask gen` and `cargo xtask bench-report` lists this
//! function; nothing else in the tools knows about the chapter.

use bookkit::{Chapter, GeneratedFile, Report};

use crate::{capacity, generated, report};

/// The chapter's generated files and its performance report.
pub fn book() -> Chapter {
    Chapter {
        slug: report::CHAPTER,
        package: "parking-reservation",
        generated: vec![
            GeneratedFile::pure(capacity::CAPACITY_PATH, report::capacity_markdown),
            GeneratedFile::postgres(
                "src/parking-reservation/generated/explain-assign.md",
                generated::explain_assign,
            ),
            GeneratedFile::postgres(
                "src/parking-reservation/generated/explain-availability.md",
                generated::explain_availability,
            ),
            GeneratedFile::pure(capacity::MEASURED_PATH, report::measured_markdown),
            GeneratedFile::pure(report::PERFORMANCE_PATH, report::performance_markdown),
            GeneratedFile::pure(
                "src/parking-reservation/generated/pricing.md",
                generated::pricing,
            ),
            GeneratedFile::pure(
                "src/parking-reservation/generated/state-diagram.md",
                generated::state_diagram,
            ),
            GeneratedFile::pure(report::STRATEGIES_PATH, report::strategies_markdown),
            GeneratedFile::pure(report::STADIUM_PATH, report::stadium_markdown),
            GeneratedFile::pure(capacity::SCALING_PATH, report::scaling_markdown),
            GeneratedFile::pure(capacity::KEY_NUMBERS_PATH, report::key_numbers_markdown),
            GeneratedFile::pure(report::PER_CORE_PATH, report::per_core_markdown),
            GeneratedFile::postgres(
                "src/parking-reservation/generated/storage.md",
                generated::storage,
            ),
        ],
        report: Some(Report {
            benches: &["reserve"],
            criterion_groups: &[],
            measure: None,
        }),
    }
}
