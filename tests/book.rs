//! Integrity checks of the book itself (ARCHITECTURE.md, "tests/book.rs").
//!
//! Each check runs once on the real repository and must find nothing, and at
//! least once on a small fixture book broken on purpose, where it must report
//! the fault and name the file. A fixture that is not broken passes every
//! check, so no check passes by always failing either.
//!
//! 1. every `{{#include}}` / `{{#rustdoc_include}}` names an existing file and anchor;
//! 2. a ```rust / ```sql block in `src/` holds include directives only;
//! 3. SUMMARY.md and the pages in `src/` agree;
//! 4. the book builds in-process (mdbook-driver + mdbook-mermaid + the source
//!    pages of `xtask::sources`) and its HTML has no leftover `{{#`, every
//!    mermaid block became a diagram, and every internal link and `#fragment`
//!    resolves, on the chapters and on the generated source pages alike;
//! 5. every chapter crate is included by a page, has tests, and is a workspace member;
//! 6. generated files are current;
//! 7. every `chapters-code/**/sql/*.sql` applies to a fresh PostgreSQL database;
//! 8. every link from a page to a repository file names a file that exists,
//!    and its `#L42`, `#L10-L20` or `#item` a line inside it;
//! 9. every problem type a chapter's code declares has its section, with its
//!    status, on `src/<slug>/problems.md`, at the URI the code puts in `type`
//!    (`[preprocessor.sources] site` in book.toml + `<slug>/problems.html#<type>`).

mod bookcheck;

use std::path::Path;

use bookcheck::fixture::{self, Fixture};
use bookcheck::render::Mermaid;
use bookcheck::{
    Problem, assert_no_problems, blocks, crates, generated, includes, problems, render, sources,
    sql, summary,
};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Asserts that some problem names `file` and says `needle`; returns it.
#[track_caller]
fn assert_reported<'a>(problems: &'a [Problem], file: &str, needle: &str) -> &'a Problem {
    let found = problems
        .iter()
        .find(|p| bookcheck::slash(&p.file) == file && p.message.contains(needle));
    match found {
        Some(p) => p,
        None => {
            let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
            panic!(
                "expected a problem in {file} mentioning {needle:?}; the check reported {}:\n{}",
                list.len(),
                list.join("\n")
            )
        }
    }
}

// ---------------------------------------------------------------------------
// The real book.

#[test]
fn every_include_in_the_book_resolves() {
    assert_no_problems("includes", &includes::check(repo()));
}

#[test]
fn rust_and_sql_blocks_in_the_book_hold_only_includes() {
    assert_no_problems("code blocks", &blocks::check(repo()));
}

#[test]
fn summary_and_pages_of_the_book_agree() {
    assert_no_problems("SUMMARY.md", &summary::check(repo()));
}

#[test]
fn the_book_builds_with_diagrams_and_no_dead_links() {
    assert_no_problems("build", &render::check(repo(), Mermaid::On));
}

#[test]
fn every_chapter_crate_is_shown_and_tested() {
    assert_no_problems("chapter crates", &crates::check(repo()));
}

#[test]
fn generated_files_of_the_book_are_current() {
    let generators = chapters::generated_files();
    let url = generated::database_url_for(&generators);
    assert_no_problems(
        "generated files",
        &generated::check(repo(), &generators, url.as_deref()),
    );
}

#[test]
fn every_link_to_a_repository_file_resolves() {
    assert_no_problems("links to repository files", &sources::check(repo()));
}

#[test]
fn every_problem_type_is_documented_where_its_uri_points() {
    assert_no_problems("problem types", &problems::check(repo()));
}

#[tokio::test]
async fn every_sql_file_applies_to_a_fresh_database() {
    if let Some(problems) = sql::check(repo()).await {
        assert_no_problems("SQL files", &problems);
    }
}

// ---------------------------------------------------------------------------
// A correct fixture passes every check.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correct_fixture_passes_every_check() {
    let f = Fixture::correct();
    let root = f.root();
    assert_no_problems("includes", &includes::check(root));
    assert_no_problems("code blocks", &blocks::check(root));
    assert_no_problems("SUMMARY.md", &summary::check(root));
    let built = tokio::task::block_in_place(|| render::check(root, Mermaid::On));
    assert_no_problems("build", &built);
    assert_no_problems("chapter crates", &crates::check(root));
    assert_no_problems(
        "generated files",
        &generated::check(root, &fixture::generators(), None),
    );
    if let Some(problems) = sql::check(root).await {
        assert_no_problems("SQL files", &problems);
    }
    assert_no_problems("links to repository files", &sources::check(root));
    assert_no_problems("problem types", &problems::check(root));
}

#[test]
fn correct_fixture_publishes_its_linked_code_as_source_pages() {
    let f = Fixture::correct();
    let out = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let site = out.path().join("html");
    xtask::book::build_html(f.root(), &site, false).unwrap_or_else(|e| panic!("{e:#}"));
    let design = std::fs::read_to_string(site.join("demo/design.html")).unwrap_or_default();
    for href in [
        "../code/chapters-code/demo/src/lib.rs.html#L5",
        "../code/chapters-code/demo/src/lib.rs.html#L4",
        "../code/chapters-code/demo/src/lib.rs.html#L5-L7",
        "../code/chapters-code/demo/sql/index.html",
    ] {
        assert!(
            design.contains(&format!("href=\"{href}\"")),
            "design.html lacks {href}"
        );
    }
    let page = std::fs::read_to_string(site.join("code/chapters-code/demo/src/lib.rs.html"))
        .unwrap_or_else(|e| panic!("the source page was not written: {e}"));
    assert!(
        page.contains(r#"<code class="language-rust">"#),
        "not highlighted as Rust"
    );
    assert!(
        page.contains(r##"<a id="L5" href="#L5">5</a>"##),
        "no line anchors"
    );
    let sql = std::fs::read_to_string(site.join("code/chapters-code/demo/sql/index.html"))
        .unwrap_or_else(|e| panic!("the directory page was not written: {e}"));
    assert!(sql.contains(r#"href="schema.sql.html""#), "{sql}");
    assert!(
        site.join("code/chapters-code/demo/sql/schema.sql.html")
            .is_file()
    );
    assert!(site.join("code/index.html").is_file());
}

// ---------------------------------------------------------------------------
// Check 1: includes.

#[test]
fn include_of_missing_file_is_reported() {
    let f = Fixture::correct();
    f.edit(
        "src/demo/index.md",
        "demo/src/lib.rs:store",
        "demo/src/gone.rs:store",
    );
    let problems = includes::check(f.root());
    let p = assert_reported(&problems, "src/demo/index.md", "file not found");
    assert_eq!(p.line, Some(4), "{p}");
    assert!(p.message.contains("chapters-code/demo/src/gone.rs"), "{p}");
}

#[test]
fn include_with_missing_anchor_is_reported() {
    let f = Fixture::correct();
    f.edit("src/demo/index.md", "lib.rs:store", "lib.rs:stor");
    let problems = includes::check(f.root());
    let p = assert_reported(&problems, "src/demo/index.md", "anchor \"stor\" not found");
    assert_eq!(
        p.to_string(),
        "src/demo/index.md:4: include ../../chapters-code/demo/src/lib.rs:stor: \
         anchor \"stor\" not found in chapters-code/demo/src/lib.rs"
    );
}

#[test]
fn sql_anchor_without_end_marker_is_reported() {
    let f = Fixture::correct();
    f.edit(
        "chapters-code/demo/sql/schema.sql",
        "-- ANCHOR_END: table\n",
        "",
    );
    let problems = includes::check(f.root());
    assert_reported(
        &problems,
        "src/demo/index.md",
        "anchor \"table\" has no ANCHOR_END",
    );
}

#[test]
fn include_line_range_past_end_of_file_is_reported() {
    let f = Fixture::correct();
    f.edit("src/demo/design.md", "lib.rs:1:3", "lib.rs:200:210");
    let problems = includes::check(f.root());
    assert_reported(&problems, "src/demo/design.md", "selects from line 200");
}

#[test]
fn escaped_include_is_text_not_a_directive() {
    let f = Fixture::correct();
    f.write(
        "src/introduction.md",
        "# Introduction\n\nWrite `\\{{#include nowhere.rs:nothing}}`.\n",
    );
    assert_no_problems("includes", &includes::check(f.root()));
    f.write(
        "src/introduction.md",
        "# Introduction\n\nWrite `{{#include nowhere.rs:nothing}}`.\n",
    );
    assert_reported(
        &includes::check(f.root()),
        "src/introduction.md",
        "file not found",
    );
}

// ---------------------------------------------------------------------------
// Check 2: code blocks.

#[test]
fn rust_block_with_hand_typed_code_is_reported() {
    let f = Fixture::correct();
    f.edit(
        "src/demo/index.md",
        "```rust,noplayground\n{{#include",
        "```rust,noplayground\nfn typed_by_hand() {}\n{{#include",
    );
    let problems = blocks::check(f.root());
    let p = assert_reported(&problems, "src/demo/index.md", "fn typed_by_hand");
    assert_eq!(p.line, Some(4), "{p}");
}

#[test]
fn sql_block_with_hand_typed_query_is_reported() {
    let f = Fixture::correct();
    f.edit(
        "src/demo/index.md",
        "```sql\n{{#include ../../chapters-code/demo/sql/schema.sql:table}}\n```",
        "```sql\nSELECT 1;\n```",
    );
    let problems = blocks::check(f.root());
    assert_reported(&problems, "src/demo/index.md", "SELECT 1;");
}

// ---------------------------------------------------------------------------
// Check 3: SUMMARY.md.

#[test]
fn orphan_page_is_reported() {
    let f = Fixture::correct();
    f.write("src/demo/forgotten.md", "# Forgotten\n");
    let problems = summary::check(f.root());
    assert_reported(&problems, "src/demo/forgotten.md", "orphan page");
}

#[test]
fn summary_entry_without_file_is_reported() {
    let f = Fixture::correct();
    f.remove("src/demo/design.md");
    let problems = summary::check(f.root());
    let p = assert_reported(
        &problems,
        "src/SUMMARY.md",
        "demo/design.md: listed page has no file",
    );
    assert_eq!(p.line, Some(8), "{p}");
}

// ---------------------------------------------------------------------------
// Check 4: the build.

#[test]
fn mermaid_block_left_as_code_is_reported() {
    let f = Fixture::correct();
    let problems = render::check(f.root(), Mermaid::Off);
    // Two diagrams on the page: one written, one from the generated file.
    assert_reported(&problems, "src/demo/index.md", "2 ```mermaid block(s)");
}

#[test]
fn mermaid_fence_with_extra_words_is_reported() {
    let f = Fixture::correct();
    f.edit(
        "src/demo/index.md",
        "```mermaid\ngraph",
        "```mermaid title\ngraph",
    );
    let problems = render::check(f.root(), Mermaid::On);
    assert_reported(
        &problems,
        "src/demo/index.md",
        "mermaid code block(s) left as code",
    );
}

#[test]
fn dead_internal_link_is_reported() {
    let f = Fixture::correct();
    f.edit(
        "src/introduction.md",
        "(demo/index.md)",
        "(demo/missing.md)",
    );
    let problems = render::check(f.root(), Mermaid::On);
    let p = assert_reported(&problems, "src/introduction.md", "no demo/missing.html");
    assert_eq!(p.line, Some(3), "{p}");
}

#[test]
fn dead_fragment_is_reported() {
    let f = Fixture::correct();
    f.edit("src/introduction.md", "#the-store", "#the-shop");
    let problems = render::check(f.root(), Mermaid::On);
    assert_reported(&problems, "src/introduction.md", "has no id=\"the-shop\"");
}

#[test]
fn unexpanded_directive_in_html_is_reported() {
    let f = Fixture::correct();
    // An unknown directive is left in the page as is (check 1 reports it too).
    f.edit(
        "src/demo/design.md",
        "## The store",
        "## The store\n\n{{#inclde index.md}}",
    );
    let problems = render::check(f.root(), Mermaid::On);
    assert_reported(&problems, "src/demo/design.md", "unexpanded");
    assert_reported(
        &includes::check(f.root()),
        "src/demo/design.md",
        "not a directive mdBook knows",
    );
}

#[test]
fn page_listed_without_file_fails_the_build() {
    let f = Fixture::correct();
    f.remove("src/demo/design.md");
    let problems = render::check(f.root(), Mermaid::On);
    assert_reported(&problems, "book.toml", "design.md");
}

#[test]
fn dead_line_anchor_on_a_source_page_is_reported() {
    let f = Fixture::correct();
    // Raw HTML is not rewritten by the sources preprocessor, so only the
    // check of the built site can see that these name nothing.
    f.edit(
        "src/demo/design.md",
        "[the schema]",
        "<a href=\"../code/chapters-code/demo/src/lib.rs.html#L99\">line 99</a>, \
         <a href=\"../code/chapters-code/demo/src/gone.rs.html\">gone</a>, [the schema]",
    );
    let problems = render::check(f.root(), Mermaid::On);
    assert_reported(&problems, "src/demo/design.md", "has no id=\"L99\"");
    assert_reported(
        &problems,
        "src/demo/design.md",
        "no code/chapters-code/demo/src/gone.rs.html",
    );
}

#[test]
fn link_to_the_published_site_is_checked_like_an_internal_one() {
    let f = Fixture::correct();
    f.edit(
        "src/demo/design.md",
        "[the schema]",
        "[ours](https://example.org/fixture/demo/index.html#demo), \
         [gone](https://example.org/fixture/demo/gone.html), [the schema]",
    );
    let problems = render::check(f.root(), Mermaid::On);
    assert_reported(&problems, "src/demo/design.md", "no demo/gone.html");
    // print.html repeats the link; nothing else is wrong.
    assert!(
        problems.iter().all(|p| p.message.contains("gone.html")),
        "{problems:?}"
    );
}

// ---------------------------------------------------------------------------
// Check 5: chapter crates.

#[test]
fn chapter_crate_not_included_by_any_page_is_reported() {
    let f = Fixture::correct();
    f.write(
        "chapters-code/blocks/lonely/Cargo.toml",
        "[package]\nname = \"lonely\"\n",
    );
    f.write(
        "chapters-code/blocks/lonely/tests/it.rs",
        "#[test]\nfn works() {}\n",
    );
    f.write(
        "Cargo.toml",
        "[workspace]\nmembers = [\".\", \"chapters-code/demo\", \"chapters-code/blocks/*\"]\n\
         default-members = [\".\", \"chapters-code/demo\", \"chapters-code/blocks/lonely\"]\n",
    );
    let problems = crates::check(f.root());
    assert_reported(
        &problems,
        "chapters-code/blocks/lonely/Cargo.toml",
        "not included by any page",
    );
    assert!(
        !problems
            .iter()
            .any(|p| p.message.contains("no tests") || p.message.contains("members")),
        "only the missing page should be reported: {problems:?}"
    );
}

#[test]
fn chapter_crate_without_tests_is_reported() {
    let f = Fixture::correct();
    f.edit(
        "chapters-code/demo/src/lib.rs",
        "#[test]",
        "#[allow(dead_code)]",
    );
    let problems = crates::check(f.root());
    assert_reported(&problems, "chapters-code/demo/Cargo.toml", "has no tests");
}

#[test]
fn chapter_crate_outside_the_workspace_is_reported() {
    let f = Fixture::correct();
    f.edit(
        "Cargo.toml",
        "default-members = [\n    \".\",\n    \"chapters-code/demo\",\n]",
        "default-members = [\".\"]",
    );
    let problems = crates::check(f.root());
    assert_reported(
        &problems,
        "chapters-code/demo/Cargo.toml",
        "default-members",
    );
}

// ---------------------------------------------------------------------------
// Check 6: generated files.

#[test]
fn stale_generated_file_is_reported() {
    let f = Fixture::correct();
    f.edit(fixture::GENERATED_PATH, "Closed", "Shut");
    let problems = generated::check(f.root(), &fixture::generators(), None);
    let p = assert_reported(&problems, fixture::GENERATED_PATH, "stale");
    assert!(p.message.contains("cargo xtask gen"), "{p}");
}

#[test]
fn missing_generated_file_is_reported() {
    let f = Fixture::correct();
    f.remove(fixture::GENERATED_PATH);
    let problems = generated::check(f.root(), &fixture::generators(), None);
    assert_reported(&problems, fixture::GENERATED_PATH, "missing");
}

// ---------------------------------------------------------------------------
// Check 7: SQL files.

#[tokio::test]
async fn invalid_sql_file_is_reported() {
    let f = Fixture::correct();
    f.write(
        "chapters-code/demo/sql/broken.sql",
        "CREATE TABLE ok (id bigint PRIMARY KEY);\n\nCREATE TABLE broken (\n    id bigint PRIMARY KEY,,\n    name text\n);\n",
    );
    let Some(problems) = sql::check(f.root()).await else {
        return; // PostgreSQL absent: testkit printed SKIPPED
    };
    let p = assert_reported(
        &problems,
        "chapters-code/demo/sql/broken.sql",
        "syntax error",
    );
    assert_eq!(p.line, Some(4), "{p}");
    assert_eq!(problems.len(), 1, "schema.sql is valid: {problems:?}");
}

// ---------------------------------------------------------------------------
// Check 8: links to repository files.

#[test]
fn link_to_a_missing_source_file_is_reported() {
    let f = Fixture::correct();
    f.edit(
        "src/demo/design.md",
        "demo/src/lib.rs#store",
        "demo/src/gone.rs#store",
    );
    let problems = sources::check(f.root());
    let p = assert_reported(
        &problems,
        "src/demo/design.md",
        "chapters-code/demo/src/gone.rs: no such file or directory",
    );
    assert_eq!(p.line, Some(11), "{p}");
    // The build refuses it too, naming the page and the link.
    assert_reported(
        &render::check(f.root(), Mermaid::On),
        "book.toml",
        "src/demo/design.md: link ../../chapters-code/demo/src/gone.rs#store",
    );
}

#[test]
fn link_to_a_line_past_the_end_of_a_source_file_is_reported() {
    let f = Fixture::correct();
    f.edit("src/demo/design.md", "lib.rs#L5-L7", "lib.rs#L5-L700");
    let problems = sources::check(f.root());
    let p = assert_reported(
        &problems,
        "src/demo/design.md",
        "line 700 is past the end of the file",
    );
    assert_eq!(p.line, Some(15), "{p}");
}

#[test]
fn link_to_an_unknown_item_of_a_source_file_is_reported() {
    let f = Fixture::correct();
    f.edit("src/demo/design.md", "lib.rs#store", "lib.rs#shop");
    assert_reported(
        &sources::check(f.root()),
        "src/demo/design.md",
        "#shop: no fn, struct",
    );
}

// ---------------------------------------------------------------------------
// Check 9: problem types.

#[test]
fn problem_type_without_a_section_is_reported() {
    let f = Fixture::correct();
    f.edit(
        "chapters-code/demo/src/lib.rs",
        "(\"too-many\", 429)",
        "(\"too-many\", 429), (\"gone\", 410)",
    );
    assert_reported(
        &problems::check(f.root()),
        "src/demo/problems.md",
        "no section `## gone`",
    );
}

#[test]
fn section_for_no_problem_type_is_reported() {
    let f = Fixture::correct();
    f.edit("chapters-code/demo/src/lib.rs", ", (\"too-many\", 429)", "");
    let problems = problems::check(f.root());
    let p = assert_reported(
        &problems,
        "src/demo/problems.md",
        "`## too-many` is not a problem type",
    );
    assert_eq!(p.line, Some(11), "{p}");
}

#[test]
fn status_on_the_page_that_differs_from_the_code_is_reported() {
    let f = Fixture::correct();
    f.edit("src/demo/problems.md", "`429 Too", "`503 Too");
    assert_reported(
        &problems::check(f.root()),
        "src/demo/problems.md",
        "section too-many must state its status as **Status:** `429",
    );
}

#[test]
fn problem_type_base_that_is_not_the_published_page_is_reported() {
    let f = Fixture::correct();
    f.edit(
        "chapters-code/demo/src/lib.rs",
        "https://example.org/fixture/demo/problems.html#",
        "https://docs.demo.example/problems/",
    );
    let problems = problems::check(f.root());
    let p = assert_reported(
        &problems,
        "chapters-code/demo/src/lib.rs",
        "must be \"https://example.org/fixture/demo/problems.html#\"",
    );
    assert!(p.line.is_some(), "{p}");
}

#[test]
fn published_site_and_site_url_that_disagree_are_reported() {
    let f = Fixture::correct();
    f.edit(
        "book.toml",
        "site-url = \"/fixture/\"",
        "site-url = \"/book/\"",
    );
    assert_reported(
        &problems::check(f.root()),
        "book.toml",
        "output.html.site-url is \"/book/\"",
    );
}
