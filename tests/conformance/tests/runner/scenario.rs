//! The scenario file format as types: every field and op the runner knows, and nothing
//! else. A misspelt field, an unknown op or a value of the wrong type is an error naming
//! the file and the step (see `tests/scenarios/README.md`).
//!
//! `${var}` expansion works on the JSON: steps are checked once as written (at load, before
//! anything runs) and parsed again after their strings are expanded, when they run.

use std::collections::BTreeMap;
use std::path::Path;

use apolloconf_testserver::{Endpoint, FaultAction, GrayRule};
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// A JSON object whose key order is kept as written.
pub type Obj = Map<String, Value>;

/// For `Option<Option<T>>` fields: absent is `None`, `null` is `Some(None)`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// A value kept with the JSON it was read from (for messages).
#[derive(Debug, Clone)]
pub struct Raw<T> {
    pub json: Value,
    pub val: T,
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Raw<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let json = Value::deserialize(d)?;
        let val = serde_json::from_value(json.clone()).map_err(D::Error::custom)?;
        Ok(Raw { json, val })
    }
}

/// One condition or a list of them.
#[derive(Debug, Clone)]
pub struct OneOrMany<T>(pub Vec<T>);

impl<'de, T: DeserializeOwned> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Array(a) => a
                .into_iter()
                .enumerate()
                .map(|(i, v)| serde_json::from_value(v).map_err(|e| format!("[{i}]: {e}")))
                .collect::<Result<Vec<T>, String>>()
                .map(OneOrMany)
                .map_err(D::Error::custom),
            v => serde_json::from_value(v)
                .map(|x| OneOrMany(vec![x]))
                .map_err(D::Error::custom),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The file

/// One scenario file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    pub name: String,
    pub description: String,
    #[serde(default)]
    pub server: ServerSpec,
    #[serde(default)]
    pub client: Option<Raw<ClientOptions>>,
    /// As written; each one is checked by [`parse_step`] at load.
    #[serde(default)]
    pub steps: Vec<Value>,
    /// Per subject: why the scenario cannot run there.
    #[serde(default)]
    pub skip: BTreeMap<String, String>,
    #[serde(default)]
    pub known_failure: Option<KnownFailure>,
}

/// `known_failure`: one reason for every subject, or reasons per subject.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum KnownFailure {
    All(String),
    PerSubject(BTreeMap<String, String>),
}

impl ScenarioFile {
    pub fn skip_for(&self, subject: &str) -> Option<&str> {
        self.skip.get(subject).map(String::as_str)
    }

    pub fn known_failure_for(&self, subject: &str) -> Option<&str> {
        match self.known_failure.as_ref()? {
            KnownFailure::All(s) => Some(s),
            KnownFailure::PerSubject(m) => m.get(subject).map(String::as_str),
        }
    }
}

/// `server`: the instances of the scenario's one logical Apollo.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServerSpec {
    #[serde(default)]
    pub instances: Option<Instances>,
    #[serde(default)]
    pub hold_ms: Option<u64>,
    #[serde(default)]
    pub switches: Option<SwitchesSpec>,
    #[serde(default)]
    pub persist: bool,
    /// Steps run before the first step (as written, like `steps`).
    #[serde(default)]
    pub setup: Vec<Value>,
}

/// `server.instances`: a count or one entry per instance.
#[derive(Debug)]
pub enum Instances {
    Count(usize),
    List(Vec<InstanceSpec>),
}

impl<'de> Deserialize<'de> for Instances {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Number(n) => n
                .as_u64()
                .filter(|n| *n > 0)
                .map(|n| Instances::Count(n as usize))
                .ok_or_else(|| D::Error::custom(format!("instances: {n} is not a count"))),
            Value::Array(a) => serde_json::from_value(Value::Array(a))
                .map(Instances::List)
                .map_err(D::Error::custom),
            other => Err(D::Error::custom(format!(
                "instances: a count or a list of {{\"holdMs\",\"lagMs\"}}, not {other}"
            ))),
        }
    }
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InstanceSpec {
    pub hold_ms: Option<u64>,
    pub lag_ms: Option<u64>,
}

/// Server switches (`server.switches` and the `switches` step).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SwitchesSpec {
    pub incremental_sync: Option<bool>,
    pub release_cache: Option<bool>,
    pub access_key_tolerance_ms: Option<u64>,
}

/// Start options (`client`, and `options` of a `start` step): checked here, passed to the
/// subject as written (with the runner's defaults). `timing` is passed on as is, unknown
/// names included: rejecting them is the subject's job.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)] // read as JSON; the types only check it
pub struct ClientOptions {
    pub app_id: Option<String>,
    pub config_service: Option<String>,
    pub meta_server: Option<String>,
    pub cluster: Option<String>,
    pub data_center: Option<String>,
    pub namespaces: Option<Vec<String>>,
    pub label: Option<String>,
    pub ip: Option<String>,
    pub secret: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub cache_dir: Option<Option<String>>,
    pub startup_timeout_ms: Option<u64>,
    pub timing: Option<Obj>,
    /// `false`: no cache (`cacheDir: null`).
    pub cache: Option<bool>,
}

// ---------------------------------------------------------------------------------------
// Steps

/// Error codes of the subject protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    NotFound,
    Unauthorized,
    Timeout,
    Network,
    BadResponse,
    Cache,
    Closed,
    Config,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Timeout => "TIMEOUT",
            ErrorCode::Network => "NETWORK",
            ErrorCode::BadResponse => "BAD_RESPONSE",
            ErrorCode::Cache => "CACHE",
            ErrorCode::Closed => "CLOSED",
            ErrorCode::Config => "CONFIG",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum KeyMode {
    Filter,
    Observer,
}

/// An access key: its id, or `${name}` of the `access_key_add` that made it.
#[derive(Debug, Clone)]
pub struct KeyRef(pub String);

impl<'de> Deserialize<'de> for KeyRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Number(n) if n.is_u64() => Ok(KeyRef(n.to_string())),
            Value::String(s) => Ok(KeyRef(s)),
            other => Err(D::Error::custom(format!(
                "key: an id or \"${{name}}\", not {other}"
            ))),
        }
    }
}

/// `generated` of a publish: keys `{prefix}0..` with values of `valueSize` characters.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Generated {
    pub count: u64,
    #[serde(default = "default_prefix")]
    pub prefix: String,
    #[serde(default = "default_value_size")]
    pub value_size: usize,
}

fn default_prefix() -> String {
    "k".into()
}
fn default_value_size() -> usize {
    8
}
fn yes() -> bool {
    true
}
fn default_exit_within() -> u64 {
    2000
}
fn one() -> usize {
    1
}
fn default_samples() -> u64 {
    20
}

/// One step. Admin steps name the app (default the client's), cluster (`default`),
/// namespace (`application`) and instance (`on`, default 0) where they apply.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    // --- admin steps (the test server) ---
    CreateApp {
        app: Option<String>,
    },
    CreateNamespace {
        app: Option<String>,
        name: String,
        format: Option<String>,
        #[serde(default)]
        public: bool,
        #[serde(rename = "as")]
        save_as: Option<String>,
    },
    Publish {
        app: Option<String>,
        cluster: Option<String>,
        namespace: Option<String>,
        configurations: Option<Obj>,
        generated: Option<Generated>,
        content: Option<String>,
        #[serde(rename = "as")]
        save_as: Option<String>,
    },
    #[serde(rename_all = "camelCase")]
    PublishBurst {
        app: Option<String>,
        cluster: Option<String>,
        namespace: Option<String>,
        count: u64,
        key: Option<String>,
        configurations: Option<Obj>,
        /// Pause between releases (default 0: back to back).
        #[serde(default)]
        gap_ms: u64,
        #[serde(rename = "as")]
        save_as: Option<String>,
    },
    Rollback {
        app: Option<String>,
        cluster: Option<String>,
        namespace: Option<String>,
        #[serde(rename = "as")]
        save_as: Option<String>,
    },
    GrayBranch {
        app: Option<String>,
        cluster: Option<String>,
        namespace: Option<String>,
        #[serde(rename = "as")]
        save_as: Option<String>,
    },
    GrayPublish {
        app: Option<String>,
        cluster: Option<String>,
        namespace: Option<String>,
        configurations: Option<Obj>,
        generated: Option<Generated>,
        #[serde(rename = "as")]
        save_as: Option<String>,
    },
    GrayRules {
        app: Option<String>,
        cluster: Option<String>,
        namespace: Option<String>,
        #[serde(default)]
        rules: Vec<GrayRule>,
        #[serde(rename = "as")]
        save_as: Option<String>,
    },
    GrayActive {
        app: Option<String>,
        cluster: Option<String>,
        namespace: Option<String>,
        #[serde(default = "yes")]
        active: bool,
        #[serde(rename = "as")]
        save_as: Option<String>,
    },
    GrayMerge {
        app: Option<String>,
        cluster: Option<String>,
        namespace: Option<String>,
        #[serde(rename = "as")]
        save_as: Option<String>,
    },
    GrayDelete {
        app: Option<String>,
        cluster: Option<String>,
        namespace: Option<String>,
        #[serde(rename = "as")]
        save_as: Option<String>,
    },
    AccessKeyAdd {
        app: Option<String>,
        secret: String,
        mode: Option<KeyMode>,
        #[serde(default = "yes")]
        enabled: bool,
        #[serde(rename = "as")]
        save_as: Option<String>,
    },
    AccessKeyEnable {
        app: Option<String>,
        key: KeyRef,
        #[serde(default = "yes")]
        enabled: bool,
    },
    AccessKeyRemove {
        app: Option<String>,
        key: KeyRef,
    },
    Switches(SwitchesSpec),
    Fault {
        #[serde(default)]
        on: usize,
        endpoint: Endpoint,
        action: FaultAction,
        times: Option<u32>,
    },
    ClearFaults {
        #[serde(default)]
        on: usize,
    },
    Hold {
        #[serde(default)]
        on: usize,
        ms: u64,
    },
    Lag {
        #[serde(default)]
        on: usize,
        ms: u64,
    },
    Services {
        #[serde(default)]
        on: usize,
        config: Vec<String>,
    },
    Pause {
        #[serde(default)]
        on: usize,
    },
    Resume {
        #[serde(default)]
        on: usize,
    },
    #[serde(rename_all = "camelCase")]
    Restart {
        #[serde(default)]
        on: usize,
        #[serde(default)]
        down_ms: u64,
    },
    Kill {
        #[serde(default)]
        on: usize,
    },
    #[serde(rename_all = "camelCase")]
    Revive {
        #[serde(default)]
        on: usize,
        #[serde(default)]
        from_data: bool,
    },
    ClearRequests {
        #[serde(default)]
        on: usize,
    },

    // --- client steps (the subject) ---
    #[serde(rename_all = "camelCase")]
    Start {
        options: Option<Box<Raw<ClientOptions>>>,
        expect_error: Option<ErrorCode>,
        /// With `expectError`: text the error's message must contain.
        error_contains: Option<String>,
        max_ms: Option<u64>,
        min_ms: Option<u64>,
        report: Option<String>,
    },
    #[serde(rename_all = "camelCase")]
    Watch {
        namespace: String,
        expect_error: Option<ErrorCode>,
    },
    #[serde(rename_all = "camelCase")]
    Close {
        #[serde(default = "default_exit_within")]
        exit_within_ms: u64,
        max_threads: Option<u64>,
        report: Option<String>,
    },
    WriteCache {
        app: Option<String>,
        cluster: Option<String>,
        namespace: Option<String>,
        text: String,
    },

    // --- waits and measurements ---
    WaitMs {
        ms: u64,
    },
    Mark {
        name: String,
    },
    ClearEvents {},
    Expect(Box<Expect>),
    ExpectQuiet {
        ms: u64,
        namespace: Option<String>,
    },
    #[serde(rename_all = "camelCase")]
    Latency {
        #[serde(default = "default_samples")]
        samples: u64,
        key: Option<String>,
        namespace: Option<String>,
        /// A fan-out: each sample publishes `key` in every one of these namespaces back to
        /// back and waits until all of them are seen (instead of `namespace`).
        namespaces: Option<Vec<String>>,
        /// With `namespaces`: spread a fan-out over this many long polls (default 1): each of
        /// the first `waves - 1` publishes waits until a poll is held again, the rest go
        /// back to back.
        #[serde(default = "one")]
        waves: usize,
        tolerance_ms: Option<f64>,
        /// Every sample, not only the median, must be within this.
        max_ms: Option<f64>,
        #[serde(default)]
        gap_ms: u64,
        #[serde(default)]
        on: usize,
    },
}

impl Step {
    /// The name `as` gives to what the step produced.
    pub fn save_as(&self) -> Option<&str> {
        match self {
            Step::CreateNamespace { save_as, .. }
            | Step::Publish { save_as, .. }
            | Step::PublishBurst { save_as, .. }
            | Step::Rollback { save_as, .. }
            | Step::GrayBranch { save_as, .. }
            | Step::GrayPublish { save_as, .. }
            | Step::GrayRules { save_as, .. }
            | Step::GrayActive { save_as, .. }
            | Step::GrayMerge { save_as, .. }
            | Step::GrayDelete { save_as, .. }
            | Step::AccessKeyAdd { save_as, .. } => save_as.as_deref(),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Conditions of `expect`

/// `count` / `min` / `max` of a condition that counts.
#[derive(Debug, Clone, Copy, Default)]
pub struct Count {
    pub count: Option<u64>,
    pub min: Option<u64>,
    pub max: Option<u64>,
}

impl Count {
    pub fn given(&self) -> bool {
        self.count.is_some() || self.min.is_some() || self.max.is_some()
    }

    /// Without any bound: at least one.
    pub fn or_at_least_one(self) -> Count {
        if self.given() {
            self
        } else {
            Count {
                min: Some(1),
                ..Count::default()
            }
        }
    }

    pub fn ok(&self, n: u64) -> bool {
        self.count.is_none_or(|c| n == c)
            && self.min.is_none_or(|c| n >= c)
            && self.max.is_none_or(|c| n <= c)
    }
}

impl std::fmt::Display for Count {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(c) = self.count {
            parts.push(format!("count {c}"));
        }
        if let Some(c) = self.min {
            parts.push(format!("min {c}"));
        }
        if let Some(c) = self.max {
            parts.push(format!("max {c}"));
        }
        f.write_str(&parts.join(", "))
    }
}

/// A number, or `{"min","max"}`.
#[derive(Debug, Clone, Copy)]
pub struct Bound(pub Count);

impl<'de> Deserialize<'de> for Bound {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Range {
            min: Option<u64>,
            max: Option<u64>,
        }
        match Value::deserialize(d)? {
            Value::Number(n) if n.is_u64() => Ok(Bound(Count {
                count: n.as_u64(),
                ..Count::default()
            })),
            v @ Value::Object(_) => {
                let r: Range = serde_json::from_value(v).map_err(D::Error::custom)?;
                Ok(Bound(Count {
                    count: None,
                    min: r.min,
                    max: r.max,
                }))
            }
            other => Err(D::Error::custom(format!(
                "a count or {{\"min\",\"max\"}}, not {other}"
            ))),
        }
    }
}

/// One `expect` step.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Expect {
    pub timeout_ms: Option<u64>,
    /// `get` of each key: the value, or `null` for absent.
    pub values: Option<BTreeMap<String, Option<String>>>,
    /// The namespace of `values` (default: the merged lookup).
    pub namespace: Option<String>,
    pub snapshot: Option<BTreeMap<String, Raw<NamespaceWant>>>,
    pub events: Option<OneOrMany<Raw<EventsWant>>>,
    pub errors: Option<Raw<ErrorsWant>>,
    pub requests: Option<OneOrMany<Raw<RequestsWant>>>,
    /// Fields of the `metrics` reply by dotted path: exact JSON or `{"min","max"}`.
    pub metrics: Option<Obj>,
    pub cache_file: Option<CacheFileWant>,
    pub held_polls: Option<Raw<HeldPollsWant>>,
    pub settled: Option<bool>,
    pub exited: Option<bool>,
    /// A comment for the reader.
    #[allow(dead_code)]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceWant {
    Server,
    Cache,
    None,
}

impl SourceWant {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceWant::Server => "server",
            SourceWant::Cache => "cache",
            SourceWant::None => "none",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StatusWant {
    Loading,
    Loaded,
    NotFound,
    Unavailable,
}

impl StatusWant {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusWant::Loading => "loading",
            StatusWant::Loaded => "loaded",
            StatusWant::NotFound => "not-found",
            StatusWant::Unavailable => "unavailable",
        }
    }
}

/// `snapshot.NS`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NamespaceWant {
    #[serde(default, deserialize_with = "present")]
    pub release_key: Option<Option<String>>,
    pub source: Option<SourceWant>,
    pub status: Option<StatusWant>,
    #[serde(default, deserialize_with = "present")]
    pub content: Option<Option<String>>,
    /// The exact map.
    pub properties: Option<BTreeMap<String, String>>,
    /// A subset (`null` = absent).
    pub has: Option<BTreeMap<String, Option<String>>>,
    pub size: Option<Bound>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KindWant {
    Added,
    Modified,
    Deleted,
}

impl KindWant {
    pub fn as_str(self) -> &'static str {
        match self {
            KindWant::Added => "added",
            KindWant::Modified => "modified",
            KindWant::Deleted => "deleted",
        }
    }
}

/// One change of a change event; only the fields given are compared.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeWant {
    pub key: Option<String>,
    pub kind: Option<KindWant>,
    #[serde(default, deserialize_with = "present")]
    pub old: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub new: Option<Option<String>>,
}

/// `events`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EventsWant {
    pub namespace: Option<String>,
    pub count: Option<u64>,
    pub min: Option<u64>,
    pub max: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    pub last_release_key: Option<Option<String>>,
    pub last_source: Option<SourceWant>,
    pub changes: Option<Vec<ChangeWant>>,
    pub exactly: Option<Vec<ChangeWant>>,
    pub no_change_of: Option<Vec<String>>,
}

impl EventsWant {
    pub fn count(&self) -> Count {
        Count {
            count: self.count,
            min: self.min,
            max: self.max,
        }
    }
}

/// `errors`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorsWant {
    pub code: Option<ErrorCode>,
    pub namespace: Option<String>,
    pub count: Option<u64>,
    pub min: Option<u64>,
    pub max: Option<u64>,
}

impl ErrorsWant {
    pub fn count(&self) -> Count {
        Count {
            count: self.count,
            min: self.min,
            max: self.max,
        }
        .or_at_least_one()
    }
}

/// The endpoint kinds of the request log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointKind {
    Configs,
    Notifications,
    Services,
    Configfiles,
}

impl EndpointKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointKind::Configs => "configs",
            EndpointKind::Notifications => "notifications",
            EndpointKind::Services => "services",
            EndpointKind::Configfiles => "configfiles",
        }
    }
}

/// A query parameter: `null` absent, `true`/`false` present or not, or the decoded value.
#[derive(Debug, Clone)]
pub enum ParamWant {
    Absent,
    Present(bool),
    Equals(String),
}

impl<'de> Deserialize<'de> for ParamWant {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Null => Ok(ParamWant::Absent),
            Value::Bool(b) => Ok(ParamWant::Present(b)),
            Value::String(s) => Ok(ParamWant::Equals(s)),
            other => Err(D::Error::custom(format!(
                "null, true, false or a string, not {other}"
            ))),
        }
    }
}

/// A header: `true`/`false` present or not, or the exact value.
#[derive(Debug, Clone)]
pub enum HeaderWant {
    Present(bool),
    Equals(String),
}

impl<'de> Deserialize<'de> for HeaderWant {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Bool(b) => Ok(HeaderWant::Present(b)),
            Value::String(s) => Ok(HeaderWant::Equals(s)),
            other => Err(D::Error::custom(format!(
                "true, false or a string, not {other}"
            ))),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedWant {
    #[serde(default)]
    pub secret: String,
    #[serde(default = "yes")]
    pub valid: bool,
}

/// `requests`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RequestsWant {
    #[serde(default)]
    pub on: usize,
    pub endpoint: Option<EndpointKind>,
    /// The HTTP method; when given, CORS preflights (`OPTIONS`) count too.
    pub method: Option<String>,
    pub path: Option<String>,
    pub path_contains: Option<String>,
    pub since_mark: Option<String>,
    pub query: Option<BTreeMap<String, ParamWant>>,
    pub query_contains: Option<BTreeMap<String, String>>,
    pub raw_query_contains: Option<String>,
    pub raw_query_lacks: Option<String>,
    pub headers: Option<BTreeMap<String, HeaderWant>>,
    pub header_prefix: Option<BTreeMap<String, String>>,
    pub signed: Option<SignedWant>,
    pub count: Option<u64>,
    pub min: Option<u64>,
    pub max: Option<u64>,
}

impl RequestsWant {
    pub fn count(&self) -> Count {
        Count {
            count: self.count,
            min: self.min,
            max: self.max,
        }
        .or_at_least_one()
    }
}

/// `cacheFile`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheFileWant {
    pub app: Option<String>,
    pub cluster: Option<String>,
    pub namespace: Option<String>,
    /// Every file name in the app's cache directory.
    pub files: Option<Vec<String>>,
    pub exists: Option<bool>,
    /// Parsed with `Properties.load` rules; `null` = absent.
    pub properties: Option<BTreeMap<String, Option<String>>>,
    pub contains: Option<Vec<String>>,
    pub ascii: Option<bool>,
}

/// `heldPolls`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeldPollsWant {
    #[serde(default)]
    pub on: usize,
    pub count: Option<u64>,
    pub min: Option<u64>,
    pub max: Option<u64>,
}

impl HeldPollsWant {
    pub fn count(&self) -> Count {
        Count {
            count: self.count,
            min: self.min,
            max: self.max,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Loading

/// Parses one step (as written, or after expansion).
pub fn parse_step(raw: &Value) -> Result<Step, String> {
    let op = raw.get("op").and_then(Value::as_str).unwrap_or("?");
    let step =
        serde_json::from_value::<Step>(raw.clone()).map_err(|e| format!("(op {op:?}): {e}"))?;
    check_step(&step).map_err(|e| format!("(op {op:?}): {e}"))?;
    Ok(step)
}

/// What the types alone cannot say.
fn check_step(step: &Step) -> Result<(), String> {
    match step {
        Step::Publish {
            configurations,
            generated,
            content,
            ..
        } => match (content.is_some(), configurations.is_some() || generated.is_some()) {
            (true, true) => Err("\"content\" or \"configurations\"/\"generated\", not both".into()),
            (false, false) => Err("needs \"configurations\", \"generated\" or \"content\"".into()),
            _ => Ok(()),
        },
        Step::GrayPublish {
            configurations,
            generated,
            ..
        } if configurations.is_none() && generated.is_none() => {
            Err("needs \"configurations\" or \"generated\"".into())
        }
        Step::Start {
            expect_error: None,
            error_contains: Some(_),
            ..
        } => Err("\"errorContains\" needs \"expectError\"".into()),
        Step::Expect(e) if e.namespace.is_some() && e.values.is_none() => {
            Err("\"namespace\" is the namespace of \"values\" (events, errors and requests take their own)".into())
        }
        _ => Ok(()),
    }
}

fn collect(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let p = entry?.path();
        if p.is_dir() {
            collect(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "json") {
            out.push(p);
        }
    }
    Ok(())
}

/// Reads and checks one scenario file (every step included); `rel` is its name below the
/// scenarios folder.
pub fn load_file(path: &Path, rel: &str) -> Result<ScenarioFile, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file: ScenarioFile =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if file.description.trim().is_empty() {
        return Err(format!("{}: \"description\" is empty", path.display()));
    }
    if file.name != rel {
        return Err(format!(
            "{}: \"name\" is {:?} but the file says {rel:?}",
            path.display(),
            file.name
        ));
    }
    for (i, step) in file.server.setup.iter().enumerate() {
        parse_step(step).map_err(|e| format!("{}: server.setup[{i}] {e}", path.display()))?;
    }
    for (i, step) in file.steps.iter().enumerate() {
        parse_step(step).map_err(|e| format!("{}: steps[{i}] {e}", path.display()))?;
    }
    Ok(file)
}

/// Every scenario below `root`, sorted by name.
pub fn load_all(root: &Path) -> Result<Vec<ScenarioFile>, String> {
    let mut files = Vec::new();
    collect(root, &mut files).map_err(|e| format!("{}: {e}", root.display()))?;
    files.sort();
    files
        .iter()
        .map(|f| {
            let rel = f
                .strip_prefix(root)
                .unwrap_or(f)
                .with_extension("")
                .display()
                .to_string();
            load_file(f, &rel)
        })
        .collect()
}
