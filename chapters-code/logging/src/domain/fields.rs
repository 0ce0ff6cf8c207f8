//! Typed fields, and the rule that hurt Uber on ELK: a field that changes
//! type is kept under a typed sub-key, never dropped.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The value of a structured field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FieldValue {
    /// `true` or `false`.
    Bool(bool),
    /// A signed integer.
    Int(i64),
    /// A finite float (a non-finite one is kept as text by [`FieldValue::float`]).
    Float(f64),
    /// Text.
    Str(String),
    /// Anything else JSON can hold (an object, an array, `null`, an integer
    /// past `i64`): kept as it came, never a reason to refuse the line.
    Json(serde_json::Value),
}

impl FieldValue {
    /// A float field; NaN and infinities have no JSON form, so they are kept as text.
    pub fn float(v: f64) -> Self {
        if v.is_finite() {
            FieldValue::Float(v)
        } else {
            FieldValue::Str(v.to_string())
        }
    }

    /// The type of this value.
    pub fn field_type(&self) -> FieldType {
        match self {
            FieldValue::Bool(_) => FieldType::Bool,
            FieldValue::Int(_) => FieldType::Int,
            FieldValue::Float(_) => FieldType::Float,
            FieldValue::Str(_) => FieldType::Str,
            FieldValue::Json(_) => FieldType::Json,
        }
    }
}

/// The type of a field, as the schema records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// `true` or `false`.
    Bool,
    /// A signed integer.
    Int,
    /// A float.
    Float,
    /// Text.
    Str,
    /// Other JSON.
    Json,
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FieldType::Bool => "bool",
            FieldType::Int => "int",
            FieldType::Float => "float",
            FieldType::Str => "str",
            FieldType::Json => "json",
        })
    }
}

/// Fields as stored: the first type a name was seen with keeps the plain
/// name; a later value of another type goes to [`stored_key`].
pub type StoredFields = BTreeMap<String, FieldValue>;

// ANCHOR: stored_key
/// Where a value whose type conflicts with the schema is stored: `name#type`.
/// `#` never appears in a stored field name ([`Schema::store`] escapes it), so the
/// typed sub-key cannot collide with a field of its own.
pub fn stored_key(name: &str, t: FieldType) -> String {
    format!("{name}#{t}")
}
// ANCHOR_END: stored_key

/// The schema an indexer learns: the first type seen for each field name.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    types: BTreeMap<String, FieldType>,
    conflicts: u64,
}

impl Schema {
    /// An empty schema.
    pub fn new() -> Self {
        Self::default()
    }

    // ANCHOR: store
    /// Maps a record's fields to the keys they are stored under. Every value
    /// comes out, with its type: a conflict changes the key, not the value.
    pub fn store(&mut self, fields: &BTreeMap<String, FieldValue>) -> StoredFields {
        let mut out = StoredFields::new();
        for (name, value) in fields {
            // `#` is reserved for typed sub-keys; a name that holds one is
            // escaped so that `a#int` sent by a client is not read as a conflict.
            // `%` is escaped first, so the escape is one-to-one.
            let name = name.replace('%', "%25").replace('#', "%23");
            let t = value.field_type();
            let key = match self.types.get(&name) {
                None => {
                    self.types.insert(name.clone(), t);
                    name
                }
                Some(&known) if known == t => name,
                Some(_) => {
                    self.conflicts += 1;
                    stored_key(&name, t)
                }
            };
            out.insert(key, value.clone());
        }
        out
    }
    // ANCHOR_END: store

    /// The type a field name was first seen with.
    pub fn type_of(&self, name: &str) -> Option<FieldType> {
        self.types.get(name).copied()
    }

    /// How many values were stored under a typed sub-key so far.
    pub fn conflicts(&self) -> u64 {
        self.conflicts
    }
}
