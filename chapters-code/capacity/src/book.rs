//! What this crate publishes into the book (feature `book`): the worked
//! example of the method page "Capacity estimation".

use bookkit::{Chapter, GeneratedFile};

/// The method pages' generated files; nothing is measured.
pub fn book() -> Chapter {
    Chapter {
        slug: "method",
        package: "capacity",
        generated: vec![
            GeneratedFile::pure("src/method/generated/capacity-example-inputs.md", || {
                Ok(crate::worked_example_inputs_markdown())
            }),
            GeneratedFile::pure("src/method/generated/capacity-example.md", || {
                Ok(crate::worked_example_markdown()?)
            }),
        ],
        report: None,
    }
}
