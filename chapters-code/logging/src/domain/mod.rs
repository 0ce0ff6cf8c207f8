//! The pure domain: a structured log record, its labels, the guards that
//! keep the index small (label cardinality) and the data whole (type
//! conflicts), and the query language.

mod cardinality;
mod fields;
mod query;
mod range;
mod record;

pub use cardinality::{CardinalityError, CardinalityGuard, MAX_LABELS, MAX_VALUES_PER_LABEL};
pub use fields::{FieldType, FieldValue, Schema, StoredFields, stored_key};
pub use query::{MAX_MATCHERS, MAX_QUERY_LEN, MAX_TEXT_LEN, Matcher, Query, QueryError};
pub use range::{MAX_RANGE_MS, MAX_TS_MS, RangeError, TimeRange};
pub use record::{
    LabelError, LabelName, Labels, Level, MAX_LABEL_VALUE_LEN, MAX_MESSAGE_LEN, Record, TraceId,
    truncate_at_boundary, valid_label_value,
};
