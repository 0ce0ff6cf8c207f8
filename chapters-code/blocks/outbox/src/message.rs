//! What a caller enqueues and what the relay reads back.

use uuid::Uuid;

/// Longest aggregate id (the SQL CHECK says the same).
pub const MAX_AGGREGATE_ID: usize = 200;

/// Longest aggregate type or event type (the SQL CHECK says the same).
pub const MAX_NAME: usize = 64;

/// Why a message was refused before anything was written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidMessage {
    /// The aggregate type is empty, too long or has a character outside `A-Za-z0-9_-`.
    #[error("aggregate type {0:?}: 1 to 64 of A-Z a-z 0-9 _ -")]
    AggregateType(String),
    /// The aggregate id is not dot-separated tokens of `A-Za-z0-9_-`, or is too long.
    #[error("aggregate id {0:?}: dot-separated tokens of A-Z a-z 0-9 _ -, at most 200 characters")]
    AggregateId(String),
    /// The event type is empty, too long or has a character outside `A-Za-z0-9_.-`.
    #[error("event type {0:?}: 1 to 64 of A-Z a-z 0-9 _ . -")]
    EventType(String),
}

fn token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

// ANCHOR: parse
/// Checks the three names that end up in a NATS subject or a column with a
/// CHECK: a name the broker would read as a wildcard (`*`, `>`) or as an
/// empty token (`a..b`) is refused here, with the field that is wrong.
pub fn check_names(
    aggregate_type: &str,
    aggregate_id: &str,
    event_type: &str,
) -> Result<(), InvalidMessage> {
    let name_ok = |s: &str| !s.is_empty() && s.len() <= MAX_NAME && s.chars().all(token_char);
    if !name_ok(aggregate_type) {
        return Err(InvalidMessage::AggregateType(aggregate_type.to_string()));
    }
    let id_ok = aggregate_id.len() <= MAX_AGGREGATE_ID
        && aggregate_id
            .split('.')
            .all(|t| !t.is_empty() && t.chars().all(token_char));
    if !id_ok {
        return Err(InvalidMessage::AggregateId(aggregate_id.to_string()));
    }
    let event_ok = !event_type.is_empty()
        && event_type.len() <= MAX_NAME
        && event_type.chars().all(|c| token_char(c) || c == '.');
    if !event_ok {
        return Err(InvalidMessage::EventType(event_type.to_string()));
    }
    Ok(())
}
// ANCHOR_END: parse

// ANCHOR: new_message
/// A message to enqueue in the caller's transaction.
#[derive(Clone, Copy, Debug)]
pub struct NewMessage<'a> {
    /// The id the broker and the inbox deduplicate on; the caller may put
    /// it in the payload too, so a consumer sees it without the header.
    pub message_id: Uuid,
    /// Picks the subject, as Debezium's router picks the topic.
    pub aggregate_type: &'a str,
    /// The unit of order: one aggregate's messages are published in order.
    pub aggregate_id: &'a str,
    /// The aggregate's version after the event, where it has one.
    pub aggregate_version: Option<i64>,
    /// What happened.
    pub event_type: &'a str,
    /// The body published to the broker.
    pub payload: &'a serde_json::Value,
}
// ANCHOR_END: new_message

impl<'a> NewMessage<'a> {
    /// A message with a fresh random id and no version.
    pub fn new(
        aggregate_type: &'a str,
        aggregate_id: &'a str,
        event_type: &'a str,
        payload: &'a serde_json::Value,
    ) -> Self {
        NewMessage {
            message_id: Uuid::new_v4(),
            aggregate_type,
            aggregate_id,
            aggregate_version: None,
            event_type,
            payload,
        }
    }

    /// Checks the names (see [`check_names`]).
    pub fn check(&self) -> Result<(), InvalidMessage> {
        check_names(self.aggregate_type, self.aggregate_id, self.event_type)
    }
}

/// One outbox row as the relay claimed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The row's id: the order of publication within an aggregate.
    pub id: i64,
    /// The deduplication id (`Nats-Msg-Id`).
    pub message_id: Uuid,
    /// The aggregate's type.
    pub aggregate_type: String,
    /// The aggregate's id.
    pub aggregate_id: String,
    /// The aggregate's version after the event, if it has one.
    pub aggregate_version: Option<i64>,
    /// The event's type.
    pub event_type: String,
    /// The payload as JSON text, published as it is.
    pub payload: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_a_subject_cannot_carry_are_refused_with_their_field() {
        assert_eq!(check_names("order", "a.b-c_1", "paid"), Ok(()));
        assert!(matches!(
            check_names("", "x", "e"),
            Err(InvalidMessage::AggregateType(_))
        ));
        for id in ["", "a..b", ".a", "a.", "a*", "a>", "a b", &"x".repeat(201)] {
            assert!(
                matches!(
                    check_names("t", id, "e"),
                    Err(InvalidMessage::AggregateId(_))
                ),
                "{id:?}"
            );
        }
        assert!(matches!(
            check_names("t", "x", "a b"),
            Err(InvalidMessage::EventType(_))
        ));
    }

    proptest! {
        /// Whatever the input, an accepted aggregate id is a non-empty run of
        /// subject tokens: no wildcard, no space, no empty token.
        #[test]
        fn an_accepted_aggregate_id_is_a_valid_subject_suffix(id in "\\PC{0,40}") {
            if check_names("t", &id, "e").is_ok() {
                prop_assert!(!id.is_empty());
                prop_assert!(!id.contains(['*', '>', ' ']));
                prop_assert!(id.split('.').all(|t| !t.is_empty()));
            }
        }

        /// Every id made of valid tokens is accepted.
        #[test]
        fn ids_of_valid_tokens_are_accepted(tokens in proptest::collection::vec("[A-Za-z0-9_-]{1,8}", 1..6)) {
            let id = tokens.join(".");
            prop_assert_eq!(check_names("t", &id, "e"), Ok(()));
        }
    }
}
