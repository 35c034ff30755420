//! The WebAssembly host of `apolloconf-core`: the engine behind the `apolloconf` npm package.
//!
//! This crate is a thin, synchronous driver. It owns no protocol logic and does no I/O: it
//! drains the core's [`Output`]s into one message per drain for the JavaScript wrapper
//! (`json::drain`), and the wrapper answers with calls that become [`Input`]s.
//!
//! - The [`Client`] lives in an `Rc<RefCell<_>>`; every borrow is a `try_borrow` so that a
//!   re-entrant call from JavaScript is refused instead of panicking (a panic aborts the
//!   whole module, since the release profile uses `panic = "abort"`).
//! - Requests go out in the drain message (id, URL, headers, time limit); the wrapper's
//!   transport for the runtime performs them (`fetch`, or `node:http` in Node) and answers
//!   with [`WasmClient::respond`] or [`WasmClient::fail`].
//! - The core's deadline goes out in the message too when it moves (`timer`); the wrapper
//!   keeps one `setTimeout` for it and calls [`WasmClient::tick`]. None when the core has
//!   none, so after `close()` nothing keeps a Node or Deno process alive.
//! - YAML: this engine is built without the core's `yaml` feature. The core flattens YAML
//!   namespaces through a hook that calls the function given to [`set_yaml_flattener`]:
//!   the `flatten` of the YAML module (`wasm/yaml/`), which the wrapper loads only when a
//!   YAML namespace is configured or watched.
//! - `now` comes from the global `performance.now()`, the wall-clock anchor used for
//!   access-key signing from `Date.now()`.
//! - Nothing runs at import time: the client starts on [`WasmClient::start`].
//!
//! The JavaScript wrapper in `pkg/` is the public API; this module's exports are internal.

mod json;

mod yaml;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use apolloconf_core::{
    Client, Config, ConfigError, HttpResponse, Input, Instant, Interest, Output, RequestId, Timing,
    TransportError, TransportErrorKind,
};
use js_sys::{Function, Uint8Array};
use serde_json::Value;
use wasm_bindgen::prelude::*;

pub use yaml::set_yaml_flattener;

/// Largest delay `setTimeout` takes without wrapping around to 1 ms.
const MAX_TIMER_MS: u64 = 2_147_483_647;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn performance_now() -> f64;
}

/// Bench builds only: every allocation of the engine is counted.
#[cfg(feature = "count-allocs")]
#[global_allocator]
static ALLOCATOR: apolloconf_alloc_counter::Counting = apolloconf_alloc_counter::Counting;

/// Bench builds only: `[allocations, bytes]` requested since the module was instantiated.
#[cfg(feature = "count-allocs")]
#[wasm_bindgen(js_name = allocStats)]
pub fn alloc_stats() -> Vec<f64> {
    vec![
        apolloconf_alloc_counter::allocations() as f64,
        apolloconf_alloc_counter::bytes() as f64,
    ]
}

fn now() -> Instant {
    let ms = performance_now();
    Instant::from_millis(if ms.is_finite() && ms > 0.0 {
        ms as u64
    } else {
        0
    })
}

/// The core's timing knob names (`Timing::NAMES`), the keys of the `timing` option.
#[wasm_bindgen(js_name = timingNames)]
pub fn timing_names() -> Vec<String> {
    Timing::NAMES.iter().map(|n| n.to_string()).collect()
}

/// The default cache root (`apolloconf_core::cache::DEFAULT_ROOT`), used when no
/// directory is given and the host has no setting (`APOLLO_CACHE_DIR`).
#[wasm_bindgen(js_name = defaultCacheRoot)]
pub fn default_cache_root() -> String {
    apolloconf_core::cache::DEFAULT_ROOT.to_string()
}

/// The options the JavaScript wrapper passes (type-checked there; their values are judged
/// here and by the core). Parsed from a `serde_json::Value` by hand: a derived
/// deserializer costs several KB of wasm.
#[derive(Default)]
struct Options {
    app_id: String,
    meta_server: Option<String>,
    config_server: Option<String>,
    cluster: Option<String>,
    data_center: Option<String>,
    /// None: the core's default.
    namespaces: Option<Vec<String>>,
    label: Option<String>,
    ip: Option<String>,
    secret: Option<String>,
    /// False: edge mode (no long poll, nothing in the background; see `refresh`).
    background: bool,
    /// False: the wrapper has no cache, so cache writes are not handed to it.
    persist: bool,
    timing: Timing,
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

/// The strings of array `key` (the wrapper has checked their types), None without one.
fn strings(v: &Value, key: &str) -> Option<Vec<String>> {
    let list = v.get(key)?.as_array()?;
    Some(
        list.iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
    )
}

impl Options {
    /// The options, or the message of a `TypeError` (naming the option).
    fn parse(json: &str) -> Result<Options, String> {
        let v: Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
        if !v.is_object() {
            return Err(String::from("options must be an object"));
        }
        Ok(Options {
            app_id: text(&v, "appId").unwrap_or_default(),
            meta_server: text(&v, "metaServer"),
            config_server: text(&v, "configServer"),
            cluster: text(&v, "cluster"),
            data_center: text(&v, "dataCenter"),
            namespaces: strings(&v, "namespaces"),
            label: text(&v, "label"),
            ip: text(&v, "ip"),
            secret: text(&v, "secret"),
            background: v.get("background").and_then(Value::as_bool).unwrap_or(true),
            persist: v.get("persist").and_then(Value::as_bool).unwrap_or(true),
            timing: timing(v.get("timing").unwrap_or(&Value::Null))?,
        })
    }

    /// Which option a configuration error is about, for the message.
    fn option_of(&self, e: &ConfigError) -> &'static str {
        let servers = if self.config_server.is_some() {
            "configServer"
        } else {
            "metaServer"
        };
        match e {
            ConfigError::InvalidAppId(_) => "appId",
            ConfigError::InvalidCluster(v) => {
                let given = |o: &Option<String>| o.as_deref().is_some_and(|s| s.trim() == v.trim());
                if !given(&self.cluster) && given(&self.data_center) {
                    "dataCenter"
                } else {
                    "cluster"
                }
            }
            ConfigError::NoServers | ConfigError::InvalidUrl(_) => servers,
            ConfigError::InvalidNamespace(_) | ConfigError::DuplicateNamespace(_) => "namespaces",
            ConfigError::InvalidTiming(_) => "timing",
            _ => "options",
        }
    }

    fn config_error(&self, e: &ConfigError) -> String {
        if matches!(e, ConfigError::NoServers)
            && self.config_server.is_none()
            && self.meta_server.is_none()
        {
            return String::from("option `metaServer` or `configServer` is required");
        }
        format!("option `{}`: {e}", self.option_of(e))
    }
}

/// Timing overrides by the core's knob names (`Timing::NAMES`: durations in ms, rates
/// per second); `Timing::set` refuses unknown names.
fn timing(v: &Value) -> Result<Timing, String> {
    let mut t = Timing::default();
    let Some(map) = v.as_object() else {
        return Ok(t);
    };
    for (name, value) in map {
        let Some(n) = value.as_u64() else {
            return Err(format!("option `timing.{name}` must be an integer >= 0"));
        };
        if !t.set(name, n) {
            return Err(format!("option `timing` has an unknown field `{name}`"));
        }
    }
    Ok(t)
}

fn build_config(o: &Options) -> Config {
    let mut b = Config::builder(o.app_id.as_str());
    if let Some(list) = &o.config_server {
        b = b.config_service(list);
    } else if let Some(list) = &o.meta_server {
        b = b.meta_server(list);
    }
    if let Some(v) = &o.cluster {
        b = b.cluster(v.as_str());
    }
    if let Some(v) = &o.data_center {
        b = b.data_center(v.as_str());
    }
    if let Some(v) = &o.label {
        b = b.label(v.as_str());
    }
    if let Some(v) = &o.ip {
        b = b.ip(v.as_str());
    }
    if let Some(v) = &o.secret {
        b = b.secret(v.as_str());
    }
    if let Some(list) = &o.namespaces {
        b = b.namespaces(list.iter().cloned());
    }
    // A 53-bit random seed is plenty for instance picks and jitter.
    let seed = (js_sys::Math::random() * 9_007_199_254_740_992.0) as u64;
    b.background(o.background)
        .yaml_flattener(yaml::flatten)
        .timing(o.timing.clone())
        .seed(seed)
        .wall_clock(js_sys::Date::now() as u64)
        .build()
}

struct State {
    client: Client,
    on_drain: Function,
    started: bool,
    persist: bool,
    /// The deadline the wrapper's timer is armed for.
    timer: Option<Instant>,
    /// The requests the wrapper performs, by the number it knows them by.
    in_flight: BTreeMap<u64, RequestId>,
    /// The wrapper's listeners (and async iterators) by id, in the order of their ids.
    interests: Vec<(u32, Interest)>,
    /// What the wrapper holds of each namespace, in lookup order.
    mirror: Vec<json::Mirror>,
}

/// The engine handle the JavaScript wrapper holds. Not part of the public API.
#[wasm_bindgen]
pub struct WasmClient {
    state: Rc<RefCell<State>>,
}

fn busy() -> JsError {
    JsError::new("apolloconf: re-entrant call into the client")
}

/// A transport failure's kind as the wrapper names it.
fn transport_kind(kind: &str) -> TransportErrorKind {
    match kind {
        "connect" => TransportErrorKind::Connect,
        "timeout" => TransportErrorKind::Timeout,
        "io" => TransportErrorKind::Io,
        "too-large" => TransportErrorKind::TooLarge,
        "tls" => TransportErrorKind::Tls,
        "redirect" => TransportErrorKind::Redirect,
        _ => TransportErrorKind::Other,
    }
}

#[wasm_bindgen]
impl WasmClient {
    /// Judge `options` (JSON) and create a client that is not started yet. An error's
    /// message names the option (the wrapper throws it as a `TypeError`).
    /// `on_drain(json, blobs?)` receives one message per drain (see `json::drain`);
    /// `blobs` holds the bytes of its cache writes.
    #[wasm_bindgen(constructor)]
    pub fn new(options: &str, on_drain: Function) -> Result<WasmClient, JsError> {
        let opts = Options::parse(options).map_err(|e| JsError::new(&e))?;
        let client = Client::new(build_config(&opts), now())
            .map_err(|e| JsError::new(&opts.config_error(&e)))?;
        Ok(WasmClient {
            state: Rc::new(RefCell::new(State {
                client,
                on_drain,
                started: false,
                persist: opts.persist,
                timer: None,
                in_flight: BTreeMap::new(),
                interests: Vec::new(),
                mirror: Vec::new(),
            })),
        })
    }

    /// The watched namespaces, in lookup order.
    pub fn namespaces(&self) -> Result<Vec<String>, JsError> {
        let st = self.state.try_borrow().map_err(|_| busy())?;
        Ok(st
            .client
            .namespaces()
            .map(|n| n.name().to_string())
            .collect())
    }

    /// Whether a watched namespace is YAML: the wrapper then loads the YAML module before
    /// the namespace's values can arrive.
    #[wasm_bindgen(js_name = needsYaml)]
    pub fn needs_yaml(&self) -> Result<bool, JsError> {
        let st = self.state.try_borrow().map_err(|_| busy())?;
        Ok(st.client.namespaces().any(|n| yaml::is_yaml(n.name())))
    }

    /// The cache file name of a namespace (`{appId}+{cluster}+{namespace}.properties`), or
    /// undefined when the name is unsafe as a file name.
    #[wasm_bindgen(js_name = cacheFileName)]
    pub fn cache_file_name(&self, namespace: &str) -> Result<Option<String>, JsError> {
        let st = self.state.try_borrow().map_err(|_| busy())?;
        Ok(st.client.cache_file_name(namespace))
    }

    /// The cache file of a namespace below the cache root
    /// (`{appId}/config-cache/{file name}`), or undefined when unsafe.
    #[wasm_bindgen(js_name = cachePath)]
    pub fn cache_path(&self, namespace: &str) -> Result<Option<String>, JsError> {
        let st = self.state.try_borrow().map_err(|_| busy())?;
        Ok(st.client.cache_path(namespace))
    }

    /// Feed a namespace's cache file (at start, or after `watch`). Returns false when the
    /// namespace is not watched.
    pub fn restore(&self, namespace: &str, contents: &[u8]) -> Result<bool, JsError> {
        let ok = {
            let mut st = self.state.try_borrow_mut().map_err(|_| busy())?;
            st.client
                .handle_input(Input::CacheFile {
                    namespace,
                    contents,
                })
                .is_ok()
        };
        pump(&self.state);
        Ok(ok)
    }

    /// Start: send the first requests. Drain messages may arrive synchronously from here on.
    pub fn start(&self) -> Result<(), JsError> {
        {
            let mut st = self.state.try_borrow_mut().map_err(|_| busy())?;
            if st.started {
                return Ok(());
            }
            st.started = true;
        }
        pump(&self.state);
        Ok(())
    }

    /// Watch one more namespace (the drain message announces it). Returns whether it is
    /// YAML (see `needsYaml`).
    pub fn watch(&self, namespace: &str) -> Result<bool, JsError> {
        {
            let mut st = self.state.try_borrow_mut().map_err(|_| busy())?;
            st.client
                .watch(namespace)
                .map_err(|e| JsError::new(&e.to_string()))?;
        }
        pump(&self.state);
        Ok(yaml::is_yaml(namespace))
    }

    /// Register listener `id` with its interest as JSON: `{keys?, prefixes?, namespace?}`.
    /// Change events name the listeners they are for, with the changes each one gets.
    pub fn listen(&self, id: u32, interest: &str) -> Result<(), JsError> {
        let v: Value = serde_json::from_str(interest).map_err(|e| JsError::new(&e.to_string()))?;
        let mut i = Interest::all()
            .keys(strings(&v, "keys").unwrap_or_default())
            .prefixes(strings(&v, "prefixes").unwrap_or_default());
        if let Some(ns) = v.get("namespace").and_then(Value::as_str) {
            i = i.namespace(ns);
        }
        let mut st = self.state.try_borrow_mut().map_err(|_| busy())?;
        st.interests.retain(|(other, _)| *other != id);
        let at = st.interests.partition_point(|(other, _)| *other < id);
        st.interests.insert(at, (id, i));
        Ok(())
    }

    /// Forget listener `id`.
    pub fn unlisten(&self, id: u32) -> Result<(), JsError> {
        let mut st = self.state.try_borrow_mut().map_err(|_| busy())?;
        st.interests.retain(|(other, _)| *other != id);
        Ok(())
    }

    /// The merged lookup done inside the engine (the wrapper reads its own mirror; this
    /// exists for benchmarks and checks).
    pub fn get(&self, key: &str) -> Result<Option<String>, JsError> {
        let st = self.state.try_borrow().map_err(|_| busy())?;
        Ok(st.client.get(key).map(str::to_string))
    }

    /// Request counters and the last error, as JSON.
    pub fn metrics(&self) -> Result<String, JsError> {
        let st = self.state.try_borrow().map_err(|_| busy())?;
        Ok(json::metrics(st.client.metrics(), st.client.services()))
    }

    /// The answer of request `id` (a number of the drain message's `requests`): its status
    /// and whole body. An id the engine no longer waits for (after `close()`) is ignored.
    pub fn respond(&self, id: f64, status: u16, body: &[u8]) -> Result<(), JsError> {
        self.answer(id, Ok(HttpResponse { status, body }))
    }

    /// Request `id` got no HTTP answer: `kind` is `connect`, `timeout`, `io`, `too-large`,
    /// `tls`, `redirect` (one that the runtime hides) or anything else for `other`.
    pub fn fail(&self, id: f64, kind: &str, message: &str) -> Result<(), JsError> {
        let err = TransportError::new(transport_kind(kind), message);
        self.answer(id, Err(err))
    }

    fn answer(
        &self,
        id: f64,
        result: Result<HttpResponse<'_>, TransportError>,
    ) -> Result<(), JsError> {
        {
            let mut st = self.state.try_borrow_mut().map_err(|_| busy())?;
            // Ids are whole numbers below 2^53 (the drain message wrote them).
            let Some(id) = st.in_flight.remove(&(id as u64)) else {
                return Ok(());
            };
            // An id the core gave up already is not an error: nothing to do.
            let _ = st.client.handle_input(Input::Response {
                id,
                now: now(),
                result,
            });
        }
        pump(&self.state);
        Ok(())
    }

    /// The timer of the drain message's `timer` fired.
    pub fn tick(&self) -> Result<(), JsError> {
        {
            let mut st = self.state.try_borrow_mut().map_err(|_| busy())?;
            st.timer = None;
            let _ = st.client.handle_input(Input::Timeout(now()));
        }
        pump(&self.state);
        Ok(())
    }

    /// Check every namespace not confirmed by a server within `max_age_ms` with a
    /// conditional `/configs` request (edge mode's way to stay fresh; an early refresh in
    /// background mode). Returns how many requests were queued; the core's `refreshed`
    /// event follows when they have all finished (in this call's drain when none was).
    pub fn refresh(&self, max_age_ms: f64) -> Result<u32, JsError> {
        let queued = {
            let mut st = self.state.try_borrow_mut().map_err(|_| busy())?;
            let max_age = if max_age_ms.is_finite() && max_age_ms > 0.0 {
                max_age_ms as u64
            } else {
                0
            };
            st.client.refresh(now(), Duration::from_millis(max_age))
        };
        pump(&self.state);
        Ok(u32::try_from(queued).unwrap_or(u32::MAX))
    }

    /// Stop: forget every request (the wrapper aborts them), clear the timer, deliver the
    /// `closed` event.
    pub fn close(&self) -> Result<(), JsError> {
        {
            let mut st = self.state.try_borrow_mut().map_err(|_| busy())?;
            st.client.close();
            st.in_flight.clear();
        }
        pump(&self.state);
        Ok(())
    }
}

/// Drain the core's outputs into one message for the wrapper: the requests to perform,
/// the timer when the core's deadline moved, and the state and events (`json::drain`).
/// The wrapper gets it with no borrow held, so listeners may call back into the client.
fn pump(state: &Rc<RefCell<State>>) {
    let mut requests = Vec::new();
    let mut events = Vec::new();
    let (message, on_drain) = {
        let Ok(mut st) = state.try_borrow_mut() else {
            return;
        };
        if !st.started {
            return;
        }
        let mut timer = None;
        loop {
            match st.client.poll_output() {
                Output::Request(r) => requests.push(r),
                Output::Event(e) => events.push(e),
                Output::Timeout(deadline) => {
                    if st.timer != deadline {
                        st.timer = deadline;
                        let at = now();
                        timer = Some(deadline.map(|d| {
                            let ms = d.saturating_duration_since(at).as_millis();
                            u64::try_from(ms).unwrap_or(MAX_TIMER_MS).min(MAX_TIMER_MS)
                        }));
                    }
                    break;
                }
                // Future outputs this host does not know yet: keep draining.
                _ => {}
            }
        }
        let st = &mut *st;
        for r in &requests {
            st.in_flight.insert(r.id.get(), r.id);
        }
        let message = json::drain(
            &st.client,
            &mut st.mirror,
            &st.interests,
            st.persist,
            &json::Io {
                requests: &requests,
                timer,
            },
            &events,
        );
        (message, st.on_drain.clone())
    };
    let Some((text, blobs)) = message else { return };
    let blobs = if blobs.is_empty() {
        JsValue::UNDEFINED
    } else {
        blobs
            .iter()
            .map(|b| JsValue::from(Uint8Array::from(*b)))
            .collect::<js_sys::Array>()
            .into()
    };
    // A throwing listener must not stop the engine; the wrapper catches its own.
    let _ = on_drain.call2(&JsValue::UNDEFINED, &JsValue::from_str(&text), &blobs);
}
