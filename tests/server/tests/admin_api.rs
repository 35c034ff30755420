//! The admin API over HTTP, fault injection, pause/resume, CORS, static files, lagging and
//! shared instances, the request log.

mod common;

use std::time::{Duration, Instant};

use apolloconf_testserver::{Endpoint, Fault, FaultAction, TestServer};
use common::*;

const A: &str = "SampleApp";

#[test]
fn admin_http_full_flow() {
    let s = server(5000);
    let r = admin(&s, "POST", "/__admin/apps", "{\"appId\":\"App1\"}");
    assert_eq!(
        (r.status, r.text()),
        (200, "{\"appId\":\"App1\"}".to_string())
    );
    let r = admin(
        &s,
        "POST",
        "/__admin/apps/Owner/namespaces",
        "{\"name\":\"FX.apollo\",\"format\":\"properties\",\"public\":true}",
    );
    assert_eq!(
        r.json(),
        serde_json::json!({"appId":"Owner","namespaceName":"FX.apollo","format":"properties","public":true})
    );
    let r = admin(
        &s,
        "POST",
        "/__admin/apps/App1/namespaces",
        "{\"name\":\"cfg\",\"format\":\"yaml\"}",
    );
    assert_eq!(r.json()["namespaceName"], "cfg.yaml");
    // Publish keeps the item order of the request body.
    let r = admin(
        &s,
        "POST",
        "/__admin/apps/App1/clusters/default/namespaces/application/releases",
        "{\"configurations\":{\"z\":\"1\",\"a\":\"2\",\"n\":3}}",
    );
    assert_eq!(r.status, 200);
    let rel = r.json();
    let key = rel["releaseKey"].as_str().expect("key").to_string();
    let first_id = rel["messageId"].as_i64().expect("id");
    let v = get(&s, "/configs/App1/default/application").text();
    assert!(
        v.contains("\"configurations\":{\"z\":\"1\",\"a\":\"2\",\"n\":\"3\"}"),
        "{v}"
    );
    let r = admin(
        &s,
        "POST",
        "/__admin/apps/App1/clusters/default/namespaces/cfg.yaml/releases",
        "{\"content\":\"a: 1\\n\"}",
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        get(&s, "/configfiles/raw/App1/default/cfg.yaml").text(),
        "a: 1\n"
    );
    // Second release then rollback.
    let r2 = admin(
        &s,
        "POST",
        "/__admin/apps/App1/clusters/default/namespaces/application/releases",
        "{\"configurations\":{\"z\":\"9\"}}",
    )
    .json();
    assert!(r2["messageId"].as_i64().expect("id") > first_id);
    let rb = admin(
        &s,
        "POST",
        "/__admin/apps/App1/clusters/default/namespaces/application/rollback",
        "",
    )
    .json();
    assert_eq!(rb["releaseKey"], key.as_str());
    assert_eq!(
        get(&s, "/configs/App1/default/application").json()["releaseKey"],
        key.as_str()
    );
    // Gray over HTTP.
    let b = admin(
        &s,
        "POST",
        "/__admin/apps/App1/clusters/default/namespaces/application/gray",
        "",
    )
    .json();
    let branch = b["branchName"].as_str().expect("branch").to_string();
    assert_eq!(
        admin(
            &s,
            "POST",
            "/__admin/apps/App1/clusters/default/namespaces/application/gray/releases",
            "{\"configurations\":{\"z\":\"gray\"}}"
        )
        .status,
        200
    );
    assert_eq!(
        admin(
            &s,
            "PUT",
            "/__admin/apps/App1/clusters/default/namespaces/application/gray/rules",
            "{\"rules\":[{\"clientAppId\":\"App1\",\"ips\":[\"1.2.3.4\"]}]}"
        )
        .status,
        200
    );
    let v = get(&s, "/configs/App1/default/application?ip=1.2.3.4").json();
    assert_eq!(
        (v["cluster"].as_str(), v["configurations"]["z"].as_str()),
        (Some(branch.as_str()), Some("gray"))
    );
    assert_eq!(
        admin(
            &s,
            "POST",
            "/__admin/apps/App1/clusters/default/namespaces/application/gray/merge",
            ""
        )
        .status,
        200
    );
    let v = get(&s, "/configs/App1/default/application?ip=9.9.9.9").json();
    assert_eq!(v["configurations"]["z"], "gray");
    assert_eq!(
        admin(
            &s,
            "DELETE",
            "/__admin/apps/App1/clusters/default/namespaces/application/gray",
            ""
        )
        .status,
        404
    );
    // Access keys.
    let k = admin(
        &s,
        "POST",
        "/__admin/apps/App1/accesskeys",
        "{\"secret\":\"s1\",\"mode\":\"FILTER\"}",
    )
    .json();
    assert_eq!(k["enabled"], true);
    assert_eq!(get(&s, "/configs/App1/default/application").status, 401);
    let id = k["id"].as_u64().expect("id");
    assert_eq!(
        admin(
            &s,
            "PUT",
            &format!("/__admin/apps/App1/accesskeys/{id}"),
            "{\"enabled\":false}"
        )
        .json()["enabled"],
        false
    );
    assert_eq!(get(&s, "/configs/App1/default/application").status, 200);
    assert_eq!(
        admin(
            &s,
            "DELETE",
            &format!("/__admin/apps/App1/accesskeys/{id}"),
            ""
        )
        .status,
        200
    );
    assert_eq!(
        admin(&s, "GET", "/__admin/apps/App1/accesskeys", "").text(),
        "[]"
    );
    // Settings, switches, services.
    assert_eq!(
        admin(&s, "PUT", "/__admin/settings", "{\"holdMs\":250}").json()["holdMs"],
        250
    );
    let sw = admin(&s, "PUT", "/__admin/switches", "{\"incrementalSync\":true}").json();
    assert_eq!(
        sw,
        serde_json::json!({"incrementalSync":true,"releaseCache":false,"accessKeyToleranceMs":60000})
    );
    let svc = admin(
        &s,
        "PUT",
        "/__admin/services",
        "{\"config\":[{\"appName\":\"apollo-configservice\",\"instanceId\":\"x\",\"homepageUrl\":\"http://127.0.0.1:1/\"}]}",
    );
    assert_eq!(svc.status, 200);
    assert_eq!(
        get(&s, "/services/config").text(),
        "[{\"appName\":\"apollo-configservice\",\"instanceId\":\"x\",\"homepageUrl\":\"http://127.0.0.1:1/\"}]"
    );
    let t = Instant::now();
    assert_eq!(
        get(
            &s,
            &poll_path("App1", "default", &[("application", 1_000_000)])
        )
        .status,
        304
    );
    assert!(t.elapsed() < Duration::from_secs(3));
    let st = admin(&s, "GET", "/__admin/stats", "").json();
    assert_eq!(st["heldPolls"], 0);
    // Reset.
    assert_eq!(admin(&s, "POST", "/__admin/reset", "").status, 200);
    assert_eq!(get(&s, "/configs/App1/default/application").status, 404);
    assert_eq!(
        admin(&s, "GET", "/__admin/settings", "").json()["holdMs"],
        5000
    );
}

#[test]
fn admin_rejects_bad_input_with_json_errors() {
    let s = server(300);
    for (m, p, b, status) in [
        ("POST", "/__admin/apps", "{not json", 400),
        ("POST", "/__admin/apps", "{\"appId\":\"a+b\"}", 400),
        (
            "POST",
            "/__admin/apps/A/namespaces",
            "{\"name\":\"x\",\"format\":\"toml\"}",
            400,
        ),
        (
            "POST",
            "/__admin/apps/A/namespaces",
            "{\"name\":\"../etc\"}",
            400,
        ),
        (
            "POST",
            "/__admin/apps/A/clusters/default/namespaces/application/releases",
            "{}",
            400,
        ),
        (
            "POST",
            "/__admin/apps/A/clusters/default/namespaces/application/releases",
            "{\"content\":\"x\"}",
            400,
        ),
        (
            "POST",
            "/__admin/apps/A/clusters/default/namespaces/application/rollback",
            "",
            404,
        ),
        (
            "PUT",
            "/__admin/apps/A/accesskeys/abc",
            "{\"enabled\":true}",
            400,
        ),
        ("GET", "/__admin/nothing", "", 404),
        ("GET", "/__admin/apps/%zz", "", 400),
        (
            "POST",
            "/__admin/faults",
            "{\"endpoint\":\"configs\",\"action\":{\"type\":\"explode\"}}",
            400,
        ),
    ] {
        let r = admin(&s, m, p, b);
        assert_eq!(r.status, status, "{m} {p} {b}: {}", r.text());
        assert!(r.json()["error"].is_string());
    }
    let r = admin(
        &s,
        "POST",
        "/__admin/apps/Own/namespaces",
        "{\"name\":\"pub\",\"public\":true}",
    );
    assert_eq!(r.status, 200);
    let r = admin(
        &s,
        "POST",
        "/__admin/apps/Other/namespaces",
        "{\"name\":\"PUB\",\"public\":true}",
    );
    assert_eq!(r.status, 409);
}

#[test]
fn hostile_client_requests_do_not_break_the_server() {
    let s = server(300);
    for p in [
        "/configs/%zz/default/application",
        "/configs/A/default/%ff%fe",
        "/configs/A/default",
        "/configs/A/default/application/extra",
        "/configs/A/default/application?releaseKey=%zz",
        // Gson cannot read an object into the String `namespaceName` (a number it can).
        "/notifications/v2?appId=A&cluster=default&notifications=%5B%7B%22namespaceName%22%3A%7B%7D%7D%5D",
        "/configfiles/json/A/default/",
        "/services/unknown",
        "/../../etc/passwd",
        "/__static/../../etc/passwd",
    ] {
        let r = get(&s, p);
        assert!((400..500).contains(&r.status), "{p}: {}", r.status);
    }
    let r = request(
        s.addr(),
        "POST",
        "/configs/A/default/application",
        &[],
        Some(b"x"),
    );
    assert_eq!(r.status, 400);
    assert_eq!(get(&s, "/services/meta").status, 200);
}

#[test]
fn fault_injection_kinds() {
    let s = server(300);
    s.admin()
        .publish(A, "default", "application", [("k", "v")])
        .expect("p");
    let path = format!("/configs/{A}/default/application");
    // Status for the next 2 requests, only on /configs.
    s.admin()
        .inject_fault(Fault::new(Endpoint::Configs, FaultAction::Status { code: 503 }).times(2));
    assert_eq!(get(&s, "/services/config").status, 200);
    assert_eq!(get(&s, &path).status, 503);
    assert_eq!(get(&s, &path).status, 503);
    assert_eq!(get(&s, &path).status, 200);
    // Delay.
    s.admin()
        .inject_fault(Fault::new(Endpoint::Configs, FaultAction::Delay { ms: 300 }).times(1));
    let t = Instant::now();
    assert_eq!(get(&s, &path).status, 200);
    assert!(t.elapsed() >= Duration::from_millis(290));
    // Close without answering.
    s.admin()
        .inject_fault(Fault::new(Endpoint::Configs, FaultAction::Close).times(1));
    assert!(try_request(s.addr(), "GET", &path, &[], None, Duration::from_secs(5)).is_err());
    // Malformed body.
    s.admin()
        .inject_fault(Fault::new(Endpoint::Any, FaultAction::Malformed).times(1));
    let r = get(&s, &path);
    assert_eq!(r.status, 200);
    assert!(serde_json::from_slice::<serde_json::Value>(&r.body).is_err());
    // Oversized body.
    s.admin().inject_fault(
        Fault::new(
            Endpoint::Notifications,
            FaultAction::Oversized { bytes: 3 << 20 },
        )
        .times(1),
    );
    let r = get(&s, &poll_path(A, "default", &[("application", -1)]));
    assert!(r.body.len() >= 3 << 20);
    // Hang until cleared (the client gives up).
    s.admin()
        .inject_fault(Fault::new(Endpoint::Services, FaultAction::Hang));
    assert!(
        try_request(
            s.addr(),
            "GET",
            "/services/config",
            &[],
            None,
            Duration::from_millis(300)
        )
        .is_err()
    );
    s.admin().clear_faults();
    assert_eq!(get(&s, "/services/config").status, 200);
    // Over HTTP, with `times`.
    let r = admin(
        &s,
        "POST",
        "/__admin/faults",
        "{\"endpoint\":\"configfiles\",\"action\":{\"type\":\"status\",\"code\":500},\"times\":1}",
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        get(&s, &format!("/configfiles/json/{A}/default/application")).status,
        500
    );
    assert_eq!(
        get(&s, &format!("/configfiles/json/{A}/default/application")).status,
        200
    );
    admin(
        &s,
        "POST",
        "/__admin/faults",
        "{\"endpoint\":\"configs\",\"action\":{\"type\":\"close\"}}",
    );
    assert!(try_request(s.addr(), "GET", &path, &[], None, Duration::from_secs(5)).is_err());
    assert!(try_request(s.addr(), "GET", &path, &[], None, Duration::from_secs(5)).is_err());
    assert_eq!(admin(&s, "DELETE", "/__admin/faults", "").status, 200);
    assert_eq!(get(&s, &path).status, 200);
}

#[test]
fn fault_action_json_shapes() {
    let parse = |s: &str| serde_json::from_str::<FaultAction>(s).map_err(|e| e.to_string());
    assert_eq!(
        parse(r#"{"type":"redirect","code":302,"location":"http://x/y"}"#),
        Ok(FaultAction::Redirect {
            code: 302,
            location: "http://x/y".into()
        })
    );
    assert_eq!(
        parse(r#"{"type":"oversized","bytes":5}"#),
        Ok(FaultAction::Oversized { bytes: 5 })
    );
    assert_eq!(
        parse(r#"{"type":"oversized","bytes":5,"stall":true}"#),
        Ok(FaultAction::OversizedStall { bytes: 5 })
    );
    assert_eq!(parse(r#"{"type":"close"}"#), Ok(FaultAction::Close));
    // Round trip, in the documented spelling.
    for a in [
        FaultAction::OversizedStall { bytes: 7 },
        FaultAction::Oversized { bytes: 7 },
        FaultAction::Hang,
        FaultAction::Redirect {
            code: 307,
            location: "/x".into(),
        },
    ] {
        let text = serde_json::to_string(&a).expect("serialize");
        assert_eq!(parse(&text), Ok(a), "{text}");
    }
    assert_eq!(
        serde_json::to_string(&FaultAction::OversizedStall { bytes: 7 }).expect("s"),
        r#"{"type":"oversized","bytes":7,"stall":true}"#
    );
    assert_eq!(
        serde_json::to_string(&FaultAction::Oversized { bytes: 7 }).expect("s"),
        r#"{"type":"oversized","bytes":7}"#
    );
    // A misspelt field is an error, not a silently different fault.
    assert!(parse(r#"{"type":"status","code":503,"times":2}"#).is_err());
    assert!(parse(r#"{"type":"oversized","bytes":5,"stal":true}"#).is_err());
    assert!(parse(r#"{"type":"redirect","code":302}"#).is_err());
}

#[test]
fn redirect_fault_is_not_followed() {
    let s = server(300);
    let target = server(300);
    s.admin()
        .publish(A, "default", "application", [("k", "v")])
        .expect("p");
    let path = format!("/configs/{A}/default/application");
    let location = format!("{}{path}", target.url());
    let body = format!(
        "{{\"endpoint\":\"configs\",\"action\":{{\"type\":\"redirect\",\"code\":302,\"location\":\"{location}\"}},\"times\":1}}"
    );
    let r = admin(&s, "POST", "/__admin/faults", &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let r = get(&s, &path);
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some(location.as_str()));
    assert!(r.body.is_empty());
    // The fault is used up; the server itself never contacts the target.
    assert_eq!(get(&s, &path).status, 200);
    assert!(target.admin().requests().is_empty());
    // Other status codes and endpoints work alike.
    s.admin().inject_fault(
        Fault::new(
            Endpoint::Notifications,
            FaultAction::Redirect {
                code: 307,
                location: "/elsewhere".into(),
            },
        )
        .times(1),
    );
    let r = get(&s, &poll_path(A, "default", &[("application", -1)]));
    assert_eq!((r.status, r.header("location")), (307, Some("/elsewhere")));
    // A misspelt action is refused by the admin API.
    let r = admin(
        &s,
        "POST",
        "/__admin/faults",
        "{\"endpoint\":\"configs\",\"action\":{\"type\":\"redirect\",\"code\":302,\"locaton\":\"/x\"}}",
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        admin(&s, "GET", "/__admin/faults", "").json(),
        serde_json::json!([])
    );
}

#[test]
fn oversized_stall_fault_streams_then_holds_the_connection() {
    use std::io::{Read, Write};
    let s = server(300);
    s.admin()
        .publish(A, "default", "application", [("k", "v")])
        .expect("p");
    let path = format!("/configs/{A}/default/application");
    let bytes = 3 << 20;
    s.admin().inject_fault(
        Fault::new(Endpoint::Configs, FaultAction::OversizedStall { bytes }).times(1),
    );
    let mut c = std::net::TcpStream::connect(s.addr()).expect("connect");
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        s.addr()
    )
    .expect("write");
    c.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut raw = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    let t = Instant::now();
    let stalled = loop {
        match c.read(&mut buf) {
            Ok(0) => panic!("the server ended the connection after {} bytes", raw.len()),
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) => {
                assert!(
                    matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ),
                    "{e}"
                );
                break raw.len();
            }
        }
        assert!(t.elapsed() < Duration::from_secs(20), "no stall");
    };
    let head = String::from_utf8_lossy(&raw[..raw.len().min(2000)]).into_owned();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    assert!(stalled > bytes, "only {stalled} bytes before the stall");
    // The body is unfinished: no final chunk.
    assert!(!raw.ends_with(b"0\r\n\r\n"));
    // Still open a moment later: nothing more, no end.
    std::thread::sleep(Duration::from_millis(300));
    match c.read(&mut buf) {
        Ok(n) => panic!("read {n} more bytes (0 = closed) from a stalled answer"),
        Err(e) => assert!(matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        )),
    }
    drop(c);
    // The fault is used up.
    assert_eq!(get(&s, &path).status, 200);
    // Over HTTP: `"stall": true` on the oversized action.
    let r = admin(
        &s,
        "POST",
        "/__admin/faults",
        "{\"endpoint\":\"configs\",\"action\":{\"type\":\"oversized\",\"bytes\":1000,\"stall\":true}}",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        admin(&s, "GET", "/__admin/faults", "").json()[0]["action"],
        serde_json::json!({"type": "oversized", "bytes": 1000, "stall": true})
    );
    assert!(
        try_request(
            s.addr(),
            "GET",
            &path,
            &[],
            None,
            Duration::from_millis(500)
        )
        .is_err()
    );
}

#[test]
fn pause_and_resume_keep_state() {
    let s = server(10_000);
    let r = s
        .admin()
        .publish(A, "default", "application", [("k", "v")])
        .expect("p");
    let addr = s.addr();
    let path = poll_path(A, "default", &[("application", r.message_id)]);
    let held = std::thread::spawn(move || {
        try_request(addr, "GET", &path, &[], None, Duration::from_secs(20))
    });
    let t = Instant::now();
    while s.admin().held_polls() < 1 {
        assert!(t.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(5));
    }
    s.admin().pause();
    assert!(held.join().expect("thread").is_err(), "held poll dropped");
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "connections refused"
    );
    s.admin().resume().expect("resume");
    let v = get(&s, &format!("/configs/{A}/default/application")).json();
    assert_eq!(v["releaseKey"], r.release_key.as_str());
    // restart() and the HTTP variant.
    s.admin()
        .restart(Duration::from_millis(50))
        .expect("restart");
    assert_eq!(
        get(&s, &format!("/configs/{A}/default/application")).status,
        200
    );
    let r = admin(&s, "POST", "/__admin/restart", "{\"downMs\":2000}");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "{\"paused\":true,\"resumeAfterMs\":2000}");
    let t = Instant::now();
    while std::net::TcpStream::connect(addr).is_ok() {
        assert!(t.elapsed() < Duration::from_millis(1500), "never went down");
        std::thread::sleep(Duration::from_millis(10));
    }
    let t = Instant::now();
    loop {
        if let Ok(r) = try_request(
            addr,
            "GET",
            "/services/meta",
            &[],
            None,
            Duration::from_secs(5),
        ) {
            assert_eq!(r.status, 200);
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "did not come back");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        get(&s, &format!("/configs/{A}/default/application")).status,
        200
    );
}

/// The CORS extension (`cors(true)`, `--cors`): what browser tests on another origin need.
#[test]
fn cors_preflight_and_headers() {
    let s = TestServer::builder()
        .hold(Duration::from_millis(300))
        .cors(true)
        .start()
        .expect("start");
    let r = request(
        s.addr(),
        "OPTIONS",
        "/configs/A/default/application",
        &[
            ("Origin", "http://127.0.0.1:9"),
            ("Access-Control-Request-Method", "GET"),
            ("Access-Control-Request-Headers", "authorization,timestamp"),
        ],
        None,
    );
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let allow = r
        .header("access-control-allow-headers")
        .expect("allow headers")
        .to_ascii_lowercase();
    for h in ["authorization", "timestamp", "content-type"] {
        assert!(allow.contains(h), "{allow}");
    }
    assert!(
        r.header("access-control-allow-methods")
            .expect("methods")
            .contains("GET")
    );
    for p in [
        "/configs/A/default/application",
        "/services/config",
        "/nothing",
    ] {
        assert_eq!(
            get(&s, p).header("access-control-allow-origin"),
            Some("*"),
            "{p}"
        );
    }
    let r = get(&s, "/configs/A/default/application");
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    // Also on what the emulated Tomcat refuses, so that a page sees the 400.
    let r = get(&s, "/configs/A/default/a%2Fb");
    assert_eq!(r.status, 400);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    // Never on the admin API, not even with the extension on.
    let r = get(&s, "/__admin/stats");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), None);
    let r = request(
        s.addr(),
        "OPTIONS",
        "/__admin/apps",
        &[
            ("Origin", "http://127.0.0.1:9"),
            ("Access-Control-Request-Method", "POST"),
        ],
        None,
    );
    assert_eq!(r.status, 403);
    assert_eq!(r.header("access-control-allow-origin"), None);
    assert_eq!(r.header("access-control-allow-methods"), None);
}

#[test]
fn static_files() {
    let dir = std::env::temp_dir().join(format!("apolloconf-static-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("pkg")).expect("dir");
    std::fs::write(dir.join("index.html"), "<html></html>").expect("write");
    std::fs::write(dir.join("pkg/a.wasm"), b"\0asm").expect("write");
    std::fs::write(dir.join("pkg/a.js"), "export {}").expect("write");
    std::fs::write(dir.join("pkg/b.mjs"), "export {}").expect("write");
    let s = TestServer::builder()
        .static_dir(&dir)
        .start()
        .expect("start");
    let r = get(&s, "/__static/pkg/a.wasm");
    assert_eq!(
        (r.status, r.header("content-type")),
        (200, Some("application/wasm"))
    );
    assert_eq!(r.body, b"\0asm");
    assert_eq!(
        get(&s, "/pkg/a.js").header("content-type"),
        Some("text/javascript;charset=UTF-8")
    );
    assert_eq!(
        get(&s, "/__static/pkg/b.mjs").header("content-type"),
        Some("text/javascript;charset=UTF-8")
    );
    assert_eq!(
        get(&s, "/index.html").header("content-type"),
        Some("text/html;charset=UTF-8")
    );
    assert_eq!(get(&s, "/__static/").text(), "<html></html>");
    assert_eq!(get(&s, "/__static/missing.js").status, 404);
    // Tomcat refuses a `..` segment (encoded or not) before anything is looked up.
    assert_eq!(get(&s, "/__static/%2e%2e/etc/passwd").status, 400);
    assert_eq!(get(&s, "/__static/a/%2e%2e/%2e%2e/etc/passwd").status, 400);
    // API routes win over static files.
    assert_eq!(get(&s, "/services/meta").text(), "[]");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn request_log_records_raw_requests() {
    let s = server(300);
    let p = "/configs/A/default/application?ip=1.2.3.4&releaseKey=a%2Bb&messages=%7B%7D";
    get_h(
        &s,
        p,
        &[("Timestamp", "123"), ("Authorization", "Apollo A:sig")],
    );
    admin(&s, "GET", "/__admin/stats", "");
    let log = s.admin().requests();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].method, "GET");
    assert_eq!(log[0].path, p);
    assert_eq!(
        log[0].query(),
        Some("ip=1.2.3.4&releaseKey=a%2Bb&messages=%7B%7D")
    );
    assert_eq!(log[0].header("timestamp"), Some("123"));
    assert_eq!(log[0].header("Authorization"), Some("Apollo A:sig"));
    assert_eq!(log[0].endpoint, "configs");
    let v = admin(&s, "GET", "/__admin/requests", "").json();
    assert_eq!(v[0]["path"], p);
    assert_eq!(v[0]["method"], "GET");
    assert!(v[0]["timeMs"].as_u64().expect("time") > 0);
    assert!(
        v[0]["headers"]
            .as_array()
            .expect("headers")
            .iter()
            .any(|h| h[0] == "timestamp" && h[1] == "123")
    );
    assert_eq!(admin(&s, "DELETE", "/__admin/requests", "").status, 200);
    assert!(s.admin().requests().is_empty());
    get(&s, "/services/config");
    s.admin().clear_requests();
    assert!(s.admin().requests().is_empty());
}

#[test]
fn shared_store_and_lagging_instance() {
    let a = server(10_000);
    let b = TestServer::builder()
        .store(a.store())
        .hold(Duration::from_secs(10))
        .start()
        .expect("b");
    let lag = TestServer::builder()
        .store(a.store())
        .hold(Duration::from_secs(10))
        .lag(Duration::from_millis(2000))
        .start()
        .expect("lagging");
    let r1 = a
        .admin()
        .publish(A, "default", "application", [("k", "1")])
        .expect("p");
    // A publish through any instance is visible on the others.
    assert_eq!(
        get(&b, &format!("/configs/{A}/default/application")).json()["releaseKey"],
        r1.release_key.as_str()
    );
    std::thread::sleep(Duration::from_millis(2050));
    assert_eq!(
        get(&lag, &format!("/configs/{A}/default/application")).json()["releaseKey"],
        r1.release_key.as_str()
    );
    // Held polls on b and on the lagging instance; publish on a.
    let spawn = |s: &TestServer| {
        let addr = s.addr();
        let p = poll_path(A, "default", &[("application", r1.message_id)]);
        std::thread::spawn(move || {
            let r = request(addr, "GET", &p, &[], None);
            (r, Instant::now())
        })
    };
    let hb = spawn(&b);
    let hl = spawn(&lag);
    let t = Instant::now();
    while b.admin().held_polls() < 1 || lag.admin().held_polls() < 1 {
        assert!(t.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(5));
    }
    let published = Instant::now();
    let r2 = a
        .admin()
        .publish(A, "default", "application", [("k", "2")])
        .expect("p");
    // The lagging instance still serves the old release right after the publish.
    assert_eq!(
        get(&lag, &format!("/configs/{A}/default/application")).json()["releaseKey"],
        r1.release_key.as_str()
    );
    let (rb, tb) = hb.join().expect("b");
    let (rl, tl) = hl.join().expect("lag");
    assert_eq!(rb.json()[0]["notificationId"], r2.message_id);
    assert_eq!(rl.json()[0]["notificationId"], r2.message_id);
    assert!(tb.duration_since(published) < Duration::from_millis(1500));
    assert!(tl.duration_since(published) >= Duration::from_millis(1950));
    assert_eq!(
        get(&lag, &format!("/configs/{A}/default/application")).json()["releaseKey"],
        r2.release_key.as_str()
    );
    // Services can list all three instances.
    let list: Vec<_> = [&a, &b, &lag]
        .iter()
        .map(|s| apolloconf_testserver::ServiceInstance::config_service(&s.url()))
        .collect();
    a.admin().set_config_services(list);
    assert_eq!(
        get(&a, "/services/config").json().as_array().map(Vec::len),
        Some(3)
    );
}

#[test]
fn many_held_polls_all_woken_by_one_publish() {
    let s = server(20_000);
    let r = s
        .admin()
        .publish(A, "default", "application", [("k", "v")])
        .expect("p");
    let n = 200;
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let addr = s.addr();
            let p = poll_path(A, "default", &[("application", r.message_id)]);
            std::thread::spawn(move || request(addr, "GET", &p, &[], None))
        })
        .collect();
    let t = Instant::now();
    while s.admin().held_polls() < n {
        assert!(t.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(5));
    }
    let id = s
        .admin()
        .publish(A, "default", "application", [("k", "w")])
        .expect("p")
        .message_id;
    for h in handles {
        assert_eq!(h.join().expect("thread").json()[0]["notificationId"], id);
    }
    assert_eq!(s.admin().held_polls(), 0);
}

#[test]
fn readme_examples_exact_bytes() {
    let s = server(60_000);
    let url = format!("http://{}", s.addr());
    let r = admin(&s, "POST", "/__admin/apps", "{\"appId\":\"SampleApp\"}");
    assert_eq!(r.text(), "{\"appId\":\"SampleApp\"}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let r = admin(
        &s,
        "POST",
        "/__admin/apps/Owner/namespaces",
        "{\"name\":\"FX.apollo\",\"format\":\"properties\",\"public\":true}",
    );
    assert_eq!(
        r.text(),
        "{\"appId\":\"Owner\",\"format\":\"properties\",\"namespaceName\":\"FX.apollo\",\"public\":true}"
    );
    let r = admin(
        &s,
        "POST",
        "/__admin/apps/SampleApp/namespaces",
        "{\"name\":\"datasources\",\"format\":\"yaml\"}",
    );
    assert_eq!(
        r.text(),
        "{\"appId\":\"SampleApp\",\"format\":\"yaml\",\"namespaceName\":\"datasources.yaml\",\"public\":false}"
    );
    let r = admin(
        &s,
        "POST",
        "/__admin/apps/SampleApp/clusters/default/namespaces/application/releases",
        "{\"configurations\":{\"timeout\":\"100\"}}",
    );
    let v = r.json();
    let key = v["releaseKey"].as_str().expect("key");
    assert_eq!(
        r.text(),
        format!(
            "{{\"releaseKey\":\"{key}\",\"messageId\":{}}}",
            v["messageId"]
        )
    );
    assert_eq!(
        admin(&s, "GET", "/__admin/settings", "").text(),
        "{\"holdMs\":60000,\"lagMs\":0}"
    );
    assert_eq!(
        admin(&s, "PUT", "/__admin/settings", "{\"holdMs\":500}").text(),
        "{\"holdMs\":500,\"lagMs\":0}"
    );
    assert_eq!(
        admin(&s, "GET", "/__admin/switches", "").text(),
        "{\"incrementalSync\":false,\"releaseCache\":false,\"accessKeyToleranceMs\":60000}"
    );
    assert_eq!(
        admin(&s, "GET", "/__admin/services", "").text(),
        format!(
            "{{\"admin\":[],\"config\":[{{\"appName\":\"apollo-configservice\",\"instanceId\":\"{url}/\",\"homepageUrl\":\"{url}/\"}}]}}"
        )
    );
    assert_eq!(
        admin(
            &s,
            "POST",
            "/__admin/apps/SampleApp/accesskeys",
            "{\"secret\":\"df23df3f59884980844ff3dada30fa97\",\"mode\":\"FILTER\"}"
        )
        .text(),
        "{\"id\":1,\"secret\":\"df23****\",\"mode\":\"FILTER\",\"enabled\":true}"
    );
    assert_eq!(
        admin(
            &s,
            "POST",
            "/__admin/faults",
            "{\"endpoint\":\"configs\",\"action\":{\"type\":\"status\",\"code\":503},\"times\":2}"
        )
        .text(),
        "[{\"endpoint\":\"configs\",\"action\":{\"type\":\"status\",\"code\":503},\"times\":2}]"
    );
    assert_eq!(admin(&s, "DELETE", "/__admin/faults", "").text(), "[]");
    assert_eq!(
        admin(&s, "GET", "/__admin/stats", "").text(),
        format!("{{\"heldPolls\":0,\"lastMessageId\":1,\"paused\":false,\"url\":\"{url}\"}}")
    );
    assert_eq!(admin(&s, "POST", "/__admin/reset", "").text(), "{}");
}

#[test]
fn usable_from_inside_a_tokio_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let s = TestServer::builder()
            .hold(Duration::from_millis(200))
            .start()
            .expect("start");
        let key = s
            .admin()
            .publish(A, "default", "application", [("k", "v")])
            .expect("publish")
            .release_key;
        let addr = s.addr();
        let r = tokio::task::spawn_blocking(move || {
            request(
                addr,
                "GET",
                "/configs/SampleApp/default/application",
                &[],
                None,
            )
        })
        .await
        .expect("join");
        assert_eq!(r.json()["releaseKey"], key.as_str());
        s.admin().pause();
        s.admin().resume().expect("resume");
        drop(s);
    });
}

#[test]
fn random_hostile_requests_never_kill_the_server() {
    let s = server(100);
    s.admin()
        .publish(A, "default", "application", [("k", "v")])
        .expect("p");
    let pieces = [
        "/configs/",
        "/configfiles/",
        "/configfiles/json/",
        "/configfiles/raw/",
        "/notifications/v2",
        "/notifications",
        "/services/",
        "/__admin/",
        "/__admin/apps/",
        "/__static/",
        "SampleApp",
        "default",
        "application",
        "%",
        "%2",
        "%zz",
        "%ff",
        "%C3%A9",
        "+",
        "/",
        "//",
        "..",
        ".properties",
        "?",
        "&",
        "=",
        "appId=",
        "cluster=",
        "notifications=",
        "%5B%5D",
        "%5B%7B%7D%5D",
        "releaseKey=",
        "messages=%7B",
        "ip=",
        "label=",
        "dataCenter=",
        "é",
        "*",
        "~",
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..400 {
        let n = 1 + (next() % 8) as usize;
        let mut path = String::from("/");
        for _ in 0..n {
            path.push_str(pieces[(next() % pieces.len() as u64) as usize]);
        }
        let path = path.replace(' ', "%20");
        let method = ["GET", "POST", "PUT", "DELETE"][(next() % 4) as usize];
        let body = if next() % 2 == 0 {
            Some(b"{\"x\":[1,".as_slice())
        } else {
            None
        };
        if let Ok(r) = try_request(s.addr(), method, &path, &[], body, Duration::from_secs(5)) {
            assert!((200..600).contains(&r.status), "{method} {path}");
        }
    }
    assert_eq!(
        get(&s, "/configs/SampleApp/default/application").status,
        200
    );
}
