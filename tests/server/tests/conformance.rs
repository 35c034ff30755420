//! The server-side entries of docs/protocol.md#edge-cases, each checked against a real
//! server on 127.0.0.1.

mod common;

use std::time::{Duration, Instant};

use apolloconf_testserver::{AccessKeyMode, Format, GrayRule, Switches, TestServer, signature};
use common::*;

const A: &str = "SampleApp";
const P: &str = "PublicOwner";

fn publish(s: &TestServer, app: &str, cluster: &str, ns: &str, items: &[(&str, &str)]) -> String {
    s.admin()
        .publish(app, cluster, ns, items.iter().copied())
        .expect("publish")
        .release_key
}

/// P owns public `FX.apollo`; returns P's release key in `default`.
fn public_ns(s: &TestServer) -> String {
    s.admin()
        .create_namespace(P, "FX.apollo", Format::Properties, true)
        .expect("namespace");
    publish(
        s,
        P,
        "default",
        "FX.apollo",
        &[("a", "1"), ("b", "2"), ("c", "3")],
    )
}

/// docs/protocol.md#edge-cases (1)
#[test]
fn configs_304_on_equal_release_key() {
    let s = server(300);
    let k1 = publish(&s, A, "default", "application", &[("k", "v1")]);
    let k2 = publish(&s, A, "default", "application", &[("k", "v2")]);
    let r = get(
        &s,
        &format!("/configs/{A}/default/application?releaseKey={k2}"),
    );
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    for q in [
        format!("?releaseKey={k1}"),
        format!("?releaseKey={}", k2.to_uppercase()),
        "?releaseKey=".to_string(),
        String::new(),
    ] {
        let r = get(&s, &format!("/configs/{A}/default/application{q}"));
        assert_eq!(r.status, 200, "{q}");
        assert!(r.text().contains(&k2));
    }
}

/// docs/protocol.md#edge-cases (2)
#[test]
fn public_namespace_with_override() {
    let s = server(300);
    let kp = public_ns(&s);
    let ka = publish(&s, A, "default", "FX.apollo", &[("d", "D"), ("b", "B")]);
    let r = get(&s, &format!("/configs/{A}/default/FX.apollo"));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text(),
        format!(
            "{{\"appId\":\"{A}\",\"cluster\":\"default\",\"namespaceName\":\"FX.apollo\",\"configurations\":{{\"a\":\"1\",\"b\":\"B\",\"c\":\"3\",\"d\":\"D\"}},\"releaseKey\":\"{ka}+{kp}\"}}"
        )
    );
}

/// docs/protocol.md#edge-cases (3)
#[test]
fn public_namespace_without_override() {
    let s = server(300);
    let kp = public_ns(&s);
    let r = get(&s, "/configs/OtherApp/someCluster/FX.apollo");
    assert_eq!(
        r.text(),
        format!(
            "{{\"appId\":\"OtherApp\",\"cluster\":\"someCluster\",\"namespaceName\":\"FX.apollo\",\"configurations\":{{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\"}},\"releaseKey\":\"{kp}\"}}"
        )
    );
}

/// docs/protocol.md#edge-cases (4)
#[test]
fn override_in_data_center_public_in_default() {
    let s = server(300);
    let kp = public_ns(&s);
    let ka = publish(&s, A, "dc1", "FX.apollo", &[("a", "dc")]);
    let v = get(
        &s,
        &format!("/configs/{A}/default/FX.apollo?dataCenter=dc1"),
    )
    .json();
    assert_eq!(v["cluster"], "dc1");
    assert_eq!(v["releaseKey"], format!("{ka}+{kp}"));
    assert_eq!(v["configurations"]["a"], "dc");
    let v = get(
        &s,
        &format!("/configs/{A}/default/FX.apollo?dataCenter=unknown"),
    )
    .json();
    assert_eq!(v["cluster"], "default");
    assert_eq!(v["releaseKey"], kp);
}

/// docs/protocol.md#edge-cases (5)
#[test]
fn cluster_fallback_order() {
    let s = server(300);
    let kc = publish(&s, A, "c1", "application", &[("from", "c1")]);
    let kd = publish(&s, A, "dc1", "application", &[("from", "dc1")]);
    let kdef = publish(&s, A, "default", "application", &[("from", "default")]);
    let cases = [
        ("c1", "dc1", &kc, "c1"),
        ("c2", "dc1", &kd, "dc1"),
        ("c2", "dc2", &kdef, "default"),
        ("default", "dc1", &kd, "dc1"),
        ("dc1", "dc1", &kd, "dc1"),
        ("c2", "", &kdef, "default"),
    ];
    for (cluster, dc, key, want) in cases {
        let v = get(
            &s,
            &format!("/configs/{A}/{cluster}/application?dataCenter={dc}"),
        )
        .json();
        assert_eq!(v["releaseKey"], key.as_str(), "{cluster}/{dc}");
        assert_eq!(v["cluster"], want, "{cluster}/{dc}");
    }
}

/// docs/protocol.md#edge-cases (6)
#[test]
fn unknown_or_unreleased_namespace_404() {
    let s = server(300);
    s.admin()
        .create_namespace(A, "never", Format::Properties, false)
        .expect("ns");
    for ns in ["nothing", "never"] {
        for prefix in [
            "/configs",
            "/configfiles",
            "/configfiles/json",
            "/configfiles/raw",
        ] {
            let r = get(&s, &format!("{prefix}/{A}/default/{ns}"));
            assert_eq!(r.status, 404, "{prefix} {ns}");
        }
    }
}

/// docs/protocol.md#edge-cases (7)
#[test]
fn placeholder_app() {
    let s = server(300);
    publish(
        &s,
        "ApolloNoAppIdPlaceHolder",
        "default",
        "application",
        &[("x", "y")],
    );
    let kp = public_ns(&s);
    assert_eq!(
        get(&s, "/configs/ApolloNoAppIdPlaceHolder/default/application").status,
        404
    );
    let v = get(&s, "/configs/ApolloNoAppIdPlaceHolder/default/FX.apollo").json();
    assert_eq!(v["appId"], "ApolloNoAppIdPlaceHolder");
    assert_eq!(v["releaseKey"], kp);
}

/// docs/protocol.md#edge-cases (8)
#[test]
fn namespace_case_mismatch() {
    let s = server(300);
    let kp = public_ns(&s);
    let v = get(&s, &format!("/configs/{A}/default/fx.APOLLO")).json();
    assert_eq!(v["namespaceName"], "fx.APOLLO");
    assert_eq!(v["releaseKey"], kp);
    // Own (private) namespace with a different case.
    let k = publish(&s, A, "default", "MyNs", &[("m", "1")]);
    let v = get(&s, &format!("/configs/{A}/default/myns")).json();
    assert_eq!(v["namespaceName"], "myns");
    assert_eq!(v["releaseKey"], k);
}

/// docs/protocol.md#edge-cases (9)
#[test]
fn properties_suffix() {
    let s = server(300);
    let k = publish(&s, A, "default", "application", &[("k", "v")]);
    for ns in [
        "application.properties",
        "APPLICATION.PROPERTIES",
        "Application.Properties",
    ] {
        let r = get(&s, &format!("/configs/{A}/default/{ns}"));
        assert_eq!(
            r.text(),
            format!(
                "{{\"appId\":\"{A}\",\"cluster\":\"default\",\"namespaceName\":\"{ns}\",\"configurations\":{{\"k\":\"v\"}},\"releaseKey\":\"{k}\"}}"
            )
        );
    }
}

/// docs/protocol.md#edge-cases (10)
#[test]
fn non_properties_namespaces() {
    let s = server(300);
    for ext in ["yaml", "yml", "json", "txt", "xml"] {
        let ns = format!("foo.{ext}");
        s.admin()
            .publish_content(A, "default", &ns, &format!("text of {ext}\n"))
            .expect("publish");
        let v = get(&s, &format!("/configs/{A}/default/{ns}")).json();
        assert_eq!(
            v["configurations"],
            serde_json::json!({ "content": format!("text of {ext}\n") })
        );
        assert_eq!(v["namespaceName"], ns.as_str());
    }
    assert_eq!(get(&s, &format!("/configs/{A}/default/foo")).status, 404);
    publish(&s, A, "default", "foo", &[("p", "1")]);
    let v = get(&s, &format!("/configs/{A}/default/foo")).json();
    assert_eq!(v["configurations"], serde_json::json!({ "p": "1" }));
}

fn gray_setup(s: &TestServer, rules: Vec<GrayRule>) -> (String, String, String) {
    let normal = publish(s, A, "default", "application", &[("k", "normal")]);
    let branch = s
        .admin()
        .gray_create_branch(A, "default", "application")
        .expect("branch");
    let gray = s
        .admin()
        .gray_publish(A, "default", "application", [("k", "gray")])
        .expect("gray publish")
        .release_key;
    s.admin()
        .gray_set_rules(A, "default", "application", rules)
        .expect("rules");
    (normal, branch, gray)
}

/// docs/protocol.md#edge-cases (11)
#[test]
fn gray_rule_by_ip() {
    let s = server(300);
    let (normal, branch, gray) = gray_setup(
        &s,
        vec![GrayRule {
            client_app_id: A.into(),
            ips: vec!["10.0.0.1".into()],
            labels: vec![],
        }],
    );
    let v = get(&s, &format!("/configs/{A}/default/application?ip=10.0.0.1")).json();
    assert_eq!(v["cluster"], branch.as_str());
    assert_eq!(v["releaseKey"], gray.as_str());
    assert_eq!(v["configurations"]["k"], "gray");
    let v = get(&s, &format!("/configs/{A}/default/application?ip=10.0.0.2")).json();
    assert_eq!(v["cluster"], "default");
    assert_eq!(v["releaseKey"], normal.as_str());
    // Without `ip` the X-Forwarded-For header (first entry) decides.
    let v = get_h(
        &s,
        &format!("/configs/{A}/default/application"),
        &[("X-Forwarded-For", "10.0.0.1, 1.2.3.4")],
    )
    .json();
    assert_eq!(v["releaseKey"], gray.as_str());
}

/// docs/protocol.md#edge-cases (12)
#[test]
fn gray_rule_by_label_star_case_inactive() {
    let s = server(300);
    let (normal, _branch, gray) = gray_setup(
        &s,
        vec![GrayRule {
            client_app_id: A.to_lowercase(),
            ips: vec![],
            labels: vec!["canary".into()],
        }],
    );
    let key = |q: &str| {
        get(&s, &format!("/configs/{A}/default/application?{q}")).json()["releaseKey"].clone()
    };
    assert_eq!(key("label=canary"), gray.as_str());
    assert_eq!(key("label=other"), normal.as_str());
    assert_eq!(key("ip=1.1.1.1"), normal.as_str());
    // A `*` label list matches a client without label.
    s.admin()
        .gray_set_rules(
            A,
            "default",
            "application",
            vec![GrayRule {
                client_app_id: A.into(),
                ips: vec![],
                labels: vec!["*".into()],
            }],
        )
        .expect("rules");
    assert_eq!(key("ip=1.1.1.1"), gray.as_str());
    // `*` ip list.
    s.admin()
        .gray_set_rules(
            A,
            "default",
            "application",
            vec![GrayRule {
                client_app_id: A.into(),
                ips: vec!["*".into()],
                labels: vec![],
            }],
        )
        .expect("rules");
    assert_eq!(key("ip=9.9.9.9"), gray.as_str());
    // Rule for another client app does not match.
    let v = get(&s, "/configs/Other/default/application?ip=9.9.9.9");
    assert_eq!(v.status, 404);
    // Inactive branch is ignored.
    s.admin()
        .gray_set_active(A, "default", "application", false)
        .expect("inactive");
    assert_eq!(key("ip=9.9.9.9"), normal.as_str());
}

/// docs/protocol.md#edge-cases (13)
#[test]
fn gray_client_on_configfiles_never_cached() {
    let s = server(300);
    gray_setup(
        &s,
        vec![GrayRule {
            client_app_id: A.into(),
            ips: vec!["10.0.0.1".into()],
            labels: vec![],
        }],
    );
    for _ in 0..2 {
        assert_eq!(
            get(
                &s,
                &format!("/configfiles/json/{A}/default/application?ip=10.0.0.2")
            )
            .text(),
            "{\"k\":\"normal\"}"
        );
        assert_eq!(
            get(
                &s,
                &format!("/configfiles/json/{A}/default/application?ip=10.0.0.1")
            )
            .text(),
            "{\"k\":\"gray\"}"
        );
        assert_eq!(
            get(
                &s,
                &format!("/configfiles/{A}/default/application?ip=10.0.0.1")
            )
            .text(),
            "k=gray\n"
        );
    }
    s.admin()
        .gray_publish(A, "default", "application", [("k", "gray2")])
        .expect("gray");
    assert_eq!(
        get(
            &s,
            &format!("/configfiles/json/{A}/default/application?ip=10.0.0.1")
        )
        .text(),
        "{\"k\":\"gray2\"}"
    );
    publish(&s, A, "default", "application", &[("k", "normal2")]);
    assert_eq!(
        get(
            &s,
            &format!("/configfiles/json/{A}/default/application?ip=10.0.0.2")
        )
        .text(),
        "{\"k\":\"normal2\"}"
    );
}

/// docs/protocol.md#edge-cases (14)
#[test]
fn minus_one_answers_immediately() {
    let s = server(5000);
    let id1 = s
        .admin()
        .publish(A, "default", "application", [("k", "v")])
        .expect("p")
        .message_id;
    let id2 = s
        .admin()
        .publish(A, "c1", "application", [("k", "v")])
        .expect("p")
        .message_id;
    let t = Instant::now();
    let r = get(&s, &poll_path(A, "c1", &[("application", -1)]));
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/json;charset=UTF-8")
    );
    assert_eq!(
        r.text(),
        format!(
            "[{{\"namespaceName\":\"application\",\"notificationId\":{id2},\"messages\":{{\"details\":{{\"{A}+c1+application\":{id2},\"{A}+default+application\":{id1}}}}}}}]"
        )
    );
}

/// docs/protocol.md#edge-cases (15)
#[test]
fn up_to_date_is_held_then_304() {
    let s = server(400);
    let id = s
        .admin()
        .publish(A, "default", "application", [("k", "v")])
        .expect("p")
        .message_id;
    let t = Instant::now();
    let r = get(&s, &poll_path(A, "default", &[("application", id)]));
    let e = t.elapsed();
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    assert!(e >= Duration::from_millis(380), "{e:?}");
    // Newer than the latest: held too.
    let r = get(&s, &poll_path(A, "default", &[("application", id + 100)]));
    assert_eq!(r.status, 304);
}

fn held_poll(s: &TestServer, path: String) -> std::thread::JoinHandle<(Resp, Instant)> {
    let addr = s.addr();
    std::thread::spawn(move || {
        let r = request(addr, "GET", &path, &[], None);
        (r, Instant::now())
    })
}

fn wait_held(s: &TestServer, n: usize) {
    let t = Instant::now();
    while s.admin().held_polls() < n {
        assert!(t.elapsed() < Duration::from_secs(10), "poll was not held");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// docs/protocol.md#edge-cases (16)
#[test]
fn publish_wakes_held_poll_with_one_notification() {
    let s = server(10_000);
    let id = s
        .admin()
        .publish(A, "default", "application", [("k", "v")])
        .expect("p")
        .message_id;
    s.admin()
        .publish(A, "default", "other", [("k", "v")])
        .expect("p");
    let h = held_poll(
        &s,
        poll_path(A, "default", &[("application", id), ("other", 1_000_000)]),
    );
    wait_held(&s, 1);
    let published = Instant::now();
    let new = s
        .admin()
        .publish(A, "default", "application", [("k", "v2")])
        .expect("p")
        .message_id;
    let (r, answered) = h.join().expect("thread");
    assert!(answered.duration_since(published) < Duration::from_millis(1500));
    assert_eq!(
        r.text(),
        format!(
            "[{{\"namespaceName\":\"application\",\"notificationId\":{new},\"messages\":{{\"details\":{{\"{A}+default+application\":{new}}}}}}}]"
        )
    );
}

/// docs/protocol.md#edge-cases (17)
#[test]
fn never_published_namespace_is_held() {
    let s = server(300);
    s.admin()
        .publish(A, "default", "application", [("k", "v")])
        .expect("p");
    let t = Instant::now();
    let r = get(&s, &poll_path(A, "default", &[("unpublished", -1)]));
    assert_eq!(r.status, 304);
    assert!(t.elapsed() >= Duration::from_millis(280));
}

/// docs/protocol.md#edge-cases (18)
#[test]
fn names_mapped_back_as_sent() {
    let s = server(5000);
    public_ns(&s);
    s.admin()
        .publish(A, "default", "application", [("k", "v")])
        .expect("p");
    let v = get(
        &s,
        &poll_path(A, "default", &[("application.properties", -1)]),
    )
    .json();
    assert_eq!(v[0]["namespaceName"], "application");
    let v = get(&s, &poll_path(A, "default", &[("fX.apollo", -1)])).json();
    assert_eq!(v[0]["namespaceName"], "fX.apollo");
    // Held path maps back too.
    let last = s.store().last_message_id();
    let h = held_poll(
        &s,
        poll_path(A, "default", &[("fX.apollo.properties", last)]),
    );
    wait_held(&s, 1);
    publish(&s, P, "default", "FX.apollo", &[("z", "1")]);
    let (r, _) = h.join().expect("thread");
    assert_eq!(r.json()[0]["namespaceName"], "fX.apollo");
}

/// docs/protocol.md#edge-cases (19)
#[test]
fn two_spellings_smaller_id_answered() {
    let s = server(5000);
    public_ns(&s);
    let last = s.store().last_message_id();
    let v = get(
        &s,
        &poll_path(A, "default", &[("FX.apollo", last), ("fx.apollo", -1)]),
    )
    .json();
    let arr = v.as_array().expect("array");
    assert_eq!(arr.len(), 1);
    assert_eq!(arr[0]["namespaceName"], "fx.apollo");
    assert_eq!(arr[0]["notificationId"], last);
}

/// docs/protocol.md#edge-cases (20)
#[test]
fn watch_keys_cluster_data_center_default() {
    let s = server(10_000);
    let a = s
        .admin()
        .publish(A, "c1", "application", [("k", "1")])
        .expect("p")
        .message_id;
    let b = s
        .admin()
        .publish(A, "dc1", "application", [("k", "1")])
        .expect("p")
        .message_id;
    let c = s
        .admin()
        .publish(A, "default", "application", [("k", "1")])
        .expect("p")
        .message_id;
    let path = |id: i64| {
        format!(
            "/notifications/v2?cluster=c1&dataCenter=dc1&appId={A}&notifications={}",
            notif(&[("application", id)])
        )
    };
    let v = get(&s, &path(-1)).json();
    assert_eq!(v[0]["notificationId"], c);
    assert_eq!(
        v[0]["messages"]["details"],
        serde_json::json!({ format!("{A}+c1+application"): a, format!("{A}+dc1+application"): b, format!("{A}+default+application"): c })
    );
    for cluster in ["c1", "dc1", "default"] {
        let last = s.store().last_message_id();
        let h = held_poll(&s, path(last));
        wait_held(&s, 1);
        let id = s
            .admin()
            .publish(A, cluster, "application", [("k", cluster)])
            .expect("p")
            .message_id;
        let (r, _) = h.join().expect("thread");
        let v = r.json();
        assert_eq!(v[0]["notificationId"], id);
        assert_eq!(
            v[0]["messages"]["details"],
            serde_json::json!({ format!("{A}+{cluster}+application"): id })
        );
    }
}

/// docs/protocol.md#edge-cases (21)
#[test]
fn public_owner_release_wakes_subscriber() {
    let s = server(10_000);
    public_ns(&s);
    let last = s.store().last_message_id();
    let h = held_poll(
        &s,
        poll_path(A, "default", &[("application", last), ("FX.apollo", last)]),
    );
    wait_held(&s, 1);
    let id = s
        .admin()
        .publish(P, "default", "FX.apollo", [("a", "2")])
        .expect("p")
        .message_id;
    let (r, _) = h.join().expect("thread");
    assert_eq!(
        r.text(),
        format!(
            "[{{\"namespaceName\":\"FX.apollo\",\"notificationId\":{id},\"messages\":{{\"details\":{{\"{P}+default+FX.apollo\":{id}}}}}}}]"
        )
    );
}

/// docs/protocol.md#edge-cases (22)
#[test]
fn only_application_skips_public_watch_keys() {
    let s = server(400);
    public_ns(&s);
    // The placeholder app has no own watch keys; with only `application` it has none at all.
    s.admin()
        .publish(P, "default", "application", [("k", "v")])
        .expect("p");
    let t = Instant::now();
    let r = get(
        &s,
        &poll_path(
            "ApolloNoAppIdPlaceHolder",
            "default",
            &[("application", -1)],
        ),
    );
    assert_eq!(r.status, 304);
    assert!(t.elapsed() >= Duration::from_millis(380));
    // With a public namespace in the request, the owner's keys are watched.
    let v = get(
        &s,
        &poll_path(
            "ApolloNoAppIdPlaceHolder",
            "default",
            &[("application", -1), ("FX.apollo", -1)],
        ),
    )
    .json();
    assert_eq!(v.as_array().map(Vec::len), Some(1));
    assert_eq!(v[0]["namespaceName"], "FX.apollo");
}

/// docs/protocol.md#edge-cases (23)
#[test]
fn invalid_notifications_400() {
    let s = server(300);
    for raw in [
        "not json",
        "[]",
        "[{\"namespaceName\":\"\",\"notificationId\":1}]",
        "{}",
        "[1]",
    ] {
        let r = get(&s, &poll_path_raw(A, "default", raw));
        assert_eq!(r.status, 400, "{raw}");
        assert!(
            r.text().contains("invalid notifications format"),
            "{}",
            r.text()
        );
    }
    // A missing `cluster` or `notifications` is not a 400 but the real server's 500
    // (tests/error_paths.rs, `missing_poll_parameters_are_500`).
}

/// docs/protocol.md#edge-cases (24)
#[test]
fn messages_force_fresh_read_with_release_cache() {
    let a = server(300);
    let lagging = TestServer::builder()
        .store(a.store())
        .lag(Duration::from_secs(30))
        .hold(Duration::from_millis(300))
        .start()
        .expect("second instance");
    // A release old enough for the lagging instance does not exist: it sees nothing yet.
    let r = a
        .admin()
        .publish(A, "default", "application", [("k", "v1")])
        .expect("p");
    assert_eq!(
        get(&a, &format!("/configs/{A}/default/application")).status,
        200
    );
    assert_eq!(
        get(&lagging, &format!("/configs/{A}/default/application")).status,
        404
    );
    let messages = enc(&format!(
        "{{\"details\":{{\"{A}+default+application\":{}}}}}",
        r.message_id
    ));
    // Cache switch off: messages ignored.
    assert_eq!(
        get(
            &lagging,
            &format!("/configs/{A}/default/application?messages={messages}")
        )
        .status,
        404
    );
    a.admin().set_switches(Switches {
        release_cache: true,
        ..Switches::default()
    });
    let v = get(
        &lagging,
        &format!("/configs/{A}/default/application?messages={messages}"),
    )
    .json();
    assert_eq!(v["releaseKey"], r.release_key.as_str());
    // Malformed messages are ignored, not an error.
    assert_eq!(
        get(
            &lagging,
            &format!("/configs/{A}/default/application?messages=%7Bbad")
        )
        .status,
        404
    );
    assert_eq!(
        get(
            &a,
            &format!("/configs/{A}/default/application?messages=%7Bbad")
        )
        .status,
        200
    );
}

/// docs/protocol.md#edge-cases (25)
#[test]
fn plus_in_query_must_be_percent_encoded() {
    let s = server(300);
    public_ns(&s);
    publish(&s, A, "default", "FX.apollo", &[("x", "1")]);
    let key = get(&s, &format!("/configs/{A}/default/FX.apollo")).json()["releaseKey"]
        .as_str()
        .expect("key")
        .to_string();
    assert!(key.contains('+'));
    assert_eq!(
        get(
            &s,
            &format!("/configs/{A}/default/FX.apollo?releaseKey={}", enc(&key))
        )
        .status,
        304
    );
    assert_eq!(
        get(
            &s,
            &format!("/configs/{A}/default/FX.apollo?releaseKey={key}")
        )
        .status,
        200
    );
}

fn signed(s: &TestServer, path: &str, secret: &str, ts: u64) -> Resp {
    let sig = signature(secret, &ts.to_string(), path);
    get_h(
        s,
        path,
        &[
            ("Authorization", &format!("Apollo {A}:{sig}")),
            ("Timestamp", &ts.to_string()),
        ],
    )
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

/// docs/protocol.md#edge-cases (26)
#[test]
fn access_keys() {
    let s = server(300);
    publish(&s, A, "default", "application", &[("k", "v")]);
    let path = format!("/configs/{A}/default/application?ip=10.0.0.1");
    let k1 = s
        .admin()
        .add_access_key(A, "secret-one", AccessKeyMode::Filter)
        .expect("key");
    assert_eq!(signed(&s, &path, "secret-one", now_ms()).status, 200);
    let r = signed(&s, &path, "secret-one", now_ms() - 61_000);
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["message"], "RequestTimeTooSkewed");
    assert_eq!(r.json()["error"], "Unauthorized");
    let r = signed(&s, &path, "wrong", now_ms());
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["message"], "Unauthorized");
    assert_eq!(get(&s, &path).status, 401);
    // Several secrets: any one passes.
    s.admin()
        .add_access_key(A, "secret-two", AccessKeyMode::Filter)
        .expect("key");
    assert_eq!(signed(&s, &path, "secret-two", now_ms()).status, 200);
    assert_eq!(signed(&s, &path, "secret-one", now_ms()).status, 200);
    // Disabled keys are ignored.
    s.admin()
        .set_access_key_enabled(A, k1.id, false)
        .expect("disable");
    assert_eq!(signed(&s, &path, "secret-one", now_ms()).status, 401);
    // Notifications are filtered too.
    let np = poll_path(A, "default", &[("application", -1)]);
    assert_eq!(get(&s, &np).status, 401);
    assert_eq!(signed(&s, &np, "secret-two", now_ms()).status, 200);
    // OBSERVER-only keys never reject.
    let o = server(300);
    publish(&o, A, "default", "application", &[("k", "v")]);
    o.admin()
        .add_access_key(A, "observed", AccessKeyMode::Observer)
        .expect("key");
    assert_eq!(get(&o, &path).status, 200);
    assert_eq!(signed(&o, &path, "wrong", now_ms() - 1_000_000).status, 200);
    // Tolerance switch.
    s.admin().set_switches(Switches {
        access_key_tolerance_ms: 120_000,
        ..Switches::default()
    });
    assert_eq!(
        signed(&s, &path, "secret-two", now_ms() - 61_000).status,
        200
    );
    // `/services` is never authenticated.
    assert_eq!(get(&s, &format!("/services/config?appId={A}")).status, 200);
}

/// docs/protocol.md#edge-cases (27)
#[test]
fn signature_over_raw_path_and_query() {
    // Test vector of the Java client (SignatureTest).
    assert_eq!(
        signature(
            "df23df3f59884980844ff3dada30fa97",
            "1576478257344",
            "/configs/100004458/default/application?ip=10.0.0.1"
        ),
        "EoKyziXvKqzHgwx+ijDJwgVTDgE="
    );
    let s = server(300);
    publish(&s, A, "default", "application", &[("k", "v")]);
    s.admin()
        .add_access_key(A, "sec", AccessKeyMode::Filter)
        .expect("key");
    let ts = now_ms().to_string();
    // Raw query, percent-encoding included; the appId in the header is not checked.
    let path = format!("/configs/{A}/default/application?ip=10.0.0.1&releaseKey=a%2Bb");
    let sig = signature("sec", &ts, &path);
    let r = get_h(
        &s,
        &path,
        &[
            ("Authorization", &format!("Apollo SomeoneElse:{sig}")),
            ("Timestamp", &ts),
        ],
    );
    assert_eq!(r.status, 200);
    // Decoded query does not verify.
    let bad = signature(
        "sec",
        &ts,
        &format!("/configs/{A}/default/application?ip=10.0.0.1&releaseKey=a+b"),
    );
    let r = get_h(
        &s,
        &path,
        &[
            ("Authorization", &format!("Apollo {A}:{bad}")),
            ("Timestamp", &ts),
        ],
    );
    assert_eq!(r.status, 401);
    // No `?` when the query is empty (also for a bare trailing `?`).
    let bare = format!("/configs/{A}/default/application");
    let sig = signature("sec", &ts, &bare);
    for p in [bare.clone(), format!("{bare}?")] {
        let r = get_h(
            &s,
            &p,
            &[
                ("Authorization", &format!("Apollo {A}:{sig}")),
                ("Timestamp", &ts),
            ],
        );
        assert_eq!(r.status, 200, "{p}");
    }
}

/// docs/protocol.md#edge-cases (28)
#[test]
fn invalid_app_id_400() {
    let s = server(300);
    publish(&s, A, "default", "application", &[("k", "v")]);
    for app in ["a+b", "%C3%A9", ".dot", "a%20b"] {
        for prefix in [
            "/configs",
            "/configfiles",
            "/configfiles/json",
            "/configfiles/raw",
        ] {
            let r = get(&s, &format!("{prefix}/{app}/default/application"));
            assert_eq!(r.status, 400, "{prefix}/{app}");
            assert_eq!(r.json()["message"], "InvalidAppId");
        }
        let r = get(
            &s,
            &format!(
                "/notifications/v2?cluster=default&appId={app}&notifications={}",
                notif(&[("application", -1)])
            ),
        );
        assert_eq!(r.status, 400, "notifications {app}");
        assert_eq!(r.json()["message"], "InvalidAppId");
    }
    let r = get(
        &s,
        &format!(
            "/notifications/v2?cluster=default&notifications={}",
            notif(&[("application", -1)])
        ),
    );
    assert_eq!(r.status, 400);
}

/// docs/protocol.md#edge-cases (29)
#[test]
fn configfiles_formats_and_content_types() {
    let s = server(300);
    s.admin()
        .publish_content(A, "default", "foo.yaml", "a:\n  b: 1\n")
        .expect("p");
    s.admin()
        .publish_content(A, "default", "foo.json", "{\"a\":1}")
        .expect("p");
    s.admin()
        .publish_content(A, "default", "foo.xml", "<a/>")
        .expect("p");
    s.admin()
        .publish_content(A, "default", "foo.txt", "plain")
        .expect("p");
    publish(&s, A, "default", "application", &[("b", "2"), ("a", "x=y")]);
    let r = get(&s, &format!("/configfiles/raw/{A}/default/foo.yaml"));
    assert_eq!(
        r.header("content-type"),
        Some("application/yaml;charset=UTF-8")
    );
    assert_eq!(r.text(), "a:\n  b: 1\n");
    let r = get(&s, &format!("/configfiles/raw/{A}/default/foo.json"));
    assert_eq!(
        r.header("content-type"),
        Some("application/json;charset=UTF-8")
    );
    assert_eq!(r.text(), "{\"a\":1}");
    assert_eq!(
        get(&s, &format!("/configfiles/raw/{A}/default/foo.xml")).header("content-type"),
        Some("application/xml;charset=UTF-8")
    );
    assert_eq!(
        get(&s, &format!("/configfiles/raw/{A}/default/foo.txt")).header("content-type"),
        Some("text/plain;charset=UTF-8")
    );
    let r = get(&s, &format!("/configfiles/raw/{A}/default/application"));
    assert_eq!(r.header("content-type"), Some("text/plain;charset=UTF-8"));
    assert_eq!(r.text(), "a=x\\=y\nb=2\n");
    let r = get(
        &s,
        &format!("/configfiles/{A}/default/application.properties"),
    );
    assert_eq!(r.text(), "a=x\\=y\nb=2\n");
    let r = get(&s, &format!("/configfiles/json/{A}/default/application"));
    assert_eq!(
        r.header("content-type"),
        Some("application/json;charset=UTF-8")
    );
    assert_eq!(r.text(), "{\"b\":\"2\",\"a\":\"x\\u003dy\"}");
    let r = get(&s, &format!("/configfiles/json/{A}/default/foo.yaml"));
    assert_eq!(r.text(), "{\"content\":\"a:\\n  b: 1\\n\"}");
}

/// docs/protocol.md#edge-cases (30)
#[test]
fn gson_string_escaping() {
    let s = server(300);
    let k = publish(
        &s,
        A,
        "default",
        "application",
        &[
            ("eq", "a=b&c"),
            ("html", "<x y='1'>"),
            ("ctl", "t\tn\nr\rb\u{8}f\u{c}z\u{1}"),
            ("uni", "é中😀/\\\""),
            ("ls", "\u{2028}\u{2029}"),
        ],
    );
    let r = get(&s, &format!("/configs/{A}/default/application"));
    assert_eq!(
        r.text(),
        format!(
            "{{\"appId\":\"{A}\",\"cluster\":\"default\",\"namespaceName\":\"application\",\"configurations\":{{\"eq\":\"a\\u003db\\u0026c\",\"html\":\"\\u003cx y\\u003d\\u00271\\u0027\\u003e\",\"ctl\":\"t\\tn\\nr\\rb\\bf\\fz\\u0001\",\"uni\":\"é中😀/\\\\\\\"\",\"ls\":\"\\u2028\\u2029\"}},\"releaseKey\":\"{k}\"}}"
        )
    );
}

/// docs/protocol.md#edge-cases (31)
#[test]
fn incremental_sync() {
    let s = server(300);
    let old = publish(
        &s,
        A,
        "default",
        "application",
        &[("keep", "1"), ("mod", "a"), ("del", "x")],
    );
    let new = publish(
        &s,
        A,
        "default",
        "application",
        &[("add", "n"), ("keep", "1"), ("mod", "b")],
    );
    // Switch off: full response.
    let v = get(
        &s,
        &format!("/configs/{A}/default/application?releaseKey={old}"),
    )
    .json();
    assert!(v.get("configurations").is_some());
    s.admin().set_switches(Switches {
        incremental_sync: true,
        ..Switches::default()
    });
    let r = get(
        &s,
        &format!("/configs/{A}/default/application?releaseKey={old}"),
    );
    assert_eq!(
        r.text(),
        format!(
            "{{\"appId\":\"{A}\",\"cluster\":\"default\",\"namespaceName\":\"application\",\"releaseKey\":\"{new}\",\"configSyncType\":\"IncrementalSync\",\"configurationChanges\":[{{\"key\":\"add\",\"newValue\":\"n\",\"configurationChangeType\":\"ADDED\"}},{{\"key\":\"del\",\"configurationChangeType\":\"DELETED\"}},{{\"key\":\"mod\",\"newValue\":\"b\",\"configurationChangeType\":\"MODIFIED\"}}]}}"
        )
    );
    // Unknown old key or none: full sync without configSyncType.
    for q in ["?releaseKey=20200101000000-0000000000000000", ""] {
        let r = get(&s, &format!("/configs/{A}/default/application{q}"));
        assert!(!r.text().contains("configSyncType"));
        assert!(
            r.text()
                .contains("\"configurations\":{\"add\":\"n\",\"keep\":\"1\",\"mod\":\"b\"}")
        );
    }
}

/// docs/protocol.md#edge-cases (32)
#[test]
fn services_lists() {
    let s = server(300);
    let url = format!("http://{}/", s.addr());
    let want = format!(
        "[{{\"appName\":\"apollo-configservice\",\"instanceId\":\"{url}\",\"homepageUrl\":\"{url}\"}}]"
    );
    let r = get(&s, "/services/config?appId=whatever&ip=1.2.3.4");
    assert_eq!(r.text(), want);
    assert_eq!(
        r.header("content-type"),
        Some("application/json;charset=UTF-8")
    );
    assert_eq!(get(&s, "/services/meta").text(), "[]");
    assert_eq!(get(&s, "/services/admin").text(), "[]");
    s.admin().set_config_services(vec![]);
    assert_eq!(get(&s, "/services/config").text(), "[]");
}

/// docs/protocol.md#edge-cases (41)
#[test]
fn default_hold_below_client_read_timeout() {
    assert_eq!(apolloconf_testserver::DEFAULT_HOLD, Duration::from_secs(60));
    assert!(apolloconf_testserver::DEFAULT_HOLD < Duration::from_secs(90));
    let s = TestServer::start().expect("start");
    assert_eq!(
        admin(&s, "GET", "/__admin/settings", "").json()["holdMs"],
        60_000
    );
}

/// docs/protocol.md#edge-cases (42)
#[test]
fn full_sync_always_has_configurations() {
    let s = server(300);
    let k = publish(&s, A, "default", "application", &[]);
    assert_eq!(
        get(&s, &format!("/configs/{A}/default/application")).text(),
        format!(
            "{{\"appId\":\"{A}\",\"cluster\":\"default\",\"namespaceName\":\"application\",\"configurations\":{{}},\"releaseKey\":\"{k}\"}}"
        )
    );
}

/// docs/protocol.md#edge-cases (43)
#[test]
fn empty_namespace_on_configfiles() {
    let s = server(300);
    publish(&s, A, "default", "application", &[]);
    let r = get(&s, &format!("/configfiles/{A}/default/application"));
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert_eq!(
        get(&s, &format!("/configfiles/json/{A}/default/application")).text(),
        "{}"
    );
    assert_eq!(
        get(&s, &format!("/configfiles/raw/{A}/default/application")).text(),
        ""
    );
}

/// docs/protocol.md#edge-cases (44)
#[test]
fn gray_cluster_is_branch_watch_keys_parent() {
    let s = server(10_000);
    let (_, branch, _) = gray_setup(
        &s,
        vec![GrayRule {
            client_app_id: A.into(),
            ips: vec!["10.0.0.1".into()],
            labels: vec![],
        }],
    );
    assert_eq!(
        get(&s, &format!("/configs/{A}/default/application?ip=10.0.0.1")).json()["cluster"],
        branch.as_str()
    );
    let last = s.store().last_message_id();
    let h = held_poll(&s, poll_path(A, "default", &[("application", last)]));
    wait_held(&s, 1);
    let id = s
        .admin()
        .gray_publish(A, "default", "application", [("k", "g2")])
        .expect("p")
        .message_id;
    let (r, _) = h.join().expect("thread");
    assert_eq!(
        r.json()[0]["messages"]["details"],
        serde_json::json!({ format!("{A}+default+application"): id })
    );
}

#[test]
fn release_key_format_and_increasing_message_ids() {
    let s = server(300);
    let a = s
        .admin()
        .publish(A, "default", "application", [("k", "1")])
        .expect("p");
    let b = s
        .admin()
        .publish("Other", "c", "ns", [("k", "1")])
        .expect("p");
    assert!(b.message_id > a.message_id);
    for k in [&a.release_key, &b.release_key] {
        assert_eq!(k.len(), 31);
        let (date, hex) = k.split_at(14);
        assert!(date.chars().all(|c| c.is_ascii_digit()));
        assert!(hex.starts_with('-'));
        assert!(
            hex[1..]
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        );
    }
    assert_ne!(a.release_key, b.release_key);
}

#[test]
fn legacy_v1_notifications() {
    let s = server(300);
    let t = Instant::now();
    let r = get(
        &s,
        &format!("/notifications?appId={A}&cluster=default&namespace=application"),
    );
    assert_eq!(r.status, 304);
    assert!(t.elapsed() >= Duration::from_millis(280));
    let id = s
        .admin()
        .publish(A, "default", "application", [("k", "v")])
        .expect("p")
        .message_id;
    let r = get(
        &s,
        &format!("/notifications?appId={A}&cluster=default&namespace=application.properties"),
    );
    assert_eq!(
        r.text(),
        format!("{{\"namespaceName\":\"application\",\"notificationId\":{id}}}")
    );
    let r = get(
        &s,
        &format!("/notifications?appId={A}&cluster=default&notificationId={id}"),
    );
    assert_eq!(r.status, 304);
}
