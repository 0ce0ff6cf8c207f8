//! Who the client is: the TCP peer, or, behind proxies we run, the address
//! they report in `X-Forwarded-For`.
//!
//! The create limit, the miss budget and the management budget count per
//! client address. Behind a load balancer every request's TCP peer is the
//! balancer, so counting by peer puts every client in one bucket: the first
//! scanner spends everyone's budget. The balancer appends the address it
//! received the request from to `X-Forwarded-For`; anyone can send that
//! header too, so it is read only when the peer is on the list of proxies
//! we run (`TRUST_FORWARDED_FOR`), and only its entries that our proxies
//! appended: walking from the right, the first address that is not one of
//! our proxies is the client. What a client wrote further left is never
//! reached.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::http::HeaderMap;

// ANCHOR: trusted_proxies
/// The proxies whose `X-Forwarded-For` we believe: addresses and CIDR
/// ranges. Empty (the default) trusts no header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<Net>,
}

/// One address range: `addr/prefix`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Net {
    addr: IpAddr,
    prefix: u8,
}

/// A `TRUST_FORWARDED_FOR` entry that is neither an address nor a CIDR range.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an IP address or a CIDR range such as 10.0.0.0/8")]
pub struct BadProxy(pub String);

impl FromStr for TrustedProxies {
    type Err = BadProxy;

    /// A comma-separated list, such as `10.0.0.0/8, 192.0.2.7`. An empty
    /// string is the empty list; an empty entry between commas is refused.
    fn from_str(s: &str) -> Result<Self, BadProxy> {
        if s.trim().is_empty() {
            return Ok(Self::default());
        }
        let nets = s
            .split(',')
            .map(|entry| Net::parse(entry.trim()).ok_or_else(|| BadProxy(entry.to_string())))
            .collect::<Result<_, _>>()?;
        Ok(Self { nets })
    }
}

impl TrustedProxies {
    /// True when `ip` is one of our proxies.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|net| net.contains(ip))
    }

    /// The client a request is counted against: the peer, unless the peer is
    /// one of our proxies; then, walking `X-Forwarded-For` from its last
    /// entry back, the first address that is not one of our proxies. An
    /// entry that does not parse stops the walk at the proxy that sent it.
    pub fn client(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> IpAddr {
        let peer = peer.map_or(IpAddr::from([0, 0, 0, 0]), |p| p.ip().to_canonical());
        if !self.contains(peer) {
            return peer;
        }
        let entries = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect::<Vec<_>>();
        let mut client = peer;
        for entry in entries.iter().rev() {
            let Ok(ip) = entry.trim().parse::<IpAddr>() else {
                break;
            };
            client = ip.to_canonical();
            if !self.contains(client) {
                break;
            }
        }
        client
    }
}
// ANCHOR_END: trusted_proxies

impl Net {
    fn parse(s: &str) -> Option<Self> {
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr.parse::<IpAddr>().ok()?, Some(prefix.parse().ok()?)),
            None => (s.parse::<IpAddr>().ok()?, None),
        };
        let addr = addr.to_canonical();
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(bits);
        (prefix <= bits).then_some(Self { addr, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nets: Vec<String> = self
            .nets
            .iter()
            .map(|n| format!("{}/{}", n.addr, n.prefix))
            .collect();
        f.write_str(&nets.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// The list and the header are input: neither panics on any string.
        #[test]
        fn arbitrary_lists_and_headers_never_panic(list in any::<String>(), xff in any::<String>(), mixed in "[0-9a-f:./, ]{0,40}") {
            let _ = list.parse::<TrustedProxies>();
            let _ = mixed.parse::<TrustedProxies>();
            let all: TrustedProxies = "0.0.0.0/0, ::/0".parse().expect("all");
            for value in [xff.as_str(), mixed.as_str()] {
                let mut h = HeaderMap::new();
                if let Ok(v) = value.parse() {
                    h.append("x-forwarded-for", v);
                }
                let _ = all.client(&h, peer([10, 0, 0, 1]));
            }
        }
    }

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().expect("header"));
        }
        h
    }

    fn peer(ip: [u8; 4]) -> Option<SocketAddr> {
        Some(SocketAddr::from((ip, 40_000)))
    }

    #[test]
    fn parses_addresses_and_ranges_and_refuses_the_rest() {
        let p: TrustedProxies = "10.0.0.0/8, 192.0.2.7,2001:db8::/32".parse().expect("list");
        assert!(p.contains(IpAddr::from([10, 1, 2, 3])));
        assert!(p.contains(IpAddr::from([192, 0, 2, 7])));
        assert!(!p.contains(IpAddr::from([192, 0, 2, 8])));
        assert!(p.contains("2001:db8::1".parse().expect("ip")));
        assert!(p.contains("::ffff:10.9.9.9".parse().expect("mapped")));
        assert!(!p.contains(IpAddr::from([11, 0, 0, 1])));
        assert_eq!(" ".parse::<TrustedProxies>(), Ok(TrustedProxies::default()));
        let all: TrustedProxies = "0.0.0.0/0".parse().expect("all");
        assert!(all.contains(IpAddr::from([8, 8, 8, 8])));
        for bad in ["x", "10.0.0.0/33", "::/129", "10.0.0.1,", "10.0.0.0/", "/8"] {
            assert!(bad.parse::<TrustedProxies>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_header_counts_only_from_a_trusted_peer_and_only_up_to_our_last_proxy() {
        let p: TrustedProxies = "10.0.0.0/8".parse().expect("list");
        // A direct client: its header is ignored.
        let forged = headers(&["198.51.100.1"]);
        assert_eq!(
            p.client(&forged, peer([203, 0, 113, 9])),
            IpAddr::from([203, 0, 113, 9])
        );
        // Through our two proxies: the client's own entry (6.6.6.6) is
        // never reached, the one our first proxy appended is.
        let h = headers(&["6.6.6.6, 203.0.113.9", "10.0.0.2"]);
        assert_eq!(
            p.client(&h, peer([10, 0, 0, 1])),
            IpAddr::from([203, 0, 113, 9])
        );
        // Garbage stops the walk at the proxy that appended it.
        let h = headers(&["garbage, 10.0.0.2"]);
        assert_eq!(
            p.client(&h, peer([10, 0, 0, 1])),
            IpAddr::from([10, 0, 0, 2])
        );
        // No header from our proxy: the proxy itself.
        assert_eq!(
            p.client(&HeaderMap::new(), peer([10, 0, 0, 1])),
            IpAddr::from([10, 0, 0, 1])
        );
        // Trusting no one is the default.
        let none = TrustedProxies::default();
        let h = headers(&["198.51.100.1"]);
        assert_eq!(
            none.client(&h, peer([10, 0, 0, 1])),
            IpAddr::from([10, 0, 0, 1])
        );
    }
}
