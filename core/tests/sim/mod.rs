//! Deterministic harness: a simulated clock and a scripted in-memory Apollo that drive the
//! core with no threads and no sockets. Every test of the core runs on it.
#![allow(dead_code, missing_docs)]

use std::collections::{BTreeMap, VecDeque};

use apolloconf_core::{
    Client, Config, Event, HttpRequest, HttpResponse, Input, Instant, Output, RequestKind,
    TransportError, TransportErrorKind,
};

/// One release of a namespace.
#[derive(Debug, Clone)]
pub struct Release {
    pub key: String,
    pub values: BTreeMap<String, String>,
    pub msg: i64,
    pub at: u64,
    pub version: u32,
}

#[derive(Debug, Clone, Default)]
pub struct NsData {
    /// Canonical (stored) name.
    pub name: String,
    pub releases: Vec<Release>,
}

/// How an instance answers right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// Connection refused.
    Down,
    /// Answers this status with an error body.
    Status(u16),
    /// Never answers (the host's timeout fires).
    Hang,
    /// Answers 200 with a body that is not JSON.
    Malformed,
}

#[derive(Debug, Clone)]
pub struct Instance {
    pub url: String,
    pub mode: Mode,
    /// Publishes become visible to this instance this many ms late.
    pub lag_ms: u64,
    /// Whether `messages` makes a lagging instance reload (the release cache, docs/protocol.md#messages-and-stale-caches).
    pub honors_messages: bool,
    /// Answer latency in ms.
    pub latency_ms: u64,
    /// The next this many `/configs` requests answer 500.
    pub fail_configs: u32,
    /// Publishes up to this time are visible (never goes back, whatever `lag_ms` becomes).
    pub watermark: std::cell::Cell<u64>,
}

#[derive(Debug, Clone)]
pub struct Meta {
    pub url: String,
    pub up: bool,
}

/// (client spelling after stripping .properties, canonical key, client id)
type WatchEntry = (String, String, i64);

#[derive(Debug)]
struct Parked {
    id: apolloconf_core::RequestId,
    instance: usize,
    /// (client spelling after stripping .properties, canonical key, client id)
    entries: Vec<(String, String, i64)>,
    expires: u64,
}

#[derive(Debug)]
struct Due {
    id: apolloconf_core::RequestId,
    at: u64,
    result: Result<(u16, Vec<u8>), TransportErrorKind>,
}

/// The scripted server.
#[derive(Debug)]
pub struct Sim {
    pub app: String,
    pub ns: BTreeMap<String, NsData>,
    pub next_msg: i64,
    pub instances: Vec<Instance>,
    pub metas: Vec<Meta>,
    pub hold_ms: u64,
    pub incremental: bool,
    pub secret: Option<String>,
    pub version: u32,
    /// `/configs` of this lower-cased namespace answers 404 although releases exist.
    pub hide: Vec<String>,
}

pub fn pct_decode(s: &str, plus_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match h {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' if plus_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn query(url: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    if let Some((_, q)) = url.split_once('?') {
        for part in q.split('&') {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            m.insert(pct_decode(k, true), pct_decode(v, true));
        }
    }
    m
}

/// The wall clock (Unix ms) the harness's configs start at; the client's clock at sim
/// time `now` is this plus `now`.
pub const WALL_CLOCK_ANCHOR_MS: u64 = 1_700_000_000_000;

/// The server's default `apollo.access-key.auth-time-diff-tolerance` (60 s, strict `<`).
pub const SIGNATURE_TOLERANCE_MS: u64 = 60_000;

/// The request target as it goes on the wire and as the server's filter sees it: the raw
/// path (`/` when the URL has none), then `?` and the raw query when the query is not
/// empty. Scheme, authority and any fragment are not part of it.
pub fn wire_target(url: &str) -> String {
    let after_scheme = match url.split_once("://") {
        Some((_, rest)) => rest,
        None => url,
    };
    let target = match after_scheme.find(['/', '?', '#']) {
        Some(i) => &after_scheme[i..],
        None => "",
    };
    let target = target.split('#').next().unwrap_or("");
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (target, ""),
    };
    let path = if path.is_empty() { "/" } else { path };
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    }
}

/// Base64 (standard alphabet, padded) of HMAC-SHA1 keyed with `secret` over `data`.
pub fn hmac_sha1_base64(secret: &str, data: &str) -> String {
    use base64::Engine as _;
    use hmac::{KeyInit as _, Mac as _};
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn canon(name: &str) -> String {
    apolloconf_core::namespace::strip_properties_suffix(name).to_ascii_lowercase()
}

fn strip(name: &str) -> String {
    apolloconf_core::namespace::strip_properties_suffix(name).to_string()
}

impl Sim {
    pub fn new(app: &str, instances: usize) -> Sim {
        Sim {
            app: app.to_string(),
            ns: BTreeMap::new(),
            next_msg: 1,
            instances: (0..instances)
                .map(|i| Instance {
                    url: format!("http://cs{i}:8080/"),
                    mode: Mode::Normal,
                    lag_ms: 0,
                    honors_messages: true,
                    latency_ms: 5,
                    fail_configs: 0,
                    watermark: std::cell::Cell::new(0),
                })
                .collect(),
            metas: vec![Meta {
                url: "http://meta:8080".into(),
                up: true,
            }],
            hold_ms: 60_000,
            incremental: false,
            secret: None,
            version: 0,
            hide: Vec::new(),
        }
    }

    /// Publish a release now; returns its key.
    pub fn publish(&mut self, now: u64, ns: &str, values: &[(&str, &str)]) -> String {
        let map = values
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.publish_map(now, ns, map)
    }

    pub fn publish_map(&mut self, now: u64, ns: &str, values: BTreeMap<String, String>) -> String {
        self.version += 1;
        let secs = 1_700_000_000 + now / 1000;
        let key = format!(
            "{}-{:016x}",
            stamp(secs),
            0xabc0_0000_0000_0000u64 + u64::from(self.version)
        );
        let msg = self.next_msg;
        self.next_msg += 1;
        let e = self.ns.entry(canon(ns)).or_insert_with(|| NsData {
            name: strip(ns),
            releases: vec![],
        });
        e.releases.push(Release {
            key: key.clone(),
            values,
            msg,
            at: now,
            version: self.version,
        });
        key
    }

    pub fn latest(&self, ns: &str) -> Option<&Release> {
        self.ns.get(&canon(ns)).and_then(|d| d.releases.last())
    }

    fn visible<'a>(&self, inst: usize, ns: &'a NsData, now: u64) -> Option<&'a Release> {
        let i = &self.instances[inst];
        let horizon = i.watermark.get().max(now.saturating_sub(i.lag_ms));
        i.watermark.set(horizon);
        ns.releases.iter().rev().find(|r| r.at <= horizon)
    }

    fn watch_key(&self, ns: &NsData) -> String {
        format!("{}+default+{}", self.app, ns.name)
    }

    pub fn instance_of(&self, url: &str) -> Option<usize> {
        self.instances.iter().position(|i| url.starts_with(&i.url))
    }

    /// Whether a request passes the access-key filter (docs/protocol.md#server-check) at `now` ms: a
    /// `Timestamp` within the server's tolerance of the client's wall clock, and an
    /// `Authorization` header `Apollo {app}:{signature}` whose signature is recomputed here
    /// from the request URL, independently of the core's signing and URL code.
    fn check_auth(&self, req: &HttpRequest, now: u64) -> bool {
        let Some(secret) = &self.secret else {
            return true;
        };
        let header = |name: &str| {
            req.headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let (Some(ts), Some(auth)) = (header("Timestamp"), header("Authorization")) else {
            return false;
        };
        // As the server: an unparseable timestamp counts as 0 (far outside the window).
        let t: u64 = ts.trim().parse().unwrap_or(0);
        if t.abs_diff(WALL_CLOCK_ANCHOR_MS + now) >= SIGNATURE_TOLERANCE_MS {
            return false;
        }
        let expect = hmac_sha1_base64(secret, &format!("{ts}\n{}", wire_target(&req.url)));
        auth == format!("Apollo {}:{expect}", self.app)
    }

    fn configs(&self, inst: usize, req: &HttpRequest, now: u64) -> (u16, Vec<u8>) {
        let base = &self.instances[inst].url;
        let path = req.url[base.len()..].split('?').next().unwrap_or("");
        let parts: Vec<String> = path.split('/').map(|p| pct_decode(p, false)).collect();
        if parts.len() != 4 || parts[0] != "configs" {
            return (400, b"bad path".to_vec());
        }
        let q = query(&req.url);
        let Some(data) = self.ns.get(&canon(&parts[3])) else {
            return (404, vec![]);
        };
        if self.hide.contains(&canon(&parts[3])) {
            return (404, vec![]);
        }
        let mut rel = self.visible(inst, data, now);
        if self.instances[inst].honors_messages {
            if let Some(m) = q.get("messages") {
                let v: serde_json::Value = serde_json::from_str(m).unwrap_or_default();
                let id = v["details"][self.watch_key(data)].as_i64().unwrap_or(-1);
                if rel.map_or(-1, |r| r.msg) < id {
                    rel = data.releases.last();
                }
            }
        }
        let Some(rel) = rel else { return (404, vec![]) };
        let client_key = q.get("releaseKey").cloned().unwrap_or_else(|| "-1".into());
        if client_key == rel.key {
            return (304, vec![]);
        }
        let mut body = serde_json::json!({
            "appId": parts[1], "cluster": parts[2], "namespaceName": parts[3], "releaseKey": rel.key,
        });
        let old = data.releases.iter().find(|r| r.key == client_key);
        match (self.incremental, old) {
            (true, Some(old)) if !old.values.is_empty() => {
                let mut ch = vec![];
                for (k, v) in &rel.values {
                    match old.values.get(k) {
                        None => ch.push(serde_json::json!({"key":k,"newValue":v,"configurationChangeType":"ADDED"})),
                        Some(o) if o != v => {
                            ch.push(serde_json::json!({"key":k,"newValue":v,"configurationChangeType":"MODIFIED"}))
                        }
                        _ => {}
                    }
                }
                for k in old.values.keys().filter(|k| !rel.values.contains_key(*k)) {
                    ch.push(serde_json::json!({"key":k,"configurationChangeType":"DELETED"}));
                }
                body["configSyncType"] = "IncrementalSync".into();
                body["configurationChanges"] = ch.into();
            }
            _ => body["configurations"] = serde_json::to_value(&rel.values).unwrap_or_default(),
        }
        (200, serde_json::to_vec(&body).unwrap_or_default())
    }

    /// The immediate answer of a long poll, or the entries to park it with.
    fn notifications(
        &self,
        inst: usize,
        req: &HttpRequest,
        now: u64,
    ) -> Result<(u16, Vec<u8>), Vec<WatchEntry>> {
        let q = query(&req.url);
        let Some(raw) = q.get("notifications") else {
            return Ok((400, vec![]));
        };
        let Ok(list) = serde_json::from_str::<Vec<serde_json::Value>>(raw) else {
            return Ok((400, vec![]));
        };
        let mut entries: Vec<(String, String, i64)> = vec![];
        for e in list {
            let name = e["namespaceName"].as_str().unwrap_or("").to_string();
            let id = e["notificationId"].as_i64().unwrap_or(-1);
            if name.is_empty() {
                continue;
            }
            let c = canon(&name);
            match entries.iter_mut().find(|(_, k, _)| *k == c) {
                Some(x) if x.2 > id => *x = (strip(&name), c, id),
                Some(_) => {}
                None => entries.push((strip(&name), c, id)),
            }
        }
        if entries.is_empty() {
            return Ok((400, vec![]));
        }
        let ready = self.stale_entries(inst, &entries, now);
        if ready.is_empty() {
            Err(entries)
        } else {
            Ok((200, ready))
        }
    }

    fn stale_entries(&self, inst: usize, entries: &[(String, String, i64)], now: u64) -> Vec<u8> {
        let mut out = vec![];
        for (name, c, id) in entries {
            let Some(data) = self.ns.get(c) else { continue };
            let Some(rel) = self.visible(inst, data, now) else {
                continue;
            };
            if rel.msg > *id {
                out.push(serde_json::json!({
                    "namespaceName": name, "notificationId": rel.msg,
                    "messages": {"details": {self.watch_key(data): rel.msg}}
                }));
            }
        }
        if out.is_empty() {
            vec![]
        } else {
            serde_json::to_vec(&out).unwrap_or_default()
        }
    }

    fn services(&self) -> Vec<u8> {
        let list: Vec<_> = self
            .instances
            .iter()
            .map(|i| serde_json::json!({"appName":"apollo-configservice","instanceId":i.url,"homepageUrl":i.url}))
            .collect();
        serde_json::to_vec(&list).unwrap_or_default()
    }
}

fn stamp(secs: u64) -> String {
    // Civil date from Unix seconds (UTC), as yyyyMMddHHmmss.
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// One exchange between the harness and the client, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The client issued the request `log[i]`.
    Request(usize),
    /// The harness delivered the answer of request `id` at `at` ms: a status and the body's
    /// length in bytes, or a transport failure.
    Response {
        at: u64,
        id: apolloconf_core::RequestId,
        result: Result<(u16, usize), TransportErrorKind>,
    },
    /// The client emitted the event `events[i]`.
    Event(usize),
}

/// The host: drives the client against the sim, owns the clock, enforces timeouts.
pub struct Harness {
    pub client: Client,
    pub sim: Sim,
    pub now: u64,
    due: Vec<Due>,
    parked: Vec<Parked>,
    /// Every request the client made, with the time it was made.
    pub log: Vec<(u64, HttpRequest)>,
    /// Every event, with its time.
    pub events: Vec<(u64, Event)>,
    /// Requests, answers and events interleaved in the order they happened.
    pub timeline: Vec<Step>,
    /// Maximum simultaneous in-flight requests seen per kind: (discovery, poll, configs per ns).
    pub max_in_flight: (usize, usize, usize),
    in_flight: BTreeMap<u64, RequestKind>,
    deadline: Option<u64>,
    /// Cache files written by the client (file name -> bytes).
    pub cache: BTreeMap<String, Vec<u8>>,
    /// Loop turns so far (a measure of work done).
    pub turns: u64,
}

impl Harness {
    pub fn new(config: Config, sim: Sim) -> Harness {
        let client = Client::new(config, Instant::ZERO).expect("valid config");
        Harness {
            client,
            sim,
            now: 0,
            due: vec![],
            parked: vec![],
            log: vec![],
            events: vec![],
            timeline: vec![],
            max_in_flight: (0, 0, 0),
            in_flight: BTreeMap::new(),
            deadline: Some(0),
            cache: BTreeMap::new(),
            turns: 0,
        }
    }

    /// Config builder pre-filled for the sim: app `app`, direct config services of the sim.
    pub fn config_direct(sim: &Sim) -> apolloconf_core::ConfigBuilder {
        let list: Vec<String> = sim.instances.iter().map(|i| i.url.clone()).collect();
        Config::builder(sim.app.clone())
            .config_service(&list.join(","))
            .wall_clock(WALL_CLOCK_ANCHOR_MS)
    }

    pub fn config_meta(sim: &Sim) -> apolloconf_core::ConfigBuilder {
        let list: Vec<String> = sim.metas.iter().map(|m| m.url.clone()).collect();
        Config::builder(sim.app.clone())
            .meta_server(&list.join(","))
            .wall_clock(WALL_CLOCK_ANCHOR_MS)
    }

    /// Drain the client's outputs until it goes idle (`Output::Timeout`). Fails the test
    /// when it never does: more than 10,000 outputs in one drain is a livelock.
    pub fn drive_bounded(&mut self) {
        for _ in 0..10_000 {
            match self.client.poll_output() {
                Output::Request(r) => self.dispatch(r),
                Output::Event(e) => {
                    if let Event::PersistCache(w) = &e {
                        self.cache.insert(w.file_name.clone(), w.contents.clone());
                    }
                    self.timeline.push(Step::Event(self.events.len()));
                    self.events.push((self.now, e));
                }
                Output::Timeout(t) => {
                    if let Some(d) = t {
                        assert!(
                            d.as_millis() >= self.now,
                            "deadline in the past: {d:?} at {} ms",
                            self.now
                        );
                    }
                    self.deadline = t.map(Instant::as_millis);
                    return;
                }
                _ => panic!("unknown output"),
            }
        }
        panic!("livelock: the client never went idle at {} ms", self.now);
    }

    fn dispatch(&mut self, r: HttpRequest) {
        self.timeline.push(Step::Request(self.log.len()));
        self.log.push((self.now, r.clone()));
        self.in_flight.insert(r.id.get(), r.kind.clone());
        let count = |k: fn(&RequestKind) -> bool, m: &BTreeMap<u64, RequestKind>| {
            m.values().filter(|x| k(x)).count()
        };
        let d = count(|k| matches!(k, RequestKind::Discovery), &self.in_flight);
        let p = count(|k| matches!(k, RequestKind::Notifications), &self.in_flight);
        let mut per_ns: BTreeMap<String, usize> = BTreeMap::new();
        for k in self.in_flight.values() {
            if let RequestKind::Configs { namespace } = k {
                *per_ns.entry(namespace.clone()).or_default() += 1;
            }
        }
        let c = per_ns.values().copied().max().unwrap_or(0);
        self.max_in_flight = (
            self.max_in_flight.0.max(d),
            self.max_in_flight.1.max(p),
            self.max_in_flight.2.max(c),
        );

        let timeout = (r.connect_timeout + r.timeout).as_millis() as u64;
        let now = self.now;
        let err = |kind| Due {
            id: r.id,
            at: now,
            result: Err(kind),
        };
        let due = match &r.kind {
            RequestKind::Discovery => {
                match self.sim.metas.iter().find(|m| r.url.starts_with(&m.url)) {
                    Some(m) if m.up => Due {
                        id: r.id,
                        at: now + 3,
                        result: Ok((200, self.sim.services())),
                    },
                    _ => err(TransportErrorKind::Connect),
                }
            }
            kind => {
                let Some(inst) = self.sim.instance_of(&r.url) else {
                    panic!("request to unknown host {}", r.url)
                };
                let i = &self.sim.instances[inst];
                let lat = i.latency_ms;
                match i.mode {
                    Mode::Down => err(TransportErrorKind::Connect),
                    Mode::Hang => Due {
                        id: r.id,
                        at: now + timeout,
                        result: Err(TransportErrorKind::Timeout),
                    },
                    Mode::Status(s) => Due {
                        id: r.id,
                        at: now + lat,
                        result: Ok((s, b"{\"status\":500}".to_vec())),
                    },
                    Mode::Malformed => Due {
                        id: r.id,
                        at: now + lat,
                        result: Ok((200, b"<html>oops".to_vec())),
                    },
                    Mode::Normal if !self.sim.check_auth(&r, now) => Due {
                        id: r.id,
                        at: now + lat,
                        result: Ok((401, vec![])),
                    },
                    Mode::Normal => match kind {
                        RequestKind::Configs { .. } if i.fail_configs > 0 => {
                            self.sim.instances[inst].fail_configs -= 1;
                            Due {
                                id: r.id,
                                at: now + lat,
                                result: Ok((500, vec![])),
                            }
                        }
                        RequestKind::Configs { .. } => {
                            let (s, b) = self.sim.configs(inst, &r, now);
                            Due {
                                id: r.id,
                                at: now + lat,
                                result: Ok((s, b)),
                            }
                        }
                        _ => match self.sim.notifications(inst, &r, now) {
                            Ok((s, b)) => Due {
                                id: r.id,
                                at: now + lat,
                                result: Ok((s, b)),
                            },
                            Err(entries) => {
                                let hold = self.sim.hold_ms.min(timeout.saturating_sub(1));
                                let expires = now + hold;
                                if self.sim.hold_ms >= timeout {
                                    self.due.push(Due {
                                        id: r.id,
                                        at: now + timeout,
                                        result: Err(TransportErrorKind::Timeout),
                                    });
                                } else {
                                    self.parked.push(Parked {
                                        id: r.id,
                                        instance: inst,
                                        entries,
                                        expires,
                                    });
                                }
                                return;
                            }
                        },
                    },
                }
            }
        };
        self.due.push(due);
    }

    /// Complete parked polls whose namespaces have news visible to their instance.
    fn wake(&mut self) {
        let now = self.now;
        let mut i = 0;
        while i < self.parked.len() {
            let p = &self.parked[i];
            let down = self.sim.instances[p.instance].mode != Mode::Normal;
            let body = self.sim.stale_entries(p.instance, &p.entries, now);
            if down {
                let p = self.parked.remove(i);
                self.due.push(Due {
                    id: p.id,
                    at: now,
                    result: Err(TransportErrorKind::Io),
                });
            } else if !body.is_empty() {
                let p = self.parked.remove(i);
                self.due.push(Due {
                    id: p.id,
                    at: now + 1,
                    result: Ok((200, body)),
                });
            } else if p.expires <= now {
                let p = self.parked.remove(i);
                self.due.push(Due {
                    id: p.id,
                    at: now,
                    result: Ok((304, vec![])),
                });
            } else {
                i += 1;
            }
        }
    }

    /// Drop every held poll (a server restart).
    pub fn drop_parked(&mut self) {
        for p in std::mem::take(&mut self.parked) {
            self.due.push(Due {
                id: p.id,
                at: self.now,
                result: Err(TransportErrorKind::Io),
            });
        }
    }

    /// The next time anything can happen in the sim (visibility of lagging publishes).
    fn next_visibility(&self) -> Option<u64> {
        let mut t: Option<u64> = None;
        for p in &self.parked {
            let lag = self.sim.instances[p.instance].lag_ms;
            for d in self.sim.ns.values() {
                for r in &d.releases {
                    let v = r.at + lag;
                    if v > self.now {
                        t = Some(t.map_or(v, |x: u64| x.min(v)));
                    }
                }
            }
            t = Some(t.map_or(p.expires, |x: u64| x.min(p.expires)));
        }
        t
    }

    /// Run the client until simulated time `until` (ms). Panics on livelock: more than
    /// 10,000 loop turns at one instant, or more than 2,000 per simulated second overall.
    pub fn run_until(&mut self, until: u64) {
        let start = self.now;
        let mut turns: u64 = 0;
        let mut same_instant: u64 = 0;
        let mut last = self.now;
        // Set when the client was woken by its own deadline alone: (outputs so far, that
        // deadline). The core promises that a deadline always finds work to do.
        let mut woken: Option<(usize, u64)> = None;
        loop {
            self.drive_bounded();
            if let Some((outputs, at)) = woken.take() {
                assert!(
                    self.timeline.len() > outputs || self.deadline != Some(at),
                    "woken at its deadline {at} ms, the client did nothing and asked for the same deadline"
                );
            }
            self.wake();
            let mut next = self.deadline.unwrap_or(u64::MAX);
            for d in &self.due {
                next = next.min(d.at);
            }
            if let Some(v) = self.next_visibility() {
                next = next.min(v);
            }
            if next > until {
                self.now = until.max(self.now);
                let _ = self
                    .client
                    .handle_input(Input::Timeout(Instant::from_millis(self.now)));
                self.drive_bounded();
                return;
            }
            self.now = next.max(self.now);
            turns += 1;
            self.turns += 1;
            if self.now == last {
                same_instant += 1;
                assert!(
                    same_instant < 10_000,
                    "livelock: 10,000 turns at {} ms",
                    self.now
                );
            } else {
                same_instant = 0;
                last = self.now;
            }
            let budget = 2_000 * ((self.now - start) / 1000 + 1);
            assert!(
                turns < budget,
                "livelock: {turns} turns in {} ms",
                self.now - start
            );
            let now = self.now;
            let outputs_before = self.timeline.len();
            let ready: Vec<Due> = {
                let (r, keep): (Vec<Due>, Vec<Due>) = std::mem::take(&mut self.due)
                    .into_iter()
                    .partition(|d| d.at <= now);
                self.due = keep;
                r
            };
            for d in ready {
                self.in_flight.remove(&d.id.get());
                self.timeline.push(Step::Response {
                    at: now,
                    id: d.id,
                    result: d
                        .result
                        .as_ref()
                        .map(|(s, b)| (*s, b.len()))
                        .map_err(|k| *k),
                });
                let result = match &d.result {
                    Ok((s, b)) => Ok(HttpResponse {
                        status: *s,
                        body: b,
                    }),
                    Err(k) => Err(TransportError::new(*k, "sim")),
                };
                self.client
                    .handle_input(Input::Response {
                        id: d.id,
                        now: Instant::from_millis(now),
                        result,
                    })
                    .expect("response accepted");
            }
            if self.deadline == Some(now) && self.timeline.len() == outputs_before {
                woken = Some((self.timeline.len(), now));
            }
            self.client
                .handle_input(Input::Timeout(Instant::from_millis(now)))
                .expect("timeout accepted");
        }
    }

    /// Run for `ms` more milliseconds.
    pub fn run_for(&mut self, ms: u64) {
        let t = self.now + ms;
        self.run_until(t);
    }

    /// Run until a predicate on the harness holds, checking every simulated 10 ms, at most
    /// `max_ms`. Returns whether it held.
    pub fn run_until_cond(&mut self, max_ms: u64, mut f: impl FnMut(&Harness) -> bool) -> bool {
        let end = self.now + max_ms;
        while self.now < end {
            if f(self) {
                return true;
            }
            let step = (self.now + 10).min(end);
            self.run_until(step);
        }
        f(self)
    }

    pub fn requests_since(&self, t: u64) -> Vec<&HttpRequest> {
        self.log
            .iter()
            .filter(|(at, _)| *at >= t)
            .map(|(_, r)| r)
            .collect()
    }

    pub fn config_requests(&self) -> Vec<&HttpRequest> {
        self.log
            .iter()
            .filter(|(_, r)| matches!(r.kind, RequestKind::Configs { .. }))
            .map(|(_, r)| r)
            .collect()
    }

    pub fn polls(&self) -> Vec<&HttpRequest> {
        self.log
            .iter()
            .filter(|(_, r)| r.kind == RequestKind::Notifications)
            .map(|(_, r)| r)
            .collect()
    }

    pub fn changes(&self) -> Vec<&apolloconf_core::ChangeEvent> {
        self.events
            .iter()
            .filter_map(|(_, e)| {
                if let Event::Changed(c) = e {
                    Some(c)
                } else {
                    None
                }
            })
            .collect()
    }

    pub fn value(&self, ns: &str, key: &str) -> Option<String> {
        self.client
            .namespace(ns)
            .and_then(|n| n.get(key))
            .map(str::to_string)
    }

    pub fn feed_cache(&mut self, ns: &str, bytes: &[u8]) {
        self.client
            .handle_input(Input::CacheFile {
                namespace: ns,
                contents: bytes,
            })
            .expect("cache input");
    }

    /// Number of queued (not yet answered) requests.
    pub fn pending(&self) -> usize {
        self.due.len() + self.parked.len()
    }

    pub fn queue_depth(&self) -> VecDeque<u64> {
        self.due.iter().map(|d| d.at).collect()
    }
}

/// The sim's access-key check is its own (a known answer, the wire target) and is live:
/// a wrong secret, or any tampering with a signed request, is answered 401.
#[test]
fn sim_checks_signatures_on_its_own() {
    use apolloconf_core::{ErrorCause, Timing};

    // apollo-core SignatureTest (docs/protocol.md#signing).
    assert_eq!(
        hmac_sha1_base64(
            "df23df3f59884980844ff3dada30fa97",
            "1576478257344\n/configs/100004458/default/application?ip=10.0.0.1"
        ),
        "EoKyziXvKqzHgwx+ijDJwgVTDgE="
    );
    assert_eq!(
        wire_target("http://cs0:8080/configs/a/default/x%2By?ip=1&k=a%2Bb"),
        "/configs/a/default/x%2By?ip=1&k=a%2Bb"
    );
    assert_eq!(wire_target("https://h/p?"), "/p");
    assert_eq!(wire_target("http://h:8080"), "/");
    assert_eq!(wire_target("http://h:8080?q=1"), "/?q=1");
    assert_eq!(wire_target("http://h/a/b#f?g"), "/a/b");

    let run = |client_secret: &str| {
        let mut sim = Sim::new("app", 1);
        sim.secret = Some("right".into());
        sim.publish(0, "application", &[("k", "v")]);
        let mut timing = Timing::default();
        timing.long_poll_initial_delay = core::time::Duration::ZERO;
        let cfg = Harness::config_direct(&sim)
            .secret(client_secret)
            .timing(timing)
            .build();
        let mut h = Harness::new(cfg, sim);
        h.run_for(5_000);
        h
    };
    let statuses = |h: &Harness| -> Vec<u16> {
        h.timeline
            .iter()
            .filter_map(|s| match s {
                Step::Response {
                    result: Ok((status, _)),
                    ..
                } => Some(*status),
                _ => None,
            })
            .collect()
    };

    // The right secret: every request is accepted and the value loads.
    let good = run("right");
    let answered = statuses(&good);
    assert!(answered.len() >= 2, "a fetch and a poll were answered");
    assert!(!answered.contains(&401), "{answered:?}");
    assert_eq!(good.value("application", "k").as_deref(), Some("v"));

    // A wrong secret: every request is refused and the client reports it.
    let bad = run("wrong");
    let answered = statuses(&bad);
    assert!(!answered.is_empty());
    assert!(answered.iter().all(|s| *s == 401), "{answered:?}");
    assert_eq!(bad.value("application", "k"), None);
    assert!(
        bad.events
            .iter()
            .any(|(_, e)| matches!(e, Event::Error(c) if c.cause == ErrorCause::Unauthorized))
    );

    // Tampering with any signed part of an accepted request gets it refused.
    let set = |r: &HttpRequest, name: &str, value: String| {
        let mut r = r.clone();
        for (k, v) in r.headers.iter_mut() {
            if k == name {
                *v = value.clone();
            }
        }
        r
    };
    assert!(!good.log.is_empty());
    for (at, r) in &good.log {
        let sim = &good.sim;
        assert!(sim.check_auth(r, *at), "accepted as sent: {}", r.url);
        let ts: u64 = r
            .headers
            .iter()
            .find(|(k, _)| k == "Timestamp")
            .map(|(_, v)| v.parse().unwrap())
            .unwrap();
        let sig = hmac_sha1_base64("right", &format!("{ts}\n{}", wire_target(&r.url)));
        assert_eq!(
            set(r, "Authorization", format!("Apollo app:{sig}")),
            r.clone(),
            "the client's header is the one computed here"
        );
        let mut flipped = sig.clone().into_bytes();
        flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        let refused = [
            set(r, "Authorization", format!("Apollo app:{flipped}")),
            set(r, "Authorization", format!("Apollo other:{sig}")),
            set(r, "Authorization", sig.clone()),
            set(r, "Timestamp", (ts + 1).to_string()),
            HttpRequest {
                url: format!("{}&x=1", r.url),
                ..r.clone()
            },
            HttpRequest {
                headers: vec![],
                ..r.clone()
            },
        ];
        for t in &refused {
            assert!(!sim.check_auth(t, *at), "tampered request accepted: {t:?}");
        }
        // Outside the 60 s window even a correct signature is refused; just inside, not.
        let at_ts = |ts: u64| {
            let sig = hmac_sha1_base64("right", &format!("{ts}\n{}", wire_target(&r.url)));
            let r = set(r, "Timestamp", ts.to_string());
            set(&r, "Authorization", format!("Apollo app:{sig}"))
        };
        assert!(!sim.check_auth(&at_ts(ts + SIGNATURE_TOLERANCE_MS), *at));
        assert!(sim.check_auth(&at_ts(ts + SIGNATURE_TOLERANCE_MS - 1), *at));
    }
}
