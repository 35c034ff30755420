//! The error paths and request shapes where the test server answers as the real config
//! service (Apollo's controllers and exception handler, Spring Boot, Spring Security and
//! Tomcat) does: issue 12, part 1, one test per numbered item (or group of items).

mod common;

use std::time::{Duration, Instant};

use apolloconf_testserver::TestServer;
use common::*;

const A: &str = "SampleApp";

/// `{"timestamp":...}` of Spring Boot's error page: a `java.util.Date` in Apollo's Gson
/// format `yyyy-MM-dd'T'HH:mm:ss.SSSZ`.
fn is_gson_date(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() == 28
        && s.ends_with("+0000")
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23..=27 => true,
            _ => c.is_ascii_digit(),
        })
}

/// `LocalDateTime#format(ISO_LOCAL_DATE_TIME)`: seconds, then 0 to 6 fraction digits.
fn is_iso_local(s: &str) -> bool {
    let (main, frac) = s.split_once('.').unwrap_or((s, ""));
    main.len() == 19
        && &main[10..11] == "T"
        && frac.len() <= 6
        && frac.bytes().all(|c| c.is_ascii_digit())
        && !frac.ends_with('0')
}

/// The field names of a flat JSON object in document order.
fn keys_in_order(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut de = serde_json::Deserializer::from_str(text);
    struct Keys<'a>(&'a mut Vec<String>);
    impl<'de> serde::de::Visitor<'de> for Keys<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<M: serde::de::MapAccess<'de>>(self, mut m: M) -> Result<(), M::Error> {
            while let Some((k, _)) = m.next_entry::<String, serde_json::Value>()? {
                self.0.push(k);
            }
            Ok(())
        }
    }
    serde::Deserializer::deserialize_map(&mut de, Keys(&mut out)).expect("an object");
    out
}

fn is_tomcat_400(r: &Resp) -> bool {
    r.status == 400
        && r.header("content-type") == Some("text/html;charset=utf-8")
        && r.text().starts_with("<!doctype html><html lang=\"en\"><head><title>HTTP Status 400 \u{2013} Bad Request</title>")
        && r.text().ends_with("<h1>HTTP Status 400 \u{2013} Bad Request</h1></body></html>")
        // Rejected before Spring Security ever runs.
        && r.header("x-content-type-options").is_none()
}

/// Items 1, 9: a missing required parameter is Spring's
/// `MissingServletRequestParameterException`, which Apollo's handler maps to 500 (only
/// method-not-supported and media-type exceptions are 400); the body is a `HashMap`
/// written by Gson: `exception`, `message`, `status`, `timestamp`.
#[test]
fn missing_poll_parameters_are_500() {
    let s = server(300);
    let r = get(
        &s,
        &format!(
            "/notifications/v2?appId={A}&notifications={}",
            notif(&[("application", -1)])
        ),
    );
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(
        keys_in_order(&r.text()),
        ["exception", "message", "status", "timestamp"]
    );
    let v = r.json();
    assert_eq!(
        v["exception"],
        "org.springframework.web.bind.MissingServletRequestParameterException"
    );
    assert_eq!(
        v["message"],
        "Required request parameter 'cluster' for method parameter type String is not present"
    );
    // Gson's HTML-safe escaping of the quotes.
    assert!(r.text().contains("\\u0027cluster\\u0027"), "{}", r.text());
    assert_eq!(v["status"], 500);
    assert!(is_iso_local(v["timestamp"].as_str().expect("ts")), "{v}");

    let r = get(&s, &format!("/notifications/v2?cluster=default&appId={A}"));
    assert_eq!(r.status, 500);
    assert_eq!(
        r.json()["message"],
        "Required request parameter 'notifications' for method parameter type String is not present"
    );
    // The legacy endpoint: `cluster` is required there too; a `notificationId` that is
    // not a long fails Spring's conversion (also a 500).
    let r = get(&s, &format!("/notifications?appId={A}"));
    assert_eq!(r.status, 500);
    assert_eq!(
        r.json()["exception"],
        "org.springframework.web.bind.MissingServletRequestParameterException"
    );
    let r = get(
        &s,
        &format!("/notifications?appId={A}&cluster=default&notificationId=abc"),
    );
    assert_eq!(r.status, 500);
    assert_eq!(
        r.json()["exception"],
        "org.springframework.web.method.annotation.MethodArgumentTypeMismatchException"
    );
    // A missing app id is the access-key filter's 400 before any of that.
    let r = get(&s, "/notifications/v2?cluster=default");
    assert_eq!(
        (r.status, r.json()["message"].as_str()),
        (400, Some("InvalidAppId"))
    );
}

/// Item 2: a `null` element of `notifications` reaches `notification.getNamespaceName()`.
#[test]
fn null_notification_is_a_500_null_pointer() {
    let s = server(300);
    for raw in [
        "[null]",
        "[{\"namespaceName\":\"application\",\"notificationId\":-1},null]",
    ] {
        let r = get(&s, &poll_path_raw(A, "default", raw));
        assert_eq!(r.status, 500, "{raw}: {}", r.text());
        let v = r.json();
        assert_eq!(v["exception"], "java.lang.NullPointerException");
        assert!(
            v["message"]
                .as_str()
                .is_some_and(|m| m.contains("getNamespaceName()")),
            "{v}"
        );
    }
}

/// Item 3: Gson reads a quoted number into the `long` field, and a number into the
/// `String` field; what it cannot read is still a 400.
#[test]
fn gson_reads_quoted_ids_and_numeric_names() {
    let s = server(300);
    let id = s
        .admin()
        .publish(A, "default", "application", [("k", "v")])
        .expect("publish")
        .message_id;
    let poll = |raw: &str| get(&s, &poll_path_raw(A, "default", raw));
    let r = poll("[{\"namespaceName\":\"application\",\"notificationId\":\"-1\"}]");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()[0]["notificationId"], id);
    // "-1" read as -1, not as 0 or an error: the same answer as -1.
    let t = Instant::now();
    let r = poll(&format!(
        "[{{\"namespaceName\":\"application\",\"notificationId\":\"{id}\"}}]"
    ));
    assert_eq!(r.status, 304, "held like the number {id}");
    assert!(t.elapsed() >= Duration::from_millis(250));
    s.admin()
        .publish(A, "default", "7", [("k", "v")])
        .expect("publish 7");
    let r = poll("[{\"namespaceName\":7,\"notificationId\":-1}]");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()[0]["namespaceName"], "7");
    for bad in [
        "[{\"namespaceName\":\"application\",\"notificationId\":\"x\"}]",
        "[{\"namespaceName\":\"application\",\"notificationId\":1.5}]",
        "[{\"namespaceName\":[\"application\"]}]",
    ] {
        let r = poll(bad);
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(
            r.json()["exception"],
            "com.ctrip.framework.apollo.common.exception.BadRequestException"
        );
    }
}

/// Items 4, 5: Tomcat rejects these requests with its own HTML page before Spring runs.
#[test]
fn tomcat_rejects_bad_targets_and_long_heads() {
    let s = server(300);
    s.admin()
        .publish(A, "default", "application", [("k", "v")])
        .expect("publish");
    // A client that escapes the quotes but not the brackets.
    let json = "[{%22namespaceName%22:%22application%22,%22notificationId%22:-1}]";
    for target in [
        format!("/notifications/v2?cluster=default&appId={A}&notifications={json}"),
        format!("/configs/{A}/default/application?ip=[::1]"),
        format!("/configs/{A}/default/application?label={{x}}"),
        format!("/configs/{A}/default/application?label=a|b"),
        format!("/configs/{A}/default/application?label=\u{e9}"),
        format!("/configs/{A}/default/a%2Fb"),
        format!("/configs/{A}/default/a%2fb"),
        format!("/configs/{A}/default/a%5Cb"),
        format!("/configs/{A}/default/%zz"),
        format!("/configs/{A}/default/%2e%2e"),
        format!("/configs/{A}/default/app{{lication}}"),
    ] {
        let r = get(&s, &target);
        assert!(
            is_tomcat_400(&r),
            "{target}: {} {:?} {}",
            r.status,
            r.headers,
            r.text()
        );
        assert_eq!(r.header("connection"), Some("close"));
    }
    // Encoded, the same characters are fine.
    let r = get(&s, &poll_path(A, "default", &[("application", -1)]));
    assert_eq!(r.status, 200);
    // `"`, `<`, `>` and spaces: hyper's own 400 (no page; README, differences).
    let r = get(&s, &format!("/configs/{A}/default/application?label=\"x\""));
    assert_eq!((r.status, r.body.len()), (400, 0));
    // The request head: 10,240 bytes in all (Apollo's max-http-header-size) pass, one more
    // does not; nor do more than 100 headers.
    let path = format!("/configs/{A}/default/application");
    let fixed = format!(
        "GET {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\nx-pad: \r\n\r\n",
        s.addr()
    )
    .len();
    let pad = "p".repeat(10_240 - fixed);
    assert_eq!(get_h(&s, &path, &[("X-Pad", &pad)]).status, 200);
    let pad = "p".repeat(10_241 - fixed);
    assert!(is_tomcat_400(&get_h(&s, &path, &[("X-Pad", &pad)])));
    let many: Vec<(String, String)> = (0..99).map(|i| (format!("x-h{i}"), "v".into())).collect();
    let many_ref: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(get_h(&s, &path, &many_ref[..98]).status, 200, "100 headers");
    assert!(is_tomcat_400(&get_h(&s, &path, &many_ref)), "101 headers");
    // The request log shows what was sent, also what Tomcat refused.
    assert!(
        s.admin()
            .requests()
            .iter()
            .any(|r| r.path == "/configs/SampleApp/default/a%2Fb"),
    );
    // The limit is the builder's (and the binary's --max-header-bytes).
    let small = TestServer::builder()
        .max_header_bytes(1024)
        .start()
        .expect("start");
    small
        .admin()
        .publish(A, "default", "application", [("k", "v")])
        .expect("publish");
    assert_eq!(get(&small, &path).status, 200);
    assert!(is_tomcat_400(&get_h(
        &small,
        &path,
        &[("X-Pad", &"p".repeat(1024))]
    )));
}

/// Item 6: a meta address with a trailing slash asks for `//services/config`, which no
/// handler matches; also unmapped paths in general (item 11: no `message`).
#[test]
fn double_slash_and_unmapped_paths_are_404_without_message() {
    let s = server(300);
    for p in [
        "//services/config",
        "//configs/SampleApp/default/application",
        "/services/unknown",
        "/nothing",
        "/configs/SampleApp/default",
        "/configfiles/json/SampleApp/default/application/x",
        "/configs/",
        "/configfiles/",
        "/configfiles/json/",
    ] {
        let r = get(&s, p);
        assert_eq!(r.status, 404, "{p}");
        assert_eq!(
            keys_in_order(&r.text()),
            ["timestamp", "status", "error", "path"],
            "{p}"
        );
        assert_eq!(r.json()["path"], p);
    }
    // Spring's trailing-slash match: the same handler as without the slash.
    assert_eq!(get(&s, "/services/config/").status, 200);
}

/// Item 7: MySQL compares names ignoring case, so a client configured with cluster `C1`
/// gets the release stored in `c1` (and the answer names the stored cluster), not the
/// `default` fallback; the app id likewise.
#[test]
fn cluster_and_app_id_in_another_case() {
    let s = server(300);
    s.admin()
        .publish(A, "default", "application", [("k", "default")])
        .expect("publish default");
    let c1 = s
        .admin()
        .publish(A, "c1", "application", [("k", "c1")])
        .expect("publish c1");
    let v = get(&s, &format!("/configs/{A}/C1/application")).json();
    assert_eq!(v["configurations"]["k"], "c1", "{v}");
    assert_eq!(v["cluster"], "c1");
    assert_eq!(v["releaseKey"], c1.release_key.as_str());
    let v = get(&s, "/configs/sampleapp/C1/application").json();
    assert_eq!(v["configurations"]["k"], "c1", "{v}");
    assert_eq!(v["appId"], "sampleapp", "the app id is echoed as asked");
    assert_eq!(
        get(&s, "/configfiles/json/SAMPLEAPP/C1/application").json()["k"],
        "c1"
    );
}

/// Items 8, 9: other methods on the client endpoints (and on unmapped paths, whose
/// static-resource handler takes GET and HEAD only) are Spring's
/// `HttpRequestMethodNotSupportedException`, mapped to 400.
#[test]
fn other_methods_are_method_not_supported() {
    let s = server(300);
    for (m, p) in [
        ("POST", "/configs/SampleApp/default/application"),
        ("PUT", "/notifications/v2"),
        ("DELETE", "/services/config"),
        ("POST", "/nothing"),
    ] {
        let r = request(s.addr(), m, p, &[], Some(b"x"));
        assert_eq!(r.status, 400, "{m} {p}");
        assert_eq!(
            keys_in_order(&r.text()),
            ["exception", "message", "status", "timestamp"]
        );
        let v = r.json();
        assert_eq!(
            v["exception"],
            "org.springframework.web.HttpRequestMethodNotSupportedException"
        );
        assert_eq!(v["message"], format!("Request method '{m}' not supported"));
    }
    // HEAD is GET without the body.
    let r = request(s.addr(), "HEAD", "/services/config", &[], None);
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
}

/// Item 10: Spring Boot's error page has a `java.util.Date` written with Apollo's Gson
/// date format; its fields are a `LinkedHashMap` in this order.
#[test]
fn error_page_timestamps_are_gson_dates() {
    let s = server(300);
    s.admin()
        .add_access_key(
            "Keyed",
            "secret",
            apolloconf_testserver::AccessKeyMode::Filter,
        )
        .expect("key");
    for (p, status, message) in [
        (
            "/configs/SampleApp/default/application",
            404,
            "Could not load configurations with appId: SampleApp, clusterName: default, namespace: application",
        ),
        (
            "/configs/Keyed/default/application",
            401,
            "RequestTimeTooSkewed",
        ),
        ("/configs/a+b/default/application", 400, "InvalidAppId"),
    ] {
        let r = get_h(&s, p, &[("Timestamp", "1")]);
        assert_eq!(r.status, status, "{p}");
        assert_eq!(
            keys_in_order(&r.text()),
            ["timestamp", "status", "error", "message", "path"]
        );
        let v = r.json();
        assert!(is_gson_date(v["timestamp"].as_str().expect("ts")), "{v}");
        assert_eq!(v["message"], message);
        assert_eq!(v["path"], p);
    }
}

/// Item 11: `/configfiles*` run the `/configs` lookup with their own response, so their
/// 404 carries its message (with the namespace as asked).
#[test]
fn configfiles_404_carries_the_configs_message() {
    let s = server(300);
    for p in [
        "/configs/SampleApp/c1/none.properties",
        "/configfiles/SampleApp/c1/none.properties",
        "/configfiles/json/SampleApp/c1/none.properties",
        "/configfiles/raw/SampleApp/c1/none.properties",
    ] {
        let r = get(&s, p);
        assert_eq!(r.status, 404, "{p}");
        assert_eq!(
            r.json()["message"],
            "Could not load configurations with appId: SampleApp, clusterName: c1, namespace: none.properties",
            "{p}"
        );
    }
    // Three segments after /configfiles/ are always (app, cluster, namespace), also for
    // an app named `json`.
    s.admin()
        .publish("json", "a", "b", [("k", "v")])
        .expect("publish");
    assert_eq!(get(&s, "/configfiles/json/a/b").text(), "k=v\n");
}

/// Item 12: an immediate answer lists its notifications in the order of the real
/// server's `HashSet` of namespace names, not in the order the client sent them.
#[test]
fn immediate_answer_in_hash_set_order() {
    let s = server(300);
    let names = ["alpha", "beta", "gamma", "delta", "epsilon"];
    for n in names {
        s.admin()
            .publish(A, "default", n, [("k", n)])
            .expect("publish");
    }
    // The namespaces of the immediate answer to a poll of `entries`, in its order.
    let answer_order = |entries: &[(&str, i64)]| -> Vec<String> {
        let v = get(&s, &poll_path(A, "default", entries)).json();
        v.as_array()
            .expect("list")
            .iter()
            .map(|n| n["namespaceName"].as_str().expect("name").to_string())
            .collect()
    };
    let entries: Vec<(&str, i64)> = names.iter().map(|n| (*n, -1)).collect();
    // A java.util.HashMap (16 slots) copied into Guava's newHashSetWithExpectedSize(5)
    // (8 slots): slot 0 holds epsilon and delta (slots 0 and 8 of the first map), slot 6
    // beta and gamma, slot 7 alpha.
    assert_eq!(
        answer_order(&entries),
        ["epsilon", "delta", "beta", "gamma", "alpha"]
    );
    // beta and gamma share a slot in both maps: between them, the request order counts.
    let mut reversed = entries.clone();
    reversed.reverse();
    assert_eq!(
        answer_order(&reversed),
        ["epsilon", "delta", "gamma", "beta", "alpha"]
    );
}

/// Item 13: Spring Security's headers are on every answer that gets past Tomcat.
#[test]
fn security_headers_everywhere() {
    let s = server(300);
    let mut answers = vec![
        get(&s, "/nothing"),
        get(&s, "/configs/SampleApp/default/application"),
        get(&s, "/__admin/stats"),
        request(
            s.addr(),
            "OPTIONS",
            "/configs/SampleApp/default/application",
            &[],
            None,
        ),
        request(s.addr(), "OPTIONS", "/nothing", &[], None),
        request(s.addr(), "POST", "/services/config", &[], None),
    ];
    answers.push(get(
        &s,
        &format!("/notifications/v2?cluster=default&appId={A}"),
    ));
    for r in &answers {
        for (k, v) in [
            (
                "cache-control",
                "no-cache, no-store, max-age=0, must-revalidate",
            ),
            ("pragma", "no-cache"),
            ("expires", "0"),
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "SAMEORIGIN"),
            ("x-xss-protection", "0"),
        ] {
            assert_eq!(r.header(k), Some(v), "{k} on {} {:?}", r.status, r.headers);
        }
    }
}

/// Item 14: a client that asks for HTML (the JDK's `HttpURLConnection` does by default)
/// gets Spring Boot's "Whitelabel Error Page" instead of the JSON error page.
#[test]
fn html_clients_get_the_whitelabel_page() {
    let s = server(300);
    let jdk = "text/html, image/gif, image/jpeg, *; q=.2, */*; q=.2";
    let r = get_h(
        &s,
        "/configs/SampleApp/default/application",
        &[("Accept", jdk)],
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-type"), Some("text/html;charset=UTF-8"));
    let t = r.text();
    assert!(
        t.starts_with("<html><body><h1>Whitelabel Error Page</h1><p>This application has no explicit mapping for /error, so you are seeing this as a fallback.</p><div id='created'>"),
        "{t}"
    );
    assert!(t.contains(" UTC 20"), "a java.util.Date: {t}");
    assert!(t.contains("<div>There was an unexpected error (type=Not Found, status=404).</div>"));
    assert!(t.contains("<div>Could not load configurations with appId: SampleApp, clusterName: default, namespace: application</div></body></html>"));
    let r = get_h(&s, "/nothing", &[("Accept", "text/html")]);
    assert_eq!(r.status, 404);
    assert!(
        r.text().ends_with("status=404).</div></body></html>"),
        "no message"
    );
    assert_eq!(r.header("x-frame-options"), Some("SAMEORIGIN"));
    // JSON first, or anything: the JSON page.
    for accept in ["application/json, text/html", "*/*", "text/plain"] {
        let r = get_h(
            &s,
            "/configs/SampleApp/default/application",
            &[("Accept", accept)],
        );
        assert_eq!(
            r.header("content-type"),
            Some("application/json;charset=UTF-8"),
            "{accept}"
        );
    }
    // Exceptions are not error pages: JSON whatever the client accepts.
    let r = get_h(
        &s,
        &format!("/notifications/v2?cluster=default&appId={A}"),
        &[("Accept", jdk)],
    );
    assert_eq!(
        r.header("content-type"),
        Some("application/json;charset=UTF-8")
    );
}

/// Item 15: without the CORS extension, `OPTIONS` is answered as the real server does: a
/// preflight is refused with 403, a plain `OPTIONS` lists the methods; no answer has
/// CORS headers. (With `cors(true)`: `admin_api.rs`, `cors_preflight_and_headers`.)
#[test]
fn options_and_preflights_without_cors() {
    let s = server(300);
    let r = request(
        s.addr(),
        "OPTIONS",
        "/configs/SampleApp/default/application",
        &[
            ("Origin", "http://127.0.0.1:9"),
            ("Access-Control-Request-Method", "GET"),
        ],
        None,
    );
    assert_eq!((r.status, r.text().as_str()), (403, "Invalid CORS request"));
    assert_eq!(r.header("access-control-allow-origin"), None);
    for p in [
        "/configs/SampleApp/default/application",
        "/notifications/v2",
        "/nothing",
    ] {
        let r = request(s.addr(), "OPTIONS", p, &[], None);
        assert_eq!(r.status, 200, "{p}");
        assert_eq!(r.header("allow"), Some("GET,HEAD,OPTIONS"), "{p}");
        assert!(r.body.is_empty());
    }
    let r = get_h(&s, "/services/config", &[("Origin", "http://127.0.0.1:9")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), None);
    // Preflights are still recorded (a browser test may count them).
    assert!(
        s.admin()
            .requests()
            .iter()
            .any(|r| r.method == "OPTIONS" && r.endpoint == "configs")
    );
}

/// Tomcat drops a query parameter whose `%` escape is malformed (and keeps the others);
/// a namespace whose bytes are not UTF-8 is looked up with U+FFFD, not refused.
#[test]
fn malformed_escapes_in_values() {
    let s = server(300);
    let key = s
        .admin()
        .publish(A, "default", "application", [("k", "v")])
        .expect("publish")
        .release_key;
    let r = get(
        &s,
        &format!("/configs/{A}/default/application?releaseKey=%zz&ip=1.2.3.4"),
    );
    assert_eq!(r.status, 200);
    let r = get(
        &s,
        &format!("/configs/{A}/default/application?releaseKey={key}&label=%zz"),
    );
    assert_eq!(r.status, 304);
    let r = get(&s, &format!("/configs/{A}/default/%ff%fe"));
    assert_eq!(r.status, 404);
    assert!(
        r.json()["message"]
            .as_str()
            .is_some_and(|m| m.ends_with("namespace: \u{fffd}\u{fffd}")),
        "{}",
        r.text()
    );
}
