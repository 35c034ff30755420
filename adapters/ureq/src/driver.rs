//! The driver thread (owns the core), the HTTP workers and the listener dispatcher.

use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use apolloconf_core::{
    CacheWrite, ChangeEvent, Client as Core, ClientError, ConfigError, ErrorCause, Event,
    HttpRequest, HttpResponse, Input, Instant, Interest, Output, RequestId, TransportError,
    TransportErrorKind,
};

use crate::cache::CacheDir;
use crate::snapshot::{Namespace, Snapshot};

/// Messages to the driver thread.
pub(crate) enum Msg {
    Response {
        id: RequestId,
        result: Result<(u16, Vec<u8>), TransportError>,
    },
    Watch {
        namespace: String,
        reply: Sender<Result<(), ConfigError>>,
    },
    Close,
    /// Park for a `fork()`: park the dispatcher (through `dispatcher_resume`), hand a copy
    /// of the protocol state to `parked`, then wait on `resume` (until its sender is
    /// dropped) holding no lock.
    Pause {
        parked: Sender<ForkState>,
        resume: Receiver<()>,
        dispatcher_resume: Receiver<()>,
    },
}

/// Messages to the dispatcher thread.
pub(crate) enum Dispatch {
    /// Events to deliver, in order.
    Events(Vec<Event>),
    /// Say so on `parked`, then wait on `resume` (until its sender is dropped).
    Pause {
        parked: Sender<()>,
        resume: Receiver<()>,
    },
}

/// What a driver hands over when it parks for a `fork()`: enough to start an identical
/// driver in the child.
pub(crate) struct ForkState {
    /// A copy of the protocol state.
    pub(crate) core: Core,
    /// Requests in flight (their answers never reach the child).
    pub(crate) live: Vec<RequestId>,
    /// The clock (monotonic time is the same on both sides of a fork).
    pub(crate) clock: Clock,
}

/// A callback for every event ([`crate::ClientBuilder::on_event`]).
pub(crate) type EventCallback = Arc<dyn Fn(&Event) + Send + Sync + 'static>;

/// A listener callback; an `Err` is logged and counted in `listener_errors`.
pub(crate) type Callback = Arc<dyn Fn(&ChangeEvent) -> Result<(), String> + Send + Sync + 'static>;

pub(crate) enum Sink {
    Callback(Callback),
    Channel(Sender<ChangeEvent>),
}

pub(crate) struct Listener {
    pub(crate) id: u64,
    pub(crate) interest: Interest,
    pub(crate) sink: Sink,
}

/// State shared by the handle, the driver, the workers and the dispatcher.
pub(crate) struct Shared {
    pub(crate) snapshot: RwLock<Arc<Snapshot>>,
    /// Bumped after every new snapshot (readers that cache a view of it compare).
    pub(crate) version: AtomicU64,
    pub(crate) listeners: Mutex<Vec<Listener>>,
    pub(crate) event_sinks: Mutex<Vec<Sender<Event>>>,
    /// The builder's `on_event` callbacks (fixed once built).
    pub(crate) event_callbacks: Vec<EventCallback>,
    pub(crate) next_listener: AtomicU64,
    pub(crate) closed: AtomicBool,
    pub(crate) ready: Mutex<bool>,
    pub(crate) ready_cv: Condvar,
    pub(crate) cache_writes: AtomicU64,
    pub(crate) cache_write_failures: AtomicU64,
    pub(crate) cache_read_failures: AtomicU64,
    pub(crate) listener_panics: AtomicU64,
    pub(crate) listener_errors: AtomicU64,
    pub(crate) in_flight: AtomicUsize,
}

impl Shared {
    /// State for a new client with the builder's event sinks and callbacks.
    pub(crate) fn new(
        event_sinks: Vec<Sender<Event>>,
        event_callbacks: Vec<EventCallback>,
    ) -> Shared {
        Shared {
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            version: AtomicU64::new(0),
            listeners: Mutex::new(Vec::new()),
            event_sinks: Mutex::new(event_sinks),
            event_callbacks,
            next_listener: AtomicU64::new(1),
            closed: AtomicBool::new(false),
            ready: Mutex::new(false),
            ready_cv: Condvar::new(),
            cache_writes: AtomicU64::new(0),
            cache_write_failures: AtomicU64::new(0),
            cache_read_failures: AtomicU64::new(0),
            listener_panics: AtomicU64::new(0),
            listener_errors: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// `f` of the current snapshot, without taking a reference to it (a read of one key
    /// needs no more: two atomic operations fewer than [`Shared::snapshot`]).
    pub(crate) fn with_snapshot<T>(&self, f: impl FnOnce(&Snapshot) -> T) -> T {
        f(&self.snapshot.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// One request fewer in flight (never below zero: a worker of the parent of a fork
    /// may still end after the child reset the count).
    fn release_in_flight(&self) {
        let _ = self
            .in_flight
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    }

    fn set_ready(&self) {
        let mut r = self.ready.lock().unwrap_or_else(PoisonError::into_inner);
        *r = true;
        self.ready_cv.notify_all();
    }

    /// Wait until ready (or closed) for at most `timeout`; returns whether ready.
    pub(crate) fn wait_ready(&self, timeout: Duration) -> bool {
        let deadline = crate::deadline(std::time::Instant::now(), timeout);
        let mut r = self.ready.lock().unwrap_or_else(PoisonError::into_inner);
        while !*r {
            let now = std::time::Instant::now();
            if now >= deadline {
                return false;
            }
            r = self
                .ready_cv
                .wait_timeout(r, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }
}

/// Converts between the host clock and the core's [`Instant`].
#[derive(Clone, Copy)]
pub(crate) struct Clock {
    origin: std::time::Instant,
    wall: SystemTime,
}

impl Clock {
    pub(crate) fn new() -> Clock {
        Clock {
            origin: std::time::Instant::now(),
            wall: SystemTime::now(),
        }
    }
    pub(crate) fn now(&self) -> Instant {
        Instant::from_millis(u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX))
    }
    pub(crate) fn wall_ms(&self) -> u64 {
        self.wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
    pub(crate) fn system_time(&self, t: Instant) -> SystemTime {
        self.wall
            .checked_add(Duration::from_millis(t.as_millis()))
            .unwrap_or(self.wall)
    }
}

pub(crate) struct Driver {
    pub(crate) core: Core,
    pub(crate) rx: Receiver<Msg>,
    pub(crate) tx: Sender<Msg>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) agent: ureq::Agent,
    pub(crate) cache: Option<CacheDir>,
    pub(crate) clock: Clock,
    pub(crate) dispatch: Sender<Dispatch>,
    /// Events produced before the thread started (cache read failures).
    pub(crate) pending: Vec<Event>,
    /// HTTP worker threads (finished ones are pruned when new ones start).
    pub(crate) workers: Vec<std::thread::JoinHandle<()>>,
    /// Requests in flight.
    pub(crate) live: Vec<RequestId>,
    /// Cache files waiting to be written.
    pub(crate) writes: WriteBehind,
}

/// Cache writes held back until the client has a quiet moment: a write syncs the file to
/// disk (milliseconds each), so when many namespaces change at once (a release of many
/// namespaces, a recovery) writing each at once would delay the answers behind it. A
/// file changed twice while waiting is written once, with its newest contents.
#[derive(Default)]
pub(crate) struct WriteBehind {
    queued: Vec<CacheWrite>,
    first: Option<std::time::Instant>,
    last: Option<std::time::Instant>,
}

/// Writes wait until nothing new was queued for this long...
const WRITE_QUIET: Duration = Duration::from_millis(20);
/// ...but never longer than this after the first of them.
const WRITE_MAX_DELAY: Duration = Duration::from_millis(250);

impl WriteBehind {
    fn push(&mut self, w: CacheWrite, now: std::time::Instant) {
        match self.queued.iter_mut().find(|q| q.file_name == w.file_name) {
            Some(q) => *q = w,
            None => self.queued.push(w),
        }
        self.first.get_or_insert(now);
        self.last = Some(now);
    }

    /// When the queued writes are due (None when there are none).
    fn due(&self) -> Option<std::time::Instant> {
        let (first, last) = (self.first?, self.last?);
        Some(crate::deadline(last, WRITE_QUIET).min(crate::deadline(first, WRITE_MAX_DELAY)))
    }

    fn take(&mut self) -> Vec<CacheWrite> {
        self.first = None;
        self.last = None;
        std::mem::take(&mut self.queued)
    }
}

/// How long a driver parking for a `fork()` waits for the dispatcher to finish the
/// listener it is running.
const DISPATCHER_PAUSE_LIMIT: Duration = Duration::from_secs(2);

/// How long close waits for workers after interrupting them; only a TCP connect in
/// progress (bounded by the connect timeout) can take this long.
const WORKER_JOIN_LIMIT: Duration = Duration::from_secs(2);

/// Read a namespace's cache file and feed it to the core; failures become events.
pub(crate) fn load_cache(
    core: &mut Core,
    cache: &CacheDir,
    shared: &Shared,
    namespace: &str,
    out: &mut Vec<Event>,
) {
    let Some(name) = core.cache_file_name(namespace) else {
        log::warn!("namespace {namespace:?} cannot be used in a file name; it is not cached");
        return;
    };
    let cache_error = |msg: String| {
        Event::Error(ClientError {
            namespace: Some(namespace.to_string()),
            request: None,
            url: None,
            cause: ErrorCause::Cache(msg),
        })
    };
    let found = cache.read(&name);
    for msg in found.problems {
        shared.cache_read_failures.fetch_add(1, Ordering::Relaxed);
        log::warn!("cache file unusable: {msg}");
        out.push(cache_error(msg));
    }
    if let Some(bytes) = found.bytes {
        if let Err(e) = core.handle_input(Input::CacheFile {
            namespace,
            contents: &bytes,
        }) {
            log::warn!("cache file {name}: {e}");
        }
    }
}

impl Driver {
    pub(crate) fn run(mut self) {
        let pending = std::mem::take(&mut self.pending);
        if !pending.is_empty() {
            let _ = self.dispatch.send(Dispatch::Events(pending));
        }
        loop {
            let deadline = self.drain();
            if self.core.is_closed() {
                break;
            }
            // Checked on every turn, not only on timeouts: answers arriving less than
            // `WRITE_QUIET` apart for a long time must not hold the writes back.
            if self
                .writes
                .due()
                .is_some_and(|t| t <= std::time::Instant::now())
            {
                self.flush_writes();
            }
            // The core's deadline is the same instant its parts check before acting, so a
            // deadline that has passed always finds work: waiting zero cannot spin. Nor can
            // a passed write deadline: the writes are taken when it wakes the thread.
            let core_wait = deadline.map(|d| {
                Duration::from_millis(d.as_millis().saturating_sub(self.clock.now().as_millis()))
            });
            let write_wait = self
                .writes
                .due()
                .map(|t| t.saturating_duration_since(std::time::Instant::now()));
            let wait = match (core_wait, write_wait) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let msg = match wait {
                Some(w) => self.rx.recv_timeout(w),
                None => self.rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match msg {
                Ok(Msg::Response { id, result }) => {
                    self.live.retain(|l| *l != id);
                    let now = self.clock.now();
                    let r = match &result {
                        Ok((status, body)) => Ok(HttpResponse {
                            status: *status,
                            body,
                        }),
                        Err(e) => Err(e.clone()),
                    };
                    if let Err(e) = self
                        .core
                        .handle_input(Input::Response { id, now, result: r })
                    {
                        log::debug!("answer ignored: {e}");
                    }
                }
                Ok(Msg::Watch { namespace, reply }) => {
                    let r = self.core.watch(&namespace);
                    if r.is_ok() {
                        if let Some(cache) = &self.cache {
                            let mut out = Vec::new();
                            load_cache(&mut self.core, cache, &self.shared, &namespace, &mut out);
                            if !out.is_empty() {
                                let _ = self.dispatch.send(Dispatch::Events(out));
                            }
                        }
                    }
                    // Publish the snapshot (and start the fetch) before answering, so the
                    // namespace is listed as soon as `watch` returns.
                    self.drain();
                    let _ = reply.send(r);
                }
                Ok(Msg::Pause {
                    parked,
                    resume,
                    dispatcher_resume,
                }) => self.pause(&parked, &resume, dispatcher_resume),
                Ok(Msg::Close) | Err(RecvTimeoutError::Disconnected) => self.core.close(),
                Err(RecvTimeoutError::Timeout) => {
                    // (Due writes are taken at the top of the loop.)
                    let now = self.clock.now();
                    if deadline.is_some_and(|d| d <= now) {
                        let _ = self.core.handle_input(Input::Timeout(now));
                    }
                }
            }
        }
        self.flush_writes();
        self.shared.closed.store(true, Ordering::SeqCst);
        self.stop_workers();
        self.shared.set_ready();
    }

    /// Park for a `fork()`: first the dispatcher (once it has delivered what came
    /// before), then this thread, after handing a copy of its state to `parked`. Neither
    /// holds a lock while parked, so the child of a fork finds every lock free.
    fn pause(
        &mut self,
        parked: &Sender<ForkState>,
        resume: &Receiver<()>,
        dispatcher_resume: Receiver<()>,
    ) {
        // Neither process would write these after the fork.
        self.flush_writes();
        let (ack_tx, ack_rx) = mpsc::channel();
        let sent = self
            .dispatch
            .send(Dispatch::Pause {
                parked: ack_tx,
                resume: dispatcher_resume,
            })
            .is_ok();
        if sent && ack_rx.recv_timeout(DISPATCHER_PAUSE_LIMIT).is_err() {
            log::warn!(
                "a change listener still runs after {DISPATCHER_PAUSE_LIMIT:?}; forking while it runs"
            );
        }
        let state = ForkState {
            core: self.core.clone(),
            live: self.live.clone(),
            clock: self.clock,
        };
        if parked.send(state).is_ok() {
            // Until the sender is dropped (after the fork, in the parent).
            let _ = resume.recv();
        }
    }

    /// Feed a transport failure for every request that was in flight when the process
    /// forked: in the child nobody performs them. The core retries them as it retries
    /// any failed request.
    pub(crate) fn forget_requests_lost_in_fork(&mut self, lost: &[RequestId]) {
        let now = self.clock.now();
        for id in lost {
            let err = TransportError::new(
                TransportErrorKind::Other,
                "request in flight when the process forked; retried in the child",
            );
            let _ = self.core.handle_input(Input::Response {
                id: *id,
                now,
                result: Err(err),
            });
        }
    }

    /// Interrupt every request in flight (the agent closes its sockets, so blocked reads
    /// return at once) and join the workers.
    fn stop_workers(&mut self) {
        self.agent.clone().shutdown();
        let deadline = crate::deadline(std::time::Instant::now(), WORKER_JOIN_LIMIT);
        while self.workers.iter().any(|h| !h.is_finished()) && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        for h in self.workers.drain(..) {
            if h.is_finished() {
                let _ = h.join();
            } else {
                log::warn!(
                    "an HTTP worker is still connecting after close; it ends on its connect timeout"
                );
            }
        }
    }

    /// Drain the core's outputs; returns the deadline. Cache writes are queued (see
    /// [`WriteBehind`]).
    fn drain(&mut self) -> Option<Instant> {
        let mut events = Vec::new();
        let mut touched: HashSet<String> = HashSet::new();
        let deadline = loop {
            match self.core.poll_output() {
                Output::Request(req) => self.spawn(req),
                Output::Event(Event::PersistCache(w)) => self.queue_write(w),
                Output::Event(e) => {
                    match &e {
                        Event::Loaded { namespace, .. } => {
                            touched.insert(namespace.clone());
                        }
                        Event::Error(err) => {
                            if matches!(err.cause, ErrorCause::Cache(_)) {
                                self.shared
                                    .cache_read_failures
                                    .fetch_add(1, Ordering::Relaxed);
                            }
                            log::warn!(
                                "apollo: {}",
                                crate::settings::redact_credentials(&err.to_string())
                            );
                        }
                        Event::ServicesChanged { services } => {
                            log::info!(
                                "apollo: config services {}",
                                crate::settings::redact_credentials(&format!("{services:?}"))
                            )
                        }
                        _ => {}
                    }
                    events.push(e);
                }
                Output::Timeout(d) => break d,
                _ => {}
            }
        };
        self.publish_snapshot(&touched);
        if events.iter().any(|e| matches!(e, Event::Ready)) {
            self.shared.set_ready();
        }
        if !events.is_empty() {
            let _ = self.dispatch.send(Dispatch::Events(events));
        }
        deadline
    }

    /// Queue a cache file for writing (nothing without a cache directory).
    fn queue_write(&mut self, w: CacheWrite) {
        if self.cache.is_some() {
            self.writes.push(w, std::time::Instant::now());
        }
    }

    /// Write the queued cache files; failures go to the listeners as events.
    fn flush_writes(&mut self) {
        let mut failures = Vec::new();
        for w in self.writes.take() {
            self.persist(&w, &mut failures);
        }
        if !failures.is_empty() {
            let _ = self.dispatch.send(Dispatch::Events(failures));
        }
    }

    fn publish_snapshot(&self, touched: &HashSet<String>) {
        let old = self.shared.snapshot();
        let namespaces = self
            .core
            .namespaces()
            .map(|ns| {
                let reuse = if touched.contains(ns.name()) {
                    None
                } else {
                    old.namespaces.iter().find(|o| o.name() == ns.name())
                };
                // Values only change with a `Loaded` event; the rest is compared.
                let same = |o: &Namespace| {
                    let c = o.core();
                    c.status() == ns.status()
                        && c.last_checked() == ns.last_checked()
                        && c.notification_id() == ns.notification_id()
                };
                match reuse {
                    Some(o) if same(o) => o.clone(),
                    _ => Arc::new(Namespace {
                        inner: ns.clone(),
                        last_update: ns.last_update().map(|t| self.clock.system_time(t)),
                    }),
                }
            })
            .collect::<Vec<_>>();
        // Values only change with a `Loaded` event: the index of the merged lookup stays
        // valid while no namespace was loaded and the list of namespaces is the same.
        let same_list = old.namespaces.len() == namespaces.len()
            && old
                .namespaces
                .iter()
                .zip(&namespaces)
                .all(|(o, n)| o.name() == n.name());
        let index = match &old.index {
            Some(index) if same_list && touched.is_empty() => Some(index.clone()),
            _ => crate::snapshot::merged_index(&namespaces),
        };
        let snap = Snapshot {
            namespaces,
            index,
            core_metrics: self.core.metrics().clone(),
            services: self.core.services().to_vec(),
            ready: self.core.is_ready(),
        };
        *self
            .shared
            .snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(snap);
        self.shared.version.fetch_add(1, Ordering::Release);
    }

    fn persist(&self, w: &CacheWrite, events: &mut Vec<Event>) {
        let Some(cache) = &self.cache else { return };
        match cache.write(&w.file_name, &w.contents) {
            Ok(path) => {
                self.shared.cache_writes.fetch_add(1, Ordering::Relaxed);
                log::debug!("cache written: {}", path.display());
            }
            Err(msg) => {
                self.shared
                    .cache_write_failures
                    .fetch_add(1, Ordering::Relaxed);
                log::warn!("cache file not written (values stay in memory): {msg}");
                events.push(Event::Error(ClientError {
                    namespace: Some(w.namespace.clone()),
                    request: None,
                    url: None,
                    cause: ErrorCause::Cache(msg),
                }));
            }
        }
    }

    fn spawn(&mut self, req: HttpRequest) {
        self.workers.retain(|h| !h.is_finished());
        let tx = self.tx.clone();
        let agent = self.agent.clone();
        let shared = self.shared.clone();
        let id = req.id;
        shared.in_flight.fetch_add(1, Ordering::SeqCst);
        self.live.push(id);
        let spawned = std::thread::Builder::new()
            .name("apolloconf-http".into())
            .spawn(move || {
                let result = crate::http::perform(&agent, &req);
                // After close nobody wants the answer; the thread just ends.
                if !shared.closed.load(Ordering::SeqCst) {
                    let _ = tx.send(Msg::Response { id: req.id, result });
                }
                shared.release_in_flight();
            });
        let spawned = spawned.map(|h| self.workers.push(h));
        if let Err(e) = spawned {
            self.shared.release_in_flight();
            log::error!("could not start an HTTP worker thread: {e}");
            let err =
                TransportError::new(TransportErrorKind::Other, format!("no worker thread: {e}"));
            let _ = self.tx.send(Msg::Response {
                id,
                result: Err(err),
            });
        }
    }
}

/// One listener's share of a change: its id, the filtered event, and where it goes.
type Target = (
    u64,
    Option<ChangeEvent>,
    Option<Callback>,
    Option<Sender<ChangeEvent>>,
);

/// The dispatcher thread: calls listeners outside the driver, so a slow or panicking
/// listener never delays the protocol.
pub(crate) fn dispatch_loop(shared: Arc<Shared>, rx: Receiver<Dispatch>) {
    while let Ok(msg) = rx.recv() {
        let batch = match msg {
            Dispatch::Events(batch) => batch,
            Dispatch::Pause { parked, resume } => {
                if parked.send(()).is_ok() {
                    let _ = resume.recv();
                }
                continue;
            }
        };
        for event in batch {
            {
                let mut sinks = shared
                    .event_sinks
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                sinks.retain(|s| s.send(event.clone()).is_ok());
            }
            for f in &shared.event_callbacks {
                if catch_unwind(AssertUnwindSafe(|| f(&event))).is_err() {
                    shared.listener_panics.fetch_add(1, Ordering::Relaxed);
                    log::error!("an event callback panicked; the client keeps going");
                }
            }
            let Event::Changed(change) = &event else {
                continue;
            };
            // Call listeners without holding the lock: a listener may add or remove listeners.
            let targets: Vec<Target> = {
                let list = shared
                    .listeners
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                list.iter()
                    .map(|l| {
                        let filtered = l.interest.select(change);
                        match &l.sink {
                            Sink::Callback(f) => (l.id, filtered, Some(f.clone()), None),
                            Sink::Channel(s) => (l.id, filtered, None, Some(s.clone())),
                        }
                    })
                    .collect()
            };
            let mut gone = Vec::new();
            for (id, filtered, callback, channel) in targets {
                let Some(ev) = filtered else { continue };
                if let Some(f) = callback {
                    match catch_unwind(AssertUnwindSafe(|| f(&ev))) {
                        Ok(Ok(())) => {}
                        Ok(Err(message)) => {
                            shared.listener_errors.fetch_add(1, Ordering::Relaxed);
                            log::error!(
                                "a change listener failed on namespace {}; the client keeps going: {message}",
                                ev.namespace
                            );
                        }
                        Err(_) => {
                            shared.listener_panics.fetch_add(1, Ordering::Relaxed);
                            log::error!(
                                "a change listener panicked on namespace {}; the client keeps going",
                                ev.namespace
                            );
                        }
                    }
                } else if let Some(s) = channel {
                    if s.send(ev).is_err() {
                        gone.push(id);
                    }
                }
            }
            if !gone.is_empty() {
                shared
                    .listeners
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .retain(|l| !gone.contains(&l.id));
            }
        }
    }
    shared
        .event_sinks
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clear();
    // The client is closed: receivers of `changes()` see the end of their channel.
    shared
        .listeners
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .retain(|l| matches!(l.sink, Sink::Callback(_)));
}

pub(crate) type Channels = (
    Sender<Msg>,
    Receiver<Msg>,
    Sender<Dispatch>,
    Receiver<Dispatch>,
);

/// Channels for a new driver.
pub(crate) fn channels() -> Channels {
    let (tx, rx) = mpsc::channel();
    let (dtx, drx) = mpsc::channel();
    (tx, rx, dtx, drx)
}
