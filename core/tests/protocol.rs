//! Named tests of every numbered behaviour of the core and of the client-side entries of
//! docs/protocol.md#edge-cases, on the deterministic harness.

mod sim;

use apolloconf_core::{
    ChangeKind, Client, Config, ErrorCause, Event, Input, InputError, Instant, Interest, Output,
    RequestId, RequestKind, Source, Status, Timing,
};
use sim::{Harness, Mode, Sim, query};

fn fast_timing() -> Timing {
    let mut t = Timing::default();
    t.long_poll_initial_delay = core::time::Duration::from_millis(0);
    t
}

/// A started harness: app `app`, one instance, namespaces given, direct config service.
fn direct(instances: usize, namespaces: &[&str], setup: impl FnOnce(&mut Sim)) -> Harness {
    let mut sim = Sim::new("app", instances);
    setup(&mut sim);
    let cfg = Harness::config_direct(&sim)
        .namespaces(namespaces.iter().copied())
        .timing(fast_timing())
        .build();
    Harness::new(cfg, sim)
}

fn errors(h: &Harness) -> Vec<&ErrorCause> {
    h.events
        .iter()
        .filter_map(|(_, e)| {
            if let Event::Error(e) = e {
                Some(&e.cause)
            } else {
                None
            }
        })
        .collect()
}

fn ready_at(h: &Harness) -> Option<u64> {
    h.events
        .iter()
        .find(|(_, e)| *e == Event::Ready)
        .map(|(t, _)| *t)
}

// ---------------------------------------------------------------- 1. discovery

#[test]
fn discovery_asks_meta_then_uses_listed_services() {
    let mut sim = Sim::new("app", 2);
    sim.publish(0, "application", &[("k", "v")]);
    let cfg = Harness::config_meta(&sim)
        .ip("10.0.0.5")
        .timing(fast_timing())
        .build();
    let mut h = Harness::new(cfg, sim);
    h.run_for(1_000);
    let first = &h.log[0].1;
    assert_eq!(first.kind, RequestKind::Discovery);
    assert_eq!(
        first.url,
        "http://meta:8080/services/config?appId=app&ip=10.0.0.5"
    );
    assert!(first.headers.is_empty(), "discovery is never signed");
    assert_eq!(
        h.client.services(),
        ["http://cs0:8080/", "http://cs1:8080/"]
    );
    assert_eq!(h.value("application", "k").as_deref(), Some("v"));
}

#[test]
fn discovery_fails_over_between_meta_servers() {
    let mut sim = Sim::new("app", 1);
    sim.metas = vec![
        sim::Meta {
            url: "http://m1:1".into(),
            up: false,
        },
        sim::Meta {
            url: "http://m2:1".into(),
            up: true,
        },
    ];
    sim.publish(0, "application", &[("k", "v")]);
    let cfg = Harness::config_meta(&sim).timing(fast_timing()).build();
    let mut h = Harness::new(cfg, sim);
    h.run_for(5_000);
    assert_eq!(h.value("application", "k").as_deref(), Some("v"));
    let metas: Vec<_> = h
        .log
        .iter()
        .filter(|(_, r)| r.kind == RequestKind::Discovery)
        .map(|(_, r)| r.url.clone())
        .collect();
    assert!(
        metas.iter().any(|u| u.starts_with("http://m2:1/")),
        "{metas:?}"
    );
}

#[test]
fn discovery_keeps_last_good_list_and_refreshes_every_5_minutes() {
    let mut sim = Sim::new("app", 1);
    sim.publish(0, "application", &[("k", "v")]);
    let cfg = Harness::config_meta(&sim).timing(fast_timing()).build();
    let mut h = Harness::new(cfg, sim);
    h.run_for(1_000);
    h.sim.metas[0].up = false;
    h.run_for(301_000);
    let disc: Vec<u64> = h
        .log
        .iter()
        .filter(|(_, r)| r.kind == RequestKind::Discovery)
        .map(|(t, _)| *t)
        .collect();
    assert!(disc.len() >= 2);
    assert!(disc[1] >= 300_000, "refresh after 5 min, got {disc:?}");
    assert_eq!(
        h.client.services(),
        ["http://cs0:8080/"],
        "last good list kept"
    );
    // Still working against the known instance.
    let k = h.sim.publish(h.now, "application", &[("k", "v2")]);
    h.run_for(2_000);
    assert_eq!(
        h.client.namespace("application").unwrap().release_key(),
        Some(k.as_str())
    );
    // Retries with back-off, not at once.
    let after: Vec<u64> = disc.iter().copied().filter(|t| *t >= 300_000).collect();
    if after.len() >= 2 {
        assert!(after[1] - after[0] >= 750);
    }
}

#[test]
fn discovery_empty_answer_is_retried() {
    let mut sim = Sim::new("app", 1);
    sim.publish(0, "application", &[("k", "v")]);
    let saved = std::mem::take(&mut sim.instances);
    let cfg = Harness::config_meta(&sim).timing(fast_timing()).build();
    let mut h = Harness::new(cfg, sim);
    h.run_for(3_000);
    assert!(errors(&h).iter().any(|c| **c == ErrorCause::NoServices));
    assert!(
        ready_at(&h).is_some(),
        "start-up does not wait for discovery"
    );
    h.sim.instances = saved;
    h.run_for(40_000);
    assert_eq!(h.value("application", "k").as_deref(), Some("v"));
}

#[test]
fn direct_config_service_skips_discovery() {
    let mut h = direct(1, &["application"], |s| {
        s.publish(0, "application", &[("k", "v")]);
    });
    h.run_for(1_000);
    assert!(h.log.iter().all(|(_, r)| r.kind != RequestKind::Discovery));
    assert_eq!(h.value("application", "k").as_deref(), Some("v"));
}

#[test]
fn configs_fail_over_to_next_instance() {
    let mut h = direct(3, &["application"], |s| {
        s.publish(0, "application", &[("k", "v")]);
        s.instances[0].mode = Mode::Down;
        s.instances[1].mode = Mode::Status(503);
    });
    h.run_for(10_000);
    assert_eq!(h.value("application", "k").as_deref(), Some("v"));
    let hosts: Vec<_> = h
        .config_requests()
        .iter()
        .map(|r| r.url[..16].to_string())
        .collect();
    assert!(
        hosts.iter().any(|u| u.starts_with("http://cs2")),
        "{hosts:?}"
    );
}

// ---------------------------------------------------------------- 2. initial load

#[test]
fn initial_load_sends_all_namespaces_at_once() {
    let names = ["application", "a", "b", "c", "d"];
    let mut h = direct(1, &names, |s| {
        for n in ["application", "a", "b", "c", "d"] {
            s.publish(0, n, &[("k", n)]);
        }
    });
    h.run_for(1);
    let at_zero: Vec<_> = h
        .log
        .iter()
        .filter(|(t, r)| *t == 0 && matches!(r.kind, RequestKind::Configs { .. }))
        .collect();
    assert_eq!(at_zero.len(), 5, "every namespace requested at t=0");
    h.run_for(100);
    assert!(ready_at(&h).unwrap() < 50);
}

#[test]
fn configs_query_parameters_as_java() {
    let mut sim = Sim::new("app", 1);
    sim.publish(0, "application", &[("k", "v")]);
    let cfg = Harness::config_direct(&sim)
        .cluster("c1")
        .data_center("dc1")
        .ip("10.0.0.5")
        .label("blue")
        .timing(fast_timing())
        .build();
    let mut h = Harness::new(cfg, sim);
    h.run_for(10);
    let url = &h.config_requests()[0].url;
    assert_eq!(
        url,
        "http://cs0:8080/configs/app/c1/application?dataCenter=dc1&ip=10.0.0.5&label=blue"
    );
    h.run_for(1_000);
    let poll = &h.polls()[0].url;
    assert!(poll.starts_with("http://cs0:8080/notifications/v2?cluster=c1&dataCenter=dc1&appId=app&ip=10.0.0.5&notifications="));
}

/// docs/protocol.md#edge-cases (31)
#[test]
fn incremental_sync_is_applied() {
    let mut h = direct(1, &["application"], |s| {
        s.incremental = true;
        s.publish(0, "application", &[("a", "1"), ("b", "2"), ("c", "3")]);
    });
    h.run_for(3_000);
    h.sim
        .publish(h.now, "application", &[("a", "1"), ("c", "30"), ("d", "4")]);
    h.run_for(2_000);
    let ns = h.client.namespace("application").unwrap();
    assert_eq!(ns.properties().len(), 3);
    assert_eq!(ns.get("c"), Some("30"));
    assert_eq!(ns.get("d"), Some("4"));
    assert_eq!(ns.get("b"), None);
    let c = h.changes();
    assert_eq!(c.len(), 1);
    let kinds: Vec<_> = c[0]
        .changes
        .iter()
        .map(|c| (c.key.as_str(), c.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("b", ChangeKind::Deleted),
            ("c", ChangeKind::Modified),
            ("d", ChangeKind::Added)
        ]
    );
}

/// docs/protocol.md#edge-cases (1)
#[test]
fn not_modified_keeps_values() {
    let mut h = direct(1, &["application"], |s| {
        s.publish(0, "application", &[("k", "v")]);
    });
    h.run_for(1_000);
    h.run_for(300_000);
    let reqs = h.config_requests();
    assert!(reqs.len() >= 2);
    let key = h.sim.latest("application").unwrap().key.clone();
    assert_eq!(query(&reqs[1].url).get("releaseKey"), Some(&key));
    assert_eq!(h.value("application", "k").as_deref(), Some("v"));
    assert!(h.changes().is_empty());
}

/// docs/protocol.md#edge-cases (33)
#[test]
fn not_found_does_not_block_startup_and_stops_retries() {
    let mut h = direct(1, &["application", "missing"], |s| {
        s.publish(0, "application", &[("k", "v")]);
    });
    h.run_for(100);
    assert!(ready_at(&h).is_some());
    assert_eq!(
        h.client.namespace("missing").unwrap().status(),
        Status::NotFound
    );
    h.run_for(60_000);
    let n = h
        .config_requests()
        .iter()
        .filter(|r| r.url.contains("/missing"))
        .count();
    assert_eq!(n, 1, "edge case 33: 404 stops retries at once");
}

#[test]
fn not_found_namespace_is_picked_up_by_a_later_notification() {
    let mut h = direct(1, &["application", "later"], |s| {
        s.publish(0, "application", &[("k", "v")]);
    });
    h.run_for(5_000);
    h.sim.publish(h.now, "later", &[("x", "1")]);
    h.run_for(1_000);
    assert_eq!(h.value("later", "x").as_deref(), Some("1"));
    let c = h.changes();
    assert_eq!(
        c.len(),
        1,
        "a namespace created after start fires its keys as added"
    );
    assert_eq!(c[0].changes[0].kind, ChangeKind::Added);
}

#[test]
fn fetch_failures_back_off_1_to_8_seconds_across_instances() {
    let mut h = direct(2, &["application"], |s| {
        s.publish(0, "application", &[("k", "v")]);
        s.instances[0].mode = Mode::Status(500);
        s.instances[1].mode = Mode::Status(500);
    });
    h.run_for(60_000);
    let times: Vec<u64> = h
        .log
        .iter()
        .filter(|(_, r)| matches!(r.kind, RequestKind::Configs { .. }))
        .map(|(t, _)| *t)
        .collect();
    let gaps: Vec<u64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps[0] >= 750 && gaps[0] <= 1_000, "{gaps:?}");
    assert!(gaps[1] >= 1_500 && gaps[1] <= 2_000, "{gaps:?}");
    assert!(gaps[2] >= 3_000 && gaps[2] <= 4_000, "{gaps:?}");
    assert!(gaps.iter().all(|g| *g <= 8_000), "{gaps:?}");
    assert!(
        gaps.iter().skip(4).all(|g| *g >= 6_000),
        "capped at 8 s with jitter: {gaps:?}"
    );
    let hosts: std::collections::BTreeSet<_> = h
        .config_requests()
        .iter()
        .map(|r| r.url[..15].to_string())
        .collect();
    assert_eq!(hosts.len(), 2, "retries rotate over instances");
    h.sim.instances[0].mode = Mode::Normal;
    h.sim.instances[1].mode = Mode::Normal;
    h.run_for(10_000);
    assert_eq!(h.value("application", "k").as_deref(), Some("v"));
}

// ---------------------------------------------------------------- 3. long polling

/// docs/protocol.md#edge-cases (14)
#[test]
fn one_long_poll_for_all_namespaces_starting_at_minus_one() {
    let mut h = direct(1, &["application", "b.yaml"], |s| {
        s.publish(0, "application", &[("k", "v")]);
    });
    h.run_for(50);
    let polls = h.polls();
    assert_eq!(polls.len(), 1);
    let q = query(&polls[0].url);
    assert_eq!(
        q["notifications"],
        r#"[{"namespaceName":"application","notificationId":-1},{"namespaceName":"b.yaml","notificationId":-1}]"#
    );
    assert_eq!(polls[0].timeout, core::time::Duration::from_secs(90));
}

/// docs/protocol.md#edge-cases (15, 17)
#[test]
fn held_poll_304_repolls_and_stays_single() {
    let mut h = direct(1, &["application"], |s| {
        s.hold_ms = 60_000;
        s.publish(0, "application", &[("k", "v")]);
    });
    h.run_for(200_000);
    let polls = h.polls();
    assert!(
        polls.len() >= 3 && polls.len() <= 6,
        "about one poll per hold: {}",
        polls.len()
    );
    assert!(h.max_in_flight.1 <= 1);
}

/// docs/protocol.md#edge-cases (16)
#[test]
fn publish_while_held_is_fetched_with_messages() {
    let mut h = direct(1, &["application"], |s| {
        s.publish(0, "application", &[("k", "v")]);
    });
    h.run_for(5_000);
    let t = h.now;
    let key = h.sim.publish(t, "application", &[("k", "v2")]);
    h.run_for(100);
    assert_eq!(h.value("application", "k").as_deref(), Some("v2"));
    let req = h
        .requests_since(t)
        .into_iter()
        .find(|r| matches!(r.kind, RequestKind::Configs { .. }))
        .unwrap();
    let msg = h.sim.latest("application").unwrap().msg;
    assert_eq!(
        query(&req.url)["messages"],
        format!(r#"{{"details":{{"app+default+application":{msg}}}}}"#)
    );
    assert_eq!(
        h.client.namespace("application").unwrap().release_key(),
        Some(key.as_str())
    );
    assert_eq!(
        h.client.namespace("application").unwrap().notification_id(),
        msg
    );
}

#[test]
fn notification_id_advances_only_after_fetch_succeeds() {
    let mut h = direct(1, &["application"], |s| {
        s.publish(0, "application", &[("k", "v")]);
    });
    h.run_for(5_000);
    let before = h.client.namespace("application").unwrap().notification_id();
    h.sim.hide.push("application".into());
    h.sim.instances[0].mode = Mode::Status(500);
    h.sim.instances[0].mode = Mode::Normal;
    // A publish whose fetch fails (500) must not advance the id.
    h.sim.publish(h.now, "application", &[("k", "v2")]);
    h.sim.hide.clear();
    h.sim.instances[0].mode = Mode::Status(500);
    h.run_for(3_000);
    assert_eq!(
        h.client.namespace("application").unwrap().notification_id(),
        before
    );
    assert_eq!(h.value("application", "k").as_deref(), Some("v"));
    h.sim.instances[0].mode = Mode::Normal;
    h.run_for(20_000);
    assert_eq!(
        h.value("application", "k").as_deref(),
        Some("v2"),
        "the update is not lost"
    );
    assert!(h.client.namespace("application").unwrap().notification_id() > before);
}

/// A fetch answers for the server's state when it was served, so it acknowledges only the
/// notifications the client had when it sent it: a notification arriving while it is in
/// flight (its answer may predate that publish) needs a fetch of its own.
#[test]
fn notification_during_a_fetch_in_flight_gets_its_own_fetch() {
    let mut h = direct(1, &["application"], |s| {
        s.publish(0, "application", &[("k", "v1")]);
    });
    h.run_for(5_000);
    // Slow answers: a /configs sent now is served now (with what is published now) but
    // answered 2 s later; a woken long poll is answered within 1 ms.
    h.sim.instances[0].latency_ms = 2_000;
    let t1 = h.now;
    h.sim.publish(t1, "application", &[("k", "v2")]);
    // The notification for v2 arrives, its fetch goes out and is in flight...
    h.run_for(1_100);
    let first = h
        .requests_since(t1)
        .into_iter()
        .filter(|r| matches!(r.kind, RequestKind::Configs { .. }))
        .count();
    assert_eq!(first, 1, "one fetch in flight for the first notification");
    // ...when v3 is published (release keys carry seconds: 1.1 s later) and notified.
    let t2 = h.now;
    let k3 = h.sim.publish(t2, "application", &[("k", "v3")]);
    let m3 = h.sim.latest("application").unwrap().msg;
    h.run_for(10_000);
    // The first fetch was served before v3 existed (it answers v2): it must not count as
    // the fetch for v3's notification.
    assert_eq!(
        h.value("application", "k").as_deref(),
        Some("v3"),
        "v3 is not lost"
    );
    let ns = h.client.namespace("application").unwrap();
    assert_eq!(ns.release_key(), Some(k3.as_str()));
    assert_eq!(ns.notification_id(), m3);
    let later = h
        .log
        .iter()
        .filter(|(at, r)| *at > t2 && matches!(r.kind, RequestKind::Configs { .. }))
        .count();
    assert!(later >= 1, "a fetch sent after the v3 notification");
    // And no hot loop: the two notifications cost two or three fetches, not a storm.
    let total = h
        .requests_since(t1)
        .into_iter()
        .filter(|r| matches!(r.kind, RequestKind::Configs { .. }))
        .count();
    assert!(total <= 3, "{total} fetches for two publishes");
}

/// docs/protocol.md#edge-cases (35)
#[test]
fn lagging_instance_304_after_notification_is_retried() {
    let mut h = direct(2, &["application"], |s| {
        s.publish(0, "application", &[("k", "v")]);
        // cs1 lags 3 s and ignores messages (an instance whose cache is behind).
        s.instances[1].lag_ms = 3_000;
        s.instances[1].honors_messages = false;
    });
    h.run_for(5_000);
    // Make the poll go to cs0 and the next fetch to cs1: pin by publishing repeatedly
    // until a notification from cs0 is followed by a fetch on cs1.
    let t = h.now;
    h.sim.publish(t, "application", &[("k", "v2")]);
    h.run_for(8_000);
    assert_eq!(
        h.value("application", "k").as_deref(),
        Some("v2"),
        "never lost"
    );
    // After a notification, the first /configs goes to the notifying server.
    let reqs = h.requests_since(t);
    let note_from = h
        .log
        .iter()
        .filter(|(at, r)| *at >= t && r.kind == RequestKind::Notifications)
        .count();
    assert!(note_from >= 1);
    let first_fetch = reqs
        .iter()
        .find(|r| matches!(r.kind, RequestKind::Configs { .. }))
        .unwrap();
    assert!(query(&first_fetch.url).contains_key("messages"));
}

#[test]
fn lagging_304_is_retried_on_the_notifying_instance() {
    // cs1 lags 4 s behind on /configs and ignores `messages`; the long poll is answered by
    // whichever instance is pinned. The notifier's first /configs fails once, so the
    // fetch falls over to the other instance; if that is the lagging one its 304 must not
    // drop the update.
    for seed in 0..16u64 {
        let mut sim = Sim::new("app", 2);
        sim.publish(0, "application", &[("k", "v")]);
        let cfg = Harness::config_direct(&sim)
            .seed(seed)
            .timing(fast_timing())
            .build();
        let mut h = Harness::new(cfg, sim);
        h.run_for(3_000);
        h.sim.instances[1].lag_ms = 4_000;
        h.sim.instances[1].honors_messages = false;
        h.sim.instances[0].fail_configs = 1;
        h.sim.publish(h.now, "application", &[("k", "v2")]);
        // A poll pinned on cs1 itself only hears of the publish after cs1's lag.
        h.run_for(6_500);
        assert_eq!(
            h.value("application", "k").as_deref(),
            Some("v2"),
            "seed {seed}: the 304 was retried"
        );
    }
}

#[test]
fn startup_costs_one_configs_request_per_namespace() {
    let mut h = direct(1, &["application", "b"], |s| {
        s.publish(0, "application", &[("k", "v")]);
        s.publish(0, "b", &[("k", "v")]);
    });
    h.run_for(10_000);
    // One full load each, then one conditional fetch for the -1 notification (as Java).
    let reqs = h.config_requests();
    assert_eq!(
        reqs.len(),
        4,
        "the -1 notification's 304 from the notifier is final"
    );
    assert!(
        reqs[2..]
            .iter()
            .all(|r| query(&r.url).contains_key("releaseKey"))
    );
    assert_eq!(h.client.metrics().configs.not_modified, 2);
}

/// docs/protocol.md#edge-cases (18, 34)
#[test]
fn answered_names_are_mapped_back() {
    let mut h = direct(1, &["application.properties", "FX.apollo"], |s| {
        s.publish(0, "application", &[("k", "v")]);
        s.publish(0, "fx.apollo", &[("f", "1")]);
    });
    h.run_for(3_000);
    assert_eq!(h.value("application.properties", "k").as_deref(), Some("v"));
    assert_eq!(h.value("FX.apollo", "f").as_deref(), Some("1"));
    h.sim.publish(h.now, "application", &[("k", "v2")]);
    h.run_for(1_000);
    assert_eq!(
        h.value("application.properties", "k").as_deref(),
        Some("v2")
    );
    assert!(
        h.client
            .namespace("application.properties")
            .unwrap()
            .notification_id()
            > 0
    );
}

/// docs/protocol.md#edge-cases (34)
#[test]
fn notification_for_unwatched_namespace_is_ignored() {
    let mut h = direct(1, &["application"], |s| {
        s.publish(0, "application", &[("k", "v")]);
    });
    h.run_for(3_000);
    let n = h.config_requests().len();
    // The sim only answers watched names, so feed a crafted answer directly.
    let mut c = Client::new(
        Harness::config_direct(&h.sim).timing(fast_timing()).build(),
        Instant::ZERO,
    )
    .unwrap();
    let mut poll = None;
    loop {
        match c.poll_output() {
            Output::Request(r) if r.kind == RequestKind::Notifications => poll = Some(r.id),
            Output::Timeout(_) => break,
            _ => {}
        }
    }
    let body = br#"[{"namespaceName":"other","notificationId":5,"messages":{"details":{"app+default+other":5}}}]"#;
    let id = poll.unwrap();
    c.handle_input(Input::Response {
        id,
        now: Instant::from_millis(10),
        result: Ok(apolloconf_core::HttpResponse { status: 200, body }),
    })
    .unwrap();
    let mut fetches = 0;
    loop {
        match c.poll_output() {
            Output::Request(r) if matches!(r.kind, RequestKind::Configs { .. }) => fetches += 1,
            Output::Timeout(_) => break,
            _ => {}
        }
    }
    assert_eq!(fetches, 0);
    assert!(n >= 1);
}

/// docs/protocol.md#edge-cases (33)
#[test]
fn poll_304_switches_instance_about_half_the_time() {
    let mut h = direct(4, &["application"], |s| {
        s.hold_ms = 1_000;
        s.publish(0, "application", &[("k", "v")]);
    });
    h.run_for(400_000);
    let hosts: Vec<String> = h.polls().iter().map(|r| r.url[..15].to_string()).collect();
    let switches = hosts.windows(2).filter(|w| w[0] != w[1]).count();
    let ratio = switches as f64 / (hosts.len() - 1) as f64;
    // Unpinned with p = 1/2, then a random pick of 4 (3/4 differ): about 3/8.
    assert!(
        ratio > 0.25 && ratio < 0.5,
        "switch ratio {ratio} over {} polls",
        hosts.len()
    );
}

/// docs/protocol.md#edge-cases (33)
#[test]
fn poll_errors_back_off_1_to_120_seconds() {
    let mut h = direct(1, &["application"], |s| {
        s.publish(0, "application", &[("k", "v")]);
    });
    h.run_for(2_000);
    h.sim.instances[0].mode = Mode::Status(500);
    let t = h.now;
    h.run_for(1_200_000);
    let times: Vec<u64> = h
        .log
        .iter()
        .filter(|(at, r)| *at > t && r.kind == RequestKind::Notifications)
        .map(|(t, _)| *t)
        .collect();
    let gaps: Vec<u64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.len() >= 8, "{gaps:?}");
    assert!(gaps[0] >= 1_500 && gaps[0] <= 2_100, "{gaps:?}");
    assert!(gaps.iter().all(|g| *g <= 120_100));
    assert!(
        gaps.iter().rev().take(2).all(|g| *g >= 90_000),
        "reaches 120 s: {gaps:?}"
    );
}

#[test]
fn rate_limit_prevents_hot_loops_on_a_misbehaving_server() {
    // A server that answers every poll at once with the same (already known) id.
    let mut h = direct(1, &["application"], |s| {
        s.hold_ms = 0;
        s.publish(0, "application", &[("k", "v")]);
    });
    h.run_for(60_000);
    let polls = h.polls().len();
    assert!(polls <= 121, "at most 2 polls per second, got {polls}");
}

/// docs/protocol.md#notification-ids: a notification id implausibly far beyond every id
/// seen (here 2^50 after ids 1..2) is not recorded. Recorded, it would make the server hold
/// every later poll (it only answers ids beyond the one sent): the next release would only
/// be seen by the 5-minute refresh.
#[test]
fn an_implausible_notification_id_is_not_recorded() {
    let mut h = direct(1, &["application"], |s| {
        s.publish(0, "application", &[("k", "v1")]);
    });
    h.run_for(5_000);
    let sane = h.client.namespace("application").unwrap().notification_id();
    h.sim.next_msg = 1 << 50;
    let t = h.now;
    h.sim.publish(t, "application", &[("k", "v2")]);
    h.sim.next_msg = 10;
    h.run_for(3_000);
    assert_eq!(
        h.value("application", "k").as_deref(),
        Some("v2"),
        "still fetched"
    );
    assert_eq!(
        h.client.namespace("application").unwrap().notification_id(),
        sane,
        "not recorded"
    );
    assert!(
        errors(&h)
            .iter()
            .any(|e| matches!(e, ErrorCause::Parse(m) if m.contains("implausibly")))
    );
    let t = h.now;
    h.sim.publish(t, "application", &[("k", "v3")]);
    h.run_for(10_000);
    assert_eq!(h.value("application", "k").as_deref(), Some("v3"));
    assert_eq!(
        h.client.namespace("application").unwrap().notification_id(),
        10
    );
    // Once the server is sane again, so is the poll: held, not repeated.
    let polls = h.polls().len();
    h.run_for(20_000);
    assert!(
        h.polls().len() <= polls + 1,
        "{} polls",
        h.polls().len() - polls
    );
}

/// When (harness ms) the change of `ns` to release `key` was emitted.
fn seen_at(h: &Harness, ns: &str, key: &str) -> Option<u64> {
    h.events.iter().find_map(|(t, e)| match e {
        Event::Changed(c) if c.namespace == ns && c.release_key.as_deref() == Some(key) => Some(*t),
        _ => None,
    })
}

/// docs/protocol.md#rate-limits-and-back-off: at the Java client's default 2/s, three
/// publishes in a row after a quiet second are each seen within a few round trips (the
/// limiter stores a second of unused permits), not 500 ms apart.
#[test]
fn java_rates_let_a_burst_of_three_through_after_a_quiet_second() {
    let mut h = direct(1, &["application"], |s| {
        s.publish(0, "application", &[("k", "v0")]);
    });
    assert_eq!(h.client.config().timing().long_poll_qps, 2);
    h.run_for(5_000);
    h.run_for(1_500);
    for i in 1..=3 {
        let t0 = h.now;
        let key = h.sim.publish(t0, "application", &[("k", &format!("v{i}"))]);
        assert!(
            h.run_until_cond(2_000, |h| seen_at(h, "application", &key).is_some()),
            "publish {i} never seen"
        );
        let took = seen_at(&h, "application", &key).unwrap_or(u64::MAX) - t0;
        assert!(took <= 30, "publish {i} seen after {took} ms");
    }
    // The fourth in a row waits for the limiter again.
    let t0 = h.now;
    let key = h.sim.publish(t0, "application", &[("k", "v4")]);
    assert!(h.run_until_cond(2_000, |h| seen_at(h, "application", &key).is_some()));
    let took = seen_at(&h, "application", &key).unwrap_or(u64::MAX) - t0;
    assert!(took >= 400, "the fourth is spaced, seen after {took} ms");
}

/// docs/protocol.md#rate-limits-and-back-off: one publish in each of 20 namespaces, seen
/// in all of them within a few round trips: the re-polls that collect them are not held
/// back by the limiter.
#[test]
fn java_rates_fan_out_to_twenty_namespaces_at_once() {
    let names: Vec<String> = (0..20).map(|i| format!("ns{i:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut h = direct(1, &refs, |s| {
        for n in &refs {
            s.publish(0, n, &[("k", "v0")]);
        }
    });
    h.run_for(5_000);
    h.run_for(1_500);
    // As the test server does it (it wakes a held poll with the first release of a
    // batch): the held poll is woken by ns00, the re-poll by ns01, and the third poll
    // finds the other 18. With even spacing that third poll would wait 500 ms.
    let t0 = h.now;
    let mut keys = Vec::new();
    for (i, n) in refs.iter().enumerate() {
        if i == 1 || i == 2 {
            h.run_for(6);
        }
        let now = h.now;
        keys.push((*n, h.sim.publish(now, n, &[("k", "v1")])));
    }
    assert!(h.run_until_cond(2_000, |h| {
        keys.iter().all(|(n, k)| seen_at(h, n, k).is_some())
    }));
    let last = keys
        .iter()
        .filter_map(|(n, k)| seen_at(&h, n, k))
        .max()
        .unwrap_or(u64::MAX);
    assert!(last - t0 <= 50, "all 20 seen after {} ms", last - t0);
}

// ---------------------------------------------------------------- 4. fallback refresh

#[test]
fn periodic_refresh_every_5_minutes_with_release_key() {
    let mut h = direct(1, &["application", "b"], |s| {
        s.publish(0, "application", &[("k", "v")]);
        s.publish(0, "b", &[("x", "y")]);
    });
    h.run_for(1_000);
    let n0 = h.config_requests().len();
    h.run_for(900_000);
    let n1 = h.config_requests().len();
    assert_eq!(n1 - n0, 6, "3 refreshes x 2 namespaces in 15 min");
    assert!(
        h.config_requests()[n0..]
            .iter()
            .all(|r| query(&r.url).contains_key("releaseKey"))
    );
}

// ---------------------------------------------------------------- 5. access keys

/// docs/protocol.md#edge-cases (26, 27)
#[test]
fn requests_are_signed_except_discovery() {
    let mut sim = Sim::new("app", 1);
    sim.secret = Some("s3cr3t".into());
    sim.publish(0, "application", &[("k", "v")]);
    let cfg = Harness::config_meta(&sim)
        .secret("s3cr3t")
        .timing(fast_timing())
        .build();
    let mut h = Harness::new(cfg, sim);
    h.run_for(3_000);
    assert_eq!(
        h.value("application", "k").as_deref(),
        Some("v"),
        "the sim verified every signature"
    );
    for (_, r) in &h.log {
        let signed = r.headers.iter().any(|(k, _)| k == "Authorization");
        assert_eq!(signed, r.kind != RequestKind::Discovery, "{}", r.url);
        if signed {
            let ts: u64 = r
                .headers
                .iter()
                .find(|(k, _)| k == "Timestamp")
                .unwrap()
                .1
                .parse()
                .unwrap();
            assert!(
                (1_700_000_000_000..1_700_000_010_000).contains(&ts),
                "wall clock follows the anchor"
            );
            let a = &r
                .headers
                .iter()
                .find(|(k, _)| k == "Authorization")
                .unwrap()
                .1;
            // Checked with the test's own HMAC and URL parsing, not the core's.
            let data = format!("{ts}\n{}", sim::wire_target(&r.url));
            assert_eq!(
                *a,
                format!("Apollo app:{}", sim::hmac_sha1_base64("s3cr3t", &data))
            );
        }
    }
}

/// docs/protocol.md#edge-cases (26)
#[test]
fn wrong_secret_surfaces_unauthorized() {
    let mut sim = Sim::new("app", 1);
    sim.secret = Some("right".into());
    sim.publish(0, "application", &[("k", "v")]);
    let cfg = Harness::config_direct(&sim)
        .secret("wrong")
        .timing(fast_timing())
        .build();
    let mut h = Harness::new(cfg, sim);
    h.run_for(5_000);
    assert!(errors(&h).iter().any(|c| **c == ErrorCause::Unauthorized));
    assert!(h.client.metrics().configs.unauthorized >= 1);
    assert!(ready_at(&h).is_some());
}

// ---------------------------------------------------------------- 6. URLs

/// docs/protocol.md#edge-cases (25)
#[test]
fn plus_in_release_key_and_messages_is_percent_encoded() {
    let mut h = direct(1, &["application"], |_| {});
    // A merged public release key contains '+'.
    h.sim.ns.insert(
        "application".into(),
        sim::NsData {
            name: "application".into(),
            releases: vec![sim::Release {
                key: "20240101000000-aaaaaaaaaaaaaaaa+20240101000000-bbbbbbbbbbbbbbbb".into(),
                values: [("k".to_string(), "v".to_string())].into_iter().collect(),
                msg: 1,
                at: 0,
                version: 1,
            }],
        },
    );
    h.run_for(300_500);
    let r = h.config_requests()[1];
    assert!(
        r.url.contains(
            "releaseKey=20240101000000-aaaaaaaaaaaaaaaa%2B20240101000000-bbbbbbbbbbbbbbbb"
        ),
        "{}",
        r.url
    );
    assert!(
        h.client.metrics().configs.not_modified >= 1,
        "edge case 2: merged key gets a 304"
    );
}

#[test]
fn hostile_namespace_names_are_escaped_in_paths() {
    let mut h = direct(1, &["a b/../c?d#e"], |s| {
        s.publish(0, "a b/../c?d#e", &[("k", "v")]);
    });
    h.run_for(10);
    assert_eq!(
        h.config_requests()[0].url,
        "http://cs0:8080/configs/app/default/a%20b%2F..%2Fc%3Fd%23e"
    );
    assert_eq!(
        h.client.cache_file_name("a b/../c?d#e"),
        None,
        "never a cache file that escapes the directory"
    );
}

// ---------------------------------------------------------------- 7. namespaces and formats

/// docs/protocol.md#edge-cases (9, 10)
#[test]
fn properties_suffix_and_content_namespaces() {
    let mut h = direct(1, &["application.properties", "d.json", "t.txt"], |s| {
        s.publish(0, "application", &[("k", "v")]);
        s.publish(0, "d.json", &[("content", "{\"a\":1}")]);
        s.publish(0, "t.txt", &[("content", "hello")]);
    });
    h.run_for(100);
    assert_eq!(h.value("application.properties", "k").as_deref(), Some("v"));
    assert_eq!(
        h.client.namespace("d.json").unwrap().content(),
        Some("{\"a\":1}")
    );
    assert_eq!(
        h.client.namespace("t.txt").unwrap().content(),
        Some("hello")
    );
    assert_eq!(
        h.client
            .namespace("application.properties")
            .unwrap()
            .content(),
        None
    );
    assert_eq!(
        h.config_requests()[0].url,
        "http://cs0:8080/configs/app/default/application.properties"
    );
}

#[cfg(feature = "yaml")]
#[test]
fn yaml_namespace_is_flattened() {
    let mut h = direct(1, &["app.yaml"], |s| {
        s.publish(
            0,
            "app.yaml",
            &[(
                "content",
                "server:\n  port: 8080\nlist:\n  - a\n  - b\nflag: yes\n",
            )],
        );
    });
    h.run_for(100);
    let ns = h.client.namespace("app.yaml").unwrap();
    assert_eq!(ns.get("server.port"), Some("8080"));
    assert_eq!(ns.get("list[1]"), Some("b"));
    assert_eq!(ns.get("flag"), Some("true"));
    assert!(ns.content().unwrap().starts_with("server:"));
    h.sim.publish(
        h.now,
        "app.yaml",
        &[("content", "server:\n  port: 9090\nlist: [a]\nflag: yes\n")],
    );
    h.run_for(3_000);
    let c = h.changes();
    assert_eq!(c.len(), 1);
    let keys: Vec<_> = c[0]
        .changes
        .iter()
        .map(|c| (c.key.as_str(), c.kind))
        .collect();
    assert_eq!(
        keys,
        [
            ("list[1]", ChangeKind::Deleted),
            ("server.port", ChangeKind::Modified)
        ]
    );
    // Broken YAML keeps the previous flattened view and reports the parse error.
    h.sim
        .publish(h.now, "app.yaml", &[("content", "a: [unclosed")]);
    h.run_for(3_000);
    assert_eq!(
        h.client.namespace("app.yaml").unwrap().get("server.port"),
        Some("9090")
    );
    assert!(errors(&h).iter().any(|c| matches!(c, ErrorCause::Parse(_))));
}

// ---------------------------------------------------------------- 8. values and views

#[test]
fn merged_lookup_first_namespace_wins_and_reports_source() {
    let mut h = direct(1, &["application", "public.shared"], |s| {
        s.publish(0, "application", &[("timeout", "1"), ("own", "x")]);
        s.publish(0, "public.shared", &[("timeout", "2"), ("pub", "y")]);
    });
    h.run_for(100);
    assert_eq!(h.client.get("timeout"), Some("1"));
    assert_eq!(h.client.get("pub"), Some("y"));
    assert_eq!(h.client.get("nope"), None);
    let ns = h.client.namespace("application").unwrap();
    assert_eq!(ns.source(), Source::Server);
    assert_eq!(
        ns.release_key(),
        Some(h.sim.latest("application").unwrap().key.as_str())
    );
    assert!(ns.last_update().is_some());
}

// ---------------------------------------------------------------- 9. change events

/// docs/protocol.md#edge-cases (40)
#[test]
fn change_events_and_interest_filters() {
    let mut h = direct(1, &["application"], |s| {
        s.publish(0, "application", &[("a", "1"), ("b", "2"), ("db.url", "x")]);
    });
    h.run_for(3_000);
    assert!(h.changes().is_empty(), "no event for the first load");
    h.sim
        .publish(h.now, "application", &[("a", "1"), ("b", "3"), ("c", "4")]);
    h.run_for(1_000);
    let c = h.changes();
    assert_eq!(c.len(), 1);
    let ch: Vec<_> = c[0]
        .changes
        .iter()
        .map(|c| (c.key.as_str(), c.old.as_deref(), c.new.as_deref(), c.kind))
        .collect();
    assert_eq!(
        ch,
        [
            ("b", Some("2"), Some("3"), ChangeKind::Modified),
            ("c", None, Some("4"), ChangeKind::Added),
            ("db.url", Some("x"), None, ChangeKind::Deleted)
        ]
    );
    assert!(Interest::all().filter(c[0]).is_some());
    assert_eq!(Interest::all().keys(["c"]).filter(c[0]).unwrap().len(), 1);
    assert_eq!(
        Interest::all().prefixes(["db."]).filter(c[0]).unwrap()[0].key,
        "db.url"
    );
    assert!(
        Interest::all()
            .keys(["zzz"])
            .prefixes(["q."])
            .filter(c[0])
            .is_none()
    );
    // The same values under a new release: no event (never empty).
    h.sim
        .publish(h.now, "application", &[("a", "1"), ("b", "3"), ("c", "4")]);
    h.run_for(1_000);
    assert_eq!(h.changes().len(), 1);
}

// ---------------------------------------------------------------- 10. cache

/// docs/protocol.md#edge-cases (36)
#[test]
fn server_down_at_start_serves_cache_then_recovery_fires_changes() {
    let mut h = direct(1, &["application"], |s| {
        s.publish(0, "application", &[("k", "new"), ("n", "1")]);
        s.instances[0].mode = Mode::Down;
    });
    h.feed_cache(
        "application",
        b"#Persisted by DefaultConfig\n#Sat Nov 21 20:12:46 UTC 2026\nk=old\n",
    );
    h.run_for(100);
    let ns = h.client.namespace("application").unwrap();
    assert_eq!(ns.source(), Source::Cache);
    assert_eq!(ns.get("k"), Some("old"));
    assert!(
        ready_at(&h).is_some(),
        "ready with the cache while the server is down"
    );
    h.sim.instances[0].mode = Mode::Normal;
    h.run_for(20_000);
    assert_eq!(h.value("application", "k").as_deref(), Some("new"));
    assert_eq!(
        h.client.namespace("application").unwrap().source(),
        Source::Server
    );
    let c = h.changes();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].changes.len(), 2);
    assert!(
        h.cache.contains_key("app+default+application.properties"),
        "file rewritten"
    );
}

/// docs/protocol.md#edge-cases (37)
#[test]
fn cache_file_name_and_format() {
    let mut sim = Sim::new("app", 1);
    sim.publish(0, "foo.yaml", &[("content", "a: 中\n")]);
    let cfg = Harness::config_direct(&sim)
        .cluster("c1")
        .namespace("foo.yaml")
        .timing(fast_timing())
        .build();
    let mut h = Harness::new(cfg, sim);
    h.run_for(100);
    let bytes = h.cache.get("app+c1+foo.yaml.properties").expect("written");
    let text = std::str::from_utf8(bytes).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "#Persisted by DefaultConfig");
    assert!(
        lines[1].starts_with('#') && lines[1].ends_with(" UTC 2023"),
        "{}",
        lines[1]
    );
    assert_eq!(lines[2], "content=a\\: \\u4E2D\\n");
    assert!(bytes.is_ascii());
}

#[test]
fn corrupt_cache_is_reported_and_ignored() {
    let mut h = direct(1, &["application"], |s| {
        s.publish(0, "application", &[("k", "v")]);
    });
    h.feed_cache("application", b"bad=\\u12");
    assert!(errors(&h).is_empty());
    h.run_for(100);
    assert!(errors(&h).iter().any(|c| matches!(c, ErrorCause::Cache(_))));
    assert_eq!(h.value("application", "k").as_deref(), Some("v"));
    assert_eq!(
        h.client.handle_input(Input::CacheFile {
            namespace: "nope",
            contents: b""
        }),
        Err(InputError::UnknownNamespace("nope".into()))
    );
}

#[test]
fn unchanged_values_are_not_persisted_again() {
    let mut h = direct(1, &["application"], |s| {
        s.publish(0, "application", &[("k", "v")]);
    });
    h.run_for(100);
    let writes = h
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::PersistCache(_)))
        .count();
    assert_eq!(writes, 1);
    h.run_for(700_000);
    let writes = h
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::PersistCache(_)))
        .count();
    assert_eq!(writes, 1, "304s do not rewrite the file");
}

// ---------------------------------------------------------------- 11. lifecycle

#[test]
fn close_ends_every_request_and_timer() {
    let mut h = direct(1, &["application"], |s| {
        s.publish(0, "application", &[("k", "v")]);
    });
    h.run_for(5_000);
    assert!(h.pending() > 0, "a long poll is held");
    h.client.close();
    assert_eq!(h.client.poll_output(), Output::Event(Event::Closed));
    assert_eq!(h.client.poll_output(), Output::Timeout(None));
    // Late answers are not errors and produce nothing.
    h.run_for(100_000);
    assert_eq!(h.client.poll_output(), Output::Timeout(None));
    assert!(h.events.iter().all(|(t, _)| *t <= 5_000));
    assert_eq!(
        h.client.handle_input(Input::Response {
            id: RequestId::clone(&h.log[0].1.id),
            now: Instant::from_millis(1),
            result: Err(apolloconf_core::TransportError::new(
                apolloconf_core::TransportErrorKind::Io,
                "x"
            ))
        }),
        Ok(())
    );
}

#[test]
fn unknown_request_id_is_misuse() {
    let h = direct(1, &["application"], |_| {});
    let mut c = h.client;
    let bogus = loop {
        match c.poll_output() {
            Output::Request(r) => break r.id,
            Output::Timeout(_) => panic!("expected a request"),
            _ => {}
        }
    };
    let id = bogus;
    assert!(
        c.handle_input(Input::Response {
            id,
            now: Instant::ZERO,
            result: Err(apolloconf_core::TransportError::new(
                apolloconf_core::TransportErrorKind::Io,
                "x"
            ))
        })
        .is_ok()
    );
    // Answering twice is misuse.
    assert!(matches!(
        c.handle_input(Input::Response {
            id,
            now: Instant::ZERO,
            result: Err(apolloconf_core::TransportError::new(
                apolloconf_core::TransportErrorKind::Io,
                "x"
            ))
        }),
        Err(InputError::UnknownRequest(_))
    ));
}

// ---------------------------------------------------------------- bad input

/// docs/protocol.md#edge-cases (42)
#[test]
fn bad_bodies_never_panic_and_values_are_kept() {
    let mut h = direct(1, &["application"], |s| {
        s.publish(0, "application", &[("k", "v")]);
    });
    h.run_for(3_000);
    for mode in [Mode::Malformed, Mode::Status(500), Mode::Hang] {
        h.sim.instances[0].mode = mode;
        h.sim.publish(h.now, "application", &[("k", "x")]);
        h.run_for(30_000);
        assert_eq!(
            h.value("application", "k").as_deref(),
            Some("v"),
            "{mode:?}"
        );
    }
    h.sim.instances[0].mode = Mode::Normal;
    h.run_for(200_000);
    assert_eq!(h.value("application", "k").as_deref(), Some("x"));
    // Direct crafted bodies: full sync without configurations, huge, not UTF-8, wrong
    // types, a change list that is not a list. Each goes to a fresh request.
    let huge = vec![b'['; 1 << 20];
    let bodies: [&[u8]; 5] = [
        br#"{"releaseKey":"k"}"#,
        &huge,
        b"\xff\xfe",
        br#"{"releaseKey":1,"configurations":{"a":{"b":1}}}"#,
        br#"{"releaseKey":"k","configSyncType":"IncrementalSync","configurationChanges":"x"}"#,
    ];
    for body in bodies {
        let cfg = Harness::config_direct(&h.sim).timing(fast_timing()).build();
        let mut c = Client::new(cfg, Instant::ZERO).unwrap();
        let id = loop {
            if let Output::Request(r) = c.poll_output() {
                if matches!(r.kind, RequestKind::Configs { .. }) {
                    break r.id;
                }
            }
        };
        let result = Ok(apolloconf_core::HttpResponse { status: 200, body });
        c.handle_input(Input::Response {
            id,
            now: Instant::from_millis(1),
            result,
        })
        .expect("bad bodies are inputs, not misuse");
        let mut parse_errors = 0;
        loop {
            match c.poll_output() {
                Output::Timeout(_) => break,
                Output::Event(Event::Error(e)) => {
                    assert!(matches!(e.cause, ErrorCause::Parse(_)), "{e:?}");
                    parse_errors += 1;
                }
                _ => {}
            }
        }
        assert_eq!(parse_errors, 1);
        assert!(
            c.namespace("application")
                .unwrap()
                .configurations()
                .is_empty()
        );
    }
}

#[test]
fn invalid_configs_are_rejected_at_new() {
    use apolloconf_core::ConfigError;
    let bad = |c: Config| Client::new(c, Instant::ZERO).err();
    assert!(matches!(
        bad(Config::builder("").config_service("http://x").build()),
        Some(ConfigError::InvalidAppId(_))
    ));
    assert!(matches!(
        bad(Config::builder("a").build()),
        Some(ConfigError::NoServers)
    ));
    assert!(matches!(
        bad(Config::builder("a").meta_server("not a url").build()),
        Some(ConfigError::InvalidUrl(_))
    ));
    assert!(matches!(
        bad(Config::builder("a")
            .config_service("http://x")
            .namespaces(["a", "a"])
            .build()),
        Some(ConfigError::DuplicateNamespace(_))
    ));
    assert!(matches!(
        bad(Config::builder("a")
            .config_service("http://x")
            .namespace("bad\nname")
            .build()),
        Some(ConfigError::InvalidNamespace(_))
    ));
}

/// docs/protocol.md#edge-cases (20, 44)
#[test]
fn data_center_and_gray_cluster_keep_watch_keys() {
    let mut sim = Sim::new("app", 1);
    sim.publish(0, "application", &[("k", "v")]);
    let cfg = Harness::config_direct(&sim)
        .cluster("c1")
        .data_center("dc1")
        .timing(fast_timing())
        .build();
    let mut h = Harness::new(cfg, sim);
    h.run_for(100);
    // Whatever cluster the answer names (a gray branch), the client keeps its own cluster.
    for r in h.polls() {
        assert!(r.url.contains("cluster=c1&dataCenter=dc1"));
    }
    h.run_for(300_000);
    for r in h.config_requests() {
        assert!(r.url.contains("/configs/app/c1/application?dataCenter=dc1"));
    }
}

/// docs/protocol.md#edge-cases (21)
#[test]
fn public_namespace_messages_pass_through_owner_keys() {
    let mut h = direct(1, &["public.ns"], |s| {
        s.app = "owner".into();
        s.publish(0, "public.ns", &[("k", "v")]);
    });
    h.run_for(3_000);
    h.sim.publish(h.now, "public.ns", &[("k", "v2")]);
    let t = h.now;
    h.run_for(1_000);
    let r = h
        .requests_since(t)
        .into_iter()
        .find(|r| matches!(r.kind, RequestKind::Configs { .. }))
        .unwrap();
    assert!(query(&r.url)["messages"].contains("owner+default+public.ns"));
}

#[test]
fn watch_adds_a_namespace_later() {
    let mut h = direct(1, &["application"], |s| {
        s.publish(0, "application", &[("k", "v")]);
        s.publish(0, "extra", &[("e", "1")]);
    });
    h.run_for(3_000);
    h.client.watch("extra").unwrap();
    h.client.watch("extra").unwrap();
    assert!(h.client.watch("").is_err());
    h.run_for(100);
    assert_eq!(h.value("extra", "e").as_deref(), Some("1"));
    h.run_for(120_000);
    let last = h.polls().last().unwrap().url.clone();
    assert!(query(&last)["notifications"].contains("\"extra\""));
}

#[test]
fn safety_net_times_out_requests_the_host_never_answers() {
    let cfg = Config::builder("app")
        .config_service("http://cs0:8080")
        .timing(fast_timing())
        .build();
    let mut c = Client::new(cfg, Instant::ZERO).unwrap();
    let mut reqs = 0;
    let mut t = 0;
    for _ in 0..200 {
        loop {
            match c.poll_output() {
                Output::Request(_) => reqs += 1,
                Output::Timeout(Some(d)) => {
                    t = d.as_millis().max(t);
                    break;
                }
                Output::Timeout(None) => panic!("closed"),
                _ => {}
            }
        }
        c.handle_input(Input::Timeout(Instant::from_millis(t)))
            .unwrap();
    }
    assert!(reqs > 2, "requests re-issued after the safety net fired");
    assert!(c.metrics().configs.transport_error >= 1);
}

// ---------------------------------------------------------------- edge mode

#[test]
fn edge_mode_makes_no_background_requests_and_refreshes_on_demand() {
    let mut sim = Sim::new("app", 2);
    sim.publish(0, "application", &[("k", "v")]);
    sim.publish(0, "b", &[("x", "1")]);
    let cfg = Harness::config_direct(&sim)
        .namespaces(["application", "b"])
        .background(false)
        .build();
    let mut h = Harness::new(cfg, sim);
    h.run_for(1_000);
    assert_eq!(h.value("application", "k").as_deref(), Some("v"));
    assert!(h.events.iter().any(|(_, e)| *e == Event::Ready));
    assert!(h.polls().is_empty(), "no long poll in edge mode");
    h.run_for(3_600_000);
    assert_eq!(
        h.log.len(),
        2,
        "nothing in the background, not even the periodic refresh"
    );
    // A refresh with max age 60 s: both namespaces are older, two conditional requests.
    assert_eq!(
        h.client.refresh(
            Instant::from_millis(h.now),
            core::time::Duration::from_secs(60)
        ),
        2
    );
    h.run_for(100);
    assert!(!h.client.is_refreshing());
    assert_eq!(h.client.metrics().configs.not_modified, 2);
    // Again right away: nothing is older than 60 s, no request.
    assert_eq!(
        h.client.refresh(
            Instant::from_millis(h.now),
            core::time::Duration::from_secs(60)
        ),
        0
    );
    // 1,000 worker requests over 10 simulated minutes, each calling refresh(60 s): at most
    // one conditional request per namespace per minute.
    let before = h.config_requests().len();
    for _ in 0..1_000 {
        h.client.refresh(
            Instant::from_millis(h.now),
            core::time::Duration::from_secs(60),
        );
        h.run_for(600);
    }
    let made = h.config_requests().len() - before;
    assert!(
        (18..=22).contains(&made),
        "{made} requests for 2 namespaces over 10 minutes"
    );
    // A publish is seen at the next refresh after max age.
    h.sim.publish(h.now, "application", &[("k", "v2")]);
    h.run_for(60_000);
    h.client.refresh(
        Instant::from_millis(h.now),
        core::time::Duration::from_secs(60),
    );
    h.run_for(100);
    assert_eq!(h.value("application", "k").as_deref(), Some("v2"));
    assert_eq!(h.changes().len(), 1);
}

#[test]
fn edge_mode_failures_stop_after_one_pass() {
    let mut sim = Sim::new("app", 2);
    sim.publish(0, "application", &[("k", "v")]);
    sim.instances[0].mode = Mode::Status(500);
    sim.instances[1].mode = Mode::Down;
    let cfg = Harness::config_direct(&sim).background(false).build();
    let mut h = Harness::new(cfg, sim);
    h.run_for(600_000);
    assert_eq!(h.config_requests().len(), 2, "one pass over the instances");
    assert!(h.events.iter().any(|(_, e)| *e == Event::Ready));
    assert!(!h.client.is_refreshing());
}

// ---------------------------------------------------------------- golden transcript

/// The exact outputs of a scripted lifecycle (discovery, load, long poll, publish,
/// failover, close), compared with `tests/golden/lifecycle.txt`. A behaviour change shows
/// up as a diff of that file; `APOLLOCONF_BLESS=1` rewrites it after review.
#[cfg(feature = "yaml")]
#[test]
fn golden_transcript_of_a_lifecycle() {
    let mut sim = Sim::new("SampleApp", 2);
    sim.publish(
        0,
        "application",
        &[("timeout", "100"), ("db.url", "mysql://a")],
    );
    sim.publish(0, "datasource.yaml", &[("content", "pool:\n  size: 4\n")]);
    sim.hold_ms = 30_000;
    let cfg = Harness::config_meta(&sim)
        .namespaces(["application", "datasource.yaml"])
        .ip("10.0.0.5")
        .secret("s3cr3t")
        .seed(7)
        .build();
    let mut h = Harness::new(cfg, sim);
    h.sim.secret = Some("s3cr3t".into());
    h.run_for(5_000);
    h.sim.publish(
        h.now,
        "application",
        &[("timeout", "200"), ("db.url", "mysql://a")],
    );
    h.run_for(2_000);
    // The instance holding the long poll goes down: the client fails over to the other.
    let serving = h.polls().last().and_then(|r| h.sim.instance_of(&r.url));
    let serving = serving.expect("a long poll was made");
    h.sim.instances[serving].mode = Mode::Down;
    h.sim.publish(
        h.now,
        "datasource.yaml",
        &[("content", "pool:\n  size: 8\n")],
    );
    h.run_for(40_000);
    h.client.close();
    h.run_for(1_000);
    // One line per request, answer and event, in the order they happened.
    let mut out = String::new();
    for step in &h.timeline {
        let (t, what) = match step {
            sim::Step::Request(i) => {
                let (t, r) = &h.log[*i];
                let signed = r.headers.iter().any(|(k, _)| k == "Authorization");
                let signed = if signed { " [signed]" } else { "" };
                (*t, format!("REQ   {:?} {}{signed}", r.id, r.url))
            }
            sim::Step::Response { at, id, result } => {
                let answer = match result {
                    Ok((status, 0)) => format!("{status}"),
                    Ok((status, len)) => format!("{status} ({len} bytes)"),
                    Err(kind) => format!("transport {kind:?}"),
                };
                (*at, format!("RESP  {id:?} {answer}"))
            }
            sim::Step::Event(i) => {
                let (t, e) = &h.events[*i];
                let line = match e {
                    Event::PersistCache(w) => {
                        format!("PersistCache {} ({} bytes)", w.file_name, w.contents.len())
                    }
                    other => format!("{other:?}"),
                };
                (*t, format!("EVENT {line}"))
            }
        };
        out.push_str(&format!("{t:>6} {what}\n"));
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/lifecycle.txt");
    if std::env::var_os("APOLLOCONF_BLESS").is_some() {
        std::fs::write(&path, &out).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        expected == out,
        "transcript differs from {}:\n{out}",
        path.display()
    );
}

#[test]
fn failed_fetch_moves_on_from_a_failing_notifier_at_start() {
    // The instance that answers the first long poll cannot serve /configs; one pass over
    // the list must still reach the healthy one, whichever instance is tried first.
    for seed in 0..32u64 {
        let mut sim = Sim::new("app", 2);
        sim.publish(0, "application", &[("k", "v")]);
        sim.instances[0].fail_configs = 1_000;
        sim.instances[1].fail_configs = 0;
        let cfg = Harness::config_direct(&sim)
            .seed(seed)
            .timing(fast_timing())
            .build();
        let mut h = Harness::new(cfg, sim);
        h.run_for(3_000);
        assert_eq!(
            h.value("application", "k").as_deref(),
            Some("v"),
            "seed {seed}"
        );
        let on_cs1 = h
            .config_requests()
            .iter()
            .filter(|r| r.url.starts_with("http://cs1"))
            .count();
        assert!(on_cs1 >= 1, "seed {seed}: the healthy instance was tried");
    }
}

#[test]
fn debug_output_never_shows_the_secret() {
    let cfg = Config::builder("app")
        .config_service("http://x")
        .secret("s3cr3t-value")
        .build();
    let b = Config::builder("app")
        .config_service("http://x")
        .secret("s3cr3t-value");
    assert!(!format!("{cfg:?}").contains("s3cr3t-value"));
    assert!(!format!("{b:?}").contains("s3cr3t-value"));
    let c = Client::new(cfg, Instant::ZERO).unwrap();
    assert!(!format!("{c:?}").contains("s3cr3t-value"));
}

#[test]
fn edge_mode_rediscovers_only_on_refresh() {
    let mut sim = Sim::new("app", 1);
    sim.publish(0, "application", &[("k", "v")]);
    let cfg = Harness::config_meta(&sim).background(false).build();
    let mut h = Harness::new(cfg, sim);
    h.run_for(3_600_000);
    let discoveries = |h: &Harness| {
        h.log
            .iter()
            .filter(|(_, r)| r.kind == RequestKind::Discovery)
            .count()
    };
    assert_eq!(
        discoveries(&h),
        1,
        "no background re-discovery in edge mode"
    );
    assert_eq!(h.log.len(), 2);
    // A refresh after the rediscovery interval re-discovers and counts as refreshing.
    h.client.refresh(
        Instant::from_millis(h.now),
        core::time::Duration::from_secs(60),
    );
    assert!(h.client.is_refreshing());
    h.run_for(100);
    assert_eq!(discoveries(&h), 2);
    assert!(!h.client.is_refreshing());
}

#[test]
fn timing_knobs_by_name() {
    let mut t = Timing::default();
    for name in Timing::NAMES {
        assert!(t.set(name, 7), "{name}");
    }
    assert_eq!(t.lag_window, core::time::Duration::from_millis(7));
    assert_eq!(t.long_poll_qps, 7);
    assert_eq!(t.jitter_percent, 7);
    assert!(!t.set("noSuchKnob", 1));
    assert!(t.set("jitterPercent", 1_000));
    let cfg = Config::builder("a")
        .config_service("http://x")
        .timing(t)
        .build();
    assert!(matches!(
        Client::new(cfg, Instant::ZERO),
        Err(apolloconf_core::ConfigError::InvalidTiming(_))
    ));
}

#[test]
fn error_causes_map_to_host_codes() {
    use apolloconf_core::{TransportError, TransportErrorKind};
    let t = |k| ErrorCause::Transport(TransportError::new(k, "x"));
    assert_eq!(t(TransportErrorKind::Timeout).code(), "TIMEOUT");
    assert_eq!(t(TransportErrorKind::Connect).code(), "NETWORK");
    assert_eq!(t(TransportErrorKind::Tls).code(), "NETWORK");
    assert_eq!(ErrorCause::NoServices.code(), "NETWORK");
    assert_eq!(ErrorCause::Unauthorized.code(), "UNAUTHORIZED");
    assert_eq!(ErrorCause::NotFound.code(), "NOT_FOUND");
    assert_eq!(ErrorCause::Cache("x".into()).code(), "CACHE");
    assert_eq!(ErrorCause::Status(500).code(), "BAD_RESPONSE");
    assert_eq!(ErrorCause::Parse("x".into()).code(), "BAD_RESPONSE");
    assert_eq!(ErrorCause::StaleRelease("k".into()).code(), "BAD_RESPONSE");
}
