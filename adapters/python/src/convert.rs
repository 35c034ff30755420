//! Native errors and metrics as Python exceptions and dicts.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyType};

use apolloconf::{ClientError, Counter, Metrics};

static CONFIG_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static CLOSED_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static APOLLO_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static NOT_WATCHED_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// An instance of the exception class `name` of `apolloconf.errors` (imported once).
fn exception<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyType>>,
    name: &str,
    args: (String, Option<&str>, &str),
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    cell.import(py, "apolloconf.errors", name)?
        .call(args, kwargs)
}

fn raise(
    py: Python<'_>,
    cell: &'static PyOnceLock<Py<PyType>>,
    name: &str,
    args: (String, Option<&str>, &str),
) -> PyErr {
    match exception(py, cell, name, args, None) {
        Ok(v) => PyErr::from_value(v),
        Err(e) => e,
    }
}

/// A configuration problem: `apolloconf.ConfigError` naming the setting.
pub(crate) fn config_error(py: Python<'_>, message: String, setting: Option<&str>) -> PyErr {
    raise(
        py,
        &CONFIG_ERROR,
        "ConfigError",
        (message, setting, "CONFIG"),
    )
}

/// The client is closed: `apolloconf.ClosedError`.
pub(crate) fn closed_error(py: Python<'_>) -> PyErr {
    raise(
        py,
        &CLOSED_ERROR,
        "ClosedError",
        ("the client is closed".to_string(), None, "CLOSED"),
    )
}

/// A native error as the matching Python exception (its message never holds the secret:
/// the native errors never print it).
pub(crate) fn error(py: Python<'_>, e: &apolloconf::Error) -> PyErr {
    match e {
        apolloconf::Error::Closed => closed_error(py),
        apolloconf::Error::Thread(_) | apolloconf::Error::NotPreparedForFork => raise(
            py,
            &APOLLO_ERROR,
            "ApolloError",
            (e.to_string(), None, "CLOSED"),
        ),
        _ => config_error(py, e.to_string(), e.setting()),
    }
}

/// `client.namespace(name)` of a namespace that is not watched:
/// `apolloconf.NotWatchedError`.
pub(crate) fn not_watched(py: Python<'_>, name: &str) -> PyErr {
    raise(
        py,
        &NOT_WATCHED_ERROR,
        "NotWatchedError",
        (
            format!("namespace {name:?} is not watched"),
            None,
            "NOT_FOUND",
        ),
    )
}

/// An error the client keeps going through, as the `apolloconf.ApolloError` handed to
/// `on_error` (with the native code, `namespace` and `url`).
pub(crate) fn client_exception<'py>(
    py: Python<'py>,
    e: &ClientError,
) -> PyResult<Bound<'py, PyAny>> {
    let kwargs = PyDict::new(py);
    kwargs.set_item("namespace", e.namespace.as_deref())?;
    kwargs.set_item("url", e.url.as_deref())?;
    exception(
        py,
        &APOLLO_ERROR,
        "ApolloError",
        (e.to_string(), None, e.cause.code()),
        Some(&kwargs),
    )
}

fn counter<'py>(py: Python<'py>, c: &Counter) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("sent", c.sent)?;
    d.set_item("ok", c.ok)?;
    d.set_item("not_modified", c.not_modified)?;
    d.set_item("not_found", c.not_found)?;
    d.set_item("unauthorized", c.unauthorized)?;
    d.set_item("other_status", c.other_status)?;
    d.set_item("transport_error", c.transport_error)?;
    d.set_item("parse_error", c.parse_error)?;
    Ok(d)
}

/// A client error as `{"code", "message", "namespace", "url"}`; the code is the native
/// [`apolloconf::ErrorCause::code`].
pub(crate) fn client_error<'py>(py: Python<'py>, e: &ClientError) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("code", e.cause.code())?;
    d.set_item("message", e.to_string())?;
    d.set_item("namespace", e.namespace.as_deref())?;
    d.set_item("url", e.url.as_deref())?;
    Ok(d)
}

fn unix_seconds(t: Option<std::time::SystemTime>) -> Option<f64> {
    t.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64())
}

/// The native [`Metrics`] as a dict.
pub(crate) fn metrics<'py>(
    py: Python<'py>,
    m: &Metrics,
    closed: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("discovery", counter(py, &m.discovery)?)?;
    d.set_item("configs", counter(py, &m.configs)?)?;
    d.set_item("notifications", counter(py, &m.notifications)?)?;
    d.set_item(
        "last_error",
        m.last_error
            .as_ref()
            .map(|e| client_error(py, e))
            .transpose()?,
    )?;
    d.set_item("long_poll_service", m.long_poll_service.as_deref())?;
    d.set_item("services", &m.services)?;
    let namespaces = PyDict::new(py);
    for n in &m.namespaces {
        let nd = PyDict::new(py);
        nd.set_item("release_key", n.release_key.as_deref())?;
        nd.set_item("source", n.source.as_str())?;
        nd.set_item("status", n.status.as_str())?;
        nd.set_item("last_update", unix_seconds(n.last_update))?;
        namespaces.set_item(&n.namespace, nd)?;
    }
    d.set_item("namespaces", namespaces)?;
    d.set_item(
        "cache_dir",
        m.cache_dir
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned()),
    )?;
    d.set_item("cache_writes", m.cache_writes)?;
    d.set_item("cache_write_failures", m.cache_write_failures)?;
    d.set_item("cache_read_failures", m.cache_read_failures)?;
    d.set_item("listener_errors", m.listener_errors + m.listener_panics)?;
    d.set_item("requests_in_flight", m.requests_in_flight)?;
    d.set_item("closed", closed)?;
    Ok(d)
}
