//! Client configuration, validated by [`Client::new`](crate::Client::new).

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::time::Duration;
use thiserror::Error;

/// Every timing knob, with the Java client's defaults (docs/protocol.md#timing-defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timing {
    /// Fallback refresh of every namespace (`apollo.refreshInterval`): 5 min.
    pub refresh_interval: Duration,
    /// Connect timeout of `/configs` and `/notifications/v2`: 1 s.
    pub connect_timeout: Duration,
    /// Read timeout of `/configs`: 5 s.
    pub read_timeout: Duration,
    /// `/configs` requests per second per namespace (`apollo.loadConfigQPS`): 2.
    pub load_config_qps: u32,
    /// Long polls per second (`apollo.longPollQPS`): 2.
    pub long_poll_qps: u32,
    /// Discovery requests per second (`apollo.discoveryQPS`): 1.
    pub discovery_qps: u32,
    /// First retry delay after a failed `/configs`: 1 s.
    pub fetch_retry_initial: Duration,
    /// Largest retry delay after failed `/configs`: 8 s.
    pub fetch_retry_max: Duration,
    /// Delay before the first long poll (`apollo.longPollingInitialDelayInMills`): 2 s.
    pub long_poll_initial_delay: Duration,
    /// Read timeout of a long poll: 90 s (above the server's 60 s hold).
    pub long_poll_read_timeout: Duration,
    /// First back-off after a failed long poll: 1 s.
    pub long_poll_retry_initial: Duration,
    /// Largest back-off after failed long polls: 120 s.
    pub long_poll_retry_max: Duration,
    /// Connect timeout of discovery: 1 s.
    pub discovery_connect_timeout: Duration,
    /// Read timeout of discovery: 1 s.
    pub discovery_read_timeout: Duration,
    /// Re-discovery of config services: 5 min.
    pub discovery_refresh_interval: Duration,
    /// First retry delay after a failed or empty discovery: 1 s.
    pub discovery_retry_initial: Duration,
    /// Largest retry delay of discovery: 30 s.
    pub discovery_retry_max: Duration,
    /// How long after a notification an answer from an instance other than the notifying
    /// one (a 304, a 404, or an older release) is treated as lag and retried: 30 s.
    pub lag_window: Duration,
    /// Jitter: every back-off delay is drawn uniformly from `[d * (100 - jitter%) / 100, d]`.
    pub jitter_percent: u8,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            refresh_interval: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(5),
            load_config_qps: 2,
            long_poll_qps: 2,
            discovery_qps: 1,
            fetch_retry_initial: Duration::from_secs(1),
            fetch_retry_max: Duration::from_secs(8),
            long_poll_initial_delay: Duration::from_secs(2),
            long_poll_read_timeout: Duration::from_secs(90),
            long_poll_retry_initial: Duration::from_secs(1),
            long_poll_retry_max: Duration::from_secs(120),
            discovery_connect_timeout: Duration::from_secs(1),
            discovery_read_timeout: Duration::from_secs(1),
            discovery_refresh_interval: Duration::from_secs(300),
            discovery_retry_initial: Duration::from_secs(1),
            discovery_retry_max: Duration::from_secs(30),
            lag_window: Duration::from_secs(30),
            jitter_percent: 25,
        }
    }
}

impl Timing {
    /// The knobs by the names hosts expose them under (JSON options, the subject
    /// protocol): durations in milliseconds (`…Ms`), rates per second (`…Qps`).
    pub const NAMES: &'static [&'static str] = &[
        "refreshIntervalMs",
        "connectTimeoutMs",
        "readTimeoutMs",
        "loadConfigQps",
        "longPollQps",
        "discoveryQps",
        "fetchRetryInitialMs",
        "fetchRetryMaxMs",
        "longPollInitialDelayMs",
        "longPollReadTimeoutMs",
        "longPollRetryInitialMs",
        "longPollRetryMaxMs",
        "discoveryConnectTimeoutMs",
        "discoveryReadTimeoutMs",
        "discoveryRefreshIntervalMs",
        "discoveryRetryInitialMs",
        "discoveryRetryMaxMs",
        "lagWindowMs",
        "jitterPercent",
    ];

    /// Set one knob by its name in [`Timing::NAMES`]. Returns false (and changes nothing)
    /// for an unknown name. Out-of-range values are caught by `Client::new`.
    pub fn set(&mut self, name: &str, value: u64) -> bool {
        let ms = Duration::from_millis(value);
        let rate = u32::try_from(value).unwrap_or(u32::MAX);
        match name {
            "refreshIntervalMs" => self.refresh_interval = ms,
            "connectTimeoutMs" => self.connect_timeout = ms,
            "readTimeoutMs" => self.read_timeout = ms,
            "loadConfigQps" => self.load_config_qps = rate,
            "longPollQps" => self.long_poll_qps = rate,
            "discoveryQps" => self.discovery_qps = rate,
            "fetchRetryInitialMs" => self.fetch_retry_initial = ms,
            "fetchRetryMaxMs" => self.fetch_retry_max = ms,
            "longPollInitialDelayMs" => self.long_poll_initial_delay = ms,
            "longPollReadTimeoutMs" => self.long_poll_read_timeout = ms,
            "longPollRetryInitialMs" => self.long_poll_retry_initial = ms,
            "longPollRetryMaxMs" => self.long_poll_retry_max = ms,
            "discoveryConnectTimeoutMs" => self.discovery_connect_timeout = ms,
            "discoveryReadTimeoutMs" => self.discovery_read_timeout = ms,
            "discoveryRefreshIntervalMs" => self.discovery_refresh_interval = ms,
            "discoveryRetryInitialMs" => self.discovery_retry_initial = ms,
            "discoveryRetryMaxMs" => self.discovery_retry_max = ms,
            "lagWindowMs" => self.lag_window = ms,
            "jitterPercent" => self.jitter_percent = u8::try_from(value).unwrap_or(u8::MAX),
            _ => return false,
        }
        true
    }
}

/// Where the client finds config services.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Servers {
    /// Meta-server addresses; config services are discovered through `/services/config`.
    Meta(Vec<String>),
    /// Config-service URLs used directly (no discovery, as `apollo.config-service`).
    ConfigService(Vec<String>),
}

/// A client configuration. Build it with [`Config::builder`]. Its `Debug` output never
/// shows the access-key secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    pub(crate) app_id: String,
    pub(crate) cluster: String,
    pub(crate) data_center: Option<String>,
    pub(crate) servers: Servers,
    pub(crate) namespaces: Vec<String>,
    pub(crate) label: Option<String>,
    pub(crate) ip: Option<String>,
    pub(crate) secret: Option<String>,
    pub(crate) timing: Timing,
    pub(crate) seed: u64,
    pub(crate) wall_clock_ms: u64,
    pub(crate) background: bool,
    pub(crate) yaml_flattener: Option<Flattener>,
}

/// A YAML flattener: the text of a YAML namespace → its dotted properties, or why the text
/// cannot be flattened. See [`ConfigBuilder::yaml_flattener`].
pub type YamlFlattener = fn(&str) -> Result<BTreeMap<String, String>, String>;

/// A [`YamlFlattener`] in a [`Config`]: equal when it is the same function.
#[derive(Clone, Copy)]
pub(crate) struct Flattener(pub(crate) YamlFlattener);

impl PartialEq for Flattener {
    fn eq(&self, other: &Flattener) -> bool {
        core::ptr::fn_addr_eq(self.0, other.0)
    }
}

impl Eq for Flattener {}

impl Config {
    /// Start a configuration for `app_id` (cluster `default`, namespace `application`
    /// unless namespaces are given).
    pub fn builder(app_id: impl Into<String>) -> ConfigBuilder {
        ConfigBuilder {
            cluster: None,
            config: Config {
                app_id: app_id.into(),
                cluster: String::from("default"),
                data_center: None,
                servers: Servers::Meta(Vec::new()),
                namespaces: Vec::new(),
                label: None,
                ip: None,
                secret: None,
                timing: Timing::default(),
                seed: 0x5eed_a110_c0ff_ee01,
                wall_clock_ms: 0,
                background: true,
                yaml_flattener: None,
            },
        }
    }

    /// The application id.
    pub fn app_id(&self) -> &str {
        &self.app_id
    }
    /// The cluster.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }
    /// The data center (IDC), if any.
    pub fn data_center(&self) -> Option<&str> {
        self.data_center.as_deref()
    }
    /// The servers.
    pub fn servers(&self) -> &Servers {
        &self.servers
    }
    /// The namespaces watched from the start, in lookup order.
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }
    /// The gray-release label, if any.
    pub fn label(&self) -> Option<&str> {
        self.label.as_deref()
    }
    /// The ip reported to the server, if any.
    pub fn ip(&self) -> Option<&str> {
        self.ip.as_deref()
    }
    /// Whether an access-key secret is set (the secret itself is never exposed).
    pub fn has_secret(&self) -> bool {
        self.secret.is_some()
    }
    /// The timing knobs.
    pub fn timing(&self) -> &Timing {
        &self.timing
    }
    /// Whether the client long-polls and refreshes in the background (not edge mode).
    pub fn is_background(&self) -> bool {
        self.background
    }
}

impl core::fmt::Debug for Config {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Config")
            .field("app_id", &self.app_id)
            .field("cluster", &self.cluster)
            .field("data_center", &self.data_center)
            .field("servers", &self.servers)
            .field("namespaces", &self.namespaces)
            .field("label", &self.label)
            .field("ip", &self.ip)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("timing", &self.timing)
            .field("seed", &self.seed)
            .field("wall_clock_ms", &self.wall_clock_ms)
            .field("background", &self.background)
            .field("yaml_flattener", &self.yaml_flattener.is_some())
            .finish()
    }
}

/// Builder of [`Config`].
#[derive(Debug, Clone)]
pub struct ConfigBuilder {
    config: Config,
    /// The cluster as given (the data center stands in for it when absent).
    cluster: Option<String>,
}

/// The cluster a client uses: `cluster` when given (and not blank), else the data center
/// (a client in data center `dc1` reads cluster `dc1` first, falling back to `default`
/// on the server), else `default` (docs/protocol.md#settings).
pub fn effective_cluster(cluster: Option<&str>, data_center: Option<&str>) -> String {
    [cluster, data_center]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|v| !v.is_empty())
        .unwrap_or("default")
        .to_string()
}

fn split_list(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(ToString::to_string)
        .collect()
}

fn non_empty(s: String) -> Option<String> {
    if s.trim().is_empty() { None } else { Some(s) }
}

impl ConfigBuilder {
    /// The cluster (default: the data center when one is set, else `default`; see
    /// [`effective_cluster`]). A blank value counts as not given.
    pub fn cluster(mut self, cluster: impl Into<String>) -> Self {
        self.cluster = Some(cluster.into());
        self
    }
    /// The data center (IDC) used for cluster fallback and watch keys; it is also the
    /// cluster when none is given.
    pub fn data_center(mut self, idc: impl Into<String>) -> Self {
        self.config.data_center = non_empty(idc.into());
        self
    }
    /// Meta-server address(es), a comma-separated list.
    pub fn meta_server(mut self, list: &str) -> Self {
        self.config.servers = Servers::Meta(split_list(list));
        self
    }
    /// Config-service URL(s), a comma-separated list: skips discovery.
    pub fn config_service(mut self, list: &str) -> Self {
        self.config.servers = Servers::ConfigService(split_list(list));
        self
    }
    /// Add a namespace to watch from the start (lookup order is the order added).
    pub fn namespace(mut self, ns: impl Into<String>) -> Self {
        self.config.namespaces.push(ns.into());
        self
    }
    /// Add several namespaces.
    pub fn namespaces<I, S>(mut self, list: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.config
            .namespaces
            .extend(list.into_iter().map(Into::into));
        self
    }
    /// The gray-release label.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.config.label = non_empty(label.into());
        self
    }
    /// The ip reported to the server (gray rules by ip).
    pub fn ip(mut self, ip: impl Into<String>) -> Self {
        self.config.ip = non_empty(ip.into());
        self
    }
    /// The access-key secret; requests to config services are signed with it.
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.config.secret = non_empty(secret.into());
        self
    }
    /// Timing knobs.
    pub fn timing(mut self, timing: Timing) -> Self {
        self.config.timing = timing;
        self
    }
    /// Seed of the client's random choices (instance picks, jitter).
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = seed;
        self
    }
    /// Unix time in milliseconds at the `now` passed to `Client::new` (used for signing).
    pub fn wall_clock(mut self, unix_ms: u64) -> Self {
        self.config.wall_clock_ms = unix_ms;
        self
    }
    /// Whether the client keeps itself up to date in the background (the default): one
    /// long poll plus the periodic refresh. `false` is edge mode for request-scoped
    /// runtimes (workers): after the initial load nothing is sent until the host calls
    /// [`Client::refresh`](crate::Client::refresh), and failed fetches are not retried
    /// beyond one pass over the instances.
    pub fn background(mut self, on: bool) -> Self {
        self.config.background = on;
        self
    }
    /// Flatten YAML namespaces with `f` instead of the built-in flattener (the `yaml`
    /// feature's [`yaml::flatten`](crate::yaml::flatten)): for a host that ships the YAML
    /// parser apart from the engine, e.g. the WebAssembly package, which loads it only when
    /// a YAML namespace is used. `f` must follow the same rules (docs/protocol.md#yaml-flattening);
    /// an error keeps the previous properties, as a YAML syntax error does. Without the
    /// `yaml` feature and without a flattener, a YAML namespace is not flattened.
    pub fn yaml_flattener(mut self, f: YamlFlattener) -> Self {
        self.config.yaml_flattener = Some(Flattener(f));
        self
    }
    /// Finish; validation happens in `Client::new`.
    pub fn build(self) -> Config {
        let mut c = self.config;
        c.cluster = effective_cluster(self.cluster.as_deref(), c.data_center.as_deref());
        if c.namespaces.is_empty() {
            c.namespaces.push(String::from("application"));
        }
        c
    }
}

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The app id is empty or holds characters that cannot work.
    #[error("invalid app id {0:?}: it must be non-empty and free of control characters")]
    InvalidAppId(String),
    /// The cluster is empty or invalid.
    #[error("invalid cluster {0:?}")]
    InvalidCluster(String),
    /// No meta server and no config service was given.
    #[error("no meta server and no config service configured")]
    NoServers,
    /// A server address is not an absolute http(s) URL.
    #[error("invalid server URL {0:?}: expected http://host[:port][/path]")]
    InvalidUrl(String),
    /// A namespace name is empty or holds control characters.
    #[error("invalid namespace name {0:?}")]
    InvalidNamespace(String),
    /// A namespace is listed twice.
    #[error("namespace {0:?} is listed twice")]
    DuplicateNamespace(String),
    /// A timing knob is out of range.
    #[error("invalid timing: {0}")]
    InvalidTiming(&'static str),
}

fn bad_text(s: &str) -> bool {
    s.trim().is_empty() || s.chars().any(char::is_control)
}

pub(crate) fn validate_namespace(ns: &str) -> Result<(), ConfigError> {
    if bad_text(ns) || ns.len() > 512 {
        return Err(ConfigError::InvalidNamespace(ns.to_string()));
    }
    Ok(())
}

impl Config {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if bad_text(&self.app_id) {
            return Err(ConfigError::InvalidAppId(self.app_id.clone()));
        }
        if bad_text(&self.cluster) {
            return Err(ConfigError::InvalidCluster(self.cluster.clone()));
        }
        let list = match &self.servers {
            Servers::Meta(l) | Servers::ConfigService(l) => l,
        };
        if list.is_empty() {
            return Err(ConfigError::NoServers);
        }
        for u in list {
            if !crate::url::is_http_url(u) {
                return Err(ConfigError::InvalidUrl(u.clone()));
            }
        }
        for (i, ns) in self.namespaces.iter().enumerate() {
            validate_namespace(ns)?;
            if self.namespaces.iter().take(i).any(|o| o == ns) {
                return Err(ConfigError::DuplicateNamespace(ns.clone()));
            }
        }
        let t = &self.timing;
        if t.load_config_qps == 0 || t.long_poll_qps == 0 || t.discovery_qps == 0 {
            return Err(ConfigError::InvalidTiming(
                "rates must be at least 1 per second",
            ));
        }
        if t.jitter_percent > 100 {
            return Err(ConfigError::InvalidTiming(
                "jitter_percent must be at most 100",
            ));
        }
        if t.read_timeout.is_zero()
            || t.long_poll_read_timeout.is_zero()
            || t.refresh_interval.is_zero()
        {
            return Err(ConfigError::InvalidTiming(
                "timeouts and intervals must be positive",
            ));
        }
        Ok(())
    }
}
