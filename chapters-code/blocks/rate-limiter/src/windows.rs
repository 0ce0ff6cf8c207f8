//! Window counters as pure models, for the page's boundary comparison.
//!
//! A fixed window (one counter per calendar second) is what a plain
//! `INCR` + `EXPIRE` gives; a sliding log is the model of the block's Lua
//! script; a sliding counter is Cloudflare's estimate from two counters.
//! [`boundary_burst`] sends `limit` requests just before a window boundary
//! and `limit` just after it, and counts what each admits.

use std::collections::VecDeque;
use std::time::Duration;

use crate::bucket::TokenBucket;
use crate::quota::Quota;

/// `limit` per window, counted per calendar window (resets at each boundary).
pub struct FixedWindow {
    limit: u32,
    window_ns: u64,
    index: u64,
    count: u32,
}

impl FixedWindow {
    /// A counter of `limit` per `window`.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window_ns: window_ns(window),
            index: 0,
            count: 0,
        }
    }

    /// Admits at `now` (nanoseconds) if this calendar window has room.
    pub fn check(&mut self, now: u64) -> bool {
        let index = now / self.window_ns;
        if index != self.index {
            (self.index, self.count) = (index, 0);
        }
        let admit = self.count < self.limit;
        self.count += u32::from(admit);
        admit
    }
}

/// `limit` in any window: the admission times of the last window (the script's model).
pub struct SlidingLog {
    limit: u32,
    window_ns: u64,
    log: VecDeque<u64>,
}

impl SlidingLog {
    /// A log of `limit` per `window`.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window_ns: window_ns(window),
            log: VecDeque::new(),
        }
    }

    /// Admits at `now` if fewer than `limit` admissions are younger than a window.
    pub fn check(&mut self, now: u64) -> bool {
        while self.log.front().is_some_and(|&t| t + self.window_ns <= now) {
            self.log.pop_front();
        }
        let admit = self.log.len() < self.limit as usize;
        if admit {
            self.log.push_back(now);
        }
        admit
    }
}

/// Cloudflare's sliding counter: this window's count plus the last one's,
/// weighted by how much of the last window the sliding window still covers.
pub struct SlidingCounter {
    limit: u32,
    window_ns: u64,
    index: u64,
    current: u32,
    previous: u32,
}

impl SlidingCounter {
    /// A counter estimate of `limit` per `window`.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window_ns: window_ns(window),
            index: 0,
            current: 0,
            previous: 0,
        }
    }

    /// Admits at `now` if the estimated count of the last window is below `limit`.
    pub fn check(&mut self, now: u64) -> bool {
        let index = now / self.window_ns;
        if index != self.index {
            self.previous = if index == self.index + 1 {
                self.current
            } else {
                0
            };
            (self.index, self.current) = (index, 0);
        }
        let into = (now % self.window_ns) as f64 / self.window_ns as f64;
        let estimate = f64::from(self.previous) * (1.0 - into) + f64::from(self.current);
        let admit = estimate < f64::from(self.limit);
        self.current += u32::from(admit);
        admit
    }
}

fn window_ns(window: Duration) -> u64 {
    u64::try_from(window.as_nanos()).unwrap_or(u64::MAX).max(1)
}

/// The boundary burst's parameters: `LIMIT` per `WINDOW`, bursts `GAP` either side of a boundary.
pub const LIMIT: u32 = 10;
/// The window of the comparison.
pub const WINDOW: Duration = Duration::from_secs(1);
/// How far before and after the boundary the two bursts arrive.
pub const GAP: Duration = Duration::from_millis(1);

/// Requests admitted out of `2 × LIMIT` sent in two bursts, `GAP` either
/// side of a window boundary, by each model: (name, admitted).
pub fn boundary_burst() -> Vec<(&'static str, u32)> {
    let boundary = window_ns(WINDOW) * 5;
    let gap = window_ns(GAP);
    let times: Vec<u64> = (0..LIMIT)
        .map(|_| boundary - gap)
        .chain((0..LIMIT).map(|_| boundary + gap))
        .collect();
    let count = |mut check: Box<dyn FnMut(u64) -> bool>| {
        times.iter().map(|&t| u32::from(check(t))).sum::<u32>()
    };
    let quota = Quota::with_period(WINDOW / LIMIT, LIMIT)
        .unwrap_or_else(|_| unreachable!("a valid literal quota"));
    let mut fixed = FixedWindow::new(LIMIT, WINDOW);
    let mut log = SlidingLog::new(LIMIT, WINDOW);
    let mut counter = SlidingCounter::new(LIMIT, WINDOW);
    let mut bucket = TokenBucket::full(&quota, 0);
    vec![
        ("fixed", count(Box::new(move |t| fixed.check(t)))),
        ("log", count(Box::new(move |t| log.check(t)))),
        ("counter", count(Box::new(move |t| counter.check(t)))),
        (
            "bucket",
            count(Box::new(move |t| bucket.check(&quota, t).is_ok())),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_window_admits_twice_the_limit_across_a_boundary() {
        let got = boundary_burst();
        let admitted = |name| got.iter().find(|(n, _)| *n == name).map(|(_, a)| *a);
        assert_eq!(admitted("fixed"), Some(2 * LIMIT));
        assert_eq!(admitted("log"), Some(LIMIT));
        // The counter assumes the last window's requests were spread evenly,
        // so it counts 1 ms of the burst before the boundary as 0.1% gone.
        assert_eq!(admitted("counter"), Some(LIMIT + 1));
        assert_eq!(admitted("bucket"), Some(LIMIT));
    }
}
