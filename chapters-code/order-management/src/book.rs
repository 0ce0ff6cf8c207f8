//! What this chapter publishes into the book (compiled with the `book` feature).

use bookkit::{Chapter, GeneratedFile, Report};

use crate::{capacity, generated, report};

/// The chapter's generated files and its performance report.
pub fn book() -> Chapter {
    Chapter {
        slug: report::CHAPTER,
        package: "order-management",
        generated: vec![
            GeneratedFile::pure(capacity::CAPACITY_PATH, report::capacity_markdown),
            GeneratedFile::pure(capacity::MEASURED_PATH, report::measured_json),
            GeneratedFile::pure(report::PERFORMANCE_PATH, report::performance_markdown),
            GeneratedFile::postgres(generated::EXPLAIN_PATH, generated::explain_hot_queries),
            GeneratedFile::pure(generated::STATE_DIAGRAM_PATH, generated::state_diagram),
        ],
        report: Some(Report {
            benches: &["orders"],
            criterion_groups: &[],
            measure: None,
        }),
    }
}
