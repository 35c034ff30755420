//! The protocol state machine.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::time::Duration;

use crate::config::{Config, ConfigError, Servers, validate_namespace};
use crate::event::{CacheWrite, ChangeEvent, ClientError, ErrorCause, Event, Source, diff};
use crate::io::{
    HttpRequest, HttpResponse, Input, InputError, Output, RequestId, RequestKind, TransportError,
    TransportErrorKind,
};
use crate::namespace::{CONTENT_KEY, Format, is_safe_file_component, match_key};
use crate::protocol::{self, ConfigPayload};
use crate::time::{Instant, duration_millis};

/// Extra time the core waits past a request's own timeouts before it gives the request
/// up itself (a safety net against hosts that never answer).
const SAFETY_GRACE: Duration = Duration::from_secs(5);
/// How many superseded release keys are remembered per namespace (stale-answer guard).
const HISTORY: usize = 16;
/// How many ids of given-up requests are remembered (late answers are then ignored).
const RETIRED: usize = 1024;

/// The state of a namespace's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Status {
    /// No answer yet.
    Loading,
    /// Values held (from the server or the cache).
    Loaded,
    /// The server answered 404: the namespace does not exist or was never released.
    NotFound,
    /// Every attempt so far failed and no values are held.
    Unavailable,
}

/// One watched namespace: its values and where they came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    name: String,
    format: Format,
    values: BTreeMap<String, String>,
    view: BTreeMap<String, String>,
    release_key: Option<String>,
    source: Source,
    status: Status,
    last_update: Option<Instant>,
    last_checked: Option<Instant>,
    notification_id: i64,
}

impl Namespace {
    /// The name as configured (the client's spelling).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The format from the name's suffix.
    pub fn format(&self) -> Format {
        self.format
    }
    /// The configurations as the server sent them (one `content` key for non-properties).
    pub fn configurations(&self) -> &BTreeMap<String, String> {
        &self.values
    }
    /// The properties view: flattened for YAML, the configurations otherwise.
    pub fn properties(&self) -> &BTreeMap<String, String> {
        &self.view
    }
    /// A value of the properties view.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.view.get(key).map(String::as_str)
    }
    /// The whole text of a non-properties namespace.
    pub fn content(&self) -> Option<&str> {
        if self.format.is_properties() {
            None
        } else {
            self.values.get(CONTENT_KEY).map(String::as_str)
        }
    }
    /// The release key of the values (None when they came from the cache).
    pub fn release_key(&self) -> Option<&str> {
        self.release_key.as_deref()
    }
    /// Where the values came from.
    pub fn source(&self) -> Source {
        self.source
    }
    /// The state of the data.
    pub fn status(&self) -> Status {
        self.status
    }
    /// When the values last changed source or release.
    pub fn last_update(&self) -> Option<Instant> {
        self.last_update
    }
    /// When a config service last answered for it (200 or 304).
    pub fn last_checked(&self) -> Option<Instant> {
        self.last_checked
    }
    /// The notification id acknowledged after a successful fetch (-1 before any).
    pub fn notification_id(&self) -> i64 {
        self.notification_id
    }
}

/// Request counts by outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counter {
    /// Requests sent.
    pub sent: u64,
    /// 200 answers.
    pub ok: u64,
    /// 304 answers.
    pub not_modified: u64,
    /// 404 answers.
    pub not_found: u64,
    /// 401 answers.
    pub unauthorized: u64,
    /// Other statuses.
    pub other_status: u64,
    /// Transport failures (including the core's own safety-net timeouts).
    pub transport_error: u64,
    /// Unparseable bodies.
    pub parse_error: u64,
}

/// What the client has done so far (our answer to the Java client monitor).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metrics {
    /// Discovery requests.
    pub discovery: Counter,
    /// `/configs` requests.
    pub configs: Counter,
    /// Long polls.
    pub notifications: Counter,
    /// The last failure.
    pub last_error: Option<ClientError>,
    /// The config service the long poll is pinned to.
    pub long_poll_service: Option<String>,
}

#[derive(Debug, Clone)]
struct Fetch {
    want: bool,
    in_flight: bool,
    failures: u32,
    lag_tries: u32,
    next_at: Instant,
    last_start: Option<Instant>,
    preferred: Option<String>,
    /// The service whose long poll announced `pending_id` (it has seen that message).
    notifier: Option<String>,
    /// When `pending_id` was announced.
    notified_at: Instant,
    cursor: usize,
    next_refresh: Instant,
    pending_id: Option<i64>,
    /// The pending notification id the in-flight fetch was issued for.
    covers: Option<i64>,
    messages: BTreeMap<String, i64>,
    /// Release keys this namespace held before (newest last).
    superseded: VecDeque<String>,
    /// An older release an instance answered, when, and by which instance.
    stale_seen: Option<(String, Instant, String)>,
    settled: bool,
    initial: bool,
    key: String,
}

#[derive(Debug, Clone)]
struct Slot {
    ns: Namespace,
    fetch: Fetch,
}

impl Slot {
    fn knowledge(&self) -> i64 {
        self.fetch
            .pending_id
            .map_or(self.ns.notification_id, |p| p.max(self.ns.notification_id))
    }
}

#[derive(Debug, Clone)]
struct Discovery {
    metas: Vec<String>,
    /// Edge mode: a `refresh()` found re-discovery due.
    wanted: bool,
    idx: usize,
    in_flight: bool,
    attempt: u32,
    next_at: Instant,
    last_start: Option<Instant>,
}

#[derive(Debug, Clone)]
struct Poll {
    in_flight: bool,
    pinned: Option<String>,
    attempt: u32,
    next_at: Instant,
    last_start: Option<Instant>,
}

#[derive(Debug, Clone)]
enum Work {
    Discovery,
    Configs(usize),
    Poll,
}

#[derive(Debug, Clone)]
struct InFlight {
    work: Work,
    service: String,
    deadline: Instant,
}

/// A small deterministic generator (splitmix64) for instance picks and jitter.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            usize::try_from(self.next() % (n as u64)).unwrap_or(0)
        }
    }
}

/// The Apollo client protocol engine. See the crate docs for the run loop.
#[derive(Debug, Clone)]
pub struct Client {
    cfg: Config,
    start: Instant,
    now: Instant,
    rng: Rng,
    next_id: u64,
    queue: VecDeque<Output>,
    closed: bool,
    close_reported: bool,
    services: Vec<String>,
    discovery: Option<Discovery>,
    poll: Poll,
    slots: Vec<Slot>,
    requests: BTreeMap<u64, InFlight>,
    retired: VecDeque<u64>,
    ready: bool,
    metrics: Metrics,
}

fn new_slot(name: &str, now: Instant, initial: bool) -> Slot {
    Slot {
        ns: Namespace {
            name: name.to_string(),
            format: Format::of(name),
            values: BTreeMap::new(),
            view: BTreeMap::new(),
            release_key: None,
            source: Source::None,
            status: Status::Loading,
            last_update: None,
            last_checked: None,
            notification_id: -1,
        },
        fetch: Fetch {
            want: true,
            in_flight: false,
            failures: 0,
            lag_tries: 0,
            next_at: now,
            last_start: None,
            preferred: None,
            notifier: None,
            notified_at: now,
            cursor: 0,
            next_refresh: now,
            pending_id: None,
            covers: None,
            messages: BTreeMap::new(),
            superseded: VecDeque::new(),
            stale_seen: None,
            settled: false,
            initial,
            key: match_key(name),
        },
    }
}

/// The `yyyyMMddHHmmss` prefixes of each `+`-joined part of a release key.
fn key_stamps(key: &str) -> Option<Vec<u64>> {
    key.split('+')
        .map(|part| {
            let stamp = part.get(..14)?;
            if part.as_bytes().get(14) != Some(&b'-') || !stamp.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            stamp.parse().ok()
        })
        .collect()
}

/// Whether `new` is strictly older than `held` by the timestamps inside the keys.
fn older_by_stamp(new: &str, held: &str) -> bool {
    match (key_stamps(new), key_stamps(held)) {
        (Some(a), Some(b)) if a.len() == b.len() => {
            a.iter().zip(&b).all(|(x, y)| x <= y) && a.iter().zip(&b).any(|(x, y)| x < y)
        }
        _ => false,
    }
}

impl Client {
    /// Validate `config` and create a client at host time `now`. Nothing is sent until the
    /// host drains [`poll_output`](Client::poll_output).
    pub fn new(config: Config, now: Instant) -> Result<Client, ConfigError> {
        config.validate()?;
        let (services, discovery) = match &config.servers {
            Servers::ConfigService(list) => {
                (list.iter().map(|u| protocol::with_slash(u)).collect(), None)
            }
            Servers::Meta(list) => (
                Vec::new(),
                Some(Discovery {
                    wanted: false,
                    metas: list
                        .iter()
                        .map(|m| m.trim_end_matches('/').to_string())
                        .collect(),
                    idx: 0,
                    in_flight: false,
                    attempt: 0,
                    next_at: now,
                    last_start: None,
                }),
            ),
        };
        let slots = config
            .namespaces
            .iter()
            .map(|n| new_slot(n, now, true))
            .collect();
        let mut rng = Rng(config.seed);
        let mut client = Client {
            start: now,
            now,
            next_id: 1,
            queue: VecDeque::new(),
            closed: false,
            close_reported: false,
            services,
            poll: Poll {
                in_flight: false,
                pinned: None,
                attempt: 0,
                next_at: now + config.timing.long_poll_initial_delay,
                last_start: None,
            },
            slots,
            requests: BTreeMap::new(),
            retired: VecDeque::new(),
            ready: false,
            metrics: Metrics::default(),
            discovery,
            rng: Rng(rng.next()),
            cfg: config,
        };
        if let Some(d) = &mut client.discovery {
            // Start at a random meta server, as the Java client shuffles its list.
            d.idx = client.rng.below(d.metas.len());
        }
        Ok(client)
    }

    // ------------------------------------------------------------------ public API

    /// Feed an input. Errors only for misuse (an id this client never issued, a cache
    /// file for a namespace not watched).
    pub fn handle_input(&mut self, input: Input<'_>) -> Result<(), InputError> {
        match input {
            Input::Timeout(now) => {
                self.set_now(now);
                Ok(())
            }
            Input::Response { id, now, result } => {
                self.set_now(now);
                self.on_response(id, result)
            }
            Input::CacheFile {
                namespace,
                contents,
            } => self.on_cache_file(namespace, contents),
        }
    }

    /// The next output. Drain until [`Output::Timeout`].
    pub fn poll_output(&mut self) -> Output {
        if let Some(o) = self.queue.pop_front() {
            return o;
        }
        if self.closed {
            return Output::Timeout(None);
        }
        self.advance();
        if let Some(o) = self.queue.pop_front() {
            return o;
        }
        Output::Timeout(Some(self.deadline()))
    }

    /// Watch one more namespace (it joins the next long poll; its values are fetched at
    /// once). Watching a namespace twice is a no-op.
    pub fn watch(&mut self, namespace: &str) -> Result<(), ConfigError> {
        validate_namespace(namespace)?;
        if self.closed || self.slots.iter().any(|s| s.ns.name == namespace) {
            return Ok(());
        }
        self.slots.push(new_slot(namespace, self.now, false));
        Ok(())
    }

    /// Stop: every pending request is abandoned (the host should abort them), no timer is
    /// left, and the only output left is [`Event::Closed`].
    pub fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.queue.clear();
        for id in core::mem::take(&mut self.requests).into_keys() {
            self.retire(id);
        }
        if !self.close_reported {
            self.close_reported = true;
            self.queue.push_back(Output::Event(Event::Closed));
        }
    }

    /// Check every namespace that no config service has confirmed within `max_age` (or
    /// ever) with a conditional `/configs` request (its release key, so an unchanged
    /// namespace costs a 304). Returns how many were queued. This is how edge mode stays
    /// fresh; in background mode it forces an early refresh.
    pub fn refresh(&mut self, now: Instant, max_age: Duration) -> usize {
        if self.closed {
            return 0;
        }
        self.set_now(now);
        let now = self.now;
        if let Some(d) = &mut self.discovery {
            // Edge mode re-discovers only here, when it is due (background mode on its own).
            if !self.cfg.background && now >= d.next_at {
                d.wanted = true;
            }
        }
        let mut n = 0;
        for slot in &mut self.slots {
            let fresh = slot.ns.last_checked.is_some_and(|t| now < t + max_age);
            if fresh || slot.fetch.in_flight || slot.fetch.want {
                continue;
            }
            slot.fetch.want = true;
            slot.fetch.failures = 0;
            slot.fetch.next_at = now;
            n += 1;
        }
        n
    }

    /// Whether a fetch is queued or in flight (a [`refresh`](Client::refresh) is done when
    /// this turns false).
    pub fn is_refreshing(&self) -> bool {
        self.discovery
            .as_ref()
            .is_some_and(|d| d.in_flight || d.wanted)
            || self.slots.iter().any(|s| s.fetch.want || s.fetch.in_flight)
    }

    /// Whether `close()` was called.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Whether [`Event::Ready`] was emitted.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// The merged lookup: the first namespace (in configured order) whose properties view
    /// holds `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.slots.iter().find_map(|s| s.ns.get(key))
    }

    /// A watched namespace by its configured name.
    pub fn namespace(&self, name: &str) -> Option<&Namespace> {
        self.slots.iter().find(|s| s.ns.name == name).map(|s| &s.ns)
    }

    /// Every watched namespace in lookup order.
    pub fn namespaces(&self) -> impl Iterator<Item = &Namespace> {
        self.slots.iter().map(|s| &s.ns)
    }

    /// The config services in use.
    pub fn services(&self) -> &[String] {
        &self.services
    }

    /// Request counts and the last error.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The cache file name of a namespace, `{appId}+{cluster}+{namespace}.properties`, or
    /// None when a part could escape the cache directory.
    pub fn cache_file_name(&self, namespace: &str) -> Option<String> {
        let parts = [
            self.cfg.app_id.as_str(),
            self.cfg.cluster.as_str(),
            namespace,
        ];
        if parts.iter().all(|p| is_safe_file_component(p)) {
            Some(alloc::format!(
                "{}+{}+{}.properties",
                parts[0],
                parts[1],
                parts[2]
            ))
        } else {
            None
        }
    }

    // ------------------------------------------------------------------ time

    fn set_now(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
    }

    fn wall_clock_ms(&self) -> u64 {
        self.cfg.wall_clock_ms.saturating_add(duration_millis(
            self.now.saturating_duration_since(self.start),
        ))
    }

    fn backoff(&mut self, initial: Duration, max: Duration, attempt: u32) -> Duration {
        let init = duration_millis(initial).max(1);
        let cap = duration_millis(max).max(init);
        let shift = attempt.saturating_sub(1).min(32);
        let d = init.saturating_mul(1u64 << shift).min(cap);
        let spread = d.saturating_mul(u64::from(self.cfg.timing.jitter_percent)) / 100;
        let cut = if spread == 0 {
            0
        } else {
            self.rng.next() % (spread + 1)
        };
        Duration::from_millis(d - cut)
    }

    fn rate_ok(&self, last: Option<Instant>, qps: u32) -> Instant {
        match last {
            None => self.now,
            Some(t) => t + Duration::from_millis(1000 / u64::from(qps.max(1))),
        }
    }

    fn deadline(&self) -> Instant {
        let t = &self.cfg.timing;
        let mut d: Option<Instant> = None;
        let mut consider = |x: Instant| d = Some(d.map_or(x, |y: Instant| y.min(x)));
        for r in self.requests.values() {
            consider(r.deadline);
        }
        if let Some(disc) = &self.discovery {
            if !disc.in_flight && self.discovery_allowed(disc) {
                consider(
                    disc.next_at
                        .max(self.rate_ok(disc.last_start, t.discovery_qps)),
                );
            }
        }
        if !self.services.is_empty() {
            for s in &self.slots {
                if !s.fetch.in_flight && (s.fetch.want || self.cfg.background) {
                    let due = if s.fetch.want {
                        s.fetch.next_at
                    } else {
                        s.fetch.next_refresh
                    };
                    consider(due.max(self.rate_ok(s.fetch.last_start, t.load_config_qps)));
                }
            }
            if self.cfg.background && !self.poll.in_flight && !self.slots.is_empty() {
                consider(
                    self.poll
                        .next_at
                        .max(self.rate_ok(self.poll.last_start, t.long_poll_qps)),
                );
            }
        }
        d.unwrap_or(self.now + t.refresh_interval).max(self.now)
    }

    // ------------------------------------------------------------------ starting work

    fn advance(&mut self) {
        // Safety nets: requests the host never answered.
        let expired: Vec<u64> = self
            .requests
            .iter()
            .filter(|(_, r)| r.deadline <= self.now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            let err = TransportError::new(
                TransportErrorKind::Timeout,
                "no answer from the host in time",
            );
            let _ = self.on_response(RequestId(id), Err(err));
            self.retire(id);
        }
        self.start_discovery();
        if self.services.is_empty() {
            return;
        }
        for i in 0..self.slots.len() {
            self.start_fetch(i);
        }
        self.start_poll();
    }

    fn retire(&mut self, id: u64) {
        if self.retired.len() >= RETIRED {
            self.retired.pop_front();
        }
        self.retired.push_back(id);
    }

    fn issue(
        &mut self,
        kind: RequestKind,
        work: Work,
        service: String,
        url: String,
        sign: bool,
        (timeout, connect): (Duration, Duration),
    ) {
        let id = self.next_id;
        self.next_id += 1;
        let mut headers = Vec::new();
        if sign {
            if let Some(secret) = &self.cfg.secret {
                let ts = self.wall_clock_ms();
                let pq = crate::url::path_and_query(&url);
                headers.push((
                    String::from("Authorization"),
                    crate::sign::authorization(&self.cfg.app_id, ts, pq, secret),
                ));
                headers.push((String::from("Timestamp"), ts.to_string()));
            }
        }
        let deadline = self.now + connect + timeout + SAFETY_GRACE;
        self.requests.insert(
            id,
            InFlight {
                work,
                service,
                deadline,
            },
        );
        self.queue.push_back(Output::Request(HttpRequest {
            id: RequestId(id),
            kind,
            url,
            headers,
            connect_timeout: connect,
            timeout,
        }));
    }

    /// Background mode discovers on its own schedule; edge mode only while it has no
    /// service at all, or when a `refresh()` found re-discovery due.
    fn discovery_allowed(&self, d: &Discovery) -> bool {
        self.cfg.background || self.services.is_empty() || d.wanted
    }

    fn start_discovery(&mut self) {
        let qps = self.cfg.timing.discovery_qps;
        let Some(d) = &self.discovery else { return };
        if d.in_flight
            || !self.discovery_allowed(d)
            || self.now < d.next_at
            || self.now < self.rate_ok(d.last_start, qps)
        {
            return;
        }
        let Some(meta) = d.metas.get(d.idx % d.metas.len().max(1)).cloned() else {
            return;
        };
        let mut url = alloc::format!("{meta}/services/config");
        crate::url::push_query(
            &mut url,
            &[
                ("appId", Some(&self.cfg.app_id)),
                ("ip", self.cfg.ip.as_deref()),
            ],
        );
        if let Some(d) = &mut self.discovery {
            d.in_flight = true;
            d.wanted = false;
            d.last_start = Some(self.now);
        }
        self.metrics.discovery.sent += 1;
        let t = &self.cfg.timing;
        let (timeout, connect) = (t.discovery_read_timeout, t.discovery_connect_timeout);
        self.issue(
            RequestKind::Discovery,
            Work::Discovery,
            meta,
            url,
            false,
            (timeout, connect),
        );
    }

    fn start_fetch(&mut self, i: usize) {
        let now = self.now;
        let qps = self.cfg.timing.load_config_qps;
        let Some(slot) = self.slots.get(i) else {
            return;
        };
        let f = &slot.fetch;
        if f.in_flight || now < self.rate_ok(f.last_start, qps) {
            return;
        }
        let refresh_due = self.cfg.background && !f.want && now >= f.next_refresh;
        if !(refresh_due || f.want && now >= f.next_at) {
            return;
        }
        let n = self.services.len();
        let pick = self.rng.below(n);
        let Some(slot) = self.slots.get_mut(i) else {
            return;
        };
        if refresh_due {
            slot.fetch.want = true;
            slot.fetch.cursor = pick;
        }
        let service = match slot.fetch.preferred.take() {
            Some(p) if self.services.contains(&p) => p,
            _ => self
                .services
                .get(slot.fetch.cursor % n.max(1))
                .cloned()
                .unwrap_or_default(),
        };
        slot.fetch.in_flight = true;
        slot.fetch.last_start = Some(now);
        slot.fetch.covers = slot.fetch.pending_id;
        let ns = &slot.ns;
        let esc = crate::url::escape_path_segment;
        let mut url = alloc::format!(
            "{service}configs/{}/{}/{}",
            esc(&self.cfg.app_id),
            esc(&self.cfg.cluster),
            esc(&ns.name)
        );
        let messages = if slot.fetch.messages.is_empty() {
            None
        } else {
            Some(protocol::messages_param(&slot.fetch.messages))
        };
        let release_key = if ns.source == Source::Server {
            ns.release_key.clone()
        } else {
            None
        };
        crate::url::push_query(
            &mut url,
            &[
                ("dataCenter", self.cfg.data_center.as_deref()),
                ("ip", self.cfg.ip.as_deref()),
                ("messages", messages.as_deref()),
                ("releaseKey", release_key.as_deref()),
                ("label", self.cfg.label.as_deref()),
            ],
        );
        let kind = RequestKind::Configs {
            namespace: ns.name.clone(),
        };
        self.metrics.configs.sent += 1;
        let t = &self.cfg.timing;
        let (timeout, connect) = (t.read_timeout, t.connect_timeout);
        self.issue(
            kind,
            Work::Configs(i),
            service,
            url,
            true,
            (timeout, connect),
        );
    }

    fn start_poll(&mut self) {
        let t = &self.cfg.timing;
        if !self.cfg.background
            || self.poll.in_flight
            || self.slots.is_empty()
            || self.now < self.poll.next_at
            || self.now < self.rate_ok(self.poll.last_start, t.long_poll_qps)
        {
            return;
        }
        let service = match &self.poll.pinned {
            Some(p) if self.services.contains(p) => p.clone(),
            _ => {
                let n = self.services.len();
                let pick = self.rng.below(n);
                let s = self.services.get(pick).cloned().unwrap_or_default();
                self.poll.pinned = Some(s.clone());
                s
            }
        };
        self.metrics.long_poll_service = Some(service.clone());
        let notifications = protocol::notifications_param(
            self.slots
                .iter()
                .map(|s| (s.ns.name.as_str(), s.knowledge())),
        );
        let mut url = alloc::format!("{service}notifications/v2");
        crate::url::push_query(
            &mut url,
            &[
                ("cluster", Some(&self.cfg.cluster)),
                ("dataCenter", self.cfg.data_center.as_deref()),
                ("appId", Some(&self.cfg.app_id)),
                ("ip", self.cfg.ip.as_deref()),
                ("notifications", Some(&notifications)),
            ],
        );
        self.poll.in_flight = true;
        self.poll.last_start = Some(self.now);
        self.metrics.notifications.sent += 1;
        let (timeout, connect) = (t.long_poll_read_timeout, t.connect_timeout);
        self.issue(
            RequestKind::Notifications,
            Work::Poll,
            service,
            url,
            true,
            (timeout, connect),
        );
    }

    // ------------------------------------------------------------------ answers

    fn on_response(
        &mut self,
        id: RequestId,
        result: Result<HttpResponse<'_>, TransportError>,
    ) -> Result<(), InputError> {
        let Some(req) = self.requests.remove(&id.0) else {
            if self.closed || self.retired.contains(&id.0) {
                return Ok(());
            }
            return Err(InputError::UnknownRequest(id));
        };
        if self.closed {
            return Ok(());
        }
        let counter = match req.work {
            Work::Discovery => &mut self.metrics.discovery,
            Work::Configs(_) => &mut self.metrics.configs,
            Work::Poll => &mut self.metrics.notifications,
        };
        match &result {
            Err(_) => counter.transport_error += 1,
            Ok(r) => match r.status {
                200 => counter.ok += 1,
                304 => counter.not_modified += 1,
                404 => counter.not_found += 1,
                401 => counter.unauthorized += 1,
                _ => counter.other_status += 1,
            },
        }
        match req.work {
            Work::Discovery => self.on_discovery(req.service, result),
            Work::Configs(i) => self.on_configs(i, req.service, result),
            Work::Poll => self.on_poll(req.service, result),
        }
        Ok(())
    }

    fn error(
        &mut self,
        namespace: Option<String>,
        request: Option<RequestKind>,
        url: Option<String>,
        cause: ErrorCause,
    ) {
        if let ErrorCause::Parse(_) = &cause {
            match &request {
                Some(RequestKind::Discovery) => self.metrics.discovery.parse_error += 1,
                Some(RequestKind::Configs { .. }) => self.metrics.configs.parse_error += 1,
                Some(RequestKind::Notifications) => self.metrics.notifications.parse_error += 1,
                _ => {}
            }
        }
        let e = ClientError {
            namespace,
            request,
            url,
            cause,
        };
        self.metrics.last_error = Some(e.clone());
        self.queue.push_back(Output::Event(Event::Error(e)));
    }

    fn failure_cause(result: &Result<HttpResponse<'_>, TransportError>) -> ErrorCause {
        match result {
            Err(e) => ErrorCause::Transport(e.clone()),
            Ok(r) if r.status == 401 => ErrorCause::Unauthorized,
            Ok(r) if r.status == 404 => ErrorCause::NotFound,
            Ok(r) => ErrorCause::Status(r.status),
        }
    }

    fn on_discovery(&mut self, meta: String, result: Result<HttpResponse<'_>, TransportError>) {
        let outcome = match &result {
            Ok(r) if r.status == 200 => match protocol::parse_services(r.body) {
                Ok(list) if !list.is_empty() => Ok(list),
                Ok(_) => Err(ErrorCause::NoServices),
                Err(e) => Err(ErrorCause::Parse(e)),
            },
            _ => Err(Self::failure_cause(&result)),
        };
        let t = self.cfg.timing.clone();
        match outcome {
            Ok(list) => {
                if let Some(d) = &mut self.discovery {
                    d.in_flight = false;
                    d.attempt = 0;
                    d.next_at = self.now + t.discovery_refresh_interval;
                }
                if list != self.services {
                    self.services = list.clone();
                    self.queue
                        .push_back(Output::Event(Event::ServicesChanged { services: list }));
                }
            }
            Err(cause) => {
                let attempt = self.discovery.as_ref().map_or(0, |d| d.attempt) + 1;
                let delay = self.backoff(t.discovery_retry_initial, t.discovery_retry_max, attempt);
                let mut all_metas_failed = false;
                if let Some(d) = &mut self.discovery {
                    d.in_flight = false;
                    d.attempt = attempt;
                    d.idx = (d.idx + 1) % d.metas.len().max(1);
                    d.next_at = self.now + delay;
                    all_metas_failed = attempt as usize >= d.metas.len();
                }
                self.error(None, Some(RequestKind::Discovery), Some(meta), cause);
                if self.services.is_empty() && all_metas_failed {
                    // Nothing can be fetched: start-up must not wait for it.
                    for i in 0..self.slots.len() {
                        self.settle(i);
                    }
                }
            }
        }
    }

    fn settle(&mut self, i: usize) {
        let Some(slot) = self.slots.get_mut(i) else {
            return;
        };
        if !slot.fetch.settled {
            slot.fetch.settled = true;
            if slot.ns.status == Status::Loading {
                slot.ns.status = Status::Unavailable;
            }
        }
        if !self.ready
            && self
                .slots
                .iter()
                .all(|s| !s.fetch.initial || s.fetch.settled)
        {
            self.ready = true;
            self.queue.push_back(Output::Event(Event::Ready));
        }
    }

    /// Acknowledge the notification the finished fetch was issued for. Returns whether a
    /// newer notification arrived meanwhile (then another fetch is needed).
    fn commit_notification(&mut self, i: usize) -> bool {
        let Some(slot) = self.slots.get_mut(i) else {
            return false;
        };
        let covered = slot.fetch.covers.take();
        if let Some(c) = covered {
            slot.ns.notification_id = slot.ns.notification_id.max(c);
        }
        match slot.fetch.pending_id {
            Some(p) if covered.is_some_and(|c| c >= p) => {
                slot.fetch.pending_id = None;
                slot.fetch.notifier = None;
                false
            }
            Some(_) => true,
            None => false,
        }
    }

    /// A notified namespace got an answer that is not (yet) the new release from an
    /// instance other than the one that notified (which may lag behind): within the lag
    /// window, ask again with back-off, the notifying instance first. The notifying
    /// instance's own answer is authoritative: it has seen the message.
    fn lagging(&mut self, i: usize, service: &str) -> bool {
        let t = self.cfg.timing.clone();
        let now = self.now;
        let Some(slot) = self.slots.get(i) else {
            return false;
        };
        if slot.fetch.pending_id.is_none()
            || slot.fetch.notifier.as_deref() == Some(service)
            || now >= slot.fetch.notified_at + t.lag_window
        {
            return false;
        }
        let tries = slot.fetch.lag_tries + 1;
        let delay = self.backoff(t.fetch_retry_initial, t.fetch_retry_max, tries);
        let Some(slot) = self.slots.get_mut(i) else {
            return false;
        };
        slot.fetch.lag_tries = tries;
        slot.fetch.cursor = slot.fetch.cursor.wrapping_add(1);
        slot.fetch.preferred = slot.fetch.notifier.clone();
        slot.fetch.next_at = now + delay;
        true
    }

    fn fetch_done(&mut self, i: usize) {
        let refresh = self.cfg.timing.refresh_interval;
        let now = self.now;
        let again = self.commit_notification(i);
        if let Some(slot) = self.slots.get_mut(i) {
            slot.ns.last_checked = Some(now);
            slot.fetch.want = again;
            slot.fetch.next_at = now;
            slot.fetch.failures = 0;
            slot.fetch.lag_tries = 0;
            slot.fetch.next_refresh = now + refresh;
        }
        self.settle(i);
    }

    fn on_configs(
        &mut self,
        i: usize,
        service: String,
        result: Result<HttpResponse<'_>, TransportError>,
    ) {
        let Some(slot) = self.slots.get_mut(i) else {
            return;
        };
        slot.fetch.in_flight = false;
        let name = slot.ns.name.clone();
        let kind = Some(RequestKind::Configs {
            namespace: name.clone(),
        });
        match &result {
            Ok(r) if r.status == 304 => {
                if !self.lagging(i, &service) {
                    self.fetch_done(i);
                }
            }
            Ok(r) if r.status == 404 => {
                if self.lagging(i, &service) {
                    self.error(Some(name), kind, Some(service), ErrorCause::NotFound);
                    return;
                }
                if let Some(slot) = self.slots.get_mut(i) {
                    slot.ns.status = Status::NotFound;
                }
                self.error(Some(name), kind, Some(service), ErrorCause::NotFound);
                self.fetch_done(i);
            }
            Ok(r) if r.status == 200 => match protocol::parse_config(r.body) {
                Ok(body) => self.on_config_body(i, service, body),
                Err(e) => self.fetch_failed(i, service, ErrorCause::Parse(e)),
            },
            _ => {
                let cause = Self::failure_cause(&result);
                self.fetch_failed(i, service, cause);
            }
        }
    }

    /// The rotation position just after `service` (or after the slot's current position
    /// when `service` is no longer listed).
    fn index_after(&self, service: &str, i: usize) -> usize {
        match self.services.iter().position(|s| s == service) {
            Some(p) => p + 1,
            None => self
                .slots
                .get(i)
                .map_or(0, |s| s.fetch.cursor.wrapping_add(1)),
        }
    }

    fn fetch_failed(&mut self, i: usize, service: String, cause: ErrorCause) {
        let t = self.cfg.timing.clone();
        let n = self.services.len().max(1);
        let Some(slot) = self.slots.get(i) else {
            return;
        };
        let name = slot.ns.name.clone();
        let failures = slot.fetch.failures + 1;
        let delay = self.backoff(t.fetch_retry_initial, t.fetch_retry_max, failures);
        let now = self.now;
        let background = self.cfg.background;
        let next = self.index_after(&service, i);
        if let Some(slot) = self.slots.get_mut(i) {
            slot.fetch.failures = failures;
            // The next instance after the one that failed, whatever was preferred: one
            // pass over the list reaches every instance.
            slot.fetch.cursor = next;
            slot.fetch.preferred = None;
            if background {
                slot.fetch.next_at = now + delay;
                slot.fetch.want = true;
            } else {
                // Edge mode: the next instance at once, one pass over them, then wait for
                // the host's next refresh.
                slot.fetch.next_at = now;
                slot.fetch.want = (failures as usize) < n;
            }
        }
        self.error(
            Some(name.clone()),
            Some(RequestKind::Configs { namespace: name }),
            Some(service),
            cause,
        );
        if failures as usize >= n {
            self.settle(i);
        }
    }

    fn on_config_body(&mut self, i: usize, service: String, body: protocol::ConfigBody) {
        let Some(slot) = self.slots.get(i) else {
            return;
        };
        // Guard against an instance that lags behind: going back to a release held before,
        // or to an older one, needs confirmation (see `hold_back_stale`).
        let stale = match &slot.ns.release_key {
            Some(h) if *h != body.release_key && slot.ns.source == Source::Server => {
                slot.fetch.superseded.contains(&body.release_key)
                    || older_by_stamp(&body.release_key, h)
            }
            _ => false,
        };
        if stale && self.hold_back_stale(i, &service, &body.release_key) {
            return;
        }
        let values = match body.payload {
            ConfigPayload::Full(m) => m,
            ConfigPayload::Incremental(changes) => {
                let mut m = self
                    .slots
                    .get(i)
                    .map(|s| s.ns.values.clone())
                    .unwrap_or_default();
                for c in changes {
                    if c.delete {
                        m.remove(&c.key);
                    } else if let Some(v) = c.new_value {
                        m.insert(c.key, v);
                    }
                }
                m
            }
        };
        if let Some(slot) = self.slots.get_mut(i) {
            if let Some(old) = slot.ns.release_key.take() {
                if old != body.release_key {
                    slot.fetch.superseded.retain(|k| *k != old);
                    if slot.fetch.superseded.len() >= HISTORY {
                        slot.fetch.superseded.pop_front();
                    }
                    slot.fetch.superseded.push_back(old);
                }
            }
            slot.fetch.stale_seen = None;
        }
        self.apply(i, values, Some(body.release_key), Source::Server);
        // Progress, but only the notifier (or the end of the lag window) acknowledges the
        // notification: a lagging instance may have answered an intermediate release.
        if !self.lagging(i, &service) {
            self.fetch_done(i);
        }
    }

    /// An instance answered an older release than the one held (or one held before).
    /// That is a rollback, or an instance that lags behind. Returns true when it must not
    /// be applied yet: it is applied once confirmed, by a second instance answering the
    /// same key, by the same instance again after the lag window, by the only instance
    /// there is, or by persisting for a whole refresh interval. Meanwhile another instance
    /// is asked (whose 304 dismisses the suspicion).
    fn hold_back_stale(&mut self, i: usize, service: &str, key: &str) -> bool {
        let now = self.now;
        let t = self.cfg.timing.clone();
        let single = self.services.len() <= 1;
        let Some(slot) = self.slots.get_mut(i) else {
            return true;
        };
        let confirmed = single
            || match &slot.fetch.stale_seen {
                Some((k, since, by)) if k == key => {
                    by != service
                        || now >= *since + t.lag_window
                        || now >= *since + t.refresh_interval
                }
                _ => false,
            };
        if confirmed {
            slot.fetch.stale_seen = None;
            return false;
        }
        if slot
            .fetch
            .stale_seen
            .as_ref()
            .is_none_or(|(k, _, _)| k != key)
        {
            slot.fetch.stale_seen = Some((key.to_string(), now, service.to_string()));
        }
        let tries = slot.fetch.lag_tries + 1;
        let name = slot.ns.name.clone();
        let delay = self.backoff(t.fetch_retry_initial, t.fetch_retry_max, tries);
        self.error(
            Some(name.clone()),
            Some(RequestKind::Configs { namespace: name }),
            Some(service.to_string()),
            ErrorCause::StaleRelease(key.to_string()),
        );
        let Some(slot) = self.slots.get_mut(i) else {
            return true;
        };
        slot.fetch.lag_tries = tries;
        slot.fetch.cursor = slot.fetch.cursor.wrapping_add(1);
        slot.fetch.preferred = None;
        slot.fetch.next_at = now + delay;
        true
    }

    fn on_poll(&mut self, service: String, result: Result<HttpResponse<'_>, TransportError>) {
        self.poll.in_flight = false;
        let t = self.cfg.timing.clone();
        let parsed = match &result {
            Ok(r) if r.status == 200 => Some(protocol::parse_notifications(r.body)),
            _ => None,
        };
        match (parsed, &result) {
            (Some(Ok(list)), _) => {
                self.poll.attempt = 0;
                self.poll.next_at = self.now;
                for n in list {
                    let key = match_key(&n.namespace);
                    for slot in self.slots.iter_mut().filter(|s| s.fetch.key == key) {
                        if n.id <= slot.knowledge() {
                            continue;
                        }
                        slot.fetch.pending_id = Some(n.id);
                        for (k, v) in &n.messages {
                            let e = slot.fetch.messages.entry(k.clone()).or_insert(*v);
                            *e = (*e).max(*v);
                        }
                        slot.fetch.want = true;
                        slot.fetch.preferred = Some(service.clone());
                        slot.fetch.notifier = Some(service.clone());
                        slot.fetch.notified_at = self.now;
                        slot.fetch.lag_tries = 0;
                        slot.fetch.failures = 0;
                        slot.fetch.next_at = self.now;
                    }
                }
            }
            (None, Ok(r)) if r.status == 304 => {
                self.poll.attempt = 0;
                self.poll.next_at = self.now;
                if self.rng.next() & 1 == 1 {
                    self.poll.pinned = None;
                }
            }
            (parsed, _) => {
                let cause = match parsed {
                    Some(Err(e)) => ErrorCause::Parse(e),
                    _ => Self::failure_cause(&result),
                };
                self.poll.pinned = None;
                self.metrics.long_poll_service = None;
                self.poll.attempt += 1;
                let delay = self.backoff(
                    t.long_poll_retry_initial,
                    t.long_poll_retry_max,
                    self.poll.attempt,
                );
                self.poll.next_at = self.now + delay;
                self.error(None, Some(RequestKind::Notifications), Some(service), cause);
            }
        }
    }

    fn on_cache_file(&mut self, namespace: &str, contents: &[u8]) -> Result<(), InputError> {
        let Some(i) = self.slots.iter().position(|s| s.ns.name == namespace) else {
            return Err(InputError::UnknownNamespace(namespace.to_string()));
        };
        if self.closed
            || self
                .slots
                .get(i)
                .is_some_and(|s| s.ns.source == Source::Server)
        {
            return Ok(());
        }
        match crate::properties::load_latin1(contents) {
            Ok(values) => {
                self.apply(i, values, None, Source::Cache);
            }
            Err(e) => {
                self.error(
                    Some(namespace.to_string()),
                    None,
                    None,
                    ErrorCause::Cache(e.to_string()),
                );
            }
        }
        Ok(())
    }

    /// Install new values, emit `Loaded`, `Changed` (when there was something before) and
    /// `PersistCache` (when the values differ from what is on disk).
    fn apply(
        &mut self,
        i: usize,
        values: BTreeMap<String, String>,
        release_key: Option<String>,
        source: Source,
    ) {
        let now = self.now;
        let wall = self.wall_clock_ms();
        let file_name = self
            .slots
            .get(i)
            .and_then(|s| self.cache_file_name(&s.ns.name));
        let Some(slot) = self.slots.get_mut(i) else {
            return;
        };
        let had_before = slot.fetch.settled || slot.ns.source != Source::None;
        let mut parse_error = None;
        let view = if slot.ns.format.is_yaml() {
            flatten_view(&values, &slot.ns.view, &mut parse_error)
        } else {
            values.clone()
        };
        let changes = diff(&slot.ns.view, &view);
        let values_changed = slot.ns.values != values;
        slot.ns.values = values;
        slot.ns.view = view;
        slot.ns.release_key = release_key.clone();
        slot.ns.source = source;
        slot.ns.status = Status::Loaded;
        slot.ns.last_update = Some(now);
        let name = slot.ns.name.clone();
        let persist = if source == Source::Server && (values_changed || !had_before) {
            file_name.map(|file_name| CacheWrite {
                namespace: name.clone(),
                file_name,
                contents: crate::properties::store_ascii(
                    slot.ns.values.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                    Some("Persisted by DefaultConfig"),
                    &crate::properties::java_date_utc(wall),
                )
                .into_bytes(),
            })
        } else {
            None
        };
        if let Some(e) = parse_error {
            self.error(Some(name.clone()), None, None, ErrorCause::Parse(e));
        }
        self.queue.push_back(Output::Event(Event::Loaded {
            namespace: name.clone(),
            source,
            release_key: release_key.clone(),
        }));
        if had_before && !changes.is_empty() {
            self.queue
                .push_back(Output::Event(Event::Changed(ChangeEvent {
                    namespace: name,
                    release_key,
                    source,
                    changes,
                })));
        }
        if let Some(w) = persist {
            self.queue.push_back(Output::Event(Event::PersistCache(w)));
        }
    }
}

#[cfg(feature = "yaml")]
fn flatten_view(
    values: &BTreeMap<String, String>,
    previous: &BTreeMap<String, String>,
    error: &mut Option<String>,
) -> BTreeMap<String, String> {
    match values.get(CONTENT_KEY) {
        None => BTreeMap::new(),
        Some(text) => match crate::yaml::flatten(text) {
            Ok(m) => m,
            Err(e) => {
                // As the Java client: keep the previous flattened properties.
                *error = Some(alloc::format!("YAML: {e}"));
                previous.clone()
            }
        },
    }
}

#[cfg(not(feature = "yaml"))]
fn flatten_view(
    values: &BTreeMap<String, String>,
    _previous: &BTreeMap<String, String>,
    _error: &mut Option<String>,
) -> BTreeMap<String, String> {
    values.clone()
}
