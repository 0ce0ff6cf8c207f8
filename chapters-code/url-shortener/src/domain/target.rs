//! The target of a link: an absolute http(s) URL we are willing to redirect to.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// Longest target we store, before and after normalisation. Browsers and
/// proxies handle far longer URLs, but 2048 is the common safe limit and
/// keeps a row (and a cache entry) small.
pub const TARGET_MAX_LEN: usize = 2048;

// ANCHOR: target
/// An absolute `http` or `https` URL, normalised by the WHATWG URL parser.
///
/// Normalisation lowercases the scheme and host, converts an international
/// domain name to punycode (`bücher.example` -> `xn--bcher-kva.example`),
/// drops a default port, percent-encodes what must be encoded and turns an
/// empty path into `/`. It is idempotent: parsing the stored form gives the
/// same string back (a property test checks it).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TargetUrl(Url);

// ANCHOR: url_error
/// Why a URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Empty or only whitespace.
    #[error("the URL is empty")]
    Empty,
    /// Longer than [`TARGET_MAX_LEN`] bytes (as given, or once normalised).
    #[error("the URL has {0} bytes; the limit is {TARGET_MAX_LEN}")]
    TooLong(usize),
    /// No `scheme:` at all, as in `example.com/page`.
    #[error("the URL has no scheme; write it as https://...")]
    MissingScheme,
    /// The URL parser refused it.
    #[error("the URL is malformed: {0}")]
    Malformed(String),
    /// Anything but http and https: `javascript:`, `data:`, `file:`, `vbscript:`, `ftp:`...
    #[error("only http and https URLs can be shortened, not {0}:")]
    SchemeNotAllowed(String),
    /// `http://` with nothing after it.
    #[error("the URL has no host")]
    MissingHost,
    /// `https://user:pass@host/`: a classic phishing disguise
    /// (`https://bank.example@evil.example/`), and a leaked secret.
    #[error("the URL contains a user name or password")]
    CredentialsNotAllowed,
    /// The URL points at this shortener, which would make a redirect loop.
    #[error("the URL points at this shortener ({0})")]
    PointsAtUs(String),
    /// The host is loopback (`localhost`, `127.0.0.1`, `::1`), a private,
    /// shared or link-local network, or unspecified (`0.0.0.0`): it would
    /// lead back to us or into the network of whoever follows the link.
    #[error("the URL points at a loopback or private address ({0})")]
    PrivateAddress(String),
}
// ANCHOR_END: url_error

/// The hosts a target may not point at: ours, and (unless allowed)
/// loopback and private addresses. The default refuses the latter.
#[derive(Clone, Debug, Default)]
pub struct UrlPolicy {
    own_hosts: Vec<String>,
    allow_private: bool,
}

// ANCHOR: target_parse
impl TargetUrl {
    /// Parses and normalises `raw`, applying `policy`.
    pub fn parse(raw: &str, policy: &UrlPolicy) -> Result<Self, UrlError> {
        if raw.trim().is_empty() {
            return Err(UrlError::Empty);
        }
        // Check before parsing too, so a megabyte of input costs nothing.
        if raw.len() > TARGET_MAX_LEN {
            return Err(UrlError::TooLong(raw.len()));
        }
        let url = Url::parse(raw).map_err(|e| match e {
            url::ParseError::RelativeUrlWithoutBase => UrlError::MissingScheme,
            url::ParseError::EmptyHost => UrlError::MissingHost,
            other => UrlError::Malformed(other.to_string()),
        })?;
        // An allow-list, not a deny-list: new dangerous schemes appear, new
        // schemes that are safe to redirect to do not.
        if !matches!(url.scheme(), "http" | "https") {
            return Err(UrlError::SchemeNotAllowed(url.scheme().to_string()));
        }
        let Some(host) = url.host_str() else {
            return Err(UrlError::MissingHost);
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlError::CredentialsNotAllowed);
        }
        // Compared after normalisation, so `HTTPS://Sho.RT.` is caught too,
        // and `http://2130706433/` is `127.0.0.1` by now.
        if policy.is_ours(host) {
            return Err(UrlError::PointsAtUs(host.to_string()));
        }
        if !policy.allow_private && url.host().is_some_and(|h| is_private(&h)) {
            return Err(UrlError::PrivateAddress(host.to_string()));
        }
        if url.as_str().len() > TARGET_MAX_LEN {
            return Err(UrlError::TooLong(url.as_str().len()));
        }
        Ok(Self(url))
    }
}
// ANCHOR_END: target_parse
// ANCHOR_END: target

// ANCHOR: url_reason
impl UrlError {
    /// A stable, machine-readable name for the rule that refused the URL.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Empty => "url_empty",
            Self::TooLong(_) => "url_too_long",
            Self::MissingScheme => "url_missing_scheme",
            Self::Malformed(_) => "url_malformed",
            Self::SchemeNotAllowed(_) => "url_scheme_not_allowed",
            Self::MissingHost => "url_missing_host",
            Self::CredentialsNotAllowed => "url_credentials_not_allowed",
            Self::PointsAtUs(_) => "url_points_at_us",
            Self::PrivateAddress(_) => "url_private_address",
        }
    }
}
// ANCHOR_END: url_reason

impl TargetUrl {
    /// Rebuilds a target read back from our own store, which only holds
    /// values `parse` accepted. The policy is not applied again: a link
    /// created under an older policy still redirects.
    pub fn from_stored(s: &str) -> Result<Self, UrlError> {
        Self::parse(s, &UrlPolicy::allowing_any())
    }

    /// The normalised URL.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The normalised host (punycode for international names).
    pub fn host(&self) -> &str {
        self.0.host_str().unwrap_or_default()
    }
}

impl UrlPolicy {
    /// A policy refusing `hosts` and their subdomains (`sho.rt` refuses `www.sho.rt`).
    ///
    /// Each host is normalised the way target hosts are; one that is not a
    /// valid host is ignored.
    pub fn refusing<'a>(hosts: impl IntoIterator<Item = &'a str>) -> Self {
        let own_hosts = hosts
            .into_iter()
            .filter_map(|h| {
                // A bare IPv6 address (as a listener reports it) needs brackets.
                let bracketed = format!("[{h}]");
                let h = if h.parse::<Ipv6Addr>().is_ok() {
                    &bracketed
                } else {
                    h
                };
                Host::parse(h).ok()
            })
            .map(|h| h.to_string().trim_end_matches('.').to_string())
            .collect();
        Self {
            own_hosts,
            allow_private: false,
        }
    }

    /// The same policy, accepting loopback and private addresses: for a
    /// shortener that serves one private network.
    pub fn allowing_private(mut self) -> Self {
        self.allow_private = true;
        self
    }

    /// Accepts every host: for values read back from our own store.
    fn allowing_any() -> Self {
        Self::default().allowing_private()
    }

    /// True when `host` (already normalised) is one of ours or a subdomain of one.
    fn is_ours(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.');
        self.own_hosts.iter().any(|own| {
            host == own
                || (host.len() > own.len()
                    && host.ends_with(own.as_str())
                    && host.as_bytes()[host.len() - own.len() - 1] == b'.')
        })
    }
}

// ANCHOR: private_hosts
/// True for a host that is loopback, private, shared (carrier-grade NAT),
/// link-local or unspecified, in IPv4 or IPv6 (an IPv4-mapped IPv6 address
/// counts as its IPv4 address), and for `localhost`, `.local`,
/// `.home.arpa` and `.internal` names. Other names are not resolved: their addresses can change
/// after the check, and the redirect is followed by the visitor, not by us.
fn is_private(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(name) => {
            let name = name.trim_end_matches('.');
            // Names only the visitor's machine or network resolves:
            // localhost (RFC 6761), mDNS (RFC 6762), home.arpa (RFC 8375),
            // internal (reserved by ICANN), and the Debian names of ::1.
            let local = ["localhost", "local", "home.arpa", "internal"];
            ["ip6-localhost", "ip6-loopback"].contains(&name)
                || local.iter().any(|suffix| {
                    name == *suffix
                        || name
                            .strip_suffix(suffix)
                            .is_some_and(|rest| rest.ends_with('.'))
                })
        }
        Host::Ipv4(ip) => is_private_v4(*ip),
        Host::Ipv6(ip) => match IpAddr::V6(*ip).to_canonical() {
            IpAddr::V4(v4) => is_private_v4(v4),
            IpAddr::V6(v6) => {
                let first = v6.segments()[0];
                v6.is_loopback()
                    || v6.is_unspecified()
                    || first & 0xfe00 == 0xfc00 // unique local, fc00::/7
                    || first & 0xffc0 == 0xfe80 // link-local, fe80::/10
            }
        },
    }
}

fn is_private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || a == 0 // "this network", 0.0.0.0/8
        || (a == 100 && b & 0xc0 == 64) // shared address space, 100.64.0.0/10
}
// ANCHOR_END: private_hosts

impl fmt::Display for TargetUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for TargetUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TargetUrl({})", self.as_str())
    }
}

impl serde::Serialize for TargetUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy() -> UrlPolicy {
        UrlPolicy::refusing(["sho.rt"])
    }

    fn parse(s: &str) -> Result<String, UrlError> {
        TargetUrl::parse(s, &policy()).map(|t| t.as_str().to_string())
    }

    #[test]
    fn normalises_scheme_host_port_and_idn() {
        assert_eq!(
            parse("HTTPS://Example.COM"),
            Ok("https://example.com/".into())
        );
        assert_eq!(
            parse("http://example.com:80/a"),
            Ok("http://example.com/a".into())
        );
        assert_eq!(
            parse("  https://example.com/x  "),
            Ok("https://example.com/x".into())
        );
        assert_eq!(
            parse("https://bücher.example/ä?q=ü"),
            Ok("https://xn--bcher-kva.example/%C3%A4?q=%C3%BC".into())
        );
        // The url crate's IDNA agrees with the idna crate used on its own.
        let ascii = idna::domain_to_ascii("bücher.example").unwrap_or_default();
        assert_eq!(
            TargetUrl::parse("https://bücher.example/", &policy()).map(|t| t.host().to_string()),
            Ok(ascii)
        );
    }

    #[test]
    fn refuses_each_bad_input_with_its_own_error() {
        let cases: &[(&str, UrlError)] = &[
            ("", UrlError::Empty),
            ("   ", UrlError::Empty),
            ("example.com/page", UrlError::MissingScheme),
            (
                "javascript:alert(1)",
                UrlError::SchemeNotAllowed("javascript".into()),
            ),
            (
                " JavaScript:alert(1)",
                UrlError::SchemeNotAllowed("javascript".into()),
            ),
            (
                "java\tscript:alert(1)",
                UrlError::SchemeNotAllowed("javascript".into()),
            ),
            (
                "data:text/html,<script>alert(1)</script>",
                UrlError::SchemeNotAllowed("data".into()),
            ),
            (
                "file:///etc/passwd",
                UrlError::SchemeNotAllowed("file".into()),
            ),
            (
                "vbscript:msgbox(1)",
                UrlError::SchemeNotAllowed("vbscript".into()),
            ),
            (
                "ftp://example.com/",
                UrlError::SchemeNotAllowed("ftp".into()),
            ),
            ("http://", UrlError::MissingHost),
            (
                "https://user:pass@example.com/",
                UrlError::CredentialsNotAllowed,
            ),
            (
                "https://bank.example@evil.example/",
                UrlError::CredentialsNotAllowed,
            ),
            ("https://sho.rt/abc", UrlError::PointsAtUs("sho.rt".into())),
            (
                "HTTPS://WWW.Sho.RT./abc",
                UrlError::PointsAtUs("www.sho.rt.".into()),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(parse(input).as_ref(), Err(expected), "{input:?}");
        }
        assert!(matches!(
            parse("http://exa mple.com/"),
            Err(UrlError::Malformed(_))
        ));
        assert!(matches!(
            parse("https://[::1/"),
            Err(UrlError::Malformed(_))
        ));
        let long = format!("https://example.com/{}", "a".repeat(TARGET_MAX_LEN));
        assert_eq!(parse(&long), Err(UrlError::TooLong(long.len())));
    }

    #[test]
    fn a_lookalike_of_our_domain_is_not_ours() {
        assert!(parse("https://notsho.rt/").is_ok());
        assert!(parse("https://sho.rt.example/").is_ok());
    }

    #[test]
    fn growth_through_normalisation_is_caught() {
        // 'é' is 2 bytes as given and 6 once percent-encoded.
        let raw = format!("https://example.com/{}", "é".repeat(500));
        assert!(raw.len() <= TARGET_MAX_LEN);
        assert!(matches!(parse(&raw), Err(UrlError::TooLong(n)) if n > TARGET_MAX_LEN));
    }

    /// URL-shaped strings: most are accepted, so the normalisation property gets exercised.
    fn url_like() -> impl Strategy<Value = String> {
        (
            prop_oneof![Just("http"), Just("https"), Just("HTTP"), Just("ftp"), Just("javascript")],
            "[a-zA-Z0-9.-]{0,20}|[a-zäöü]{1,8}\\.[a-z]{2,3}|\\[::[0-9]\\]|[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
            prop::option::of(0u32..70000),
            "(/[a-zA-Z0-9._~%!$&'()*+,;=:@ é/-]{0,12}){0,3}",
            prop::option::of("[a-zA-Z0-9=&%é ?/]{0,12}"),
            prop::option::of("[a-zA-Z0-9 #é]{0,8}"),
        )
            .prop_map(|(scheme, host, port, path, query, frag)| {
                let mut s = format!("{scheme}://{host}");
                if let Some(p) = port {
                    s.push_str(&format!(":{p}"));
                }
                s.push_str(&path);
                if let Some(q) = query {
                    s.push('?');
                    s.push_str(&q);
                }
                if let Some(f) = frag {
                    s.push('#');
                    s.push_str(&f);
                }
                s
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn random_strings_never_panic(s in any::<String>()) {
            let _ = TargetUrl::parse(&s, &policy());
        }

        #[test]
        fn normalisation_is_idempotent(s in url_like()) {
            if let Ok(t) = TargetUrl::parse(&s, &policy()) {
                let again = TargetUrl::parse(t.as_str(), &policy());
                prop_assert_eq!(again.as_ref().map(TargetUrl::as_str), Ok(t.as_str()));
                prop_assert!(t.as_str().starts_with("http://") || t.as_str().starts_with("https://"));
                prop_assert!(t.as_str().len() <= TARGET_MAX_LEN);
            }
        }

        #[test]
        fn every_rejection_names_a_reason_that_fits_the_input(s in prop_oneof![url_like(), any::<String>()]) {
            match TargetUrl::parse(&s, &policy()) {
                Ok(_) => {}
                Err(UrlError::Empty) => prop_assert!(s.trim().is_empty()),
                Err(UrlError::TooLong(n)) => prop_assert!(n > TARGET_MAX_LEN),
                Err(UrlError::MissingScheme) => {}
                Err(UrlError::SchemeNotAllowed(scheme)) => {
                    prop_assert!(scheme != "http" && scheme != "https");
                    // The parser drops tabs and newlines anywhere in the input.
                    let squeezed = s.replace(['\t', '\n', '\r'], "").to_ascii_lowercase();
                    prop_assert!(squeezed.contains(&scheme));
                }
                Err(UrlError::MissingHost) => {}
                Err(UrlError::CredentialsNotAllowed) => prop_assert!(s.contains('@')),
                Err(UrlError::PointsAtUs(h)) => prop_assert!(h.trim_end_matches('.').ends_with("sho.rt")),
                Err(UrlError::PrivateAddress(h)) => prop_assert!(!h.is_empty()),
                Err(UrlError::Malformed(reason)) => prop_assert!(!reason.is_empty()),
            }
        }
    }
}
