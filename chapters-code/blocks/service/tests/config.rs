//! The configuration: a pure function of the environment. Every bad value
//! is a named error; every good one round-trips.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use block_service::{Config, ConfigError, DEFAULT_LOG, var_or_in};
use proptest::prelude::*;

const PORT: u16 = 8089;

fn parse(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_lookup(PORT, |k| map.get(k).cloned())
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// An environment and what it parses to.
type Case = (
    &'static [(&'static str, &'static str)],
    Result<SocketAddr, ConfigError>,
);

// ANCHOR: table
#[test]
fn each_setting_parses_or_is_refused_by_name() {
    use ConfigError::*;
    let cases: &[Case] = &[
        (&[], Ok(addr("127.0.0.1:8089"))),
        (&[("PORT", "9000")], Ok(addr("127.0.0.1:9000"))),
        (&[("PORT", "0")], Ok(addr("127.0.0.1:0"))),
        (&[("PORT", " 9000 ")], Ok(addr("127.0.0.1:9000"))),
        (&[("PORT", "")], Ok(addr("127.0.0.1:8089"))),
        (&[("ADDR", "0.0.0.0")], Ok(addr("0.0.0.0:8089"))),
        (&[("ADDR", "::1")], Ok(addr("[::1]:8089"))),
        (&[("ADDR", "[::1]")], Ok(addr("[::1]:8089"))),
        (&[("PORT", "65536")], Err(Port("65536".into()))),
        (&[("PORT", "-1")], Err(Port("-1".into()))),
        (&[("PORT", "80a")], Err(Port("80a".into()))),
        (&[("PORT", "http")], Err(Port("http".into()))),
        (&[("ADDR", "localhost")], Err(Addr("localhost".into()))),
        (
            &[("ADDR", "127.0.0.1:80")],
            Err(Addr("127.0.0.1:80".into())),
        ),
        (&[("ADDR", "300.1.1.1")], Err(Addr("300.1.1.1".into()))),
    ];
    for (vars, expected) in cases {
        assert_eq!(&parse(vars).map(|c| c.addr), expected, "{vars:?}");
    }
}
// ANCHOR_END: table

#[test]
fn the_messages_name_the_variable_and_the_value() {
    let port = parse(&[("PORT", "80a")]).err().map(|e| e.to_string());
    assert_eq!(
        port.as_deref(),
        Some("PORT=\"80a\" is not a port number (0 to 65535)")
    );
    let addr = parse(&[("ADDR", "localhost")]).err().map(|e| e.to_string());
    assert!(addr.is_some_and(|m| m.starts_with("ADDR=\"localhost\" is not an IP address")));
}

#[test]
fn a_bad_log_filter_is_refused_and_the_default_is_info() {
    assert!(matches!(
        parse(&[("RUST_LOG", "info,=[")]),
        Err(ConfigError::LogFilter { .. })
    ));
    assert_eq!(
        parse(&[]).map(|c| c.log_filter),
        Ok(DEFAULT_LOG.to_string())
    );
    assert_eq!(
        parse(&[("RUST_LOG", "debug,hyper=warn")]).map(|c| c.log_filter),
        Ok("debug,hyper=warn".to_string())
    );
}

#[test]
fn engines_are_optional_and_empty_means_unset() {
    let c = parse(&[
        ("DATABASE_URL", "postgres://u:secret@db/x"),
        ("REDIS_URL", ""),
        ("NATS_URL", "nats://127.0.0.1:4222"),
    ]);
    let engines = c.map(|c| c.engines).unwrap_or_default();
    assert_eq!(
        engines.database_url.as_deref(),
        Some("postgres://u:secret@db/x")
    );
    assert_eq!(engines.redis_url, None);
    assert_eq!(engines.nats_url.as_deref(), Some("nats://127.0.0.1:4222"));
    assert_eq!(engines.amqp_url, None);
    // What the start-up logs says which engines are set, never the password.
    let shown = format!("{engines:?}");
    assert!(!shown.contains("secret"), "{shown}");
}

#[test]
fn a_chapter_variable_that_does_not_parse_is_an_error_not_the_default() {
    let lookup = |k: &str| (k == "THRESHOLD").then(|| "lots".to_string());
    assert_eq!(
        var_or_in(lookup, "THRESHOLD", 10_000u32),
        Err(ConfigError::Var {
            name: "THRESHOLD".into(),
            value: "lots".into(),
            expected: "u32"
        })
    );
    assert_eq!(var_or_in(|_| None, "THRESHOLD", 7u32), Ok(7));
    assert_eq!(var_or_in(|_| Some("12".into()), "THRESHOLD", 7u32), Ok(12));
}

proptest! {
    /// Any address and port round-trip through the environment.
    #[test]
    fn any_address_and_port_round_trip(ip in any::<IpAddr>(), port in any::<u16>()) {
        let c = parse(&[("ADDR", &ip.to_string()), ("PORT", &port.to_string())]);
        prop_assert_eq!(c.map(|c| c.addr), Ok(SocketAddr::new(ip, port)));
    }

    /// Any PORT that is not a decimal number below 65536 (around blanks,
    /// which are ignored) is refused, with the value in the error.
    #[test]
    fn any_port_that_is_not_a_u16_is_refused(v in "[^ ]{1,12}") {
        prop_assume!(!v.trim().is_empty() && v.trim().parse::<u16>().is_err());
        prop_assert_eq!(parse(&[("PORT", &v)]).map(|c| c.addr), Err(ConfigError::Port(v.clone())));
    }

    /// Numbers above 65535 are refused, not wrapped.
    #[test]
    fn ports_past_the_range_are_refused(p in 65536u64..10_000_000) {
        let v = p.to_string();
        prop_assert_eq!(parse(&[("PORT", &v)]).map(|c| c.addr), Err(ConfigError::Port(v.clone())));
    }
}
