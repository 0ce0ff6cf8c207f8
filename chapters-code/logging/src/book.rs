//! What this chapter publishes into the book (compiled with the `book` feature).

use bookkit::{Chapter, GeneratedFile};

use crate::report;

/// The chapter's generated files. No bench yet: the performance report is
/// not written, so nothing measured is claimed.
pub fn book() -> Chapter {
    Chapter {
        slug: report::CHAPTER,
        package: "logging",
        generated: vec![GeneratedFile::pure(
            report::SIZES_PATH,
            report::sizes_markdown,
        )],
        report: None,
    }
}
