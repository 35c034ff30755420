//! Plays one scenario: servers, subject, steps and expectations.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use apolloconf_testserver::RecordedRequest;
use serde_json::{Value, json};

use super::mark::Mark;
use super::scenario::{
    CacheFileWant, ChangeWant, Count, ErrorCode, ErrorsWant, EventsWant, Expect, HeaderWant,
    NamespaceWant, ParamWant, Raw, RequestsWant, ScenarioFile, Step, parse_step,
};
use super::subject::{Subject, SubjectCmd};
use super::util::{expand, median_p99, query_params, read_latin1};
use super::world::{Servers, server_vars};

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
    marks: HashMap<String, Mark>,
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
pub fn play(scenario: &ScenarioFile, cmd: &SubjectCmd) -> Outcome {
    let tmp = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let cache_dir = tmp.path().join("cache");
    std::fs::create_dir_all(&cache_dir).map_err(|e| format!("cache dir: {e}"))?;
    let servers = Servers::start(&scenario.server, tmp.path())?;
    let mut vars = HashMap::new();
    server_vars(&servers, &mut vars);
    vars.insert("cacheDir".into(), cache_dir.display().to_string());
    let client = scenario
        .client
        .as_ref()
        .map_or_else(|| json!({}), |c| c.json.clone());
    let app = client
        .get("appId")
        .and_then(Value::as_str)
        .unwrap_or("SampleApp")
        .to_string();
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
    for (i, step) in scenario.server.setup.iter().enumerate() {
        run.step(step)
            .map_err(|e| format!("server.setup[{i}] {}: {e}", compact(step)))?;
    }
    let trace = std::env::var_os("APOLLOCONF_TRACE").is_some();
    for (i, step) in scenario.steps.iter().enumerate() {
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
        if raw.get("op").and_then(Value::as_str) == Some("expect") {
            // Expectations are expanded on every poll: `as` names may appear later.
            return self.expect(raw);
        }
        let step = parse_step(&expand(raw, &self.vars)?)?;
        let app = self.app.clone();
        if let Some(r) = self.servers.admin_step(&step, &app) {
            if let (Some(name), Some((value, id))) = (step.save_as(), r?) {
                self.vars.insert(name.to_string(), value);
                if let Some(id) = id {
                    self.vars.insert(format!("{name}.id"), id.to_string());
                }
            }
            return Ok(());
        }
        match step {
            Step::Start {
                options,
                expect_error,
                error_contains,
                max_ms,
                min_ms,
                report,
            } => self.start(
                options.map(|o| o.json),
                expect_error,
                error_contains.as_deref(),
                (min_ms, max_ms),
                report.as_deref(),
            ),
            Step::Watch {
                namespace,
                expect_error,
            } => {
                let cmd = json!({"cmd": "watch", "namespace": namespace});
                match expect_error {
                    None => self.call(cmd).map(drop),
                    Some(code) => {
                        let r = self.subject()?.call(cmd, Duration::from_millis(REPLY_MS))?;
                        if r.pointer("/error/code").and_then(Value::as_str) == Some(code.as_str()) {
                            Ok(())
                        } else {
                            Err(format!("watch should fail with {}, got {r}", code.as_str()))
                        }
                    }
                }
            }
            Step::Close {
                exit_within_ms,
                max_threads,
                report,
            } => self.close(exit_within_ms, max_threads, report.as_deref()),
            Step::WaitMs { ms } => {
                std::thread::sleep(Duration::from_millis(ms));
                Ok(())
            }
            Step::Mark { name } => {
                let mark = self.mark();
                self.marks.insert(name, mark);
                Ok(())
            }
            Step::ClearEvents {} => {
                self.cursor = self.subject()?.event_count();
                Ok(())
            }
            Step::ExpectQuiet { ms, namespace } => self.quiet(ms, namespace.as_deref()),
            Step::Latency {
                samples,
                key,
                namespace,
                namespaces,
                waves,
                tolerance_ms,
                max_ms,
                gap_ms,
                on,
            } => self.latency(Latency {
                waves,
                samples,
                key: key.unwrap_or_else(|| "latency".into()),
                namespaces: match (namespace, namespaces) {
                    (Some(_), Some(_)) => {
                        return Err("latency: give `namespace` or `namespaces`, not both".into());
                    }
                    (_, Some(list)) if list.is_empty() => {
                        return Err("latency: `namespaces` is empty".into());
                    }
                    (_, Some(list)) => list,
                    (one, None) => vec![one.unwrap_or_else(|| "application".into())],
                },
                tolerance_ms: tolerance_ms.unwrap_or(100.0),
                max_ms,
                gap: Duration::from_millis(gap_ms),
                on,
            }),
            Step::WriteCache {
                app,
                cluster,
                namespace,
                text,
            } => {
                let app = app.unwrap_or_else(|| self.app.clone());
                let path = cache_path(
                    &self.cache_dir,
                    &app,
                    cluster.as_deref().unwrap_or("default"),
                    namespace.as_deref().unwrap_or("application"),
                );
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
                }
                std::fs::write(path, text).map_err(|e| e.to_string())
            }
            Step::Expect(_) => unreachable!("handled above"),
            other => Err(format!(
                "step {other:?} is neither an admin nor a client step"
            )),
        }
    }

    fn start(
        &mut self,
        overrides: Option<Value>,
        expect_error: Option<ErrorCode>,
        error_contains: Option<&str>,
        (min, max): (Option<u64>, Option<u64>),
        report: Option<&str>,
    ) -> Result<(), String> {
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
        let overrides = overrides.unwrap_or(json!({}));
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
        if let Some(label) = report {
            self.notes.push(format!("{label}: {ms} ms"));
        }
        match expect_error {
            Some(code) => {
                let got = reply.pointer("/error/code").and_then(Value::as_str);
                if got != Some(code.as_str()) {
                    return Err(format!(
                        "start should fail with {}, got {reply}",
                        code.as_str()
                    ));
                }
                if let Some(text) = error_contains {
                    let message = reply
                        .pointer("/error/message")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    if !message.contains(text) {
                        return Err(format!(
                            "start failed with {} as expected, but its message does not contain {text:?}: {reply}",
                            code.as_str()
                        ));
                    }
                }
            }
            None => {
                ok_reply(reply)?;
            }
        }
        if let Some(max) = max {
            if ms > max {
                return Err(format!("start took {ms} ms (at most {max} ms expected)"));
            }
        }
        if let Some(min) = min {
            if ms < min {
                return Err(format!("start took {ms} ms (at least {min} ms expected)"));
            }
        }
        Ok(())
    }

    fn close(
        &mut self,
        within: u64,
        max_threads: Option<u64>,
        report: Option<&str>,
    ) -> Result<(), String> {
        let reply = self.call(json!({"cmd": "close"}))?;
        if let (Some(n), Some(max)) = (reply.get("threads").and_then(Value::as_u64), max_threads) {
            if n > max {
                return Err(format!(
                    "{n} threads of the subject were still running 500 ms after close returned (at most {max} expected): {}",
                    reply.get("threadNames").cloned().unwrap_or_default()
                ));
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
        if let Some(label) = report {
            self.notes.push(format!("{label}: {ms} ms"));
        }
        Ok(())
    }

    fn quiet(&mut self, ms: u64, ns: Option<&str>) -> Result<(), String> {
        let from = self.subject()?.event_count();
        std::thread::sleep(Duration::from_millis(ms));
        let evs = self.subject()?.events();
        let extra: Vec<&Value> = evs[from..]
            .iter()
            .map(|e| &e.v)
            .filter(|v| v["event"] == "change")
            .filter(|v| ns.is_none_or(|n| v["namespace"] == n))
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

    /// Publishes `samples` times and measures publish → change event at the runner. With
    /// several namespaces, a sample publishes in each of them back to back and lasts until
    /// the change of every one of them is seen.
    fn latency(&mut self, l: Latency) -> Result<(), String> {
        let Latency {
            samples,
            key,
            namespaces,
            waves,
            tolerance_ms: tolerance,
            max_ms,
            gap,
            on,
        } = l;
        // Long polls instance `on` has received so far.
        let polls = |admin: &apolloconf_testserver::Admin| {
            admin
                .requests()
                .iter()
                .filter(|r| r.endpoint == "notifications")
                .count()
        };
        // Waits (bounded) until instance `on` holds a long poll received after `after`
        // others.
        let held = |admin: &apolloconf_testserver::Admin, after: usize| -> Result<(), String> {
            let deadline = Instant::now() + Duration::from_secs(10);
            while admin.held_polls() == 0 || polls(admin) <= after {
                if Instant::now() >= deadline {
                    return Err("no long poll held within 10 s".into());
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(())
        };
        let mut got = Vec::new();
        for i in 0..samples {
            if i > 0 {
                std::thread::sleep(gap);
            }
            // Publish only while a long poll is parked, as in production.
            let admin = self.servers.admin(on)?.clone();
            held(&admin, 0)?;
            let from = self.subject()?.event_count();
            let value = format!("v{i}-{}", epoch_ms());
            let t0 = Instant::now();
            let mut releases = Vec::with_capacity(namespaces.len());
            let mut polls_before = 0;
            for (n, ns) in namespaces.iter().enumerate() {
                if n > 0 && n < waves {
                    // The poll woken by the previous publish was answered: wait for the
                    // client's next one.
                    held(&admin, polls_before)?;
                }
                if n + 1 < waves {
                    polls_before = polls(&admin);
                }
                let r = self
                    .servers
                    .store
                    .publish(&self.app, "default", ns, vec![(key.clone(), value.clone())])
                    .map_err(|e| e.to_string())?;
                releases.push((ns.clone(), r.release_key));
            }
            let mut last = t0;
            for (ns, rk) in &releases {
                let ev = self
                    .subject()?
                    .wait_event(from, Duration::from_secs(10), |v| {
                        v["event"] == "change"
                            && v["namespace"] == ns.as_str()
                            && v["releaseKey"] == rk.as_str()
                    })
                    .ok_or_else(|| {
                        format!("no change event of {ns:?} for release {rk} within 10 s")
                    })?;
                last = last.max(ev.at);
            }
            got.push(last.duration_since(t0).as_secs_f64() * 1000.0);
        }
        let (med, p99) = median_p99(&got);
        let max = got.iter().copied().fold(0.0, f64::max);
        let what = match namespaces.len() {
            1 => String::from("publishes"),
            n => format!("fan-outs to {n} namespaces"),
        };
        self.notes.push(format!(
            "publish->event over {samples} {what}: median {med:.1} ms, p99 {p99:.1} ms, max {max:.1} ms (tolerance {tolerance} ms on the median{})",
            max_ms.map(|m| format!(", {m} ms on each")).unwrap_or_default()
        ));
        if med > tolerance {
            return Err(format!(
                "median publish->event latency {med:.1} ms exceeds {tolerance} ms (samples {got:?})"
            ));
        }
        if let Some(limit) = max_ms
            && max > limit
        {
            return Err(format!(
                "slowest publish->event latency {max:.1} ms exceeds {limit} ms (samples {got:?})"
            ));
        }
        Ok(())
    }

    fn expect(&mut self, raw: &Value) -> Result<(), String> {
        let parse = |run: &Run| -> Result<Expect, String> {
            match parse_step(&expand(raw, &run.vars)?)? {
                Step::Expect(e) => Ok(*e),
                _ => unreachable!("an expect step"),
            }
        };
        let timeout = parse(self)?.timeout_ms.unwrap_or(DEFAULT_EXPECT_MS);
        let deadline = Instant::now() + Duration::from_millis(timeout);
        loop {
            let cond = parse(self)?;
            match self.check(&cond) {
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

    fn check(&mut self, c: &Expect) -> Result<(), Why> {
        if let Some(vals) = &c.values {
            let ns = c.namespace.clone();
            for (k, want) in vals {
                let r = self
                    .call(json!({"cmd": "get", "key": k, "namespace": ns}))
                    .map_err(Fatal)?;
                let got = r.get("value").cloned().unwrap_or(Value::Null);
                if got != json!(want) {
                    return Err(Mismatch(format!(
                        "get({k:?}, namespace {}) = {got}, want {}",
                        json!(ns),
                        json!(want)
                    )));
                }
            }
        }
        if let Some(snap) = &c.snapshot {
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
        if let Some(list) = &c.events {
            for m in &list.0 {
                self.check_events(m)?;
            }
        }
        if let Some(e) = &c.errors {
            self.check_errors(e)?;
        }
        if let Some(list) = &c.requests {
            for m in &list.0 {
                self.check_requests(m)?;
            }
        }
        if let Some(m) = &c.metrics {
            let r = self.call(json!({"cmd": "metrics"})).map_err(Fatal)?;
            for (path, want) in m {
                let ptr = format!("/metrics/{}", path.replace('.', "/"));
                let got = r.pointer(&ptr).cloned().unwrap_or(Value::Null);
                if !value_matches(&got, want) {
                    return Err(Mismatch(format!("metrics {path} = {got}, want {want}")));
                }
            }
        }
        if let Some(cf) = &c.cache_file {
            self.check_cache_file(cf)?;
        }
        if let Some(h) = &c.held_polls {
            let on = h.val.on;
            let n = self.servers.admin(on).map_err(Fatal)?.held_polls() as u64;
            if !h.val.count().ok(n) {
                return Err(Mismatch(format!(
                    "instance {on} holds {n} polls, want {}",
                    h.json
                )));
            }
        }
        if c.settled == Some(true) {
            self.check_settled()?;
        }
        if let Some(x) = c.exited {
            let e = self.subject().map_err(Fatal)?.exited();
            if e != x {
                return Err(Mismatch(format!("subject exited = {e}, want {x}")));
            }
        }
        Ok(())
    }

    fn check_events(&mut self, m: &Raw<EventsWant>) -> Result<(), Why> {
        let (raw, m) = (&m.json, &m.val);
        let cursor = self.cursor;
        let evs = self.subject().map_err(Fatal)?.events();
        let ns = m.namespace.as_deref();
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
        if !m.count().ok(n) {
            return Err(Mismatch(format!(
                "{n} change events, want {raw}; got {}",
                shown()
            )));
        }
        if let Some(want) = &m.last_release_key {
            let got = list.last().map_or(&Value::Null, |v| &v["releaseKey"]);
            if *got != json!(want) {
                return Err(Mismatch(format!(
                    "last change event release key {got}, want {}",
                    json!(want)
                )));
            }
        }
        if let Some(want) = m.last_source {
            let got = list.last().map_or(&Value::Null, |v| &v["source"]);
            if got != want.as_str() {
                return Err(Mismatch(format!(
                    "last change event source {got}, want {:?}",
                    want.as_str()
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
        if let Some(want) = &m.changes {
            for w in want {
                if !all.iter().any(|c| change_matches(c, w)) {
                    return Err(Mismatch(format!(
                        "no change like {} in {}",
                        show_change(w),
                        shown()
                    )));
                }
            }
        }
        if let Some(want) = &m.exactly {
            let ok =
                want.len() == all.len() && want.iter().zip(&all).all(|(w, c)| change_matches(c, w));
            if !ok {
                let want: Vec<String> = want.iter().map(show_change).collect();
                return Err(Mismatch(format!(
                    "changes should be exactly [{}], got {}",
                    want.join(", "),
                    shown()
                )));
            }
        }
        if let Some(keys) = &m.no_change_of {
            if let Some(c) = all
                .iter()
                .find(|c| keys.iter().any(|k| c["key"] == k.as_str()))
            {
                return Err(Mismatch(format!("unexpected change {c}")));
            }
        }
        Ok(())
    }

    fn check_errors(&mut self, m: &Raw<ErrorsWant>) -> Result<(), Why> {
        let (raw, m) = (&m.json, &m.val);
        let cursor = self.cursor;
        let evs = self.subject().map_err(Fatal)?.events();
        let code = m.code.map(ErrorCode::as_str);
        let ns = m.namespace.as_deref();
        let n = evs
            .get(cursor..)
            .unwrap_or(&[])
            .iter()
            .map(|e| &e.v)
            .filter(|v| v["event"] == "error")
            .filter(|v| code.is_none_or(|c| v["code"] == c))
            .filter(|v| ns.is_none_or(|x| v["namespace"] == x))
            .count() as u64;
        if m.count().ok(n) {
            Ok(())
        } else {
            Err(Mismatch(format!("{n} error events matching {raw}")))
        }
    }

    fn mark(&self) -> Mark {
        let ms = epoch_ms();
        let logs = (0..self.servers.insts.len()).map(|i| {
            self.servers
                .admin(i)
                .map(|a| a.requests())
                .unwrap_or_default()
        });
        Mark::new(ms, logs)
    }

    fn check_requests(&mut self, m: &Raw<RequestsWant>) -> Result<(), Why> {
        let (raw, m) = (&m.json, &m.val);
        let on = m.on;
        let since = match &m.since_mark {
            Some(name) => Some(
                self.marks
                    .get(name)
                    .ok_or_else(|| Fatal(format!("no mark {name:?}")))?,
            ),
            None => None,
        };
        let log = self.servers.admin(on).map_err(Fatal)?.requests();
        let since_mark = match since {
            Some(mark) => mark.requests_after(on, &log),
            None => log.iter().collect(),
        };
        let hits: Vec<&RecordedRequest> = since_mark
            .into_iter()
            .filter(|r| match &m.method {
                // Preflights are the browser's, not the client's: counted only on demand.
                None => r.method != "OPTIONS",
                Some(method) => r.method.eq_ignore_ascii_case(method),
            })
            .filter(|r| request_matches(r, m))
            .collect();
        let n = hits.len() as u64;
        if m.count().ok(n) {
            return Ok(());
        }
        let sample: Vec<String> = log
            .iter()
            .filter(|r| m.endpoint.is_none_or(|e| r.endpoint == e.as_str()))
            .rev()
            .take(6)
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        Err(Mismatch(format!(
            "{n} requests on instance {on} match {raw}; latest of that endpoint: {sample:?}"
        )))
    }

    fn check_cache_file(&mut self, m: &CacheFileWant) -> Result<(), Why> {
        let app = m.app.as_deref().unwrap_or(&self.app);
        let path = cache_path(
            &self.cache_dir,
            app,
            m.cluster.as_deref().unwrap_or("default"),
            m.namespace.as_deref().unwrap_or("application"),
        );
        if let Some(want) = &m.files {
            let dir = self.cache_dir.join(app).join("config-cache");
            let mut got: Vec<String> = std::fs::read_dir(&dir)
                .map(|rd| {
                    rd.filter_map(Result::ok)
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            got.sort();
            let mut want = want.clone();
            want.sort();
            if got != want {
                return Err(Mismatch(format!(
                    "{} holds {got:?}, want {want:?}",
                    dir.display()
                )));
            }
        }
        let exists = path.exists();
        if let Some(want) = m.exists {
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
        if let Some(want) = &m.properties {
            let parsed = apolloconf_testserver::props::parse(&text)
                .map_err(|e| Mismatch(format!("{} does not parse: {e:?}", path.display())))?;
            let map: HashMap<String, String> = parsed.into_iter().collect();
            for (k, v) in want {
                let got = map.get(k);
                if got != v.as_ref() {
                    return Err(Mismatch(format!(
                        "cache file {k} = {}, want {}",
                        json!(got),
                        json!(v)
                    )));
                }
            }
        }
        if let Some(list) = &m.contains {
            for s in list {
                if !text.contains(s.as_str()) {
                    return Err(Mismatch(format!("cache file lacks {s:?}:\n{text}")));
                }
            }
        }
        if let Some(b) = m.ascii {
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

/// The fields of a `latency` step, defaults applied.
struct Latency {
    samples: u64,
    key: String,
    namespaces: Vec<String>,
    waves: usize,
    tolerance_ms: f64,
    max_ms: Option<f64>,
    gap: Duration,
    on: usize,
}

/// The Java layout: `{cacheDir}/{app}/config-cache/{app}+{cluster}+{namespace}.properties`.
fn cache_path(root: &std::path::Path, app: &str, cluster: &str, ns: &str) -> PathBuf {
    root.join(app)
        .join("config-cache")
        .join(format!("{app}+{cluster}+{ns}.properties"))
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

/// `want` is either the exact value or `{"min": a, "max": b}` for numbers.
fn value_matches(got: &Value, want: &Value) -> bool {
    if let Some(o) = want.as_object() {
        if o.keys().all(|k| k == "min" || k == "max") && !o.is_empty() {
            let bound = Count {
                count: None,
                min: o.get("min").and_then(Value::as_u64),
                max: o.get("max").and_then(Value::as_u64),
            };
            return got.as_u64().is_some_and(|n| bound.ok(n));
        }
    }
    got == want
}

/// Whether change `c` (of a change event) has every field `w` gives.
fn change_matches(c: &Value, w: &ChangeWant) -> bool {
    let field = |k: &str| c.get(k).unwrap_or(&Value::Null);
    w.key.as_ref().is_none_or(|k| field("key") == k.as_str())
        && w.kind.is_none_or(|k| field("kind") == k.as_str())
        && w.old.as_ref().is_none_or(|o| *field("old") == json!(o))
        && w.new.as_ref().is_none_or(|n| *field("new") == json!(n))
}

fn show_change(w: &ChangeWant) -> String {
    let mut o = serde_json::Map::new();
    if let Some(k) = &w.key {
        o.insert("key".into(), json!(k));
    }
    if let Some(k) = w.kind {
        o.insert("kind".into(), json!(k.as_str()));
    }
    if let Some(v) = &w.old {
        o.insert("old".into(), json!(v));
    }
    if let Some(v) = &w.new {
        o.insert("new".into(), json!(v));
    }
    Value::Object(o).to_string()
}

fn check_namespace(ns: &str, got: &Value, want: &Raw<NamespaceWant>) -> Result<(), Why> {
    let w = &want.val;
    let field = |k: &str| got.get(k).unwrap_or(&Value::Null);
    let same = |k: &str, v: Value| -> Result<(), Why> {
        if *field(k) == v {
            Ok(())
        } else {
            Err(Mismatch(format!("{ns}.{k} = {}, want {v}", field(k))))
        }
    };
    if let Some(v) = &w.release_key {
        same("releaseKey", json!(v))?;
    }
    if let Some(v) = w.source {
        same("source", json!(v.as_str()))?;
    }
    if let Some(v) = w.status {
        same("status", json!(v.as_str()))?;
    }
    if let Some(v) = &w.content {
        same("content", json!(v))?;
    }
    if let Some(v) = &w.properties {
        same("properties", json!(v))?;
    }
    let props = got.get("properties").and_then(Value::as_object);
    if let Some(has) = &w.has {
        for (k, v) in has {
            let g = props.and_then(|p| p.get(k)).unwrap_or(&Value::Null);
            if *g != json!(v) {
                return Err(Mismatch(format!(
                    "{ns}.properties[{k:?}] = {g}, want {}",
                    json!(v)
                )));
            }
        }
    }
    if let Some(size) = w.size {
        let n = props.map_or(0, |o| o.len() as u64);
        if !size.0.ok(n) {
            return Err(Mismatch(format!(
                "{ns} has {n} properties, want {}",
                size.0
            )));
        }
    }
    Ok(())
}

fn request_matches(r: &RecordedRequest, m: &RequestsWant) -> bool {
    if let Some(e) = m.endpoint {
        if r.endpoint != e.as_str() {
            return false;
        }
    }
    let (path, raw_query) = match r.path.split_once('?') {
        Some((p, q)) => (p, q),
        None => (r.path.as_str(), ""),
    };
    if m.path.as_ref().is_some_and(|p| path != p) {
        return false;
    }
    if m.path_contains
        .as_ref()
        .is_some_and(|p| !path.contains(p.as_str()))
    {
        return false;
    }
    if m.raw_query_contains
        .as_ref()
        .is_some_and(|p| !raw_query.contains(p.as_str()))
    {
        return false;
    }
    if m.raw_query_lacks
        .as_ref()
        .is_some_and(|p| raw_query.contains(p.as_str()))
    {
        return false;
    }
    let params = query_params(raw_query);
    let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    for (k, want) in m.query.iter().flatten() {
        let ok = match (want, param(k)) {
            (ParamWant::Absent, got) => got.is_none(),
            (ParamWant::Present(b), got) => got.is_some() == *b,
            (ParamWant::Equals(s), Some(got)) => got == s,
            (ParamWant::Equals(_), None) => false,
        };
        if !ok {
            return false;
        }
    }
    for (k, want) in m.query_contains.iter().flatten() {
        if !param(k).is_some_and(|g| g.contains(want.as_str())) {
            return false;
        }
    }
    for (k, want) in m.headers.iter().flatten() {
        let ok = match (want, r.header(k)) {
            (HeaderWant::Present(b), got) => got.is_some() == *b,
            (HeaderWant::Equals(s), Some(got)) => got == s,
            (HeaderWant::Equals(_), None) => false,
        };
        if !ok {
            return false;
        }
    }
    for (k, want) in m.header_prefix.iter().flatten() {
        if !r.header(k).is_some_and(|g| g.starts_with(want.as_str())) {
            return false;
        }
    }
    if let Some(s) = &m.signed {
        let valid = match (r.header("timestamp"), r.header("authorization")) {
            (Some(ts), Some(auth)) => auth.split_once(':').is_some_and(|(_, sig)| {
                sig == apolloconf_testserver::signature(&s.secret, ts, &r.path)
            }),
            _ => false,
        };
        if valid != s.valid {
            return false;
        }
    }
    true
}
