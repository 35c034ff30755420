//! The WebAssembly host of `apolloconf-core`: the engine behind the `apolloconf` npm package.
//!
//! This crate is a thin driver. It owns no protocol logic: it turns the core's
//! [`Output`]s into calls of the *global* `fetch` and `setTimeout` (never `window`, which
//! Node, Deno and workers lack or fake), and turns their results back into [`Input`]s.
//!
//! - The [`Client`] lives in an `Rc<RefCell<_>>`; every borrow is a `try_borrow` so that a
//!   re-entrant call from JavaScript is refused instead of panicking (a panic aborts the
//!   whole module, since the release profile uses `panic = "abort"`).
//! - Each request is a `spawn_local` future over `fetch` with an `AbortController` that a
//!   timer aborts after the request's connect + read timeout.
//! - One timer at a time for the core's deadline; it is replaced when the deadline moves
//!   and cleared by `close()`, which also aborts every fetch, so a Node or Deno process
//!   exits by itself right after `close()`.
//! - `now` comes from the global `performance.now()`, the wall-clock anchor used for
//!   access-key signing from `Date.now()`.
//! - Nothing runs at import time: the client starts on [`WasmClient::start`].
//!
//! The JavaScript wrapper in `pkg/` is the public API; this module's exports are internal.

mod json;

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

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::{Rc, Weak};
use std::time::Duration;

use apolloconf_core::{
    Client, Config, HttpRequest, HttpResponse, Input, Instant, Output, Timing, TransportError,
    TransportErrorKind,
};
use js_sys::{Function, Promise, Uint8Array};
use serde_json::Value;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortController, Headers, RequestInit, Response};

/// Largest response body accepted (a config namespace is far smaller): 16 MiB, the native
/// host's limit, so that every host refuses the same answers.
const MAX_BODY: u32 = 16 * 1024 * 1024;
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

/// The options the JavaScript wrapper passes (already type-checked there). Parsed from a
/// `serde_json::Value` by hand: a derived deserializer costs several KB of wasm.
#[derive(Default)]
struct Options {
    app_id: String,
    meta_server: Option<String>,
    config_server: Option<String>,
    cluster: Option<String>,
    data_center: Option<String>,
    namespaces: Vec<String>,
    label: Option<String>,
    ip: Option<String>,
    secret: Option<String>,
    /// False: edge mode (no long poll, nothing in the background; see `refresh`).
    background: bool,
    timing: Timing,
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

impl Options {
    fn parse(json: &str) -> Result<Options, String> {
        let v: Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
        if !v.is_object() {
            return Err(String::from("options must be an object"));
        }
        let namespaces = match v.get("namespaces") {
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        };
        Ok(Options {
            app_id: text(&v, "appId").unwrap_or_default(),
            meta_server: text(&v, "metaServer"),
            config_server: text(&v, "configServer"),
            cluster: text(&v, "cluster"),
            data_center: text(&v, "dataCenter"),
            namespaces,
            label: text(&v, "label"),
            ip: text(&v, "ip"),
            secret: text(&v, "secret"),
            background: v.get("background").and_then(Value::as_bool).unwrap_or(true),
            timing: timing(v.get("timing").unwrap_or(&Value::Null))?,
        })
    }
}

/// Timing overrides by the core's knob names (`Timing::NAMES`: durations in ms, rates
/// per second). The JS wrapper already rejects unknown names with a `TypeError`; this
/// checks again so the engine never silently ignores one.
fn timing(v: &Value) -> Result<Timing, String> {
    let mut t = Timing::default();
    let Some(map) = v.as_object() else {
        return Ok(t);
    };
    for (name, value) in map {
        if !value.as_u64().is_some_and(|n| t.set(name, n)) {
            return Err(format!("bad timing option {name}: {value}"));
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
    // The Java client's rule (apollo.cluster, else the idc, else default), as the native
    // host resolves it.
    let cluster = [&o.cluster, &o.data_center]
        .into_iter()
        .filter_map(|v| v.as_deref())
        .find(|v| !v.trim().is_empty());
    if let Some(c) = cluster {
        b = b.cluster(c);
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
    b = b.background(o.background);
    // A 53-bit random seed is plenty for instance picks and jitter.
    let seed = (js_sys::Math::random() * 9_007_199_254_740_992.0) as u64;
    b.namespaces(o.namespaces.iter().cloned())
        .timing(o.timing.clone())
        .seed(seed)
        .wall_clock(js_sys::Date::now() as u64)
        .build()
}

struct State {
    client: Client,
    on_event: Function,
    started: bool,
    /// Whether the client keeps itself up to date (false: edge mode).
    background: bool,
    /// Whether a fetch was queued or in flight after the last drain.
    refreshing: bool,
    /// The armed `setTimeout` handle and the deadline it stands for.
    timer: Option<(JsValue, Instant)>,
    /// Controllers of the fetches in flight, by request id.
    in_flight: BTreeMap<u64, AbortController>,
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
    /// Validate `options` (JSON) and create a client that is not started yet.
    /// `on_event(json, bytes?)` receives every event; `bytes` is set for cache writes.
    #[wasm_bindgen(constructor)]
    pub fn new(options: &str, on_event: Function) -> Result<WasmClient, JsError> {
        let opts = Options::parse(options)
            .map_err(|e| JsError::new(&format!("apolloconf: bad options: {e}")))?;
        let client =
            Client::new(build_config(&opts), now()).map_err(|e| JsError::new(&e.to_string()))?;
        let shared = Rc::new(Shared {
            state: RefCell::new(State {
                client,
                on_event,
                started: false,
                timer: None,
                in_flight: BTreeMap::new(),
                background: opts.background,
                refreshing: false,
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

    /// The cache file name of a namespace (`{appId}+{cluster}+{namespace}.properties`), or
    /// undefined when the name is unsafe as a file name.
    #[wasm_bindgen(js_name = cacheFileName)]
    pub fn cache_file_name(&self, namespace: &str) -> Result<Option<String>, JsError> {
        let st = self.shared.state.try_borrow().map_err(|_| busy())?;
        Ok(st.client.cache_file_name(namespace))
    }

    /// Feed a namespace's cache file before `start()`. Returns false when the namespace is
    /// not watched.
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
        Ok(ok)
    }

    /// Start: send the first requests. Events may arrive synchronously from here on.
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

    /// Watch one more namespace.
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

    /// Every namespace's values as JSON (an array, in lookup order).
    pub fn snapshot(&self) -> Result<String, JsError> {
        let st = self.shared.state.try_borrow().map_err(|_| busy())?;
        Ok(json::namespaces(&st.client))
    }

    /// One namespace's values as JSON, or undefined when it is not watched.
    #[wasm_bindgen(js_name = namespaceSnapshot)]
    pub fn namespace_snapshot(&self, namespace: &str) -> Result<Option<String>, JsError> {
        let st = self.shared.state.try_borrow().map_err(|_| busy())?;
        Ok(st.client.namespace(namespace).map(json::namespace))
    }

    /// The merged lookup done inside the engine (the wrapper reads its own snapshot; this
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
    /// background mode). Returns how many requests were queued; a `refreshed` event follows
    /// when they have all finished.
    pub fn refresh(&self, max_age_ms: f64) -> Result<u32, JsError> {
        let queued = {
            let mut st = self.shared.state.try_borrow_mut().map_err(|_| busy())?;
            let max_age = if max_age_ms.is_finite() && max_age_ms > 0.0 {
                max_age_ms as u64
            } else {
                0
            };
            let n = st.client.refresh(now(), Duration::from_millis(max_age));
            if st.client.is_refreshing() {
                st.refreshing = true;
            }
            n
        };
        pump(&self.shared);
        Ok(u32::try_from(queued).unwrap_or(u32::MAX))
    }

    /// Whether a fetch is queued or in flight.
    #[wasm_bindgen(js_name = isRefreshing)]
    pub fn is_refreshing(&self) -> Result<bool, JsError> {
        let st = self.shared.state.try_borrow().map_err(|_| busy())?;
        Ok(st.client.is_refreshing())
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

/// Drain the core's outputs: start requests, arm the timer, then deliver events (with no
/// borrow held, so listeners may call back into the client).
fn pump(shared: &Rc<Shared>) {
    let mut requests = Vec::new();
    let mut events = Vec::new();
    let mut refreshed = false;
    let on_event = {
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
                    let refreshing = st.client.is_refreshing();
                    // Edge mode: no timer while idle (a worker keeps no I/O between
                    // requests); the next refresh() feeds the time and catches up.
                    let busy = refreshing || !requests.is_empty() || !st.in_flight.is_empty();
                    let wanted = if st.background || busy {
                        deadline
                    } else {
                        None
                    };
                    arm(shared, &mut st, wanted);
                    if st.refreshing && !refreshing {
                        refreshed = true;
                    }
                    st.refreshing = refreshing;
                    break;
                }
                // Future outputs this host does not know yet: keep draining.
                _ => {}
            }
        }
        st.on_event.clone()
    };
    for r in requests {
        send(shared, r);
    }
    for e in &events {
        let (text, bytes) = json::event(e);
        let bytes = match bytes {
            Some(b) => JsValue::from(Uint8Array::from(b)),
            None => JsValue::UNDEFINED,
        };
        // A throwing listener must not stop the engine; the wrapper catches its own.
        let _ = on_event.call2(&JsValue::UNDEFINED, &JsValue::from_str(&text), &bytes);
    }
    if refreshed {
        // Not a core event: tells the wrapper that every queued fetch has finished, so a
        // pending `refresh()` can resolve.
        let _ = on_event.call2(
            &JsValue::UNDEFINED,
            &JsValue::from_str(r#"{"type":"refreshed"}"#),
            &JsValue::UNDEFINED,
        );
    }
}

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
    let prepared = prepare(&headers);
    let (init, ctrl) = match prepared {
        Ok(p) => p,
        Err(e) => {
            let err = TransportError::new(TransportErrorKind::Other, describe(&e));
            answer(shared, id, Err(err));
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
        let result = fetch_bytes(&url, &init).await;
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

async fn fetch_bytes(
    url: &str,
    init: &RequestInit,
) -> Result<(u16, Vec<u8>), (TransportErrorKind, String)> {
    let promise = global()
        .fetch_with_init(url, init)
        .map_err(|e| (TransportErrorKind::Other, describe(&e)))?;
    let resp = JsFuture::from(promise)
        .await
        .map_err(|e| (TransportErrorKind::Connect, describe(&e)))?;
    let resp: Response = resp.dyn_into().map_err(|_| {
        (
            TransportErrorKind::Other,
            String::from("fetch returned no Response"),
        )
    })?;
    let status = resp.status();
    let buf = resp
        .array_buffer()
        .map_err(|e| (TransportErrorKind::Io, describe(&e)))?;
    let buf = JsFuture::from(buf)
        .await
        .map_err(|e| (TransportErrorKind::Io, describe(&e)))?;
    let bytes = Uint8Array::new(&buf);
    if bytes.length() > MAX_BODY {
        return Err((
            TransportErrorKind::TooLarge,
            format!("body of {} bytes", bytes.length()),
        ));
    }
    Ok((status, bytes.to_vec()))
}
