//! What this block publishes into its Part II page (feature `book`).

use bookkit::{Chapter, GeneratedFile, Report};

use crate::report;

/// The block's generated files and bench report.
pub fn book() -> Chapter {
    Chapter {
        slug: report::BLOCK,
        package: "block-rate-limiter",
        generated: vec![
            GeneratedFile::pure(
                "src/blocks/rate-limiter/generated/boundary.md",
                report::boundary_markdown,
            ),
            GeneratedFile::pure(
                "src/blocks/rate-limiter/generated/fairness.md",
                report::fairness_markdown,
            ),
            GeneratedFile::pure(
                "src/blocks/rate-limiter/generated/race.md",
                report::race_markdown,
            ),
            GeneratedFile::pure(
                "src/blocks/rate-limiter/generated/throughput.md",
                report::throughput_markdown,
            ),
        ],
        report: Some(Report {
            benches: &["limiters", "shared"],
            criterion_groups: &[report::GROUP],
            measure: None,
        }),
    }
}
