//! The `native` conformance subject: the `apolloconf` crate driven by the line protocol of
//! `tests/conformance/README.md` (one JSON object per line on stdin and stdout).

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use apolloconf::{Client, ClientError, Counter, Env, Event, Metrics, Timing};
use serde_json::{Map, Value, json};

/// Writes whole lines to stdout from any thread.
#[derive(Clone)]
struct Out(Arc<Mutex<std::io::Stdout>>);

impl Out {
    fn send(&self, v: &Value) {
        let mut o = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        // A runner that went away cannot be told anything; the next read of stdin ends us.
        let _ = writeln!(o, "{v}");
        let _ = o.flush();
    }
}

fn error_json(e: &ClientError) -> Value {
    json!({
        "code": e.cause.code(),
        "message": e.to_string(),
        "namespace": e.namespace,
    })
}

/// Forwards the client's events as protocol events.
fn forward(out: Out, rx: mpsc::Receiver<Event>) {
    for ev in rx {
        match ev {
            Event::Changed(c) => {
                let changes: Vec<Value> = c
                    .changes
                    .iter()
                    .map(|ch| {
                        json!({"key": ch.key, "old": ch.old, "new": ch.new, "kind": ch.kind.as_str()})
                    })
                    .collect();
                out.send(&json!({
                    "event": "change",
                    "namespace": c.namespace,
                    "releaseKey": c.release_key,
                    "source": c.source.as_str(),
                    "changes": changes,
                }));
            }
            Event::Error(e) => {
                let mut v = error_json(&e);
                if let Some(o) = v.as_object_mut() {
                    o.insert("event".into(), json!("error"));
                }
                out.send(&v);
            }
            Event::Closed => break,
            _ => {}
        }
    }
}

/// Timing overrides by the core's knob names (`Timing::NAMES`); an unknown name or a
/// value that is not a whole number is a CONFIG error.
fn timing(v: Option<&Value>) -> Result<Timing, Value> {
    let mut t = Timing::default();
    let Some(map) = v.and_then(Value::as_object) else {
        return Ok(t);
    };
    for (name, value) in map {
        let known = value.as_u64().is_some_and(|n| t.set(name, n));
        if !known {
            return Err(
                json!({"code": "CONFIG", "message": format!("bad timing option {name}: {value}")}),
            );
        }
    }
    Ok(t)
}

fn text<'a>(o: &'a Value, key: &str) -> Option<&'a str> {
    o.get(key).and_then(Value::as_str)
}

fn start(o: &Value, out: &Out) -> Result<Client, Value> {
    let mut b = Client::builder()
        .environment(Env::empty())
        .server_properties("/nonexistent/apolloconf-conformance/server.properties");
    if let Some(v) = text(o, "appId") {
        b = b.app_id(v);
    }
    if let Some(v) = text(o, "configService") {
        b = b.config_service(v);
    }
    if let Some(v) = text(o, "metaServer") {
        b = b.meta_server(v);
    }
    if let Some(v) = text(o, "cluster") {
        b = b.cluster(v);
    }
    if let Some(v) = text(o, "dataCenter") {
        b = b.data_center(v);
    }
    if let Some(v) = text(o, "label") {
        b = b.label(v);
    }
    if let Some(v) = text(o, "ip") {
        b = b.ip(v);
    }
    if let Some(v) = text(o, "secret") {
        b = b.secret(v);
    }
    if let Some(list) = o.get("namespaces").and_then(Value::as_array) {
        b = b.namespaces(list.iter().filter_map(Value::as_str));
    }
    b = match text(o, "cacheDir") {
        Some(dir) => b.cache_dir(PathBuf::from(dir)),
        None => b.cache(false),
    };
    if let Some(ms) = o.get("startupTimeoutMs").and_then(Value::as_u64) {
        b = b.startup_timeout(Duration::from_millis(ms));
    }
    b = b.timing(timing(o.get("timing"))?);
    let (tx, rx) = mpsc::channel();
    b = b.event_sink(tx);
    let out2 = out.clone();
    std::thread::spawn(move || forward(out2, rx));
    b.build()
        .map_err(|e| json!({"code": "CONFIG", "message": e.to_string()}))
}

fn counter(c: &Counter) -> Value {
    json!({
        "sent": c.sent, "ok": c.ok, "notModified": c.not_modified, "notFound": c.not_found,
        "unauthorized": c.unauthorized, "otherStatus": c.other_status,
        "transportError": c.transport_error, "parseError": c.parse_error,
    })
}

fn metrics(m: &Metrics) -> Value {
    json!({
        "discovery": counter(&m.discovery),
        "configs": counter(&m.configs),
        "notifications": counter(&m.notifications),
        "lastError": m.last_error.as_ref().map(error_json),
        "longPollService": m.long_poll_service,
        "services": m.services,
    })
}

fn snapshot(c: &Client) -> Value {
    let snap = c.snapshot();
    let mut all = Map::new();
    for n in snap.namespaces() {
        all.insert(
            n.name().to_string(),
            json!({
                "releaseKey": n.release_key(),
                "source": n.source().as_str(),
                "status": n.status().as_str(),
                "properties": n.properties(),
                "content": n.content(),
            }),
        );
    }
    json!({"namespaces": all})
}

/// Threads of this process besides the main one (Linux only).
fn other_threads() -> Option<usize> {
    let n = std::fs::read_dir("/proc/self/task").ok()?.count();
    Some(n.saturating_sub(1))
}

/// Names of this process's threads besides the main one (Linux only).
fn thread_names() -> Vec<String> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc/self/task")
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy() != me)
                .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
                .map(|s| s.trim().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn closed() -> Value {
    json!({"code": "CLOSED", "message": "no client: send start first"})
}

/// Runs one command; `Ok` holds the reply fields, `Err` the error object.
fn run(cmd: &Value, client: &mut Option<Client>, out: &Out) -> Result<Value, Value> {
    let name = text(cmd, "cmd").unwrap_or("");
    match name {
        "start" => {
            if client.is_some() {
                return Err(json!({"code": "CONFIG", "message": "already started"}));
            }
            let t0 = Instant::now();
            let opts = cmd.get("options").cloned().unwrap_or(Value::Null);
            let c = start(&opts, out)?;
            *client = Some(c);
            Ok(json!({"ms": t0.elapsed().as_millis() as u64}))
        }
        "get" => {
            let c = client.as_ref().ok_or_else(closed)?;
            let key = text(cmd, "key").unwrap_or("");
            let value = match text(cmd, "namespace") {
                None => c.get(key),
                Some(ns) => match c.namespace(ns) {
                    Some(n) => n.get(key).map(str::to_string),
                    None => {
                        return Err(json!({
                            "code": "NOT_FOUND",
                            "message": format!("namespace {ns:?} is not watched"),
                        }));
                    }
                },
            };
            Ok(json!({ "value": value }))
        }
        "snapshot" => Ok(snapshot(client.as_ref().ok_or_else(closed)?)),
        "metrics" => {
            let c = client.as_ref().ok_or_else(closed)?;
            Ok(json!({"metrics": metrics(&c.metrics())}))
        }
        "watch" => {
            let c = client.as_ref().ok_or_else(closed)?;
            let ns = text(cmd, "namespace").unwrap_or("");
            c.watch(ns)
                .map(|()| json!({}))
                .map_err(|e| json!({"code": "CONFIG", "message": e.to_string()}))
        }
        "close" => {
            if let Some(c) = client.take() {
                c.close();
            }
            // Threads other than this one (and the stdout forwarder, which ends with the
            // client's last event) still alive shortly after close returned.
            let deadline = Instant::now() + Duration::from_millis(500);
            let mut n = other_threads();
            while n.is_some_and(|n| n > 0) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
                n = other_threads();
            }
            Ok(json!({ "threads": n, "threadNames": thread_names() }))
        }
        other => Err(json!({"code": "CONFIG", "message": format!("unknown command {other:?}")})),
    }
}

fn main() {
    let out = Out(Arc::new(Mutex::new(std::io::stdout())));
    let mut client: Option<Client> = None;
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        let cmd: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                out.send(&json!({"id": null, "ok": false,
                    "error": {"code": "CONFIG", "message": format!("bad command line: {e}")}}));
                continue;
            }
        };
        let id = cmd.get("id").cloned().unwrap_or(Value::Null);
        let is_close = text(&cmd, "cmd") == Some("close");
        let reply = match run(&cmd, &mut client, &out) {
            Ok(mut fields) => {
                if let Some(o) = fields.as_object_mut() {
                    o.insert("id".into(), id);
                    o.insert("ok".into(), json!(true));
                }
                fields
            }
            Err(error) => json!({"id": id, "ok": false, "error": error}),
        };
        out.send(&reply);
        if is_close {
            return;
        }
    }
    // stdin ended: close like the `close` command would.
    if let Some(c) = client.take() {
        c.close();
    }
}
