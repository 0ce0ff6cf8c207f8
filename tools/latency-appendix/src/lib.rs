//! Holds `benches/latency.rs`, the measurements of the appendix "Latency
//! numbers, measured" (group `latency`). The report that turns them into the
//! appendix's table and plot is `tools/chapters/src/latency.rs`.
