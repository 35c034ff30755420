//! What a large release costs the core (docs/protocol.md#held-values): the bytes allocated
//! at the peak of handling a `/configs` answer of a million small keys, counted by the
//! global allocator. Allocations are counted, not timed or sampled, so the numbers are
//! the same on every run.
//!
//! The body itself is held by the host and is not counted; with it, the peak stays within
//! four times the body (docs/protocol.md#held-values).

use std::fmt::Write as _;

use apolloconf_core::{Client, Config, Event, Input, Instant, Output, RequestKind, Source};
use peakmem_alloc::{INSTRUMENTED_SYSTEM, PeakMemAlloc, PeakMemAllocTrait};

#[global_allocator]
static ALLOC: &PeakMemAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

const KEYS: usize = 1_000_000;

/// A full `/configs` answer with `KEYS` pairs `"k{i}":"{i % 10}"` (`changed`: that key's
/// value is `x`), listed in an order that is not the keys' order.
fn body(release_key: &str, changed: Option<usize>) -> String {
    let mut b = String::with_capacity(16 * KEYS);
    b.push_str(
        r#"{"appId":"app","cluster":"default","namespaceName":"application","configurations":{"#,
    );
    for i in 0..KEYS {
        if i > 0 {
            b.push(',');
        }
        if Some(i) == changed {
            let _ = write!(b, r#""k{i}":"x""#);
        } else {
            let _ = write!(b, r#""k{i}":"{}""#, i % 10);
        }
    }
    let _ = write!(b, r#"}},"releaseKey":"{release_key}"}}"#);
    b
}

/// Drain the client; the id of the `/configs` request asked for, and the events.
fn drain(c: &mut Client) -> (Option<apolloconf_core::RequestId>, Vec<Event>) {
    let (mut configs, mut events) = (None, Vec::new());
    for _ in 0..1_000 {
        match c.poll_output() {
            Output::Request(r) if matches!(r.kind, RequestKind::Configs { .. }) => {
                configs = Some(r.id)
            }
            Output::Request(_) => {}
            Output::Event(e) => events.push(e),
            Output::Timeout(_) => return (configs, events),
            _ => {}
        }
    }
    panic!("the client never went idle");
}

/// Answer `id` with `body` at `now`; the bytes allocated at the peak of handling it and
/// draining the outputs, and the events (a `Loaded` from the server among them).
fn peak_of_answer(
    c: &mut Client,
    id: apolloconf_core::RequestId,
    body: &str,
    now: u64,
) -> (usize, Vec<Event>) {
    ALLOC.reset_peak_memory();
    c.handle_input(Input::Response {
        id,
        now: Instant::from_millis(now),
        result: Ok(apolloconf_core::HttpResponse {
            status: 200,
            body: body.as_bytes(),
        }),
    })
    .expect("answer accepted");
    let (_, events) = drain(c);
    let peak = ALLOC.get_peak_memory();
    assert!(
        events.iter().any(|e| matches!(
            e,
            Event::Loaded {
                source: Source::Server,
                ..
            }
        )),
        "no Loaded event in {} events",
        events.len()
    );
    (peak, events)
}

#[test]
fn a_million_small_keys_cost_a_small_multiple_of_their_body() {
    let cfg = Config::builder("app")
        .config_service("http://cs:8080")
        .build();
    let mut c = Client::new(cfg, Instant::ZERO).expect("valid config");
    let (id, _) = drain(&mut c);
    let id = id.expect("a /configs request at start");

    // The first release: values, the cache file's bytes, the Loaded event.
    let first = body("r1", None);
    let (peak, _) = peak_of_answer(&mut c, id, &first, 1);
    let ns = c.namespace("application").expect("watched");
    assert_eq!(ns.properties().len(), KEYS);
    assert_eq!(ns.get("k123456"), Some("6"));
    let held = ns.properties().allocated_bytes();
    println!(
        "first release: body {:.1} MB, peak {:.1} MB ({:.2}x), values held {:.1} MB",
        first.len() as f64 / 1e6,
        peak as f64 / 1e6,
        peak as f64 / first.len() as f64,
        held as f64 / 1e6
    );
    // Each pair costs its text and about 6 bytes, less than its place in the body.
    assert!(
        held < first.len() * 11 / 10,
        "values held: {held} bytes for a body of {}",
        first.len()
    );
    assert!(
        peak < first.len() * 3,
        "peak {peak} bytes for a body of {}",
        first.len()
    );
    drop(first);

    // A second release of the same size with one value changed, after a notification: old
    // and new values are held at once while the one change is found.
    let mut now = 2;
    let id = loop {
        c.handle_input(Input::Timeout(Instant::from_millis(now)))
            .expect("timeout accepted");
        let (id, _) = drain(&mut c);
        if let Some(id) = id {
            break id;
        }
        now += 60_000;
        assert!(now < 24 * 3_600_000, "no refresh of the namespace in a day");
    };
    let second = body("r2", Some(777));
    let (peak, events) = peak_of_answer(&mut c, id, &second, now);
    let changes = events
        .into_iter()
        .find_map(|e| match e {
            Event::Changed(ch) => Some(ch.changes),
            _ => None,
        })
        .expect("a change event");
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].key, "k777");
    assert_eq!(changes[0].new.as_deref(), Some("x"));
    println!(
        "second release: peak {:.1} MB ({:.2}x)",
        peak as f64 / 1e6,
        peak as f64 / second.len() as f64
    );
    assert!(
        peak < second.len() * 3,
        "peak {peak} bytes for a body of {}",
        second.len()
    );
}
