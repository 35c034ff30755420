//! One server instance: listener, connections, client-facing endpoints, faults, request log.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::AbortHandle;
use tokio_rustls::TlsAcceptor;

use crate::admin::err as admin_err;
use crate::http_util::{
    ErrorPage, JSON, Resp, TEXT, bad_request, exception_error, json, method_not_supported,
    missing_parameter, param, parse_query, path_decode, reply, spring_error, static_content_type,
    tomcat_bad_request, tomcat_rejects, wants_html, whitelabel,
};
use crate::hub::Hub;
use crate::java;
use crate::json::{Obj, write_map, write_str};
use crate::reqlog::RequestLog;
use crate::state::{Client, Data, View, now_ms, strip_properties, valid_app_id};
use crate::store::Store;
use crate::types::{AccessKeyMode, Fault, FaultAction, Format, RecordedRequest, ServiceInstance};
use hyper::header::HeaderValue;

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

/// What an instance is started with besides its settings.
pub(crate) struct Options {
    pub static_dir: Option<PathBuf>,
    /// CORS for browsers on other origins (never for the admin API).
    pub cors: bool,
    /// Required as `Authorization: Bearer TOKEN` by the admin API when set.
    pub admin_token: Option<String>,
    /// Connections served at once; more are refused.
    pub max_connections: usize,
    /// Longest request head (request line and headers) accepted.
    pub max_header_bytes: usize,
    /// Bound of the request log.
    pub request_log_bytes: usize,
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
    pub opts: Options,
    pub hub: Hub,
    pub faults: Mutex<Vec<Fault>>,
    pub log: Mutex<RequestLog>,
    pub rt: tokio::runtime::Handle,
    pub addr: SocketAddr,
    /// Set when the instance serves https.
    tls: Option<TlsAcceptor>,
    ctl: Mutex<ListenerCtl>,
    conns: Mutex<HashMap<u64, AbortHandle>>,
    next_conn: AtomicU64,
    /// Connections being served (counted against `max_connections`).
    open: AtomicUsize,
    /// Connections being refused (their 503 is being written).
    refusing: AtomicUsize,
}

/// Counts a served connection until dropped (also when its task is aborted).
struct OpenGuard(Arc<Instance>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What a refused connection is told (plain HTTP only).
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n\
content-length: 44\r\nconnection: close\r\n\r\ntoo many open connections; try again later\r\n";

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
        opts: Options,
        rt: tokio::runtime::Handle,
        addr: SocketAddr,
        tls: Option<TlsAcceptor>,
    ) -> Arc<Instance> {
        let inst = Arc::new(Instance {
            store,
            initial_hold: settings.hold,
            settings: Mutex::new(settings),
            log: Mutex::new(RequestLog::new(opts.request_log_bytes)),
            opts,
            hub: Hub::default(),
            faults: Mutex::new(Vec::new()),
            rt,
            addr,
            tls,
            ctl: Mutex::new(ListenerCtl::default()),
            conns: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(0),
            open: AtomicUsize::new(0),
            refusing: AtomicUsize::new(0),
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
            if self.open.load(Ordering::SeqCst) >= self.opts.max_connections {
                self.refuse(stream, remote);
                continue;
            }
            self.open.fetch_add(1, Ordering::SeqCst);
            let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
            let me = self.clone();
            let guard = OpenGuard(self.clone());
            let task = self.rt.spawn(async move {
                let _guard = guard;
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

    /// Refuses a connection beyond `max_connections`: plain HTTP is answered 503 (without
    /// reading the request) and closed; TLS is closed at once. At most 64 refusals are
    /// written at a time, for at most a second each; beyond that the socket is closed.
    fn refuse(self: &Arc<Self>, mut stream: TcpStream, remote: SocketAddr) {
        log::warn!(
            "refusing a connection from {remote}: {} connections open (limit {})",
            self.open.load(Ordering::SeqCst),
            self.opts.max_connections
        );
        if self.tls.is_some() || self.refusing.fetch_add(1, Ordering::SeqCst) >= 64 {
            if self.tls.is_none() {
                self.refusing.fetch_sub(1, Ordering::SeqCst);
            }
            return;
        }
        let me = self.clone();
        self.rt.spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                stream.write_all(REFUSED).await?;
                stream.shutdown().await?;
                // Read what the client sent until it closes, so that closing does not
                // reset the connection before the client read the answer.
                let mut buf = [0u8; 4096];
                while stream.read(&mut buf).await? > 0 {}
                Ok::<(), std::io::Error>(())
            })
            .await;
            me.refusing.fetch_sub(1, Ordering::SeqCst);
        });
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

/// How far past `max_header_bytes` hyper reads a request head (see `serve_connection`).
const HEAD_SLACK: usize = 64 << 10;

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves HTTP/1.1 on one accepted connection (plain TCP or TLS) until it closes.
async fn serve_connection<S>(inst: Arc<Instance>, io: S, remote: SocketAddr)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // hyper reads heads a little past Tomcat's limit so that `handle` can answer them
    // as Tomcat does; beyond that (or beyond 1,000 headers) hyper itself answers 431.
    let buf = inst
        .opts
        .max_header_bytes
        .saturating_add(HEAD_SLACK)
        .max(8192);
    let svc = service_fn(move |req| {
        let inst = inst.clone();
        async move { handle(inst, req, remote).await }
    });
    let _ = http1::Builder::new()
        .timer(TokioTimer::new())
        .max_headers(1000)
        .max_buf_size(buf)
        .serve_connection(TokioIo::new(io), svc)
        .await;
}

fn endpoint_kind(path: &str) -> &'static str {
    if path.starts_with("/configs/") {
        "configs"
    } else if path.starts_with("/configfiles/") {
        "configfiles"
    } else if matches!(
        path,
        "/notifications/v2" | "/notifications/v2/" | "/notifications" | "/notifications/"
    ) {
        "notifications"
    } else if path.starts_with("/services/") || path == "/" {
        "services"
    } else {
        "other"
    }
}

fn is_admin(path: &str) -> bool {
    path == "/__admin" || path.starts_with("/__admin/")
}

/// Spring Security's default headers: on every answer that gets past Tomcat.
fn add_security_headers(r: &mut Resp) {
    let h = r.headers_mut();
    for (k, v) in [
        (
            "cache-control",
            "no-cache, no-store, max-age=0, must-revalidate",
        ),
        ("pragma", "no-cache"),
        ("expires", "0"),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "SAMEORIGIN"),
        ("x-xss-protection", "0"),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
}

/// The CORS extension (`cors` option): every origin may read every non-admin answer.
fn add_cors_headers(r: &mut Resp) {
    let h = r.headers_mut();
    h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    h.insert(
        "access-control-expose-headers",
        HeaderValue::from_static("*"),
    );
}

/// Whether an `OPTIONS` request is a CORS preflight (as Spring's `CorsUtils` decides).
fn is_preflight(req: &Request<Incoming>) -> bool {
    req.headers().contains_key("origin")
        && req.headers().contains_key("access-control-request-method")
}

/// The CORS extension's answer to a preflight.
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
        HeaderValue::from_static("GET, POST, PUT, DELETE, OPTIONS"),
    );
    if let Ok(v) = allow.parse() {
        h.insert("access-control-allow-headers", v);
    }
    h.insert("access-control-max-age", HeaderValue::from_static("86400"));
    r
}

/// What the real server answers to `OPTIONS` without the CORS extension: a preflight is
/// rejected by Spring's `DefaultCorsProcessor` (no CORS configuration), any other
/// `OPTIONS` gets the methods of the handler (`GET` handlers also take `HEAD`).
fn options_without_cors(req: &Request<Incoming>) -> Resp {
    if is_preflight(req) {
        let mut r = reply(403, None, "Invalid CORS request");
        let h = r.headers_mut();
        for v in [
            "Origin",
            "Access-Control-Request-Method",
            "Access-Control-Request-Headers",
        ] {
            h.append(hyper::header::VARY, HeaderValue::from_static(v));
        }
        r
    } else {
        let mut r = reply(200, None, "");
        r.headers_mut().insert(
            hyper::header::ALLOW,
            HeaderValue::from_static("GET,HEAD,OPTIONS"),
        );
        r
    }
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
    lock(&inst.log).push(entry);
}

/// The largest body an `oversized` fault writes: a larger `bytes` is cut to this.
pub const MAX_OVERSIZED_BYTES: usize = 1 << 30;

/// How long an [`FaultAction::OversizedStall`] answer holds its connection at most.
const STALL_LIMIT: Duration = Duration::from_secs(600);

/// Padding is written in pieces of this size (never the whole body in memory).
const PAD_CHUNK: usize = 64 << 10;

/// The body of an `oversized` fault, produced piece by piece: a syntactically valid JSON
/// body of `total` bytes (an object; an array for notifications) whose middle is a long
/// string of `x`. With `stall`, only the first `total` bytes of such a body are written,
/// then the body never ends (until [`STALL_LIMIT`], when the connection is aborted).
pub(crate) struct PadBody {
    head: Option<Bytes>,
    pad_left: usize,
    tail: Option<Bytes>,
    stall: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    left: usize,
}

impl PadBody {
    fn new(kind: &str, bytes: usize, stall: bool) -> PadBody {
        let bytes = bytes.min(MAX_OVERSIZED_BYTES);
        let (head, tail): (&'static str, &'static str) = if kind == "notifications" {
            ("[{\"namespaceName\":\"", "\",\"notificationId\":1}]")
        } else {
            (
                "{\"appId\":\"oversized\",\"cluster\":\"default\",\"namespaceName\":\"application\",\"configurations\":{\"pad\":\"",
                "\"},\"releaseKey\":\"oversized\"}",
            )
        };
        let pad = bytes.saturating_sub(head.len() + tail.len());
        let total = head.len() + pad + tail.len();
        PadBody {
            head: Some(Bytes::from_static(head.as_bytes())),
            pad_left: pad,
            tail: Some(Bytes::from_static(tail.as_bytes())),
            stall: stall.then(|| Box::pin(tokio::time::sleep(STALL_LIMIT))),
            // A stalled body is cut at `bytes`; a whole one is at least `bytes`.
            left: if stall { bytes } else { total },
        }
    }

    fn take(&mut self, data: Bytes) -> Option<Bytes> {
        if self.left == 0 {
            return None;
        }
        let data = data.slice(..data.len().min(self.left));
        self.left -= data.len();
        Some(data)
    }
}

impl hyper::body::Body for PadBody {
    type Data = Bytes;
    type Error = Abort;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Abort>>> {
        static PAD: [u8; PAD_CHUNK] = [b'x'; PAD_CHUNK];
        let next = if let Some(h) = self.head.take() {
            Some(h)
        } else if self.pad_left > 0 {
            let n = self.pad_left.min(PAD_CHUNK);
            self.pad_left -= n;
            Some(Bytes::from_static(&PAD[..n]))
        } else {
            self.tail.take()
        };
        if let Some(d) = next.and_then(|d| self.take(d)) {
            return std::task::Poll::Ready(Some(Ok(Frame::data(d))));
        }
        match self.stall.as_mut() {
            Some(s) => s.as_mut().poll(cx).map(|()| Some(Err(Abort))),
            None => std::task::Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.stall.is_none() && self.left == 0
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        if self.stall.is_some() {
            hyper::body::SizeHint::default()
        } else {
            hyper::body::SizeHint::with_exact(self.left as u64)
        }
    }
}

/// What a connection answers: a whole body, or (a fault) one produced piece by piece.
type Answer = hyper::Response<Either<Full<Bytes>, PadBody>>;

/// The admin API's gate (it is not Apollo, and it must not be reachable from web pages
/// the developer opens): with an admin token, `Authorization: Bearer TOKEN` is required;
/// without one, `Host` must name the instance by an IP address or `localhost` with its
/// port (a DNS-rebinding page sends its own host name). A request from a page of
/// another origin (`Origin`, or `Sec-Fetch-Site` other than `same-origin`/`none`) is
/// refused either way.
fn admin_guard(inst: &Instance, req: &Request<Incoming>) -> Result<(), Resp> {
    let header = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok());
    match &inst.opts.admin_token {
        Some(token) => {
            let given = header("authorization")
                .and_then(|a| a.strip_prefix("Bearer "))
                .unwrap_or("");
            if !same_secret(given.trim().as_bytes(), token.as_bytes()) {
                let mut r = admin_err(
                    401,
                    "the admin API needs Authorization: Bearer <admin token>",
                );
                r.headers_mut().insert(
                    hyper::header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer"),
                );
                return Err(r);
            }
        }
        None => {
            if !host_is_this_instance(inst, header("host")) {
                return Err(admin_err(
                    403,
                    "the admin API answers only requests whose Host is this server's address (127.0.0.1:PORT or localhost:PORT)",
                ));
            }
        }
    }
    if let Some(origin) = header("origin") {
        let own = header("host")
            .is_some_and(|h| origin.eq_ignore_ascii_case(&format!("{}://{h}", inst.scheme())));
        if !own {
            return Err(admin_err(
                403,
                "the admin API refuses requests from other origins",
            ));
        }
    }
    if let Some(site) = header("sec-fetch-site") {
        if !matches!(site, "same-origin" | "none") {
            return Err(admin_err(
                403,
                "the admin API refuses requests from other sites",
            ));
        }
    }
    Ok(())
}

/// Compares without an early exit on the first differing byte.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether `Host` is `IP:PORT`, `[IPv6]:PORT` or `localhost:PORT` with the instance's
/// port (the port may be left out when it is the scheme's default).
fn host_is_this_instance(inst: &Instance, host: Option<&str>) -> bool {
    let Some(host) = host.map(str::trim) else {
        return false;
    };
    let port = inst.addr.port();
    let default_port = if inst.tls.is_some() { 443 } else { 80 };
    let (name, p) = match host.rsplit_once(':') {
        Some((n, p)) if !n.is_empty() && (!n.contains(':') || n.ends_with(']')) => {
            (n, p.parse::<u16>().ok())
        }
        _ => (host, Some(default_port)),
    };
    if p != Some(port) {
        return false;
    }
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost") || bare.parse::<std::net::IpAddr>().is_ok()
}

async fn handle(
    inst: Arc<Instance>,
    req: Request<Incoming>,
    remote: SocketAddr,
) -> Result<Answer, Abort> {
    let whole = |r: Resp| Ok(r.map(Either::Left));
    let path = req.uri().path().to_string();
    let kind = endpoint_kind(&path);
    // The log shows what clients sent, also what Tomcat then rejects.
    if kind != "other" {
        record(&inst, &req, kind);
    }
    // The admin API is not Apollo: it answers its own JSON errors (and is not behind
    // the emulated Tomcat's request-target rules).
    if !is_admin(&path) && tomcat_rejects(&req, inst.opts.max_header_bytes) {
        let mut r = tomcat_bad_request();
        // The CORS extension covers it too: a page must be able to see the 400.
        if inst.opts.cors {
            add_cors_headers(&mut r);
        }
        return whole(r);
    }
    if is_admin(&path) {
        let mut r = match admin_guard(&inst, &req) {
            Ok(()) => crate::admin::handle(inst, req).await,
            Err(r) => r,
        };
        add_security_headers(&mut r);
        return whole(r);
    }
    let html = wants_html(req.headers().get("accept").and_then(|v| v.to_str().ok()));
    let cors = inst.opts.cors;
    let finish = |mut r: Resp| {
        if html {
            if let Some(page) = r.extensions().get::<ErrorPage>() {
                r = whitelabel(page);
            }
        }
        add_security_headers(&mut r);
        if cors {
            add_cors_headers(&mut r);
        }
        r
    };
    if req.method() == Method::OPTIONS {
        let r = if cors {
            preflight(&req)
        } else {
            options_without_cors(&req)
        };
        return whole(finish(r));
    }
    if kind != "other" {
        if let Some(action) = inst.take_fault(kind) {
            match action {
                FaultAction::Status { code } => {
                    return whole(finish(spring_error(code, Some("injected fault"), &path)));
                }
                FaultAction::Delay { ms } => tokio::time::sleep(Duration::from_millis(ms)).await,
                FaultAction::Close => return Err(Abort),
                FaultAction::Malformed => {
                    return whole(finish(reply(
                        200,
                        Some(JSON),
                        "{\"appId\":\"malformed\",\"configurations\":{\"k\":",
                    )));
                }
                FaultAction::Oversized { bytes } | FaultAction::OversizedStall { bytes } => {
                    let stall = matches!(action, FaultAction::OversizedStall { .. });
                    let (parts, _) = finish(reply(200, Some(JSON), "")).into_parts();
                    let body = PadBody::new(kind, bytes, stall);
                    return Ok(hyper::Response::from_parts(parts, Either::Right(body)));
                }
                FaultAction::Redirect { code, location } => {
                    let mut r = reply(code, None, "");
                    match HeaderValue::from_str(&location) {
                        Ok(v) => {
                            r.headers_mut().insert(hyper::header::LOCATION, v);
                        }
                        Err(_) => log::warn!("redirect fault: bad Location {location:?}"),
                    }
                    return whole(finish(r));
                }
                FaultAction::Hang => {
                    std::future::pending::<()>().await;
                }
                FaultAction::Body { status, body } => {
                    return whole(finish(reply(status, Some(JSON), body)));
                }
            }
        }
    }
    let r = route(&inst, &req, &path, kind, remote).await;
    whole(finish(r))
}

async fn route(
    inst: &Arc<Instance>,
    req: &Request<Incoming>,
    path: &str,
    kind: &str,
    remote: SocketAddr,
) -> Resp {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        // Every handler (the static-resource one for unmapped paths too) takes GET and
        // HEAD only; Apollo's exception handler maps the exception to 400.
        return method_not_supported(req.method().as_str());
    }
    if kind == "other" {
        return static_file(inst, path).await;
    }
    // Spring's trailing-slash match: `/configs/A/default/application/` is the same
    // handler (the raw path still counts for signatures and error pages).
    let route_path = match path.strip_suffix('/') {
        Some(p) if !p.is_empty() => p,
        _ => path,
    };
    let query = parse_query(req.uri().query());
    let ctx = Ctx {
        inst,
        req,
        path,
        route: route_path,
        query: &query,
        remote,
    };
    match kind {
        "services" => services(inst, route_path, path),
        "configs" => configs(&ctx),
        "configfiles" => configfiles(&ctx),
        _ => notifications(&ctx).await,
    }
}

struct Ctx<'a> {
    inst: &'a Arc<Instance>,
    req: &'a Request<Incoming>,
    /// The raw path as received.
    path: &'a str,
    /// The path the handler is chosen by (one trailing `/` dropped).
    route: &'a str,
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
            return Some(spring_error(400, Some("InvalidAppId"), self.path));
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
            Err(reason) if enforce => Some(spring_error(401, Some(reason), self.path)),
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

fn services(inst: &Instance, route: &str, path: &str) -> Resp {
    let list: Vec<ServiceInstance> = match route {
        "/services/config" => inst.config_services(),
        "/services/admin" => lock(&inst.settings).admin_services.clone(),
        "/services/meta" => Vec::new(),
        "/" => {
            let mut l = inst.config_services();
            l.extend(lock(&inst.settings).admin_services.clone());
            l
        }
        _ => return spring_error(404, None, path),
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

/// Splits `{appId}/{cluster}/{namespace}` into decoded segments; `None` when the shape
/// is wrong (no handler: a 404 without message). Tomcat rejected malformed escapes.
fn three_segments(rest: &str) -> Option<[String; 3]> {
    let parts: Vec<&str> = rest.split('/').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    Some([
        path_decode(parts[0])?,
        path_decode(parts[1])?,
        path_decode(parts[2])?,
    ])
}

/// The 404 of a `/configs` lookup that found nothing (`ConfigController`, with the
/// namespace as requested), which `/configfiles*` answer too: they call the same lookup
/// with their response.
fn not_found(ctx: &Ctx<'_>, app: &str, cluster: &str, ns: &str) -> Resp {
    spring_error(
        404,
        Some(&format!(
            "Could not load configurations with appId: {app}, clusterName: {cluster}, namespace: {ns}"
        )),
        ctx.path,
    )
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
    // (`/configs/` itself is routed here as `/configs`.)
    let rest = ctx.route.strip_prefix("/configs/").unwrap_or("");
    let Some([app, cluster, ns]) = three_segments(rest) else {
        return spring_error(404, None, ctx.path);
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
        return not_found(ctx, &app, &cluster, &ns);
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
    // Three segments are `/configfiles/{appId}/{cluster}/{ns}` (also for an app called
    // `json`); four starting with `json` or `raw` are those views.
    let rest = ctx.route.strip_prefix("/configfiles/").unwrap_or("");
    let (mode, rest) = match rest.split_once('/') {
        Some(("json", r)) if r.matches('/').count() == 2 => ("json", r),
        Some(("raw", r)) if r.matches('/').count() == 2 => ("raw", r),
        _ => ("text", rest),
    };
    let Some([app, cluster, ns]) = three_segments(rest) else {
        return spring_error(404, None, ctx.path);
    };
    if let Some(r) = ctx.authenticate(&app) {
        return r;
    }
    let d = ctx.inst.store.data();
    let Some(res) = resolve(ctx, &d, &app, &cluster, &ns, None) else {
        return not_found(ctx, &app, &cluster, &ns);
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
                return spring_error(404, None, ctx.path);
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
    if ctx.route == "/notifications" {
        return notifications_v1(ctx, &app).await;
    }
    let Some(cluster) = ctx.param("cluster").map(str::to_string) else {
        return missing_parameter("cluster", "String");
    };
    let Some(raw) = ctx.param("notifications") else {
        return missing_parameter("notifications", "String");
    };
    let dc = ctx.param("dataCenter").map(str::to_string);
    let invalid = || bad_request(&format!("invalid notifications format:{raw}"));
    // docs/protocol.md#poll-algorithm step 1: what Gson makes of the parameter.
    let Ok(entries) = java::parse_notifications(raw) else {
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
            // A `null` element reaches `notification.getNamespaceName()`.
            let Some((name, id)) = e else {
                return exception_error(
                    500,
                    Some(
                        "Cannot invoke \"com.ctrip.framework.apollo.core.dto.ApolloConfigNotification.getNamespaceName()\" because \"notification\" is null",
                    ),
                    "java.lang.NullPointerException",
                );
            };
            let Some(name) = name.as_deref().filter(|n| !n.is_empty()) else {
                continue;
            };
            let id = *id;
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
        // Step 6 lists the namespaces in the order of the real server's `HashSet`, not in
        // the request's order (clients must not depend on either).
        let names: Vec<&str> = kept.iter().map(|k| k.0.as_str()).collect();
        for i in java::poll_answer_order(&names) {
            let ((_, stripped, client_id), ns_keys) = (&kept[i], &keys[i]);
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
        return missing_parameter("cluster", "String");
    };
    // `defaultValue` also applies to an empty value.
    let ns = ctx.param("namespace").filter(|n| !n.is_empty());
    let ns = strip_properties(ns.unwrap_or("application")).to_string();
    let client_id = match ctx.param("notificationId").filter(|n| !n.is_empty()) {
        None => -1,
        Some(text) => match spring_long(text) {
            Ok(id) => id,
            Err(trimmed) => {
                return exception_error(
                    500,
                    Some(&format!(
                        "Failed to convert value of type 'java.lang.String' to required type 'long'; nested exception is java.lang.NumberFormatException: For input string: \"{trimmed}\""
                    )),
                    "org.springframework.web.method.annotation.MethodArgumentTypeMismatchException",
                );
            }
        },
    };
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

/// Spring's `String` to `long` conversion (`NumberUtils.parseNumber`): whitespace
/// removed, decimal or hex (`0x`, `#`); `Err` holds the trimmed text.
fn spring_long(text: &str) -> Result<i64, String> {
    let t: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let (neg, digits) = match t.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, t.strip_prefix('+').unwrap_or(&t)),
    };
    let hex = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
        .or_else(|| digits.strip_prefix('#'));
    let parsed = match hex {
        Some(h) => i64::from_str_radix(&format!("{}{h}", if neg { "-" } else { "" }), 16),
        None => t.parse::<i64>(),
    };
    parsed.map_err(|_| t.clone())
}

async fn static_file(inst: &Instance, path: &str) -> Resp {
    // An unmapped path: Spring's resource handler answers `sendError(404)` (no message).
    let missing = || spring_error(404, None, path);
    let Some(dir) = &inst.opts.static_dir else {
        return missing();
    };
    let rel = path
        .strip_prefix("/__static/")
        .unwrap_or(path.trim_start_matches('/'));
    let Some(rel) = path_decode(rel) else {
        return missing();
    };
    let mut file = dir.clone();
    for seg in rel.split('/') {
        if seg.is_empty() || seg == "." {
            continue;
        }
        if seg == ".." || seg.contains('\\') || seg.contains('\0') {
            return missing();
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
        Err(_) => missing(),
    }
}
