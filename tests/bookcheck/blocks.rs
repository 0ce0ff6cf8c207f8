//! Check 2: a ```rust or ```sql block in `src/` holds include directives only.
//!
//! Code the reader sees must come from a crate that is compiled and tested, so
//! a hand-typed line in a Rust or SQL block is an error. Files in a
//! `generated/` directory are exempt: code wrote them, and check 6 keeps them
//! current.

use std::path::Path;

use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd};

use super::includes::is_only_an_include;
use super::{Problem, SRC, is_generated, line_of, markdown_files, read, relative};

/// Info strings whose blocks must be includes: `rust`, `rust,noplayground`, `sql`, ...
pub fn is_checked_language(info: &str) -> bool {
    let info = info.trim().to_ascii_lowercase();
    let first = info
        .split(|c: char| c == ',' || c == '{' || c.is_whitespace())
        .next()
        .unwrap_or("");
    info.starts_with("rust")
        || info.starts_with("sql")
        || matches!(first, "pgsql" | "postgresql" | "postgres" | "plpgsql")
}

/// The options mdBook 0.5 renders with, so blocks are found where mdBook finds them.
pub fn markdown_options() -> Options {
    Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_HEADING_ATTRIBUTES
}

/// Check 2 over every non-generated markdown file under `src/`.
pub fn check(root: &Path) -> Vec<Problem> {
    let src = root.join(SRC);
    let (files, mut problems) = markdown_files(root, &src);
    for md in files.iter().filter(|f| !is_generated(&src, f)) {
        match read(root, md) {
            Ok(text) => problems.extend(
                check_text(&text)
                    .into_iter()
                    .map(|(line, message)| Problem::at(relative(root, md), line, message)),
            ),
            Err(p) => problems.push(p),
        }
    }
    problems
}

/// The offending `(line, message)` pairs of one markdown text.
pub fn check_text(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    // (info string, line of the opening fence, saw a directive, reported already)
    let mut current: Option<(String, usize, bool, bool)> = None;
    for (event, range) in Parser::new_ext(text, markdown_options()).into_offset_iter() {
        match event {
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info)))
                if is_checked_language(&info) =>
            {
                current = Some((info.to_string(), line_of(text, range.start), false, false));
            }
            Event::Text(body) => {
                let Some((info, _, saw, reported)) = current.as_mut() else {
                    continue;
                };
                let first_line = line_of(text, range.start);
                for (i, l) in body.lines().enumerate() {
                    if l.trim().is_empty() {
                        continue;
                    }
                    if is_only_an_include(l) {
                        *saw = true;
                    } else if !*reported {
                        *reported = true;
                        out.push((
                            first_line + i,
                            format!(
                                "```{info} block holds code, not only include directives: {:?}; \
                                 move the code into a crate under chapters-code/ and \
                                 {{{{#include}}}} it by anchor",
                                l.trim()
                            ),
                        ));
                    }
                }
            }
            Event::End(TagEnd::CodeBlock) => {
                if let Some((info, line, saw, reported)) = current.take()
                    && !saw
                    && !reported
                {
                    out.push((
                        line,
                        format!("```{info} block is empty: it includes nothing"),
                    ));
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages() {
        assert!(is_checked_language("rust"));
        assert!(is_checked_language("rust,noplayground"));
        assert!(is_checked_language("sql"));
        assert!(!is_checked_language("mermaid"));
        assert!(!is_checked_language("text"));
        assert!(!is_checked_language("toml"));
    }

    #[test]
    fn finds_the_line_of_hand_typed_code() {
        let md = "# T\n\n```rust\n{{#include a.rs:x}}\nfn main() {}\n```\n";
        let found = check_text(md);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, 5);
    }

    #[test]
    fn includes_and_blank_lines_pass() {
        let md = "```rust,noplayground\n{{#include a.rs:x}}\n\n{{#rustdoc_include b.rs}}\n```\n\n```sql\n{{ #include s.sql:t }}\n```\n";
        assert_eq!(check_text(md), vec![]);
    }
}
