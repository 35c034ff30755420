//! An Apollo-compatible config service for tests, benchmarks and local development.
//!
//! It speaks the real wire protocol (long polls that are held and answered with 304,
//! release keys, public namespaces, gray releases, access keys, Gson-exact JSON) over real
//! HTTP (or https, see [`TestServerBuilder::tls`]) on 127.0.0.1, and adds an admin API
//! (`/__admin/...`, see the README) and the same operations as a blocking Rust API:
//!
//! ```
//! use apolloconf_testserver::TestServer;
//!
//! let server = TestServer::builder().hold(std::time::Duration::from_millis(300)).start()?;
//! let release = server
//!     .admin()
//!     .publish("SampleApp", "default", "application", [("timeout", "100")])?;
//! assert_eq!(release.release_key.len(), 31);
//! println!("point the client at {}", server.url());
//! server.shutdown();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! It deliberately shares no protocol code with `apolloconf-core`.

// Handlers return complete error responses as `Err`; they are built on error paths only.
#![allow(clippy::result_large_err)]

mod admin;
mod dirwatch;
mod http_util;
mod hub;
mod java;
mod json;
pub mod props;
mod reqlog;
mod server;
mod state;
mod store;
mod tls;
mod types;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

pub use reqlog::{DEFAULT_LOG_BYTES, MAX_LOG_ENTRIES};
pub use server::{MAX_OVERSIZED_BYTES, signature};
pub use store::{AdminError, Items, Store};
pub use tls::TestPki;
pub use types::{
    AccessKey, AccessKeyMode, Endpoint, Fault, FaultAction, Format, GrayRule, RecordedRequest,
    Release, ServiceInstance, Switches,
};

use server::{Instance, Options, Settings, lock};

/// Default long-poll hold of the real server.
pub const DEFAULT_HOLD: Duration = Duration::from_secs(60);

/// Default longest request head (request line and headers): Apollo's
/// `server.max-http-header-size`. A longer head gets Tomcat's 400 page.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 10_240;

/// Default limit of connections served at once: 64 below the process's soft limit of
/// open files (so the process keeps descriptors for everything else), at most 10,000,
/// at least 16; 200 where that limit cannot be read (not Linux).
pub fn default_max_connections() -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).map(str::to_string))
        });
    match soft.as_deref() {
        Some("unlimited") => 10_000,
        Some(n) => n
            .parse::<usize>()
            .map_or(200, |n| n.saturating_sub(64).clamp(16, 10_000)),
        None => 200,
    }
}

/// A fresh admin token: 32 hex digits from the operating system's random source.
fn generate_admin_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Configures and starts a [`TestServer`].
#[derive(Debug, Clone)]
pub struct TestServerBuilder {
    host: IpAddr,
    port: u16,
    hold: Duration,
    lag: Duration,
    store: Option<Store>,
    data_file: Option<PathBuf>,
    watch_dir: Option<PathBuf>,
    static_dir: Option<PathBuf>,
    config_services: Option<Vec<ServiceInstance>>,
    admin_services: Vec<ServiceInstance>,
    worker_threads: usize,
    tls: Option<tls::TlsPem>,
    cors: bool,
    admin_token: Option<String>,
    max_connections: usize,
    max_header_bytes: usize,
    request_log_bytes: usize,
}

impl Default for TestServerBuilder {
    fn default() -> Self {
        TestServerBuilder {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            hold: DEFAULT_HOLD,
            lag: Duration::ZERO,
            store: None,
            data_file: None,
            watch_dir: None,
            static_dir: None,
            config_services: None,
            admin_services: Vec::new(),
            worker_threads: 2,
            tls: None,
            cors: false,
            admin_token: None,
            max_connections: default_max_connections(),
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            request_log_bytes: DEFAULT_LOG_BYTES,
        }
    }
}

impl TestServerBuilder {
    /// Address to bind (default `127.0.0.1`).
    pub fn host(mut self, host: IpAddr) -> Self {
        self.host = host;
        self
    }

    /// Port to bind (default 0: any free port).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Long-poll hold before 304 (default 60 s; milliseconds are fine for tests).
    pub fn hold(mut self, hold: Duration) -> Self {
        self.hold = hold;
        self
    }

    /// Lagging mode: this instance sees publishes `lag` late, on `/notifications/v2` and
    /// `/configs` (unless `messages` forces a fresh read with the release-cache switch on).
    pub fn lag(mut self, lag: Duration) -> Self {
        self.lag = lag;
        self
    }

    /// Serve an existing store (e.g. another instance's, from [`TestServer::store`]), so
    /// several instances form one logical Apollo.
    pub fn store(mut self, store: Store) -> Self {
        self.store = Some(store);
        self
    }

    /// Persist the state to this file (loaded at start, rewritten atomically after every
    /// change). Ignored when [`TestServerBuilder::store`] is given.
    pub fn data_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.data_file = Some(path.into());
        self
    }

    /// Serve a directory of `{appId}/{cluster}/{namespace}.{ext}` files (see the README);
    /// files are loaded before `start` returns and re-published when they change.
    pub fn watch_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.watch_dir = Some(dir.into());
        self
    }

    /// Serve static files from this folder under `/__static/` and for any path the API
    /// does not match.
    pub fn static_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.static_dir = Some(dir.into());
        self
    }

    /// The list `/services/config` answers (default: this instance itself).
    pub fn config_services(mut self, list: Vec<ServiceInstance>) -> Self {
        self.config_services = Some(list);
        self
    }

    /// The list `/services/admin` answers (default: empty).
    pub fn admin_services(mut self, list: Vec<ServiceInstance>) -> Self {
        self.admin_services = list;
        self
    }

    /// Worker threads of the instance's runtime (default 2).
    pub fn worker_threads(mut self, n: usize) -> Self {
        self.worker_threads = n.max(1);
        self
    }

    /// Serve https instead of http: `cert_chain_pem` holds the server certificate
    /// first, then any intermediates (PEM `CERTIFICATE` blocks); `private_key_pem` its
    /// key (PKCS#8, PKCS#1 or SEC1 PEM). Everything else (long polls, the admin API,
    /// faults, pause/resume) works the same over TLS; [`TestServer::url`] then starts
    /// with `https://`, and so do the default `/services/config` entries. The PEM is
    /// checked by [`start`](TestServerBuilder::start), which fails with
    /// [`std::io::ErrorKind::InvalidInput`] when it cannot be used.
    pub fn tls(
        mut self,
        cert_chain_pem: impl Into<Vec<u8>>,
        private_key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.tls = Some(tls::TlsPem {
            cert_chain: cert_chain_pem.into(),
            private_key: private_key_pem.into(),
        });
        self
    }

    /// CORS for web pages on other origins (default off, as the real server, which answers
    /// a preflight 403): every non-admin answer gets `Access-Control-Allow-Origin: *` and
    /// `Access-Control-Expose-Headers: *`, and `OPTIONS` answers any preflight. The admin
    /// API never sends CORS headers. Browser tests whose page is on another origin need it.
    pub fn cors(mut self, on: bool) -> Self {
        self.cors = on;
        self
    }

    /// Require `Authorization: Bearer TOKEN` on the admin API. Without one, an instance
    /// that listens beyond loopback makes one up at start ([`TestServer::admin_token`]).
    pub fn admin_token(mut self, token: impl Into<String>) -> Self {
        self.admin_token = Some(token.into());
        self
    }

    /// Connections served at once (default [`default_max_connections`]); a connection
    /// beyond is answered `503` and closed (closed at once for https). Held long polls
    /// count.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Longest request head, request line and headers, in bytes (default
    /// [`DEFAULT_MAX_HEADER_BYTES`], Apollo's setting); a longer one gets Tomcat's `400`.
    pub fn max_header_bytes(mut self, n: usize) -> Self {
        self.max_header_bytes = n;
        self
    }

    /// Bound of the request log in bytes (default [`DEFAULT_LOG_BYTES`]; at most
    /// [`MAX_LOG_ENTRIES`] entries either way): the oldest entries are dropped first.
    pub fn request_log_bytes(mut self, n: usize) -> Self {
        self.request_log_bytes = n;
        self
    }

    /// Binds and starts serving on a background runtime.
    ///
    /// # Errors
    /// The port cannot be bound, the data file cannot be read, or the TLS certificate
    /// or key given to [`tls`](TestServerBuilder::tls) is unusable (`InvalidInput`).
    pub fn start(self) -> std::io::Result<TestServer> {
        let acceptor = self.tls.as_ref().map(tls::acceptor).transpose()?;
        let admin_token = match self.admin_token {
            Some(t) if t.trim().is_empty() => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "the admin token is empty",
                ));
            }
            Some(t) => Some(t.trim().to_string()),
            None if !self.host.is_loopback() => Some(generate_admin_token()?),
            None => None,
        };
        let store = match (self.store, &self.data_file) {
            (Some(s), _) => s,
            (None, Some(path)) => Store::with_data_file(path)?,
            (None, None) => Store::new(),
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.worker_threads)
            .thread_name("apolloconf-testserver")
            .enable_all()
            .build()?;
        // Bind on the new runtime without `block_on`, so `start` also works when called
        // from inside another runtime (e.g. a `#[tokio::test]`).
        let (tx, rx) = std::sync::mpsc::channel();
        let bind_addr = SocketAddr::new(self.host, self.port);
        rt.spawn(async move {
            let _ = tx.send(server::bind(bind_addr).await);
        });
        let listener = rx
            .recv()
            .map_err(|_| std::io::Error::other("the server runtime stopped"))??;
        let addr = listener.local_addr()?;
        let inst = Instance::new(
            store.clone(),
            Settings {
                hold: self.hold,
                lag: self.lag,
                config_services: self.config_services,
                admin_services: self.admin_services,
            },
            Options {
                static_dir: self.static_dir,
                cors: self.cors,
                admin_token,
                max_connections: self.max_connections,
                max_header_bytes: self.max_header_bytes,
                request_log_bytes: self.request_log_bytes,
            },
            rt.handle().clone(),
            addr,
            acceptor,
        );
        let stop = Arc::new(AtomicBool::new(false));
        let mut watcher = None;
        if let Some(dir) = self.watch_dir {
            let mut w = dirwatch::DirWatcher::new(dir, store);
            w.scan();
            watcher = Some(w.spawn(Duration::from_millis(200), stop.clone())?);
        }
        inst.serve(listener);
        Ok(TestServer {
            admin: Admin { inst },
            rt: Some(rt),
            stop,
            watcher,
        })
    }
}

/// A running server instance. Dropping it (or [`TestServer::shutdown`]) stops it.
pub struct TestServer {
    admin: Admin,
    rt: Option<tokio::runtime::Runtime>,
    stop: Arc<AtomicBool>,
    watcher: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

impl TestServer {
    /// Starts a server with default settings on 127.0.0.1 and a free port.
    pub fn start() -> std::io::Result<TestServer> {
        TestServerBuilder::default().start()
    }

    /// A builder for other settings.
    pub fn builder() -> TestServerBuilder {
        TestServerBuilder::default()
    }

    /// `http://127.0.0.1:PORT` (no trailing slash); `https://` with
    /// [`TestServerBuilder::tls`].
    pub fn url(&self) -> String {
        self.admin.url()
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.admin.inst.addr.port()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.admin.inst.addr
    }

    /// The admin handle (clonable, usable from any thread).
    pub fn admin(&self) -> &Admin {
        &self.admin
    }

    /// The token the admin API requires (`Authorization: Bearer TOKEN`), if any: the one
    /// given to [`TestServerBuilder::admin_token`], or the one made up at start by an
    /// instance that listens beyond loopback.
    pub fn admin_token(&self) -> Option<&str> {
        self.admin.inst.opts.admin_token.as_deref()
    }

    /// The state this instance serves; give it to [`TestServerBuilder::store`] to start
    /// more instances of the same logical Apollo.
    pub fn store(&self) -> Store {
        self.admin.inst.store.clone()
    }

    /// Stops the server and waits for its threads.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.admin.inst.shutdown();
        if let Some(rt) = self.rt.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                rt.shutdown_background();
            } else {
                rt.shutdown_timeout(Duration::from_secs(2));
            }
        }
        if let Some(w) = self.watcher.take() {
            let _ = w.join();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// Blocking handle mirroring the admin API of one instance. State operations act on the
/// instance's [`Store`] (shared by every instance serving it); hold, lag, faults, the
/// request log, services and pause/resume are per instance.
#[derive(Clone)]
pub struct Admin {
    inst: Arc<Instance>,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin").field("url", &self.url()).finish()
    }
}

fn to_items<I, K, V>(items: I) -> Items
where
    I: IntoIterator<Item = (K, V)>,
    K: Into<String>,
    V: Into<String>,
{
    items
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect()
}

impl Admin {
    /// `http://HOST:PORT` of the instance (`https://` when it serves TLS).
    pub fn url(&self) -> String {
        self.inst.url()
    }

    /// Creates an app (and its `application` namespace); existing apps are fine.
    pub fn create_app(&self, app: &str) -> Result<(), AdminError> {
        self.inst.store.create_app(app)
    }

    /// Creates a namespace; returns the stored name (`foo` + YAML → `foo.yaml`).
    pub fn create_namespace(
        &self,
        app: &str,
        name: &str,
        format: Format,
        public: bool,
    ) -> Result<String, AdminError> {
        self.inst.store.create_namespace(app, name, format, public)
    }

    /// Publishes a release with these items (in order).
    pub fn publish<I, K, V>(
        &self,
        app: &str,
        cluster: &str,
        ns: &str,
        items: I,
    ) -> Result<Release, AdminError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.inst.store.publish(app, cluster, ns, to_items(items))
    }

    /// Publishes the text of a non-properties namespace.
    pub fn publish_content(
        &self,
        app: &str,
        cluster: &str,
        ns: &str,
        content: &str,
    ) -> Result<Release, AdminError> {
        self.inst.store.publish_content(app, cluster, ns, content)
    }

    /// Rolls back the latest release; returns the now-current key and the message id.
    pub fn rollback(&self, app: &str, cluster: &str, ns: &str) -> Result<Release, AdminError> {
        self.inst.store.rollback(app, cluster, ns)
    }

    /// Creates the gray branch; returns its name (the `cluster` gray clients receive).
    pub fn gray_create_branch(
        &self,
        app: &str,
        cluster: &str,
        ns: &str,
    ) -> Result<String, AdminError> {
        self.inst.store.create_branch(app, cluster, ns)
    }

    /// Publishes a gray release (its complete configuration) on the branch.
    pub fn gray_publish<I, K, V>(
        &self,
        app: &str,
        cluster: &str,
        ns: &str,
        items: I,
    ) -> Result<Release, AdminError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.inst
            .store
            .gray_publish(app, cluster, ns, to_items(items))
    }

    /// Replaces the branch's rules; returns the release-message id sent.
    pub fn gray_set_rules(
        &self,
        app: &str,
        cluster: &str,
        ns: &str,
        rules: Vec<GrayRule>,
    ) -> Result<i64, AdminError> {
        self.inst.store.set_gray_rules(app, cluster, ns, rules)
    }

    /// Activates or deactivates the branch.
    pub fn gray_set_active(
        &self,
        app: &str,
        cluster: &str,
        ns: &str,
        active: bool,
    ) -> Result<i64, AdminError> {
        self.inst.store.set_branch_active(app, cluster, ns, active)
    }

    /// Merges the branch into its parent cluster (new normal release) and deletes it.
    pub fn gray_merge(&self, app: &str, cluster: &str, ns: &str) -> Result<Release, AdminError> {
        self.inst.store.merge_branch(app, cluster, ns)
    }

    /// Deletes the branch; returns the release-message id sent.
    pub fn gray_delete(&self, app: &str, cluster: &str, ns: &str) -> Result<i64, AdminError> {
        self.inst.store.delete_branch(app, cluster, ns)
    }

    /// Adds an (enabled) access key.
    pub fn add_access_key(
        &self,
        app: &str,
        secret: &str,
        mode: AccessKeyMode,
    ) -> Result<AccessKey, AdminError> {
        self.inst.store.add_access_key(app, secret, mode)
    }

    /// Enables or disables an access key.
    pub fn set_access_key_enabled(
        &self,
        app: &str,
        id: u64,
        enabled: bool,
    ) -> Result<AccessKey, AdminError> {
        self.inst.store.set_access_key_enabled(app, id, enabled)
    }

    /// Removes an access key.
    pub fn remove_access_key(&self, app: &str, id: u64) -> Result<(), AdminError> {
        self.inst.store.remove_access_key(app, id)
    }

    /// Sets the long-poll hold of this instance.
    pub fn set_hold(&self, hold: Duration) {
        lock(&self.inst.settings).hold = hold;
    }

    /// Sets the lag of this instance (see [`TestServerBuilder::lag`]).
    pub fn set_lag(&self, lag: Duration) {
        lock(&self.inst.settings).lag = lag;
    }

    /// Current switches (shared by all instances of the store).
    pub fn switches(&self) -> Switches {
        self.inst.store.switches()
    }

    /// Replaces the switches.
    pub fn set_switches(&self, switches: Switches) {
        self.inst.store.set_switches(switches);
    }

    /// Sets the `/services/config` list of this instance.
    pub fn set_config_services(&self, list: Vec<ServiceInstance>) {
        lock(&self.inst.settings).config_services = Some(list);
    }

    /// Sets the `/services/admin` list of this instance.
    pub fn set_admin_services(&self, list: Vec<ServiceInstance>) {
        lock(&self.inst.settings).admin_services = list;
    }

    /// Requests received so far (admin and static requests excluded), oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.inst.log).entries().iter().cloned().collect()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        lock(&self.inst.log).clear();
    }

    /// Adds a fault; faults are matched in the order they were added.
    pub fn inject_fault(&self, fault: Fault) {
        lock(&self.inst.faults).push(fault);
    }

    /// The active faults, in matching order (a fault with `times` leaves once used up).
    pub fn faults(&self) -> Vec<Fault> {
        lock(&self.inst.faults).clone()
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        lock(&self.inst.faults).clear();
    }

    /// Number of long polls currently held by this instance.
    pub fn held_polls(&self) -> usize {
        self.inst.hub.held()
    }

    /// Closes the listener (new connections are refused) and every open connection
    /// (held polls are dropped). State is kept.
    pub fn pause(&self) {
        self.inst.pause();
    }

    /// Listens again on the same address.
    pub fn resume(&self) -> std::io::Result<()> {
        let inst = self.inst.clone();
        self.inst
            .run_sync(async move { inst.resume_async().await })
            .unwrap_or_else(|| Err(std::io::Error::other("the server runtime is gone")))
    }

    /// Pause, wait `down`, resume: a restart that keeps the state.
    pub fn restart(&self, down: Duration) -> std::io::Result<()> {
        self.pause();
        std::thread::sleep(down);
        self.resume()
    }

    /// Forgets the state (apps, releases, keys, switches), faults, recorded requests and
    /// hold/lag overrides. Release-message ids keep increasing.
    pub fn reset(&self) {
        admin::reset_instance(&self.inst);
    }
}
