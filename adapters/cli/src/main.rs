//! `apolloconf`: read, watch, export and serve Apollo configuration from the command line.

mod output;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use apolloconf::{Client, ClientBuilder, Env, Event, Source, Status};
use apolloconf_testserver::TestServer;
use clap::{Args, Parser, Subcommand, ValueEnum};

use output::Out;

/// The app id of the sample configuration in `examples/config`.
const SAMPLE_APP: &str = "SampleApp";
/// The namespaces of the sample configuration.
const SAMPLE_NAMESPACES: [&str; 3] = ["application", "platform.common", "datasource.yaml"];

/// Read, watch, export and serve configuration of the Apollo configuration center.
///
/// Every connection option can also come from the Java client's environment variables
/// (APOLLO_META, {ENV}_META with ENV, APOLLO_CONFIG_SERVICE, APP_ID, APOLLO_CLUSTER, IDC,
/// APOLLO_LABEL, APOLLO_ACCESS_KEY_SECRET, APOLLO_CACHE_DIR) and from server.properties
/// (APOLLO_PATH_SERVER_PROPERTIES, default /opt/settings/server.properties); options on
/// the command line win.
#[derive(Debug, Parser)]
#[command(name = "apolloconf", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args, Clone)]
struct Common {
    /// Meta-server address(es), comma-separated [env: APOLLO_META]
    #[arg(long, global = true, value_name = "URL[,URL]")]
    meta: Option<String>,
    /// Config-service URL(s), comma-separated; skips discovery [env: APOLLO_CONFIG_SERVICE]
    #[arg(long, global = true, value_name = "URL[,URL]")]
    config_service: Option<String>,
    /// Application id [env: APP_ID]
    #[arg(long, global = true)]
    app_id: Option<String>,
    /// Cluster [env: APOLLO_CLUSTER]
    #[arg(long, global = true)]
    cluster: Option<String>,
    /// Data center [env: IDC]
    #[arg(long, global = true)]
    idc: Option<String>,
    /// Namespace to read (repeatable; the first one wins on equal keys) [default: application]
    #[arg(long = "namespace", short = 'n', global = true, value_name = "NS")]
    namespaces: Vec<String>,
    /// Gray-release label [env: APOLLO_LABEL]
    #[arg(long, global = true)]
    label: Option<String>,
    /// IP reported to the server (gray rules by ip)
    #[arg(long, global = true)]
    ip: Option<String>,
    /// Access-key secret. Other users can read it in the process list: prefer
    /// APOLLO_ACCESS_KEY_SECRET or --secret-file [env: APOLLO_ACCESS_KEY_SECRET]
    #[arg(long, global = true, value_name = "SECRET")]
    secret: Option<String>,
    /// Read the access-key secret from this file (one trailing line break is dropped)
    #[arg(long, global = true, value_name = "FILE", conflicts_with = "secret")]
    secret_file: Option<PathBuf>,
    /// Cache root directory [env: APOLLO_CACHE_DIR] [default: /opt/data]
    #[arg(long, global = true, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Do not read or write the local cache
    #[arg(long, global = true)]
    no_cache: bool,
    /// Also trust the CA certificate(s) in this PEM file for https servers, e.g. a
    /// company's private CA (repeatable, or a comma-separated list; the public CAs stay
    /// trusted)
    #[arg(
        long = "ca-file",
        global = true,
        value_name = "FILE[,FILE]",
        value_delimiter = ','
    )]
    ca_files: Vec<PathBuf>,
    /// Output format
    #[arg(long, short = 'f', global = true, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Seconds to wait for the first load
    #[arg(long, global = true, default_value_t = 5.0, value_name = "SECS")]
    timeout: f64,
    /// More log output on stderr (-v warnings, -vv info, -vvv debug)
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    verbose: u8,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Aligned columns for people
    Table,
    /// JSON (one object per line for `watch`)
    Json,
    /// Java .properties lines
    Properties,
    /// Shell `KEY='value'` lines
    Env,
    /// YAML
    Yaml,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print values once and exit (1 if a key is missing, 2 on usage or connection errors)
    Get {
        /// Keys to print (all keys when none)
        keys: Vec<String>,
    },
    /// Print the configuration, then every change until interrupted. Without any server
    /// configured it serves examples/config in-process and watches that.
    Watch,
    /// Write one namespace as properties, JSON, YAML or env lines
    Export {
        /// Write to this file instead of stdout
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Run a local Apollo-compatible server over a directory of files
    /// ({appId}/{cluster}/{namespace}.{properties|yaml|yml|json|xml|txt}); a changed file
    /// is published at once
    Serve {
        /// The directory to serve
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// The port (0 picks a free one)
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// The address to bind. Beyond loopback the admin API (/__admin/) needs a token:
        /// --admin-token, or one made up and printed at start
        #[arg(long, default_value = "127.0.0.1")]
        host: std::net::IpAddr,
        /// Require `Authorization: Bearer TOKEN` on the admin API (/__admin/)
        #[arg(long, value_name = "TOKEN")]
        admin_token: Option<String>,
        /// Answer CORS for web pages on other origins (not for the admin API); the real
        /// config service has no CORS
        #[arg(long)]
        cors: bool,
        /// Connections served at once; more are answered 503 [default: the open-files
        /// limit less 64, at most 10000]
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        max_connections: Option<u32>,
    },
}

/// A failure with its exit code and a message that says what to do.
struct Fail {
    code: u8,
    message: String,
}

impl Fail {
    fn usage(message: impl Into<String>) -> Fail {
        Fail {
            code: 2,
            message: message.into(),
        }
    }
    fn missing(message: impl Into<String>) -> Fail {
        Fail {
            code: 1,
            message: message.into(),
        }
    }
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    init_logging(cli.common.verbose);
    let result = read_secret(&mut cli.common).and_then(|()| run(&cli));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("apolloconf: {}", output::message(&f.message));
            ExitCode::from(f.code)
        }
    }
}

/// `--secret-file` into `secret`; a warning for `--secret`, which `ps` shows to everyone.
fn read_secret(c: &mut Common) -> Result<(), Fail> {
    if c.secret.is_some() {
        eprintln!(
            "apolloconf: warning: --secret is visible to other users of this machine (ps); \
             use APOLLO_ACCESS_KEY_SECRET or --secret-file FILE instead"
        );
    }
    let Some(path) = &c.secret_file else {
        return Ok(());
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        Fail::usage(format!(
            "cannot read the secret from {}: {e}",
            path.display()
        ))
    })?;
    let secret = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text);
    if secret.is_empty() {
        return Err(Fail::usage(format!(
            "the secret file {} is empty",
            path.display()
        )));
    }
    c.secret = Some(secret.to_string());
    Ok(())
}

fn run(cli: &Cli) -> Result<(), Fail> {
    match &cli.command {
        Command::Get { keys } => get(&cli.common, keys),
        Command::Watch => watch(&cli.common),
        Command::Export { output } => export(&cli.common, output.as_deref()),
        Command::Serve {
            dir,
            port,
            host,
            admin_token,
            cors,
            max_connections,
        } => serve(
            dir,
            *port,
            *host,
            ServeOptions {
                admin_token: admin_token.clone(),
                cors: *cors,
                max_connections: *max_connections,
            },
        ),
    }
}

// ------------------------------------------------------------------------------ logging

struct StderrLog;

static LOGGER: StderrLog = StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            eprintln!("[{}] {}", r.level(), output::message(&r.args().to_string()));
        }
    }
    fn flush(&self) {}
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => log::LevelFilter::Error,
        1 => log::LevelFilter::Warn,
        2 => log::LevelFilter::Info,
        _ => log::LevelFilter::Debug,
    };
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}

// ------------------------------------------------------------------------------ client

fn builder(c: &Common) -> ClientBuilder {
    let mut b = Client::builder().environment(Env::process());
    if let Some(v) = &c.meta {
        b = b.meta_server(v.clone());
    }
    if let Some(v) = &c.config_service {
        b = b.config_service(v.clone());
    }
    if let Some(v) = &c.app_id {
        b = b.app_id(v.clone());
    }
    if let Some(v) = &c.cluster {
        b = b.cluster(v.clone());
    }
    if let Some(v) = &c.idc {
        b = b.data_center(v.clone());
    }
    if let Some(v) = &c.label {
        b = b.label(v.clone());
    }
    if let Some(v) = &c.ip {
        b = b.ip(v.clone());
    }
    if let Some(v) = &c.secret {
        b = b.secret(v.clone());
    }
    if let Some(v) = &c.cache_dir {
        b = b.cache_dir(v.clone());
    }
    for file in &c.ca_files {
        b = b.tls_root_file(file.clone());
    }
    b.cache(!c.no_cache)
        .startup_timeout(startup_timeout(c.timeout))
}

/// `--timeout` as a duration: any number works (a huge one waits "forever": the longest
/// duration there is); a negative one or NaN means the default 5 s.
fn startup_timeout(secs: f64) -> Duration {
    if secs.is_nan() || secs < 0.0 {
        return Duration::from_secs(5);
    }
    Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
}

fn build(b: ClientBuilder) -> Result<Client, Fail> {
    b.build()
        .map_err(|e| Fail::usage(format!("{e}\nSee `apolloconf --help` for the options.")))
}

/// The namespaces to read: the ones given, else `application` (the core's default).
fn namespaces(c: &Common) -> Vec<String> {
    if c.namespaces.is_empty() {
        vec!["application".to_string()]
    } else {
        c.namespaces.clone()
    }
}

/// After start-up: fail (exit 2) when a namespace has no values because no server could be
/// reached, or because the start-up timeout passed first (saying which namespaces did
/// load); warn about values served from the cache; fail (exit 1) for missing namespaces.
fn check_loaded(
    client: &Client,
    c: &Common,
    wanted: &[String],
    strict_missing: bool,
) -> Result<(), Fail> {
    let snap = client.snapshot();
    let timed_out = !client.is_ready();
    let mut loaded = Vec::new();
    let mut unreachable = Vec::new();
    let mut not_found = Vec::new();
    for name in wanted {
        let Some(ns) = snap.namespaces().find(|n| n.name() == name) else {
            // Not even listed yet: the client was still starting (a big cache to read).
            unreachable.push(name.clone());
            continue;
        };
        match (ns.status(), ns.source()) {
            (Status::NotFound, Source::None) => not_found.push(ns.name().to_string()),
            (_, Source::None) => unreachable.push(ns.name().to_string()),
            (_, Source::Cache) => {
                loaded.push(format!("{} (from the local cache)", ns.name()));
                eprintln!(
                    "apolloconf: warning: {} is served from the local cache (the server did not answer)",
                    output::printable(ns.name())
                );
            }
            _ => loaded.push(ns.name().to_string()),
        }
    }
    if !unreachable.is_empty() {
        let servers = match &client.settings().servers {
            Some(apolloconf::ServerSource::Meta(m)) => format!("meta server {m}"),
            Some(apolloconf::ServerSource::ConfigService(c)) => format!("config service {c}"),
            None => "no server".to_string(),
        };
        let last = client.metrics().last_error;
        let cause = last.as_ref().map(|e| format!(": {e}")).unwrap_or_default();
        let tls = last.as_ref().is_some_and(|e| {
            matches!(&e.cause, apolloconf::ErrorCause::Transport(t) if t.kind == apolloconf::TransportErrorKind::Tls)
        });
        if timed_out {
            let loaded = if loaded.is_empty() {
                "nothing".to_string()
            } else {
                loaded.join(", ")
            };
            return Err(Fail::usage(format!(
                "timed out after {} before every namespace loaded from {servers}: loaded {loaded}; \
                 not loaded: {}{cause}\n\
                 Raise --timeout (reading a large local cache takes time too), or check that \
                 the server answers.",
                seconds(c.timeout),
                unreachable.join(", ")
            )));
        }
        let hint = if tls {
            "Check the server's https certificate: it must name the host of the URL and be \
             signed by a trusted CA; trust a private CA with --ca-file FILE."
        } else {
            "Check that the server is running and --meta/--config-service (or \
             APOLLO_META/APOLLO_CONFIG_SERVICE) point at it, or raise --timeout."
        };
        return Err(Fail::usage(format!(
            "could not load {} from {servers}{cause}\n{hint}",
            unreachable.join(", ")
        )));
    }
    if strict_missing && !not_found.is_empty() {
        return Err(Fail::missing(format!(
            "namespace {} not found for app {} cluster {}; check --app-id, --cluster and --namespace",
            not_found.join(", "),
            client.settings().app_id,
            client.settings().cluster
        )));
    }
    Ok(())
}

/// `--timeout` for messages: `1s`, `2.5s`.
fn seconds(t: f64) -> String {
    format!("{t}s")
}

// ------------------------------------------------------------------------------ get

fn get(c: &Common, keys: &[String]) -> Result<(), Fail> {
    let wanted = namespaces(c);
    let client = build(builder(c).namespaces(wanted.iter()))?;
    check_loaded(&client, c, &wanted, keys.is_empty())?;
    let snap = client.snapshot();
    let mut out = Out::stdout();
    if keys.is_empty() {
        out.pairs(c.format, snap.merged_iter().map(|(k, v)| (k, Some(v))));
    } else {
        let pairs = keys.iter().map(|k| (k.as_str(), snap.get(k)));
        out.pairs(c.format, pairs.clone());
        let missing: Vec<&str> = pairs.filter(|(_, v)| v.is_none()).map(|(k, _)| k).collect();
        if !missing.is_empty() {
            out.flush();
            let names: Vec<&str> = snap.namespaces().map(|n| n.name()).collect();
            return Err(Fail::missing(format!(
                "key {} not found in namespace {}; add --namespace to look in others",
                missing.join(", "),
                names.join(", ")
            )));
        }
    }
    out.flush();
    client.close();
    Ok(())
}

// ------------------------------------------------------------------------------ export

fn export(c: &Common, output: Option<&Path>) -> Result<(), Fail> {
    if c.namespaces.len() > 1 {
        return Err(Fail::usage(
            "export writes one namespace: pass a single --namespace",
        ));
    }
    let wanted = namespaces(c);
    let client = build(builder(c).namespaces(wanted.iter()))?;
    check_loaded(&client, c, &wanted, true)?;
    // The one namespace watched (the core's default when none was given).
    let snap = client.snapshot();
    let ns = snap
        .namespaces()
        .next()
        .ok_or_else(|| Fail::usage("no namespace is watched"))?;
    let terminal = output.is_none() && std::io::stdout().is_terminal();
    // Written as it is produced, through a buffer: a namespace of a million keys is
    // not formatted into memory first.
    match output {
        None => Out::stdout().buffered(|w| output::write_export(ns, c.format, terminal, w)),
        Some(path) => {
            let cannot =
                |e: std::io::Error| Fail::usage(format!("cannot write {}: {e}", path.display()));
            let file = std::fs::File::create(path).map_err(cannot)?;
            let mut w = std::io::BufWriter::with_capacity(64 * 1024, file);
            output::write_export(ns, c.format, terminal, &mut w).map_err(cannot)?;
            w.into_inner()
                .map_err(|e| cannot(e.into_error()))?
                .sync_all()
                .map_err(cannot)?;
        }
    }
    client.close();
    Ok(())
}

// ------------------------------------------------------------------------------ serve

fn interrupt_flag() -> Result<Arc<AtomicBool>, Fail> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    ctrlc::set_handler(move || {
        log::debug!("interrupted");
        f.store(true, Ordering::SeqCst);
    })
    .map_err(|e| Fail::usage(format!("cannot install the Ctrl-C handler: {e}")))?;
    Ok(flag)
}

/// The `serve` options that only the test server takes.
struct ServeOptions {
    admin_token: Option<String>,
    cors: bool,
    max_connections: Option<u32>,
}

fn serve(dir: &Path, port: u16, host: std::net::IpAddr, opts: ServeOptions) -> Result<(), Fail> {
    // First, so that an early Ctrl-C is not lost.
    let stop = interrupt_flag()?;
    if !dir.is_dir() {
        return Err(Fail::usage(format!(
            "{} is not a directory; pass --dir with {{appId}}/{{cluster}}/{{namespace}}.properties files (see examples/config)",
            dir.display()
        )));
    }
    let mut builder = TestServer::builder()
        .host(host)
        .port(port)
        .watch_dir(dir)
        .cors(opts.cors);
    let token_given = opts.admin_token.is_some();
    if let Some(t) = opts.admin_token {
        builder = builder.admin_token(t);
    }
    if let Some(n) = opts.max_connections {
        builder = builder.max_connections(n as usize);
    }
    let server = builder.start().map_err(|e| {
        Fail::usage(format!(
            "cannot listen on {host}:{port}: {e}; pick another --port"
        ))
    })?;
    eprintln!(
        "apolloconf: serving {} at {} (meta server and config service); edit a file to publish it. Ctrl-C stops.",
        dir.display(),
        server.url()
    );
    eprintln!(
        "apolloconf: try `apolloconf --config-service {} --app-id <APP> watch`",
        server.url()
    );
    if let Some(token) = server.admin_token().filter(|_| !token_given) {
        eprintln!(
            "apolloconf: listening beyond loopback: the admin API (/__admin/) needs `Authorization: Bearer {token}`"
        );
    }
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
    }
    server.shutdown();
    Ok(())
}

// ------------------------------------------------------------------------------ watch

fn sample_dir() -> Option<PathBuf> {
    let local = PathBuf::from("examples").join("config");
    if local.is_dir() {
        return Some(local);
    }
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("..")
        .join("examples")
        .join("config");
    shipped.is_dir().then_some(shipped)
}

fn watch(c: &Common) -> Result<(), Fail> {
    // First, so that an early Ctrl-C is not lost.
    let stop = interrupt_flag()?;
    // The embedded default: nothing configured anywhere → serve the sample in-process.
    let probe = builder(c).app_id(c.app_id.clone().unwrap_or_else(|| SAMPLE_APP.to_string()));
    let configured = probe
        .resolve()
        .map_err(|e| Fail::usage(e.to_string()))?
        .servers
        .is_some();
    let mut embedded = None;
    let mut b = builder(c);
    let mut list = c.namespaces.clone();
    if !configured {
        let dir = sample_dir().ok_or_else(|| {
            Fail::usage(
                "no meta server or config service configured and no examples/config directory found; \
                 pass --meta or --config-service (or set APOLLO_META)",
            )
        })?;
        let server = TestServer::builder()
            .watch_dir(&dir)
            .start()
            .map_err(|e| Fail::usage(format!("cannot start the embedded server: {e}")))?;
        let app = c.app_id.clone().unwrap_or_else(|| SAMPLE_APP.to_string());
        if c.namespaces.is_empty() {
            list = SAMPLE_NAMESPACES.iter().map(|s| s.to_string()).collect();
        }
        eprintln!(
            "apolloconf: no Apollo server configured, serving {} in-process at {} (app {app}); edit a file there to see changes live",
            dir.display(),
            server.url()
        );
        b = b.config_service(server.url()).app_id(app);
        if c.cache_dir.is_none() {
            b = b.cache(false);
        }
        embedded = Some(server);
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let client = build(b.namespaces(list).event_sink(tx))?;
    let mut view = output::Watch::new(c.format, Out::stdout());
    view.start(&client);
    while !stop.load(Ordering::SeqCst) {
        // The reader went away (`watch | head -1`): nobody wants more; end quietly.
        if view.closed() {
            log::debug!("stdout is closed; stopping");
            break;
        }
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(Event::Closed) => break,
            Ok(e) => view.event(&client, e),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => view.tick(&client),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    view.finish();
    let t0 = std::time::Instant::now();
    client.close();
    log::debug!("client closed in {:?}", t0.elapsed());
    if let Some(s) = embedded {
        let t0 = std::time::Instant::now();
        s.shutdown();
        log::debug!("embedded server stopped in {:?}", t0.elapsed());
    }
    let _ = std::io::stderr().flush();
    Ok(())
}
