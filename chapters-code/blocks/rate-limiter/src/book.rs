//! What this block publishes into its Part II page (feature `book`).

use bookkit::Chapter;

/// The block's generated files and bench report.
pub fn book() -> Chapter {
    Chapter {
        slug: "blocks/rate-limiter",
        package: "block-rate-limiter",
        generated: vec![],
        report: None,
    }
}
