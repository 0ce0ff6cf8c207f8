//! The guard against label cardinality explosion, Loki's most common
//! incident: a label with unbounded values (a user id, a trace id) makes one
//! stream per value, and the index grows with the traffic.

use std::collections::{BTreeMap, BTreeSet};

use super::record::{LabelName, Labels};

/// The most distinct values one label may take per store.
pub const MAX_VALUES_PER_LABEL: usize = 200;
/// The most labels one record may carry.
pub const MAX_LABELS: usize = 8;

/// Why a record's labels were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CardinalityError {
    /// A new value for a label that already has `limit` distinct values.
    #[error(
        "label {label} already has {limit} distinct values; a new value {value:?} is refused (put it in a field instead)"
    )]
    TooManyValues {
        /// The label.
        label: String,
        /// The value that would have been one too many.
        value: String,
        /// The limit.
        limit: usize,
    },
    /// More labels on one record than allowed.
    #[error("{got} labels on one record; at most {limit}")]
    TooManyLabels {
        /// Labels given.
        got: usize,
        /// The limit.
        limit: usize,
    },
}

/// Counts distinct values per label and refuses the one too many.
#[derive(Debug, Clone)]
pub struct CardinalityGuard {
    max_values: usize,
    max_labels: usize,
    seen: BTreeMap<LabelName, BTreeSet<String>>,
    refused: u64,
}

impl Default for CardinalityGuard {
    fn default() -> Self {
        Self::new(MAX_VALUES_PER_LABEL, MAX_LABELS)
    }
}

impl CardinalityGuard {
    /// A guard with these limits.
    pub fn new(max_values: usize, max_labels: usize) -> Self {
        Self {
            max_values,
            max_labels,
            seen: BTreeMap::new(),
            refused: 0,
        }
    }

    // ANCHOR: admit
    /// Admits a batch's labels, or refuses the whole batch and counts its
    /// records as refused. Every record is checked, new values included,
    /// before any is recorded: a refused batch changes nothing but the counter.
    pub fn admit<'a>(
        &mut self,
        batch: impl IntoIterator<Item = &'a Labels>,
    ) -> Result<(), CardinalityError> {
        let mut added: BTreeMap<&LabelName, BTreeSet<&str>> = BTreeMap::new();
        let mut records = 0u64;
        let mut refusal = None;
        for labels in batch {
            records += 1;
            if refusal.is_some() {
                continue;
            }
            if labels.len() > self.max_labels {
                refusal = Some(CardinalityError::TooManyLabels {
                    got: labels.len(),
                    limit: self.max_labels,
                });
                continue;
            }
            for (name, value) in labels.iter() {
                let known = self.seen.get(name);
                let new_here = added.entry(name).or_default();
                if known.is_some_and(|s| s.contains(value)) || new_here.contains(value) {
                    continue;
                }
                if known.map_or(0, BTreeSet::len) + new_here.len() >= self.max_values {
                    refusal = Some(CardinalityError::TooManyValues {
                        label: name.to_string(),
                        value: value.to_string(),
                        limit: self.max_values,
                    });
                    break;
                }
                new_here.insert(value);
            }
        }
        if let Some(e) = refusal {
            self.refused += records;
            return Err(e);
        }
        for (name, values) in added {
            let seen = self.seen.entry(name.clone()).or_default();
            seen.extend(values.into_iter().map(str::to_string));
        }
        Ok(())
    }
    // ANCHOR_END: admit

    /// Distinct values seen for a label.
    pub fn values_of(&self, name: &str) -> usize {
        self.seen
            .iter()
            .find(|(k, _)| k.as_str() == name)
            .map_or(0, |(_, s)| s.len())
    }

    /// How many records were refused (every record of a refused batch).
    pub fn refused(&self) -> u64 {
        self.refused
    }
}
