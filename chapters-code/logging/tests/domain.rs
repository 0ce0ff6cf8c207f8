//! The pure domain: labels, the cardinality guard, typed fields, queries.

use std::collections::BTreeMap;

use logging::domain::{
    CardinalityError, CardinalityGuard, FieldType, FieldValue, LabelError, Labels, MAX_MATCHERS,
    Query, QueryError, RangeError, Schema, TimeRange, stored_key,
};
use proptest::prelude::*;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied()).expect("valid labels")
}

#[test]
fn a_new_value_past_the_limit_is_refused_named_and_counted() {
    let mut g = CardinalityGuard::new(3, 4);
    for user in ["a", "b", "c"] {
        g.admit([&labels(&[("service", "api"), ("user", user)])])
            .expect("under the limit");
    }
    let err = g
        .admit([&labels(&[("service", "api"), ("user", "d")])])
        .expect_err("a fourth user value");
    assert_eq!(
        err,
        CardinalityError::TooManyValues {
            label: "user".into(),
            value: "d".into(),
            limit: 3
        }
    );
    assert_eq!(g.refused(), 1);
    // A value already seen is still admitted.
    g.admit([&labels(&[("service", "api"), ("user", "a")])])
        .expect("known value");
    assert_eq!(g.values_of("user"), 3);
}

#[test]
fn a_refused_batch_records_none_of_its_new_values() {
    let mut g = CardinalityGuard::new(2, 4);
    let ok = labels(&[("service", "new-one")]);
    let a = labels(&[("user", "a")]);
    let b = labels(&[("user", "b")]);
    let c = labels(&[("user", "c")]);
    g.admit([&ok, &a, &b, &c])
        .expect_err("three users in one batch");
    assert_eq!(
        g.values_of("service"),
        0,
        "the batch's good record was not recorded"
    );
    assert_eq!(g.values_of("user"), 0);
    assert_eq!(
        g.refused(),
        4,
        "every record of the refused batch is counted"
    );
}

#[test]
fn too_many_labels_on_one_record_is_refused() {
    let mut g = CardinalityGuard::new(10, 1);
    assert_eq!(
        g.admit([&labels(&[("a", "1"), ("b", "2")])]),
        Err(CardinalityError::TooManyLabels { got: 2, limit: 1 })
    );
}

#[test]
fn label_names_and_values_are_checked() {
    assert!(matches!(
        Labels::from_pairs([("Service", "x")]),
        Err(LabelError::BadName(_))
    ));
    assert!(matches!(
        Labels::from_pairs([("service", "a\"b")]),
        Err(LabelError::BadValue { .. })
    ));
    assert!(matches!(
        Labels::from_pairs([("service", "")]),
        Err(LabelError::BadValue { .. })
    ));
}

#[test]
fn a_field_that_changes_type_is_stored_under_a_typed_sub_key() {
    let mut s = Schema::new();
    let first = BTreeMap::from([("status".to_string(), FieldValue::Int(200))]);
    let second = BTreeMap::from([("status".to_string(), FieldValue::Str("timeout".into()))]);
    assert_eq!(s.store(&first), first);
    let stored = s.store(&second);
    assert_eq!(
        stored,
        BTreeMap::from([(
            stored_key("status", FieldType::Str),
            FieldValue::Str("timeout".into())
        )])
    );
    assert_eq!(s.conflicts(), 1);
    assert_eq!(s.type_of("status"), Some(FieldType::Int));
}

#[test]
fn a_client_field_named_like_a_sub_key_does_not_collide() {
    let mut s = Schema::new();
    s.store(&BTreeMap::from([("a".to_string(), FieldValue::Int(1))]));
    let fields = BTreeMap::from([
        ("a".to_string(), FieldValue::Bool(true)),
        ("a#bool".to_string(), FieldValue::Bool(false)),
    ]);
    assert_eq!(s.store(&fields).len(), 2, "both values kept");
    // The escape of `#` must not meet a name that already reads like it.
    let fields = BTreeMap::from([
        ("x#y".to_string(), FieldValue::Int(1)),
        ("x%23y".to_string(), FieldValue::Int(2)),
    ]);
    assert_eq!(
        s.store(&fields).len(),
        2,
        "an escaped name and a literal one stay apart"
    );
}

#[test]
fn malformed_queries_get_named_errors() {
    let cases: &[(&str, QueryError)] = &[
        ("", QueryError::Empty),
        ("   ", QueryError::Empty),
        ("service=\"a\"", QueryError::ExpectedSelector { at: 0 }),
        ("{}", QueryError::NoEqualMatcher),
        ("{service!=\"a\"}", QueryError::NoEqualMatcher),
        ("{service~\"a\"}", QueryError::ExpectedOperator { at: 8 }),
        ("{service=a}", QueryError::ExpectedString { at: 9 }),
        ("{service=\"a}", QueryError::UnterminatedString { at: 9 }),
        (
            "{service=\"a\"} |= \"x\\n\"",
            QueryError::BadEscape { at: 19 },
        ),
        ("{service=\"a\"} |= \"\"", QueryError::BadText),
        ("{service=\"a\"} foo", QueryError::Unexpected { at: 14 }),
        (
            "{service=\"a\" level=\"x\"}",
            QueryError::Unexpected { at: 13 },
        ),
        (
            "{service=\"a\"} | user=\"x\"",
            QueryError::Unexpected { at: 15 },
        ),
    ];
    for (text, want) in cases {
        assert_eq!(Query::parse(text).as_ref(), Err(want), "query {text:?}");
    }
    assert!(matches!(
        Query::parse("{Service=\"a\"}"),
        Err(QueryError::Label(LabelError::BadName(_)))
    ));
    assert!(matches!(
        Query::parse("{service=\"a\"} | trace_id=\"xyz\""),
        Err(QueryError::Label(LabelError::BadTraceId(_)))
    ));
    let many: Vec<String> = (0..=MAX_MATCHERS).map(|i| format!("l{i}=\"v\"")).collect();
    assert_eq!(
        Query::parse(&format!("{{{}}}", many.join(","))),
        Err(QueryError::TooManyMatchers)
    );
}

#[test]
fn a_trace_id_alone_is_a_valid_query() {
    let q = Query::parse("{} | trace_id=\"0123456789abcdef0123456789abcdef\"").expect("parses");
    assert!(q.matchers.is_empty());
    assert!(q.trace_id.is_some());
}

#[test]
fn time_ranges_are_checked() {
    assert_eq!(
        TimeRange::new(10, 10),
        Err(RangeError::Inverted { start: 10, end: 10 })
    );
    assert_eq!(TimeRange::new(0, i64::MAX), Err(RangeError::OutOfBounds));
    assert_eq!(
        TimeRange::new(i64::MIN, i64::MIN + 1000),
        Err(RangeError::OutOfBounds)
    );
    assert_eq!(
        TimeRange::new(0, 40 * 24 * 3_600_000),
        Err(RangeError::TooWide)
    );
    assert!(TimeRange::new(0, 1).is_ok());
}

fn label_value() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 _./:-]{1,12}"
}

fn text() -> impl Strategy<Value = String> {
    // Quotes and backslashes included: they must round-trip through escapes.
    "[a-z \"\\\\]{1,10}"
}

fn query() -> impl Strategy<Value = Query> {
    (
        prop::collection::vec(("[a-z_][a-z0-9_]{0,6}", label_value(), any::<bool>()), 1..5),
        prop::collection::vec(text(), 0..3),
        prop::collection::vec(text(), 0..3),
        prop::option::of(any::<u128>()),
    )
        .prop_map(|(ms, contains, excludes, trace)| {
            let mut matchers: Vec<_> = ms
                .into_iter()
                .map(|(n, v, equal)| logging::domain::Matcher {
                    name: logging::domain::LabelName::parse(&n)
                        .expect("strategy makes valid names"),
                    value: v,
                    equal,
                })
                .collect();
            matchers[0].equal = true;
            Query {
                matchers,
                contains,
                excludes,
                trace_id: trace.map(logging::domain::TraceId::from_u128),
            }
        })
}

proptest! {
    #[test]
    fn a_query_printed_parses_back_to_itself(q in query()) {
        let text = q.to_string();
        prop_assert_eq!(Query::parse(&text), Ok(q), "{}", text);
    }

    #[test]
    fn any_text_parses_or_gets_a_named_error_never_a_panic(s in "\\PC{0,60}") {
        let _ = Query::parse(&s);
    }

    #[test]
    fn any_text_made_of_query_tokens_never_panics(
        s in prop::collection::vec(prop::sample::select(vec!["{", "}", "=", "!=", "|=", "|", "\"", "\\", ",", "a", "trace_id", " "]), 0..30)
    ) {
        let _ = Query::parse(&s.concat());
    }

    #[test]
    fn every_field_value_is_kept_whatever_the_types(
        batches in prop::collection::vec(
            prop::collection::btree_map(
                "[ab#%23]{1,5}",
                prop_oneof![
                    any::<bool>().prop_map(FieldValue::Bool),
                    any::<i64>().prop_map(FieldValue::Int),
                    (-1e9f64..1e9).prop_map(FieldValue::Float),
                    "[a-z]{0,4}".prop_map(FieldValue::Str),
                    Just(FieldValue::Json(serde_json::json!({"code": 7}))),
                    Just(FieldValue::Json(serde_json::Value::Null)),
                ],
                0..4,
            ),
            1..8,
        )
    ) {
        let mut s = Schema::new();
        for fields in &batches {
            let stored = s.store(fields);
            prop_assert_eq!(stored.len(), fields.len(), "a value was dropped or overwritten");
            for v in fields.values() {
                prop_assert!(stored.values().any(|x| x == v), "value {:?} lost", v);
            }
        }
    }

    #[test]
    fn the_guard_never_admits_more_than_the_limit(
        batches in prop::collection::vec(prop::collection::vec(0u8..20, 1..5), 1..20),
        limit in 1usize..10,
    ) {
        let mut g = CardinalityGuard::new(limit, 4);
        let mut refused = 0u64;
        for batch in &batches {
            let ls: Vec<Labels> = batch.iter().map(|v| labels(&[("user", &v.to_string())])).collect();
            let before = g.values_of("user");
            match g.admit(ls.iter()) {
                Ok(()) => {}
                Err(_) => {
                    refused += ls.len() as u64;
                    prop_assert_eq!(g.values_of("user"), before, "a refused batch changed the guard");
                }
            }
            prop_assert!(g.values_of("user") <= limit);
        }
        prop_assert_eq!(g.refused(), refused);
    }
}
