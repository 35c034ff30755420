//! A watched namespace's data: values, the properties view, where they came from.

use alloc::string::{String, ToString};
use alloc::sync::Arc;

use crate::config::YamlFlattener;
use crate::event::{Change, Source, diff};
use crate::namespace::{CONTENT_KEY, Format};
use crate::time::Instant;
use crate::values::Values;

/// The state of a namespace's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Status {
    /// No answer yet.
    Loading,
    /// Values held (from the server or the cache).
    Loaded,
    /// The server answered 404: the namespace does not exist or was never released.
    NotFound,
    /// Every attempt so far failed and no values are held.
    Unavailable,
}

impl Status {
    /// `loading`, `loaded`, `not-found` or `unavailable`: the spelling every host shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Loading => "loading",
            Status::Loaded => "loaded",
            Status::NotFound => "not-found",
            Status::Unavailable => "unavailable",
        }
    }
}

/// One watched namespace: its values and where they came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    name: String,
    format: Format,
    /// Shared, so a host's copy of the namespace (a snapshot for readers) costs a
    /// reference count, not a copy of every value.
    values: Arc<Values>,
    /// The flattened document of a YAML namespace; for every other format the properties
    /// view is `values` itself (not a copy: a namespace of a million keys is held once).
    view: Option<Arc<Values>>,
    release_key: Option<String>,
    source: Source,
    pub(crate) status: Status,
    last_update: Option<Instant>,
    pub(crate) last_checked: Option<Instant>,
    pub(crate) notification_id: i64,
}

/// What installing new values changed.
pub(crate) struct Installed {
    /// The changes of the properties view.
    pub(crate) changes: alloc::vec::Vec<Change>,
    /// Whether the configurations (what the cache file holds) changed.
    pub(crate) values_changed: bool,
    /// A YAML document that did not parse (the previous view was kept).
    pub(crate) yaml_error: Option<String>,
}

impl Namespace {
    pub(crate) fn new(name: &str) -> Namespace {
        Namespace {
            name: name.to_string(),
            format: Format::of(name),
            values: Arc::new(Values::new()),
            view: None,
            release_key: None,
            source: Source::None,
            status: Status::Loading,
            last_update: None,
            last_checked: None,
            notification_id: -1,
        }
    }

    /// The name as configured (the client's spelling).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The format from the name's suffix.
    pub fn format(&self) -> Format {
        self.format
    }
    /// The configurations as the server sent them: key/value pairs for a properties
    /// namespace, the single key `content` for any other format.
    pub fn configurations(&self) -> &Values {
        &self.values
    }
    /// The properties view: for YAML the document flattened to dotted keys (`a.b`,
    /// `list[0]`) as the Java client does; the configurations otherwise.
    pub fn properties(&self) -> &Values {
        self.view.as_deref().unwrap_or(&self.values)
    }
    /// A value of the properties view.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.properties().get(key)
    }
    /// The whole text of a non-properties namespace (`.yaml`, `.json`, `.xml`, `.txt`).
    pub fn content(&self) -> Option<&str> {
        if self.format.is_properties() {
            None
        } else {
            self.values.get(CONTENT_KEY)
        }
    }
    /// The release key of the values (None when they came from the cache).
    pub fn release_key(&self) -> Option<&str> {
        self.release_key.as_deref()
    }
    /// Where the values came from.
    pub fn source(&self) -> Source {
        self.source
    }
    /// The state of the data.
    pub fn status(&self) -> Status {
        self.status
    }
    /// When the values last changed source or release.
    pub fn last_update(&self) -> Option<Instant> {
        self.last_update
    }
    /// When a config service last answered for it (200 or 304).
    pub fn last_checked(&self) -> Option<Instant> {
        self.last_checked
    }
    /// The notification id acknowledged after a successful fetch (-1 before any).
    pub fn notification_id(&self) -> i64 {
        self.notification_id
    }

    /// Replace the values (a release, or the cache file) at `now`. The changes of the
    /// properties view are computed only when `want_changes` (an event will carry them).
    pub(crate) fn install(
        &mut self,
        values: Values,
        release_key: Option<String>,
        source: Source,
        now: Instant,
        yaml: Option<YamlFlattener>,
        want_changes: bool,
    ) -> Installed {
        let mut yaml_error = None;
        let view = if self.format.is_yaml() {
            flatten_view(&values, self.properties(), yaml, &mut yaml_error)
        } else {
            None
        };
        let changes = if want_changes {
            diff(self.properties(), view.as_ref().unwrap_or(&values))
        } else {
            alloc::vec::Vec::new()
        };
        let values_changed = *self.values != values;
        self.values = Arc::new(values);
        self.view = view.map(Arc::new);
        self.release_key = release_key;
        self.source = source;
        self.status = Status::Loaded;
        self.last_update = Some(now);
        Installed {
            changes,
            values_changed,
            yaml_error,
        }
    }

    /// Take the release key out (a new release is about to replace it).
    pub(crate) fn take_release_key(&mut self) -> Option<String> {
        self.release_key.take()
    }
}

/// The properties view of a YAML namespace: its `content` flattened by `custom`, else by
/// the built-in flattener; on an error, the previous view (as the Java client).
fn flatten_view(
    values: &Values,
    previous: &Values,
    custom: Option<YamlFlattener>,
    error: &mut Option<String>,
) -> Option<Values> {
    let Some(text) = values.get(CONTENT_KEY) else {
        return Some(Values::new());
    };
    let flattened = match custom {
        Some(f) => f(text),
        // No flattener at all (None): the view is the configurations, as for other
        // formats.
        None => builtin_flatten(text)?,
    };
    let flattened = flattened.and_then(|m| Values::try_from(m).map_err(|e| e.to_string()));
    Some(match flattened {
        Ok(m) => m,
        Err(e) => {
            // As the Java client: keep the previous flattened properties.
            *error = Some(alloc::format!("YAML: {e}"));
            previous.clone()
        }
    })
}

#[cfg(feature = "yaml")]
fn builtin_flatten(
    text: &str,
) -> Option<Result<alloc::collections::BTreeMap<String, String>, String>> {
    Some(crate::yaml::flatten(text).map_err(|e| e.to_string()))
}

#[cfg(not(feature = "yaml"))]
fn builtin_flatten(
    _text: &str,
) -> Option<Result<alloc::collections::BTreeMap<String, String>, String>> {
    None
}
