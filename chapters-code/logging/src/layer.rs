//! The application side: a `tracing` layer that turns events into
//! [`Record`]s and hands them to a bounded buffer without ever waiting.
//!
//! The policy when the sink stalls is explicit: the buffer holds
//! [`ShipConfig::capacity`] records; when it is full, the new record is
//! dropped and counted in [`ShipStats`]. The emitting thread pays one
//! `try_send` and never blocks, whatever the agent, the network or the
//! broker do.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc::{self, error::TrySendError};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::domain::{
    FieldValue, LabelName, Labels, Level, MAX_MESSAGE_LEN, Record, TraceId, truncate_at_boundary,
};

/// The counters the layer exports (a metrics endpoint reads them).
#[derive(Debug, Default)]
pub struct ShipStats {
    /// Records handed to the buffer.
    pub queued: AtomicU64,
    /// Records dropped because the buffer was full or the agent gone.
    pub dropped: AtomicU64,
    /// Messages cut to [`MAX_MESSAGE_LEN`].
    pub truncated: AtomicU64,
}

impl ShipStats {
    /// Records queued so far.
    pub fn queued(&self) -> u64 {
        self.queued.load(Ordering::Relaxed)
    }

    /// Records dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// How the layer is set up.
#[derive(Debug, Clone)]
pub struct ShipConfig {
    /// Records the buffer holds before new ones are dropped.
    pub capacity: usize,
    /// The `service` label of every record.
    pub service: String,
}

/// The layer: install it in a `tracing_subscriber::Registry`.
#[derive(Debug)]
pub struct ShipLayer {
    tx: mpsc::Sender<Record>,
    labels: Labels,
    stats: Arc<ShipStats>,
}

/// Builds the layer and the receiving end the agent drains.
pub fn ship_layer(
    config: &ShipConfig,
) -> Result<(ShipLayer, mpsc::Receiver<Record>, Arc<ShipStats>), crate::domain::LabelError> {
    let (tx, rx) = mpsc::channel(config.capacity.max(1));
    let stats = Arc::new(ShipStats::default());
    let labels = Labels::from_pairs([("service", config.service.as_str())])?;
    Ok((
        ShipLayer {
            tx,
            labels,
            stats: stats.clone(),
        },
        rx,
        stats,
    ))
}

/// The trace id a span carries, kept in its extensions.
struct SpanTrace(TraceId);

/// Collects an event's (or a span's) fields.
#[derive(Default)]
struct Collect {
    message: Option<String>,
    trace_id: Option<TraceId>,
    fields: BTreeMap<String, FieldValue>,
}

impl Collect {
    fn put(&mut self, field: &Field, value: FieldValue) {
        match (field.name(), value) {
            ("message", FieldValue::Str(s)) => self.message = Some(s),
            ("trace_id", FieldValue::Str(s)) if TraceId::parse(&s).is_ok() => {
                self.trace_id = TraceId::parse(&s).ok();
            }
            (name, v) => {
                self.fields.insert(name.to_string(), v);
            }
        }
    }
}

impl Visit for Collect {
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, FieldValue::Bool(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, FieldValue::Int(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        let v = i64::try_from(value).map_or(FieldValue::Str(value.to_string()), FieldValue::Int);
        self.put(field, v);
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, FieldValue::float(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, FieldValue::Str(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.put(field, FieldValue::Str(format!("{value:?}")));
    }
}

fn level_of(l: &tracing::Level) -> Level {
    match *l {
        tracing::Level::TRACE => Level::Trace,
        tracing::Level::DEBUG => Level::Debug,
        tracing::Level::INFO => Level::Info,
        tracing::Level::WARN => Level::Warn,
        _ => Level::Error,
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl<S> Layer<S> for ShipLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut c = Collect::default();
        attrs.record(&mut c);
        if let (Some(t), Some(span)) = (c.trace_id, ctx.span(id)) {
            span.extensions_mut().insert(SpanTrace(t));
        }
    }

    // ANCHOR: on_event
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut c = Collect::default();
        event.record(&mut c);
        // The trace id of the event, else of the nearest span that has one:
        // every line of a request carries it without the caller repeating it.
        let trace_id = c.trace_id.or_else(|| {
            ctx.event_scope(event)?
                .find_map(|span| span.extensions().get::<SpanTrace>().map(|t| t.0))
        });
        let mut labels = self.labels.clone();
        if let Ok(name) = LabelName::parse("level") {
            let _ = labels.insert(name, level_of(event.metadata().level()).as_str());
        }
        let mut message = c.message.unwrap_or_default();
        if truncate_at_boundary(&mut message, MAX_MESSAGE_LEN) {
            self.stats.truncated.fetch_add(1, Ordering::Relaxed);
        }
        let record = Record {
            ts_ms: now_ms(),
            labels,
            message,
            trace_id,
            fields: c.fields,
        };
        // The only place the app meets the pipeline: `try_send` returns at
        // once; a full buffer (the sink stalled) or a closed one (the agent
        // gone) drops this record and counts it.
        match self.tx.try_send(record) {
            Ok(()) => self.stats.queued.fetch_add(1, Ordering::Relaxed),
            Err(TrySendError::Full(_) | TrySendError::Closed(_)) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
    // ANCHOR_END: on_event
}
