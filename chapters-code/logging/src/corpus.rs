//! A seeded generator of realistic service logs: requests that cross
//! several services under one trace id, levels mostly `info`, messages from
//! templates with ids, paths and durations, and the type conflict Uber
//! met (a `status` that is usually a number and sometimes a word).

use std::collections::BTreeMap;

use crate::domain::{FieldValue, Labels, Level, Record, TraceId};

/// SplitMix64: tiny, seeded, and the same on every platform and version,
/// so the corpus (and the sizes the book prints) never change by accident.
#[derive(Debug, Clone)]
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// The services of the generated fleet.
pub const SERVICES: [&str; 6] = [
    "gateway",
    "checkout",
    "payments",
    "search",
    "auth",
    "inventory",
];

const PATHS: [&str; 6] = [
    "/cart",
    "/checkout",
    "/search",
    "/login",
    "/products/{id}",
    "/orders",
];
const WORDS: [&str; 8] = [
    "red shoes",
    "laptop",
    "usb cable",
    "coffee",
    "desk lamp",
    "backpack",
    "phone case",
    "headphones",
];

/// An endless stream of records from a seed, starting at `start_ms`.
#[derive(Debug, Clone)]
pub struct Corpus {
    rng: SplitMix,
    now_ms: i64,
    pending: Vec<Record>,
}

impl Corpus {
    /// A corpus from `seed`, its first line at `start_ms`.
    pub fn new(seed: u64, start_ms: i64) -> Self {
        Self {
            rng: SplitMix(seed),
            now_ms: start_ms,
            pending: Vec::new(),
        }
    }

    fn level(&mut self) -> Level {
        match self.rng.below(100) {
            0..=2 => Level::Error,
            3..=9 => Level::Warn,
            10..=19 => Level::Debug,
            _ => Level::Info,
        }
    }

    fn line(
        &mut self,
        service: &str,
        trace: TraceId,
        message: String,
        fields: BTreeMap<String, FieldValue>,
    ) -> Record {
        self.now_ms += self.rng.below(4) as i64;
        let level = self.level();
        let labels = Labels::from_pairs([("service", service), ("level", level.as_str())])
            .unwrap_or_default();
        Record {
            ts_ms: self.now_ms,
            labels,
            message,
            trace_id: Some(trace),
            fields,
        }
    }

    /// One request: a gateway line, then two to four lines from the
    /// services it touched, all under one trace id.
    fn request(&mut self) {
        let trace =
            TraceId::from_u128(u128::from(self.rng.next()) << 64 | u128::from(self.rng.next()));
        let r = &mut self.rng;
        let path = r.pick(&PATHS).replace("{id}", &r.below(90_000).to_string());
        let method = if r.below(4) == 0 { "POST" } else { "GET" };
        let status: i64 = match r.below(100) {
            0..=1 => 500,
            2..=6 => 404,
            _ => 200,
        };
        let ms = 1.0 + r.below(4000) as f64 / 10.0;
        let mut f = BTreeMap::new();
        f.insert("status".into(), FieldValue::Int(status));
        f.insert("duration_ms".into(), FieldValue::Float(ms));
        f.insert("path".into(), FieldValue::Str(path.clone()));
        let l = self.line(
            "gateway",
            trace,
            format!("{method} {path} {status} {ms}ms"),
            f,
        );
        self.pending.push(l);
        let hops = 2 + self.rng.below(3);
        for _ in 0..hops {
            let service = self.rng.pick(&SERVICES[1..]);
            let (msg, fields) = self.message(service);
            let l = self.line(service, trace, msg, fields);
            self.pending.push(l);
        }
        self.pending.reverse();
    }

    fn message(&mut self, service: &str) -> (String, BTreeMap<String, FieldValue>) {
        let r = &mut self.rng;
        let mut f = BTreeMap::new();
        let user = format!("u{}", r.below(50_000));
        let msg = match service {
            "checkout" => {
                let items = 1 + r.below(9);
                f.insert("items".into(), FieldValue::Int(items as i64));
                format!(
                    "cart c{} checked out with {items} items for {user}",
                    r.below(1_000_000)
                )
            }
            "payments" => {
                let id = format!("ch_{:012x}", r.next() >> 16);
                match r.below(20) {
                    0 => {
                        // The conflict: `status` is a word here, a number elsewhere.
                        f.insert("status".into(), FieldValue::Str("timeout".into()));
                        format!("charge {id} provider timeout after 3000ms, retrying")
                    }
                    1 => {
                        f.insert("status".into(), FieldValue::Int(402));
                        format!("charge {id} declined: insufficient funds")
                    }
                    _ => {
                        let cents = 100 + r.below(50_000) as i64;
                        f.insert("status".into(), FieldValue::Int(200));
                        f.insert("amount_cents".into(), FieldValue::Int(cents));
                        format!("charge {id} authorised amount={cents} currency=EUR")
                    }
                }
            }
            "search" => {
                let hits = r.below(500);
                format!(
                    "query \"{}\" returned {hits} hits in {}ms",
                    r.pick(&WORDS),
                    1 + r.below(120)
                )
            }
            "auth" => {
                if r.below(10) == 0 {
                    format!("login failed for user {user}: bad password")
                } else {
                    format!("token refreshed for user {user}")
                }
            }
            _ => {
                let sku = format!("SKU-{}", r.below(20_000));
                f.insert("sku".into(), FieldValue::Str(sku.clone()));
                format!("reserved {} of {sku} in AMS-1", 1 + r.below(3))
            }
        };
        (msg, f)
    }
}

impl Iterator for Corpus {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        if self.pending.is_empty() {
            self.request();
        }
        self.pending.pop()
    }
}
