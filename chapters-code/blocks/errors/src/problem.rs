//! RFC 9457 problem details: the body, the response with its headers, and
//! the trait a chapter's error type implements to get both.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::class::{Class, RETRY_AFTER};

/// The media type of a problem document (RFC 9457, section 3).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// `Cache-Control` of an error that describes a moment (a 404 turns into a
/// resource the moment someone creates it, a 503 ends): no cache keeps it.
pub const NO_STORE: &str = "no-store";

/// The problem type and title of a 500 every chapter shares.
pub const INTERNAL: (StatusCode, &str, &str) = (
    StatusCode::INTERNAL_SERVER_ERROR,
    "internal",
    "Internal error",
);

/// The problem type and title of a 503 every chapter shares.
pub const UNAVAILABLE: (StatusCode, &str, &str) = (
    StatusCode::SERVICE_UNAVAILABLE,
    "unavailable",
    "Service unavailable",
);

/// The shared problem type for a class no chapter names more finely:
/// [`UNAVAILABLE`] for a 503, [`INTERNAL`] for a 500.
pub fn class_problem(class: Class) -> (StatusCode, &'static str, &'static str) {
    if class.status() == StatusCode::SERVICE_UNAVAILABLE {
        UNAVAILABLE
    } else {
        INTERNAL
    }
}

// ANCHOR: problem
/// The `application/problem+json` body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// A URI naming the kind of problem: the chapter's problems page and the
    /// type's section (`.../problems.html#alias-taken`).
    #[serde(rename = "type")]
    pub kind: String,
    /// A summary of the kind of problem, the same for every occurrence.
    pub title: String,
    /// The HTTP status, repeated for clients that lose the status line.
    pub status: u16,
    /// What went wrong this time.
    pub detail: String,
    /// Extension members (the rule a 422 broke, the version now stored).
    #[serde(flatten)]
    pub extensions: Map<String, Value>,
}
// ANCHOR_END: problem

impl Problem {
    /// A problem of type `base` + `slug`.
    pub fn new(
        base: &str,
        slug: &str,
        title: &str,
        status: u16,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            kind: format!("{base}{slug}"),
            title: title.to_string(),
            status,
            detail: detail.into(),
            extensions: Map::new(),
        }
    }

    /// Adds an extension member.
    pub fn with(mut self, name: &str, value: Value) -> Self {
        self.extensions.insert(name.to_string(), value);
        self
    }

    /// The type's name after `base` (the whole URI if it does not start with `base`).
    pub fn slug<'a>(&'a self, base: &str) -> &'a str {
        self.kind.strip_prefix(base).unwrap_or(&self.kind)
    }
}

// ANCHOR: response
/// A problem and the headers that go with it.
#[derive(Clone, Debug)]
pub struct ProblemResponse {
    /// The status line.
    pub status: StatusCode,
    /// The body.
    pub problem: Problem,
    /// When to send the request again, if ever.
    pub retry_after: Option<Duration>,
    /// Who may cache the answer.
    pub cache_control: &'static str,
}

impl IntoResponse for ProblemResponse {
    fn into_response(self) -> Response {
        // Serializing a struct of strings and JSON values cannot fail.
        let body = serde_json::to_vec(&self.problem).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(self.cache_control),
        );
        if let Some(wait) = self.retry_after {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs(wait)),
            );
        }
        response
    }
}

/// Whole seconds, rounded up and at least one: `Retry-After` counts whole
/// seconds, and `0` would invite the client straight back.
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}
// ANCHOR_END: response

// ANCHOR: api_problem
/// What a chapter's error type tells the block; [`respond`] does the rest.
pub trait ApiProblem {
    /// The chapter's `<site><slug>/problems.html#`.
    const BASE: &'static str;

    /// Status, problem type and title: the chapter's own mapping, the only
    /// place its errors meet status codes.
    fn classify(&self) -> (StatusCode, &'static str, &'static str);

    /// What happened this time: sent for a 4xx, logged and never sent for a
    /// 5xx (it can name hosts, queries and constraints).
    fn detail(&self) -> String;

    /// The class of the dependency failure behind the error, if there is one.
    fn class(&self) -> Option<Class> {
        None
    }

    /// `Retry-After`: by default the class's, or the block's for a 503
    /// without a class (a refusal of the chapter's own, like a breaker).
    fn retry_after(&self, status: StatusCode) -> Option<Duration> {
        default_retry_after(self.class(), status)
    }

    /// Extension members added to the body.
    fn extensions(&self, problem: Problem) -> Problem {
        problem
    }

    /// `Cache-Control`: [`NO_STORE`] unless the answer cannot change.
    fn cache_control(&self, _status: StatusCode) -> &'static str {
        NO_STORE
    }

    /// A 5xx whose detail the client needs (a payment's unknown outcome).
    fn detail_is_public(&self) -> bool {
        false
    }
}

/// The class's `Retry-After`, or for a 503 without a class the block's.
pub fn default_retry_after(class: Option<Class>, status: StatusCode) -> Option<Duration> {
    match class {
        Some(class) => class.retry_after(),
        None => (status == StatusCode::SERVICE_UNAVAILABLE).then_some(RETRY_AFTER),
    }
}

/// The response for `e`: its problem, headers, and for a 5xx the cause in
/// the log and a generic detail on the wire.
pub fn respond<E: ApiProblem + ?Sized>(e: &E) -> ProblemResponse {
    let (status, slug, title) = e.classify();
    let retry_after = e.retry_after(status);
    let detail = if status.is_server_error() && !e.detail_is_public() {
        let class = e.class().map(|c| c.to_string());
        tracing::error!(
            error = %e.detail(),
            status = status.as_u16(),
            problem = slug,
            class = class.as_deref().unwrap_or("none"),
            "request failed"
        );
        hidden_detail(status, retry_after)
    } else {
        e.detail()
    };
    let problem = e.extensions(Problem::new(E::BASE, slug, title, status.as_u16(), detail));
    ProblemResponse {
        status,
        problem,
        retry_after,
        cache_control: e.cache_control(status),
    }
}

/// The `(type, status)` pairs `errors` classify to, for the unit test that
/// compares a chapter's `PROBLEM_TYPES` with its code.
pub fn problem_types_of<E: ApiProblem>(errors: &[E]) -> BTreeSet<(String, u16)> {
    errors
        .iter()
        .map(|e| {
            let (status, slug, _) = e.classify();
            (slug.to_string(), status.as_u16())
        })
        .collect()
}

/// Panics unless `returned` is exactly `listed`, each listed once: a
/// chapter's `PROBLEM_TYPES` (and so its problems page) names every type
/// its code returns, and no other.
pub fn assert_problem_types(returned: &BTreeSet<(String, u16)>, listed: &[(&str, u16)]) {
    let set: BTreeSet<(String, u16)> = listed.iter().map(|(t, s)| (t.to_string(), *s)).collect();
    assert_eq!(set.len(), listed.len(), "a type listed twice: {listed:?}");
    let missing: Vec<_> = returned.difference(&set).collect();
    let unused: Vec<_> = set.difference(returned).collect();
    assert!(
        missing.is_empty() && unused.is_empty(),
        "returned but not listed: {missing:?}; listed but never returned: {unused:?}"
    );
}

/// Implements axum's `IntoResponse` for a chapter's error type through [`respond`].
#[macro_export]
macro_rules! into_response {
    ($error:ty) => {
        impl $crate::__axum::response::IntoResponse for $error {
            fn into_response(self) -> $crate::__axum::response::Response {
                $crate::__axum::response::IntoResponse::into_response($crate::respond(&self))
            }
        }
    };
}

/// The detail a client sees for a 5xx: what to do, never the cause.
pub fn hidden_detail(status: StatusCode, retry_after: Option<Duration>) -> String {
    match (status, retry_after) {
        (_, Some(wait)) => format!(
            "the service could not complete the request now; retry in {} s",
            retry_after_secs(wait)
        ),
        (StatusCode::SERVICE_UNAVAILABLE, None) => {
            "the service cannot complete the request until an operator acts".to_string()
        }
        _ => "internal error".to_string(),
    }
}
// ANCHOR_END: api_problem

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Rounded up, never zero, and never more than a second late.
        #[test]
        fn retry_after_is_whole_seconds_never_early(nanos in 0u64..100_000_000_000) {
            let wait = Duration::from_nanos(nanos);
            let secs = retry_after_secs(wait);
            prop_assert!(secs >= 1);
            prop_assert!(Duration::from_secs(secs) >= wait);
            prop_assert!(Duration::from_secs(secs) < wait + Duration::from_secs(1) || secs == 1);
        }
    }

    /// A chapter's error, reduced to what the block asks of it.
    enum Test {
        Refused,
        Store(crate::Class),
    }

    impl ApiProblem for Test {
        const BASE: &'static str = "https://example.com/problems.html#";

        fn classify(&self) -> (StatusCode, &'static str, &'static str) {
            match self {
                Test::Refused => (StatusCode::CONFLICT, "taken", "Taken"),
                Test::Store(c) => crate::class_problem(*c),
            }
        }

        fn detail(&self) -> String {
            match self {
                Test::Refused => "the name is taken".into(),
                Test::Store(_) => "connection to db.internal:5432 refused".into(),
            }
        }

        fn class(&self) -> Option<crate::Class> {
            match self {
                Test::Refused => None,
                Test::Store(c) => Some(*c),
            }
        }
    }

    async fn answer(e: &Test) -> (StatusCode, axum::http::HeaderMap, Value) {
        use http_body_util::BodyExt;
        let response = respond(e).into_response();
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.expect("a body").to_bytes();
        let json = serde_json::from_slice(&bytes).expect("JSON");
        (parts.status, parts.headers, json)
    }

    #[tokio::test]
    async fn a_5xx_hides_its_cause_and_only_a_retryable_one_says_when_to_retry() {
        use crate::{Class, Transient};
        let (status, headers, body) =
            answer(&Test::Store(Class::Retryable(Transient::Timeout))).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(headers[header::CACHE_CONTROL], NO_STORE);
        assert_eq!(headers[header::RETRY_AFTER], "1");
        assert_eq!(
            body["type"],
            "https://example.com/problems.html#unavailable"
        );
        assert!(
            !body["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("db.internal")
        );

        let (status, headers, _) = answer(&Test::Store(Class::Final)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            headers.get(header::RETRY_AFTER).is_none(),
            "final: no Retry-After"
        );

        let (status, headers, body) = answer(&Test::Store(Class::Bug)).await;
        assert_eq!(
            (status, body["type"].as_str()),
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Some("https://example.com/problems.html#internal")
            )
        );
        assert!(headers.get(header::RETRY_AFTER).is_none());

        let (status, _, body) = answer(&Test::Refused).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(
            body["detail"], "the name is taken",
            "a 4xx says what happened"
        );
    }

    #[test]
    fn extension_members_sit_beside_the_standard_ones_and_read_back() {
        let p = Problem::new("b#", "t", "T", 422, "d").with("reason", Value::from("r"));
        let json = serde_json::to_value(&p).expect("serializes");
        assert_eq!(json["type"], "b#t");
        assert_eq!(json["reason"], "r");
        let back: Problem = serde_json::from_value(json).expect("reads back");
        assert_eq!(back, p);
        assert_eq!(back.slug("b#"), "t");
    }
}
