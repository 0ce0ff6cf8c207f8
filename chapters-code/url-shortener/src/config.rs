//! Configuration: plain structs with defaults, filled from the environment by the binary.
//!
//! Each cache layer is an `Option`, so a benchmark can build the three
//! redirect paths it measures: in-process hit (`local_cache: Some`), Redis
//! hit (`local_cache: None, redis: Some`) and database hit (both `None`).

use std::time::Duration;

use block_service::ConfigError;
use url::Url;

use crate::proxy::TrustedProxies;

/// Everything the service needs besides its store and code generator.
#[derive(Clone, Debug)]
pub struct Config {
    /// The public address of the service: short URLs start with it, and
    /// targets on its host are refused (they would redirect to us).
    pub base_url: Url,
    /// Longest wait for any single store call before answering 503.
    pub store_timeout: Duration,
    /// The in-process cache; `None` sends every lookup to Redis or the store.
    pub local_cache: Option<LocalCacheConfig>,
    /// The shared Redis cache; `None` to run without Redis.
    pub redis: Option<RedisConfig>,
    /// The click pipeline.
    pub clicks: ClickConfig,
    /// Per-client limit on link creation; `None` disables it.
    pub rate_limit: Option<RateLimitConfig>,
    /// Per-client budget of redirects that find no link (the defence
    /// against scanning, `scan::MissBudget`); `None` disables it.
    pub miss_limit: Option<RateLimitConfig>,
    /// Key of the Feistel permutation that scrambles generated codes. A
    /// deployment sets its own (`SCRAMBLE_KEY`); the default is public and
    /// only for tests and the in-memory demo.
    pub scramble_key: u64,
    /// The proxies we run (`TRUST_FORWARDED_FOR`): from them, the client is
    /// the address they report in `X-Forwarded-For`, not the TCP peer. Empty
    /// by default: no header is trusted.
    pub trusted_proxies: TrustedProxies,
    /// Attempts at a free generated code before giving up with 503.
    pub max_code_attempts: u32,
    /// Other hosts that reach this service besides `base_url`'s
    /// (`OWN_HOSTS`: a balancer's address, a second name); the binary adds
    /// the address it listens on. Targets on them are refused; a name not
    /// listed is not known to be us.
    pub own_hosts: Vec<String>,
    /// Accept targets on loopback and private addresses
    /// (`ALLOW_PRIVATE_TARGETS`); off by default.
    pub allow_private_targets: bool,
}

/// The in-process (moka) cache.
#[derive(Clone, Debug)]
pub struct LocalCacheConfig {
    /// Most entries kept; the least useful are evicted beyond it.
    pub capacity: u64,
    /// How long a found link stays; also how long another node may keep
    /// redirecting a link deleted elsewhere.
    pub ttl: Duration,
    /// How long "no such code" stays.
    pub negative_ttl: Duration,
}

/// The shared Redis cache.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    /// `redis://host:port`.
    pub url: String,
    /// Prepended to every key, so services (and tests) can share a server.
    pub key_prefix: String,
    /// How long a found link stays.
    pub ttl: Duration,
    /// How long "no such code" stays.
    pub negative_ttl: Duration,
    /// Longest wait for one Redis command; past it the lookup goes to the store.
    pub timeout: Duration,
    /// After a failure, Redis is skipped for this long (a minimal circuit breaker).
    pub cooldown: Duration,
}

/// The click pipeline from redirects to the store.
#[derive(Clone, Debug)]
pub struct ClickConfig {
    /// Clicks buffered between redirects and the batcher; when full, clicks are dropped and counted.
    pub capacity: usize,
    /// Longest time a click waits in the batcher before it is written.
    pub flush_every: Duration,
    /// Distinct (link, day) counters pending that trigger a flush before
    /// `flush_every`, and the most one upsert writes (a backlog after an
    /// outage is written in several): it bounds a statement, not the click rate.
    pub max_batch: usize,
    /// Most counters kept while the store refuses writes; a click that
    /// needs another is dropped and counted as lost.
    pub max_pending: usize,
    /// Longest the final flush at shutdown may take, over all its
    /// statements and tries; what is not written by then is counted as
    /// lost. Below the usual 30 s termination grace period.
    pub final_flush_deadline: Duration,
}

/// A token bucket per client.
#[derive(Clone, Debug)]
pub struct RateLimitConfig {
    /// Sustained requests per second.
    pub per_second: u32,
    /// Requests allowed in a burst.
    pub burst: u32,
}

/// The scramble key of the demo and the tests. It is in the source, so it
/// hides nothing: a deployment sets `SCRAMBLE_KEY`.
pub const DEMO_SCRAMBLE_KEY: u64 = 0xC0DE_5EED;

// ANCHOR: config_defaults
impl Default for Config {
    fn default() -> Self {
        Self {
            base_url: Url::parse("http://127.0.0.1:8080").expect("a valid literal"),
            store_timeout: Duration::from_millis(500),
            local_cache: Some(LocalCacheConfig::default()),
            redis: None,
            clicks: ClickConfig::default(),
            rate_limit: Some(RateLimitConfig {
                per_second: 10,
                burst: 20,
            }),
            // A person who mistypes a code misses once or twice; a scanner
            // misses on nearly every request.
            miss_limit: Some(RateLimitConfig {
                per_second: 1,
                burst: 20,
            }),
            scramble_key: DEMO_SCRAMBLE_KEY,
            trusted_proxies: TrustedProxies::default(),
            max_code_attempts: 5,
            own_hosts: Vec::new(),
            allow_private_targets: false,
        }
    }
}
// ANCHOR_END: config_defaults

// ANCHOR: cache_defaults
impl Default for LocalCacheConfig {
    fn default() -> Self {
        Self {
            capacity: 100_000,
            ttl: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(5),
        }
    }
}

impl RedisConfig {
    /// Defaults for the server at `url`.
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_string(),
            key_prefix: "url-shortener:".to_string(),
            // An hour keeps hot links in Redis, and bounds how long a stale
            // entry can survive an invalidation that failed (Redis down
            // during a delete).
            ttl: Duration::from_secs(3600),
            negative_ttl: Duration::from_secs(60),
            // A Redis GET on a LAN takes well under a millisecond; 25 ms is
            // generous and still leaves room inside a 50 ms p95 target.
            timeout: Duration::from_millis(25),
            cooldown: Duration::from_secs(1),
        }
    }
}
// ANCHOR_END: cache_defaults

// ANCHOR: click_defaults
impl Default for ClickConfig {
    fn default() -> Self {
        Self {
            capacity: 65_536,
            flush_every: Duration::from_millis(500),
            max_batch: 1_000,
            max_pending: 100_000,
            final_flush_deadline: Duration::from_secs(20),
        }
    }
}
// ANCHOR_END: click_defaults

impl Config {
    /// Reads the environment over the defaults; see [`Config::from_lookup`].
    pub fn from_env(default_base: &str) -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok(), default_base)
    }

    // ANCHOR: from_lookup
    /// Reads `BASE_URL`, `REDIS_URL`, `STORE_TIMEOUT_MS`, `SCRAMBLE_KEY`,
    /// `ALLOW_PRIVATE_TARGETS`, `TRUST_FORWARDED_FOR` and `OWN_HOSTS` through `var`. With `DATABASE_URL` set (a
    /// real deployment), `SCRAMBLE_KEY` is required: the demo key is
    /// public. (`ADDR`, `PORT` and `DATABASE_URL` itself are read by the
    /// binary.) Every refusal is the service block's `ConfigError`, so the
    /// binary exits with its configuration code before serving.
    pub fn from_lookup(
        var: impl Fn(&str) -> Option<String>,
        default_base: &str,
    ) -> anyhow::Result<Self> {
        let bad = |name: &str, value: &str, expected: &'static str| ConfigError::Var {
            name: name.to_string(),
            value: value.to_string(),
            expected,
        };
        let mut config = Self::default();
        let base = var("BASE_URL").unwrap_or_else(|| default_base.to_string());
        config.base_url = Url::parse(&base).map_err(|_| bad("BASE_URL", &base, "URL"))?;
        if let Some(url) = var("REDIS_URL") {
            config.redis = Some(RedisConfig::new(&url));
        }
        if let Some(ms) = var("STORE_TIMEOUT_MS") {
            config.store_timeout = Duration::from_millis(
                ms.parse()
                    .map_err(|_| bad("STORE_TIMEOUT_MS", &ms, "number of milliseconds"))?,
            );
        }
        match var("SCRAMBLE_KEY") {
            Some(key) => {
                config.scramble_key = u64::from_str_radix(key.trim_start_matches("0x"), 16)
                    .map_err(|_| bad("SCRAMBLE_KEY", &key, "64-bit hex key"))?;
            }
            None if var("DATABASE_URL").is_some() => Err(bad(
                "SCRAMBLE_KEY",
                "",
                "64-bit hex key, required with DATABASE_URL: \
                 the demo key is in the source, so its codes hide nothing",
            ))?,
            None => {}
        }
        config.allow_private_targets =
            block_service::var_or_in(&var, "ALLOW_PRIVATE_TARGETS", false)?;
        if let Some(list) = var("TRUST_FORWARDED_FOR") {
            config.trusted_proxies = list.parse().map_err(|_| {
                bad(
                    "TRUST_FORWARDED_FOR",
                    &list,
                    "list of proxy addresses or CIDR ranges holding only proxies, such as 192.0.2.7, 192.0.2.8",
                )
            })?;
        }
        if let Some(list) = var("OWN_HOSTS") {
            config.own_hosts = list
                .split(',')
                .map(|h| {
                    let h = h.trim();
                    let bracketed = format!("[{h}]");
                    let parsed = match h.parse::<std::net::Ipv6Addr>() {
                        Ok(_) => url::Host::parse(&bracketed),
                        Err(_) => url::Host::parse(h),
                    };
                    parsed.map(|_| h.to_string()).map_err(|_| {
                        bad(
                            "OWN_HOSTS",
                            &list,
                            "comma list of the service's other names and addresses",
                        )
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        Ok(config)
    }
    // ANCHOR_END: from_lookup
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn a_deployment_on_postgres_must_bring_its_own_scramble_key() {
        let base = "http://127.0.0.1:8080";
        let db = ("DATABASE_URL", "postgres://db/shortener");
        let err = Config::from_lookup(env(&[db]), base).expect_err("no key");
        assert!(err.to_string().contains("SCRAMBLE_KEY"), "{err}");
        let keyed =
            Config::from_lookup(env(&[db, ("SCRAMBLE_KEY", "0x1234abcd")]), base).expect("a key");
        assert_eq!(keyed.scramble_key, 0x1234_abcd);
        assert!(Config::from_lookup(env(&[db, ("SCRAMBLE_KEY", "xyz")]), base).is_err());
        // The in-memory demo may use the public key.
        let demo = Config::from_lookup(env(&[]), base).expect("demo");
        assert_eq!(demo.scramble_key, DEMO_SCRAMBLE_KEY);
    }

    #[test]
    fn a_setting_that_does_not_parse_is_the_service_blocks_config_error() {
        let base = "http://127.0.0.1:8080";
        for (name, value) in [
            ("TRUST_FORWARDED_FOR", "10.0.0.0/40"),
            ("SCRAMBLE_KEY", "xyz"),
            ("STORE_TIMEOUT_MS", "soon"),
            ("BASE_URL", "not a url"),
        ] {
            let err = Config::from_lookup(env(&[(name, value)]), base).expect_err(name);
            assert!(err.downcast_ref::<ConfigError>().is_some(), "{name}: {err}");
            assert!(err.to_string().contains(name), "{err}");
        }
        let proxies = Config::from_lookup(env(&[("TRUST_FORWARDED_FOR", "10.0.0.0/8")]), base)
            .expect("a list");
        assert!(proxies.trusted_proxies.contains([10, 1, 1, 1].into()));
        let none = Config::from_lookup(env(&[]), base).expect("default");
        assert_eq!(none.trusted_proxies, TrustedProxies::default());
    }

    /// The names and addresses that are us besides `BASE_URL`'s host (a
    /// balancer's public address, a second name) come from `OWN_HOSTS`.
    #[test]
    fn own_hosts_lists_every_other_name_of_the_service() {
        let base = "http://127.0.0.1:8080";
        let listed = Config::from_lookup(
            env(&[("OWN_HOSTS", "203.0.113.80, lb-1.elb.example.com")]),
            base,
        )
        .expect("a list");
        assert_eq!(listed.own_hosts, ["203.0.113.80", "lb-1.elb.example.com"]);
        let err = Config::from_lookup(env(&[("OWN_HOSTS", "a b,")]), base).expect_err("bad");
        assert!(err.downcast_ref::<ConfigError>().is_some(), "{err}");
    }
}
