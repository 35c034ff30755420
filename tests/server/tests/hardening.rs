//! Safe as a local development server (issue 12, part 2): the admin API is out of reach
//! of web pages, secrets are never shown, every resource is bounded, nothing panics on
//! large numbers.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use apolloconf_testserver::{
    AccessKeyMode, Endpoint, Fault, FaultAction, MAX_OVERSIZED_BYTES, TestServer,
};
use common::*;

const A: &str = "SampleApp";
const PUBLISH: &str = "/__admin/apps/SampleApp/clusters/default/namespaces/application/releases";

fn publish_with(s: &TestServer, headers: &[(&str, &str)]) -> Resp {
    let mut h = vec![("Content-Type", "application/json")];
    h.extend_from_slice(headers);
    request(
        s.addr(),
        "POST",
        PUBLISH,
        &h,
        Some(b"{\"configurations\":{\"k\":\"v\"}}"),
    )
}

/// Web pages cannot use the admin API: no CORS answer, a foreign `Origin` or a
/// cross-site fetch is refused, and so is a `Host` that is not this server's address
/// (DNS rebinding). Node and other non-browser callers (no `Origin`) keep working.
#[test]
fn admin_api_refuses_web_pages() {
    let s = server(300);
    let own = format!("http://{}", s.addr());
    for (headers, status) in [
        (vec![], 200),
        (vec![("Origin", own.as_str())], 200),
        (vec![("Sec-Fetch-Site", "same-origin")], 200),
        (vec![("Sec-Fetch-Site", "none")], 200),
        (vec![("Origin", "http://evil.example")], 403),
        (vec![("Origin", "null")], 403),
        (vec![("Origin", "http://127.0.0.1:1")], 403),
        (vec![("Sec-Fetch-Site", "cross-site")], 403),
        (vec![("Sec-Fetch-Site", "same-site")], 403),
    ] {
        let r = publish_with(&s, &headers);
        assert_eq!(r.status, status, "{headers:?}: {}", r.text());
        assert_eq!(r.header("access-control-allow-origin"), None);
        if status == 403 {
            assert!(r.json()["error"].is_string());
        }
    }
    // Only the accepted publishes happened.
    assert_eq!(s.store().last_message_id(), 4);
    // The preflight a browser sends before a cross-origin POST with JSON.
    let r = request(
        s.addr(),
        "OPTIONS",
        PUBLISH,
        &[
            ("Origin", "http://evil.example"),
            ("Access-Control-Request-Method", "POST"),
        ],
        None,
    );
    assert_eq!(r.status, 403);
    assert_eq!(r.header("access-control-allow-origin"), None);
    assert_eq!(r.header("access-control-allow-methods"), None);
    // DNS rebinding: the page's own host name arrives as Host.
    let port = s.addr().port();
    for (host, status) in [
        (format!("127.0.0.1:{port}"), 200),
        (format!("localhost:{port}"), 200),
        (format!("LOCALHOST:{port}"), 200),
        (format!("evil.example:{port}"), 403),
        (format!("127.0.0.1.nip.io:{port}"), 403),
        ("127.0.0.1".to_string(), 403),
        (format!("127.0.0.1:{}", port.wrapping_add(1)), 403),
    ] {
        let r = request(s.addr(), "GET", "/__admin/stats", &[("Host", &host)], None);
        assert_eq!(r.status, status, "Host: {host}");
    }
    // The Apollo endpoints do not care about Host.
    let r = get_h(&s, "/services/config", &[("Host", "evil.example")]);
    assert_eq!(r.status, 200);
}

/// Access-key secrets are never returned in full over HTTP (the Rust API, in process,
/// still hands back what it was given).
#[test]
fn secrets_are_masked() {
    let s = server(300);
    let secret = "df23df3f59884980844ff3dada30fa97";
    let k = admin(
        &s,
        "POST",
        "/__admin/apps/SampleApp/accesskeys",
        &format!("{{\"secret\":\"{secret}\"}}"),
    );
    assert_eq!(k.json()["secret"], "df23****");
    let r = admin(
        &s,
        "PUT",
        "/__admin/apps/SampleApp/accesskeys/1",
        "{\"enabled\":false}",
    );
    assert_eq!(r.json()["secret"], "df23****");
    s.admin()
        .add_access_key(A, "abc", AccessKeyMode::Observer)
        .expect("key");
    let list = admin(&s, "GET", "/__admin/apps/SampleApp/accesskeys", "").text();
    assert_eq!(
        list,
        "[{\"id\":1,\"secret\":\"df23****\",\"mode\":\"FILTER\",\"enabled\":false},{\"id\":2,\"secret\":\"****\",\"mode\":\"OBSERVER\",\"enabled\":true}]"
    );
    let state = admin(&s, "GET", "/__admin/state", "").text();
    assert!(
        !state.contains(secret) && !state.contains("\"abc\""),
        "{state}"
    );
    assert!(state.contains("df23****"));
}

/// With an admin token, the admin API wants `Authorization: Bearer TOKEN` (and then
/// answers whatever name the server is reached by); one is made up at start when the
/// server listens beyond loopback.
#[test]
fn admin_token() {
    let s = TestServer::builder()
        .admin_token("t0ken")
        .start()
        .expect("start");
    assert_eq!(s.admin_token(), Some("t0ken"));
    for (auth, status) in [
        (None, 401),
        (Some("Bearer wrong"), 401),
        (Some("Basic t0ken"), 401),
        (Some("Bearer t0ken"), 200),
    ] {
        let h: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
        let r = publish_with(&s, &h);
        assert_eq!(r.status, status, "{auth:?}");
        if status == 401 {
            assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        }
    }
    let r = get_h(
        &s,
        "/__admin/stats",
        &[
            ("Host", "devbox.lan:8080"),
            ("Authorization", "Bearer t0ken"),
        ],
    );
    assert_eq!(r.status, 200);
    // Client endpoints need no token.
    assert_eq!(
        get(&s, "/configs/SampleApp/default/application").status,
        200
    );
    // Loopback: none unless given; beyond: one is made up.
    assert_eq!(server(300).admin_token(), None);
    let open = TestServer::builder()
        .host("0.0.0.0".parse().expect("ip"))
        .start()
        .expect("start");
    let token = open.admin_token().expect("a token").to_string();
    assert!(token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit()));
    let local = SocketAddr::from(([127, 0, 0, 1], open.port()));
    assert_eq!(
        request(local, "GET", "/__admin/stats", &[], None).status,
        401
    );
    let bearer = format!("Bearer {token}");
    assert_eq!(
        request(
            local,
            "GET",
            "/__admin/stats",
            &[("Authorization", &bearer)],
            None
        )
        .status,
        200
    );
    assert!(
        TestServer::builder()
            .admin_token(" ")
            .start()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::InvalidInput)
    );
}

/// The binary prints the token it made up (listening beyond loopback), after the
/// `listening` line; one given with `--admin-token` is not printed.
#[test]
fn binary_prints_a_made_up_token() {
    let mut open = Binary::start(["--port", "0", "--host", "0.0.0.0"]);
    let second = open.next_line();
    let first = &open.first_line;
    assert!(first.starts_with("listening http://0.0.0.0:"), "{first}");
    let token = second
        .trim_end()
        .strip_prefix("admin token ")
        .expect(&second);
    assert_eq!(token.len(), 32);
    let mut given = Binary::start(["--port", "0", "--admin-token", "mine"]);
    let addr = given.addr("http").expect("addr");
    assert_eq!(
        request(addr, "GET", "/__admin/stats", &[], None).status,
        401
    );
    assert_eq!(
        request(
            addr,
            "GET",
            "/__admin/stats",
            &[("Authorization", "Bearer mine")],
            None
        )
        .status,
        200
    );
    // Nothing after the `listening` line.
    let _ = given.child.kill();
    let _ = given.child.wait();
    assert_eq!(given.next_line(), "");
}

/// An `oversized` fault never allocates its body: a huge `bytes` is cut to
/// `MAX_OVERSIZED_BYTES` (the admin API refuses it), and the body is written piece by
/// piece.
#[test]
fn oversized_fault_is_capped_and_streamed() {
    let s = server(300);
    let r = admin(
        &s,
        "POST",
        "/__admin/faults",
        "{\"endpoint\":\"configs\",\"action\":{\"type\":\"oversized\",\"bytes\":1099511627776}}",
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(admin(&s, "GET", "/__admin/faults", "").text() == "[]");
    for stall in [false, true] {
        let action = if stall {
            FaultAction::OversizedStall { bytes: usize::MAX }
        } else {
            FaultAction::Oversized { bytes: usize::MAX }
        };
        s.admin()
            .inject_fault(Fault::new(Endpoint::Configs, action).times(1));
        let mut c = TcpStream::connect(s.addr()).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        write!(
            c,
            "GET /configs/A/default/application HTTP/1.1\r\nHost: {}\r\n\r\n",
            s.addr()
        )
        .expect("write");
        // The head and the first megabyte, then hang up.
        let mut got = Vec::new();
        let mut buf = [0u8; 65536];
        while got.len() < 1 << 20 {
            let n = c.read(&mut buf).expect("read");
            assert!(n > 0, "closed early");
            got.extend_from_slice(&buf[..n]);
        }
        let head = String::from_utf8_lossy(&got[..got.len().min(1024)]).to_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{head}");
        if stall {
            assert!(head.contains("transfer-encoding: chunked"), "{head}");
        } else {
            assert!(
                head.contains(&format!("content-length: {MAX_OVERSIZED_BYTES}")),
                "{head}"
            );
        }
    }
    // The server is fine.
    assert_eq!(get(&s, "/services/meta").text(), "[]");
}

/// The request log is bounded by bytes (builder `request_log_bytes`, binary
/// `--request-log-bytes`): big requests push the oldest out.
#[test]
fn request_log_is_bounded_by_bytes() {
    let s = TestServer::builder()
        .request_log_bytes(100_000)
        .start()
        .expect("start");
    let pad = "p".repeat(8_000);
    for i in 0..100 {
        get_h(&s, &format!("/services/config?i={i}"), &[("X-Pad", &pad)]);
    }
    let log = s.admin().requests();
    let bytes: usize = log
        .iter()
        .map(|r| {
            r.path.len()
                + r.headers
                    .iter()
                    .map(|(k, v)| k.len() + v.len())
                    .sum::<usize>()
        })
        .sum();
    assert!(bytes <= 100_000, "{bytes}");
    assert!((5..=12).contains(&log.len()), "{}", log.len());
    assert!(log.last().expect("newest").path.ends_with("i=99"));
    assert!(
        admin(&s, "GET", "/__admin/requests", "")
            .json()
            .as_array()
            .expect("list")
            .len()
            == log.len()
    );
}

/// Connections beyond the limit are refused with 503 (held long polls count), and a
/// freed place is usable again at once.
#[test]
fn connection_limit() {
    let s = TestServer::builder()
        .hold(Duration::from_secs(30))
        .max_connections(8)
        .start()
        .expect("start");
    s.admin()
        .publish(A, "default", "application", [("k", "v")])
        .expect("publish");
    let id = s.store().last_message_id();
    // Four idle connections and four held polls.
    let mut held: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(s.addr()).expect("connect"))
        .collect();
    for _ in 0..4 {
        let mut c = TcpStream::connect(s.addr()).expect("connect");
        write!(
            c,
            "GET {} HTTP/1.1\r\nHost: {}\r\n\r\n",
            poll_path(A, "default", &[("application", id)]),
            s.addr()
        )
        .expect("write");
        held.push(c);
    }
    let services = |addr| {
        try_request(
            addr,
            "GET",
            "/services/config",
            &[],
            None,
            Duration::from_secs(5),
        )
    };
    let t = Instant::now();
    while s.admin().held_polls() < 4 {
        assert!(t.elapsed() < Duration::from_secs(10), "polls not held");
        std::thread::sleep(Duration::from_millis(5));
    }
    let r = services(s.addr()).expect("an answer");
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("connection"), Some("close"));
    // One place freed: served again.
    drop(held.remove(0));
    let t = Instant::now();
    loop {
        match services(s.addr()) {
            Ok(r) if r.status == 200 => break,
            other => {
                assert!(t.elapsed() < Duration::from_secs(5), "{other:?}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    drop(held);
    // The binary takes --max-connections.
    let b = Binary::start(["--port", "0", "--max-connections", "1"]);
    let addr = b.addr("http").expect("addr");
    let _hold = TcpStream::connect(addr).expect("connect");
    std::thread::sleep(Duration::from_millis(100));
    let r = services(addr).expect("an answer");
    assert_eq!(r.status, 503);
}

/// A publish of 100,000 keys through the admin API (a size the old quadratic merge of
/// duplicates could not finish in a test's time) keeps every key, lets a repeated key's
/// last value win, and keeps the key in its first place.
#[test]
fn big_publish_keeps_every_key_in_order() {
    let s = server(300);
    let mut body = String::from("{\"configurations\":{");
    for i in 0..100_000 {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&format!("\"key.{i}\":\"value {i}\""));
    }
    body.push_str(",\"key.7\":\"last wins\"}}");
    // Its speed is printed by `cargo xtask bench` (examples/publish.rs), not asserted here.
    let r = admin(&s, "POST", PUBLISH, &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let text = get(&s, "/configfiles/json/SampleApp/default/application").text();
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    let m = v.as_object().expect("object");
    assert_eq!(m.len(), 100_000);
    assert_eq!(m["key.7"], "last wins");
    // Order kept: the repeated key stays in its first place.
    let at = |k: &str| text.find(&format!("\"{k}\"")).expect(k);
    assert!(at("key.6") < at("key.7") && at("key.7") < at("key.8"));
}

/// Huge durations never overflow: `--hold` with a value whose milliseconds do not fit is
/// refused (exit 2, not a panic), and the largest hold the admin API takes still lets a
/// publish wake the poll.
#[test]
fn huge_holds_do_not_overflow() {
    for hold in ["18446744073709551615m", "99999999999999999999s", "5x"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_apolloconf-testserver"))
            .args(["--port", "0", "--hold", hold])
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "--hold {hold}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("bad --hold"));
    }
    let b = Binary::start(["--port", "0", "--hold", "18446744073709551615ms"]);
    let addr = b.addr("http").expect("started");
    assert_eq!(
        request(addr, "GET", "/services/meta", &[], None).status,
        200
    );
    let s = server(300);
    let r = admin(
        &s,
        "PUT",
        "/__admin/settings",
        &format!("{{\"holdMs\":{}}}", u64::MAX),
    );
    assert_eq!(r.status, 200);
    let addr = s.addr();
    let poll = std::thread::spawn(move || {
        request(
            addr,
            "GET",
            &poll_path(A, "default", &[("application", -1)]),
            &[],
            None,
        )
    });
    let t = Instant::now();
    while s.admin().held_polls() < 1 {
        assert!(t.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(5));
    }
    s.admin()
        .publish(A, "default", "application", [("k", "v")])
        .expect("publish");
    assert_eq!(poll.join().expect("poll").status, 200);
}
