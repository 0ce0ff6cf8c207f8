//! A back-of-envelope capacity model, shared by every chapter of the book.
//!
//! Every case study states its load in the same few numbers: how many people
//! use the system on a day, how often each of them reads and writes, how big
//! the requests, responses and stored records are, how long data is kept and
//! how many copies of it exist. From those numbers alone follow the average
//! and peak request rates, the storage to buy, the network bandwidth and the
//! cache memory. One more number turns load into hardware: the throughput one
//! core sustains, which a chapter does not guess but measures with its own
//! benchmark.
//!
//! The model is deliberately small. [`Inputs`] is plain data, written as a
//! struct literal so that a chapter reads like its requirements ("100M DAU,
//! 10 redirects and 0.1 creates per user per day"). [`Estimate::new`] is the
//! only way to an estimate: it validates every input and returns a named
//! [`InputError`] for the first bad one, so an estimate never rests on a zero
//! user count or a peak below the average. The formulas live in [`model`],
//! each in a small function the book shows next to its explanation.
//!
//! Arithmetic is `f64`, with explicit rounding rules. The inputs are
//! fractional by nature (0.1 writes per user per day, a peak factor of 2.5, a
//! 20% hot set), and an estimate deserves two or three significant figures,
//! while `f64` carries fifteen; exact integer or rational arithmetic would add
//! ceremony without changing any decision. Rates and byte counts stay
//! unrounded and are rounded only for display ([`units`]). The quantities
//! one buys, cores and machines, are rounded *up*, after discarding floating
//! error below one part in 10^9, so that 20.000000000000004 cores is 20 and
//! not 21. A core count beyond 2^53, where `f64` stops holding every integer,
//! is rejected ([`InputError::TooLarge`]) rather than rounded silently.
//!
//! [`units`] renders numbers the way the book prints them: counts with
//! thousands separators, rates and sizes with decimal SI prefixes (1 KB =
//! 1000 B, the convention of system-design estimates and of disk vendors),
//! and bandwidth in both bytes and bits per second. [`Estimate::to_markdown`]
//! renders the estimate as the table each chapter includes, with the formula
//! behind every row spelled out in words.

#![warn(missing_docs)]

#[cfg(feature = "book")]
pub mod book;
pub mod example;
mod markdown;
pub mod measured;
pub mod model;
pub mod units;

pub use example::{worked_example, worked_example_inputs_markdown, worked_example_markdown};
pub use measured::{Measured, MeasuredError, chapter_tables};
pub use model::{
    DAYS_PER_YEAR, Estimate, InputError, Inputs, Kind, OwnRate, Rate, SECONDS_PER_DAY, Workload,
    WorkloadEstimate,
};
