//! The WebAssembly host of `apolloconf-core`: the engine behind the `apolloconf` npm package.
//!
//! This crate is a thin driver. It owns no protocol logic: it turns the core's
//! [`Output`]s into calls of the *global* `fetch` and `setTimeout` (never `window`, which
//! Node, Deno and workers lack or fake), and turns their results back into [`Input`]s.
//!
//! - The [`Client`] lives in an `Rc<RefCell<_>>`; every borrow is a `try_borrow` so that a
//!   re-entrant call from JavaScript is refused instead of panicking (a panic aborts the
//!   whole module, since the release profile uses `panic = "abort"`).
//! - Each request is a `spawn_local` future over `fetch` (redirects not followed) with an
//!   `AbortController` that a timer aborts after the request's connect + read timeout; the
//!   body is read as a stream and given up as soon as it passes the size limit.
//! - One timer at a time, exactly for the core's deadline (none when the core has none);
//!   `close()` clears it and aborts every fetch, so a Node or Deno process exits by itself
//!   right after `close()`.
//! - After each drain the wrapper gets one message (`json::drain`): what changed in the
//!   namespaces it mirrors and the events, each change with the listeners it is for.
//! - `now` comes from the global `performance.now()`, the wall-clock anchor used for
//!   access-key signing from `Date.now()`.
//! - Nothing runs at import time: the client starts on [`WasmClient::start`].
//!
//! The JavaScript wrapper in `pkg/` is the public API; this module's exports are internal.

mod json;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::{Rc, Weak};
use std::time::Duration;

use apolloconf_core::{
    Client, Config, ConfigError, HttpRequest, HttpResponse, Input, Instant, Interest, Output,
    Timing, TransportError, TransportErrorKind,
};
use js_sys::{Function, Promise, Uint8Array};
use serde_json::Value;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortController, Headers, RequestInit, RequestRedirect};

/// Largest response body accepted (a config namespace is far smaller): 16 MiB, the native
/// host's limit, so that every host refuses the same answers.
const MAX_BODY: usize = 16 * 1024 * 1024;
/// Largest delay `setTimeout` takes without wrapping around to 1 ms.
const MAX_TIMER_MS: f64 = 2_147_483_647.0;

#[wasm_bindgen]
extern "C" {
    /// Whatever `globalThis` is in the running host.
    type Global;

    #[wasm_bindgen(method, catch, js_name = fetch)]
    fn fetch_with_init(this: &Global, url: &str, init: &RequestInit) -> Result<Promise, JsValue>;

    /// Node returns a `Timeout` object, every other runtime a number: keep it opaque.
    #[wasm_bindgen(method, js_name = setTimeout)]
    fn set_timeout(this: &Global, handler: &Function, ms: f64) -> JsValue;

    #[wasm_bindgen(method, js_name = clearTimeout)]
    fn clear_timeout(this: &Global, id: &JsValue);

    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn performance_now() -> f64;

    /// A fetch `Response`: only what this host reads of it.
    type FetchResponse;
    #[wasm_bindgen(method, getter)]
    fn status(this: &FetchResponse) -> u16;
    /// `opaqueredirect` for a redirect that a browser neither followed nor shows.
    #[wasm_bindgen(method, getter, js_name = type)]
    fn response_type(this: &FetchResponse) -> String;
    #[wasm_bindgen(method, getter)]
    fn body(this: &FetchResponse) -> Option<BodyStream>;

    /// The body's `ReadableStream`.
    type BodyStream;
    #[wasm_bindgen(method, catch, js_name = getReader)]
    fn get_reader(this: &BodyStream) -> Result<BodyReader, JsValue>;

    type BodyReader;
    #[wasm_bindgen(method)]
    fn read(this: &BodyReader) -> Promise;
    #[wasm_bindgen(method)]
    fn cancel(this: &BodyReader) -> Promise;

    /// What `read()` resolves to: `{ done, value }`.
    type ReadChunk;
    #[wasm_bindgen(method, getter)]
    fn done(this: &ReadChunk) -> bool;
    #[wasm_bindgen(method, getter)]
    fn value(this: &ReadChunk) -> Option<Uint8Array>;
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

fn global() -> Global {
    js_sys::global().unchecked_into()
}

fn now() -> Instant {
    let ms = performance_now();
    Instant::from_millis(if ms.is_finite() && ms > 0.0 {
        ms as u64
    } else {
        0
    })
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
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
            return Err(format!(
                "option `timing.{name}` must be an integer >= 0, got {value}"
            ));
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
    /// The armed `setTimeout` handle and the deadline it stands for.
    timer: Option<(JsValue, Instant)>,
    /// Controllers of the fetches in flight, by request id.
    in_flight: BTreeMap<u64, AbortController>,
    /// The wrapper's listeners (and async iterators) by id, in the order of their ids.
    interests: Vec<(u32, Interest)>,
    /// What the wrapper holds of each namespace, in lookup order.
    mirror: Vec<json::Mirror>,
}

struct Shared {
    state: RefCell<State>,
    /// The deadline timer's handler; created once, never dropped while the client lives
    /// (dropping a closure that may be running is not allowed).
    tick: RefCell<Option<Closure<dyn FnMut()>>>,
}

/// The engine handle the JavaScript wrapper holds. Not part of the public API.
#[wasm_bindgen]
pub struct WasmClient {
    shared: Rc<Shared>,
}

fn busy() -> JsError {
    JsError::new("apolloconf: re-entrant call into the client")
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
        let shared = Rc::new(Shared {
            state: RefCell::new(State {
                client,
                on_drain,
                started: false,
                persist: opts.persist,
                timer: None,
                in_flight: BTreeMap::new(),
                interests: Vec::new(),
                mirror: Vec::new(),
            }),
            tick: RefCell::new(None),
        });
        let weak = Rc::downgrade(&shared);
        let tick = Closure::<dyn FnMut()>::new(move || on_tick(&weak));
        if let Ok(mut slot) = shared.tick.try_borrow_mut() {
            *slot = Some(tick);
        }
        Ok(WasmClient { shared })
    }

    /// The watched namespaces, in lookup order.
    pub fn namespaces(&self) -> Result<Vec<String>, JsError> {
        let st = self.shared.state.try_borrow().map_err(|_| busy())?;
        Ok(st
            .client
            .namespaces()
            .map(|n| n.name().to_string())
            .collect())
    }

    /// The cache file name of a namespace (`{appId}+{cluster}+{namespace}.properties`), or
    /// undefined when the name is unsafe as a file name.
    #[wasm_bindgen(js_name = cacheFileName)]
    pub fn cache_file_name(&self, namespace: &str) -> Result<Option<String>, JsError> {
        let st = self.shared.state.try_borrow().map_err(|_| busy())?;
        Ok(st.client.cache_file_name(namespace))
    }

    /// The cache file of a namespace below the cache root
    /// (`{appId}/config-cache/{file name}`), or undefined when unsafe.
    #[wasm_bindgen(js_name = cachePath)]
    pub fn cache_path(&self, namespace: &str) -> Result<Option<String>, JsError> {
        let st = self.shared.state.try_borrow().map_err(|_| busy())?;
        Ok(st.client.cache_path(namespace))
    }

    /// Feed a namespace's cache file (at start, or after `watch`). Returns false when the
    /// namespace is not watched.
    pub fn restore(&self, namespace: &str, contents: &[u8]) -> Result<bool, JsError> {
        let ok = {
            let mut st = self.shared.state.try_borrow_mut().map_err(|_| busy())?;
            st.client
                .handle_input(Input::CacheFile {
                    namespace,
                    contents,
                })
                .is_ok()
        };
        pump(&self.shared);
        Ok(ok)
    }

    /// Start: send the first requests. Drain messages may arrive synchronously from here on.
    pub fn start(&self) -> Result<(), JsError> {
        {
            let mut st = self.shared.state.try_borrow_mut().map_err(|_| busy())?;
            if st.started {
                return Ok(());
            }
            st.started = true;
        }
        pump(&self.shared);
        Ok(())
    }

    /// Watch one more namespace (the drain message announces it).
    pub fn watch(&self, namespace: &str) -> Result<(), JsError> {
        {
            let mut st = self.shared.state.try_borrow_mut().map_err(|_| busy())?;
            st.client
                .watch(namespace)
                .map_err(|e| JsError::new(&e.to_string()))?;
        }
        pump(&self.shared);
        Ok(())
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
        let mut st = self.shared.state.try_borrow_mut().map_err(|_| busy())?;
        st.interests.retain(|(other, _)| *other != id);
        let at = st.interests.partition_point(|(other, _)| *other < id);
        st.interests.insert(at, (id, i));
        Ok(())
    }

    /// Forget listener `id`.
    pub fn unlisten(&self, id: u32) -> Result<(), JsError> {
        let mut st = self.shared.state.try_borrow_mut().map_err(|_| busy())?;
        st.interests.retain(|(other, _)| *other != id);
        Ok(())
    }

    /// The merged lookup done inside the engine (the wrapper reads its own mirror; this
    /// exists for benchmarks and checks).
    pub fn get(&self, key: &str) -> Result<Option<String>, JsError> {
        let st = self.shared.state.try_borrow().map_err(|_| busy())?;
        Ok(st.client.get(key).map(str::to_string))
    }

    /// Request counters and the last error, as JSON.
    pub fn metrics(&self) -> Result<String, JsError> {
        let st = self.shared.state.try_borrow().map_err(|_| busy())?;
        Ok(json::metrics(st.client.metrics(), st.client.services()))
    }

    /// Check every namespace not confirmed by a server within `max_age_ms` with a
    /// conditional `/configs` request (edge mode's way to stay fresh; an early refresh in
    /// background mode). Returns how many requests were queued; the core's `refreshed`
    /// event follows when they have all finished (in this call's drain when none was).
    pub fn refresh(&self, max_age_ms: f64) -> Result<u32, JsError> {
        let queued = {
            let mut st = self.shared.state.try_borrow_mut().map_err(|_| busy())?;
            let max_age = if max_age_ms.is_finite() && max_age_ms > 0.0 {
                max_age_ms as u64
            } else {
                0
            };
            st.client.refresh(now(), Duration::from_millis(max_age))
        };
        pump(&self.shared);
        Ok(u32::try_from(queued).unwrap_or(u32::MAX))
    }

    /// Stop: abort every fetch, clear the timer, deliver the `closed` event.
    pub fn close(&self) -> Result<(), JsError> {
        let aborted = {
            let mut st = self.shared.state.try_borrow_mut().map_err(|_| busy())?;
            st.client.close();
            if let Some((id, _)) = st.timer.take() {
                global().clear_timeout(&id);
            }
            core::mem::take(&mut st.in_flight)
        };
        for ctrl in aborted.values() {
            ctrl.abort();
        }
        pump(&self.shared);
        Ok(())
    }
}

fn on_tick(weak: &Weak<Shared>) {
    let Some(shared) = weak.upgrade() else { return };
    {
        let Ok(mut st) = shared.state.try_borrow_mut() else {
            return;
        };
        st.timer = None;
        let _ = st.client.handle_input(Input::Timeout(now()));
    }
    pump(&shared);
}

/// Drain the core's outputs: start requests, arm the timer for the core's deadline, then
/// hand the drain's message to the wrapper (with no borrow held, so listeners may call
/// back into the client).
fn pump(shared: &Rc<Shared>) {
    let mut requests = Vec::new();
    let mut events = Vec::new();
    let (message, on_drain) = {
        let Ok(mut st) = shared.state.try_borrow_mut() else {
            return;
        };
        if !st.started {
            return;
        }
        loop {
            match st.client.poll_output() {
                Output::Request(r) => requests.push(r),
                Output::Event(e) => events.push(e),
                Output::Timeout(deadline) => {
                    arm(shared, &mut st, deadline);
                    break;
                }
                // Future outputs this host does not know yet: keep draining.
                _ => {}
            }
        }
        let st = &mut *st;
        let message = json::drain(
            &st.client,
            &mut st.mirror,
            &st.interests,
            st.persist,
            &events,
        );
        (message, st.on_drain.clone())
    };
    for r in requests {
        send(shared, r);
    }
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

/// Keep one timer for `deadline` (none for None), re-armed only when it moves.
fn arm(shared: &Shared, st: &mut State, deadline: Option<Instant>) {
    if let (Some((_, at)), Some(d)) = (&st.timer, deadline) {
        if *at == d {
            return;
        }
    }
    if let Some((id, _)) = st.timer.take() {
        global().clear_timeout(&id);
    }
    let Some(d) = deadline else { return };
    let Ok(tick) = shared.tick.try_borrow() else {
        return;
    };
    let Some(tick) = tick.as_ref() else { return };
    let delay = millis(d.saturating_duration_since(now())).min(MAX_TIMER_MS);
    let id = global().set_timeout(tick.as_ref().unchecked_ref(), delay);
    st.timer = Some((id, d));
}

fn send(shared: &Rc<Shared>, req: HttpRequest) {
    let HttpRequest {
        id,
        url,
        headers,
        connect_timeout,
        timeout,
        ..
    } = req;
    let (init, ctrl) = match prepare(&headers) {
        Ok(p) => p,
        Err(e) => {
            // Answered from a task, not from inside this drain.
            let err = TransportError::new(TransportErrorKind::Other, describe(&e));
            let weak = Rc::downgrade(shared);
            wasm_bindgen_futures::spawn_local(async move {
                if let Some(shared) = weak.upgrade() {
                    answer(&shared, id, Err(err));
                }
            });
            return;
        }
    };
    if let Ok(mut st) = shared.state.try_borrow_mut() {
        st.in_flight.insert(id.get(), ctrl.clone());
    }
    let timed_out = Rc::new(Cell::new(false));
    let flag = timed_out.clone();
    let abort_ctrl = ctrl.clone();
    let on_timeout = Closure::once(move || {
        flag.set(true);
        abort_ctrl.abort();
    });
    let limit = connect_timeout + timeout;
    let limit_ms = millis(limit).min(MAX_TIMER_MS);
    let timer = global().set_timeout(on_timeout.as_ref().unchecked_ref(), limit_ms);
    let weak = Rc::downgrade(shared);
    wasm_bindgen_futures::spawn_local(async move {
        let result = fetch_bytes(&url, &init, &ctrl).await;
        global().clear_timeout(&timer);
        drop(on_timeout);
        let Some(shared) = weak.upgrade() else { return };
        let result = match result {
            Ok(ok) => Ok(ok),
            Err(_) if timed_out.get() => Err(TransportError::new(
                TransportErrorKind::Timeout,
                format!("no answer within {} ms", limit.as_millis()),
            )),
            Err((kind, msg)) => Err(TransportError::new(kind, msg)),
        };
        {
            let Ok(mut st) = shared.state.try_borrow_mut() else {
                return;
            };
            if st.in_flight.remove(&id.get()).is_none() {
                // Aborted by close(): nothing to report.
                return;
            }
        }
        match result {
            Ok((status, body)) => answer(&shared, id, Ok((status, &body))),
            Err(e) => answer(&shared, id, Err(e)),
        }
    });
}

fn answer(
    shared: &Rc<Shared>,
    id: apolloconf_core::RequestId,
    result: Result<(u16, &[u8]), TransportError>,
) {
    {
        let Ok(mut st) = shared.state.try_borrow_mut() else {
            return;
        };
        let result = result.map(|(status, body)| HttpResponse { status, body });
        // An unknown id means the core gave the request up already: nothing to do.
        let _ = st.client.handle_input(Input::Response {
            id,
            now: now(),
            result,
        });
    }
    pump(shared);
}

fn prepare(headers: &[(String, String)]) -> Result<(RequestInit, AbortController), JsValue> {
    let ctrl = AbortController::new()?;
    let init = RequestInit::new();
    init.set_method("GET");
    // No host follows redirects: the access-key headers must not travel elsewhere. A 3xx
    // goes to the core as it is (a browser shows it only as an `opaqueredirect`).
    init.set_redirect(RequestRedirect::Manual);
    if !headers.is_empty() {
        let h = Headers::new()?;
        for (k, v) in headers {
            h.append(k, v)?;
        }
        init.set_headers(&h);
    }
    init.set_signal(Some(&ctrl.signal()));
    Ok((init, ctrl))
}

fn describe(e: &JsValue) -> String {
    if let Some(err) = e.dyn_ref::<js_sys::Error>() {
        let name: String = err.name().into();
        let msg: String = err.message().into();
        let cause = js_sys::Reflect::get(err, &JsValue::from_str("cause"))
            .ok()
            .filter(|c| !c.is_undefined() && !c.is_null())
            .map(|c| describe(&c));
        match cause {
            Some(c) => format!("{name}: {msg} ({c})"),
            None => format!("{name}: {msg}"),
        }
    } else if let Some(s) = e.as_string() {
        s
    } else {
        String::from("unknown error")
    }
}

type FetchError = (TransportErrorKind, String);

async fn fetch_bytes(
    url: &str,
    init: &RequestInit,
    ctrl: &AbortController,
) -> Result<(u16, Vec<u8>), FetchError> {
    let promise = global()
        .fetch_with_init(url, init)
        .map_err(|e| (TransportErrorKind::Other, describe(&e)))?;
    let resp = JsFuture::from(promise)
        .await
        .map_err(|e| (TransportErrorKind::Connect, describe(&e)))?;
    if !resp.is_object() {
        let msg = String::from("fetch returned no Response");
        return Err((TransportErrorKind::Other, msg));
    }
    let resp: FetchResponse = resp.unchecked_into();
    if resp.response_type() == "opaqueredirect" {
        ctrl.abort();
        let msg = String::from("a redirect (not followed; this runtime hides its status)");
        return Err((TransportErrorKind::Redirect, msg));
    }
    let status = resp.status();
    let body = match resp.body() {
        Some(stream) => read_body(&stream, ctrl).await?,
        None => Vec::new(),
    };
    Ok((status, body))
}

/// Read a body stream, giving up (and aborting the request) as soon as it passes
/// [`MAX_BODY`], so an oversized answer fails at once, not at the read timeout.
async fn read_body(stream: &BodyStream, ctrl: &AbortController) -> Result<Vec<u8>, FetchError> {
    let io = |e: JsValue| (TransportErrorKind::Io, describe(&e));
    let reader = stream.get_reader().map_err(io)?;
    let mut body = Vec::new();
    loop {
        let chunk: ReadChunk = JsFuture::from(reader.read())
            .await
            .map_err(io)?
            .unchecked_into();
        if chunk.done() {
            return Ok(body);
        }
        let Some(bytes) = chunk.value() else { continue };
        let len = bytes.length() as usize;
        if body.len() + len > MAX_BODY {
            // Awaited in a task of its own, so its outcome is handled and nothing waits.
            let cancel = JsFuture::from(reader.cancel());
            wasm_bindgen_futures::spawn_local(async move {
                let _ = cancel.await;
            });
            ctrl.abort();
            let msg = format!("body over {MAX_BODY} bytes");
            return Err((TransportErrorKind::TooLarge, msg));
        }
        let start = body.len();
        body.resize(start + len, 0);
        if let Some(dest) = body.get_mut(start..) {
            bytes.copy_to(dest);
        }
    }
}
