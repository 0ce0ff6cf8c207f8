//! The block's properties: the diagram is the table, and each structural
//! check accepts a sound table and refuses the broken one it is named for.

use std::fmt;

use block_state_machine::{Defect, Guard, Table, Transition, Unguarded};
use proptest::prelude::*;

/// A state of the small example machine: a door.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Door {
    Closed,
    Open,
    Locked,
    Removed,
    Painted,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Act {
    OpenIt,
    CloseIt,
    LockIt,
    UnlockIt,
    Remove,
    Paint,
}

impl fmt::Display for Door {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl fmt::Display for Act {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

use Act::*;
use Door::*;

// ANCHOR: example
/// A sound table: a door is born closed and ends removed.
const DOOR: Table<Door, Act> = Table {
    initial: Closed,
    born_by: "install",
    states: &[Closed, Open, Locked, Removed],
    terminal: &[Removed],
    transitions: &[
        Transition::new(Closed, OpenIt, Open),
        Transition::new(Open, CloseIt, Closed),
        Transition::new(Closed, LockIt, Locked),
        Transition::new(Locked, UnlockIt, Closed),
        Transition::new(Open, Remove, Removed),
    ],
};
// ANCHOR_END: example

/// `DOOR` with its rows replaced.
fn door_with(rows: Vec<Transition<Door, Act>>) -> Table<Door, Act> {
    Table {
        transitions: Vec::leak(rows),
        ..DOOR
    }
}

fn door_rows() -> Vec<Transition<Door, Act>> {
    DOOR.transitions.to_vec()
}

// ANCHOR: checks
#[test]
fn a_sound_table_has_no_defect() {
    assert_eq!(DOOR.check(), Ok(()));
    assert_eq!(DOOR.next(Closed, OpenIt), Some(Open));
    assert_eq!(DOOR.next(Locked, OpenIt), None);
}

#[test]
fn an_unreachable_state_is_found() {
    // Nothing leads into `Locked` any more.
    let mut rows = door_rows();
    rows.retain(|t| t.to != Locked);
    assert_eq!(
        door_with(rows).check(),
        Err(vec![Defect::Unreachable(Locked)])
    );
}

#[test]
fn a_dead_end_is_found() {
    // `Locked` can no longer be unlocked: a locked door stays locked for ever.
    let mut rows = door_rows();
    rows.retain(|t| t.from != Locked);
    assert_eq!(door_with(rows).check(), Err(vec![Defect::DeadEnd(Locked)]));
}

#[test]
fn a_cycle_that_never_ends_is_a_dead_end() {
    // Closed and Open lead to each other, but no longer to Removed (which
    // nothing reaches now).
    let mut rows = door_rows();
    rows.retain(|t| t.event != Remove);
    assert_eq!(
        door_with(rows).check(),
        Err(vec![
            Defect::Unreachable(Removed),
            Defect::DeadEnd(Closed),
            Defect::DeadEnd(Open),
            Defect::DeadEnd(Locked)
        ])
    );
}

#[test]
fn a_transition_out_of_a_terminal_state_is_found() {
    let mut rows = door_rows();
    rows.push(Transition::new(Removed, OpenIt, Open));
    assert_eq!(
        door_with(rows).check(),
        Err(vec![Defect::OutOfTerminal {
            from: Removed,
            event: OpenIt
        }])
    );
}

#[test]
fn two_rows_for_one_state_and_event_are_found() {
    let mut rows = door_rows();
    rows.push(Transition::new(Closed, OpenIt, Locked));
    assert_eq!(
        door_with(rows).check(),
        Err(vec![Defect::Ambiguous {
            from: Closed,
            event: OpenIt
        }])
    );
}

#[test]
fn a_state_missing_from_the_list_is_found() {
    let mut rows = door_rows();
    rows.push(Transition::new(Open, Paint, Painted));
    let defects = door_with(rows).defects();
    assert_eq!(defects.first(), Some(&Defect::Unlisted(Painted)));
}
// ANCHOR_END: checks

/// Guards of the guarded example: whether an order was paid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Paid {
    Always,
    Yes,
    No,
}

impl Guard for Paid {
    fn condition(&self) -> Option<&'static str> {
        match self {
            Paid::Always => None,
            Paid::Yes => Some("was paid"),
            Paid::No => Some("never paid"),
        }
    }
}

fn guarded(rows: Vec<Transition<Door, Act, Paid>>) -> Table<Door, Act, Paid> {
    Table {
        initial: Closed,
        born_by: "install",
        states: &[Closed, Open, Removed],
        terminal: &[Removed],
        transitions: Vec::leak(rows),
    }
}

#[test]
fn rows_with_different_guards_may_share_a_state_and_event() {
    let table = guarded(vec![
        Transition::guarded(Closed, OpenIt, Paid::Yes, Open),
        Transition::guarded(Closed, OpenIt, Paid::No, Removed),
        Transition::guarded(Open, Remove, Paid::Always, Removed),
    ]);
    assert_eq!(table.check(), Ok(()));
    expect_test::expect![[r#"
        ```mermaid
        stateDiagram-v2
            [*] --> Closed: install
            Closed --> Open: OpenIt [was paid]
            Closed --> Removed: OpenIt [never paid]
            Open --> Removed: Remove
            Removed --> [*]
            note right of Open
                a note
            end note
        ```
    "#]]
    .assert_eq(&table.mermaid_with_notes(&[(Open, "a note")]));
}

#[test]
fn an_unguarded_row_beside_a_guarded_one_is_ambiguous() {
    let table = guarded(vec![
        Transition::guarded(Closed, OpenIt, Paid::Yes, Open),
        Transition::guarded(Closed, OpenIt, Paid::Always, Removed),
        Transition::guarded(Open, Remove, Paid::Always, Removed),
    ]);
    assert_eq!(
        table.check(),
        Err(vec![Defect::Ambiguous {
            from: Closed,
            event: OpenIt
        }])
    );
}

#[test]
fn the_sql_check_lists_every_state_in_order() {
    assert_eq!(
        DOOR.sql_check("state"),
        "CHECK (state IN ('Closed', 'Open', 'Locked', 'Removed'))"
    );
}

/// A state or an event of a random table: a number, named `s3` or `e1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct N(char, u8);

impl fmt::Display for N {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.0, self.1)
    }
}

/// A random table over up to `n` states and 4 events; its terminal states
/// are a random subset, its rows random (so it may well be broken).
fn any_table() -> impl Strategy<Value = Table<N, N>> {
    (2u8..8).prop_flat_map(|n| {
        let row = (0..n, 0u8..4, 0..n)
            .prop_map(|(f, e, t)| Transition::new(N('s', f), N('e', e), N('s', t)));
        (
            prop::collection::vec(row, 0..16),
            prop::collection::vec(any::<bool>(), n as usize),
        )
            .prop_map(move |(rows, ends)| Table {
                initial: N('s', 0),
                born_by: "create",
                states: Vec::leak((0..n).map(|i| N('s', i)).collect()),
                terminal: Vec::leak(
                    (0..n)
                        .filter(|i| ends[*i as usize])
                        .map(|i| N('s', i))
                        .collect(),
                ),
                transitions: Vec::leak(rows),
            })
    })
}

/// Reachability computed a second way: Warshall's transitive closure.
fn closure(table: &Table<N, N>) -> Vec<Vec<bool>> {
    let n = table.states.len();
    let mut r = vec![vec![false; n]; n];
    for (i, row) in r.iter_mut().enumerate() {
        row[i] = true;
    }
    for t in table.transitions {
        r[t.from.1 as usize][t.to.1 as usize] = true;
    }
    for k in 0..n {
        for i in 0..n {
            for j in 0..n {
                if r[i][k] && r[k][j] {
                    r[i][j] = true;
                }
            }
        }
    }
    r
}

proptest! {
    /// The diagram has one arrow per row, in table order, one `[*]` end per
    /// terminal state, the birth arrow, and nothing else.
    #[test]
    fn the_diagram_lists_exactly_the_table(table in any_table()) {
        let diagram = table.mermaid();
        let mut lines = diagram.lines();
        prop_assert_eq!(lines.next(), Some("```mermaid"));
        prop_assert_eq!(lines.next(), Some("stateDiagram-v2"));
        prop_assert_eq!(lines.next(), Some("    [*] --> s0: create"));
        let body: Vec<&str> = lines.collect();
        prop_assert_eq!(body.last(), Some(&"```"));
        let mut arrows = Vec::new();
        let mut ends = Vec::new();
        for line in &body[..body.len() - 1] {
            let (from, rest) = line.trim().split_once(" --> ").unwrap_or_else(|| panic!("{line}"));
            match rest.split_once(": ") {
                Some((to, event)) => arrows.push((from.to_string(), event.to_string(), to.to_string())),
                None => {
                    prop_assert_eq!(rest, "[*]");
                    ends.push(from.to_string());
                }
            }
        }
        let rows: Vec<_> = table
            .transitions
            .iter()
            .map(|t| (t.from.to_string(), t.event.to_string(), t.to.to_string()))
            .collect();
        prop_assert_eq!(arrows, rows);
        let terminal: Vec<_> = table.terminal.iter().map(|s| s.to_string()).collect();
        prop_assert_eq!(ends, terminal);
    }

    /// The checks agree with a transitive closure computed independently.
    #[test]
    fn reachability_agrees_with_the_transitive_closure(table in any_table()) {
        let r = closure(&table);
        let defects = table.defects();
        for s in table.states {
            let i = s.1 as usize;
            let reached = r[0][i];
            prop_assert_eq!(!reached, defects.contains(&Defect::Unreachable(*s)), "{}", s);
            let ends = table.terminal.iter().any(|t| r[i][t.1 as usize]);
            let dead = !table.is_terminal(*s) && !ends;
            prop_assert_eq!(dead, defects.contains(&Defect::DeadEnd(*s)), "{}", s);
        }
        let out_of_terminal = table.transitions.iter().filter(|t| table.is_terminal(t.from)).count();
        let found = defects.iter().filter(|d| matches!(d, Defect::OutOfTerminal { .. })).count();
        prop_assert_eq!(out_of_terminal, found);
    }

    /// The lookup returns the target of the one row for (state, event), or
    /// nothing; with no duplicates the table is a function.
    #[test]
    fn next_follows_the_row(table in any_table(), s in 0u8..8, e in 0u8..4) {
        let rows: Vec<_> = table.transitions.iter().filter(|t| t.from == N('s', s) && t.event == N('e', e)).collect();
        prop_assert_eq!(table.next(N('s', s), N('e', e)), rows.first().map(|t| t.to));
        let ambiguous = defects_ambiguous(&table, N('s', s), N('e', e));
        prop_assert_eq!(ambiguous, rows.len() > 1);
    }
}

fn defects_ambiguous(table: &Table<N, N>, from: N, event: N) -> bool {
    table.defects().contains(&Defect::Ambiguous { from, event })
}

#[test]
fn unguarded_has_no_condition() {
    assert_eq!(Unguarded.condition(), None);
}
