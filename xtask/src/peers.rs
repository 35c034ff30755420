//! `cargo xtask bench --peers`: our clients beside the other Apollo clients a user could
//! pick instead, installed from the registries (npm, crates.io, PyPI), each driven by a
//! small driver program (`bench/peers/`, line protocol in its README) against one
//! `apolloconf-testserver` on 127.0.0.1, and one table of the numbers.
//!
//! Everything installed or built for it goes to `{target}/peers/` (an npm project, a
//! virtualenv, a Cargo project with its own `[workspace]`, one folder per client process
//! for its cache files, and the logs). It prints numbers and never asserts them.
//!
//! Phases, all bounded: build and install; start the server and publish 20 namespaces of
//! 50 keys for two app ids per client; start every client idle (its own app id) at once
//! and open the idle window after a settling minute; meanwhile measure each client alone
//! (start-up three times, exact reads, 30 publishes one second apart, a publish in each of
//! the 20 namespaces at once, RSS); close the idle window after six minutes and count its
//! requests in the server's request log. Every child process is killed when its handle is
//! dropped, on every path out (drivers also exit when their stdin closes).

mod http;
mod json;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::step::cmd;
use crate::workspace::{cargo_cmd, root, s, target_dir};
use crate::{python, wasm};
use http::Admin;
use json::Json;

/// The peers and the versions measured (pinned, so that reruns compare the same code).
const CTRIP_APOLLO: &str = "ctrip-apollo@4.5.1";
const LVGITHUB: &str = "@lvgithub/ctrip-apollo-client@1.0.38";
/// `@lvgithub/ctrip-apollo-client` 1.0.38 requires `debug` without declaring it.
const LVGITHUB_MISSING_DEP: &str = "debug@4";
const RUST_CLIENT_VERSION: &str = "0.7.0";
const PYTHON_CLIENT: &str = "apollo-client-python==0.2.5";

/// Long-poll hold of the server, as the real config service.
const HOLD: &str = "60s";
const NAMESPACES: usize = 20;
const KEYS: usize = 50;
/// A key every namespace holds: a client is ready when it reads it in all of them.
const PROBE: &str = "k49";
/// The namespace of the exact-value checks and the latency key.
const MAIN_NS: &str = "application";
const LATENCY_KEY: &str = "lat";
const FANOUT_KEY: &str = "fan";
const STARTUP_RUNS: usize = 3;
const PUBLISHES: u32 = 30;
const PUBLISH_GAP: Duration = Duration::from_secs(1);
/// A publish whose value the listener has not reported within this bound is missed.
const MISS_BOUND: Duration = Duration::from_secs(10);
const FANOUT_BOUND: Duration = Duration::from_secs(60);
const READY_BOUND: Duration = Duration::from_secs(60);
/// A client is settled when it has sent no request for this long (a long poll is held).
const QUIET: Duration = Duration::from_secs(3);
const IDLE_SETTLE: Duration = Duration::from_secs(60);
/// Longer than the Java client's 5-minute fallback refresh, so one falls inside.
const IDLE_WINDOW: Duration = Duration::from_secs(360);
const NPM_LIMIT: Duration = Duration::from_secs(600);
const PIP_LIMIT: Duration = Duration::from_secs(600);

/// Values that must read back exactly (all in `MAIN_NS`).
const EXACT: &[(&str, &str)] = &[
    ("esc_tab", "a\tb"),
    ("esc_newline", "line one\nline two"),
    (
        "esc_unicode",
        "h\u{e9}llo w\u{f6}rld \u{2713} \u{65e5}\u{672c}\u{8a9e} \u{1f600}",
    ),
    ("esc_separators", "url=http://host:8080/p?a=b&c=d"),
    ("esc_backslash", "C:\\temp\\new \\u0041"),
    ("esc_spaces", "  two leading, one trailing "),
    ("esc_empty", ""),
    ("svc", "main"),
    ("svc.port", "8080"),
];

fn scratch() -> PathBuf {
    target_dir().join("peers")
}

fn logs() -> PathBuf {
    scratch().join("logs")
}

fn bench_dir() -> PathBuf {
    root().join("bench").join("peers")
}

fn namespaces() -> Vec<String> {
    let mut out = vec![MAIN_NS.to_string()];
    out.extend((1..NAMESPACES).map(|i| format!("ns{i:02}")));
    out
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

// ---------------------------------------------------------------------------------------
// Clients and their set-up

/// One client under test: how to start its driver, or why it could not be set up.
struct Subject {
    /// Short name: app ids `bench-TAG` / `idle-TAG`, log and folder names.
    tag: &'static str,
    label: String,
    ours: bool,
    program: String,
    args: Vec<String>,
    setup: Result<(), String>,
}

impl Subject {
    fn new(tag: &'static str, label: &str, ours: bool) -> Subject {
        Subject {
            tag,
            label: label.to_string(),
            ours,
            program: String::new(),
            args: Vec::new(),
            setup: Err("not set up".into()),
        }
    }

    fn ready(mut self, program: &str, args: &[String]) -> Subject {
        self.program = program.to_string();
        self.args = args.to_vec();
        self.setup = Ok(());
        self
    }

    fn failed(mut self, why: String) -> Subject {
        println!("   {}: NOT SET UP: {why}", self.label);
        self.setup = Err(why);
        self
    }
}

/// Run `c` with its output in `log`, killing it after `limit`.
fn bounded(mut c: Command, limit: Duration, log: &Path) -> Result<(), String> {
    let file = File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = file
        .try_clone()
        .map_err(|e| format!("{}: {e}", log.display()))?;
    c.stdin(Stdio::null()).stdout(file).stderr(err);
    let what = format!("{:?}", c.get_program());
    let mut child = c.spawn().map_err(|e| format!("cannot run {what}: {e}"))?;
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                return Err(format!(
                    "{what} failed ({status}); end of {}:\n{}",
                    log.display(),
                    tail(log, 8)
                ));
            }
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{what} timed out after {} s", limit.as_secs()));
            }
            Ok(None) => thread::sleep(Duration::from_millis(200)),
            Err(e) => return Err(format!("{what}: {e}")),
        }
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|l| format!("      {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn version_of(program: &str, args: &[&str]) -> String {
    cmd(program, args)
        .output()
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| "?".into())
}

fn server_bin() -> PathBuf {
    target_dir().join("release").join("apolloconf-testserver")
}

fn build_server() -> Result<PathBuf, String> {
    if !cargo_cmd(&["build", "--release", "-p", "apolloconf-testserver"]).ok() {
        return Err("cargo build --release -p apolloconf-testserver failed".into());
    }
    Ok(server_bin())
}

fn native() -> Subject {
    let sub = Subject::new("rust", "apolloconf, Rust (native, release build)", true);
    let ok = cargo_cmd(&[
        "build",
        "--release",
        "-p",
        "apolloconf",
        "--example",
        "peers_driver",
    ])
    .ok();
    if !ok {
        return sub.failed("cargo build of the peers_driver example failed".into());
    }
    let bin = target_dir()
        .join("release")
        .join("examples")
        .join("peers_driver");
    sub.ready(&s(&bin), &[])
}

/// The npm project holding the JavaScript clients and their drivers.
fn js_project() -> Result<PathBuf, String> {
    let dir = scratch().join("js");
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let manifest = dir.join("package.json");
    if !manifest.exists() {
        fs::write(
            &manifest,
            "{\n  \"name\": \"apolloconf-peers\",\n  \"private\": true,\n  \"description\": \"scratch project of cargo xtask bench --peers\"\n}\n",
        )
        .map_err(|e| e.to_string())?;
    }
    for driver in [
        "proto.cjs",
        "ctrip-apollo.cjs",
        "lvgithub.cjs",
        "apolloconf.mjs",
    ] {
        fs::copy(bench_dir().join(driver), dir.join(driver))
            .map_err(|e| format!("copy {driver}: {e}"))?;
    }
    Ok(dir)
}

fn npm_install(dir: &Path, spec: &str, log: &str) -> Result<(), String> {
    let mut c = Command::new("npm");
    c.args([
        "install",
        "--no-audit",
        "--no-fund",
        "--loglevel=error",
        "--save",
        spec,
    ])
    .current_dir(dir);
    bounded(c, NPM_LIMIT, &logs().join(log))
}

fn node_subject(
    tag: &'static str,
    label: &str,
    ours: bool,
    js: &Result<PathBuf, String>,
    specs: &[&str],
    driver: &str,
) -> Subject {
    let sub = Subject::new(tag, label, ours);
    let dir = match js {
        Ok(d) => d,
        Err(e) => return sub.failed(format!("npm project: {e}")),
    };
    for spec in specs {
        if let Err(e) = npm_install(dir, spec, &format!("npm-{tag}.log")) {
            return sub.failed(format!("npm install {spec}: {e}"));
        }
    }
    sub.ready("node", &[s(&dir.join(driver))])
}

/// Our npm package: built and packed as `cargo xtask test` does, then installed.
fn npm_ours(js: &Result<PathBuf, String>, node: &str) -> Subject {
    let label = format!("apolloconf npm package (Node {node})");
    let sub = Subject::new("npm", &label, true);
    if !wasm::install() {
        return sub.failed("the wasm toolchain could not be installed".into());
    }
    if !wasm::build() {
        return sub.failed("the wasm build failed".into());
    }
    let Some(tarball) = wasm::pack() else {
        return sub.failed("npm pack failed".into());
    };
    node_subject("npm", &label, true, js, &[&s(&tarball)], "apolloconf.mjs")
}

/// Our Python package: the wheel `cargo xtask test` builds, in its virtualenv.
fn python_ours() -> Subject {
    let py = s(&python::venv_python());
    let label = format!(
        "apolloconf-client, Python ({})",
        version_of("python3", &["--version"])
    );
    let sub = Subject::new("python", &label, true);
    if !python::ensure_venv() {
        return sub.failed("the virtualenv with maturin could not be made".into());
    }
    let Some(wheel) = python::build_wheel() else {
        return sub.failed("maturin build failed".into());
    };
    if !python::install_wheel(&wheel) {
        return sub.failed("pip install of the wheel failed".into());
    }
    sub.ready(&py, &[s(&bench_dir().join("apolloconf_py.py"))])
}

fn xh() -> Subject {
    let label = format!("{}, PyPI (Python)", PYTHON_CLIENT.replace("==", " "));
    let sub = Subject::new("xh", &label, false);
    let venv = scratch().join("xh-venv");
    let py = venv.join("bin").join("python");
    if !py.exists() {
        let mut c = Command::new("python3");
        c.args(["-m", "venv", &s(&venv)]);
        if let Err(e) = bounded(c, PIP_LIMIT, &logs().join("venv-xh.log")) {
            return sub.failed(format!("python3 -m venv: {e}"));
        }
    }
    let mut c = Command::new(&py);
    c.args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--quiet",
        PYTHON_CLIENT,
    ]);
    if let Err(e) = bounded(c, PIP_LIMIT, &logs().join("pip-xh.log")) {
        return sub.failed(format!("pip install {PYTHON_CLIENT}: {e}"));
    }
    sub.ready(&s(&py), &[s(&bench_dir().join("xh.py"))])
}

/// The scratch Cargo project of `apollo-rust-client`: its own `[workspace]`, so it never
/// joins ours; rustls instead of the default native-tls (no OpenSSL headers needed; the
/// benchmark uses plain http).
fn rust_peer() -> Subject {
    let label = format!("apollo-rust-client {RUST_CLIENT_VERSION}, crates.io (release build)");
    let sub = Subject::new("rq", &label, false);
    let dir = scratch().join("rq");
    let manifest = format!(
        "# Written by `cargo xtask bench --peers`; not part of the apolloconf workspace.\n\
         [package]\nname = \"peers-apollo-rust-client\"\nversion = \"0.0.0\"\nedition = \"2024\"\npublish = false\n\n\
         [dependencies]\n\
         apollo-rust-client = {{ version = \"={RUST_CLIENT_VERSION}\", default-features = false, features = [\"rustls\"] }}\n\
         tokio = {{ version = \"1\", features = [\"full\"] }}\n\n\
         [workspace]\n"
    );
    let written = fs::create_dir_all(dir.join("src"))
        .and_then(|()| fs::write(dir.join("Cargo.toml"), manifest))
        .and_then(|()| {
            fs::copy(
                bench_dir().join("apollo-rust-client.rs"),
                dir.join("src").join("main.rs"),
            )
        });
    if let Err(e) = written {
        return sub.failed(format!("scratch project: {e}"));
    }
    let target = dir.join("target");
    let ok = cargo_cmd(&[
        "build",
        "--release",
        "--manifest-path",
        &s(&dir.join("Cargo.toml")),
        "--target-dir",
        &s(&target),
    ])
    .dir(&dir)
    .ok();
    if !ok {
        return sub.failed("cargo build of the scratch project failed".into());
    }
    let bin = target.join("release").join("peers-apollo-rust-client");
    sub.ready(&s(&bin), &[])
}

// ---------------------------------------------------------------------------------------
// Child processes

/// The test server, killed on drop.
struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(bin: &Path) -> Result<Server, String> {
    let log = File::create(logs().join("server.log")).map_err(|e| e.to_string())?;
    let mut child = Command::new(bin)
        .args(["--host", "127.0.0.1", "--port", "0", "--hold", HOLD])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let stdout = child.stdout.take();
    let mut server = Server {
        child,
        url: String::new(),
    };
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        if let Some(out) = stdout {
            let mut line = String::new();
            let _ = BufReader::new(out).read_line(&mut line);
            let _ = tx.send(line);
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .map_err(|_| "the test server did not report its port within 20 s".to_string())?;
    let url = line
        .trim()
        .strip_prefix("listening ")
        .ok_or_else(|| format!("unexpected first line of the server: {line:?}"))?;
    server.url = url.to_string();
    Ok(server)
}

/// What a driver printed.
#[derive(Debug)]
enum Msg {
    Ready(f64),
    Change {
        ns: String,
        key: String,
        value: Option<String>,
    },
    Value {
        ns: String,
        key: String,
        value: Read,
    },
    Error(String),
    /// Anything else (not JSON, or not a known message).
    Other,
}

/// A value as a driver read it.
#[derive(Debug, Clone, PartialEq)]
enum Read {
    Str(String),
    Missing,
    /// Not a string: its JSON text.
    Other(String),
}

fn text_of(v: &Json) -> String {
    match v {
        Json::Null => "null".into(),
        Json::Bool(b) => b.to_string(),
        Json::Num(n) => n.to_string(),
        Json::Str(s) => json::quote(s),
        Json::Arr(items) => format!(
            "[{}]",
            items.iter().map(text_of).collect::<Vec<_>>().join(",")
        ),
        Json::Obj(members) => format!(
            "{{{}}}",
            members
                .iter()
                .map(|(k, v)| format!("{}:{}", json::quote(k), text_of(v)))
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

fn read_of(v: Option<&Json>) -> Read {
    match v {
        None | Some(Json::Null) => Read::Missing,
        Some(Json::Str(s)) => Read::Str(s.clone()),
        Some(other) => Read::Other(text_of(other)),
    }
}

fn msg_of(line: &str) -> Msg {
    let Ok(v) = json::parse(line) else {
        return Msg::Other;
    };
    if let Some(ms) = v.get("ready").and_then(Json::as_f64) {
        return Msg::Ready(ms);
    }
    if let Some(e) = v.get("error") {
        return Msg::Error(e.as_str().map_or_else(|| text_of(e), str::to_string));
    }
    let field = |o: &Json, k: &str| o.get(k).and_then(Json::as_str).unwrap_or("").to_string();
    if let Some(c) = v.get("change") {
        let value = match read_of(c.get("value")) {
            Read::Str(s) => Some(s),
            Read::Missing => None,
            Read::Other(t) => Some(t),
        };
        return Msg::Change {
            ns: field(c, "ns"),
            key: field(c, "key"),
            value,
        };
    }
    if let Some(r) = v.get("value") {
        return Msg::Value {
            ns: field(r, "ns"),
            key: field(r, "key"),
            value: read_of(r.get("value")),
        };
    }
    Msg::Other
}

/// A running driver; killed on drop.
struct Driver {
    child: Child,
    stdin: Option<ChildStdin>,
    rx: Receiver<(Instant, Msg)>,
    spawned: Instant,
}

enum Recv {
    Msg(Instant, Msg),
    Timeout,
    Closed,
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.stdin.take();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    fn spawn(sub: &Subject, app: &str, run: &str, url: &str) -> Result<Driver, String> {
        let dir = scratch().join("run").join(run);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let log = File::create(logs().join(format!("{run}.stderr")))
            .map_err(|e| format!("log of {run}: {e}"))?;
        let spawned = Instant::now();
        let mut child = Command::new(&sub.program)
            .args(&sub.args)
            .current_dir(&dir)
            .env("PEERS_URL", url)
            .env("PEERS_APP", app)
            .env("PEERS_NAMESPACES", namespaces().join(","))
            .env("PEERS_PROBE", PROBE)
            .env("PEERS_WATCH", format!("{LATENCY_KEY},{FANOUT_KEY}"))
            .env("PEERS_DIR", &dir)
            // Clients that keep files under $HOME keep them in the run's folder.
            .env("HOME", &dir)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", sub.program))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let (tx, rx) = mpsc::channel();
        if let Some(out) = stdout {
            thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if tx.send((Instant::now(), msg_of(&line))).is_err() {
                        break;
                    }
                }
            });
        }
        Ok(Driver {
            child,
            stdin,
            rx,
            spawned,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn recv(&self, until: Instant) -> Recv {
        let wait = until.saturating_duration_since(Instant::now());
        match self.rx.recv_timeout(wait) {
            Ok((t, m)) => Recv::Msg(t, m),
            Err(RecvTimeoutError::Timeout) => Recv::Timeout,
            Err(RecvTimeoutError::Disconnected) => Recv::Closed,
        }
    }

    fn drain(&self) {
        while self.rx.try_recv().is_ok() {}
    }

    /// The driver's own start-up time and the time since the process was spawned.
    fn wait_ready(&self, bound: Duration) -> Result<(f64, f64), String> {
        let until = self.spawned + bound;
        loop {
            match self.recv(until) {
                Recv::Msg(t, Msg::Ready(d)) => return Ok((d, ms(t - self.spawned))),
                Recv::Msg(_, Msg::Error(e)) => return Err(e),
                Recv::Msg(..) => {}
                Recv::Timeout => {
                    return Err(format!("not ready within {} s", bound.as_secs()));
                }
                Recv::Closed => return Err("the driver exited before it was ready".into()),
            }
        }
    }

    fn get(&mut self, ns: &str, key: &str) -> Result<Read, String> {
        let stdin = self.stdin.as_mut().ok_or("stdin closed")?;
        writeln!(stdin, "get {ns} {key}")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("get {ns} {key}: {e}"))?;
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            match self.recv(until) {
                Recv::Msg(
                    _,
                    Msg::Value {
                        ns: n,
                        key: k,
                        value,
                    },
                ) if n == ns && k == key => {
                    return Ok(value);
                }
                Recv::Msg(..) => {}
                Recv::Timeout => return Err(format!("no answer to get {ns} {key} in 5 s")),
                Recv::Closed => return Err("the driver exited".into()),
            }
        }
    }
}

/// A change a driver reported, with when it arrived.
struct Seen {
    at: Instant,
    ns: String,
    key: String,
    value: Option<String>,
}

/// Collect change reports until `until` or until `done` says enough; false when the
/// driver has exited.
fn collect(
    d: &Driver,
    until: Instant,
    seen: &mut Vec<Seen>,
    done: &dyn Fn(&[Seen]) -> bool,
) -> bool {
    while !done(seen) {
        match d.recv(until) {
            Recv::Msg(at, Msg::Change { ns, key, value }) => seen.push(Seen { at, ns, key, value }),
            Recv::Msg(..) => {}
            Recv::Timeout => return true,
            Recv::Closed => return false,
        }
    }
    true
}

/// VmRSS and VmHWM of a process, in MiB.
fn rss(pid: u32) -> Option<(f64, f64)> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb / 1024.0)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// RSS of a runtime that loaded nothing, for the footnotes.
fn runtime_rss(program: &str, args: &[&str]) -> Option<f64> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    thread::sleep(Duration::from_millis(1500));
    let r = rss(child.id()).map(|(now, _)| now);
    let _ = child.kill();
    let _ = child.wait();
    r
}

// ---------------------------------------------------------------------------------------
// The configuration on the server

/// What is published for each (app, namespace), so each publish can send it whole.
struct Config {
    admin: Admin,
    items: BTreeMap<(String, String), Vec<(String, String)>>,
}

impl Config {
    fn seed(&mut self, app: &str) -> Result<(), String> {
        for ns in namespaces() {
            let mut items: Vec<(String, String)> = (0..KEYS)
                .map(|i| {
                    (
                        format!("k{i:02}"),
                        format!("value {i} of {ns}, about as long as a real setting"),
                    )
                })
                .collect();
            if ns == MAIN_NS {
                items.extend(EXACT.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            }
            self.admin.publish(app, &ns, &items)?;
            self.items.insert((app.to_string(), ns), items);
        }
        Ok(())
    }

    fn set(&mut self, app: &str, ns: &str, key: &str, value: &str) -> Result<(), String> {
        let items = self
            .items
            .get_mut(&(app.to_string(), ns.to_string()))
            .ok_or_else(|| format!("{app}/{ns} was never published"))?;
        match items.iter_mut().find(|(k, _)| k == key) {
            Some(item) => item.1 = value.to_string(),
            None => items.push((key.to_string(), value.to_string())),
        }
        self.admin.publish(app, ns, items)
    }
}

/// The server's request log.
fn request_log(admin: &Admin) -> Result<Vec<Json>, String> {
    let (status, body) =
        admin.request("GET", "/__admin/requests", None, Duration::from_secs(30))?;
    if status != 200 {
        return Err(format!("GET /__admin/requests: {status}"));
    }
    match json::parse(&body)? {
        Json::Arr(items) => Ok(items),
        _ => Err("the request log is not an array".into()),
    }
}

/// The app id a logged request was for (path segment or `appId` parameter).
fn app_of(path: &str) -> Option<String> {
    let (p, q) = path.split_once('?').unwrap_or((path, ""));
    let segs: Vec<&str> = p.trim_start_matches('/').split('/').collect();
    let seg = match segs.first().copied() {
        Some("configs") => segs.get(1).copied(),
        // /configfiles/json/{app}/{cluster}/{ns} vs /configfiles/{app}/{cluster}/{ns}
        Some("configfiles") if segs.len() >= 5 => segs.get(2).copied(),
        Some("configfiles") => segs.get(1).copied(),
        _ => None,
    };
    if let Some(seg) = seg {
        return Some(seg.to_string());
    }
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "appId")
        .map(|(_, v)| v.to_string())
}

/// Wait until `app` has sent no request for `QUIET` (counting from `since_ms`); the epoch
/// ms of its last request then (`since_ms` when none), or None after `bound`.
fn wait_quiet(admin: &Admin, app: &str, since_ms: u64, bound: Duration) -> Option<u64> {
    let started = Instant::now();
    while started.elapsed() < bound {
        let last = request_log(admin).ok().map(|log| {
            log.iter()
                .filter(|e| {
                    e.get("path")
                        .and_then(Json::as_str)
                        .and_then(app_of)
                        .as_deref()
                        == Some(app)
                })
                .filter_map(|e| e.get("timeMs").and_then(Json::as_f64))
                .map(|t| t as u64)
                .filter(|t| *t >= since_ms)
                .max()
                .unwrap_or(since_ms)
        });
        if let Some(last) = last
            && epoch_ms().saturating_sub(last) >= QUIET.as_millis() as u64
        {
            return Some(last);
        }
        thread::sleep(Duration::from_millis(500));
    }
    None
}

// ---------------------------------------------------------------------------------------
// Measurements

#[derive(Default)]
struct Row {
    /// Medians of the driver's construct→ready and of spawn→ready, ms.
    startup: Option<(f64, f64)>,
    /// Median and p95 in ms (infinite: beyond MISS_BOUND), missed, of PUBLISHES.
    latency: Option<(f64, f64, usize)>,
    /// Time until all 20 were seen (ms), or how many were seen within the bound.
    fanout: Option<Result<f64, usize>>,
    /// MiB after the work, peak.
    rss: Option<(f64, f64)>,
    /// Requests per hour while idle, with the count by endpoint in the window.
    idle: Option<(f64, BTreeMap<String, u32>)>,
    /// Reads that were not exact: (key, what was read).
    wrong: Option<Vec<(String, Read)>>,
    /// Seconds from spawn to the last request of the start-up (before a long poll held).
    settled: Option<f64>,
    problems: Vec<String>,
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i.min(sorted.len() - 1)).copied()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    percentile(&v, 0.5).unwrap_or(f64::NAN)
}

/// Everything measured on one client alone (its `bench-TAG` app).
fn measure(sub: &Subject, cfg: &mut Config, url: &str, row: &mut Row) {
    let app = format!("bench-{}", sub.tag);
    println!("== {}", sub.label);

    // 1. Start-up, three fresh processes with empty cache folders; the last one stays.
    let mut runs = Vec::new();
    let mut driver = None;
    let mut since_ms = epoch_ms();
    for n in 0..STARTUP_RUNS {
        drop(driver.take());
        since_ms = epoch_ms();
        let d = match Driver::spawn(sub, &app, &format!("{}-{n}", sub.tag), url) {
            Ok(d) => d,
            Err(e) => {
                row.problems.push(format!("could not start: {e}"));
                return;
            }
        };
        match d.wait_ready(READY_BOUND) {
            Ok(r) => runs.push(r),
            Err(e) => {
                row.problems.push(format!("start-up: {e}"));
                return;
            }
        }
        driver = Some(d);
    }
    let Some(mut d) = driver else { return };
    let startup = (
        median(runs.iter().map(|r| r.0).collect()),
        median(runs.iter().map(|r| r.1).collect()),
    );
    println!(
        "   start-up: {:.1} ms in the driver, {:.1} ms from spawn (medians of {STARTUP_RUNS})",
        startup.0, startup.1
    );
    row.startup = Some(startup);

    // 2. Exact values.
    let mut wrong = Vec::new();
    for (key, expected) in EXACT {
        match d.get(MAIN_NS, key) {
            Ok(Read::Str(v)) if v == *expected => {}
            Ok(other) => wrong.push((key.to_string(), other)),
            Err(e) => {
                row.problems.push(format!("exact values: {e}"));
                return;
            }
        }
    }
    println!(
        "   exact values: {} of {} right",
        EXACT.len() - wrong.len(),
        EXACT.len()
    );
    row.wrong = Some(wrong);

    // Let it reach its steady state: no request for QUIET (a long poll held).
    match wait_quiet(&cfg.admin, &app, since_ms, READY_BOUND) {
        Some(last) => {
            let s = last.saturating_sub(since_ms) as f64 / 1000.0;
            println!("   its last start-up request came {s:.1} s after spawn");
            row.settled = Some(s);
        }
        None => row.problems.push(format!(
            "still sending requests {} s after start-up",
            READY_BOUND.as_secs()
        )),
    }

    // 3. Publish → listener latency. A publish counts as delivered when the listener
    //    reports its value or a later one (the client caught up); it is missed when its
    //    own value is never reported.
    d.drain();
    let mut seen = Vec::new();
    let mut sent = Vec::new();
    let base = Instant::now();
    let lat_value = |e: &Seen| -> Option<u32> {
        if e.ns == MAIN_NS && e.key == LATENCY_KEY {
            e.value.as_deref().and_then(|v| v.parse().ok())
        } else {
            None
        }
    };
    for i in 1..=PUBLISHES {
        let due = base + PUBLISH_GAP * (i - 1);
        collect(&d, due, &mut seen, &|_| false);
        let t0 = Instant::now();
        if let Err(e) = cfg.set(&app, MAIN_NS, LATENCY_KEY, &i.to_string()) {
            row.problems.push(format!("publish: {e}"));
            return;
        }
        sent.push(t0);
    }
    if let Some(last) = sent.last() {
        // Done once the last value is in: nothing earlier is reported after it.
        collect(&d, *last + MISS_BOUND, &mut seen, &|s| {
            s.iter().any(|e| lat_value(e) == Some(PUBLISHES))
        });
    }
    let mut lat = Vec::new();
    let mut missed = 0;
    for (i, t0) in (1u32..).zip(&sent) {
        let caught_up = seen
            .iter()
            .filter(|e| lat_value(e).is_some_and(|v| v >= i) && e.at >= *t0)
            .map(|e| e.at - *t0)
            .min();
        lat.push(match caught_up {
            Some(d) if d <= MISS_BOUND => ms(d),
            _ => f64::INFINITY,
        });
        if !seen.iter().any(|e| lat_value(e) == Some(i)) {
            missed += 1;
        }
    }
    lat.sort_by(f64::total_cmp);
    let p50 = percentile(&lat, 0.5).unwrap_or(f64::INFINITY);
    let p95 = percentile(&lat, 0.95).unwrap_or(f64::INFINITY);
    println!(
        "   publish → listener (ms): median {}, p95 {}, missed {missed} of {PUBLISHES}",
        bounded_ms(p50),
        bounded_ms(p95)
    );
    row.latency = Some((p50, p95, missed));

    // 4. Fan-out: one publish in each namespace, back to back.
    if wait_quiet(&cfg.admin, &app, epoch_ms(), Duration::from_secs(30)).is_none() {
        row.problems
            .push("fan-out started while the client was still sending requests".into());
    }
    d.drain();
    let names = namespaces();
    let mut seen = Vec::new();
    let t0 = Instant::now();
    for ns in &names {
        if let Err(e) = cfg.set(&app, ns, FANOUT_KEY, "1") {
            row.problems.push(format!("publish: {e}"));
            return;
        }
    }
    let issued = t0.elapsed();
    let count = |seen: &[Seen]| {
        names
            .iter()
            .filter(|ns| {
                seen.iter()
                    .any(|e| &e.ns == *ns && e.key == FANOUT_KEY && e.value.as_deref() == Some("1"))
            })
            .count()
    };
    collect(&d, t0 + FANOUT_BOUND, &mut seen, &|s| {
        count(s) == names.len()
    });
    let got = count(&seen);
    row.fanout = Some(if got == names.len() {
        let last = names
            .iter()
            .filter_map(|ns| {
                seen.iter()
                    .find(|e| &e.ns == ns && e.key == FANOUT_KEY)
                    .map(|e| e.at)
            })
            .max()
            .unwrap_or(t0);
        Ok(ms(last - t0))
    } else {
        Err(got)
    });
    println!(
        "   fan-out: {} (20 publishes issued in {:.0} ms)",
        match row.fanout {
            Some(Ok(v)) => format!("all 20 seen after {v:.0} ms"),
            Some(Err(n)) => format!("{n} of 20 seen within {} s", FANOUT_BOUND.as_secs()),
            None => String::new(),
        },
        ms(issued)
    );

    // 5. RSS after the work.
    thread::sleep(Duration::from_secs(1));
    if d.alive() {
        row.rss = rss(d.pid());
    }
    if let Some((now, peak)) = row.rss {
        println!("   RSS {now:.1} MiB after the work, peak {peak:.1} MiB");
    }
}

/// Idle clients: started together, counted in the window [start, end].
fn count_idle(
    admin: &Admin,
    start_ms: u64,
    end_ms: u64,
) -> Result<BTreeMap<String, BTreeMap<String, u32>>, String> {
    let mut out: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
    for e in request_log(admin)? {
        let Some(t) = e.get("timeMs").and_then(Json::as_f64) else {
            continue;
        };
        let t = t as u64;
        if t < start_ms || t > end_ms {
            continue;
        }
        let Some(app) = e.get("path").and_then(Json::as_str).and_then(app_of) else {
            continue;
        };
        let Some(tag) = app.strip_prefix("idle-") else {
            continue;
        };
        let endpoint = e
            .get("endpoint")
            .and_then(Json::as_str)
            .unwrap_or("other")
            .to_string();
        *out.entry(tag.to_string())
            .or_default()
            .entry(endpoint)
            .or_default() += 1;
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// The table

fn num(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A latency in ms, or "> N s" beyond the bound.
fn bounded_ms(v: f64) -> String {
    if v.is_finite() {
        num(v)
    } else {
        format!("> {} s", MISS_BOUND.as_secs())
    }
}

fn ratio(ours: f64, best: f64) -> String {
    if best <= 0.0 {
        return if ours <= 0.0 {
            "=".into()
        } else {
            "–".into()
        };
    }
    let r = ours / best;
    if r >= 10.0 {
        format!("{r:.0}×")
    } else {
        format!("{r:.2}×")
    }
}

struct Notes(Vec<String>);

impl Notes {
    /// A footnote marker for `text` (the same text gets the same number).
    fn mark(&mut self, text: String) -> String {
        let n = match self.0.iter().position(|t| *t == text) {
            Some(i) => i + 1,
            None => {
                self.0.push(text);
                self.0.len()
            }
        };
        format!(" [{n}]")
    }
}

fn show(r: &Read) -> String {
    match r {
        Read::Str(s) => json::quote(s),
        Read::Missing => "nothing".into(),
        Read::Other(t) => t.clone(),
    }
}

/// Comparable numbers of a row, lower is better: start-up, latency median, missed,
/// fan-out, RSS, idle requests.
fn metrics(r: &Row) -> [Option<f64>; 6] {
    [
        r.startup.map(|s| s.0),
        r.latency.map(|l| l.0).filter(|v| v.is_finite()),
        r.latency.map(|l| l.2 as f64),
        r.fanout.and_then(|f| f.ok()),
        r.rss.map(|x| x.0),
        r.idle.as_ref().map(|i| i.0),
    ]
}

fn table(subjects: &[Subject], rows: &[Row], notes: &mut Notes) -> Vec<Vec<String>> {
    let mut out = vec![vec![
        "client".to_string(),
        "start-up, 20 ns × 50 keys, ms (from spawn)".into(),
        "publish → listener, ms: median / p95".into(),
        format!("missed of {PUBLISHES}"),
        "20-namespace fan-out, ms".into(),
        "RSS after the work (peak), MiB".into(),
        "idle requests / hour".into(),
        "exact values".into(),
    ]];
    for (sub, row) in subjects.iter().zip(rows) {
        let mut label = sub.label.clone();
        if let Err(why) = &sub.setup {
            label.push_str(&notes.mark(format!("{}: not measured: {why}", sub.label)));
            let mut cells = vec![label];
            cells.extend((0..7).map(|_| "–".to_string()));
            out.push(cells);
            continue;
        }
        for p in &row.problems {
            label.push_str(&notes.mark(format!("{}: {p}", sub.label)));
        }
        let dash = || "–".to_string();
        let startup = row
            .startup
            .map_or_else(dash, |(a, b)| format!("{} ({})", num(a), num(b)));
        let latency = row.latency.map_or_else(dash, |(a, b, _)| {
            format!("{} / {}", bounded_ms(a), bounded_ms(b))
        });
        let missed = row.latency.map_or_else(dash, |l| l.2.to_string());
        let fanout = match row.fanout {
            Some(Ok(v)) => num(v),
            Some(Err(n)) => format!("{n} of 20 in {} s", FANOUT_BOUND.as_secs()),
            None => dash(),
        };
        let rss = row
            .rss
            .map_or_else(dash, |(a, b)| format!("{a:.1} ({b:.1})"));
        let idle = row.idle.as_ref().map_or_else(dash, |(h, by)| {
            let parts: Vec<String> = by.iter().map(|(e, n)| format!("{n} {e}")).collect();
            format!(
                "{}{}",
                num(*h),
                notes.mark(format!(
                    "{}: in the idle window: {}",
                    sub.label,
                    if parts.is_empty() {
                        "no requests".to_string()
                    } else {
                        parts.join(", ")
                    }
                ))
            )
        });
        let exact = match &row.wrong {
            Some(w) if w.is_empty() => "Y".to_string(),
            Some(w) => {
                let list: Vec<String> = w
                    .iter()
                    .map(|(k, r)| format!("`{k}` read as {}", show(r)))
                    .collect();
                format!(
                    "N{}",
                    notes.mark(format!("{}: {}", sub.label, list.join("; ")))
                )
            }
            None => dash(),
        };
        out.push(vec![
            label, startup, latency, missed, fanout, rss, idle, exact,
        ]);
    }
    // Ratios of each of our clients to the best peer in every column.
    let peers: Vec<[Option<f64>; 6]> = subjects
        .iter()
        .zip(rows)
        .filter(|(s, _)| !s.ours && s.setup.is_ok())
        .map(|(_, r)| metrics(r))
        .collect();
    let best: Vec<Option<f64>> = (0..6)
        .map(|c| peers.iter().filter_map(|m| m[c]).min_by(f64::total_cmp))
        .collect();
    for (sub, row) in subjects.iter().zip(rows) {
        if !sub.ours || sub.setup.is_err() {
            continue;
        }
        let m = metrics(row);
        let cell = |c: usize| match (m[c], best[c]) {
            (Some(o), Some(b)) => ratio(o, b),
            _ => "–".to_string(),
        };
        let short = sub.label.split(" (").next().unwrap_or(&sub.label);
        out.push(vec![
            format!("*{short} ÷ best peer*"),
            cell(0),
            cell(1),
            cell(2),
            cell(3),
            cell(4),
            cell(5),
            String::new(),
        ]);
    }
    out
}

fn print_table(cells: &[Vec<String>]) {
    let cols = cells.first().map_or(0, Vec::len);
    let width = |c: usize| {
        cells
            .iter()
            .filter_map(|r| r.get(c))
            .map(|t| t.chars().count())
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..cols).map(width).collect();
    for (i, row) in cells.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(t, w)| format!("{t}{}", " ".repeat(w - t.chars().count())))
            .collect();
        println!("| {} |", line.join(" | "));
        if i == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            println!("|-{}-|", rule.join("-|-"));
        }
    }
}

// ---------------------------------------------------------------------------------------

/// What each column means (the first footnotes).
fn definitions(node_rss: Option<f64>, py_rss: Option<f64>, window_secs: f64) -> Vec<String> {
    let mib = |v: Option<f64>| v.map_or("?".into(), |v| format!("{v:.1}"));
    vec![
        format!(
            "Start-up: median of {STARTUP_RUNS} fresh processes, each with an empty cache folder, from just before the client is constructed until the driver reads `{PROBE}` in all {NAMESPACES} namespaces ({KEYS} keys each); in brackets, from spawning the process (runtime start and module loading included)."
        ),
        format!(
            "Publish → listener: {PUBLISHES} publishes of one key, {} s apart, through the admin API. Latency: from issuing a publish until the harness receives the driver's report of that value or a later one (the client has caught up); \"> {} s\" when that took longer. Missed: the publish's own value was never reported (lost, or skipped because the client fetched a later value first).",
            PUBLISH_GAP.as_secs(),
            MISS_BOUND.as_secs()
        ),
        format!(
            "Fan-out: a new key published in each of the {NAMESPACES} namespaces, {NAMESPACES} admin calls back to back; the time from the first publish until the client reported the last of the {NAMESPACES}."
        ),
        format!(
            "RSS: VmRSS of the client's process one second after the fan-out, and in brackets its VmHWM (peak). For scale: a `node` process that loaded nothing: {} MiB; `python3`: {} MiB.",
            mib(node_rss),
            mib(py_rss)
        ),
        format!(
            "Idle: every client at once, each with its own app id and the same {NAMESPACES} namespaces, against the same server (long-poll hold {HOLD}); the requests to the Apollo endpoints in a window opened {} s after they started and kept open while the other measurements ran (at least {} minutes; this run: {:.1} minutes), from the server's request log, extrapolated to an hour. The note on each count splits it by endpoint.",
            IDLE_SETTLE.as_secs(),
            IDLE_WINDOW.as_secs() / 60,
            window_secs / 60.0
        ),
        format!(
            "Exact values: {} read back with the client's own getter: {}.",
            EXACT.len(),
            EXACT
                .iter()
                .map(|(k, v)| format!("`{k}` = {}", json::quote(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        "Our clients run with their defaults, which are the Java client's (long polls and /configs at most 2 per second, first long poll 2 s after start, fallback refresh every 5 minutes, a cache file). The others run as their READMEs show them; see bench/peers/ for each driver.".to_string(),
    ]
}

/// `cargo xtask bench --peers`.
pub fn run() -> ExitCode {
    let started = Instant::now();
    if let Err(e) = fs::create_dir_all(logs()) {
        eprintln!("cannot create {}: {e}", logs().display());
        return ExitCode::FAILURE;
    }
    println!(
        "== peers: build ours, install the others into {}",
        scratch().display()
    );
    let server_bin = match build_server() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let node = version_of("node", &["--version"]);
    let js = js_project();
    let subjects = vec![
        native(),
        npm_ours(&js, &node),
        python_ours(),
        node_subject(
            "ca",
            &format!("{}, npm (Node {node})", CTRIP_APOLLO.replace('@', " ")),
            false,
            &js,
            &[CTRIP_APOLLO],
            "ctrip-apollo.cjs",
        ),
        node_subject(
            "lv",
            &format!(
                "{}, npm (Node {node})",
                LVGITHUB
                    .rsplit_once('@')
                    .map_or(LVGITHUB.to_string(), |(n, v)| format!("{n} {v}"))
            ),
            false,
            &js,
            &[LVGITHUB, LVGITHUB_MISSING_DEP],
            "lvgithub.cjs",
        ),
        rust_peer(),
        xh(),
    ];
    let setup_secs = started.elapsed().as_secs_f64();
    println!("== peers: set-up took {setup_secs:.0} s");
    let result = measure_all(&server_bin, &subjects);
    let (rows, mut notes, window_secs) = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("peers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let node_rss = runtime_rss("node", &["-e", "setTimeout(() => {}, 5000)"]);
    let py_rss = runtime_rss("python3", &["-c", "import time; time.sleep(5)"]);
    let mut defs = definitions(node_rss, py_rss, window_secs);
    defs.append(&mut notes.0);
    notes.0 = defs;
    let cells = table(&subjects, &rows, &mut notes);
    println!();
    println!(
        "Measured {} on {} ({} cores), {}s long-poll hold, loopback. Run `cargo xtask bench --peers`.",
        version_of("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        version_of("uname", &["-m"]),
        version_of("nproc", &[]),
        HOLD.trim_end_matches('s')
    );
    println!();
    print_table(&cells);
    println!();
    for (i, n) in notes.0.iter().enumerate() {
        println!("{}. {n}", i + 1);
    }
    println!();
    println!(
        "peers: total {:.0} s (set-up {setup_secs:.0} s)",
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}

/// Start the server, run the idle clients and the measurements; one row per subject.
fn measure_all(server_bin: &Path, subjects: &[Subject]) -> Result<(Vec<Row>, Notes, f64), String> {
    let server = start_server(server_bin)?;
    println!("== peers: test server at {}", server.url);
    let mut cfg = Config {
        admin: Admin::new(&server.url)?,
        items: BTreeMap::new(),
    };
    let mut rows: Vec<Row> = subjects.iter().map(|_| Row::default()).collect();
    let usable: Vec<usize> = (0..subjects.len())
        .filter(|&i| subjects[i].setup.is_ok())
        .collect();
    for &i in &usable {
        cfg.seed(&format!("bench-{}", subjects[i].tag))?;
        cfg.seed(&format!("idle-{}", subjects[i].tag))?;
    }

    // Idle clients: all at once, each with its own app id.
    println!(
        "== peers: idle clients start; the {}-minute idle window opens in {} s",
        IDLE_WINDOW.as_secs() / 60,
        IDLE_SETTLE.as_secs()
    );
    let idle_started = Instant::now();
    let mut idle: Vec<(usize, Driver)> = Vec::new();
    for &i in &usable {
        let sub = &subjects[i];
        match Driver::spawn(
            sub,
            &format!("idle-{}", sub.tag),
            &format!("{}-idle", sub.tag),
            &server.url,
        ) {
            Ok(d) => idle.push((i, d)),
            Err(e) => rows[i].problems.push(format!("idle client: {e}")),
        }
    }
    let mut ready_idle = Vec::new();
    for (i, d) in idle {
        match d.wait_ready(READY_BOUND) {
            Ok(_) => ready_idle.push((i, d)),
            Err(e) => rows[i].problems.push(format!("idle client: {e}")),
        }
    }
    thread::sleep(IDLE_SETTLE.saturating_sub(idle_started.elapsed()));
    let window_start = Instant::now();
    let window_start_ms = epoch_ms();

    // Each client alone, while the idle ones idle.
    for &i in &usable {
        measure(&subjects[i], &mut cfg, &server.url, &mut rows[i]);
    }

    let left = IDLE_WINDOW.saturating_sub(window_start.elapsed());
    if !left.is_zero() {
        println!(
            "== peers: waiting {} s for the idle window to close",
            left.as_secs()
        );
        thread::sleep(left);
    }
    let window_end_ms = epoch_ms();
    let window_secs = (window_end_ms - window_start_ms) as f64 / 1000.0;
    let counts = count_idle(&cfg.admin, window_start_ms, window_end_ms)?;
    for (i, mut d) in ready_idle {
        if !d.alive() {
            rows[i]
                .problems
                .push("the idle client exited during the idle window".into());
            continue;
        }
        let by = counts.get(subjects[i].tag).cloned().unwrap_or_default();
        let total: u32 = by.values().sum();
        rows[i].idle = Some((f64::from(total) * 3600.0 / window_secs, by));
    }
    let mut notes = Notes(Vec::new());
    for (sub, row) in subjects.iter().zip(&rows) {
        if let Some(s) = row.settled
            && s > 10.0
        {
            notes.0.push(format!(
                "{}: after start-up it kept sending requests for {s:.0} s before one was held (or its timer waited); the latency test started after that.",
                sub.label
            ));
        }
    }
    drop(server);
    Ok((rows, notes, window_secs))
}
