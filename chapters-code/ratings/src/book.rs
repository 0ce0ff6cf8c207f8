//! What this chapter publishes into the book (compiled with the `book` feature).

use bookkit::{Chapter, GeneratedFile};

use crate::generated;

/// The chapter's generated files.
pub fn book() -> Chapter {
    Chapter {
        slug: "ratings",
        package: "ratings",
        generated: vec![
            GeneratedFile::postgres("src/ratings/generated/explain.md", generated::explain),
            GeneratedFile::pure("src/ratings/generated/rank-flips.md", generated::rank_flips),
            GeneratedFile::pure("src/ratings/generated/spam.md", generated::spam),
            GeneratedFile::pure(
                "src/ratings/generated/state-diagram.md",
                generated::state_diagram,
            ),
        ],
        report: None,
    }
}
