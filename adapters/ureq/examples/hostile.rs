//! What hostile server answers cost the native client and the `apolloconf` command, a
//! step of `cargo xtask bench`:
//! `cargo run --release -p apolloconf --example hostile -- SERVER_BINARY [CLI_BINARY]`.
//!
//! Each row runs in a child process of its own (this program started again with the
//! row's name) against a test server process of its own, so the time and the peak memory
//! printed (`VmHWM`) are the client's alone. The command's rows run the command as the
//! row's only child and print its peak (`ru_maxrss` of the waited child). The behaviour
//! is pinned by `tests/hostile_answers.rs` and `core/tests/memory.rs`; this prints what
//! it costs.

#[path = "support/server.rs"]
mod support;

use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use apolloconf::{Client, ClientBuilder, Env, Event, Timing};
use support::Server;

const APP: &str = "HostileApp";
const ROWS: [(&str, &str); 7] = [
    (
        "yaml",
        "YAML namespace: 700 hex numbers of 20,000 digits (14 MB)",
    ),
    ("services", "meta server list of 160,000 services"),
    ("bind", "a key of 50,000 dot segments, then bind()"),
    (
        "keys",
        "1,000,000 small keys in one /configs body (13.9 MB)",
    ),
    ("cache", "a 200 MB cache file at start-up"),
    ("id", "a notification id of i64::MAX, then a release"),
    (
        "messages",
        "a notification with 100,000 messages details, then a release",
    ),
];

use support::Result;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let (Some("--row"), Some(row), Some(url)) =
        (args.get(1).map(String::as_str), args.get(2), args.get(3))
    {
        let outcome = run_row(row, &Server::at(url))?;
        let took = CLIENT_START
            .get()
            .map_or(0.0, |t| t.elapsed().as_secs_f64() * 1000.0);
        println!(
            "{took:.0} ms, peak RSS {:.1} MiB: {outcome}",
            peak_rss_kib() as f64 / 1024.0
        );
        return Ok(());
    }
    if let (Some("--cli-row"), Some(row), Some(url), Some(cli), Some(cache)) = (
        args.get(1).map(String::as_str),
        args.get(2),
        args.get(3),
        args.get(4),
        args.get(5),
    ) {
        let outcome = cli_row(row, &Server::at(url), cli, cache)?;
        let took = CLIENT_START
            .get()
            .map_or(0.0, |t| t.elapsed().as_secs_f64() * 1000.0);
        println!("{took:.0} ms, {outcome}");
        return Ok(());
    }
    let binary = args
        .get(1)
        .ok_or("usage: hostile SERVER_BINARY [CLI_BINARY]")?;
    for (row, what) in ROWS {
        let server = Server::start(binary)?;
        server.publish(APP, "application", r#"{"k":"v"}"#)?;
        let out = Command::new(&args[0])
            .args(["--row", row, &server.url])
            .output()?;
        println!("{what}: {}", last_line(&out));
    }
    if let Some(cli) = args.get(2) {
        // One server and one cache folder for the three: the second `get` and `watch`
        // find the cache file the first one wrote.
        let server = Server::start(binary)?;
        let cache = tempfile::tempdir()?;
        for (row, what) in CLI_ROWS {
            let out = Command::new(&args[0])
                .args(["--cli-row", row, &server.url, cli])
                .arg(cache.path())
                .output()?;
            println!("{what}: {}", last_line(&out));
        }
    }
    Ok(())
}

const CLI_ROWS: [(&str, &str); 3] = [
    (
        "get",
        "`apolloconf get KEY`, 1,000,000 small keys (no cache file yet)",
    ),
    (
        "get-cached",
        "`apolloconf get KEY`, 1,000,000 small keys (cache file present)",
    ),
    (
        "watch",
        "`apolloconf watch` printing 1,000,000 small keys (cache file present)",
    ),
];

/// The last line a row printed, or how it failed.
fn last_line(out: &std::process::Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or("").to_string();
    if out.status.success() {
        line
    } else {
        format!(
            "FAILED ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        )
    }
}

/// 1,000,000 entries `"k123456":"6"` as a JSON object (a /configs body of 13.9 MB),
/// written into one buffer (no million small allocations left behind in the heap before
/// the client starts).
fn million_keys() -> String {
    use std::fmt::Write as _;
    let mut items = String::with_capacity(16_000_000);
    items.push('{');
    for i in 0..1_000_000 {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(items, r#"{sep}"k{i}":"{}""#, i % 10);
    }
    items.push('}');
    items
}

/// Runs the `apolloconf` command once as this process's only child; its peak memory
/// against the size of the `/configs` body it read.
fn cli_row(row: &str, a: &Server, cli: &str, cache: &str) -> Result<String> {
    if row == "get" {
        a.publish(APP, "application", &million_keys())?;
    }
    let body = a.configs_body_len(APP, "application")?;
    let mut cmd = Command::new(cli);
    cmd.args([
        "--config-service",
        &a.url,
        "--app-id",
        APP,
        "--cache-dir",
        cache,
    ])
    .args(["--timeout", "60"]);
    client_part();
    let seen = if row == "watch" {
        // The header, the namespace's line, then one line per key: then it is stopped.
        let mut child = cmd
            .arg("watch")
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        let out = child.stdout.take().ok_or("no stdout")?;
        let lines = std::io::BufRead::lines(std::io::BufReader::new(out))
            .take(1_000_002)
            .count();
        child.kill()?;
        child.wait()?;
        format!("{} lines", lines.saturating_sub(2))
    } else {
        let out = cmd.args(["get", "k123456"]).output()?;
        if !out.status.success() {
            return Err(format!("apolloconf get failed: {}", last_line(&out)).into());
        }
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let peak_kib = child_peak_rss_kib()?;
    Ok(format!(
        "apolloconf peak RSS {:.1} MiB, {:.2}x the {:.1} MB body ({seen})",
        peak_kib as f64 / 1024.0,
        (peak_kib * 1024) as f64 / body as f64,
        body as f64 / 1e6
    ))
}

/// The peak resident memory of the largest waited child, in KiB (`ru_maxrss`).
fn child_peak_rss_kib() -> Result<u64> {
    use nix::sys::resource::{UsageWho, getrusage};
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN)?;
    Ok(u64::try_from(usage.max_rss()).unwrap_or(0))
}

/// When the row's client part started (after its answers were prepared).
static CLIENT_START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// Marks the start of the client part: the peak memory is reset to what the process
/// holds now (`/proc/self/clear_refs`), so preparing the hostile answers does not count.
fn client_part() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let _ = CLIENT_START.set(Instant::now());
}

/// Peak resident memory of this process in KiB (`VmHWM`).
fn peak_rss_kib() -> u64 {
    support::status_kib("VmHWM")
}

fn timing() -> Timing {
    let mut t = Timing::default();
    t.long_poll_initial_delay = Duration::ZERO;
    t
}

fn builder(url: &str, dir: &std::path::Path) -> ClientBuilder {
    Client::builder()
        .app_id(APP)
        .config_service(url)
        .environment(Env::empty())
        .server_properties(dir.join("none"))
        .cache_dir(dir)
        .timing(timing())
        .startup_timeout(Duration::from_secs(60))
}

fn wait(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

fn configs_json(namespace: &str, configurations: serde_json::Value) -> String {
    serde_json::json!({
        "appId": APP, "cluster": "default", "namespaceName": namespace,
        "configurations": configurations, "releaseKey": "20260101000000-00000000000000ff"
    })
    .to_string()
}

fn run_row(row: &str, a: &Server) -> Result<String> {
    let dir = tempfile::tempdir()?;
    let url = a.url.clone();
    match row {
        "yaml" => {
            a.publish(APP, "big.yaml", r#"{"content":"a: 1\n"}"#)?;
            let digits = "f".repeat(20_000);
            let yaml: String = (0..700).map(|i| format!("k{i}: 0x{digits}\n")).collect();
            let answer = configs_json("big.yaml", serde_json::json!({ "content": yaml }));
            drop(yaml);
            client_part();
            let (tx, rx) = mpsc::channel();
            let c = builder(&url, dir.path())
                .namespaces(["big.yaml"])
                .event_sink(tx)
                .build()?;
            a.answer_with("configs", &answer, 1)?;
            drop(answer);
            let t0 = Instant::now();
            a.publish(APP, "big.yaml", r#"{"content":"a: 2\n"}"#)?;
            let refused = wait(Duration::from_secs(120), || {
                rx.try_iter().any(|e| {
                    matches!(e, Event::Error(err) if err.namespace.as_deref() == Some("big.yaml"))
                })
            });
            let took = t0.elapsed();
            c.close();
            Ok(if refused {
                format!(
                    "refused {:.0} ms after the release",
                    took.as_secs_f64() * 1000.0
                )
            } else {
                "NOT refused in 120 s".into()
            })
        }
        "services" => {
            let mut list = vec![format!(r#"{{"homepageUrl":"{url}/"}}"#)];
            list.extend((0..160_000).map(|i| {
                format!(
                    r#"{{"homepageUrl":"http://127.0.0.1:{}/p{i}/"}}"#,
                    1 + i % 1000
                )
            }));
            a.answer_with("services", &format!("[{}]", list.join(",")), 1)?;
            drop(list);
            client_part();
            let c = Client::builder()
                .app_id(APP)
                .meta_server(url.clone())
                .environment(Env::empty())
                .server_properties(dir.path().join("none"))
                .cache(false)
                .startup_timeout(Duration::from_millis(100))
                .build()?;
            let ok = wait(Duration::from_secs(120), || {
                !c.snapshot().services().is_empty()
            });
            let n = c.snapshot().services().len();
            c.close();
            Ok(if ok {
                format!("{n} services kept")
            } else {
                "no list in 120 s".into()
            })
        }
        "bind" => {
            let key: String = (0..50_000).map(|i| format!("s{i}.")).collect::<String>() + "end";
            a.publish(
                APP,
                "application",
                &serde_json::json!({ key: "1" }).to_string(),
            )?;
            client_part();
            let c = builder(&url, dir.path()).build()?;
            let r = c.bind::<serde_json::Value>("application");
            c.close();
            Ok(match r {
                Ok(_) => "bound".into(),
                Err(e) => format!(
                    "refused: {}",
                    e.to_string().chars().take(80).collect::<String>()
                ),
            })
        }
        "keys" => {
            a.publish(APP, "application", &million_keys())?;
            client_part();
            let before = peak_rss_kib();
            let c = builder(&url, dir.path()).cache(false).build()?;
            let n = c
                .snapshot()
                .namespace("application")
                .map_or(0, |n| n.properties().len());
            c.close();
            Ok(format!(
                "{n} keys loaded ({:.1} MiB before the client)",
                before as f64 / 1024.0
            ))
        }
        "cache" => {
            let cache = dir.path().join(APP).join("config-cache");
            std::fs::create_dir_all(&cache)?;
            let line = "key0000000=value-value-value-value-value-value-value-value-value\n";
            let file = cache.join(format!("{APP}+default+application.properties"));
            {
                use std::io::Write;
                let mut f = std::io::BufWriter::new(std::fs::File::create(&file)?);
                for _ in 0..(200 * 1024 * 1024 / line.len()) {
                    f.write_all(line.as_bytes())?;
                }
                f.flush()?;
            }
            let dead = format!("http://127.0.0.1:{}", dead_port());
            client_part();
            let (tx, rx) = mpsc::channel();
            let c = builder(&dead, dir.path())
                .event_sink(tx)
                .startup_timeout(Duration::from_millis(500))
                .build()?;
            let refused = rx
                .try_iter()
                .any(|e| matches!(e, Event::Error(err) if err.cause.code() == "CACHE"));
            c.close();
            Ok(if refused { "refused" } else { "read" }.into())
        }
        "id" => {
            client_part();
            let c = builder(&url, dir.path()).build()?;
            let absurd = format!(
                r#"[{{"namespaceName":"application","notificationId":{}}}]"#,
                i64::MAX
            );
            a.answer_with("notifications", &absurd, 1)?;
            a.publish(APP, "application", r#"{"k":"v1"}"#)?;
            wait(Duration::from_secs(10), || {
                c.get("k").as_deref() == Some("v1")
            });
            std::thread::sleep(Duration::from_millis(500));
            let t0 = Instant::now();
            a.publish(APP, "application", r#"{"k":"v2"}"#)?;
            let seen = wait(Duration::from_secs(30), || {
                c.get("k").as_deref() == Some("v2")
            });
            c.close();
            Ok(seen_after(seen, t0))
        }
        "messages" => {
            let id = a.publish(APP, "application", r#"{"k":"v0"}"#)?;
            let details: Vec<String> = (0..100_000)
                .map(|i| format!(r#""{APP}+c{i}+application":{id}"#))
                .collect();
            let answer = format!(
                r#"[{{"namespaceName":"application","notificationId":{id},"messages":{{"details":{{{}}}}}}}]"#,
                details.join(",")
            );
            a.answer_with("notifications", &answer, 1)?;
            drop(answer);
            client_part();
            let c = builder(&url, dir.path()).build()?;
            std::thread::sleep(Duration::from_millis(500));
            let t0 = Instant::now();
            a.publish(APP, "application", r#"{"k":"v1"}"#)?;
            let seen = wait(Duration::from_secs(30), || {
                c.get("k").as_deref() == Some("v1")
            });
            c.close();
            Ok(seen_after(seen, t0))
        }
        other => Err(format!("unknown row {other:?}").into()),
    }
}

fn seen_after(seen: bool, t0: Instant) -> String {
    if seen {
        format!(
            "the next release seen after {:.0} ms",
            t0.elapsed().as_secs_f64() * 1000.0
        )
    } else {
        "the next release NOT seen in 30 s".into()
    }
}

fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or(9, |a| a.port())
}
