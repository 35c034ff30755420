//! Events, change sets and interest filters (docs/protocol.md#change-events).

use alloc::string::String;
use alloc::vec::Vec;
use thiserror::Error;

use crate::io::{RequestKind, TransportError};
use crate::values::Values;

/// Where a namespace's current values came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Source {
    /// No values yet.
    None,
    /// The local cache file (the Java client's `LOCAL`).
    Cache,
    /// A config service.
    Server,
}

impl Source {
    /// `none`, `cache` or `server`: the spelling every host shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::None => "none",
            Source::Cache => "cache",
            Source::Server => "server",
        }
    }
}

/// The kind of a change of one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChangeKind {
    /// The key is new.
    Added,
    /// The value changed.
    Modified,
    /// The key is gone.
    Deleted,
}

impl ChangeKind {
    /// `added`, `modified` or `deleted`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Modified => "modified",
            ChangeKind::Deleted => "deleted",
        }
    }

    /// `ADDED`, `MODIFIED` or `DELETED`: the Java client's `PropertyChangeType` names, as
    /// the JavaScript API spells change types.
    pub fn java_name(self) -> &'static str {
        match self {
            ChangeKind::Added => "ADDED",
            ChangeKind::Modified => "MODIFIED",
            ChangeKind::Deleted => "DELETED",
        }
    }
}

/// The change of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The key.
    pub key: String,
    /// The value before (None when added).
    pub old: Option<String>,
    /// The value after (None when deleted).
    pub new: Option<String>,
    /// Added, modified or deleted.
    pub kind: ChangeKind,
}

/// The changes of one namespace from one update. Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeEvent {
    /// The namespace as configured.
    pub namespace: String,
    /// The release key after the change (None when from the cache).
    pub release_key: Option<String>,
    /// Where the new values came from.
    pub source: Source,
    /// The changed keys, sorted by key.
    pub changes: Vec<Change>,
}

/// The diff from `old` to `new`: added, deleted and modified keys, sorted by key. Both
/// are walked once, side by side, in key order.
pub fn diff(old: &Values, new: &Values) -> Vec<Change> {
    let change = |key: &str, old: Option<&str>, new: Option<&str>, kind| Change {
        key: String::from(key),
        old: old.map(String::from),
        new: new.map(String::from),
        kind,
    };
    let mut out = Vec::new();
    let (mut o, mut n) = (old.iter().peekable(), new.iter().peekable());
    loop {
        match (o.peek().copied(), n.peek().copied()) {
            (None, None) => return out,
            (Some((k, v)), None) => {
                out.push(change(k, Some(v), None, ChangeKind::Deleted));
                o.next();
            }
            (None, Some((k, v))) => {
                out.push(change(k, None, Some(v), ChangeKind::Added));
                n.next();
            }
            (Some((ok, ov)), Some((nk, nv))) => match ok.cmp(nk) {
                core::cmp::Ordering::Less => {
                    out.push(change(ok, Some(ov), None, ChangeKind::Deleted));
                    o.next();
                }
                core::cmp::Ordering::Greater => {
                    out.push(change(nk, None, Some(nv), ChangeKind::Added));
                    n.next();
                }
                core::cmp::Ordering::Equal => {
                    if ov != nv {
                        out.push(change(nk, Some(ov), Some(nv), ChangeKind::Modified));
                    }
                    o.next();
                    n.next();
                }
            },
        }
    }
}

/// Which changes a listener cares about: exact keys and key prefixes (none: every key),
/// optionally of one namespace only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interest {
    keys: Vec<String>,
    prefixes: Vec<String>,
    namespace: Option<String>,
}

impl Interest {
    /// Interest in every key.
    pub fn all() -> Interest {
        Interest::default()
    }
    /// Add exact keys.
    pub fn keys<I: IntoIterator<Item = S>, S: Into<String>>(mut self, keys: I) -> Interest {
        self.keys.extend(keys.into_iter().map(Into::into));
        self
    }
    /// Add key prefixes.
    pub fn prefixes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, prefixes: I) -> Interest {
        self.prefixes.extend(prefixes.into_iter().map(Into::into));
        self
    }
    /// Only changes of this namespace (its configured name).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Interest {
        self.namespace = Some(namespace.into());
        self
    }
    /// Whether this is interest in every key (of every namespace).
    pub fn is_all(&self) -> bool {
        self.keys.is_empty() && self.prefixes.is_empty() && self.namespace.is_none()
    }
    /// Whether a key is of interest (whatever the namespace).
    pub fn matches(&self, key: &str) -> bool {
        (self.keys.is_empty() && self.prefixes.is_empty())
            || self.keys.iter().any(|k| k == key)
            || self.prefixes.iter().any(|p| key.starts_with(p.as_str()))
    }
    /// Whether changes of `namespace` can be of interest.
    pub fn matches_namespace(&self, namespace: &str) -> bool {
        self.namespace.as_deref().is_none_or(|n| n == namespace)
    }
    /// The changes of interest in `event`, or None when there are none (the listener is
    /// then not called).
    pub fn filter<'e>(&self, event: &'e ChangeEvent) -> Option<Vec<&'e Change>> {
        if !self.matches_namespace(&event.namespace) {
            return None;
        }
        let hits: Vec<&Change> = event
            .changes
            .iter()
            .filter(|c| self.matches(&c.key))
            .collect();
        if hits.is_empty() { None } else { Some(hits) }
    }
    /// `event` narrowed to the changes of interest (what a listener receives), or None.
    pub fn select(&self, event: &ChangeEvent) -> Option<ChangeEvent> {
        let hits = self.filter(event)?;
        Some(ChangeEvent {
            namespace: event.namespace.clone(),
            release_key: event.release_key.clone(),
            source: event.source,
            changes: hits.into_iter().cloned().collect(),
        })
    }
}

/// A file the host should write (atomically) into its cache directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheWrite {
    /// The namespace as configured.
    pub namespace: String,
    /// `{appId}+{cluster}+{namespace}.properties`; free of path separators.
    pub file_name: String,
    /// The file's bytes (ASCII Java properties with `\uXXXX`, as the Java client writes).
    pub contents: Vec<u8>,
}

/// Why something failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ErrorCause {
    /// No HTTP answer.
    #[error("transport: {0}")]
    Transport(TransportError),
    /// An unexpected HTTP status.
    #[error("unexpected HTTP status {0}")]
    Status(u16),
    /// 401: the access key was rejected (wrong secret or clock skew).
    #[error("unauthorized (401): check the access-key secret and the clock")]
    Unauthorized,
    /// 404: the namespace does not exist or was never released.
    #[error("not found (404)")]
    NotFound,
    /// The body could not be understood.
    #[error("malformed response: {0}")]
    Parse(String),
    /// A cache file could not be read.
    #[error("cache file unusable: {0}")]
    Cache(String),
    /// Discovery answered no config service.
    #[error("no config service available")]
    NoServices,
    /// A server answered an older release than the one held; it was not applied.
    #[error("stale release {0:?} from a lagging server was not applied")]
    StaleRelease(String),
}

impl ErrorCause {
    /// The cause as one of the error codes every host exposes: `TIMEOUT`, `NETWORK`,
    /// `UNAUTHORIZED`, `NOT_FOUND`, `CACHE` or `BAD_RESPONSE`.
    pub fn code(&self) -> &'static str {
        match self {
            ErrorCause::Transport(t) if t.kind == crate::io::TransportErrorKind::Timeout => {
                "TIMEOUT"
            }
            ErrorCause::Transport(t) if t.kind == crate::io::TransportErrorKind::Redirect => {
                "BAD_RESPONSE"
            }
            ErrorCause::Transport(_) | ErrorCause::NoServices => "NETWORK",
            ErrorCause::Unauthorized => "UNAUTHORIZED",
            ErrorCause::NotFound => "NOT_FOUND",
            ErrorCause::Cache(_) => "CACHE",
            _ => "BAD_RESPONSE",
        }
    }
}

/// A failure the client keeps going through (it retries on its own).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}{cause}", match namespace { Some(n) => alloc::format!("namespace {n}: "), None => String::new() })]
pub struct ClientError {
    /// The namespace concerned, if any.
    pub namespace: Option<String>,
    /// The request that failed, if any.
    pub request: Option<RequestKind>,
    /// The server URL concerned, if any.
    pub url: Option<String>,
    /// The cause.
    pub cause: ErrorCause,
}

/// Something the host may act on or show.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The list of config services changed (after discovery).
    ServicesChanged {
        /// Home page URLs.
        services: Vec<String>,
    },
    /// A namespace now holds a new release (or cache values).
    Loaded {
        /// The namespace as configured.
        namespace: String,
        /// Where the values came from.
        source: Source,
        /// The release key (None when from the cache).
        release_key: Option<String>,
    },
    /// Values changed (never empty; not sent for a namespace's very first load).
    Changed(ChangeEvent),
    /// Every namespace configured at start has settled (loaded, not found, or its first
    /// round of attempts failed). Sent once.
    Ready,
    /// Persist this cache file.
    PersistCache(CacheWrite),
    /// A failure; the client retries on its own.
    Error(ClientError),
    /// Every fetch a [`Client::refresh`](crate::Client::refresh) wanted has finished
    /// (successfully or not); sent once per call, or once for calls that overlap.
    Refreshed,
    /// `close()` finished: the last event.
    Closed,
}
