//! Answers a broken or hostile server could give, served over real HTTP by the test server
//! (its `body` fault): each costs the client no more than a small multiple of its size,
//! and the client keeps working afterwards (docs/protocol.md#notification-ids,
//! #messages-and-stale-caches, #discovery, #yaml).

mod common;

use std::sync::mpsc;
use std::time::Duration;

use apolloconf::{ErrorCause, Event};
use apolloconf_testserver::{Endpoint, Fault, FaultAction, TestServer};
use common::{APP, builder, server, wait_until};

const WAIT: Duration = Duration::from_secs(10);

fn body(status: u16, body: String) -> FaultAction {
    FaultAction::Body { status, body }
}

/// A YAML namespace whose release holds 100 hexadecimal numbers of 20,000 digits: the
/// conversion to decimal is quadratic, so such numbers are refused (an error event, the
/// previous view kept) instead of costing seconds each while no long poll runs.
#[test]
fn huge_radix_numbers_in_yaml_are_refused_quickly() {
    let s = server();
    let a = s.admin();
    a.publish_content(APP, "default", "big.yaml", "a: 1\n")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (tx, events) = mpsc::channel();
    let c = builder(&s.url(), dir.path())
        .namespaces(["application", "big.yaml"])
        .event_sink(tx)
        .build()
        .unwrap();
    assert_eq!(c.get("a").as_deref(), Some("1"));
    let digits = "f".repeat(20_000);
    let yaml: String = (0..100).map(|i| format!("k{i}: 0x{digits}\n")).collect();
    let answer = serde_json::json!({
        "appId": APP, "cluster": "default", "namespaceName": "big.yaml",
        "configurations": {"content": yaml}, "releaseKey": "20260101000000-0000000000000abc"
    });
    a.inject_fault(Fault::new(Endpoint::Configs, body(200, answer.to_string())).times(1));
    a.publish_content(APP, "default", "big.yaml", "a: 2\n")
        .unwrap();
    let refused = wait_until(WAIT, || {
        events.try_iter().any(|e| {
            matches!(e, Event::Error(err) if err.namespace.as_deref() == Some("big.yaml")
                && matches!(&err.cause, ErrorCause::Parse(m) if m.contains("int")))
        })
    });
    assert!(refused, "the document is refused with a parse error");
    assert_eq!(
        c.get("a").as_deref(),
        Some("1"),
        "the previous view is kept"
    );
    // The client is not busy: the next release of another namespace arrives at once.
    a.publish(APP, "default", "application", [("timeout", "200")])
        .unwrap();
    assert!(wait_until(WAIT, || c.get("timeout").as_deref() == Some("200")));
    c.close();
}

/// A meta server listing 160,000 distinct config services: de-duplicated in O(n log n)
/// (it was quadratic: 20 s of CPU) and cut to the first 1,000.
#[test]
fn a_huge_service_list_is_capped() {
    let s = server();
    let mut list = vec![format!(r#"{{"homepageUrl":"{}/"}}"#, s.url())];
    list.extend((0..160_000).map(|i| {
        format!(
            r#"{{"appName":"apollo-configservice","instanceId":"x{i}","homepageUrl":"http://127.0.0.1:{}/p{i}/"}}"#,
            1 + i % 1000
        )
    }));
    s.admin().inject_fault(
        Fault::new(
            Endpoint::Services,
            body(200, format!("[{}]", list.join(","))),
        )
        .times(1),
    );
    let dir = tempfile::tempdir().unwrap();
    let c = apolloconf::Client::builder()
        .app_id(APP)
        .meta_server(s.url())
        .environment(apolloconf::Env::empty())
        .server_properties(dir.path().join("none"))
        .cache(false)
        .timing(common::fast_timing())
        .startup_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    assert!(wait_until(WAIT, || c.snapshot().services().len() == 1_000));
    assert_eq!(c.snapshot().services()[0], format!("{}/", s.url()));
    c.close();
}

/// One long-poll answer with the notification id `i64::MAX`: recorded, the server would
/// hold every later poll (it only answers ids beyond the one sent) until a restart.
#[test]
fn an_absurd_notification_id_does_not_silence_the_long_poll() {
    let s = server();
    let a = s.admin();
    let dir = tempfile::tempdir().unwrap();
    let c = builder(&s.url(), dir.path()).build().unwrap();
    a.inject_fault(
        Fault::new(
            Endpoint::Notifications,
            body(
                200,
                format!(
                    r#"[{{"namespaceName":"application","notificationId":{}}}]"#,
                    i64::MAX
                ),
            ),
        )
        .times(1),
    );
    // Wake the held poll so that the next one meets the fault.
    a.publish(APP, "default", "application", [("timeout", "150")])
        .unwrap();
    assert!(wait_until(WAIT, || c.get("timeout").as_deref() == Some("150")));
    assert!(
        wait_until(WAIT, || a.faults().is_empty()),
        "the fault was served"
    );
    a.publish(APP, "default", "application", [("timeout", "300")])
        .unwrap();
    assert!(
        wait_until(WAIT, || c.get("timeout").as_deref() == Some("300")),
        "a release after the absurd id is still seen"
    );
    // No poll ever reported the absurd id back to the server.
    let max = i64::MAX.to_string();
    let polls: Vec<String> = a
        .requests()
        .into_iter()
        .filter(|r| r.endpoint == "notifications")
        .map(|r| r.path)
        .collect();
    assert!(polls.len() >= 3, "{polls:?}");
    assert!(
        polls.iter().all(|p| !p.contains(&max)),
        "a poll reported the absurd id: {polls:?}"
    );
    c.close();
}

/// A notification whose `messages.details` list 100,000 watch keys: carried on `/configs`,
/// every later fetch URL would be megabytes long (refused by any server).
#[test]
fn huge_messages_are_not_carried_on_configs() {
    let s = server();
    let a = s.admin();
    let current = a
        .publish(APP, "default", "application", [("timeout", "100")])
        .unwrap()
        .message_id;
    let details: Vec<String> = (0..100_000)
        .map(|i| format!(r#""{APP}+c{i}+application":{current}"#))
        .collect();
    // The client's first poll (ids -1) is answered with the real id and the huge details.
    a.inject_fault(
        Fault::new(
            Endpoint::Notifications,
            body(
                200,
                format!(
                    r#"[{{"namespaceName":"application","notificationId":{current},"messages":{{"details":{{{}}}}}}}]"#,
                    details.join(",")
                ),
            ),
        )
        .times(1),
    );
    let dir = tempfile::tempdir().unwrap();
    let c = builder(&s.url(), dir.path()).build().unwrap();
    assert!(
        wait_until(WAIT, || a.faults().is_empty()),
        "the fault was served"
    );
    a.publish(APP, "default", "application", [("timeout", "250")])
        .unwrap();
    assert!(
        wait_until(WAIT, || c.get("timeout").as_deref() == Some("250")),
        "fetches still work"
    );
    let longest = a
        .requests()
        .iter()
        .filter(|r| r.endpoint == "configs")
        .map(|r| r.path.len())
        .max()
        .unwrap_or(0);
    assert!(longest < 4_096, "a /configs URL of {longest} bytes");
    c.close();
}

/// The test server keeps serving normally after these faults (sanity of the harness).
#[test]
fn the_body_fault_serves_exactly_its_body() {
    let s = TestServer::start().unwrap();
    s.admin()
        .inject_fault(Fault::new(Endpoint::Services, body(200, String::from("[1,2]"))).times(1));
    let agent = ureq::Agent::new_with_defaults();
    let mut r = agent
        .get(format!("{}/services/config", s.url()))
        .call()
        .unwrap();
    assert_eq!(r.body_mut().read_to_string().unwrap(), "[1,2]");
}
