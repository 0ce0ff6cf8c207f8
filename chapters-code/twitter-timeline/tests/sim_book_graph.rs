//! The book's graph, printed (slow in debug builds; run with `--run-ignored only`).

use twitter_timeline::sim::{
    BOOK_GRAPH, THRESHOLDS, generate, stats_markdown, sweep, sweep_markdown,
};

#[test]
#[ignore = "the full 100K-user graph; the report runs it"]
fn print_the_book_graph_sweep() {
    let g = generate(&BOOK_GRAPH);
    println!("{}", stats_markdown(&BOOK_GRAPH, &g.stats()));
    println!("{}", sweep_markdown(&sweep(&g, THRESHOLDS)));
}
