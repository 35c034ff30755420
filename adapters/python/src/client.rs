//! The native client as the Python class `apolloconf._native.Client` (subclassed by
//! `apolloconf.Client` in `python/apolloconf/__init__.py`).

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use apolloconf::{ClientBuilder, Env, Event, Interest, ServerSource, Timing};
use pyo3::IntoPyObjectExt;
use pyo3::exceptions::{PyKeyError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use crate::convert;
use crate::values::{ChangeEvent, Namespace};

/// How long a blocking wait sleeps before it checks for signals (Ctrl-C).
const SIGNAL_SLICE: Duration = Duration::from_millis(100);

/// The merged view as a Python dict, rebuilt when the native snapshot changes.
type Merged = Option<(u64, Py<PyDict>)>;

/// A running Apollo client (see `apolloconf.Client`).
#[pyclass(
    frozen,
    subclass,
    weakref,
    module = "apolloconf._native",
    name = "Client"
)]
pub(crate) struct Client {
    inner: Arc<apolloconf::Client>,
    merged: Mutex<Merged>,
}

/// Text items of an optional iterable (a lone string counts as one item).
fn strings(v: Option<&Bound<'_, PyAny>>, what: &str) -> PyResult<Option<Vec<String>>> {
    let Some(v) = v else { return Ok(None) };
    if v.is_none() {
        return Ok(None);
    }
    if let Ok(s) = v.cast::<PyString>() {
        return Ok(Some(vec![s.to_cow()?.into_owned()]));
    }
    let mut out = Vec::new();
    for item in v.try_iter()? {
        let item = item?;
        let s: String = item.extract().map_err(|_| {
            PyTypeError::new_err(format!(
                "{what} must be strings, got {}",
                item.repr().map(|r| r.to_string()).unwrap_or_default()
            ))
        })?;
        out.push(s);
    }
    Ok(Some(out))
}

/// One path (`str` or `os.PathLike`) or an iterable of them.
fn paths(v: Option<&Bound<'_, PyAny>>, what: &str) -> PyResult<Vec<PathBuf>> {
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(Vec::new());
    };
    if let Ok(p) = v.extract::<PathBuf>() {
        return Ok(vec![p]);
    }
    v.try_iter()?
        .map(|item| {
            let item = item?;
            item.extract::<PathBuf>().map_err(|_| {
                PyTypeError::new_err(format!(
                    "{what} must be paths, got {}",
                    item.repr().map(|r| r.to_string()).unwrap_or_default()
                ))
            })
        })
        .collect()
}

fn interest(
    keys: Option<&Bound<'_, PyAny>>,
    prefixes: Option<&Bound<'_, PyAny>>,
    namespace: Option<String>,
) -> PyResult<Interest> {
    let mut i = Interest::all();
    if let Some(k) = strings(keys, "keys")? {
        i = i.keys(k);
    }
    if let Some(p) = strings(prefixes, "prefixes")? {
        i = i.prefixes(p);
    }
    if let Some(n) = namespace {
        i = i.namespace(n);
    }
    Ok(i)
}

/// `type: message` and the traceback of a Python exception, for the log.
fn describe(py: Python<'_>, err: &PyErr) -> String {
    let formatted = py.import("traceback").and_then(|tb| {
        let value = err.value(py);
        let lines = tb.call_method1(
            "format_exception",
            (value.get_type(), value, err.traceback(py)),
        )?;
        let text: Vec<String> = lines.extract()?;
        Ok(text.concat())
    });
    formatted.unwrap_or_else(|_| err.to_string())
}

fn timing(py: Python<'_>, v: Option<&Bound<'_, PyDict>>) -> PyResult<Timing> {
    let mut t = Timing::default();
    let Some(map) = v else { return Ok(t) };
    for (name, value) in map.iter() {
        let name: String = name.extract().map_err(|_| {
            convert::config_error(
                py,
                "timing knob names must be strings".into(),
                Some("timing"),
            )
        })?;
        let n: Option<u64> = value.extract().ok();
        if !n.is_some_and(|n| t.set(&name, n)) {
            return Err(convert::config_error(
                py,
                format!(
                    "bad timing option {name}: {} (known knobs: {}; values are whole numbers)",
                    value.repr().map(|r| r.to_string()).unwrap_or_default(),
                    Timing::NAMES.join(", ")
                ),
                Some("timing"),
            ));
        }
    }
    Ok(t)
}

/// A typed read as a Python object: `parsed` is `None` when the key is absent (gives
/// `default`) and `Some(None)` when its value does not parse (logged, gives `default`).
fn typed<'py, T: IntoPyObject<'py>>(
    py: Python<'py>,
    key: &str,
    parsed: Option<Option<T>>,
    what: &str,
    default: Option<Py<PyAny>>,
) -> Py<PyAny> {
    match parsed {
        Some(Some(v)) => v.into_py_any(py).unwrap_or_else(|_| py.None()),
        Some(None) => {
            log::warn!("value of {key:?} is not {what}; using the default");
            default.unwrap_or_else(|| py.None())
        }
        None => default.unwrap_or_else(|| py.None()),
    }
}

#[pymethods]
impl Client {
    #[new]
    #[pyo3(signature = (
        app_id=None, *, meta_server=None, config_service=None, cluster=None,
        data_center=None, namespaces=None, label=None, ip=None, secret=None, cache_dir=None,
        cache=true, env=None, environ=None, server_properties=None, startup_timeout=5.0,
        timing=None, tls_root_file=None, tls_root_pem=None, on_error=None, on_change=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        app_id: Option<String>,
        meta_server: Option<String>,
        config_service: Option<String>,
        cluster: Option<String>,
        data_center: Option<String>,
        namespaces: Option<&Bound<'_, PyAny>>,
        label: Option<String>,
        ip: Option<String>,
        secret: Option<String>,
        cache_dir: Option<PathBuf>,
        cache: bool,
        env: Option<String>,
        environ: Option<&Bound<'_, PyAny>>,
        server_properties: Option<PathBuf>,
        startup_timeout: f64,
        timing: Option<&Bound<'_, PyDict>>,
        tls_root_file: Option<&Bound<'_, PyAny>>,
        tls_root_pem: Option<&Bound<'_, PyAny>>,
        on_error: Option<Py<PyAny>>,
        on_change: Option<Py<PyAny>>,
    ) -> PyResult<Client> {
        crate::logbridge::refresh(py);
        let mut b: ClientBuilder = apolloconf::Client::builder();
        if let Some(v) = app_id {
            b = b.app_id(v);
        }
        if let Some(v) = meta_server {
            b = b.meta_server(v);
        }
        if let Some(v) = config_service {
            b = b.config_service(v);
        }
        if let Some(v) = cluster {
            b = b.cluster(v);
        }
        if let Some(v) = data_center {
            b = b.data_center(v);
        }
        if let Some(v) = label {
            b = b.label(v);
        }
        if let Some(v) = ip {
            b = b.ip(v);
        }
        if let Some(v) = secret {
            b = b.secret(v);
        }
        if let Some(v) = env {
            b = b.env_name(v);
        }
        if let Some(v) = cache_dir {
            b = b.cache_dir(v);
        }
        if let Some(v) = server_properties {
            b = b.server_properties(v);
        }
        b = b.cache(cache);
        let list =
            strings(namespaces, "namespaces")?.unwrap_or_else(|| vec!["application".to_string()]);
        b = b.namespaces(list);
        if let Some(map) = environ.filter(|e| !e.is_none()) {
            let mut vars = Vec::new();
            for item in map.call_method0("items")?.try_iter()? {
                let (k, v): (String, String) = item?.extract()?;
                vars.push((k, v));
            }
            b = b.environment(Env::from_map(vars));
        }
        if !(startup_timeout.is_finite() && startup_timeout >= 0.0) {
            return Err(convert::config_error(
                py,
                format!("startup_timeout must be a number of seconds >= 0, got {startup_timeout}"),
                Some("startup_timeout"),
            ));
        }
        // Any number of seconds: beyond what a Duration holds is "forever".
        b = b
            .startup_timeout(Duration::try_from_secs_f64(startup_timeout).unwrap_or(Duration::MAX));
        b = b.timing(self::timing(py, timing)?);
        for f in paths(tls_root_file, "tls_root_file")? {
            b = b.tls_root_file(f);
        }
        if let Some(pems) = tls_root_pem.filter(|p| !p.is_none()) {
            let list: Vec<Bound<'_, PyAny>> = if pems.is_instance_of::<PyList>() {
                pems.try_iter()?.collect::<PyResult<_>>()?
            } else {
                vec![pems.clone()]
            };
            for p in list {
                let bytes: Vec<u8> = match p.extract::<String>() {
                    Ok(s) => s.into_bytes(),
                    Err(_) => p.extract()?,
                };
                b = b.tls_root_pem(bytes);
            }
        }
        if let Some(cb) = on_error {
            b = b.on_event(move |event: &Event| {
                let Event::Error(e) = event else { return };
                let _ = Python::try_attach(|py| {
                    let r = convert::client_exception(py, e).and_then(|err| cb.call1(py, (err,)));
                    if let Err(err) = r {
                        log::error!("the on_error callback failed: {}", describe(py, &err));
                    }
                });
            });
        }
        if let Some(cb) = on_change {
            // From the very start: a change during start-up (cache values replaced by the
            // server's) reaches it too.
            b = b.on_event(move |event: &Event| {
                let Event::Changed(ev) = event else { return };
                let _ = Python::try_attach(|py| {
                    let r = ChangeEvent::new(py, ev)
                        .and_then(|e| Py::new(py, e))
                        .and_then(|e| cb.call1(py, (e,)));
                    if let Err(err) = r {
                        log::error!(
                            "a change listener failed on namespace {}; the client keeps going: {}",
                            ev.namespace,
                            describe(py, &err)
                        );
                    }
                });
            });
        }
        let built = py.detach(move || b.build());
        match built {
            Ok(c) => Ok(Client {
                inner: Arc::new(c),
                merged: Mutex::new(None),
            }),
            Err(e) => Err(convert::error(py, &e)),
        }
    }

    /// The merged lookup: the value from the first namespace (in configured order) that
    /// holds `key`, else `default`. Never waits for IO.
    #[pyo3(signature = (key, default=None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let d = self.merged_dict(py)?;
        match d.get_item(key)? {
            Some(v) => Ok(v),
            None => Ok(default.unwrap_or_else(|| py.None().into_bound(py))),
        }
    }

    fn __getitem__<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match self.merged_dict(py)?.get_item(key)? {
            Some(v) => Ok(v),
            None => Err(PyKeyError::new_err(key.clone().unbind())),
        }
    }

    fn __contains__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        self.merged_dict(py)?.contains(key)
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(self.merged_dict(py)?.len())
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.merged_dict(py)?.keys().try_iter().map(Bound::into_any)
    }

    /// Every key with its merged value, as a new dict (sorted by key).
    fn merged<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.merged_dict(py)?.copy()
    }

    /// The keys of the merged view, sorted.
    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        Ok(self.merged_dict(py)?.keys())
    }

    /// An integer (surrounding blanks ignored), `default` when absent; a value that is not
    /// an integer is logged and gives `default`.
    #[pyo3(signature = (key, default=None))]
    fn get_int(&self, py: Python<'_>, key: &str, default: Option<Py<PyAny>>) -> Py<PyAny> {
        let parsed = self.inner.snapshot().get_as::<i64>(key).map(Result::ok);
        typed(py, key, parsed, "an integer", default)
    }

    /// A float (surrounding blanks ignored), `default` when absent; a value that is not a
    /// number is logged and gives `default`.
    #[pyo3(signature = (key, default=None))]
    fn get_float(&self, py: Python<'_>, key: &str, default: Option<Py<PyAny>>) -> Py<PyAny> {
        let parsed = self.inner.snapshot().get_as::<f64>(key).map(Result::ok);
        typed(py, key, parsed, "a number", default)
    }

    /// `true`/`false` (any case, blanks ignored), `default` when absent; anything else is
    /// logged and gives `default`.
    #[pyo3(signature = (key, default=None))]
    fn get_bool(&self, py: Python<'_>, key: &str, default: Option<Py<PyAny>>) -> Py<PyAny> {
        let snap = self.inner.snapshot();
        let parsed = snap.get(key).map(|_| snap.get_bool(key));
        typed(py, key, parsed, "true or false", default)
    }

    /// The value split on `delimiter`, parts trimmed, empty parts dropped; `default` when
    /// absent.
    #[pyo3(signature = (key, default=None, *, delimiter=","))]
    fn get_list(
        &self,
        py: Python<'_>,
        key: &str,
        default: Option<Py<PyAny>>,
        delimiter: &str,
    ) -> PyResult<Py<PyAny>> {
        match self.inner.snapshot().get_array(key, delimiter) {
            Some(v) => Ok(PyList::new(py, v)?.into_any().unbind()),
            None => Ok(default.unwrap_or_else(|| py.None())),
        }
    }

    /// One namespace as of now (a read-only mapping).
    fn namespace(&self, py: Python<'_>, name: &str) -> PyResult<Namespace> {
        match self.inner.namespace(name) {
            Some(n) => Ok(Namespace { inner: n }),
            None => Err(convert::not_watched(py, name)),
        }
    }

    /// The watched namespaces, in lookup order.
    #[getter]
    fn namespaces(&self) -> Vec<String> {
        self.inner
            .snapshot()
            .namespaces()
            .map(|n| n.name().to_string())
            .collect()
    }

    /// Watch one more namespace (looked up after the others). Values from its cache file
    /// are served at once; the server's arrive later (no change event for that first
    /// load).
    fn watch(&self, py: Python<'_>, namespace: &str) -> PyResult<()> {
        let inner = self.inner.clone();
        let ns = namespace.to_string();
        py.detach(move || inner.watch(&ns))
            .map_err(|e| convert::error(py, &e))
    }

    /// Register `callback(event)` for changes (called on the client's listener thread).
    /// Returns its handle.
    #[pyo3(signature = (callback, keys=None, prefixes=None, namespace=None))]
    fn _add_listener(
        &self,
        py: Python<'_>,
        callback: Py<PyAny>,
        keys: Option<&Bound<'_, PyAny>>,
        prefixes: Option<&Bound<'_, PyAny>>,
        namespace: Option<String>,
    ) -> PyResult<Listener> {
        let interest = interest(keys, prefixes, namespace)?;
        let function = callback.clone_ref(py);
        let id = self.inner.on_change_fallible(interest, move |ev| {
            // While the interpreter shuts down nothing can run: the listener is skipped.
            Python::try_attach(|py| {
                let event = Py::new(py, ChangeEvent::new(py, ev).map_err(|e| describe(py, &e))?)
                    .map_err(|e| describe(py, &e))?;
                callback
                    .call1(py, (event,))
                    .map(drop)
                    .map_err(|e| describe(py, &e))
            })
            .unwrap_or(Ok(()))
        });
        Ok(Listener {
            client: Arc::downgrade(&self.inner),
            id,
            function,
        })
    }

    /// A blocking iterator of change events (see `apolloconf.Client.changes`).
    #[pyo3(signature = (keys=None, prefixes=None, namespace=None))]
    fn changes(
        &self,
        keys: Option<&Bound<'_, PyAny>>,
        prefixes: Option<&Bound<'_, PyAny>>,
        namespace: Option<String>,
    ) -> PyResult<ChangeIter> {
        let rx = self.inner.changes(interest(keys, prefixes, namespace)?);
        Ok(ChangeIter {
            rx: Mutex::new(Some(rx)),
        })
    }

    /// Request counts, the last error, the current server, per-namespace state, cache and
    /// listener counters.
    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        convert::metrics(py, &self.inner.metrics(), self.inner.is_closed())
    }

    /// The settings in use after the precedence rules (the secret only as `secret_set`).
    #[getter]
    fn settings<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let r = self.inner.settings();
        let d = PyDict::new(py);
        d.set_item("app_id", &r.app_id)?;
        let (meta, cs) = match &r.servers {
            Some(ServerSource::Meta(m)) => (Some(m.as_str()), None),
            Some(ServerSource::ConfigService(c)) => (None, Some(c.as_str())),
            _ => (None, None),
        };
        d.set_item("meta_server", meta)?;
        d.set_item("config_service", cs)?;
        d.set_item("cluster", &r.cluster)?;
        d.set_item("data_center", r.idc.as_deref())?;
        d.set_item("label", r.label.as_deref())?;
        d.set_item("secret_set", r.secret.is_some())?;
        d.set_item("cache_root", r.cache_root.to_string_lossy())?;
        d.set_item("server_properties", r.server_properties.to_string_lossy())?;
        Ok(d)
    }

    /// Whether every namespace configured at start has settled.
    #[getter]
    fn ready(&self) -> bool {
        self.inner.is_ready()
    }

    /// Whether the client was closed.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Stop every thread of the client and join it (values stay readable). Calling it
    /// again does nothing; called from a listener it returns without waiting for that
    /// listener.
    fn close(&self, py: Python<'_>) {
        let inner = self.inner.clone();
        py.detach(move || inner.close());
    }

    fn _prepare_fork(&self, py: Python<'_>) -> PyResult<()> {
        let inner = self.inner.clone();
        py.detach(move || inner.prepare_fork())
            .map_err(|e| convert::error(py, &e))
    }

    fn _after_fork_in_parent(&self) {
        self.inner.after_fork_in_parent();
    }

    fn _after_fork_in_child(&self, py: Python<'_>) -> PyResult<()> {
        // Nothing else runs in the child yet: no need to let go of the interpreter.
        self.inner
            .after_fork_in_child()
            .map_err(|e| convert::error(py, &e))
    }

    fn __repr__(&self) -> String {
        let r = self.inner.settings();
        let servers = match &r.servers {
            Some(ServerSource::Meta(m)) => format!("meta_server={m:?}"),
            Some(ServerSource::ConfigService(c)) => format!("config_service={c:?}"),
            _ => String::from("no servers"),
        };
        let names: Vec<String> = self
            .inner
            .snapshot()
            .namespaces()
            .map(|n| format!("{:?}", n.name()))
            .collect();
        format!(
            "<apolloconf.Client app_id={:?} cluster={:?} {servers} namespaces=[{}]{}>",
            r.app_id,
            r.cluster,
            names.join(", "),
            if self.inner.is_closed() {
                " closed"
            } else {
                ""
            }
        )
    }
}

impl Drop for Client {
    /// The last reference went away: close without holding the interpreter, so a
    /// listener waiting for it can finish (joining the listener thread with the
    /// interpreter held would wait forever).
    fn drop(&mut self) {
        let inner = self.inner.clone();
        let closed = Python::try_attach(|py| py.detach(|| inner.close()));
        if closed.is_none() {
            // Not attached (interpreter gone): nothing can wait for it.
            self.inner.close();
        }
    }
}

impl Client {
    /// The merged view as a dict, rebuilt only when the native snapshot changed. The lock
    /// is never held while Python code could run.
    fn merged_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let version = self.inner.snapshot_version();
        {
            let g = self.merged.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((v, d)) = &*g {
                if *v == version {
                    return Ok(d.bind(py).clone());
                }
            }
        }
        let snap = self.inner.snapshot();
        let d = PyDict::new(py);
        for (k, v) in snap.merged() {
            d.set_item(k, v)?;
        }
        let old = self
            .merged
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace((version, d.clone().unbind()));
        drop(old);
        Ok(d)
    }
}

/// A registered change listener: call `remove()` to unregister it. Calling the handle
/// calls the function (so a decorated function stays callable).
#[pyclass(frozen, module = "apolloconf", name = "Listener")]
pub(crate) struct Listener {
    client: std::sync::Weak<apolloconf::Client>,
    id: apolloconf::ListenerId,
    function: Py<PyAny>,
}

#[pymethods]
impl Listener {
    /// Unregister the listener; returns whether it was registered.
    fn remove(&self) -> bool {
        self.client
            .upgrade()
            .is_some_and(|c| c.remove_listener(self.id))
    }

    /// The function the listener calls.
    #[getter]
    fn function(&self, py: Python<'_>) -> Py<PyAny> {
        self.function.clone_ref(py)
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        args: &Bound<'py, pyo3::types::PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.function.bind(py).call(args, kwargs)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let f = self
            .function
            .bind(py)
            .repr()
            .map(|r| r.to_string())
            .unwrap_or_default();
        format!("<apolloconf.Listener {f}>")
    }
}

/// A blocking iterator of change events: `for event in client.changes(): ...`. It ends
/// when the client is closed; `get(timeout)` waits at most `timeout` seconds.
#[pyclass(frozen, module = "apolloconf", name = "ChangeIterator")]
pub(crate) struct ChangeIter {
    rx: Mutex<Option<Receiver<apolloconf::ChangeEvent>>>,
}

enum Next {
    Event(apolloconf::ChangeEvent),
    Timeout,
    End,
}

impl ChangeIter {
    /// Wait for the next event, at most `timeout` (forever when `None`), checking for
    /// signals between slices.
    fn next(&self, py: Python<'_>, timeout: Option<Duration>) -> PyResult<Next> {
        // A timeout too long for the clock to represent waits forever.
        let deadline = timeout.and_then(|t| std::time::Instant::now().checked_add(t));
        loop {
            let slice = match deadline {
                Some(d) => d
                    .saturating_duration_since(std::time::Instant::now())
                    .min(SIGNAL_SLICE),
                None => SIGNAL_SLICE,
            };
            let got = py.detach(|| {
                let g = self.rx.lock().unwrap_or_else(PoisonError::into_inner);
                match &*g {
                    None => Err(RecvTimeoutError::Disconnected),
                    Some(rx) => rx.recv_timeout(slice),
                }
            });
            match got {
                Ok(ev) => return Ok(Next::Event(ev)),
                Err(RecvTimeoutError::Disconnected) => return Ok(Next::End),
                Err(RecvTimeoutError::Timeout) => {
                    py.check_signals()?;
                    if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                        return Ok(Next::Timeout);
                    }
                }
            }
        }
    }
}

#[pymethods]
impl ChangeIter {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<ChangeEvent>> {
        match self.next(py, None)? {
            Next::Event(e) => Ok(Some(ChangeEvent::new(py, &e)?)),
            _ => Ok(None),
        }
    }

    /// The next event, waiting at most `timeout` seconds (forever when `None`); `None`
    /// when the time passed or the stream ended (the client closed).
    #[pyo3(signature = (timeout=None))]
    fn get(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<ChangeEvent>> {
        let timeout = match timeout {
            None => None,
            Some(t) if t.is_finite() && t >= 0.0 => {
                Some(Duration::try_from_secs_f64(t).unwrap_or(Duration::MAX))
            }
            Some(t) => return Err(PyValueError::new_err(format!("bad timeout {t}"))),
        };
        match self.next(py, timeout)? {
            Next::Event(e) => Ok(Some(ChangeEvent::new(py, &e)?)),
            Next::Timeout | Next::End => Ok(None),
        }
    }

    /// Stop receiving (the listener is unregistered).
    fn close(&self) {
        drop(
            self.rx
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(
        &self,
        _a: Option<Bound<'_, PyAny>>,
        _b: Option<Bound<'_, PyAny>>,
        _c: Option<Bound<'_, PyAny>>,
    ) {
        self.close();
    }
}
