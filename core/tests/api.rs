//! The rules the core offers its hosts (so that no host keeps a copy): merged lookups,
//! listener interests, the cluster rule, the cache layout, the spellings hosts show, and
//! the edge-mode signals (`Output::Timeout(None)` at rest, `Event::Refreshed`).

mod sim;

use std::time::Duration;

use apolloconf_core::{
    Change, ChangeEvent, ChangeKind, Config, ErrorCause, Event, Instant, Interest, Output,
    RequestKind, Source, Status, TransportError, TransportErrorKind, cache, effective_cluster,
    view,
};
use sim::{Harness, Mode, Sim};

#[test]
fn merged_lookup_takes_the_first_namespace_that_holds_the_key() {
    let mut sim = Sim::new("app", 1);
    sim.publish(0, "first", &[("shared", "from first"), ("only1", "1")]);
    sim.publish(0, "second", &[("shared", "from second"), ("only2", "2")]);
    let cfg = Harness::config_direct(&sim)
        .namespaces(["first", "second"])
        .build();
    let mut h = Harness::new(cfg, sim);
    h.run_for(1_000);
    assert_eq!(h.client.get("shared"), Some("from first"));
    assert_eq!(h.client.get("only2"), Some("2"));
    assert_eq!(h.client.get("nowhere"), None);
    let mut reversed: Vec<_> = h.client.namespaces().collect();
    reversed.reverse();
    assert_eq!(
        view::lookup(reversed.iter().copied(), "shared"),
        Some("from second")
    );
    let merged = view::merged(h.client.namespaces());
    let keys: Vec<_> = merged.iter().map(|(k, v)| (*k, *v)).collect();
    assert_eq!(
        keys,
        [("only1", "1"), ("only2", "2"), ("shared", "from first")]
    );
    assert_eq!(
        view::merged_iter(h.client.namespaces()).collect::<Vec<_>>(),
        keys
    );
}

#[test]
fn merged_pairs_walk_the_namespaces_side_by_side() {
    let mut sim = Sim::new("app", 1);
    sim.publish(0, "a", &[("b", "a"), ("d", "a"), ("f", "a")]);
    sim.publish(0, "b", &[("a", "b"), ("b", "b"), ("c", "b"), ("z", "b")]);
    sim.publish(
        0,
        "c",
        &[("", "c"), ("a", "c"), ("d", "c"), ("e", "c"), ("z", "c")],
    );
    let cfg = Harness::config_direct(&sim)
        .namespaces(["a", "b", "c", "empty"])
        .build();
    let mut h = Harness::new(cfg, sim);
    h.run_for(1_000);
    let pairs: Vec<_> = view::merged_iter(h.client.namespaces()).collect();
    assert_eq!(
        pairs,
        [
            ("", "c"),
            ("a", "b"),
            ("b", "a"),
            ("c", "b"),
            ("d", "a"),
            ("e", "c"),
            ("f", "a"),
            ("z", "b")
        ]
    );
    for (k, v) in &pairs {
        assert_eq!(view::lookup(h.client.namespaces(), k), Some(*v));
    }
    assert_eq!(view::merged_iter(std::iter::empty()).next(), None);
}

fn change(key: &str) -> Change {
    Change {
        key: key.into(),
        old: None,
        new: Some("v".into()),
        kind: ChangeKind::Added,
    }
}

#[test]
fn interest_by_keys_prefixes_and_namespace() {
    let event = ChangeEvent {
        namespace: "application".into(),
        release_key: Some("k".into()),
        source: Source::Server,
        changes: vec![change("db.url"), change("db.user"), change("timeout")],
    };
    let keys = |i: &Interest| -> Option<Vec<String>> {
        i.select(&event)
            .map(|e| e.changes.into_iter().map(|c| c.key).collect())
    };
    assert_eq!(keys(&Interest::all()).map(|k| k.len()), Some(3));
    assert_eq!(
        keys(&Interest::all().prefixes(["db."])),
        Some(vec!["db.url".into(), "db.user".into()])
    );
    assert_eq!(
        keys(&Interest::all().keys(["timeout"]).prefixes(["db.u"])),
        Some(vec!["db.url".into(), "db.user".into(), "timeout".into()])
    );
    assert_eq!(keys(&Interest::all().keys(["other"])), None);
    let here = Interest::all().namespace("application");
    assert!(!here.is_all());
    assert_eq!(keys(&here).map(|k| k.len()), Some(3));
    assert_eq!(keys(&Interest::all().namespace("other")), None);
    assert_eq!(
        keys(&Interest::all().namespace("application").keys(["timeout"])),
        Some(vec!["timeout".into()])
    );
    let selected = here.select(&event).unwrap();
    assert_eq!(selected.release_key.as_deref(), Some("k"));
    assert_eq!(selected.source, Source::Server);
}

#[test]
fn the_data_center_stands_in_for_a_missing_cluster() {
    assert_eq!(effective_cluster(None, None), "default");
    assert_eq!(effective_cluster(None, Some("dc1")), "dc1");
    assert_eq!(effective_cluster(Some("c1"), Some("dc1")), "c1");
    assert_eq!(effective_cluster(Some("  "), Some("dc1")), "dc1");
    assert_eq!(effective_cluster(Some(""), Some(" ")), "default");
    let cfg = |b: apolloconf_core::ConfigBuilder| b.build();
    let base = || Config::builder("app").config_service("http://cs:8080");
    assert_eq!(cfg(base()).cluster(), "default");
    assert_eq!(cfg(base().data_center("dc1")).cluster(), "dc1");
    assert_eq!(cfg(base().data_center("dc1").cluster("c1")).cluster(), "c1");
    assert_eq!(cfg(base().cluster("c1").data_center("dc1")).cluster(), "c1");
    assert_eq!(cfg(base().data_center("dc1")).data_center(), Some("dc1"));
}

#[test]
fn cache_layout() {
    let cfg = Config::builder("SampleApp")
        .config_service("http://cs:8080")
        .data_center("dc1")
        .namespaces(["application", "db.yaml", "../x"])
        .build();
    let client = apolloconf_core::Client::new(cfg, Instant::ZERO).unwrap();
    assert_eq!(
        client.cache_dir().as_deref(),
        Some("SampleApp/config-cache")
    );
    assert_eq!(
        client.cache_path("db.yaml").as_deref(),
        Some("SampleApp/config-cache/SampleApp+dc1+db.yaml.properties")
    );
    assert_eq!(client.cache_path("../x"), None);
    assert_eq!(cache::dir("a/b"), None);
    assert!(!cache::DEFAULT_ROOT.is_empty());
    assert_eq!(cache::SUBDIR, "config-cache");
}

#[test]
fn spellings_hosts_show() {
    assert_eq!(Source::None.as_str(), "none");
    assert_eq!(Source::Cache.as_str(), "cache");
    assert_eq!(Source::Server.as_str(), "server");
    assert_eq!(Status::Loading.as_str(), "loading");
    assert_eq!(Status::Loaded.as_str(), "loaded");
    assert_eq!(Status::NotFound.as_str(), "not-found");
    assert_eq!(Status::Unavailable.as_str(), "unavailable");
    assert_eq!(ChangeKind::Added.as_str(), "added");
    assert_eq!(ChangeKind::Deleted.java_name(), "DELETED");
    assert_eq!(ChangeKind::Modified.java_name(), "MODIFIED");
    assert_eq!(RequestKind::Discovery.as_str(), "discovery");
    assert_eq!(RequestKind::Notifications.as_str(), "notifications");
    let configs = RequestKind::Configs {
        namespace: "x".into(),
    };
    assert_eq!(configs.as_str(), "configs");
    let redirect = TransportError::new(TransportErrorKind::Redirect, "not followed");
    assert_eq!(ErrorCause::Transport(redirect).code(), "BAD_RESPONSE");
    assert_eq!(ErrorCause::Status(302).code(), "BAD_RESPONSE");
}

/// Drain the client; the outputs and the final deadline.
fn drain(c: &mut apolloconf_core::Client) -> (Vec<Output>, Option<Instant>) {
    let mut out = vec![];
    loop {
        match c.poll_output() {
            Output::Timeout(d) => return (out, d),
            o => out.push(o),
        }
    }
}

#[test]
fn edge_mode_rests_without_a_timer_and_reports_finished_refreshes() {
    let mut sim = Sim::new("app", 2);
    sim.publish(0, "application", &[("k", "v")]);
    let cfg = Harness::config_direct(&sim).background(false).build();
    let mut h = Harness::new(cfg, sim);
    h.run_for(1_000);
    assert_eq!(h.client.get("k"), Some("v"));
    let (out, deadline) = drain(&mut h.client);
    assert!(out.is_empty());
    assert_eq!(deadline, None, "at rest: no timer");

    // A refresh with work: Refreshed once its fetch is answered, not before.
    let at = Instant::from_millis(h.now);
    assert_eq!(h.client.refresh(at, Duration::ZERO), 1);
    let refreshed = |h: &Harness| {
        h.events
            .iter()
            .filter(|(_, e)| *e == Event::Refreshed)
            .count()
    };
    h.run_for(1);
    assert_eq!(refreshed(&h), 0, "the fetch is still in flight");
    h.run_for(1_000);
    assert_eq!(refreshed(&h), 1);
    assert!(!h.client.is_refreshing());

    // Nothing older than an hour: Refreshed at once, still no timer.
    let at = Instant::from_millis(h.now);
    assert_eq!(h.client.refresh(at, Duration::from_secs(3_600)), 0);
    let (out, deadline) = drain(&mut h.client);
    assert_eq!(out, [Output::Event(Event::Refreshed)]);
    assert_eq!(deadline, None);

    // Two overlapping calls: one Refreshed (the one drained above by hand is not in the
    // harness's record).
    let at = Instant::from_millis(h.now);
    h.client.refresh(at, Duration::ZERO);
    h.client.refresh(at, Duration::ZERO);
    h.run_for(1_000);
    assert_eq!(refreshed(&h), 2);
}

#[test]
fn edge_mode_refresh_after_failures_still_finishes() {
    let mut sim = Sim::new("app", 2);
    sim.publish(0, "application", &[("k", "v")]);
    let cfg = Harness::config_direct(&sim).background(false).build();
    let mut h = Harness::new(cfg, sim);
    h.run_for(1_000);
    h.sim.instances[0].mode = Mode::Down;
    h.sim.instances[1].mode = Mode::Status(503);
    let at = Instant::from_millis(h.now);
    h.client.refresh(at, Duration::ZERO);
    h.run_for(60_000);
    assert!(h.events.iter().any(|(_, e)| *e == Event::Refreshed));
    assert_eq!(h.client.get("k"), Some("v"), "values kept");
    let (_, deadline) = drain(&mut h.client);
    assert_eq!(deadline, None);
}

#[test]
fn a_background_client_always_has_a_deadline() {
    let mut sim = Sim::new("app", 1);
    sim.publish(0, "application", &[("k", "v")]);
    let cfg = Harness::config_direct(&sim).build();
    let mut h = Harness::new(cfg, sim);
    h.run_for(1_000);
    let (_, deadline) = drain(&mut h.client);
    assert!(deadline.is_some());
    h.client.close();
    let (out, deadline) = drain(&mut h.client);
    assert_eq!(out, [Output::Event(Event::Closed)]);
    assert_eq!(deadline, None);
}

/// A reseeded copy makes its own random choices: the same seed the same ones, different
/// seeds (some) other ones.
#[test]
fn reseed_gives_a_copy_its_own_choices() {
    let urls: Vec<String> = (1..=8)
        .map(|i| format!("http://127.0.0.{i}:8080"))
        .collect();
    let mut timing = apolloconf_core::Timing::default();
    timing.long_poll_initial_delay = Duration::ZERO;
    let cfg = Config::builder("app")
        .config_service(&urls.join(","))
        .timing(timing)
        .seed(7)
        .build();
    let base = apolloconf_core::Client::new(cfg, Instant::from_millis(0)).expect("valid");
    // The long poll goes to a service picked at random.
    let first_url = |seed: u64| {
        let mut c = base.clone();
        c.reseed(seed);
        drain(&mut c)
            .0
            .into_iter()
            .find_map(|o| match o {
                Output::Request(r) if r.url.contains("/notifications/v2") => Some(
                    r.url
                        .split("/notifications")
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                ),
                _ => None,
            })
            .expect("a long poll")
    };
    assert_eq!(first_url(1), first_url(1));
    let distinct: std::collections::BTreeSet<String> = (0..32).map(first_url).collect();
    assert!(distinct.len() > 1, "{distinct:?}");
}
