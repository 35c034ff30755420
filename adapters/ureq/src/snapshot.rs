//! Immutable views of the configuration that readers share without waiting on IO.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::SystemTime;

use apolloconf_core::{ClientError, Counter, Format, Source, Status, Values};
use serde::de::DeserializeOwned;

use crate::bind::{self, BindError};

/// One namespace as of one moment: values, release key and where they came from. It
/// wraps the core's [`apolloconf_core::Namespace`] (every rule about its data lives
/// there) and adds wall-clock time and typed reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    pub(crate) inner: apolloconf_core::Namespace,
    pub(crate) last_update: Option<SystemTime>,
}

impl Namespace {
    /// The name as configured.
    pub fn name(&self) -> &str {
        self.inner.name()
    }
    /// The format, from the name's suffix (`.yaml`, `.json`, ...; properties otherwise).
    pub fn format(&self) -> Format {
        self.inner.format()
    }
    /// The configurations as the server sent them: key/value pairs for a properties
    /// namespace, the single key `content` for any other format.
    pub fn configurations(&self) -> &Values {
        self.inner.configurations()
    }
    /// The properties view: for YAML namespaces the document flattened to dotted keys
    /// (`a.b`, `list[0]`) as the Java client does; the configurations otherwise.
    pub fn properties(&self) -> &Values {
        self.inner.properties()
    }
    /// A value of the properties view.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.inner.get(key)
    }
    /// A value parsed with [`FromStr`]: `None` when the key is absent.
    pub fn get_as<T: FromStr>(&self, key: &str) -> Option<Result<T, T::Err>> {
        self.get(key).map(|v| v.trim().parse())
    }
    /// A value parsed with [`FromStr`], or `default` when it is absent or does not parse
    /// (a value that does not parse is logged).
    pub fn get_or<T: FromStr>(&self, key: &str, default: T) -> T {
        parse_or(self.get(key), key, default)
    }
    /// A boolean, case-insensitively `true`/`false` (as Java's `Boolean.parseBoolean`,
    /// except that anything else is `None` rather than `false`).
    pub fn get_bool(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(parse_bool)
    }
    /// A value split on `delimiter`, each part trimmed, empty parts dropped.
    pub fn get_array(&self, key: &str, delimiter: &str) -> Option<Vec<String>> {
        self.get(key).map(|v| split(v, delimiter))
    }
    /// The whole text of a non-properties namespace (`.yaml`, `.json`, `.xml`, `.txt`).
    pub fn content(&self) -> Option<&str> {
        self.inner.content()
    }
    /// The release key of the values (`None` when they came from the cache).
    pub fn release_key(&self) -> Option<&str> {
        self.inner.release_key()
    }
    /// Where the values came from.
    pub fn source(&self) -> Source {
        self.inner.source()
    }
    /// Loading, loaded, not found or unavailable.
    pub fn status(&self) -> Status {
        self.inner.status()
    }
    /// The core's view of the namespace.
    pub fn core(&self) -> &apolloconf_core::Namespace {
        &self.inner
    }
    /// When the values last changed source or release (wall-clock time).
    pub fn last_update(&self) -> Option<SystemTime> {
        self.last_update
    }
    /// Deserialize the namespace into `T`: the properties view (see [`crate::bind`] for the
    /// rules; YAML namespaces through their flattened keys), or for a `.json` namespace its
    /// content parsed as JSON.
    ///
    /// # Errors
    /// A [`BindError`] naming the key that did not fit (or the JSON error).
    pub fn bind<T: DeserializeOwned>(&self) -> Result<T, BindError> {
        if self.format() == Format::Json {
            let text = self.content().unwrap_or("null");
            return serde_json::from_str(text)
                .map_err(|e| BindError::new(format!("{}: {e}", self.name())));
        }
        bind::from_properties(self.properties().iter())
    }
    /// Deserialize the keys under `prefix.` (the prefix and its dot removed) into `T`.
    ///
    /// # Errors
    /// A [`BindError`] naming the key that did not fit.
    pub fn bind_prefix<T: DeserializeOwned>(&self, prefix: &str) -> Result<T, BindError> {
        let p = format!("{}.", prefix.trim_end_matches('.'));
        bind::from_properties(
            self.properties()
                .iter()
                .filter_map(|(k, v)| k.strip_prefix(p.as_str()).map(|rest| (rest, v))),
        )
    }
}

pub(crate) fn parse_bool(v: &str) -> Option<bool> {
    let t = v.trim();
    if t.eq_ignore_ascii_case("true") {
        Some(true)
    } else if t.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

pub(crate) fn split(v: &str, delimiter: &str) -> Vec<String> {
    if delimiter.is_empty() {
        return vec![v.to_string()];
    }
    v.split(delimiter)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

pub(crate) fn parse_or<T: FromStr>(value: Option<&str>, key: &str, default: T) -> T {
    match value {
        None => default,
        Some(v) => match v.trim().parse() {
            Ok(x) => x,
            Err(_) => {
                log::warn!(
                    "value of {key:?} does not parse as {}; using the default",
                    std::any::type_name::<T>()
                );
                default
            }
        },
    }
}

/// Request counts, errors and state: what the client has done so far (our answer to the
/// Java client's monitor).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Metrics {
    /// Meta-server discovery requests by outcome.
    pub discovery: Counter,
    /// `/configs` requests by outcome.
    pub configs: Counter,
    /// Long polls by outcome.
    pub notifications: Counter,
    /// The last failure the client kept going through.
    pub last_error: Option<ClientError>,
    /// The config service the long poll is pinned to (the current server).
    pub long_poll_service: Option<String>,
    /// Config services in use.
    pub services: Vec<String>,
    /// Per namespace: release key, source, status and last update.
    pub namespaces: Vec<NamespaceMetrics>,
    /// The directory cache files are written to (`None`: cache off).
    pub cache_dir: Option<PathBuf>,
    /// Cache files written.
    pub cache_writes: u64,
    /// Cache files that could not be written (values stay in memory).
    pub cache_write_failures: u64,
    /// Cache files that could not be read or parsed at start.
    pub cache_read_failures: u64,
    /// Listener calls that panicked (the client kept going).
    pub listener_panics: u64,
    /// Listener calls that returned an error ([`crate::Client::on_change_fallible`]; the
    /// client kept going).
    pub listener_errors: u64,
    /// HTTP requests currently running on worker threads.
    pub requests_in_flight: usize,
}

/// The state of one namespace in [`Metrics`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NamespaceMetrics {
    /// The namespace.
    pub namespace: String,
    /// Its release key.
    pub release_key: Option<String>,
    /// Where its values came from.
    pub source: Source,
    /// Its status.
    pub status: Status,
    /// When it last changed.
    pub last_update: Option<SystemTime>,
}

/// Everything the client holds at one moment. Cheap to get ([`crate::Client::snapshot`])
/// and immutable: consistent reads across several keys.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub(crate) namespaces: Vec<Arc<Namespace>>,
    /// With two or more namespaces, the merged lookup as a hash table: each key with the
    /// value of the first namespace (in configured order) that holds it, so a read is one
    /// hash lookup instead of one ordered-map lookup per namespace. Shared by the
    /// snapshots that follow while no namespace's values change. `None` for one namespace
    /// (the lookup then walks the namespaces: one lookup).
    pub(crate) index: Option<Arc<MergedIndex>>,
    pub(crate) core_metrics: apolloconf_core::Metrics,
    pub(crate) services: Vec<String>,
    pub(crate) ready: bool,
}

/// Key → value of the merged lookup.
pub(crate) type MergedIndex = HashMap<Box<str>, Box<str>>;

/// The [`MergedIndex`] of `namespaces`; none for a single namespace (its own ordered map
/// answers as fast, and a large namespace is not held twice).
pub(crate) fn merged_index(namespaces: &[Arc<Namespace>]) -> Option<Arc<MergedIndex>> {
    if namespaces.len() < 2 {
        return None;
    }
    let total = namespaces.iter().map(|n| n.properties().len()).sum();
    let mut index = MergedIndex::with_capacity(total);
    for ns in namespaces {
        for (key, value) in ns.properties() {
            if !index.contains_key(key) {
                index.insert(key.into(), value.into());
            }
        }
    }
    Some(Arc::new(index))
}

impl Snapshot {
    /// The merged lookup ([`apolloconf_core::view::lookup`]): the first namespace (in
    /// configured order) that holds `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        match &self.index {
            Some(index) => index.get(key).map(|v| &**v),
            None => apolloconf_core::view::lookup(self.namespaces.iter().map(|n| &n.inner), key),
        }
    }
    /// Every key with its merged value ([`apolloconf_core::view::merged`]), sorted by key.
    pub fn merged(&self) -> BTreeMap<&str, &str> {
        apolloconf_core::view::merged(self.namespaces.iter().map(|n| &n.inner))
    }
    /// The pairs of [`merged`](Snapshot::merged) in the same order, without building a
    /// map ([`apolloconf_core::view::merged_iter`]).
    pub fn merged_iter(&self) -> apolloconf_core::view::MergedIter<'_> {
        apolloconf_core::view::merged_iter(self.namespaces.iter().map(|n| &n.inner))
    }
    /// A value parsed with [`FromStr`] (merged lookup).
    pub fn get_as<T: FromStr>(&self, key: &str) -> Option<Result<T, T::Err>> {
        self.get(key).map(|v| v.trim().parse())
    }
    /// A value parsed with [`FromStr`], or `default` when absent or unparseable.
    pub fn get_or<T: FromStr>(&self, key: &str, default: T) -> T {
        parse_or(self.get(key), key, default)
    }
    /// A boolean (case-insensitive `true`/`false`).
    pub fn get_bool(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(parse_bool)
    }
    /// A value split on `delimiter` (parts trimmed, empty parts dropped).
    pub fn get_array(&self, key: &str, delimiter: &str) -> Option<Vec<String>> {
        self.get(key).map(|v| split(v, delimiter))
    }
    /// A namespace by its configured name.
    pub fn namespace(&self, name: &str) -> Option<&Namespace> {
        self.namespaces
            .iter()
            .find(|n| n.name() == name)
            .map(|n| &**n)
    }
    /// Every namespace, in lookup order.
    pub fn namespaces(&self) -> impl Iterator<Item = &Namespace> {
        self.namespaces.iter().map(|n| &**n)
    }
    /// The config services in use.
    pub fn services(&self) -> &[String] {
        &self.services
    }
    /// Whether every namespace configured at start has settled.
    pub fn is_ready(&self) -> bool {
        self.ready
    }
}
