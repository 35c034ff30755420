//! Plays one scenario: servers, subject, steps and expectations.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use apolloconf_testserver::RecordedRequest;
use serde_json::{Value, json};

use super::subject::{Subject, SubjectCmd};
use super::util::{expand, field_str, field_u64, median_p99, opt_str, query_params, read_latin1};
use super::world::{Servers, is_admin_op, server_vars};

/// Protocol timings the runner uses unless a scenario overrides them (the Java defaults,
/// scaled down so that the suite is fast; the shape of every schedule is kept).
pub fn default_timing() -> Value {
    json!({
        "longPollInitialDelayMs": 0,
        "connectTimeoutMs": 1000,
        "readTimeoutMs": 3000,
        "fetchRetryInitialMs": 50,
        "fetchRetryMaxMs": 400,
        "longPollRetryInitialMs": 50,
        "longPollRetryMaxMs": 400,
        "loadConfigQps": 50,
        "longPollQps": 50,
        "discoveryRetryInitialMs": 100,
        "discoveryRetryMaxMs": 500,
    })
}

const DEFAULT_EXPECT_MS: u64 = 10_000;
const REPLY_MS: u64 = 30_000;

/// The outcome of one run: notes (measured numbers) on success.
pub type Outcome = Result<Vec<String>, String>;

struct Run {
    servers: Servers,
    vars: HashMap<String, String>,
    marks: HashMap<String, u64>,
    subject: Option<Subject>,
    cursor: usize,
    client: Value,
    app: String,
    cache_dir: PathBuf,
    cmd: SubjectCmd,
    notes: Vec<String>,
    _tmp: tempfile::TempDir,
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Plays `scenario` against the subject started by `cmd`.
pub fn play(scenario: &Value, cmd: &SubjectCmd) -> Outcome {
    let tmp = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let cache_dir = tmp.path().join("cache");
    std::fs::create_dir_all(&cache_dir).map_err(|e| format!("cache dir: {e}"))?;
    let server_spec = scenario.get("server").cloned().unwrap_or(json!({}));
    let servers = Servers::start(&server_spec, tmp.path())?;
    let mut vars = HashMap::new();
    server_vars(&servers, &mut vars);
    vars.insert("cacheDir".into(), cache_dir.display().to_string());
    let client = scenario.get("client").cloned().unwrap_or(json!({}));
    let app = opt_str(&client, "appId").unwrap_or("SampleApp").to_string();
    vars.insert("appId".into(), app.clone());
    let mut run = Run {
        servers,
        vars,
        marks: HashMap::new(),
        subject: None,
        cursor: 0,
        client,
        app,
        cache_dir,
        cmd: cmd.clone(),
        notes: Vec::new(),
        _tmp: tmp,
    };
    let setup = server_spec
        .get("setup")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (i, step) in setup.iter().enumerate() {
        run.step(step)
            .map_err(|e| format!("server.setup[{i}] {}: {e}", compact(step)))?;
    }
    let steps = scenario
        .get("steps")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let trace = std::env::var_os("APOLLOCONF_TRACE").is_some();
    for (i, step) in steps.iter().enumerate() {
        if trace {
            eprintln!(
                "TRACE {} step[{i}] {}",
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_millis() % 100_000)
                    .unwrap_or(0),
                compact(step)
            );
        }
        if let Err(e) = run.step(step) {
            let diag = run
                .subject
                .as_ref()
                .map(Subject::diagnostics)
                .unwrap_or_default();
            let log = run.request_tail(12);
            return Err(format!("steps[{i}] {}: {e}\n{diag}{log}", compact(step)));
        }
    }
    if trace {
        eprintln!("{}", run.request_tail(40));
    }
    if let Some(s) = run.subject.as_mut() {
        // Scenarios normally end with "close"; a subject still running is stopped here.
        let _ = s.call(json!({"cmd": "close"}), Duration::from_secs(5));
    }
    Ok(run.notes)
}

fn compact(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 160 {
        let mut end = 160;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    } else {
        s
    }
}

fn ok_reply(v: Value) -> Result<Value, String> {
    if v.get("ok").and_then(Value::as_bool) == Some(true) {
        Ok(v)
    } else {
        Err(format!("the subject answered an error: {v}"))
    }
}

impl Run {
    fn subject(&mut self) -> Result<&mut Subject, String> {
        self.subject
            .as_mut()
            .ok_or_else(|| "no subject running: add a start step".to_string())
    }

    fn call(&mut self, cmd: Value) -> Result<Value, String> {
        self.subject()?
            .call(cmd, Duration::from_millis(REPLY_MS))
            .and_then(ok_reply)
    }

    /// `"settled": true`: every discovery and `/configs` request the subject sent has been
    /// answered (its own counters: sent = answers by status + transport errors), and some
    /// instance holds a long poll. Scenarios wait for it before a fault or a publish whose
    /// effect they assert, so that no request accepted earlier can carry the new release.
    fn check_settled(&mut self) -> Result<(), Why> {
        let r = self.call(json!({"cmd": "metrics"})).map_err(Fatal)?;
        for kind in ["discovery", "configs"] {
            let n = |f: &str| {
                r.pointer(&format!("/metrics/{kind}/{f}"))
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
            };
            // A parse error follows a 200 (counted as `ok` already): not an answer of its own.
            let answered: u64 = [
                "ok",
                "notModified",
                "notFound",
                "unauthorized",
                "otherStatus",
                "transportError",
            ]
            .iter()
            .map(|f| n(f))
            .sum();
            if n("sent") != answered {
                return Err(Mismatch(format!(
                    "{kind}: {} sent, {answered} answered (not settled)",
                    n("sent")
                )));
            }
        }
        let mut held = 0;
        for i in 0..self.servers.insts.len() {
            if let Ok(a) = self.servers.admin(i) {
                held += a.held_polls();
            }
        }
        if held == 0 {
            return Err(Mismatch(
                "no instance holds a long poll (not settled)".into(),
            ));
        }
        Ok(())
    }

    /// The last `n` requests each live instance received (for failure reports).
    fn request_tail(&self, n: usize) -> String {
        let mut out = String::new();
        for i in 0..self.servers.insts.len() {
            let Ok(a) = self.servers.admin(i) else {
                continue;
            };
            let log = a.requests();
            out.push_str(&format!(
                "requests on instance {i} (last {n} of {}):\n",
                log.len()
            ));
            for r in log.iter().skip(log.len().saturating_sub(n)) {
                let mut p = r.path.clone();
                if p.len() > 200 {
                    let mut end = 200;
                    while !p.is_char_boundary(end) {
                        end -= 1;
                    }
                    p.truncate(end);
                    p.push('…');
                }
                out.push_str(&format!("  {} {}\n", r.time_ms % 100_000, p));
            }
        }
        out
    }

    fn step(&mut self, raw: &Value) -> Result<(), String> {
        let op = field_str(raw, "op")?.to_string();
        check_fields(&op, raw)?;
        if op == "expect" {
            // Expectations are expanded on every poll: `as` names may appear later.
            return self.expect(raw);
        }
        let step = expand(raw, &self.vars)?;
        if is_admin_op(&op) {
            let app = self.app.clone();
            let out = self.servers.admin_step(&op, &step, &app)?;
            if let (Some(name), Some((value, id))) = (opt_str(&step, "as"), out) {
                self.vars.insert(name.to_string(), value);
                if let Some(id) = id {
                    self.vars.insert(format!("{name}.id"), id.to_string());
                }
            }
            return Ok(());
        }
        match op.as_str() {
            "start" => self.start(&step),
            "watch" => {
                let ns = field_str(&step, "namespace")?.to_string();
                let cmd = json!({"cmd": "watch", "namespace": ns});
                match opt_str(&step, "expectError") {
                    None => self.call(cmd).map(drop),
                    Some(code) => {
                        let r = self.subject()?.call(cmd, Duration::from_millis(REPLY_MS))?;
                        if r.pointer("/error/code").and_then(Value::as_str) == Some(code) {
                            Ok(())
                        } else {
                            Err(format!("watch should fail with {code}, got {r}"))
                        }
                    }
                }
            }
            "close" => self.close(&step),
            "wait_ms" => {
                std::thread::sleep(Duration::from_millis(field_u64(&step, "ms")?));
                Ok(())
            }
            "mark" => {
                let name = field_str(&step, "name")?.to_string();
                self.marks.insert(name, epoch_ms());
                Ok(())
            }
            "clear_events" => {
                self.cursor = self.subject()?.event_count();
                Ok(())
            }
            "expect_quiet" => self.quiet(&step),
            "latency" => self.latency(&step),
            "write_cache" => self.write_cache(&step),
            _ => Err(format!("unknown step op {op:?}")),
        }
    }

    fn start(&mut self, step: &Value) -> Result<(), String> {
        let running = match self.subject.as_mut() {
            Some(s) => !s.exited(),
            None => false,
        };
        if running {
            return Err("a subject is already running: close it first".into());
        }
        let mut opts = json!({
            "appId": self.app,
            "cacheDir": self.cache_dir.display().to_string(),
            "startupTimeoutMs": 10000,
        });
        let client = expand(&self.client, &self.vars)?;
        let overrides = step.get("options").cloned().unwrap_or(json!({}));
        let mut timing = default_timing();
        for src in [&client, &overrides] {
            if let Some(o) = src.as_object() {
                for (k, v) in o {
                    match k.as_str() {
                        "timing" => merge(&mut timing, v),
                        "cache" => {
                            if v == &json!(false) {
                                opts["cacheDir"] = Value::Null;
                            }
                        }
                        _ => {
                            opts[k.as_str()] = v.clone();
                        }
                    }
                }
            }
        }
        if opts.get("configService").is_none() && opts.get("metaServer").is_none() {
            opts["configService"] = json!(self.vars["urls"]);
        }
        opts["timing"] = timing;
        self.subject = Some(Subject::spawn(&self.cmd)?);
        self.cursor = 0;
        let t0 = Instant::now();
        let reply = self.subject()?.call(
            json!({"cmd": "start", "options": opts}),
            Duration::from_millis(REPLY_MS),
        )?;
        let ms = t0.elapsed().as_millis() as u64;
        if let Some(label) = opt_str(step, "report") {
            self.notes.push(format!("{label}: {ms} ms"));
        }
        match opt_str(step, "expectError") {
            Some(code) => {
                let got = reply.pointer("/error/code").and_then(Value::as_str);
                if got != Some(code) {
                    return Err(format!("start should fail with {code}, got {reply}"));
                }
            }
            None => {
                ok_reply(reply)?;
            }
        }
        if let Some(max) = step.get("maxMs").and_then(Value::as_u64) {
            if ms > max {
                return Err(format!("start took {ms} ms (at most {max} ms expected)"));
            }
        }
        if let Some(min) = step.get("minMs").and_then(Value::as_u64) {
            if ms < min {
                return Err(format!("start took {ms} ms (at least {min} ms expected)"));
            }
        }
        Ok(())
    }

    fn close(&mut self, step: &Value) -> Result<(), String> {
        let within = step
            .get("exitWithinMs")
            .and_then(Value::as_u64)
            .unwrap_or(2000);
        let reply = self.call(json!({"cmd": "close"}))?;
        if let Some(n) = reply.get("threads").and_then(Value::as_u64) {
            if let Some(max) = step.get("maxThreads").and_then(Value::as_u64) {
                if n > max {
                    return Err(format!(
                        "{n} threads of the subject were still running 500 ms after close returned (at most {max} expected): {}",
                        reply.get("threadNames").cloned().unwrap_or_default()
                    ));
                }
            }
        }
        let t0 = Instant::now();
        let s = self.subject()?;
        if !s.wait_exit(Duration::from_millis(within)) {
            return Err(format!(
                "the subject did not exit within {within} ms of close"
            ));
        }
        let ms = t0.elapsed().as_millis() as u64;
        if let Some(label) = opt_str(step, "report") {
            self.notes.push(format!("{label}: {ms} ms"));
        }
        Ok(())
    }

    fn quiet(&mut self, step: &Value) -> Result<(), String> {
        let ms = field_u64(step, "ms")?;
        let ns = opt_str(step, "namespace").map(str::to_string);
        let from = self.subject()?.event_count();
        std::thread::sleep(Duration::from_millis(ms));
        let evs = self.subject()?.events();
        let extra: Vec<&Value> = evs[from..]
            .iter()
            .map(|e| &e.v)
            .filter(|v| v["event"] == "change")
            .filter(|v| ns.as_deref().is_none_or(|n| v["namespace"] == n))
            .collect();
        if extra.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "expected no change event for {ms} ms, got {}",
                Value::Array(extra.into_iter().cloned().collect())
            ))
        }
    }

    fn write_cache(&mut self, step: &Value) -> Result<(), String> {
        let ns = opt_str(step, "namespace").unwrap_or("application");
        let cluster = opt_str(step, "cluster").unwrap_or("default");
        let app = opt_str(step, "app").unwrap_or(&self.app);
        let text = field_str(step, "text")?;
        let dir = self.cache_dir.join(app).join("config-cache");
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        std::fs::write(dir.join(format!("{app}+{cluster}+{ns}.properties")), text)
            .map_err(|e| e.to_string())
    }

    /// Publishes `samples` times and measures publish → change event at the runner.
    fn latency(&mut self, step: &Value) -> Result<(), String> {
        let samples = step.get("samples").and_then(Value::as_u64).unwrap_or(20);
        let tolerance = step
            .get("toleranceMs")
            .and_then(Value::as_f64)
            .unwrap_or(100.0);
        let ns = opt_str(step, "namespace")
            .unwrap_or("application")
            .to_string();
        let key = opt_str(step, "key").unwrap_or("latency").to_string();
        let on = step.get("on").and_then(Value::as_u64).unwrap_or(0) as usize;
        let gap = Duration::from_millis(step.get("gapMs").and_then(Value::as_u64).unwrap_or(0));
        let mut got = Vec::new();
        for i in 0..samples {
            if i > 0 {
                std::thread::sleep(gap);
            }
            // Publish only while a long poll is parked, as in production.
            let admin = self.servers.admin(on)?.clone();
            let deadline = Instant::now() + Duration::from_secs(10);
            while admin.held_polls() == 0 {
                if Instant::now() >= deadline {
                    return Err("no long poll held within 10 s".into());
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            let from = self.subject()?.event_count();
            let value = format!("v{i}-{}", epoch_ms());
            let t0 = Instant::now();
            let r = self
                .servers
                .store
                .publish(&self.app, "default", &ns, vec![(key.clone(), value)])
                .map_err(|e| e.to_string())?;
            let rk = r.release_key.clone();
            let nsq = ns.clone();
            let ev = self
                .subject()?
                .wait_event(from, Duration::from_secs(10), |v| {
                    v["event"] == "change"
                        && v["namespace"] == nsq.as_str()
                        && v["releaseKey"] == rk.as_str()
                })
                .ok_or_else(|| {
                    format!("no change event for release {} within 10 s", r.release_key)
                })?;
            got.push(ev.at.duration_since(t0).as_secs_f64() * 1000.0);
        }
        let (med, p99) = median_p99(&got);
        let max = got.iter().copied().fold(0.0, f64::max);
        self.notes.push(format!(
            "publish->event over {samples} publishes: median {med:.1} ms, p99 {p99:.1} ms, max {max:.1} ms (tolerance {tolerance} ms on the median)"
        ));
        if med > tolerance {
            return Err(format!(
                "median publish->event latency {med:.1} ms exceeds {tolerance} ms (samples {got:?})"
            ));
        }
        Ok(())
    }

    fn expect(&mut self, raw: &Value) -> Result<(), String> {
        let timeout = raw
            .get("timeoutMs")
            .and_then(Value::as_u64)
            .unwrap_or(DEFAULT_EXPECT_MS);
        let deadline = Instant::now() + Duration::from_millis(timeout);
        loop {
            let cond = expand(raw, &self.vars)?;
            let r = self.check(&cond);
            match r {
                Ok(()) => return Ok(()),
                Err(Fatal(e)) => return Err(e),
                Err(Mismatch(e)) => {
                    if Instant::now() >= deadline {
                        return Err(format!("not true within {timeout} ms: {e}"));
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn check(&mut self, c: &Value) -> Result<(), Why> {
        let known = [
            "op",
            "timeoutMs",
            "values",
            "namespace",
            "snapshot",
            "events",
            "errors",
            "requests",
            "metrics",
            "cacheFile",
            "heldPolls",
            "settled",
            "exited",
            "note",
        ];
        if let Some(o) = c.as_object() {
            if let Some(k) = o.keys().find(|k| !known.contains(&k.as_str())) {
                return Err(Fatal(format!("unknown expectation {k:?}")));
            }
        }
        if let Some(vals) = c.get("values").and_then(Value::as_object) {
            let ns = c.get("namespace").cloned().unwrap_or(Value::Null);
            for (k, want) in vals {
                let r = self
                    .call(json!({"cmd": "get", "key": k, "namespace": ns}))
                    .map_err(Fatal)?;
                let got = r.get("value").cloned().unwrap_or(Value::Null);
                if &got != want {
                    return Err(Mismatch(format!(
                        "get({k:?}, namespace {ns}) = {got}, want {want}"
                    )));
                }
            }
        }
        if let Some(snap) = c.get("snapshot").and_then(Value::as_object) {
            let r = self.call(json!({"cmd": "snapshot"})).map_err(Fatal)?;
            for (ns, want) in snap {
                let got = r
                    .pointer(&format!(
                        "/namespaces/{}",
                        ns.replace('~', "~0").replace('/', "~1")
                    ))
                    .ok_or_else(|| Mismatch(format!("snapshot has no namespace {ns:?}: {r}")))?;
                check_namespace(ns, got, want)?;
            }
        }
        if let Some(e) = c.get("events") {
            let list = match e {
                Value::Array(a) => a.clone(),
                o => vec![o.clone()],
            };
            for m in &list {
                self.check_events(m)?;
            }
        }
        if let Some(e) = c.get("errors") {
            self.check_errors(e)?;
        }
        if let Some(r) = c.get("requests") {
            let list = match r {
                Value::Array(a) => a.clone(),
                o => vec![o.clone()],
            };
            for m in &list {
                self.check_requests(m)?;
            }
        }
        if let Some(m) = c.get("metrics").and_then(Value::as_object) {
            let r = self.call(json!({"cmd": "metrics"})).map_err(Fatal)?;
            for (path, want) in m {
                let ptr = format!("/metrics/{}", path.replace('.', "/"));
                let got = r.pointer(&ptr).cloned().unwrap_or(Value::Null);
                if !value_matches(&got, want) {
                    return Err(Mismatch(format!("metrics {path} = {got}, want {want}")));
                }
            }
        }
        if let Some(cf) = c.get("cacheFile") {
            self.check_cache_file(cf)?;
        }
        if let Some(h) = c.get("heldPolls") {
            let on = h.get("on").and_then(Value::as_u64).unwrap_or(0) as usize;
            let n = self.servers.admin(on).map_err(Fatal)?.held_polls() as u64;
            if !count_ok(n, h) {
                return Err(Mismatch(format!("instance {on} holds {n} polls, want {h}")));
            }
        }
        if c.get("settled").and_then(Value::as_bool) == Some(true) {
            self.check_settled()?;
        }
        if let Some(x) = c.get("exited").and_then(Value::as_bool) {
            let e = self.subject().map_err(Fatal)?.exited();
            if e != x {
                return Err(Mismatch(format!("subject exited = {e}, want {x}")));
            }
        }
        Ok(())
    }

    fn check_events(&mut self, m: &Value) -> Result<(), Why> {
        let cursor = self.cursor;
        let evs = self.subject().map_err(Fatal)?.events();
        let ns = opt_str(m, "namespace");
        let list: Vec<&Value> = evs
            .get(cursor..)
            .unwrap_or(&[])
            .iter()
            .map(|e| &e.v)
            .filter(|v| v["event"] == "change")
            .filter(|v| ns.is_none_or(|n| v["namespace"] == n))
            .collect();
        let shown = || Value::Array(list.iter().map(|v| (*v).clone()).collect());
        let n = list.len() as u64;
        let has_count = ["count", "min", "max"].iter().any(|k| m.get(*k).is_some());
        if has_count && !count_ok(n, m) {
            return Err(Mismatch(format!(
                "{n} change events, want {m}; got {}",
                shown()
            )));
        }
        if let Some(want) = m.get("lastReleaseKey") {
            let got = list.last().map_or(&Value::Null, |v| &v["releaseKey"]);
            if got != want {
                return Err(Mismatch(format!(
                    "last change event release key {got}, want {want}"
                )));
            }
        }
        if let Some(want) = m.get("lastSource") {
            let got = list.last().map_or(&Value::Null, |v| &v["source"]);
            if got != want {
                return Err(Mismatch(format!(
                    "last change event source {got}, want {want}"
                )));
            }
        }
        let all: Vec<&Value> = list
            .iter()
            .flat_map(|v| {
                v["changes"]
                    .as_array()
                    .map(|a| a.iter())
                    .into_iter()
                    .flatten()
            })
            .collect();
        if let Some(want) = m.get("changes").and_then(Value::as_array) {
            for w in want {
                if !all.iter().any(|c| change_matches(c, w)) {
                    return Err(Mismatch(format!("no change like {w} in {}", shown())));
                }
            }
        }
        if let Some(want) = m.get("exactly").and_then(Value::as_array) {
            let ok =
                want.len() == all.len() && want.iter().zip(&all).all(|(w, c)| change_matches(c, w));
            if !ok {
                return Err(Mismatch(format!(
                    "changes should be exactly {want:?}, got {}",
                    shown()
                )));
            }
        }
        if let Some(keys) = m.get("noChangeOf").and_then(Value::as_array) {
            if let Some(c) = all.iter().find(|c| keys.contains(&c["key"])) {
                return Err(Mismatch(format!("unexpected change {c}")));
            }
        }
        Ok(())
    }

    fn check_errors(&mut self, m: &Value) -> Result<(), Why> {
        let cursor = self.cursor;
        let evs = self.subject().map_err(Fatal)?.events();
        let code = opt_str(m, "code");
        let ns = opt_str(m, "namespace");
        let n = evs
            .get(cursor..)
            .unwrap_or(&[])
            .iter()
            .map(|e| &e.v)
            .filter(|v| v["event"] == "error")
            .filter(|v| code.is_none_or(|c| v["code"] == c))
            .filter(|v| ns.is_none_or(|x| v["namespace"] == x))
            .count() as u64;
        let spec = if ["count", "min", "max"].iter().any(|k| m.get(*k).is_some()) {
            m.clone()
        } else {
            json!({"min": 1})
        };
        if count_ok(n, &spec) {
            Ok(())
        } else {
            Err(Mismatch(format!("{n} error events matching {m}")))
        }
    }

    fn check_requests(&mut self, m: &Value) -> Result<(), Why> {
        let on = m.get("on").and_then(Value::as_u64).unwrap_or(0) as usize;
        let since = match opt_str(m, "sinceMark") {
            Some(name) => Some(
                *self
                    .marks
                    .get(name)
                    .ok_or_else(|| Fatal(format!("no mark {name:?}")))?,
            ),
            None => None,
        };
        let log = self.servers.admin(on).map_err(Fatal)?.requests();
        let hits: Vec<&RecordedRequest> = log
            .iter()
            .filter(|r| r.method != "OPTIONS")
            .filter(|r| since.is_none_or(|t| r.time_ms >= t))
            .filter(|r| request_matches(r, m))
            .collect();
        let n = hits.len() as u64;
        let spec = if ["count", "min", "max"].iter().any(|k| m.get(*k).is_some()) {
            m.clone()
        } else {
            json!({"min": 1})
        };
        if count_ok(n, &spec) {
            return Ok(());
        }
        let sample: Vec<String> = log
            .iter()
            .filter(|r| opt_str(m, "endpoint").is_none_or(|e| r.endpoint == e))
            .rev()
            .take(6)
            .map(|r| r.path.clone())
            .collect();
        Err(Mismatch(format!(
            "{n} requests on instance {on} match {m}; latest of that endpoint: {sample:?}"
        )))
    }

    fn check_cache_file(&mut self, m: &Value) -> Result<(), Why> {
        let ns = opt_str(m, "namespace").unwrap_or("application");
        let cluster = opt_str(m, "cluster").unwrap_or("default");
        let app = opt_str(m, "app").unwrap_or(&self.app);
        let path = self
            .cache_dir
            .join(app)
            .join("config-cache")
            .join(format!("{app}+{cluster}+{ns}.properties"));
        if let Some(want) = m.get("files").and_then(Value::as_array) {
            let dir = self.cache_dir.join(app).join("config-cache");
            let mut got: Vec<String> = std::fs::read_dir(&dir)
                .map(|rd| {
                    rd.filter_map(Result::ok)
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            got.sort();
            let mut want: Vec<String> = want
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect();
            want.sort();
            if got != want {
                return Err(Mismatch(format!(
                    "{} holds {got:?}, want {want:?}",
                    dir.display()
                )));
            }
        }
        let exists = path.exists();
        if let Some(want) = m.get("exists").and_then(Value::as_bool) {
            if want != exists {
                return Err(Mismatch(format!(
                    "{} exists = {exists}, want {want}",
                    path.display()
                )));
            }
            if !want {
                return Ok(());
            }
        }
        let text = read_latin1(&path)
            .map_err(|e| Mismatch(format!("cannot read {}: {e}", path.display())))?;
        if let Some(want) = m.get("properties").and_then(Value::as_object) {
            let parsed = apolloconf_testserver::props::parse(&text)
                .map_err(|e| Mismatch(format!("{} does not parse: {e:?}", path.display())))?;
            let map: HashMap<String, String> = parsed.into_iter().collect();
            for (k, v) in want {
                let got = map.get(k).map_or(Value::Null, |s| json!(s));
                if &got != v {
                    return Err(Mismatch(format!("cache file {k} = {got}, want {v}")));
                }
            }
        }
        if let Some(list) = m.get("contains").and_then(Value::as_array) {
            for s in list.iter().filter_map(Value::as_str) {
                if !text.contains(s) {
                    return Err(Mismatch(format!("cache file lacks {s:?}:\n{text}")));
                }
            }
        }
        if let Some(b) = m.get("ascii").and_then(Value::as_bool) {
            if b != text.is_ascii() {
                return Err(Mismatch(format!(
                    "cache file ascii = {}, want {b}",
                    text.is_ascii()
                )));
            }
        }
        Ok(())
    }
}

/// Why an expectation does not hold: `Mismatch` may change with time (keep polling),
/// `Fatal` will not (a broken scenario or a dead subject).
enum Why {
    Mismatch(String),
    Fatal(String),
}
use Why::{Fatal, Mismatch};

fn merge(dst: &mut Value, src: &Value) {
    if let (Some(d), Some(s)) = (dst.as_object_mut(), src.as_object()) {
        for (k, v) in s {
            d.insert(k.clone(), v.clone());
        }
    }
}

fn count_ok(n: u64, spec: &Value) -> bool {
    if let Some(c) = spec.get("count").and_then(Value::as_u64) {
        if n != c {
            return false;
        }
    }
    if let Some(c) = spec.get("min").and_then(Value::as_u64) {
        if n < c {
            return false;
        }
    }
    if let Some(c) = spec.get("max").and_then(Value::as_u64) {
        if n > c {
            return false;
        }
    }
    true
}

/// `want` is either the exact value or `{"min": a, "max": b}` for numbers.
fn value_matches(got: &Value, want: &Value) -> bool {
    if let Some(o) = want.as_object() {
        if o.keys().all(|k| k == "min" || k == "max") && !o.is_empty() {
            return got.as_u64().is_some_and(|n| count_ok(n, want));
        }
    }
    got == want
}

fn change_matches(c: &Value, w: &Value) -> bool {
    let Some(o) = w.as_object() else { return false };
    o.iter().all(|(k, v)| {
        let got = c.get(k).unwrap_or(&Value::Null);
        got == v
    })
}

fn check_namespace(ns: &str, got: &Value, want: &Value) -> Result<(), Why> {
    let Some(w) = want.as_object() else {
        return Err(Fatal(format!("snapshot.{ns} must be an object")));
    };
    for (k, v) in w {
        match k.as_str() {
            "releaseKey" | "source" | "status" | "content" => {
                let g = got.get(k).unwrap_or(&Value::Null);
                if g != v {
                    return Err(Mismatch(format!("{ns}.{k} = {g}, want {v}")));
                }
            }
            "properties" => {
                let g = got.get("properties").unwrap_or(&Value::Null);
                if g != v {
                    return Err(Mismatch(format!("{ns}.properties = {g}, want {v}")));
                }
            }
            "has" => {
                let props = got.get("properties").cloned().unwrap_or(json!({}));
                for (pk, pv) in v.as_object().into_iter().flatten() {
                    let g = props.get(pk).unwrap_or(&Value::Null);
                    if g != pv {
                        return Err(Mismatch(format!(
                            "{ns}.properties[{pk:?}] = {g}, want {pv}"
                        )));
                    }
                }
            }
            "size" => {
                let n = got
                    .get("properties")
                    .and_then(Value::as_object)
                    .map_or(0, |o| o.len() as u64);
                if !value_matches(&json!(n), v) {
                    return Err(Mismatch(format!("{ns} has {n} properties, want {v}")));
                }
            }
            other => return Err(Fatal(format!("unknown snapshot field {other:?}"))),
        }
    }
    Ok(())
}

fn request_matches(r: &RecordedRequest, m: &Value) -> bool {
    if let Some(e) = opt_str(m, "endpoint") {
        if r.endpoint != e {
            return false;
        }
    }
    let (path, raw_query) = match r.path.split_once('?') {
        Some((p, q)) => (p, q),
        None => (r.path.as_str(), ""),
    };
    if let Some(p) = opt_str(m, "path") {
        if path != p {
            return false;
        }
    }
    if let Some(p) = opt_str(m, "pathContains") {
        if !path.contains(p) {
            return false;
        }
    }
    if let Some(p) = opt_str(m, "rawQueryContains") {
        if !raw_query.contains(p) {
            return false;
        }
    }
    if let Some(p) = opt_str(m, "rawQueryLacks") {
        if raw_query.contains(p) {
            return false;
        }
    }
    let params = query_params(raw_query);
    let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if let Some(q) = m.get("query").and_then(Value::as_object) {
        for (k, want) in q {
            let ok = match (want, param(k)) {
                (Value::Null, got) => got.is_none(),
                (Value::Bool(b), got) => got.is_some() == *b,
                (Value::String(s), Some(got)) => got == s,
                _ => false,
            };
            if !ok {
                return false;
            }
        }
    }
    if let Some(q) = m.get("queryContains").and_then(Value::as_object) {
        for (k, want) in q {
            let Some(s) = want.as_str() else { return false };
            if !param(k).is_some_and(|g| g.contains(s)) {
                return false;
            }
        }
    }
    if let Some(h) = m.get("headers").and_then(Value::as_object) {
        for (k, want) in h {
            let ok = match (want, r.header(k)) {
                (Value::Bool(b), got) => got.is_some() == *b,
                (Value::String(s), Some(got)) => got == s,
                _ => false,
            };
            if !ok {
                return false;
            }
        }
    }
    if let Some(h) = m.get("headerPrefix").and_then(Value::as_object) {
        for (k, want) in h {
            let Some(s) = want.as_str() else { return false };
            if !r.header(k).is_some_and(|g| g.starts_with(s)) {
                return false;
            }
        }
    }
    if let Some(s) = m.get("signed") {
        let secret = opt_str(s, "secret").unwrap_or("");
        let want = s.get("valid").and_then(Value::as_bool).unwrap_or(true);
        let valid = match (r.header("timestamp"), r.header("authorization")) {
            (Some(ts), Some(auth)) => auth.split_once(':').is_some_and(|(_, sig)| {
                sig == apolloconf_testserver::signature(secret, ts, &r.path)
            }),
            _ => false,
        };
        if valid != want {
            return false;
        }
    }
    true
}

/// Rejects fields a step does not know, so that a typo cannot silently weaken a scenario.
fn check_fields(op: &str, step: &Value) -> Result<(), String> {
    const SCOPE: &[&str] = &["app", "cluster", "namespace", "on"];
    let own: &[&str] = match op {
        "expect" => return Ok(()), // checked in `check`
        "create_app" => &["app"],
        "create_namespace" => &["app", "name", "format", "public", "as"],
        "publish" => &["configurations", "generated", "content", "as"],
        "publish_burst" => &["count", "key", "configurations", "as"],
        "rollback" | "gray_branch" | "gray_merge" | "gray_delete" => &["as"],
        "gray_publish" => &["configurations", "generated", "as"],
        "gray_rules" => &["rules", "as"],
        "gray_active" => &["active", "as"],
        "access_key_add" => &["secret", "mode", "enabled", "as"],
        "access_key_enable" => &["key", "enabled"],
        "access_key_remove" => &["key"],
        "switches" => &["incrementalSync", "releaseCache", "accessKeyToleranceMs"],
        "fault" => &["endpoint", "action", "times"],
        "hold" | "lag" => &["ms"],
        "services" => &["config"],
        "restart" => &["downMs"],
        "revive" => &["fromData"],
        "clear_faults" | "pause" | "resume" | "kill" | "clear_requests" => &[],
        "start" => &["options", "expectError", "maxMs", "minMs", "report"],
        "watch" => &["expectError"],
        "close" => &["exitWithinMs", "maxThreads", "report"],
        "write_cache" => &["text"],
        "wait_ms" => &["ms"],
        "mark" => &["name"],
        "clear_events" => &[],
        "expect_quiet" => &["ms"],
        "latency" => &["samples", "key", "toleranceMs", "gapMs"],
        other => return Err(format!("unknown step op {other:?}")),
    };
    if let Some(o) = step.as_object() {
        if let Some(k) = o
            .keys()
            .find(|k| *k != "op" && !own.contains(&k.as_str()) && !SCOPE.contains(&k.as_str()))
        {
            return Err(format!("step {op:?} has no field {k:?}"));
        }
    }
    Ok(())
}
