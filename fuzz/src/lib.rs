//! What the fuzz targets share: a core client whose requests the fuzzer answers, with the
//! core's promises checked after every step (docs/protocol.md#deadlines and the crate docs
//! of `apolloconf-core`):
//!
//! - `poll_output` reaches `Output::Timeout` within a bounded number of calls;
//! - request ids are never reused, and a closed client sends nothing;
//! - a deadline that has passed finds work: woken at it, the client does something or asks
//!   for a later instant (no busy loop);
//! - reads agree: the merged lookup is the first namespace holding a key, each namespace's
//!   `get` is its properties view, and a change event's new values are what is held after
//!   it (when no later event replaced them);
//! - a cache file the core asks to write loads back to the values it came from.

use std::collections::{BTreeMap, BTreeSet};

use apolloconf_core::{
    Client, Config, Event, HttpRequest, HttpResponse, Input, Instant, Output, RequestKind,
    TransportError, TransportErrorKind, properties, view,
};

/// The app id every target uses.
pub const APP: &str = "fuzz";

/// A client and the requests it is waiting on.
pub struct Driver {
    /// The core under test.
    pub client: Client,
    /// Host time in ms.
    pub now: u64,
    /// Requests sent and not answered yet, oldest first.
    pub pending: Vec<HttpRequest>,
    ids: BTreeSet<u64>,
    deadline: Option<Instant>,
}

/// Upper bound on `poll_output` calls per drain.
const DRAIN_LIMIT: usize = 100_000;

impl Driver {
    /// A client of `namespaces` talking to two config services directly.
    pub fn direct(namespaces: &[&str]) -> Driver {
        Driver::new(
            Config::builder(APP)
                .config_service("http://cs0:8080,http://cs1:8080")
                .namespaces(namespaces.iter().copied()),
        )
    }

    /// A client of `namespaces` that discovers its config services from a meta server.
    pub fn meta(namespaces: &[&str]) -> Driver {
        Driver::new(
            Config::builder(APP)
                .meta_server("http://meta0:8080,http://meta1:8080")
                .namespaces(namespaces.iter().copied()),
        )
    }

    fn new(builder: apolloconf_core::ConfigBuilder) -> Driver {
        let config = builder.seed(7).wall_clock(1_700_000_000_000).build();
        let client = match Client::new(config, Instant::ZERO) {
            Ok(c) => c,
            Err(e) => panic!("a valid configuration was refused: {e}"),
        };
        let mut d = Driver {
            client,
            now: 0,
            pending: Vec::new(),
            ids: BTreeSet::new(),
            deadline: None,
        };
        d.drain();
        d
    }

    /// Drain the outputs, checking each; returns the deadline.
    pub fn drain(&mut self) -> Option<Instant> {
        let mut held: BTreeMap<String, BTreeMap<String, Option<String>>> = BTreeMap::new();
        for _ in 0..DRAIN_LIMIT {
            match self.client.poll_output() {
                Output::Request(r) => {
                    assert!(!self.client.is_closed(), "a closed client sent {r:?}");
                    assert!(self.ids.insert(r.id.get()), "request id reused: {r:?}");
                    self.pending.push(r);
                }
                Output::Event(e) => check_event(&e, &mut held),
                Output::Timeout(d) => {
                    self.deadline = d;
                    self.check_reads(&held);
                    return d;
                }
                _ => {}
            }
        }
        panic!("poll_output did not reach a timeout in {DRAIN_LIMIT} calls");
    }

    /// Advance the host clock by `ms` and deliver a timeout; a deadline that has passed
    /// must lead somewhere.
    pub fn advance(&mut self, ms: u64) {
        self.now = self.now.saturating_add(ms);
        let before = (self.ids.len(), self.deadline);
        let due = self.deadline.is_some_and(|d| d.as_millis() <= self.now);
        let _ = self
            .client
            .handle_input(Input::Timeout(Instant::from_millis(self.now)));
        let after = self.drain();
        if due {
            let moved = self.ids.len() > before.0
                || after.is_none_or(|a| a.as_millis() > self.now)
                || after != before.1;
            assert!(
                moved,
                "woken at its deadline {:?} (now {}), the client did nothing and asks for {after:?}",
                before.1, self.now
            );
        }
    }

    /// Answer the oldest pending request of `kind` (any kind with `None`); false when there
    /// is none.
    pub fn answer(
        &mut self,
        kind: Option<fn(&RequestKind) -> bool>,
        result: Result<(u16, &[u8]), TransportErrorKind>,
    ) -> bool {
        let Some(i) = self
            .pending
            .iter()
            .position(|r| kind.is_none_or(|k| k(&r.kind)))
        else {
            return false;
        };
        let r = self.pending.remove(i);
        let result = match result {
            Ok((status, body)) => Ok(HttpResponse { status, body }),
            Err(kind) => Err(TransportError::new(kind, "fuzz")),
        };
        let now = Instant::from_millis(self.now);
        let answered = self.client.handle_input(Input::Response {
            id: r.id,
            now,
            result,
        });
        assert!(
            answered.is_ok(),
            "an issued request was refused: {answered:?}"
        );
        self.drain();
        true
    }

    /// The merged and per-namespace reads agree with the namespaces' properties, and the
    /// values a change event announced in this drain are the ones held.
    fn check_reads(&self, announced: &BTreeMap<String, BTreeMap<String, Option<String>>>) {
        let merged = view::merged(self.client.namespaces());
        for (k, v) in &merged {
            assert_eq!(self.client.get(k), Some(*v), "merged lookup of {k:?}");
        }
        for ns in self.client.namespaces() {
            for (k, v) in ns.properties() {
                assert_eq!(ns.get(k), Some(v));
            }
            let keys: Vec<&str> = ns.properties().keys().collect();
            assert!(
                keys.windows(2).all(|w| w[0] < w[1]),
                "{}: keys not strictly in order",
                ns.name()
            );
            if let Some(changes) = announced.get(ns.name()) {
                for (k, new) in changes {
                    assert_eq!(
                        ns.get(k),
                        new.as_deref(),
                        "{}: {k:?} is not what its change event said",
                        ns.name()
                    );
                }
            }
        }
    }
}

/// Checks one event; records what change events announce (the last word per key wins).
fn check_event(e: &Event, held: &mut BTreeMap<String, BTreeMap<String, Option<String>>>) {
    match e {
        Event::Changed(c) => {
            assert!(!c.changes.is_empty(), "an empty change event: {c:?}");
            let keys: Vec<&str> = c.changes.iter().map(|ch| ch.key.as_str()).collect();
            assert!(
                keys.windows(2).all(|w| w[0] < w[1]),
                "changes not sorted by key"
            );
            let ns = held.entry(c.namespace.clone()).or_default();
            for ch in &c.changes {
                assert_ne!(ch.old, ch.new, "a change that changes nothing: {ch:?}");
                ns.insert(ch.key.clone(), ch.new.clone());
            }
        }
        Event::Loaded { namespace, .. } => {
            // New values replace whatever an earlier event of this drain said.
            held.remove(namespace);
        }
        Event::PersistCache(w) => {
            assert!(
                !w.file_name.contains('/') && !w.file_name.contains('\\'),
                "cache file name with a separator: {:?}",
                w.file_name
            );
            assert!(w.contents.is_ascii(), "cache file is not ASCII");
            if let Err(err) = properties::load_latin1(&w.contents) {
                panic!("the cache file the core wrote does not load: {err}");
            }
        }
        _ => {}
    }
}

/// Whether a request is a `/configs` fetch.
pub fn is_configs(k: &RequestKind) -> bool {
    matches!(k, RequestKind::Configs { .. })
}

/// Whether a request is the long poll.
pub fn is_poll(k: &RequestKind) -> bool {
    matches!(k, RequestKind::Notifications)
}

/// Whether a request is discovery.
pub fn is_discovery(k: &RequestKind) -> bool {
    matches!(k, RequestKind::Discovery)
}

/// A valid `/configs` body of `namespace` with one key.
pub fn configs_body(namespace: &str, release: &str, key: &str, value: &str) -> Vec<u8> {
    format!(
        r#"{{"appId":"{APP}","cluster":"default","namespaceName":"{namespace}","configurations":{{"{key}":"{value}"}},"releaseKey":"{release}"}}"#
    )
    .into_bytes()
}
