//! One server instance: listener, connections, client-facing endpoints, faults, request log.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine;
use hmac::{KeyInit, Mac};
use http_body_util::{Either, Full};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::AbortHandle;
use tokio_rustls::TlsAcceptor;

use crate::http_util::{
    JSON, Resp, TEXT, bad_request, json, param, parse_query, path_decode, reply, spring_error,
    static_content_type,
};
use crate::hub::Hub;
use crate::json::{Obj, write_map, write_str};
use crate::state::{Client, Data, View, now_ms, strip_properties, valid_app_id};
use crate::store::Store;
use crate::types::{AccessKeyMode, Fault, FaultAction, Format, RecordedRequest, ServiceInstance};

/// Error returned to hyper to close a connection without answering.
#[derive(Debug)]
pub struct Abort;

impl std::fmt::Display for Abort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection closed on purpose")
    }
}

impl std::error::Error for Abort {}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) struct Settings {
    pub hold: Duration,
    pub lag: Duration,
    pub config_services: Option<Vec<ServiceInstance>>,
    pub admin_services: Vec<ServiceInstance>,
}

#[derive(Default)]
struct ListenerCtl {
    accept: Option<AbortHandle>,
    paused: bool,
}

/// One running instance (one port) serving a [`Store`].
pub(crate) struct Instance {
    pub store: Store,
    pub settings: Mutex<Settings>,
    pub initial_hold: Duration,
    pub static_dir: Option<PathBuf>,
    pub hub: Hub,
    pub faults: Mutex<Vec<Fault>>,
    pub log: Mutex<Vec<RecordedRequest>>,
    pub rt: tokio::runtime::Handle,
    pub addr: SocketAddr,
    /// Set when the instance serves https.
    tls: Option<TlsAcceptor>,
    ctl: Mutex<ListenerCtl>,
    conns: Mutex<HashMap<u64, AbortHandle>>,
    next_conn: AtomicU64,
}

pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let sock = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    sock.set_reuseaddr(true)?;
    sock.bind(addr)?;
    sock.listen(4096)
}

impl Instance {
    pub(crate) fn new(
        store: Store,
        settings: Settings,
        static_dir: Option<PathBuf>,
        rt: tokio::runtime::Handle,
        addr: SocketAddr,
        tls: Option<TlsAcceptor>,
    ) -> Arc<Instance> {
        let inst = Arc::new(Instance {
            store,
            initial_hold: settings.hold,
            settings: Mutex::new(settings),
            static_dir,
            hub: Hub::default(),
            faults: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
            rt,
            addr,
            tls,
            ctl: Mutex::new(ListenerCtl::default()),
            conns: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(0),
        });
        inst.store.attach(&inst);
        inst
    }

    /// `http` or `https`.
    pub(crate) fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// `SCHEME://HOST:PORT` (no trailing slash).
    pub(crate) fn url(&self) -> String {
        format!("{}://{}", self.scheme(), self.addr)
    }

    /// Starts accepting on an already bound listener.
    pub(crate) fn serve(self: &Arc<Self>, listener: TcpListener) {
        let me = self.clone();
        let task = self.rt.spawn(async move { me.accept_loop(listener).await });
        let mut ctl = lock(&self.ctl);
        ctl.accept = Some(task.abort_handle());
        ctl.paused = false;
    }

    async fn accept_loop(self: Arc<Self>, listener: TcpListener) {
        loop {
            let (stream, remote) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    log::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
            let me = self.clone();
            let task = self.rt.spawn(async move {
                match me.tls.clone() {
                    None => serve_connection(me.clone(), stream, remote).await,
                    Some(acceptor) => {
                        // The handshake runs inside the connection's task, so pause and
                        // shutdown abort a half-open handshake like any connection.
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                        {
                            Ok(Ok(tls)) => serve_connection(me.clone(), tls, remote).await,
                            Ok(Err(e)) => log::debug!("tls handshake with {remote} failed: {e}"),
                            Err(_) => log::debug!("tls handshake with {remote} timed out"),
                        }
                    }
                }
                lock(&me.conns).remove(&id);
            });
            let mut conns = lock(&self.conns);
            if !task.is_finished() {
                conns.insert(id, task.abort_handle());
            }
        }
    }

    /// Starts closing the listener and every connection (held polls are dropped);
    /// returns the tasks to wait for.
    fn begin_pause(&self) -> Vec<AbortHandle> {
        let mut ctl = lock(&self.ctl);
        let mut tasks: Vec<AbortHandle> = ctl.accept.take().into_iter().collect();
        ctl.paused = true;
        drop(ctl);
        tasks.extend(lock(&self.conns).drain().map(|(_, a)| a));
        for t in &tasks {
            t.abort();
        }
        tasks
    }

    /// Closes the listener and every connection; returns once they are closed (bounded
    /// wait), so a connect right afterwards is refused.
    pub(crate) fn pause(&self) {
        let tasks = self.begin_pause();
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while tasks.iter().any(|t| !t.is_finished()) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// [`Instance::pause`] for async callers on the instance's runtime.
    pub(crate) async fn pause_async(&self) {
        let tasks = self.begin_pause();
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while tasks.iter().any(|t| !t.is_finished()) && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    pub(crate) fn is_paused(&self) -> bool {
        lock(&self.ctl).paused
    }

    /// Re-binds the same address and accepts again.
    pub(crate) async fn resume_async(self: &Arc<Self>) -> std::io::Result<()> {
        if !self.is_paused() {
            return Ok(());
        }
        let mut last = None;
        for _ in 0..50 {
            match bind(self.addr).await {
                Ok(l) => {
                    self.serve(l);
                    return Ok(());
                }
                Err(e) => {
                    last = Some(e);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("bind failed")))
    }

    /// Runs a future on the instance's runtime and waits for it from any thread.
    pub(crate) fn run_sync<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().ok()
    }

    /// A release message was written to the store: wake held polls (after the lag).
    pub(crate) fn on_message(self: &Arc<Self>, key: &str, id: i64) {
        let lag = lock(&self.settings).lag;
        if lag.is_zero() {
            self.hub.deliver(key, id);
        } else {
            let me = self.clone();
            let key = key.to_string();
            self.rt.spawn(async move {
                tokio::time::sleep(lag).await;
                me.hub.deliver(&key, id);
            });
        }
    }

    fn view_cutoff(&self, now: u64) -> u64 {
        let lag = lock(&self.settings).lag;
        now.saturating_sub(lag.as_millis() as u64)
    }

    fn take_fault(&self, kind: &str) -> Option<FaultAction> {
        let mut faults = lock(&self.faults);
        let i = faults.iter().position(|f| f.endpoint.matches(kind))?;
        let action = faults[i].action.clone();
        if let Some(n) = faults[i].times.as_mut() {
            *n = n.saturating_sub(1);
            if *n == 0 {
                faults.remove(i);
            }
        }
        Some(action)
    }

    pub(crate) fn config_services(&self) -> Vec<ServiceInstance> {
        lock(&self.settings)
            .config_services
            .clone()
            .unwrap_or_else(|| vec![ServiceInstance::config_service(&format!("{}/", self.url()))])
    }

    pub(crate) fn shutdown(&self) {
        self.begin_pause();
    }
}

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves HTTP/1.1 on one accepted connection (plain TCP or TLS) until it closes.
async fn serve_connection<S>(inst: Arc<Instance>, io: S, remote: SocketAddr)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| {
        let inst = inst.clone();
        async move { handle(inst, req, remote).await }
    });
    let _ = http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(io), svc)
        .await;
}

fn endpoint_kind(path: &str) -> &'static str {
    if path.starts_with("/configs/") {
        "configs"
    } else if path.starts_with("/configfiles/") {
        "configfiles"
    } else if path == "/notifications/v2" || path == "/notifications" {
        "notifications"
    } else if path.starts_with("/services/") || path == "/" {
        "services"
    } else {
        "other"
    }
}

fn add_common_headers(r: &mut Resp, api: bool) {
    let h = r.headers_mut();
    let mut put = |k: &'static str, v: &'static str| {
        h.insert(k, hyper::header::HeaderValue::from_static(v));
    };
    put("access-control-allow-origin", "*");
    put("access-control-expose-headers", "*");
    if api {
        put(
            "cache-control",
            "no-cache, no-store, max-age=0, must-revalidate",
        );
        put("pragma", "no-cache");
        put("expires", "0");
        put("x-content-type-options", "nosniff");
        put("x-frame-options", "SAMEORIGIN");
        put("x-xss-protection", "0");
    }
}

fn preflight(req: &Request<Incoming>) -> Resp {
    let mut r = reply(204, None, "");
    let mut allow = String::from("Authorization, Timestamp, Content-Type");
    if let Some(asked) = req
        .headers()
        .get("access-control-request-headers")
        .and_then(|v| v.to_str().ok())
    {
        for h in asked.split(',').map(str::trim).filter(|h| !h.is_empty()) {
            if !allow.to_ascii_lowercase().contains(&h.to_ascii_lowercase()) {
                allow.push_str(", ");
                allow.push_str(h);
            }
        }
    }
    let h = r.headers_mut();
    h.insert(
        "access-control-allow-methods",
        hyper::header::HeaderValue::from_static("GET, POST, PUT, DELETE, OPTIONS"),
    );
    if let Ok(v) = allow.parse() {
        h.insert("access-control-allow-headers", v);
    }
    h.insert(
        "access-control-max-age",
        hyper::header::HeaderValue::from_static("86400"),
    );
    r
}

fn record(inst: &Instance, req: &Request<Incoming>, kind: &str) {
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let path = match req.uri().query() {
        Some(q) => format!("{}?{}", req.uri().path(), q),
        None => req.uri().path().to_string(),
    };
    let entry = RecordedRequest {
        method: req.method().as_str().to_string(),
        path,
        headers,
        time_ms: now_ms(),
        endpoint: kind.to_string(),
    };
    let mut log = lock(&inst.log);
    if log.len() >= 100_000 {
        log.remove(0);
    }
    log.push(entry);
}

fn pad_body(kind: &str, bytes: usize) -> String {
    let (head, tail) = if kind == "notifications" {
        ("[{\"namespaceName\":\"", "\",\"notificationId\":1}]")
    } else {
        (
            "{\"appId\":\"oversized\",\"cluster\":\"default\",\"namespaceName\":\"application\",\"configurations\":{\"pad\":\"",
            "\"},\"releaseKey\":\"oversized\"}",
        )
    };
    let pad = bytes.saturating_sub(head.len() + tail.len());
    let mut s = String::with_capacity(head.len() + pad + tail.len());
    s.push_str(head);
    s.extend(std::iter::repeat_n('x', pad));
    s.push_str(tail);
    s
}

/// How long an [`FaultAction::OversizedStall`] answer holds its connection at most.
const STALL_LIMIT: Duration = Duration::from_secs(600);

/// The body of an [`FaultAction::OversizedStall`] answer: one data frame, then nothing
/// (the body never ends) until [`STALL_LIMIT`] passes, when the connection is aborted.
pub(crate) struct StallBody {
    data: Option<Bytes>,
    stall: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl StallBody {
    fn new(data: Bytes) -> StallBody {
        StallBody {
            data: Some(data),
            stall: Box::pin(tokio::time::sleep(STALL_LIMIT)),
        }
    }
}

impl hyper::body::Body for StallBody {
    type Data = Bytes;
    type Error = Abort;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Abort>>> {
        if let Some(d) = self.data.take() {
            return std::task::Poll::Ready(Some(Ok(Frame::data(d))));
        }
        self.stall.as_mut().poll(cx).map(|()| Some(Err(Abort)))
    }
}

/// What a connection answers: a whole body, or (a fault) one that stalls.
type Answer = hyper::Response<Either<Full<Bytes>, StallBody>>;

async fn handle(
    inst: Arc<Instance>,
    req: Request<Incoming>,
    remote: SocketAddr,
) -> Result<Answer, Abort> {
    let whole = |r: Resp| Ok(r.map(Either::Left));
    let path = req.uri().path().to_string();
    if path == "/__admin" || path.starts_with("/__admin/") {
        let mut r = crate::admin::handle(inst, req).await;
        add_common_headers(&mut r, false);
        return whole(r);
    }
    let kind = endpoint_kind(&path);
    if kind != "other" {
        record(&inst, &req, kind);
    }
    if req.method() == Method::OPTIONS {
        let mut r = preflight(&req);
        add_common_headers(&mut r, false);
        return whole(r);
    }
    if kind != "other" {
        if let Some(action) = inst.take_fault(kind) {
            match action {
                FaultAction::Status { code } => {
                    let mut r = spring_error(code, "injected fault", &path);
                    add_common_headers(&mut r, true);
                    return whole(r);
                }
                FaultAction::Delay { ms } => tokio::time::sleep(Duration::from_millis(ms)).await,
                FaultAction::Close => return Err(Abort),
                FaultAction::Malformed => {
                    let mut r = reply(
                        200,
                        Some(JSON),
                        "{\"appId\":\"malformed\",\"configurations\":{\"k\":",
                    );
                    add_common_headers(&mut r, true);
                    return whole(r);
                }
                FaultAction::Oversized { bytes } => {
                    let mut r = reply(200, Some(JSON), pad_body(kind, bytes));
                    add_common_headers(&mut r, true);
                    return whole(r);
                }
                FaultAction::OversizedStall { bytes } => {
                    // Only the head of the body, so its end never comes.
                    let mut body = pad_body(kind, bytes).into_bytes();
                    body.truncate(bytes);
                    let mut r = reply(200, Some(JSON), "");
                    add_common_headers(&mut r, true);
                    let (parts, _) = r.into_parts();
                    let body = StallBody::new(Bytes::from(body));
                    return Ok(hyper::Response::from_parts(parts, Either::Right(body)));
                }
                FaultAction::Redirect { code, location } => {
                    let mut r = reply(code, None, "");
                    match hyper::header::HeaderValue::from_str(&location) {
                        Ok(v) => {
                            r.headers_mut().insert(hyper::header::LOCATION, v);
                        }
                        Err(_) => log::warn!("redirect fault: bad Location {location:?}"),
                    }
                    add_common_headers(&mut r, true);
                    return whole(r);
                }
                FaultAction::Hang => {
                    std::future::pending::<()>().await;
                }
            }
        }
    }
    let mut r = route(&inst, &req, &path, kind, remote).await;
    add_common_headers(&mut r, kind != "other");
    whole(r)
}

async fn route(
    inst: &Arc<Instance>,
    req: &Request<Incoming>,
    path: &str,
    kind: &str,
    remote: SocketAddr,
) -> Resp {
    let is_get = req.method() == Method::GET || req.method() == Method::HEAD;
    if kind == "other" {
        return static_file(inst, req, path).await;
    }
    if !is_get {
        return bad_request(&format!(
            "Request method '{}' is not supported",
            req.method()
        ));
    }
    let Some(query) = parse_query(req.uri().query()) else {
        return bad_request("malformed query string");
    };
    let ctx = Ctx {
        inst,
        req,
        path,
        query: &query,
        remote,
    };
    match kind {
        "services" => services(inst, path),
        "configs" => configs(&ctx),
        "configfiles" => configfiles(&ctx),
        _ => notifications(&ctx).await,
    }
}

struct Ctx<'a> {
    inst: &'a Arc<Instance>,
    req: &'a Request<Incoming>,
    path: &'a str,
    query: &'a [(String, String)],
    remote: SocketAddr,
}

impl Ctx<'_> {
    fn param(&self, name: &str) -> Option<&str> {
        param(self.query, name)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.req.headers().get(name).and_then(|v| v.to_str().ok())
    }

    /// `ip` parameter, else the first `X-Forwarded-For` entry, else the remote address.
    fn client_ip(&self) -> String {
        if let Some(ip) = self.param("ip").filter(|s| !s.is_empty()) {
            return ip.to_string();
        }
        if let Some(xff) = self.header("x-forwarded-for") {
            if let Some(first) = xff
                .split(',')
                .next()
                .map(str::trim)
                .filter(|s| !s.is_empty())
            {
                return first.to_string();
            }
        }
        self.remote.ip().to_string()
    }

    /// The access-key filter (docs/protocol.md#server-check). `Some(resp)` means reject.
    fn authenticate(&self, app: &str) -> Option<Resp> {
        if !valid_app_id(app) {
            return Some(spring_error(400, "InvalidAppId", self.path));
        }
        let (filter, observer, tolerance) = {
            let d = self.inst.store.data();
            (
                d.secrets(app, AccessKeyMode::Filter),
                d.secrets(app, AccessKeyMode::Observer),
                d.switches.access_key_tolerance_ms,
            )
        };
        let (secrets, enforce) = if !filter.is_empty() {
            (filter, true)
        } else if !observer.is_empty() {
            (observer, false)
        } else {
            return None;
        };
        let outcome = check_signature(
            &secrets,
            self.header("timestamp"),
            self.header("authorization"),
            self.path,
            self.req.uri().query(),
            tolerance,
        );
        match outcome {
            Ok(()) => None,
            Err(reason) if enforce => Some(spring_error(401, reason, self.path)),
            Err(reason) => {
                log::info!("observer access key check failed for {app}: {reason}");
                None
            }
        }
    }
}

/// HMAC-SHA1 signature of `timestamp + "\n" + path_with_query`, Base64 with padding.
pub fn signature(secret: &str, timestamp: &str, path_with_query: &str) -> String {
    let mut mac = match hmac::Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(timestamp.as_bytes());
    mac.update(b"\n");
    mac.update(path_with_query.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn check_signature(
    secrets: &[String],
    timestamp: Option<&str>,
    authorization: Option<&str>,
    raw_path: &str,
    raw_query: Option<&str>,
    tolerance_ms: u64,
) -> Result<(), &'static str> {
    let ts_str = timestamp.unwrap_or("");
    let ts: i64 = ts_str.trim().parse().unwrap_or(0);
    let now = now_ms() as i64;
    if now.abs_diff(ts) >= tolerance_ms {
        return Err("RequestTimeTooSkewed");
    }
    let Some(given) = authorization.and_then(|a| {
        let parts: Vec<&str> = a.split(':').collect();
        // Java's split drops trailing empty strings.
        parts.get(1).copied().filter(|s| !s.is_empty())
    }) else {
        return Err("Unauthorized");
    };
    let pwq = match raw_query {
        Some(q) if !q.is_empty() => format!("{raw_path}?{q}"),
        _ => raw_path.to_string(),
    };
    if secrets.iter().any(|s| signature(s, ts_str, &pwq) == given) {
        Ok(())
    } else {
        Err("Unauthorized")
    }
}

fn services(inst: &Instance, path: &str) -> Resp {
    let list: Vec<ServiceInstance> = match path {
        "/services/config" => inst.config_services(),
        "/services/admin" => lock(&inst.settings).admin_services.clone(),
        "/services/meta" => Vec::new(),
        "/" => {
            let mut l = inst.config_services();
            l.extend(lock(&inst.settings).admin_services.clone());
            l
        }
        _ => return spring_error(404, "Not Found", path),
    };
    json(services_json(&list))
}

pub(crate) fn services_json(list: &[ServiceInstance]) -> String {
    let mut s = String::from("[");
    for (i, svc) in list.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let mut o = Obj::new(&mut s);
        o.str("appName", &svc.app_name)
            .str("instanceId", &svc.instance_id)
            .str("homepageUrl", &svc.homepage_url);
        o.end();
    }
    s.push(']');
    s
}

/// Splits `/prefix/{appId}/{cluster}/{namespace}` into decoded segments:
/// `Err(404)` when the shape is wrong, `Err(400)` on bad percent-encoding.
fn three_segments(rest: &str, path: &str) -> Result<[String; 3], Resp> {
    let parts: Vec<&str> = rest.split('/').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
        return Err(spring_error(404, "Not Found", path));
    }
    let dec =
        |s: &str| path_decode(s).ok_or_else(|| bad_request("malformed percent-encoding in path"));
    Ok([dec(parts[0])?, dec(parts[1])?, dec(parts[2])?])
}

#[derive(serde::Deserialize)]
struct MessagesParam {
    #[serde(default)]
    details: HashMap<String, i64>,
}

struct Resolved {
    namespace: String,
    cluster: String,
    release_key: String,
    items: Vec<(String, String)>,
}

/// Shared part of `/configs` and `/configfiles*`: normalise, look up with fallback, merge.
fn resolve(
    ctx: &Ctx<'_>,
    d: &Data,
    app: &str,
    cluster: &str,
    ns: &str,
    messages: Option<&HashMap<String, i64>>,
) -> Option<Resolved> {
    let canonical = d.normalize(app, ns);
    let ip = ctx.client_ip();
    let label = ctx.param("label").filter(|l| !l.is_empty());
    let client = Client {
        app,
        ip: Some(&ip),
        label,
    };
    let now = now_ms();
    let view = View {
        cutoff: ctx.inst.view_cutoff(now),
        messages: if d.switches.release_cache {
            messages
        } else {
            None
        },
        now,
    };
    let dc = ctx.param("dataCenter");
    let found = d.lookup_config(&client, cluster, dc, &canonical, &view)?;
    Some(Resolved {
        namespace: canonical,
        cluster: found.cluster,
        release_key: found.release_key,
        items: found.items,
    })
}

fn configs(ctx: &Ctx<'_>) -> Resp {
    let [app, cluster, ns] = match three_segments(&ctx.path["/configs/".len()..], ctx.path) {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Some(r) = ctx.authenticate(&app) {
        return r;
    }
    let client_key = ctx
        .param("releaseKey")
        .filter(|k| !k.is_empty())
        .unwrap_or("-1");
    let messages: Option<MessagesParam> = ctx
        .param("messages")
        .and_then(|m| serde_json::from_str(m).ok());
    let d = ctx.inst.store.data();
    let Some(res) = resolve(
        ctx,
        &d,
        &app,
        &cluster,
        &ns,
        messages.as_ref().map(|m| &m.details),
    ) else {
        return spring_error(
            404,
            &format!(
                "Could not load configurations with appId: {app}, clusterName: {cluster}, namespace: {}",
                strip_properties(&ns)
            ),
            ctx.path,
        );
    };
    if res.release_key == client_key {
        return reply(304, None, "");
    }
    let mut body = String::new();
    let mut o = Obj::new(&mut body);
    o.str("appId", &app)
        .str("cluster", &res.cluster)
        .str("namespaceName", &ns);
    let mut incremental = None;
    if d.switches.incremental_sync && client_key != "-1" {
        if let Some(old) = d.old_items(client_key, d.switches.release_cache) {
            if !old.is_empty() {
                incremental = Some(changes_json(&old, &res.items));
            }
        }
    }
    match &incremental {
        None => {
            o.map(
                "configurations",
                res.items.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            );
            o.str("releaseKey", &res.release_key);
        }
        Some(changes) => {
            o.str("releaseKey", &res.release_key)
                .str("configSyncType", "IncrementalSync")
                .raw("configurationChanges", changes);
        }
    }
    o.end();
    json(body)
}

/// docs/protocol.md#incremental-sync change list: ADDED (new order), DELETED (old order), MODIFIED (old order).
fn changes_json(old: &[(String, String)], new: &[(String, String)]) -> String {
    let old_map: HashMap<&str, &str> = old.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let new_map: HashMap<&str, &str> = new.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut s = String::from("[");
    let mut first = true;
    let mut push = |s: &mut String, k: &str, v: Option<&str>, t: &str| {
        if !first {
            s.push(',');
        }
        first = false;
        let mut o = Obj::new(s);
        o.str("key", k)
            .opt_str("newValue", v)
            .str("configurationChangeType", t);
        o.end();
    };
    for (k, v) in new {
        if !old_map.contains_key(k.as_str()) {
            push(&mut s, k, Some(v), "ADDED");
        }
    }
    for (k, _) in old {
        if !new_map.contains_key(k.as_str()) {
            push(&mut s, k, None, "DELETED");
        }
    }
    for (k, v) in old {
        if let Some(nv) = new_map.get(k.as_str()) {
            if nv != v {
                push(&mut s, k, Some(nv), "MODIFIED");
            }
        }
    }
    s.push(']');
    s
}

fn configfiles(ctx: &Ctx<'_>) -> Resp {
    let rest = &ctx.path["/configfiles/".len()..];
    let (mode, rest) = if let Some(r) = rest.strip_prefix("json/") {
        ("json", r)
    } else if let Some(r) = rest.strip_prefix("raw/") {
        ("raw", r)
    } else {
        ("text", rest)
    };
    let [app, cluster, ns] = match three_segments(rest, ctx.path) {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Some(r) = ctx.authenticate(&app) {
        return r;
    }
    let d = ctx.inst.store.data();
    let Some(res) = resolve(ctx, &d, &app, &cluster, &ns, None) else {
        return spring_error(404, "Not Found", ctx.path);
    };
    match mode {
        "json" => {
            let mut s = String::new();
            write_map(
                &mut s,
                res.items.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            );
            json(s)
        }
        "raw" => {
            let format = Format::of_namespace(&res.namespace);
            if format == Format::Properties {
                return reply(200, Some(TEXT), crate::props::write(&res.items));
            }
            let Some((_, content)) = res.items.iter().find(|(k, _)| k == "content") else {
                return spring_error(404, "Not Found", ctx.path);
            };
            let ct = match format {
                Format::Json => JSON,
                Format::Yaml | Format::Yml => "application/yaml;charset=UTF-8",
                Format::Xml => "application/xml;charset=UTF-8",
                _ => TEXT,
            };
            reply(200, Some(ct), content.clone())
        }
        _ => reply(200, Some(TEXT), crate::props::write(&res.items)),
    }
}

async fn notifications(ctx: &Ctx<'_>) -> Resp {
    let app = ctx.param("appId").unwrap_or("").to_string();
    if let Some(r) = ctx.authenticate(&app) {
        return r;
    }
    if ctx.path == "/notifications" {
        return notifications_v1(ctx, &app).await;
    }
    let Some(cluster) = ctx.param("cluster").map(str::to_string) else {
        return bad_request(
            "Required request parameter 'cluster' for method parameter type String is not present",
        );
    };
    let Some(raw) = ctx.param("notifications") else {
        return bad_request(
            "Required request parameter 'notifications' for method parameter type String is not present",
        );
    };
    let dc = ctx.param("dataCenter").map(str::to_string);
    let invalid = || bad_request(&format!("invalid notifications format:{raw}"));
    let Ok(serde_json::Value::Array(entries)) = serde_json::from_str::<serde_json::Value>(raw)
    else {
        return invalid();
    };
    if entries.is_empty() {
        return invalid();
    }
    // docs/protocol.md#poll-algorithm step 2: filter, strip, normalise, de-duplicate (smaller id wins).
    let mut kept: Vec<(String, String, i64)> = Vec::new(); // (canonical, stripped, id)
    {
        let d = ctx.inst.store.data();
        for e in &entries {
            let Some(obj) = e.as_object() else {
                return invalid();
            };
            let name = match obj.get("namespaceName") {
                Some(serde_json::Value::String(s)) => s.as_str(),
                None | Some(serde_json::Value::Null) => "",
                Some(_) => return invalid(),
            };
            let id = match obj.get("notificationId") {
                None | Some(serde_json::Value::Null) => -1,
                Some(v) => match v.as_i64() {
                    Some(i) => i,
                    None => return invalid(),
                },
            };
            if name.is_empty() {
                continue;
            }
            let stripped = strip_properties(name).to_string();
            let canonical = d.normalize(&app, &stripped);
            if let Some(k) = kept.iter_mut().find(|k| k.0 == canonical) {
                if k.2 >= id {
                    *k = (canonical, stripped, id);
                }
            } else {
                kept.push((canonical, stripped, id));
            }
        }
    }
    if kept.is_empty() {
        return invalid();
    }
    let names: Vec<String> = kept.iter().map(|k| k.0.clone()).collect();
    let keys = ctx
        .inst
        .store
        .data()
        .watch_keys(&app, &cluster, dc.as_deref(), &names);
    let all_keys: Vec<String> = keys.iter().flatten().cloned().collect();
    let mut reg = ctx.inst.hub.register(&all_keys);
    // docs/protocol.md#poll-algorithm steps 5-6: check the latest messages after registering.
    let mut immediate = String::from("[");
    let mut any = false;
    {
        let d = ctx.inst.store.data();
        let cutoff = ctx.inst.view_cutoff(now_ms());
        for ((_, stripped, client_id), ns_keys) in kept.iter().zip(&keys) {
            let mut details: Vec<(&str, i64)> = Vec::new();
            for k in ns_keys {
                if let Some(id) = d.latest_message(k, cutoff) {
                    details.push((k.as_str(), id));
                }
            }
            let latest = details.iter().map(|x| x.1).max().unwrap_or(-1);
            if latest > *client_id {
                details.sort();
                details.dedup();
                if any {
                    immediate.push(',');
                }
                any = true;
                notification_json(&mut immediate, stripped, latest, &details);
            }
        }
    }
    if any {
        immediate.push(']');
        return json(immediate);
    }
    let hold = lock(&ctx.inst.settings).hold;
    match tokio::time::timeout(hold, &mut reg.rx).await {
        Ok(Ok((key, id))) => {
            let ns_part = key.splitn(3, '+').nth(2).unwrap_or("");
            let name = kept
                .iter()
                .find(|k| k.0 == ns_part)
                .or_else(|| kept.iter().find(|k| k.0.eq_ignore_ascii_case(ns_part)))
                .map(|k| k.1.as_str())
                .unwrap_or(ns_part);
            let mut s = String::from("[");
            notification_json(&mut s, name, id, &[(key.as_str(), id)]);
            s.push(']');
            json(s)
        }
        _ => reply(304, None, ""),
    }
}

fn notification_json(out: &mut String, ns: &str, id: i64, details: &[(&str, i64)]) {
    let mut o = Obj::new(out);
    o.str("namespaceName", ns).num("notificationId", id);
    let mut m = String::from("{\"details\":{");
    for (i, (k, v)) in details.iter().enumerate() {
        if i > 0 {
            m.push(',');
        }
        write_str(&mut m, k);
        m.push(':');
        m.push_str(&v.to_string());
    }
    m.push_str("}}");
    o.raw("messages", &m);
    o.end();
}

async fn notifications_v1(ctx: &Ctx<'_>, app: &str) -> Resp {
    let Some(cluster) = ctx.param("cluster").map(str::to_string) else {
        return bad_request(
            "Required request parameter 'cluster' for method parameter type String is not present",
        );
    };
    let ns = strip_properties(ctx.param("namespace").unwrap_or("application")).to_string();
    let client_id: i64 = ctx
        .param("notificationId")
        .and_then(|s| s.parse().ok())
        .unwrap_or(-1);
    let dc = ctx.param("dataCenter").map(str::to_string);
    let keys = ctx
        .inst
        .store
        .data()
        .watch_keys(app, &cluster, dc.as_deref(), std::slice::from_ref(&ns))
        .concat();
    let mut reg = ctx.inst.hub.register(&keys);
    let latest = {
        let d = ctx.inst.store.data();
        let cutoff = ctx.inst.view_cutoff(now_ms());
        keys.iter()
            .filter_map(|k| d.latest_message(k, cutoff))
            .max()
    };
    let one = |id: i64| {
        let mut s = String::new();
        let mut o = Obj::new(&mut s);
        o.str("namespaceName", &ns).num("notificationId", id);
        o.end();
        json(s)
    };
    if let Some(latest) = latest.filter(|&l| l != client_id) {
        return one(latest);
    }
    let hold = lock(&ctx.inst.settings).hold;
    match tokio::time::timeout(hold, &mut reg.rx).await {
        Ok(Ok((_, id))) => one(id),
        _ => reply(304, None, ""),
    }
}

async fn static_file(inst: &Instance, req: &Request<Incoming>, path: &str) -> Resp {
    let Some(dir) = &inst.static_dir else {
        return spring_error(404, "Not Found", path);
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return spring_error(405, "Method Not Allowed", path);
    }
    let rel = path
        .strip_prefix("/__static/")
        .unwrap_or(path.trim_start_matches('/'));
    let Some(rel) = path_decode(rel) else {
        return spring_error(400, "Bad Request", path);
    };
    let mut file = dir.clone();
    for seg in rel.split('/') {
        if seg.is_empty() || seg == "." {
            continue;
        }
        if seg == ".." || seg.contains('\\') || seg.contains('\0') {
            return spring_error(404, "Not Found", path);
        }
        file.push(seg);
    }
    if file.is_dir() {
        file.push("index.html");
    }
    match tokio::fs::read(&file).await {
        Ok(bytes) => {
            let name = file.to_string_lossy().into_owned();
            reply(200, Some(static_content_type(&name)), bytes)
        }
        Err(_) => spring_error(404, "Not Found", path),
    }
}
