//! The in-memory store is a faithful model of the PostgreSQL store: the same
//! random script of reserves, transitions and sweeps gives the same answers.

mod common;

use std::collections::HashMap;

use common::*;
use parking_reservation::domain::{Event, Reservation, ReserveRequest, SpotKind};
use parking_reservation::idempotency::IdempotencyKey;
use parking_reservation::store::{MemoryStore, ReservationStore, Reserved, StoreError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Clone, Debug)]
enum Op {
    Reserve(ReserveRequest, Option<String>),
    Apply(usize, Event),
    ExpireHolds,
    MarkNoShows,
}

/// A store-independent view of a reservation: no random ids.
fn view(r: &Reservation) -> String {
    format!(
        "{} L{}#{} {} {}..{} {} hold<{} quote={} charged={:?} {}/{}",
        r.plate,
        r.spot.level,
        r.spot.number,
        r.kind,
        r.range.start(),
        r.range.end(),
        r.state,
        r.hold_expires_at,
        r.quote_cents,
        r.charged_cents,
        r.created_at,
        r.updated_at
    )
}

fn error_name(e: &StoreError) -> String {
    match e {
        // A database failure is never an agreed answer.
        StoreError::Database(_) | StoreError::Corrupt(_) => panic!("store failed: {e}"),
        other => format!("{other}"),
    }
}

fn script(seed: u64, n: usize) -> Vec<(i64, Op)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut minute = 0;
    let mut by_key: HashMap<String, ReserveRequest> = HashMap::new();
    let mut made = 0usize;
    let mut out = Vec::new();
    for i in 0..n {
        minute += rng.random_range(0..6);
        let op = match rng.random_range(0..10) {
            0..5 => {
                let kind = if rng.random_bool(0.8) {
                    SpotKind::Regular
                } else {
                    SpotKind::Ev
                };
                let first = rng.random_range(minute / 15 + 1..minute / 15 + 12);
                let mut req = request(
                    1,
                    kind,
                    slots(first, rng.random_range(1..8)),
                    &format!("S{i}"),
                );
                let key = rng
                    .random_bool(0.4)
                    .then(|| format!("k{}", rng.random_range(0..6)));
                // Half the reuses of a key repeat its first request exactly.
                if let Some(k) = &key
                    && let Some(first) = by_key.get(k)
                    && rng.random_bool(0.5)
                {
                    req = first.clone();
                }
                if let Some(k) = &key {
                    by_key.entry(k.clone()).or_insert_with(|| req.clone());
                }
                made += 1;
                Op::Reserve(req, key)
            }
            5..8 => {
                // Mostly the latest reservations, mostly the driver's own events.
                let target = made.saturating_sub(1 + rng.random_range(0..3));
                let event = match rng.random_range(0..10) {
                    0..4 => Event::Confirm,
                    4..6 => Event::CheckIn,
                    6 => Event::CheckOut,
                    7 => Event::Cancel,
                    _ => Event::ALL[rng.random_range(0..Event::ALL.len())],
                };
                Op::Apply(target, event)
            }
            8 => Op::ExpireHolds,
            _ => Op::MarkNoShows,
        };
        out.push((minute, op));
    }
    out
}

/// Runs `ops` and returns one line per operation describing the answer.
async fn run(store: &impl ReservationStore, ops: &[(i64, Op)]) -> Vec<String> {
    let lot = store
        .create_lot(&small_lot())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(lot, 1);
    let mut ids = Vec::new();
    let mut out = Vec::new();
    for (minute, op) in ops {
        let now = now0() + minutes(*minute);
        let line = match op {
            Op::Reserve(req, key) => {
                let key = key
                    .as_ref()
                    .and_then(|k| IdempotencyKey::parse(k.as_bytes()).ok());
                match store.reserve(req, key.as_ref(), now).await {
                    Ok(Reserved {
                        reservation,
                        replayed,
                    }) => {
                        if !replayed {
                            ids.push(reservation.id);
                        }
                        format!("reserved replayed={replayed} {}", view(&reservation))
                    }
                    Err(e) => format!("refused {}", error_name(&e)),
                }
            }
            Op::Apply(i, event) => match ids.get(*i) {
                None => "skip".to_string(),
                Some(id) => match store.apply(*id, *event, now).await {
                    Ok(r) => format!("{event} -> {}", view(&r)),
                    Err(e) => format!("{event} refused {}", error_name(&e))
                        .replace(&id.to_string(), "<id>"),
                },
            },
            Op::ExpireHolds => format!("expired {:?}", store.expire_holds(now).await.ok()),
            Op::MarkNoShows => format!("no-shows {:?}", store.mark_no_shows(now).await.ok()),
        };
        out.push(line);
    }
    let mut end: Vec<String> = store
        .reservations(lot)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(view)
        .collect();
    end.sort();
    out.extend(end);
    out
}

#[tokio::test]
async fn memory_and_postgres_agree_on_random_scripts() {
    for seed in 1..=3 {
        let Some((_db, pg)) = pg_store().await else {
            return;
        };
        let ops = script(seed, 300);
        let memory = run(&MemoryStore::new(), &ops).await;
        let postgres = run(&pg, &ops).await;
        for (i, (m, p)) in memory.iter().zip(&postgres).enumerate() {
            assert_eq!(m, p, "seed {seed}, line {i}: {:?}", ops.get(i));
        }
        assert_eq!(memory.len(), postgres.len());
        // The script exercised the interesting paths.
        let all = memory.join("\n");
        for needle in [
            "replayed=true",
            "already used with a different request",
            "no regular spot",
            "cannot",
            "expired Some(",
            "-> ",
        ] {
            assert!(
                all.contains(needle),
                "seed {seed}: no {needle:?} in the script's answers"
            );
        }
    }
}
