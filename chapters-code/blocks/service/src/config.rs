//! The binary's configuration, read from the environment by one pure function.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

/// Where a binary listens when `ADDR` is unset: loopback, so a demo is not
/// reachable from the network by accident.
pub const DEFAULT_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// The log filter when `RUST_LOG` is unset.
pub const DEFAULT_LOG: &str = "info";

/// A setting in the environment that does not parse. The binary prints it
/// and exits with [`crate::EXIT_CONFIG`]; nothing has started yet.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `PORT` is not a number from 0 to 65535.
    #[error("PORT={0:?} is not a port number (0 to 65535)")]
    Port(String),
    /// `ADDR` is not an IP address.
    #[error(
        "ADDR={0:?} is not an IP address such as 127.0.0.1, 0.0.0.0 or ::1 (the port goes in PORT)"
    )]
    Addr(String),
    /// `RUST_LOG` is not a tracing filter.
    #[error("RUST_LOG={value:?} is not a log filter: {reason}")]
    LogFilter {
        /// The value given.
        value: String,
        /// What the filter parser said.
        reason: String,
    },
    /// A chapter's own variable does not parse as the type it needs.
    #[error("{name}={value:?} is not a valid {expected}")]
    Var {
        /// The variable.
        name: String,
        /// The value given.
        value: String,
        /// The type expected.
        expected: &'static str,
    },
}

// ANCHOR: engines
/// The engines' URLs; an unset (or empty) one means the chapter runs without
/// that engine (in memory, for the database).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Engines {
    /// `DATABASE_URL`: PostgreSQL instead of the in-memory store.
    pub database_url: Option<String>,
    /// `REDIS_URL`: Redis, where the chapter uses it.
    pub redis_url: Option<String>,
    /// `NATS_URL`: NATS JetStream, where the chapter uses it.
    pub nats_url: Option<String>,
    /// `AMQP_URL`: RabbitMQ, where the chapter uses it.
    pub amqp_url: Option<String>,
}
// ANCHOR_END: engines

impl std::fmt::Debug for Engines {
    /// Says which engines are set, never their URLs: a URL may carry a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engines")
            .field("database", &self.database_url.is_some())
            .field("redis", &self.redis_url.is_some())
            .field("nats", &self.nats_url.is_some())
            .field("amqp", &self.amqp_url.is_some())
            .finish()
    }
}

// ANCHOR: config
/// Everything a demo binary reads before it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// `ADDR`:`PORT`, where to listen.
    pub addr: SocketAddr,
    /// `RUST_LOG`, checked to parse.
    pub log_filter: String,
    /// The engines' URLs.
    pub engines: Engines,
}

impl Config {
    /// Reads the process's environment; `default_port` is the chapter's own.
    pub fn from_env(default_port: u16) -> Result<Self, ConfigError> {
        // A value that is not UTF-8 is read lossily, so it fails to parse
        // with a message rather than passing for unset.
        Self::from_lookup(default_port, |name| {
            std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
        })
    }

    /// The same, over any lookup (a test passes a table). An empty value counts as unset.
    pub fn from_lookup(
        default_port: u16,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let ip = match var("ADDR") {
            None => DEFAULT_ADDR,
            Some(v) => parse_ip(&v).ok_or(ConfigError::Addr(v))?,
        };
        let port = match var("PORT") {
            None => default_port,
            Some(v) => v.trim().parse().map_err(|_| ConfigError::Port(v))?,
        };
        let log_filter = var("RUST_LOG").unwrap_or_else(|| DEFAULT_LOG.to_string());
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&log_filter) {
            return Err(ConfigError::LogFilter {
                value: log_filter,
                reason: e.to_string(),
            });
        }
        Ok(Self {
            addr: SocketAddr::new(ip, port),
            log_filter,
            engines: Engines {
                database_url: var("DATABASE_URL"),
                redis_url: var("REDIS_URL"),
                nats_url: var("NATS_URL"),
                amqp_url: var("AMQP_URL"),
            },
        })
    }
}

/// An IPv4 or IPv6 address; `[::1]` is accepted as well as `::1`.
fn parse_ip(v: &str) -> Option<IpAddr> {
    let v = v.trim();
    let bare = v
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(v);
    bare.parse().ok()
}
// ANCHOR_END: config

// ANCHOR: var_or
/// A chapter's own variable `name`, parsed; `default` when unset or empty.
/// A value that does not parse is an error, never silently the default.
pub fn var_or<T: FromStr>(name: &str, default: T) -> Result<T, ConfigError> {
    var_or_in(
        |n| std::env::var_os(n).map(|v| v.to_string_lossy().into_owned()),
        name,
        default,
    )
}

/// [`var_or`] over any lookup.
pub fn var_or_in<T: FromStr>(
    lookup: impl Fn(&str) -> Option<String>,
    name: &str,
    default: T,
) -> Result<T, ConfigError> {
    match lookup(name).filter(|v| !v.trim().is_empty()) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| ConfigError::Var {
            name: name.to_string(),
            value: v,
            expected: std::any::type_name::<T>(),
        }),
    }
}
// ANCHOR_END: var_or
