//! What is generated from a table: the book's diagram and the database's CHECK.

use std::fmt::{self, Write as _};

use crate::table::{Guard, Table};

// ANCHOR: mermaid
impl<S, E, G> Table<S, E, G>
where
    S: Copy + PartialEq + fmt::Display,
    E: Copy + PartialEq + fmt::Display,
    G: Guard,
{
    /// The table as a mermaid `stateDiagram-v2`, fenced for the book.
    ///
    /// An instance is born in the initial state; each row is an arrow
    /// labelled with its event (and its guard in brackets); terminal states
    /// end at `[*]`.
    pub fn mermaid(&self) -> String {
        self.mermaid_with_notes(&[])
    }

    /// [`Table::mermaid`], with a note beside each listed state.
    pub fn mermaid_with_notes(&self, notes: &[(S, &str)]) -> String {
        let mut out = String::from("```mermaid\nstateDiagram-v2\n");
        // Writing to a String cannot fail.
        let _ = writeln!(out, "    [*] --> {}: {}", self.initial, self.born_by);
        for t in self.transitions {
            let _ = match t.guard.condition() {
                None => writeln!(out, "    {} --> {}: {}", t.from, t.to, t.event),
                Some(g) => writeln!(out, "    {} --> {}: {} [{g}]", t.from, t.to, t.event),
            };
        }
        for s in self.states.iter().filter(|s| self.is_terminal(**s)) {
            let _ = writeln!(out, "    {s} --> [*]");
        }
        for (s, note) in notes {
            let _ = writeln!(out, "    note right of {s}\n        {note}\n    end note");
        }
        out.push_str("```\n");
        out
    }

    /// The column constraint that admits exactly the table's states:
    /// `CHECK (column IN ('a', 'b'))`, in the order of `states`.
    pub fn sql_check(&self, column: &str) -> String {
        let names: Vec<String> = self.states.iter().map(|s| format!("'{s}'")).collect();
        format!("CHECK ({column} IN ({}))", names.join(", "))
    }
}
// ANCHOR_END: mermaid
