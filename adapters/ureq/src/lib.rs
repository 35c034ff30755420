//! A client for the [Apollo configuration center](https://github.com/apolloconfig/apollo).
//!
//! The protocol lives in the sans-IO [`apolloconf_core`]; this crate drives it with
//! blocking IO: one driver thread owns the protocol state, HTTP requests run on short-lived
//! worker threads with [`ureq`], and listeners are called on a dispatcher thread. Reads
//! never wait for IO: they look at an immutable [`Snapshot`] that the driver replaces
//! after every change.
//!
//! ```no_run
//! use apolloconf::{Client, Interest};
//!
//! let client = Client::builder()
//!     .app_id("SampleApp")
//!     .meta_server("http://127.0.0.1:8080")
//!     .namespaces(["application", "datasource.yaml"])
//!     .build()?;
//! let timeout: u64 = client.get_or("timeout", 100);
//! client.on_change(Interest::all().prefixes(["db."]), |event| {
//!     for change in &event.changes {
//!         println!("{} {}: {:?} -> {:?}", event.namespace, change.key, change.old, change.new);
//!     }
//! });
//! # let _ = timeout;
//! client.close();
//! # Ok::<(), apolloconf::Error>(())
//! ```
//!
//! # Settings
//!
//! Every setting has the Java client's name and precedence: a value given to the
//! [`ClientBuilder`] wins, then the environment variable, then `server.properties`
//! (`APOLLO_PATH_SERVER_PROPERTIES`, default `/opt/settings/server.properties`):
//!
//! | setting | builder | environment | `server.properties` |
//! |---|---|---|---|
//! | app id | [`app_id`](ClientBuilder::app_id) | `APP_ID` | `app.id` |
//! | config service (no discovery) | [`config_service`](ClientBuilder::config_service) | `APOLLO_CONFIG_SERVICE` | `apollo.config-service` |
//! | meta server | [`meta_server`](ClientBuilder::meta_server) | `APOLLO_META`, then `{ENV}_META` | `apollo.meta` |
//! | environment | [`env_name`](ClientBuilder::env_name) | `ENV` (`PROD`→`PRO`, `FWS`→`FAT`) | `env` |
//! | cluster | [`cluster`](ClientBuilder::cluster) | `APOLLO_CLUSTER` | `apollo.cluster` (else the idc, else `default`) |
//! | data center | [`data_center`](ClientBuilder::data_center) | `IDC` | `idc` |
//! | label | [`label`](ClientBuilder::label) | `APOLLO_LABEL` | `apollo.label` |
//! | access-key secret | [`secret`](ClientBuilder::secret) | `APOLLO_ACCESS_KEY_SECRET` | `apollo.access-key.secret` |
//! | cache root | [`cache_dir`](ClientBuilder::cache_dir) | `APOLLO_CACHE_DIR` | `apollo.cache-dir` (default `/opt/data`) |
//!
//! A config service found anywhere beats a meta server found in a later source, as in the
//! Java client; an explicit builder value beats both. The deprecated spellings the Java
//! client still reads (`APOLLO_CONFIGSERVICE` / `apollo.configService`,
//! `APOLLO_ACCESSKEY_SECRET` / `apollo.accesskey.secret`, `APOLLO_CACHEDIR` /
//! `apollo.cacheDir`) are consulted after the current ones. Tests inject the environment
//! with [`ClientBuilder::environment`] and [`Env::from_map`].
//!
//! # https
//!
//! Meta servers and config services may be `https://` URLs (discovery may hand out
//! `https://` services too). Certificates are verified against the public (Mozilla)
//! roots bundled with the client. A server whose certificate is signed by a private
//! (company) CA needs that CA:
//!
//! ```no_run
//! let client = apolloconf::Client::builder()
//!     .app_id("SampleApp")
//!     .config_service("https://apollo.corp.example:8443")
//!     .tls_root_file("/etc/corp/ca.pem")      // or .tls_root_pem(bytes); repeatable
//!     .build()?;
//! # Ok::<(), apolloconf::Error>(())
//! ```
//!
//! Extra roots are added to the public ones, never replace them. Unusable PEM is an
//! [`Error::TlsRoot`] from [`build`](ClientBuilder::build). A certificate the client
//! does not trust (unknown issuer, another host name, expired) is not a build error: like
//! any connection failure it is retried, and reported as an [`Event::Error`] and in
//! [`Metrics::last_error`] with an [`ErrorCause::Transport`] of kind `Tls` whose
//! message starts with `TLS error:` and keeps rustls' description (for example
//! `invalid peer certificate: UnknownIssuer`). With the `platform-verifier` feature,
//! `ClientBuilder::tls_platform_verifier` uses the operating system's verifier and trust
//! store instead.
//!
//! # Cache
//!
//! Files are the Java client's: `{cacheDir}/{appId}/config-cache/{appId}+{cluster}+{namespace}.properties`,
//! ISO-8859-1 properties with `\uXXXX` escapes, so a Java and a Rust client can share a
//! directory. They are read at start (values then come from the cache until the server
//! answers) and rewritten atomically (temp file, fsync, rename) after every change, once
//! readers and listeners have the new values (within 20–250 ms; `close()` writes what is
//! still queued); a failed write is logged and counted, never fatal.
//!
//! If the configured directory is not writable, the client falls back to a directory of
//! the user it runs as, never to one another user could have made: on Unix
//! `$XDG_CACHE_HOME/apolloconf/{appId}/config-cache`, else
//! `$HOME/.cache/apolloconf/{appId}/config-cache` (both variables as given by the
//! [`environment`](ClientBuilder::environment)), else `{temp}/apolloconf-{uid}/...`, a
//! directory the client creates with mode 0700 and checks before every use (a directory,
//! not a symbolic link, owned by the effective uid, no permission for group or others).
//! A fallback that fails the check is refused with a warning and an [`Event::Error`]
//! ([`ErrorCause::Cache`]); values are then kept in memory only. (Elsewhere the
//! fallback is `{temp}/apolloconf-cache/...`, as the temp directory is the user's own.)
//!
//! A cache file is read only when it is a regular file, not a symbolic link, owned by
//! the effective uid, not writable by group or others, and at most 48 MiB (three times
//! the 16 MiB an HTTP answer may have: the file escapes non-ASCII text as `\uXXXX`).
//! Anything else is skipped with an [`Event::Error`] ([`ErrorCause::Cache`]) that says
//! why, and the client starts without it. Temporary and probe files are created
//! exclusively under random names, so nothing planted at their names is followed. The
//! effective uid is read from `/proc/self/status`, or taken from the owner of a file the
//! client creates (and removes) in the temp directory where there is no `/proc`.
//!
//! # Threads and shutdown
//!
//! [`Client::close`] (or dropping the client) stops every thread the client started and
//! joins it: the driver, the listener thread and the HTTP workers. Workers are short-lived
//! threads, one per request in flight; the core never has more than one long poll, one
//! request per namespace and one discovery request in flight, so their number is bounded
//! by the namespaces plus two. Spawning per request (rather than keeping a pool) costs tens
//! of microseconds against requests that are seconds apart, and lets a 60 s long poll hold
//! its own thread without starving fetches. Close interrupts requests in flight through
//! ureq's `Agent::shutdown` (their sockets are closed, so a held long poll returns at
//! once); only a TCP connect still in progress is not interruptible: close waits for it at
//! most 2 s, then leaves it to end on its connect timeout (1 s by default).

pub mod bind;
mod cache;
mod driver;
mod http;
pub mod settings;
mod snapshot;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

pub use apolloconf_core::{
    Change, ChangeEvent, ChangeKind, ClientError, ConfigError, Counter, ErrorCause, Event, Format,
    Interest, Source, Status, Timing, TransportError, TransportErrorKind, Values,
};
use serde::de::DeserializeOwned;

pub use bind::BindError;
pub use settings::{Env, Resolved, ServerSource};
pub use snapshot::{Metrics, Namespace, NamespaceMetrics, Snapshot};

use driver::{Driver, EventCallback, ForkState, Listener, Msg, Shared, Sink};

/// The default start-up timeout of [`ClientBuilder::build`].
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a client could not be built or a command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No app id anywhere.
    #[error(
        "no app id: set it with ClientBuilder::app_id, the APP_ID environment variable or app.id in {}",
        server_properties.display()
    )]
    MissingAppId {
        /// The `server.properties` file that was consulted.
        server_properties: PathBuf,
    },
    /// No meta server and no config service anywhere. (Unlike the Java client there is no
    /// silent fallback to `http://apollo.meta`.)
    #[error(
        "no meta server or config service: set ClientBuilder::meta_server / config_service, \
         APOLLO_META / APOLLO_CONFIG_SERVICE (or ENV plus {{ENV}}_META), or apollo.meta in {}",
        server_properties.display()
    )]
    NoServers {
        /// The `server.properties` file that was consulted.
        server_properties: PathBuf,
    },
    /// The configuration was rejected (an empty app id, a URL that does not parse, ...).
    /// The message hides a password embedded in a URL
    /// ([`settings::redact_credentials`]).
    #[error("invalid configuration: {}", settings::redact_credentials(&.0.to_string()))]
    Config(#[from] ConfigError),
    /// `server.properties` exists but could not be read.
    #[error("cannot read {}: {message}", path.display())]
    ServerProperties {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// An extra root certificate given to [`ClientBuilder::tls_root_pem`] or
    /// [`ClientBuilder::tls_root_file`] cannot be used: the file cannot be read, the PEM
    /// is malformed or holds no certificate, or a certificate does not parse.
    #[error("unusable TLS root certificate ({origin}): {message}")]
    TlsRoot {
        /// Which input: `PEM #N given to tls_root_pem` (N counts its calls from 1) or
        /// `file PATH`.
        origin: String,
        /// What is wrong with it.
        message: String,
    },
    /// A thread could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(#[source] std::io::Error),
    /// The client is closed.
    #[error("the client is closed")]
    Closed,
    /// [`Client::after_fork_in_child`] without a successful
    /// [`Client::prepare_fork`] before the fork.
    #[error("the client was not prepared for fork(): call prepare_fork() before forking")]
    NotPreparedForFork,
}

impl Error {
    /// The setting an error is about, by its builder name (`app_id`, `meta_server`,
    /// `config_service`, `cluster`, `namespaces`, `timing`, `server_properties`,
    /// `tls_root`), for hosts that report which setting to fix. `None` for errors that are
    /// not about one setting.
    pub fn setting(&self) -> Option<&'static str> {
        match self {
            Error::MissingAppId { .. } => Some("app_id"),
            Error::NoServers { .. } => Some("meta_server"),
            Error::ServerProperties { .. } => Some("server_properties"),
            Error::TlsRoot { .. } => Some("tls_root"),
            Error::Config(c) => match c {
                ConfigError::InvalidAppId(_) => Some("app_id"),
                ConfigError::InvalidCluster(_) => Some("cluster"),
                ConfigError::NoServers => Some("meta_server"),
                ConfigError::InvalidUrl(_) => Some("meta_server/config_service"),
                ConfigError::InvalidNamespace(_) | ConfigError::DuplicateNamespace(_) => {
                    Some("namespaces")
                }
                ConfigError::InvalidTiming(_) => Some("timing"),
                _ => None,
            },
            _ => None,
        }
    }
}

/// Identifies a listener for [`Client::remove_listener`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerId(u64);

/// Configures and starts a [`Client`]. See the crate docs for the settings' precedence.
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    overrides: settings::Overrides,
    env: Env,
    namespaces: Vec<String>,
    ip: Option<String>,
    cache: bool,
    timing: Timing,
    startup_timeout: Duration,
    sinks: Vec<Sender<Event>>,
    callbacks: EventCallbacks,
    tls: http::TlsOptions,
}

/// The builder's [`on_event`](ClientBuilder::on_event) callbacks.
#[derive(Clone, Default)]
struct EventCallbacks(Vec<EventCallback>);

impl std::fmt::Debug for EventCallbacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} callback(s)", self.0.len())
    }
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            overrides: settings::Overrides::default(),
            env: Env::process(),
            namespaces: Vec::new(),
            ip: None,
            cache: true,
            timing: Timing::default(),
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            sinks: Vec::new(),
            callbacks: EventCallbacks::default(),
            tls: http::TlsOptions::default(),
        }
    }
}

impl ClientBuilder {
    /// The application id (`app.id`).
    pub fn app_id(mut self, app_id: impl Into<String>) -> Self {
        self.overrides.app_id = Some(app_id.into());
        self
    }
    /// Meta-server address(es), comma-separated (`apollo.meta`).
    pub fn meta_server(mut self, list: impl Into<String>) -> Self {
        self.overrides.meta = Some(list.into());
        self
    }
    /// Config-service URL(s), comma-separated, used without discovery (`apollo.config-service`).
    pub fn config_service(mut self, list: impl Into<String>) -> Self {
        self.overrides.config_service = Some(list.into());
        self
    }
    /// The environment (`env`: `DEV`, `FAT`, `UAT`, `PRO`, ...) that selects `{ENV}_META`.
    pub fn env_name(mut self, env: impl Into<String>) -> Self {
        self.overrides.env = Some(env.into());
        self
    }
    /// The cluster (`apollo.cluster`).
    pub fn cluster(mut self, cluster: impl Into<String>) -> Self {
        self.overrides.cluster = Some(cluster.into());
        self
    }
    /// The data center (`idc`).
    pub fn data_center(mut self, idc: impl Into<String>) -> Self {
        self.overrides.idc = Some(idc.into());
        self
    }
    /// A namespace to watch; lookups try namespaces in the order added. Default
    /// `application`.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespaces.push(namespace.into());
        self
    }
    /// Several namespaces.
    pub fn namespaces<I, S>(mut self, list: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.namespaces.extend(list.into_iter().map(Into::into));
        self
    }
    /// The gray-release label (`apollo.label`).
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.overrides.label = Some(label.into());
        self
    }
    /// The ip reported to the server (gray rules by ip).
    pub fn ip(mut self, ip: impl Into<String>) -> Self {
        self.ip = Some(ip.into());
        self
    }
    /// The access-key secret (`apollo.access-key.secret`); it is never logged.
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.overrides.secret = Some(secret.into());
        self
    }
    /// The cache root (`apollo.cache-dir`).
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.overrides.cache_dir = Some(dir.into());
        self
    }
    /// Turn the local cache on (default) or off.
    pub fn cache(mut self, enabled: bool) -> Self {
        self.cache = enabled;
        self
    }
    /// The `server.properties` file to read (instead of `APOLLO_PATH_SERVER_PROPERTIES`
    /// or the default).
    pub fn server_properties(mut self, path: impl Into<PathBuf>) -> Self {
        self.overrides.server_properties = Some(path.into());
        self
    }
    /// The environment variables to read (default: the process environment).
    pub fn environment(mut self, env: Env) -> Self {
        self.env = env;
        self
    }
    /// Timing knobs of the protocol (the Java client's defaults otherwise).
    pub fn timing(mut self, timing: Timing) -> Self {
        self.timing = timing;
        self
    }
    /// How long [`build`](ClientBuilder::build) waits for the first load of every
    /// namespace (default 5 s). After it, `build` returns with what the cache had; the
    /// rest arrives later with change events. Any duration works: one too long to add
    /// to the clock (`Duration::MAX`) waits until every namespace settled.
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Also trust the root certificate(s) in `pem` for `https` servers: typically the
    /// private CA that signed a company's Apollo certificates. `pem` holds one or more
    /// `-----BEGIN CERTIFICATE-----` blocks (a CA bundle works; other blocks are ignored).
    /// Call it again for more roots.
    ///
    /// The roots are added to the public (Mozilla) roots the client trusts by default, so
    /// servers with public certificates keep working. Certificates are verified as
    /// usual: they must be valid now and name the host of the URL (an `https://IP` URL
    /// needs the IP in the certificate's subject alternative names).
    ///
    /// The PEM is checked by [`build`](ClientBuilder::build), which fails with
    /// [`Error::TlsRoot`] when it holds no certificate or a certificate does not parse.
    pub fn tls_root_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        let n = 1 + self
            .tls
            .roots
            .iter()
            .filter(|r| matches!(r, http::RootSource::Pem(..)))
            .count();
        self.tls.roots.push(http::RootSource::Pem(n, pem.into()));
        self
    }

    /// Like [`tls_root_pem`](ClientBuilder::tls_root_pem), with the PEM read from a file
    /// when the client is built (an unreadable file is an [`Error::TlsRoot`]). Call it
    /// again for more files.
    pub fn tls_root_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls.roots.push(http::RootSource::File(path.into()));
        self
    }

    /// Verify server certificates with the operating system's verifier and trust store
    /// (where a company usually installs its CA) instead of the bundled public roots.
    /// It cannot be combined with [`tls_root_pem`](ClientBuilder::tls_root_pem) or
    /// [`tls_root_file`](ClientBuilder::tls_root_file): [`build`](ClientBuilder::build)
    /// then fails with [`Error::TlsRoot`]. Needs the `platform-verifier` feature.
    #[cfg(feature = "platform-verifier")]
    pub fn tls_platform_verifier(mut self, enabled: bool) -> Self {
        self.tls.platform_verifier = enabled;
        self
    }

    /// Receive every event from the very start (including cache problems found while
    /// starting); the same stream as [`Client::events`].
    pub fn event_sink(mut self, sink: Sender<Event>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// Call `f` on the listener thread for every event from the very start (the events of
    /// [`event_sink`](ClientBuilder::event_sink), without a channel): for hosts that hand
    /// errors to a callback. A callback that panics is logged and counted in
    /// [`Metrics::listener_panics`].
    pub fn on_event<F>(mut self, f: F) -> Self
    where
        F: Fn(&Event) + Send + Sync + 'static,
    {
        self.callbacks.0.push(Arc::new(f));
        self
    }

    /// Apply the precedence rules without starting anything.
    ///
    /// # Errors
    /// [`Error::MissingAppId`] or [`Error::ServerProperties`].
    pub fn resolve(&self) -> Result<Resolved, Error> {
        settings::resolve(&self.overrides, &self.env)
    }

    /// Start the client; returns once every namespace is loaded (or found missing, or its
    /// first round of attempts failed), or when the start-up timeout passes.
    ///
    /// # Errors
    /// A typed [`Error`] for settings that cannot work: no app id, no server, an invalid
    /// URL or name (as [`Error::Config`]), an unusable extra TLS root
    /// ([`Error::TlsRoot`]).
    pub fn build(self) -> Result<Client, Error> {
        let resolved = self.resolve()?;
        let agent = http::agent(&self.tls)?;
        let servers = resolved.servers.clone().ok_or_else(|| Error::NoServers {
            server_properties: resolved.server_properties.clone(),
        })?;
        let clock = driver::Clock::new();
        let mut cb = apolloconf_core::Config::builder(resolved.app_id.clone())
            .cluster(resolved.cluster.clone());
        cb = match &servers {
            ServerSource::Meta(m) => cb.meta_server(m),
            ServerSource::ConfigService(c) => cb.config_service(c),
        };
        if let Some(idc) = &resolved.idc {
            cb = cb.data_center(idc.clone());
        }
        if let Some(l) = &resolved.label {
            cb = cb.label(l.clone());
        }
        if let Some(s) = &resolved.secret {
            cb = cb.secret(s.clone());
        }
        if let Some(ip) = &self.ip {
            cb = cb.ip(ip.clone());
        }
        let config = cb
            .namespaces(self.namespaces.iter().cloned())
            .timing(self.timing.clone())
            .seed(seed())
            .wall_clock(clock.wall_ms())
            .build();
        let mut core = apolloconf_core::Client::new(config, clock.now())?;
        let shared = Arc::new(Shared::new(self.sinks, self.callbacks.0));

        let cache = match (self.cache, core.cache_dir()) {
            (false, _) => None,
            (true, None) => {
                log::warn!(
                    "app id {:?} cannot be used in a path; the local cache is off",
                    resolved.app_id
                );
                None
            }
            (true, Some(dir)) => Some(cache::CacheDir::open(&resolved.cache_root, &dir, &self.env)),
        };
        let mut pending = Vec::new();
        let cache = cache.map(|(c, problems)| {
            pending.extend(problems.into_iter().map(|msg| {
                Event::Error(ClientError {
                    namespace: None,
                    request: None,
                    url: None,
                    cause: ErrorCause::Cache(msg),
                })
            }));
            c
        });
        if let Some(c) = &cache {
            let names: Vec<String> = core.namespaces().map(|n| n.name().to_string()).collect();
            for ns in names {
                driver::load_cache(&mut core, c, &shared, &ns, &mut pending);
            }
        }
        let cache_dir = cache.as_ref().map(|c| c.write_dir().to_path_buf());

        let state = ForkState {
            core,
            live: Vec::new(),
            clock,
        };
        let restart = Restart {
            tls: self.tls.clone(),
            cache,
        };
        let (tx, threads) = start_threads(state, &shared, agent, &restart, pending)?;
        let client = Client {
            shared,
            tx: Mutex::new(tx),
            threads: Mutex::new(Some(threads)),
            resolved,
            cache_dir,
            restart,
            paused: Mutex::new(None),
        };
        if !client.shared.wait_ready(self.startup_timeout) {
            log::warn!(
                "apollo: not every namespace loaded within {:?}; serving what is there, the rest follows as change events",
                self.startup_timeout
            );
        }
        Ok(client)
    }
}

/// What a driver needs besides the protocol state, kept to start one again in the child
/// of a `fork()`.
struct Restart {
    tls: http::TlsOptions,
    cache: Option<cache::CacheDir>,
}

type Threads = (JoinHandle<()>, JoinHandle<()>);

/// Start a driver for `state` and a dispatcher; returns the driver's inbox and both
/// threads. Requests that were in flight in `state` are failed first (they belonged to
/// the parent of a fork).
fn start_threads(
    state: ForkState,
    shared: &Arc<Shared>,
    agent: ureq::Agent,
    restart: &Restart,
    pending: Vec<Event>,
) -> Result<(Sender<Msg>, Threads), Error> {
    let (tx, rx, dtx, drx) = driver::channels();
    let dispatcher = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("apolloconf-listeners".into())
            .spawn(move || driver::dispatch_loop(shared, drx))
            .map_err(Error::Thread)?
    };
    let mut drv = Driver {
        core: state.core,
        rx,
        tx: tx.clone(),
        shared: shared.clone(),
        agent,
        cache: restart.cache.clone(),
        clock: state.clock,
        dispatch: dtx,
        pending,
        workers: Vec::new(),
        live: Vec::new(),
        writes: Default::default(),
    };
    drv.forget_requests_lost_in_fork(&state.live);
    let driver = std::thread::Builder::new()
        .name("apolloconf-driver".into())
        .spawn(move || drv.run())
        .map_err(Error::Thread)?;
    Ok((tx, (driver, dispatcher)))
}

/// The resume signals of a client parked by [`Client::prepare_fork`], and its state.
struct Paused {
    resume: Sender<()>,
    dispatcher_resume: Sender<()>,
    state: ForkState,
}

/// How long [`Client::prepare_fork`] waits for the threads to park.
const FORK_PAUSE_LIMIT: Duration = Duration::from_secs(5);

/// How far away a deadline is put when `now + duration` cannot be represented (a
/// start-up timeout of `Duration::MAX`, say): far enough never to come.
const FAR_AWAY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `now + d` without overflow: a duration too long to add gives a deadline about a
/// century away (or, failing even that, a year).
pub(crate) fn deadline(now: std::time::Instant, d: Duration) -> std::time::Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(FAR_AWAY))
        .or_else(|| now.checked_add(Duration::from_secs(365 * 24 * 3600)))
        .unwrap_or(now)
}

/// A fresh random seed for the core's choices (instance picks, jitter), from the keys of
/// the standard library's `RandomState` (random per process, and different for each
/// `RandomState` made), so clients in different processes, or two in one, spread
/// differently.
fn seed() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64)
}

/// A running Apollo client. Cheap, non-blocking reads; close it with [`Client::close`] or
/// by dropping it. Share it between threads with an `Arc`.
pub struct Client {
    shared: Arc<Shared>,
    tx: Mutex<Sender<Msg>>,
    threads: Mutex<Option<Threads>>,
    resolved: Resolved,
    cache_dir: Option<PathBuf>,
    restart: Restart,
    paused: Mutex<Option<Paused>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("settings", &self.resolved)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A builder.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// The settings in use after the precedence rules.
    pub fn settings(&self) -> &Resolved {
        &self.resolved
    }

    /// Everything the client holds now, as one consistent, immutable view.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.shared.snapshot()
    }

    /// A number that changes whenever a new [`Snapshot`] is published (an atomic load):
    /// a reader that keeps something derived from a snapshot rebuilds it when this
    /// differs from the number it read before taking that snapshot.
    pub fn snapshot_version(&self) -> u64 {
        self.shared.version.load(Ordering::Acquire)
    }

    /// The merged lookup: the value from the first namespace (in configured order) that
    /// holds `key`.
    pub fn get(&self, key: &str) -> Option<String> {
        // Only the copy runs under the snapshot's read lock: parsing (user `FromStr`
        // code) and logging in the typed reads below run after it is released.
        self.shared
            .with_snapshot(|s| s.get(key).map(str::to_string))
    }

    /// A value parsed with [`FromStr`]; `None` when the key is absent.
    pub fn get_as<T: FromStr>(&self, key: &str) -> Option<Result<T, T::Err>> {
        self.get(key).map(|v| v.trim().parse())
    }

    /// A value parsed with [`FromStr`], or `default` when it is absent or does not parse.
    pub fn get_or<T: FromStr>(&self, key: &str, default: T) -> T {
        snapshot::parse_or(self.get(key).as_deref(), key, default)
    }

    /// A boolean, case-insensitively `true` or `false`.
    pub fn get_bool(&self, key: &str) -> Option<bool> {
        self.get(key).as_deref().and_then(snapshot::parse_bool)
    }

    /// A value split on `delimiter`, parts trimmed, empty parts dropped.
    pub fn get_array(&self, key: &str, delimiter: &str) -> Option<Vec<String>> {
        self.snapshot().get_array(key, delimiter)
    }

    /// One namespace as of now (`None` if it is not watched).
    pub fn namespace(&self, name: &str) -> Option<Arc<Namespace>> {
        self.snapshot()
            .namespaces
            .iter()
            .find(|n| n.name() == name)
            .cloned()
    }

    /// The raw text of a non-properties namespace (`.yaml`, `.json`, `.xml`, `.txt`).
    pub fn content(&self, namespace: &str) -> Option<String> {
        self.namespace(namespace)
            .and_then(|n| n.content().map(str::to_string))
    }

    /// Deserialize a namespace's properties view into `T` (see [`bind`] for the rules).
    ///
    /// # Errors
    /// A [`BindError`] when the namespace is not watched or a value does not fit.
    pub fn bind<T: DeserializeOwned>(&self, namespace: &str) -> Result<T, BindError> {
        self.namespace(namespace)
            .ok_or_else(|| BindError::new(format!("namespace {namespace:?} is not watched")))?
            .bind()
    }

    /// Deserialize the keys under `prefix.` of a namespace into `T`.
    ///
    /// # Errors
    /// A [`BindError`] when the namespace is not watched or a value does not fit.
    pub fn bind_prefix<T: DeserializeOwned>(
        &self,
        namespace: &str,
        prefix: &str,
    ) -> Result<T, BindError> {
        self.namespace(namespace)
            .ok_or_else(|| BindError::new(format!("namespace {namespace:?} is not watched")))?
            .bind_prefix(prefix)
    }

    /// Watch one more namespace (it is looked up after the ones configured before). Its
    /// values arrive asynchronously (a `Loaded` event; no change event for the first load).
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid name, [`Error::Closed`] after close.
    pub fn watch(&self, namespace: &str) -> Result<(), Error> {
        let (reply, rx) = mpsc::channel();
        self.send(Msg::Watch {
            namespace: namespace.to_string(),
            reply,
        })?;
        match rx.recv() {
            Ok(r) => r.map_err(Error::Config),
            Err(_) => Err(Error::Closed),
        }
    }

    fn send(&self, msg: Msg) -> Result<(), Error> {
        self.tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send(msg)
            .map_err(|_| Error::Closed)
    }

    /// Call `f` on the listener thread for every change with a key of interest. The event
    /// passed holds only the changes that match `interest` (never empty). A listener that
    /// panics is logged and counted in [`Metrics::listener_panics`]; it stays registered.
    pub fn on_change<F>(&self, interest: Interest, f: F) -> ListenerId
    where
        F: Fn(&ChangeEvent) + Send + Sync + 'static,
    {
        self.add(
            interest,
            Sink::Callback(Arc::new(move |e: &ChangeEvent| {
                f(e);
                Ok(())
            })),
        )
    }

    /// Like [`on_change`](Client::on_change), for a listener that can fail: an `Err` is
    /// logged (with its text) and counted in [`Metrics::listener_errors`]; the listener
    /// stays registered and the others still run. Bindings to other languages use it for
    /// listeners that raise.
    pub fn on_change_fallible<F, E>(&self, interest: Interest, f: F) -> ListenerId
    where
        F: Fn(&ChangeEvent) -> Result<(), E> + Send + Sync + 'static,
        E: std::fmt::Display,
    {
        self.add(
            interest,
            Sink::Callback(Arc::new(move |e: &ChangeEvent| {
                f(e).map_err(|err| err.to_string())
            })),
        )
    }

    /// A channel that receives every change with a key of interest (filtered as in
    /// [`on_change`](Client::on_change)). Dropping the receiver unregisters it. Once the
    /// client is closed the channel ends (`recv` answers `Err` after the last event).
    pub fn changes(&self, interest: Interest) -> Receiver<ChangeEvent> {
        let (tx, rx) = mpsc::channel();
        self.add(interest, Sink::Channel(tx));
        rx
    }

    fn add(&self, interest: Interest, sink: Sink) -> ListenerId {
        let id = self.shared.next_listener.fetch_add(1, Ordering::Relaxed);
        self.shared
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Listener { id, interest, sink });
        ListenerId(id)
    }

    /// Unregister a listener; returns whether it was registered.
    pub fn remove_listener(&self, id: ListenerId) -> bool {
        let mut list = self
            .shared
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let before = list.len();
        list.retain(|l| l.id != id.0);
        list.len() != before
    }

    /// A channel of every event from now on: `Loaded`, `Changed`, `Error`,
    /// `ServicesChanged`, `Ready` and finally `Closed` (cache writes are handled
    /// internally and not forwarded).
    pub fn events(&self) -> Receiver<Event> {
        let (tx, rx) = mpsc::channel();
        self.shared
            .event_sinks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(tx);
        rx
    }

    /// Request counts, the last error, the current server, and per-namespace state.
    pub fn metrics(&self) -> Metrics {
        let snap = self.snapshot();
        let m = &snap.core_metrics;
        let s = &self.shared;
        Metrics {
            discovery: m.discovery.clone(),
            configs: m.configs.clone(),
            notifications: m.notifications.clone(),
            last_error: m.last_error.clone(),
            long_poll_service: m.long_poll_service.clone(),
            services: snap.services.clone(),
            namespaces: snap
                .namespaces()
                .map(|n| NamespaceMetrics {
                    namespace: n.name().to_string(),
                    release_key: n.release_key().map(str::to_string),
                    source: n.source(),
                    status: n.status(),
                    last_update: n.last_update,
                })
                .collect(),
            cache_dir: self.cache_dir.clone(),
            cache_writes: s.cache_writes.load(Ordering::Relaxed),
            cache_write_failures: s.cache_write_failures.load(Ordering::Relaxed),
            cache_read_failures: s.cache_read_failures.load(Ordering::Relaxed),
            listener_panics: s.listener_panics.load(Ordering::Relaxed),
            listener_errors: s.listener_errors.load(Ordering::Relaxed),
            requests_in_flight: s.in_flight.load(Ordering::SeqCst),
        }
    }

    /// Whether every namespace configured at start has settled.
    pub fn is_ready(&self) -> bool {
        self.snapshot().ready
    }

    /// Whether the client was closed.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst)
    }

    /// Stop: requests in flight are interrupted, and the driver, the HTTP workers and the
    /// listener thread end and are joined (a `Closed` event is the last one delivered).
    /// Calling it again does nothing. Called from inside a listener, it joins everything
    /// but the listener thread itself, which ends when the listener returns.
    pub fn close(&self) {
        let _ = self.send(Msg::Close);
        let threads = self
            .threads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some((driver, dispatcher)) = threads {
            let _ = driver.join();
            if dispatcher.thread().id() != std::thread::current().id() {
                let _ = dispatcher.join();
            }
        }
    }
}

/// # Pre-fork servers
///
/// Threads do not survive `fork()`: the child of a process that forked (a gunicorn or
/// uwsgi worker of an app loaded before the fork) has the client's memory but none of its
/// threads. Three calls, made around the fork as `pthread_atfork` (or Python's
/// `os.register_at_fork`) makes them, give the child a working client:
///
/// 1. [`prepare_fork`](Client::prepare_fork) in the parent, just before: the listener
///    thread finishes the listener it runs (at most 2 s), then it and the driver park
///    holding no lock, and the driver hands over a copy of the protocol state;
/// 2. [`after_fork_in_parent`](Client::after_fork_in_parent): both threads go on;
/// 3. [`after_fork_in_child`](Client::after_fork_in_child) in the child: new threads start
///    from that copy (the values, release keys and notification ids of the moment of the
///    fork; listeners stay registered); the parent's threads are forgotten, never joined.
///    Requests that were in flight are retried (the long poll after its back-off).
///
/// Call them from the thread that forks, with no other thread of the program using the
/// client at that moment (closing it, or watching a namespace).
impl Client {
    /// Park the client's threads for a `fork()` (see above). Does nothing on a closed
    /// client.
    ///
    /// # Errors
    /// [`Error::Closed`] when the driver did not park within 5 s (or ended meanwhile);
    /// nothing is parked then.
    pub fn prepare_fork(&self) -> Result<(), Error> {
        if self.is_closed() {
            return Ok(());
        }
        let (parked_tx, parked_rx) = mpsc::channel();
        let (resume, resume_rx) = mpsc::channel();
        let (dispatcher_resume, dispatcher_resume_rx) = mpsc::channel();
        self.send(Msg::Pause {
            parked: parked_tx,
            resume: resume_rx,
            dispatcher_resume: dispatcher_resume_rx,
        })?;
        let state = parked_rx
            .recv_timeout(FORK_PAUSE_LIMIT)
            .map_err(|_| Error::Closed)?;
        *self.paused.lock().unwrap_or_else(PoisonError::into_inner) = Some(Paused {
            resume,
            dispatcher_resume,
            state,
        });
        Ok(())
    }

    /// Resume the threads parked by [`prepare_fork`](Client::prepare_fork) (in the parent,
    /// after the fork, or when the fork failed). Does nothing when nothing is parked.
    pub fn after_fork_in_parent(&self) {
        // Dropping the senders (and the copy of the state) wakes both threads.
        drop(
            self.paused
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
    }

    /// In the child of a fork: start new threads from the state handed over by
    /// [`prepare_fork`](Client::prepare_fork). The parent's threads do not exist here;
    /// their handles are forgotten, not joined. Does nothing on a closed client.
    ///
    /// # Errors
    /// [`Error::NotPreparedForFork`] when `prepare_fork` did not run (or failed) before
    /// the fork: the client cannot get its threads back and is marked closed (its values
    /// stay readable); [`Error::TlsRoot`] or [`Error::Thread`] when the new threads cannot
    /// start (the client is marked closed too).
    pub fn after_fork_in_child(&self) -> Result<(), Error> {
        let paused = self
            .paused
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(paused) = paused else {
            if self.is_closed() {
                return Ok(());
            }
            self.mark_closed_in_child();
            return Err(Error::NotPreparedForFork);
        };
        // The parked threads (and the channels they wait on) belong to the parent: touch
        // nothing of theirs, not even a drop that would try to wake them.
        std::mem::forget(paused.resume);
        std::mem::forget(paused.dispatcher_resume);
        let mut state = paused.state;
        // Every child starts from the same copy: each draws its own choices (instances,
        // jitter), or all workers of a server would pick alike.
        state.core.reseed(seed());
        let started = http::agent(&self.restart.tls).and_then(|agent| {
            self.shared.in_flight.store(0, Ordering::SeqCst);
            start_threads(state, &self.shared, agent, &self.restart, Vec::new())
        });
        match started {
            Ok((tx, threads)) => {
                let old_tx = std::mem::replace(
                    &mut *self.tx.lock().unwrap_or_else(PoisonError::into_inner),
                    tx,
                );
                std::mem::forget(old_tx);
                let old = self
                    .threads
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .replace(threads);
                std::mem::forget(old);
                Ok(())
            }
            Err(e) => {
                self.mark_closed_in_child();
                Err(e)
            }
        }
    }

    /// The child could not restart: no thread is there to join or to send to.
    fn mark_closed_in_child(&self) {
        let old = self
            .threads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        std::mem::forget(old);
        let (dead, _) = mpsc::channel();
        let old_tx = std::mem::replace(
            &mut *self.tx.lock().unwrap_or_else(PoisonError::into_inner),
            dead,
        );
        std::mem::forget(old_tx);
        self.shared.closed.store(true, Ordering::SeqCst);
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.close();
    }
}
