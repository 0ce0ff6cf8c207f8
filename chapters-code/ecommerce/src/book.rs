//! What this chapter publishes into the book (compiled with the `book` feature).

use bookkit::{Chapter, GeneratedFile, Report};

use crate::{capacity, generated, report};

/// The chapter's generated files and its performance report.
pub fn book() -> Chapter {
    Chapter {
        slug: report::CHAPTER,
        package: "ecommerce",
        generated: vec![
            GeneratedFile::pure(capacity::CAPACITY_PATH, report::capacity_markdown),
            GeneratedFile::pure("src/ecommerce/generated/constants.md", generated::constants),
            GeneratedFile::postgres(
                "src/ecommerce/generated/explain-search.md",
                generated::explain_search,
            ),
            GeneratedFile::pure(report::KEY_NUMBERS_PATH, report::key_numbers_markdown),
            GeneratedFile::pure(capacity::MEASURED_PATH, report::measured_markdown),
            GeneratedFile::pure(report::PERFORMANCE_PATH, report::performance_markdown),
            GeneratedFile::pure(
                "src/ecommerce/generated/worked-quote.md",
                generated::worked_quote,
            ),
        ],
        report: Some(Report {
            benches: &["checkout"],
            criterion_groups: &[],
            measure: None,
        }),
    }
}
