//! The hooks bindings use: fork preparation and restart, fallible listeners, event
//! callbacks, the snapshot version, `changes()` ending at close, `Error::setting`.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apolloconf::{Client, Env, Error, Event, Interest};
use common::{APP, builder, server, wait_until};

const WAIT: Duration = Duration::from_secs(10);

fn publish(s: &apolloconf_testserver::TestServer, timeout: &str) {
    s.admin()
        .publish(APP, "default", "application", [("timeout", timeout)])
        .expect("publish");
}

/// The child's side of a fork, simulated in one process: the parked parent threads stay
/// parked (their resume signal is forgotten, as in a real child where they do not exist),
/// and the client restarts on new threads from the state handed over, with the long poll
/// that was in flight retried.
#[test]
fn after_fork_in_child_restarts_from_the_parked_state() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let client = builder(&s.url(), dir.path()).build().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    client.on_change(Interest::all().keys(["timeout"]), move |e| {
        seen2.lock().unwrap().push(e.changes[0].new.clone());
    });
    publish(&s, "1");
    assert!(wait_until(WAIT, || client.get("timeout").as_deref() == Some("1")));
    // The long poll is held by the server now: one request in flight.
    assert!(wait_until(WAIT, || client.metrics().requests_in_flight >= 1));

    client.prepare_fork().unwrap();
    client.after_fork_in_child().unwrap();
    assert_eq!(client.get("timeout").as_deref(), Some("1"), "values kept");
    assert!(
        wait_until(WAIT, || client.metrics().requests_in_flight == 1),
        "a new long poll"
    );

    publish(&s, "2");
    assert!(wait_until(WAIT, || client.get("timeout").as_deref() == Some("2")));
    assert!(wait_until(WAIT, || seen.lock().unwrap().len() == 2));
    assert_eq!(
        *seen.lock().unwrap(),
        [Some("1".to_string()), Some("2".to_string())]
    );
    // The long poll lost in the fork was retried as a failure; no other error.
    let last = client
        .metrics()
        .last_error
        .expect("the lost request is reported");
    assert!(last.to_string().contains("forked"), "{last}");
    client.close();
    assert!(client.is_closed());
    assert_eq!(client.get("timeout").as_deref(), Some("2"));
}

/// The parent's side: both threads resume and the client goes on.
#[test]
fn prepare_then_resume_in_the_parent() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let client = builder(&s.url(), dir.path()).build().unwrap();
    let events = Arc::new(AtomicUsize::new(0));
    let e2 = events.clone();
    client.on_change(Interest::all(), move |_| {
        e2.fetch_add(1, Ordering::SeqCst);
    });
    client.prepare_fork().unwrap();
    publish(&s, "p1");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        events.load(Ordering::SeqCst),
        0,
        "parked: nothing delivered"
    );
    client.after_fork_in_parent();
    assert!(wait_until(WAIT, || client.get("timeout").as_deref() == Some("p1")));
    assert!(wait_until(WAIT, || events.load(Ordering::SeqCst) == 1));
    // Nothing parked: resuming again and preparing a closed client do nothing.
    client.after_fork_in_parent();
    client.close();
    client.prepare_fork().unwrap();
    client.after_fork_in_child().unwrap();
}

/// Without prepare_fork the child cannot restart: a typed error, the client is closed,
/// its values stay readable and close() does not wait for threads that are not there.
#[test]
fn after_fork_in_child_without_prepare() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let client = builder(&s.url(), dir.path()).build().unwrap();
    assert!(matches!(
        client.after_fork_in_child(),
        Err(Error::NotPreparedForFork)
    ));
    assert!(client.is_closed());
    assert_eq!(client.get("timeout").as_deref(), Some("100"));
    assert!(matches!(client.watch("x"), Err(Error::Closed)));
    client.close();
}

/// A listener returning an error is counted and logged; the others still run.
#[test]
fn fallible_listeners_are_counted() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let client = builder(&s.url(), dir.path()).build().unwrap();
    let ok = Arc::new(AtomicUsize::new(0));
    let ok2 = ok.clone();
    client.on_change_fallible(Interest::all(), |_| Err::<(), _>("boom"));
    client.on_change_fallible(Interest::all(), move |_| {
        ok2.fetch_add(1, Ordering::SeqCst);
        Ok::<(), String>(())
    });
    publish(&s, "3");
    assert!(wait_until(WAIT, || ok.load(Ordering::SeqCst) == 1));
    assert!(wait_until(WAIT, || client.metrics().listener_errors == 1));
    assert_eq!(client.metrics().listener_panics, 0);
}

/// on_event sees every event from the start (here the error of a refused server), and the
/// snapshot version moves with new snapshots.
#[test]
fn on_event_and_snapshot_version() {
    let dir = tempfile::tempdir().unwrap();
    let errors = Arc::new(AtomicUsize::new(0));
    let e2 = errors.clone();
    let url = format!("http://127.0.0.1:{}", common::dead_port());
    let client = builder(&url, dir.path())
        .startup_timeout(Duration::from_millis(300))
        .on_event(move |e| {
            if matches!(e, Event::Error(_)) {
                e2.fetch_add(1, Ordering::SeqCst);
            }
        })
        .build()
        .unwrap();
    assert!(wait_until(WAIT, || errors.load(Ordering::SeqCst) >= 1));
    let v = client.snapshot_version();
    assert!(v >= 1);
    assert!(
        wait_until(WAIT, || client.snapshot_version() > v),
        "retries publish new snapshots"
    );
    client.close();
}

/// A `changes()` receiver ends once the client is closed.
#[test]
fn changes_end_at_close() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let client = builder(&s.url(), dir.path()).build().unwrap();
    let rx = client.changes(Interest::all());
    publish(&s, "4");
    assert!(rx.recv_timeout(WAIT).is_ok());
    client.close();
    assert!(matches!(
        rx.recv_timeout(WAIT),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected)
    ));
}

/// Errors name the setting to fix.
#[test]
fn errors_name_their_setting() {
    let base = || {
        Client::builder()
            .environment(Env::empty())
            .server_properties("/nonexistent/apolloconf/server.properties")
            .cache(false)
    };
    let setting = |b: apolloconf::ClientBuilder| b.build().err().and_then(|e| e.setting());
    assert_eq!(setting(base()), Some("app_id"));
    assert_eq!(setting(base().app_id("A")), Some("meta_server"));
    assert_eq!(
        setting(base().app_id("A").config_service("not a url")),
        Some("meta_server/config_service")
    );
    assert_eq!(
        setting(
            base()
                .app_id("A")
                .config_service("http://127.0.0.1:1")
                .namespaces(["a", "a"])
        ),
        Some("namespaces")
    );
    assert_eq!(Error::Closed.setting(), None);
}
