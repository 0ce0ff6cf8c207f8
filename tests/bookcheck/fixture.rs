//! A small book laid out like the real one, in a temporary directory, for
//! proving each check can fail: [`Fixture::correct`] passes every check, and
//! each test breaks one thing in it.

use std::path::{Path, PathBuf};

use bookkit::{GeneratedFile as Generator, Source};
use tempfile::TempDir;

/// A fixture book; deleted when dropped.
pub struct Fixture {
    dir: TempDir,
}

/// The generated file of the fixture and what its generator produces: a
/// state diagram, as the real chapters generate theirs.
pub const GENERATED_PATH: &str = "src/demo/generated/states.md";
const GENERATED: &str = "```mermaid\nstateDiagram-v2\n    [*] --> Open\n    Open --> Closed\n```\n";

fn states() -> anyhow::Result<String> {
    Ok(GENERATED.to_string())
}

/// The fixture's generator registry.
pub fn generators() -> Vec<Generator> {
    vec![Generator {
        path: GENERATED_PATH,
        source: Source::Pure(states),
    }]
}

const FILES: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        r#"[workspace]
resolver = "3"
members = [
    ".",
    "chapters-code/demo",
]
default-members = [
    ".",
    "chapters-code/demo",
]

[package]
name = "fixture"
version = "0.1.0"
edition = "2024"
"#,
    ),
    (
        "book.toml",
        r#"[book]
title = "Fixture"
src = "src"

[build]
build-dir = "book"
create-missing = false

[preprocessor.mermaid]
command = "mdbook-mermaid"
after = ["links"]

[preprocessor.sources]
optional = true
after = ["links"]
site = "https://example.org/fixture/"

[output.html]
additional-js = ["mermaid.min.js", "mermaid-init.js"]
site-url = "/fixture/"

[output.html.playground]
runnable = false
"#,
    ),
    ("mermaid.min.js", "// stand-in for mermaid\n"),
    (
        "mermaid-init.js",
        "// stand-in for mermaid's initialisation\n",
    ),
    (
        "src/SUMMARY.md",
        r#"# Summary

[Introduction](introduction.md)

# Part I

- [Demo](demo/index.md)
    - [Design](demo/design.md)
    - [Problem types](demo/problems.md)
- [Not written yet]()
"#,
    ),
    (
        "src/introduction.md",
        r#"# Introduction

Read [the store](demo/design.md#the-store) first, then [the demo](demo/index.md).

A listing is written `\{{#include ../code/src/lib.rs:anchor}}` inside a rust block.
In HTML it reads <code>&#123;&#123;#include ../code/src/lib.rs:anchor}}</code>.
"#,
    ),
    (
        "src/demo/index.md",
        r#"# Demo

```rust,noplayground
{{#include ../../chapters-code/demo/src/lib.rs:store}}
```

```sql
{{#include ../../chapters-code/demo/sql/schema.sql:table}}
```

```mermaid
graph LR
    Client --> Store
```

The state machine, generated from the code:

{{#include generated/states.md}}
"#,
    ),
    (
        "src/demo/design.md",
        r#"# Design

## The store

See [the demo](index.md#demo) and the [first lines](index.md).

```rust
{{#include ../../chapters-code/demo/src/lib.rs:1:3}}
```

The code: [`store`](../../chapters-code/demo/src/lib.rs#store), its
[doc comment](../../chapters-code/demo/src/lib.rs#L4), [its body][body], and
[the schema](../../chapters-code/demo/sql).

[body]: ../../chapters-code/demo/src/lib.rs#L5-L7
"#,
    ),
    (
        "src/demo/problems.md",
        r#"# Problem types

A type URI reads `https://example.org/fixture/demo/problems.html#not-found`.

## not-found

**Status:** `404 Not Found`

No such thing.

## too-many

**Status:** `429 Too Many Requests`

Slow down.
"#,
    ),
    (GENERATED_PATH, GENERATED),
    (
        "chapters-code/demo/Cargo.toml",
        r#"[package]
name = "demo"
version = "0.1.0"
edition = "2024"
"#,
    ),
    (
        "chapters-code/demo/src/lib.rs",
        r#"//! The demo chapter's code.

// ANCHOR: store
/// The stored answer.
pub fn store() -> u32 {
    42
}
// ANCHOR_END: store

/// Problem `type` URIs start with this.
pub const PROBLEM_TYPE_BASE: &str = "https://example.org/fixture/demo/problems.html#";

/// Every problem type, with its status.
pub const PROBLEM_TYPES: &[(&str, u16)] = &[("not-found", 404), ("too-many", 429)];

#[cfg(test)]
mod tests {
    #[test]
    fn stores_the_answer() {
        assert_eq!(super::store(), 42);
    }
}
"#,
    ),
    (
        "chapters-code/demo/sql/schema.sql",
        r#"-- ANCHOR: table
CREATE TABLE demo (
    id bigint PRIMARY KEY,
    name text NOT NULL
);
-- ANCHOR_END: table
"#,
    ),
];

impl Fixture {
    /// A book on which every check passes.
    pub fn correct() -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("book-fixture-")
            .tempdir()
            .expect("creating a temporary directory for the fixture");
        let fixture = Fixture { dir };
        for (path, text) in FILES {
            fixture.write(path, text);
        }
        fixture
    }

    /// The fixture's repository root.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Writes (or overwrites) `rel` with `text`.
    pub fn write(&self, rel: &str, text: &str) -> &Self {
        let path = self.path(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        }
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        self
    }

    /// Replaces `from` by `to` in `rel`; panics if `from` is not there.
    pub fn edit(&self, rel: &str, from: &str, to: &str) -> &Self {
        let path = self.path(rel);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        assert!(
            text.contains(from),
            "fixture file {rel} does not contain {from:?}"
        );
        self.write(rel, &text.replacen(from, to, 1))
    }

    /// Deletes `rel`.
    pub fn remove(&self, rel: &str) -> &Self {
        let path = self.path(rel);
        std::fs::remove_file(&path).unwrap_or_else(|e| panic!("removing {}: {e}", path.display()));
        self
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}
