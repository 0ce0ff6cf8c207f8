//! The committed generated files are what the code generates now: a hand
//! edit of the state diagram (or a change of the table without
//! regenerating) fails here, before the book check even runs.

use std::path::PathBuf;

fn repo_file(rel: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e} (run `cargo xtask gen`)", path.display()))
}

#[test]
fn the_committed_state_diagram_is_the_transition_table() {
    let generated = match order_management::generated::state_diagram() {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        repo_file(order_management::generated::STATE_DIAGRAM_PATH),
        generated,
        "the state diagram differs from TRANSITIONS: regenerate it, do not edit it"
    );
}

/// Writes the files when `SDB_WRITE_GENERATED=1`, for a first checkout
/// before `cargo xtask gen` knows this chapter.
#[test]
fn write_generated_files_on_request() {
    if std::env::var("SDB_WRITE_GENERATED").is_ok_and(|v| v == "1") {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(order_management::generated::STATE_DIAGRAM_PATH);
        let text = order_management::generated::state_diagram().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    }
}
