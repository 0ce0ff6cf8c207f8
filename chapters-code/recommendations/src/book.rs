//! What this chapter publishes into the book (compiled with the `book` feature).

use bookkit::{Chapter, GeneratedFile, Report};

use crate::report;

/// The chapter's generated files.
pub fn book() -> Chapter {
    Chapter {
        slug: report::CHAPTER,
        package: "recommendations",
        generated: vec![
            GeneratedFile::pure(report::OFFLINE_PATH, report::offline_markdown),
            GeneratedFile::pure(report::FUNNEL_PATH, report::funnel_markdown),
            GeneratedFile::pure(report::ANN_PATH, report::ann_markdown),
            GeneratedFile::pure(report::PERFORMANCE_PATH, report::performance_markdown),
        ],
        report: Some(Report {
            benches: &["funnel"],
            criterion_groups: &[],
            measure: None,
        }),
    }
}
