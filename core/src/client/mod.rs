//! The protocol state machine: a router over small parts.
//!
//! Each part owns one concern and answers "when am I due" with one function that serves
//! both as its own guard and as its share of the deadline:
//!
//! | part | file | due when |
//! |---|---|---|
//! | [`Discovery`] | `discovery.rs` | no request in flight, back-off and the discovery rate allow |
//! | [`LongPoll`] | `poll.rs` | background mode, no poll in flight, back-off and the poll rate allow |
//! | [`Fetch`] (one per namespace) | `fetch.rs` | wanted (or its refresh came due), no request in flight, the load rate allows |
//! | [`Requests`] | `requests.rs` | a request's safety net ran out |
//!
//! Per namespace, [`Tracking`] (`tracking.rs`) follows notification ids and
//! [`ReleaseGuard`] (`guard.rs`) holds back stale releases; `pacing.rs` has the back-off,
//! the rate limit and the random source every part is handed. The router routes each
//! answer to the part that owns its request, starts whatever is due, and returns the
//! earliest of the parts' deadlines.

mod discovery;
mod fetch;
mod guard;
mod metrics;
mod pacing;
mod poll;
mod requests;
mod store;
mod tracking;

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::time::Duration;

pub use metrics::{Counter, Metrics};
pub use store::{Namespace, Status};

use crate::config::{Config, ConfigError, Servers, validate_namespace};
use crate::event::{CacheWrite, ChangeEvent, ClientError, ErrorCause, Event, Source};
use crate::io::{
    HttpRequest, HttpResponse, Input, InputError, Output, RequestId, RequestKind, TransportError,
    TransportErrorKind,
};
use crate::namespace::match_key;
use crate::protocol::{self, ConfigPayload};
use crate::time::{Instant, duration_millis};
use crate::values::Values;
use discovery::Discovery;
use fetch::{Fetch, Retry};
use guard::ReleaseGuard;
use pacing::{Rng, is_due};
use poll::LongPoll;
use requests::{Lookup, Owner, Requests};
use tracking::Tracking;

type Answer<'a> = Result<HttpResponse<'a>, TransportError>;

/// A watched namespace with the parts that keep it up to date.
#[derive(Debug, Clone)]
struct Slot {
    ns: Namespace,
    fetch: Fetch,
    tracking: Tracking,
    guard: ReleaseGuard,
    /// How answered notification names are matched to it.
    key: String,
    /// Configured at start (readiness waits for it).
    initial: bool,
    /// Loaded, not found, or its first round of attempts failed.
    settled: bool,
}

impl Slot {
    fn new(name: &str, now: Instant, initial: bool) -> Slot {
        Slot {
            ns: Namespace::new(name),
            fetch: Fetch::new(now),
            tracking: Tracking::default(),
            guard: ReleaseGuard::default(),
            key: match_key(name),
            initial,
            settled: false,
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
    queue: VecDeque<Output>,
    closed: bool,
    services: Vec<String>,
    discovery: Option<Discovery>,
    poll: LongPoll,
    slots: Vec<Slot>,
    requests: Requests,
    ready: bool,
    /// A `refresh()` waits for its fetches: [`Event::Refreshed`] follows when none is left.
    refresh_waiting: bool,
    metrics: Metrics,
    /// The newest plausible notification id seen (ids are one sequence per Apollo).
    newest_id: i64,
}

/// How far beyond the newest id seen a notification id may be and still be recorded.
/// Release message ids come from one database sequence, so a jump of 2^40 is no release
/// but a broken or hostile answer; recorded, it would make the server hold every later
/// poll (it only answers ids beyond the one sent) until a restart
/// (docs/protocol.md#notification-ids).
const MAX_ID_JUMP: i64 = 1 << 40;

impl Client {
    /// Validate `config` and create a client at host time `now`. Nothing is sent until the
    /// host drains [`poll_output`](Client::poll_output).
    pub fn new(config: Config, now: Instant) -> Result<Client, ConfigError> {
        config.validate()?;
        let mut rng = Rng::new(Rng::new(config.seed).next());
        let (services, discovery) = match &config.servers {
            Servers::ConfigService(list) => {
                (list.iter().map(|u| protocol::with_slash(u)).collect(), None)
            }
            Servers::Meta(list) => (Vec::new(), Some(Discovery::new(list, now, &mut rng))),
        };
        Ok(Client {
            start: now,
            now,
            rng,
            queue: VecDeque::new(),
            closed: false,
            services,
            discovery,
            poll: LongPoll::new(now, &config.timing),
            slots: config
                .namespaces
                .iter()
                .map(|n| Slot::new(n, now, true))
                .collect(),
            requests: Requests::new(),
            ready: false,
            refresh_waiting: false,
            metrics: Metrics::default(),
            newest_id: -1,
            cfg: config,
        })
    }

    // ------------------------------------------------------------------ the two verbs

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

    /// The next output. Drain until [`Output::Timeout`]: its instant is when the core
    /// wants [`Input::Timeout`] next; `None` means nothing is due until an answer
    /// arrives or the host calls a command (always the case once closed).
    pub fn poll_output(&mut self) -> Output {
        if let Some(o) = self.queue.pop_front() {
            return o;
        }
        if self.closed {
            return Output::Timeout(None);
        }
        self.advance();
        if self.refresh_waiting && !self.is_refreshing() {
            self.refresh_waiting = false;
            self.queue.push_back(Output::Event(Event::Refreshed));
        }
        match self.queue.pop_front() {
            Some(o) => o,
            None => Output::Timeout(self.deadline()),
        }
    }

    // ------------------------------------------------------------------ commands

    /// Watch one more namespace (it joins the next long poll; its values are fetched at
    /// once). Watching a namespace twice is a no-op.
    pub fn watch(&mut self, namespace: &str) -> Result<(), ConfigError> {
        validate_namespace(namespace)?;
        if self.closed || self.slots.iter().any(|s| s.ns.name() == namespace) {
            return Ok(());
        }
        self.slots.push(Slot::new(namespace, self.now, false));
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
        self.requests.abandon_all();
        self.queue.push_back(Output::Event(Event::Closed));
    }

    /// Check every namespace that no config service has confirmed within `max_age` (or
    /// ever) with a conditional `/configs` request (its release key, so an unchanged
    /// namespace costs a 304). Returns how many were queued; [`Event::Refreshed`] follows
    /// once no fetch is wanted or in flight any more. This is how edge mode stays fresh;
    /// in background mode it forces an early refresh.
    pub fn refresh(&mut self, now: Instant, max_age: Duration) -> usize {
        if self.closed {
            return 0;
        }
        self.set_now(now);
        let now = self.now;
        if let Some(d) = &mut self.discovery {
            // Edge mode re-discovers only here, when it is due (background mode on its own).
            if !self.cfg.background {
                d.want_if_due(now);
            }
        }
        let mut n = 0;
        for slot in &mut self.slots {
            let fresh = slot.ns.last_checked.is_some_and(|t| now < t + max_age);
            if !fresh && slot.fetch.refresh_now(now) {
                n += 1;
            }
        }
        self.refresh_waiting = true;
        n
    }

    /// Replace the random source (instance picks, jitter) with one drawn from `seed`.
    /// A host that copies a running client into another process (the child of a
    /// `fork()`) reseeds the copy, so that copies do not all make the same choices.
    pub fn reseed(&mut self, seed: u64) {
        self.rng = Rng::new(Rng::new(seed).next());
    }

    // ------------------------------------------------------------------ getters

    /// Whether a fetch or a discovery request is wanted or in flight (a
    /// [`refresh`](Client::refresh) is done when this turns false).
    pub fn is_refreshing(&self) -> bool {
        self.discovery.as_ref().is_some_and(Discovery::is_busy)
            || self.slots.iter().any(|s| s.fetch.is_busy())
    }

    /// Whether `close()` was called.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Whether [`Event::Ready`] was emitted.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// The merged lookup ([`crate::view::lookup`]): the first namespace (in configured
    /// order) whose properties view holds `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        crate::view::lookup(self.namespaces(), key)
    }

    /// A watched namespace by its configured name.
    pub fn namespace(&self, name: &str) -> Option<&Namespace> {
        self.namespaces().find(|n| n.name() == name)
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

    /// The cache file name of a namespace (see [`crate::cache::file_name`]), or None when
    /// a part could escape the cache directory.
    pub fn cache_file_name(&self, namespace: &str) -> Option<String> {
        crate::cache::file_name(&self.cfg.app_id, &self.cfg.cluster, namespace)
    }

    /// The cache directory below the cache root (see [`crate::cache::dir`]).
    pub fn cache_dir(&self) -> Option<String> {
        crate::cache::dir(&self.cfg.app_id)
    }

    /// The cache file of a namespace below the cache root,
    /// `{appId}/config-cache/{appId}+{cluster}+{namespace}.properties`.
    pub fn cache_path(&self, namespace: &str) -> Option<String> {
        let dir = self.cache_dir()?;
        let file = self.cache_file_name(namespace)?;
        Some(alloc::format!("{dir}/{file}"))
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

    /// The earliest instant any part is due (clamped to now), or None when nothing is.
    fn deadline(&self) -> Option<Instant> {
        let fetches = self.slots.iter().map(|s| self.fetch_due(s));
        [self.requests.due(), self.discovery_due(), self.poll_due()]
            .into_iter()
            .chain(fetches)
            .flatten()
            .min()
            .map(|d| d.max(self.now))
    }

    /// When discovery is due: in background mode on its schedule, in edge mode only while
    /// no config service is known or a `refresh()` wants it.
    fn discovery_due(&self) -> Option<Instant> {
        let unrestricted = self.cfg.background || self.services.is_empty();
        self.discovery.as_ref()?.due(unrestricted)
    }

    /// When the fetch of `slot` is due (never while no config service is known).
    fn fetch_due(&self, slot: &Slot) -> Option<Instant> {
        if self.services.is_empty() {
            return None;
        }
        slot.fetch.due(self.cfg.background)
    }

    /// When the long poll is due: background mode, some namespace, some config service.
    fn poll_due(&self) -> Option<Instant> {
        let enabled = self.cfg.background && !self.slots.is_empty() && !self.services.is_empty();
        self.poll.due(enabled)
    }

    // ------------------------------------------------------------------ starting work

    fn advance(&mut self) {
        for id in self.requests.expired(self.now) {
            let err = TransportError::new(
                TransportErrorKind::Timeout,
                "no answer from the host in time",
            );
            let _ = self.on_response(id, Err(err));
            self.requests.retire(id);
        }
        self.start_discovery();
        for i in 0..self.slots.len() {
            self.start_fetch(i);
        }
        self.start_poll();
    }

    fn issue(&mut self, kind: RequestKind, owner: Owner, service: String, url: String) {
        let t = &self.cfg.timing;
        let (connect, read) = match kind {
            RequestKind::Discovery => (t.discovery_connect_timeout, t.discovery_read_timeout),
            RequestKind::Configs { .. } => (t.connect_timeout, t.read_timeout),
            RequestKind::Notifications => (t.connect_timeout, t.long_poll_read_timeout),
        };
        let mut headers = Vec::new();
        // Discovery goes to meta servers, which check no access key.
        if let (Some(secret), false) = (&self.cfg.secret, kind == RequestKind::Discovery) {
            let ts = self.wall_clock_ms();
            let pq = crate::url::path_and_query(&url);
            let auth = crate::sign::authorization(&self.cfg.app_id, ts, pq, secret);
            headers.push((String::from("Authorization"), auth));
            headers.push((String::from("Timestamp"), ts.to_string()));
        }
        self.metrics.counter(&kind).sent += 1;
        let id = self.requests.open(owner, service, self.now, connect, read);
        self.queue.push_back(Output::Request(HttpRequest {
            id,
            kind,
            url,
            headers,
            connect_timeout: connect,
            timeout: read,
        }));
    }

    fn start_discovery(&mut self) {
        if !is_due(self.discovery_due(), self.now) {
            return;
        }
        let timing = &self.cfg.timing;
        let Some(meta) = self
            .discovery
            .as_mut()
            .and_then(|d| d.start(self.now, timing))
        else {
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
        self.issue(RequestKind::Discovery, Owner::Discovery, meta, url);
    }

    fn start_fetch(&mut self, i: usize) {
        let Some(slot) = self.slots.get(i) else {
            return;
        };
        if !is_due(self.fetch_due(slot), self.now) {
            return;
        }
        // Drawn for every fetch (used by refresh-started ones) to keep the sequence of
        // random choices independent of why a fetch started.
        let pick = self.rng.below(self.services.len());
        let Some(slot) = self.slots.get_mut(i) else {
            return;
        };
        let service = slot
            .fetch
            .start(self.now, &self.cfg.timing, &self.services, pick);
        slot.tracking.fetch_started();
        let url = configs_url(&self.cfg, slot, &service);
        let kind = RequestKind::Configs {
            namespace: slot.ns.name().to_string(),
        };
        self.issue(kind, Owner::Configs(i), service, url);
    }

    fn start_poll(&mut self) {
        if !is_due(self.poll_due(), self.now) {
            return;
        }
        let service = self
            .poll
            .start(self.now, &self.cfg.timing, &self.services, &mut self.rng);
        self.metrics.long_poll_service = Some(service.clone());
        let notifications = protocol::notifications_param(
            self.slots
                .iter()
                .map(|s| (s.ns.name(), s.tracking.knowledge(s.ns.notification_id))),
        );
        let cfg = &self.cfg;
        let mut url = alloc::format!("{service}notifications/v2");
        crate::url::push_query(
            &mut url,
            &[
                ("cluster", Some(&cfg.cluster)),
                ("dataCenter", cfg.data_center.as_deref()),
                ("appId", Some(&cfg.app_id)),
                ("ip", cfg.ip.as_deref()),
                ("notifications", Some(&notifications)),
            ],
        );
        self.issue(RequestKind::Notifications, Owner::Poll, service, url);
    }

    // ------------------------------------------------------------------ answers

    fn on_response(&mut self, id: RequestId, result: Answer<'_>) -> Result<(), InputError> {
        let req = match self.requests.take(id) {
            Lookup::Live(r) => r,
            Lookup::Retired => return Ok(()),
            Lookup::Unknown if self.closed => return Ok(()),
            Lookup::Unknown => return Err(InputError::UnknownRequest(id)),
        };
        if self.closed {
            return Ok(());
        }
        let counter = match req.owner {
            Owner::Discovery => &mut self.metrics.discovery,
            Owner::Configs(_) => &mut self.metrics.configs,
            Owner::Poll => &mut self.metrics.notifications,
        };
        counter.answered(&result);
        match req.owner {
            Owner::Discovery => self.on_discovery(req.service, result),
            Owner::Configs(i) => self.on_configs(i, req.service, result),
            Owner::Poll => self.on_poll(req.service, result),
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
        if let (ErrorCause::Parse(_), Some(kind)) = (&cause, &request) {
            self.metrics.counter(kind).parse_error += 1;
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

    /// A failure of the `/configs` request of `namespace` to `service`.
    fn configs_error(&mut self, namespace: String, service: String, cause: ErrorCause) {
        let kind = RequestKind::Configs {
            namespace: namespace.clone(),
        };
        self.error(Some(namespace), Some(kind), Some(service), cause);
    }

    fn on_discovery(&mut self, meta: String, result: Answer<'_>) {
        let outcome = match &result {
            Ok(r) if r.status == 200 => match protocol::parse_services(r.body) {
                Ok(list) if !list.is_empty() => Ok(list),
                Ok(_) => Err(ErrorCause::NoServices),
                Err(e) => Err(ErrorCause::Parse(e)),
            },
            _ => Err(failure_cause(&result)),
        };
        let Some(d) = &mut self.discovery else {
            return;
        };
        match outcome {
            Ok(list) => {
                d.succeeded(self.now, &self.cfg.timing);
                if list != self.services {
                    self.services = list.clone();
                    self.queue
                        .push_back(Output::Event(Event::ServicesChanged { services: list }));
                }
            }
            Err(cause) => {
                let all_failed = d.failed(self.now, &self.cfg.timing, &mut self.rng);
                self.error(None, Some(RequestKind::Discovery), Some(meta), cause);
                if self.services.is_empty() && all_failed {
                    // Nothing can be fetched: start-up must not wait for it.
                    for i in 0..self.slots.len() {
                        self.settle(i);
                    }
                }
            }
        }
    }

    /// A namespace has had its first round: Ready once every namespace configured at
    /// start has.
    fn settle(&mut self, i: usize) {
        let Some(slot) = self.slots.get_mut(i) else {
            return;
        };
        if !slot.settled {
            slot.settled = true;
            if slot.ns.status == Status::Loading {
                slot.ns.status = Status::Unavailable;
            }
        }
        if !self.ready && self.slots.iter().all(|s| !s.initial || s.settled) {
            self.ready = true;
            self.queue.push_back(Output::Event(Event::Ready));
        }
    }

    /// A notified namespace got an answer that is not (yet) the new release from an
    /// instance other than the one that notified (which may lag behind): within the lag
    /// window, ask again with back-off, the notifying instance first. The notifying
    /// instance's own answer is authoritative: it has seen the message.
    fn lagging(&mut self, i: usize, service: &str) -> bool {
        let (now, window) = (self.now, self.cfg.timing.lag_window);
        let Some(slot) = self.slots.get_mut(i) else {
            return false;
        };
        if !slot.tracking.may_lag(service, now, window) {
            return false;
        }
        let prefer = slot.tracking.notifier().map(String::from);
        let ctx = Retry::new(&self.cfg, &mut self.rng);
        slot.fetch.retry_elsewhere(now, prefer, ctx);
        true
    }

    fn fetch_done(&mut self, i: usize) {
        let now = self.now;
        let Some(slot) = self.slots.get_mut(i) else {
            return;
        };
        let again = slot.tracking.commit(&mut slot.ns.notification_id);
        slot.ns.last_checked = Some(now);
        slot.fetch.done(now, again, &self.cfg.timing);
        self.settle(i);
    }

    /// The rotation position just after `service` (or after the slot's current position
    /// when `service` is no longer listed).
    fn index_after(&self, service: &str, i: usize) -> usize {
        match self.services.iter().position(|s| s == service) {
            Some(p) => p + 1,
            None => self
                .slots
                .get(i)
                .map_or(0, |s| s.fetch.cursor().wrapping_add(1)),
        }
    }

    fn fetch_failed(&mut self, i: usize, service: String, cause: ErrorCause) {
        let n = self.services.len().max(1);
        let next = self.index_after(&service, i);
        let Some(slot) = self.slots.get_mut(i) else {
            return;
        };
        let ctx = Retry::new(&self.cfg, &mut self.rng);
        let failures = slot.fetch.failed(self.now, next, n, ctx);
        let name = slot.ns.name().to_string();
        self.configs_error(name, service, cause);
        if failures as usize >= n {
            self.settle(i);
        }
    }

    fn on_configs(&mut self, i: usize, service: String, result: Answer<'_>) {
        match &result {
            Ok(r) if r.status == 304 => {
                if !self.lagging(i, &service) {
                    self.fetch_done(i);
                }
            }
            Ok(r) if r.status == 404 => {
                let lagging = self.lagging(i, &service);
                let Some(slot) = self.slots.get_mut(i) else {
                    return;
                };
                if !lagging {
                    slot.ns.status = Status::NotFound;
                }
                let name = slot.ns.name().to_string();
                self.configs_error(name, service, ErrorCause::NotFound);
                if !lagging {
                    self.fetch_done(i);
                }
            }
            Ok(r) if r.status == 200 => match protocol::parse_config(r.body) {
                Ok(body) => self.on_config_body(i, service, body),
                Err(e) => self.fetch_failed(i, service, ErrorCause::Parse(e)),
            },
            _ => {
                let cause = failure_cause(&result);
                self.fetch_failed(i, service, cause);
            }
        }
    }

    fn on_config_body(&mut self, i: usize, service: String, body: protocol::ConfigBody) {
        let Some(slot) = self.slots.get(i) else {
            return;
        };
        // An instance that lags behind may answer a release held before, or an older one.
        let stale = match (slot.ns.release_key(), slot.ns.source()) {
            (Some(held), Source::Server) => slot.guard.is_stale(held, &body.release_key),
            _ => false,
        };
        if stale && self.hold_back_stale(i, &service, &body.release_key) {
            return;
        }
        let values = match body.payload {
            ConfigPayload::Full(m) => m,
            ConfigPayload::Incremental(changes) => {
                // The last change of a key wins; the held values are copied once with
                // every change applied.
                let changes: BTreeMap<&str, Option<&str>> = changes
                    .iter()
                    .map(|c| (c.key.as_str(), c.value.as_deref()))
                    .collect();
                let Some(slot) = self.slots.get(i) else {
                    return;
                };
                match slot.ns.configurations().patched(changes) {
                    Ok(values) => values,
                    Err(e) => {
                        return self.fetch_failed(i, service, ErrorCause::Parse(e.to_string()));
                    }
                }
            }
        };
        if let Some(slot) = self.slots.get_mut(i) {
            let old = slot.ns.take_release_key();
            slot.guard.replaced(old, &body.release_key);
        }
        self.apply(i, values, Some(body.release_key), Source::Server);
        // Progress, but only the notifier (or the end of the lag window) acknowledges the
        // notification: a lagging instance may have answered an intermediate release.
        if !self.lagging(i, &service) {
            self.fetch_done(i);
        }
    }

    /// An instance answered an older release than the one held (or one held before).
    /// Returns true when it must not be applied yet; another instance is asked meanwhile
    /// (whose 304 dismisses the suspicion).
    fn hold_back_stale(&mut self, i: usize, service: &str, key: &str) -> bool {
        let (now, single) = (self.now, self.services.len() <= 1);
        let Some(slot) = self.slots.get_mut(i) else {
            return true;
        };
        if slot
            .guard
            .confirmed(key, service, now, single, &self.cfg.timing)
        {
            return false;
        }
        slot.fetch
            .retry_elsewhere(now, None, Retry::new(&self.cfg, &mut self.rng));
        let name = slot.ns.name().to_string();
        let cause = ErrorCause::StaleRelease(key.to_string());
        self.configs_error(name, service.to_string(), cause);
        true
    }

    fn on_poll(&mut self, service: String, result: Answer<'_>) {
        let parsed = match &result {
            Ok(r) if r.status == 200 => Some(protocol::parse_notifications(r.body)),
            _ => None,
        };
        match (parsed, &result) {
            (Some(Ok(list)), _) => {
                self.poll.answered(self.now);
                for n in list {
                    self.notified(&n, &service);
                }
            }
            (None, Ok(r)) if r.status == 304 => self.poll.not_modified(self.now, &mut self.rng),
            (parsed, _) => {
                let cause = match parsed {
                    Some(Err(e)) => ErrorCause::Parse(e),
                    _ => failure_cause(&result),
                };
                self.metrics.long_poll_service = None;
                self.poll.failed(self.now, &self.cfg.timing, &mut self.rng);
                self.error(None, Some(RequestKind::Notifications), Some(service), cause);
            }
        }
    }

    /// One answered notification: every namespace it names (by match key) that did not
    /// know the id yet is fetched from `service` first.
    ///
    /// An id implausibly far beyond every id seen is not recorded: the namespaces it names
    /// are fetched (their values stay current) and the next poll sends what they had.
    fn notified(&mut self, n: &protocol::Notification, service: &str) {
        let key = match_key(&n.namespace);
        let now = self.now;
        if n.id > self.newest_id.max(0).saturating_add(MAX_ID_JUMP) {
            for slot in self.slots.iter_mut().filter(|s| s.key == key) {
                slot.fetch.notified(now, service);
            }
            let cause = ErrorCause::Parse(alloc::format!(
                "notification id {} for {:?} is implausibly far beyond the newest id seen ({}); not recorded",
                n.id,
                n.namespace,
                self.newest_id
            ));
            self.error(
                None,
                Some(RequestKind::Notifications),
                Some(service.to_string()),
                cause,
            );
            return;
        }
        self.newest_id = self.newest_id.max(n.id);
        for slot in self.slots.iter_mut().filter(|s| s.key == key) {
            let acked = slot.ns.notification_id;
            if slot
                .tracking
                .notified(n.id, &n.messages, service, now, acked)
            {
                slot.fetch.notified(now, service);
            }
        }
    }

    fn on_cache_file(&mut self, namespace: &str, contents: &[u8]) -> Result<(), InputError> {
        let Some(i) = self.slots.iter().position(|s| s.ns.name() == namespace) else {
            return Err(InputError::UnknownNamespace(namespace.to_string()));
        };
        let from_server = self
            .slots
            .get(i)
            .is_some_and(|s| s.ns.source() == Source::Server);
        if self.closed || from_server {
            return Ok(());
        }
        match crate::properties::load_latin1(contents) {
            Ok(values) => self.apply(i, values, None, Source::Cache),
            Err(e) => {
                let cause = ErrorCause::Cache(e.to_string());
                self.error(Some(namespace.to_string()), None, None, cause);
            }
        }
        Ok(())
    }

    /// Install new values, emit `Loaded`, `Changed` (when there was something before) and
    /// `PersistCache` (when server values differ from what is on disk).
    fn apply(&mut self, i: usize, values: Values, release_key: Option<String>, source: Source) {
        let (now, wall) = (self.now, self.wall_clock_ms());
        let yaml = self.cfg.yaml_flattener.map(|f| f.0);
        let Some(slot) = self.slots.get_mut(i) else {
            return;
        };
        let name = slot.ns.name().to_string();
        let had_before = slot.settled || slot.ns.source() != Source::None;
        // Nothing held before: no change event, so no diff to compute (a first load of a
        // million keys would build a million changes only to drop them).
        let installed = slot
            .ns
            .install(values, release_key.clone(), source, now, yaml, had_before);
        let persist = source == Source::Server && (installed.values_changed || !had_before);
        let contents = persist.then(|| cache_contents(&slot.ns, wall));
        if let Some(e) = installed.yaml_error {
            self.error(Some(name.clone()), None, None, ErrorCause::Parse(e));
        }
        self.queue.push_back(Output::Event(Event::Loaded {
            namespace: name.clone(),
            source,
            release_key: release_key.clone(),
        }));
        if had_before && !installed.changes.is_empty() {
            let change = ChangeEvent {
                namespace: name.clone(),
                release_key,
                source,
                changes: installed.changes,
            };
            self.queue.push_back(Output::Event(Event::Changed(change)));
        }
        let file_name = self.cache_file_name(&name);
        if let (Some(contents), Some(file_name)) = (contents, file_name) {
            let w = CacheWrite {
                namespace: name,
                file_name,
                contents,
            };
            self.queue.push_back(Output::Event(Event::PersistCache(w)));
        }
    }
}

/// The bytes of a namespace's cache file, as the Java client writes it.
fn cache_contents(ns: &Namespace, wall_ms: u64) -> Vec<u8> {
    crate::properties::store_ascii(
        ns.configurations().iter(),
        Some("Persisted by DefaultConfig"),
        &crate::properties::java_date_utc(wall_ms),
    )
    .into_bytes()
}

/// The `/configs` URL of a slot's namespace on `service`.
fn configs_url(cfg: &Config, slot: &Slot, service: &str) -> String {
    let esc = crate::url::escape_path_segment;
    let mut url = alloc::format!(
        "{service}configs/{}/{}/{}",
        esc(&cfg.app_id),
        esc(&cfg.cluster),
        esc(slot.ns.name())
    );
    let messages = slot.tracking.messages().map(protocol::messages_param);
    // Only a release from a server is sent back (a 304 then keeps it); cache values
    // have no release key.
    let release_key = match slot.ns.source() {
        Source::Server => slot.ns.release_key(),
        _ => None,
    };
    crate::url::push_query(
        &mut url,
        &[
            ("dataCenter", cfg.data_center.as_deref()),
            ("ip", cfg.ip.as_deref()),
            ("messages", messages.as_deref()),
            ("releaseKey", release_key),
            ("label", cfg.label.as_deref()),
        ],
    );
    url
}

fn failure_cause(result: &Answer<'_>) -> ErrorCause {
    match result {
        Err(e) => ErrorCause::Transport(e.clone()),
        Ok(r) if r.status == 401 => ErrorCause::Unauthorized,
        Ok(r) if r.status == 404 => ErrorCause::NotFound,
        Ok(r) => ErrorCause::Status(r.status),
    }
}
