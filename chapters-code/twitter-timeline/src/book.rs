//! What this chapter publishes into the book (compiled with the `book` feature).

use bookkit::{Chapter, GeneratedFile, Report};

use crate::{capacity, generated, report};

/// The chapter's generated files and its performance report.
pub fn book() -> Chapter {
    Chapter {
        slug: report::CHAPTER,
        package: "twitter-timeline",
        generated: vec![
            GeneratedFile::pure(capacity::CAPACITY_PATH, report::capacity_markdown),
            GeneratedFile::pure(
                "src/twitter-timeline/generated/constants.md",
                generated::constants,
            ),
            GeneratedFile::pure(
                "src/twitter-timeline/generated/delivery.md",
                report::delivery_markdown,
            ),
            GeneratedFile::postgres(
                "src/twitter-timeline/generated/explain-pull-no-index.md",
                generated::explain_pull_without_index,
            ),
            GeneratedFile::postgres(
                "src/twitter-timeline/generated/explain-audience.md",
                generated::explain_audience,
            ),
            GeneratedFile::postgres(
                "src/twitter-timeline/generated/explain-pull.md",
                generated::explain_pull_with_index,
            ),
            GeneratedFile::pure(
                "src/twitter-timeline/generated/key-numbers.md",
                report::key_numbers_markdown,
            ),
            GeneratedFile::pure(capacity::MEASURED_PATH, report::measured_json),
            GeneratedFile::pure(
                "src/twitter-timeline/generated/memory.md",
                report::memory_markdown,
            ),
            GeneratedFile::pure(
                "src/twitter-timeline/generated/performance.md",
                report::performance_markdown,
            ),
            GeneratedFile::pure(
                "src/twitter-timeline/generated/sweep.md",
                report::sweep_markdown,
            ),
            GeneratedFile::pure(
                "src/twitter-timeline/generated/sweep.svg",
                report::sweep_svg,
            ),
            GeneratedFile::pure(
                "src/twitter-timeline/generated/sweep-cost.svg",
                report::sweep_cost_svg,
            ),
            GeneratedFile::pure(
                "src/twitter-timeline/generated/writes.md",
                report::writes_table_markdown,
            ),
        ],
        report: Some(Report {
            benches: &["timeline"],
            criterion_groups: &[],
            measure: None,
        }),
    }
}
