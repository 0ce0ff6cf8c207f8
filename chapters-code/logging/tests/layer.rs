//! The application side never blocks: with the sink stalled, emitting far
//! more than the buffer holds returns, and every record that did not fit is
//! counted as dropped.

use std::sync::mpsc;
use std::time::Duration;

use logging::layer::{ShipConfig, ship_layer};
use tracing_subscriber::layer::SubscriberExt;

/// The buffer's size in the test.
const CAPACITY: usize = 64;
/// How many times the capacity the test emits.
const OVERLOAD: usize = 50;
/// Not a timing assertion: only how long to wait before calling the
/// emitter stuck (a blocking send would never return at all).
const STUCK_AFTER: Duration = Duration::from_secs(60);

// ANCHOR: never_blocks
#[test]
fn with_the_sink_stalled_emitting_returns_and_counts_the_drops() {
    let config = ShipConfig {
        capacity: CAPACITY,
        service: "checkout".into(),
    };
    let (layer, rx, stats) = ship_layer(&config).expect("valid service label");
    // The sink is stalled: `rx` is kept alive and never read.
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..CAPACITY * OVERLOAD {
                tracing::info!(order = i, "payment authorised");
            }
        });
        let _ = done_tx.send(());
    });
    done_rx
        .recv_timeout(STUCK_AFTER)
        .expect("the emitting thread blocked on a stalled sink");
    let emitted = (CAPACITY * OVERLOAD) as u64;
    assert_eq!(stats.queued(), CAPACITY as u64);
    assert_eq!(stats.dropped(), emitted - CAPACITY as u64);
    assert_eq!(rx.len(), CAPACITY, "the buffer holds exactly its capacity");
}
// ANCHOR_END: never_blocks

#[test]
fn a_gone_agent_drops_and_counts_instead_of_failing_the_app() {
    let config = ShipConfig {
        capacity: 4,
        service: "api".into(),
    };
    let (layer, rx, stats) = ship_layer(&config).expect("valid");
    drop(rx);
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        for _ in 0..10 {
            tracing::warn!("agent is gone");
        }
    });
    assert_eq!(stats.dropped(), 10);
}

#[test]
fn every_line_of_a_request_carries_its_spans_trace_id_and_fields() {
    let config = ShipConfig {
        capacity: 16,
        service: "api".into(),
    };
    let (layer, mut rx, _stats) = ship_layer(&config).expect("valid");
    let subscriber = tracing_subscriber::registry().with(layer);
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("request", trace_id = trace);
        let _g = span.enter();
        tracing::info!(status = 200_i64, took_ms = 1.5, "handled");
        tracing::error!("failed");
    });
    let first = rx.try_recv().expect("first line");
    let second = rx.try_recv().expect("second line");
    for r in [&first, &second] {
        assert_eq!(r.trace_id.map(|t| t.to_string()).as_deref(), Some(trace));
        assert_eq!(r.labels.get("service"), Some("api"));
    }
    assert_eq!(first.labels.get("level"), Some("info"));
    assert_eq!(second.labels.get("level"), Some("error"));
    assert_eq!(first.message, "handled");
    assert_eq!(
        first.fields.get("status"),
        Some(&logging::domain::FieldValue::Int(200))
    );
}
