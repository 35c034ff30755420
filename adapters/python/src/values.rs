//! Read-only values handed to Python: a namespace as of one moment, change events.

use std::sync::Arc;

use pyo3::exceptions::PyKeyError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

/// One namespace as of one moment: a read-only mapping of its properties view (YAML
/// flattened to dotted keys, the single key `content` for other non-properties formats),
/// with `name`, `format`, `content`, `release_key`, `source` and `status`. It does not
/// change: take `client.namespace(name)` again for newer values.
#[pyclass(frozen, module = "apolloconf", name = "Namespace")]
pub(crate) struct Namespace {
    pub(crate) inner: Arc<apolloconf::Namespace>,
}

/// `Some("x")` as `"x"`, `None` as `None` (for reprs).
fn opt(v: Option<&str>) -> String {
    v.map_or_else(|| String::from("None"), |s| format!("{s:?}"))
}

#[pymethods]
impl Namespace {
    /// The name as configured.
    #[getter]
    fn name(&self) -> &str {
        self.inner.name()
    }
    /// `properties`, `yaml`, `yml`, `json`, `xml` or `txt`, from the name's suffix.
    #[getter]
    fn format(&self) -> String {
        format!("{:?}", self.inner.format()).to_ascii_lowercase()
    }
    /// The raw text of a non-properties namespace, else `None`.
    #[getter]
    fn content(&self) -> Option<&str> {
        self.inner.content()
    }
    /// The release key (`None` when the values came from the cache or nothing loaded).
    #[getter]
    fn release_key(&self) -> Option<&str> {
        self.inner.release_key()
    }
    /// `server`, `cache` or `none`.
    #[getter]
    fn source(&self) -> &'static str {
        self.inner.source().as_str()
    }
    /// `loading`, `loaded`, `not-found` or `unavailable`.
    #[getter]
    fn status(&self) -> &'static str {
        self.inner.status().as_str()
    }
    /// The value of `key`, or `default`.
    #[pyo3(signature = (key, default=None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        key: &str,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match self.inner.get(key) {
            Some(v) => Ok(v.into_pyobject(py)?.into_any()),
            None => Ok(default.unwrap_or_else(|| py.None().into_bound(py))),
        }
    }
    fn __getitem__(&self, key: &str) -> PyResult<&str> {
        self.inner
            .get(key)
            .ok_or_else(|| PyKeyError::new_err(key.to_string()))
    }
    fn __contains__(&self, key: &str) -> bool {
        self.inner.get(key).is_some()
    }
    fn __len__(&self) -> usize {
        self.inner.properties().len()
    }
    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.keys(py)?.try_iter().map(Bound::into_any)
    }
    /// The keys, sorted.
    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.inner.properties().keys())
    }
    /// The values, in key order.
    fn values<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.inner.properties().values())
    }
    /// `(key, value)` pairs, sorted by key.
    fn items<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.inner.properties().iter())
    }
    /// A new `dict` of the properties view.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in self.inner.properties() {
            d.set_item(k, v)?;
        }
        Ok(d)
    }
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> PyResult<bool> {
        let py = other.py();
        if let Ok(o) = other.cast::<Namespace>() {
            return Ok(self.inner.properties() == o.get().inner.properties());
        }
        self.to_dict(py)?.eq(other)
    }
    fn __repr__(&self) -> String {
        format!(
            "<Namespace {:?} {} keys, source={}, status={}, release_key={:?}>",
            self.inner.name(),
            self.inner.properties().len(),
            self.inner.source().as_str(),
            self.inner.status().as_str(),
            self.inner.release_key().unwrap_or("")
        )
    }
}

/// One changed key of a [`ChangeEvent`].
#[pyclass(frozen, module = "apolloconf", name = "Change")]
pub(crate) struct Change {
    /// The key.
    #[pyo3(get)]
    key: String,
    /// The value before (`None` when added).
    #[pyo3(get)]
    old: Option<String>,
    /// The value after (`None` when deleted).
    #[pyo3(get)]
    new: Option<String>,
    /// `added`, `modified` or `deleted`.
    #[pyo3(get)]
    kind: &'static str,
}

#[pymethods]
impl Change {
    fn __repr__(&self) -> String {
        format!(
            "Change(key={:?}, old={}, new={}, kind={:?})",
            self.key,
            opt(self.old.as_deref()),
            opt(self.new.as_deref()),
            self.kind
        )
    }
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.cast::<Change>().is_ok_and(|o| {
            let o = o.get();
            (&o.key, &o.old, &o.new, o.kind) == (&self.key, &self.old, &self.new, self.kind)
        })
    }
}

/// A namespace update that changed something: `namespace`, `release_key`, `source` and
/// `changes` (a list of [`Change`], sorted by key).
#[pyclass(frozen, module = "apolloconf", name = "ChangeEvent")]
pub(crate) struct ChangeEvent {
    /// The namespace.
    #[pyo3(get)]
    namespace: String,
    /// The new release key (`None` for values from the cache).
    #[pyo3(get)]
    release_key: Option<String>,
    /// `server` or `cache`.
    #[pyo3(get)]
    source: &'static str,
    changes: Vec<Py<Change>>,
}

impl ChangeEvent {
    pub(crate) fn new(py: Python<'_>, e: &apolloconf::ChangeEvent) -> PyResult<ChangeEvent> {
        let changes = e
            .changes
            .iter()
            .map(|c| {
                Py::new(
                    py,
                    Change {
                        key: c.key.clone(),
                        old: c.old.clone(),
                        new: c.new.clone(),
                        kind: c.kind.as_str(),
                    },
                )
            })
            .collect::<PyResult<Vec<_>>>()?;
        Ok(ChangeEvent {
            namespace: e.namespace.clone(),
            release_key: e.release_key.clone(),
            source: e.source.as_str(),
            changes,
        })
    }
}

#[pymethods]
impl ChangeEvent {
    /// The changed keys (a new list each time).
    #[getter]
    fn changes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.changes.iter().map(|c| c.clone_ref(py)))
    }
    /// The changed keys, sorted.
    #[getter]
    fn keys(&self) -> Vec<String> {
        self.changes.iter().map(|c| c.get().key.clone()).collect()
    }
    fn __len__(&self) -> usize {
        self.changes.len()
    }
    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.changes(py)?.try_iter().map(Bound::into_any)
    }
    fn __repr__(&self) -> String {
        let parts: Vec<String> = self.changes.iter().map(|c| c.get().__repr__()).collect();
        format!(
            "ChangeEvent(namespace={:?}, release_key={}, source={:?}, changes=[{}])",
            self.namespace,
            opt(self.release_key.as_deref()),
            self.source,
            parts.join(", ")
        )
    }
}
