//! The throughput per core a chapter measured, as committed beside its tables.
//!
//! A chapter's benchmark report writes `src/<chapter>/generated/measured.json`;
//! the chapter's capacity table is generated from it. Keeping the figure in a
//! committed file (rather than in `target/`) makes `cargo xtask gen`
//! deterministic: the table changes only when a new measurement is committed.

use serde::{Deserialize, Serialize};

use crate::model::{Estimate, InputError, Inputs};

/// A measured throughput per core, with where it came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    /// Operations per second per core on the measured path.
    pub ops_per_core: f64,
    /// The benchmark configuration the figure comes from.
    pub path: String,
    /// The machine, compiler, commit and date of the run.
    pub measured_on: String,
}

/// Why a `measured.json` cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MeasuredError {
    /// The file is not the JSON of a [`Measured`].
    #[error("measured.json is not valid: {0}")]
    Parse(String),
    /// The throughput is zero, negative or not a number.
    #[error("measured.json has no positive ops_per_core (found {0})")]
    NotPositive(f64),
}

impl Measured {
    /// Parses and checks the committed file's contents.
    pub fn from_json(json: &str) -> Result<Self, MeasuredError> {
        let m: Measured =
            serde_json::from_str(json).map_err(|e| MeasuredError::Parse(e.to_string()))?;
        if !(m.ops_per_core.is_finite() && m.ops_per_core > 0.0) {
            return Err(MeasuredError::NotPositive(m.ops_per_core));
        }
        Ok(m)
    }

    /// The file's contents: pretty JSON with a final newline.
    pub fn to_json(&self) -> String {
        // Serialising a struct of a float and two strings cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    /// The text for [`Inputs::ops_per_core_source`]: what was measured, where and when.
    pub fn source(&self) -> String {
        format!("measured: {} ({})", self.path, self.measured_on)
    }
}

/// The inputs table followed by the estimate table: a chapter's generated capacity file.
pub fn chapter_tables(inputs: &Inputs) -> Result<String, InputError> {
    let estimate = Estimate::new(inputs)?;
    Ok(format!(
        "**Inputs**\n\n{}\n**Estimate**\n\n{}",
        inputs.to_markdown(),
        estimate.to_markdown()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(ops: f64) -> Measured {
        Measured {
            ops_per_core: ops,
            path: "a path".into(),
            measured_on: "a machine".into(),
        }
    }

    #[test]
    fn round_trips_through_json() {
        let m = measured(1234.5);
        assert_eq!(Measured::from_json(&m.to_json()), Ok(m));
    }

    #[test]
    fn garbage_and_non_positive_figures_are_refused() {
        assert!(matches!(
            Measured::from_json("{}"),
            Err(MeasuredError::Parse(_))
        ));
        assert!(matches!(
            Measured::from_json("not json"),
            Err(MeasuredError::Parse(_))
        ));
        let zero = measured(0.0).to_json();
        assert_eq!(
            Measured::from_json(&zero),
            Err(MeasuredError::NotPositive(0.0))
        );
    }

    #[test]
    fn source_names_the_path_and_the_machine() {
        assert_eq!(measured(1.0).source(), "measured: a path (a machine)");
    }

    #[test]
    fn tables_have_inputs_then_estimate() {
        let md = chapter_tables(&crate::worked_example()).expect("valid");
        let inputs = md.find("**Inputs**").expect("inputs heading");
        let estimate = md.find("**Estimate**").expect("estimate heading");
        assert!(inputs < estimate);
    }
}
