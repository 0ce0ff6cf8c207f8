//! The fill rule against a model of one row, its cache entry and version,
//! one writer and several readers, under every interleaving proptest finds:
//! once no write is between its commit and its invalidation, the entry (if
//! any) is what the database holds.

use block_cache_aside::rule::{FillDecision, Token, fill_decision, negative_admitted};
use proptest::prelude::*;

/// Readers in the model.
const READERS: usize = 3;

#[derive(Clone, Debug)]
enum Step {
    /// Reader `r` looks up the entry; on a miss it takes a ticket (starting
    /// a version if there is none).
    Lookup(usize),
    /// Reader `r` reads the database (after its ticket).
    Read(usize),
    /// Reader `r` fills with what it read.
    Fill(usize),
    /// The writer commits a new value (if its last change was invalidated).
    Commit,
    /// The writer invalidates (a new version; the entry dropped, or replaced when publishing).
    Invalidate { publish: bool },
    /// Redis loses the version key (eviction, failover).
    LoseVersion,
    /// The entry expires.
    Expire,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..READERS).prop_map(Step::Lookup),
        (0..READERS).prop_map(Step::Read),
        (0..READERS).prop_map(Step::Fill),
        Just(Step::Commit),
        any::<bool>().prop_map(|publish| Step::Invalidate { publish }),
        Just(Step::LoseVersion),
        Just(Step::Expire),
    ]
}

#[derive(Clone, Default)]
struct Reader {
    ticket: Option<Token>,
    read: Option<u32>,
}

#[derive(Default)]
struct Model {
    db: u32,
    entry: Option<u32>,
    version: Option<Token>,
    /// A commit whose invalidation has not run yet.
    pending: bool,
    readers: [Reader; READERS],
}

impl Model {
    /// Applies `step`; `rule` decides fills.
    fn apply(&mut self, step: &Step, rule: fn(Option<&Token>, &Token) -> FillDecision) {
        match *step {
            Step::Lookup(r) if self.entry.is_none() => {
                let version = self.version.get_or_insert_with(Token::fresh).clone();
                self.readers[r] = Reader {
                    ticket: Some(version),
                    read: None,
                };
            }
            Step::Read(r) if self.readers[r].ticket.is_some() => {
                self.readers[r].read = Some(self.db);
            }
            Step::Fill(r) => {
                let reader = std::mem::take(&mut self.readers[r]);
                if let (Some(ticket), Some(read)) = (reader.ticket, reader.read)
                    && rule(self.version.as_ref(), &ticket) == FillDecision::Store
                {
                    self.entry = Some(read);
                }
            }
            Step::Commit if !self.pending => {
                self.db += 1;
                self.pending = true;
            }
            Step::Invalidate { publish } if self.pending => {
                self.version = Some(Token::fresh());
                self.entry = publish.then_some(self.db);
                self.pending = false;
            }
            Step::LoseVersion => self.version = None,
            Step::Expire => self.entry = None,
            _ => {}
        }
    }

    /// The promise: with no change in flight, the cache agrees with the database.
    fn agrees(&self) -> bool {
        self.pending || self.entry.is_none_or(|e| e == self.db)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    // ANCHOR: model
    /// Under the fill rule, no interleaving leaves an old value in the cache.
    #[test]
    fn no_interleaving_leaves_an_old_value_in_the_cache(steps in prop::collection::vec(step(), 1..60)) {
        let mut m = Model::default();
        for (i, s) in steps.iter().enumerate() {
            m.apply(s, fill_decision);
            prop_assert!(m.agrees(), "after step {i} ({s:?}): entry {:?}, database {}", m.entry, m.db);
        }
    }
    // ANCHOR_END: model

    /// A new "not found" is admitted exactly while the set is below its limit.
    #[test]
    fn the_negative_set_never_passes_its_limit(limit in 0u64..100, asks in prop::collection::vec(0u64..300, 0..200)) {
        let mut set = std::collections::BTreeSet::new();
        for k in asks {
            if negative_admitted(set.contains(&k), set.len() as u64, limit) {
                set.insert(k);
            }
            prop_assert!(set.len() as u64 <= limit);
        }
    }
}

/// The same model with a fill that ignores the version: the interleaving
/// of the resurrection race (ticket, read, change, fill) breaks the promise.
#[test]
fn an_unconditional_fill_breaks_the_model() {
    let unconditional: fn(Option<&Token>, &Token) -> FillDecision = |_, _| FillDecision::Store;
    let race = [
        Step::Lookup(0),
        Step::Read(0),
        Step::Commit,
        Step::Invalidate { publish: false },
        Step::Fill(0),
    ];
    let mut m = Model::default();
    for s in &race {
        m.apply(s, unconditional);
    }
    assert!(
        !m.agrees(),
        "the old value is back: entry {:?}, database {}",
        m.entry,
        m.db
    );
    let mut m = Model::default();
    for s in &race {
        m.apply(s, fill_decision);
    }
    assert!(m.agrees());
}
