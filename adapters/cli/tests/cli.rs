//! The real `apolloconf` binary against the real test server over loopback.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use apolloconf_testserver::TestServer;
use serde_json::Value;

mod common;

use common::{APP, cmd, run};
const WAIT: Duration = Duration::from_secs(15);

fn server() -> TestServer {
    let s = TestServer::start().unwrap();
    let a = s.admin();
    a.publish(
        APP,
        "default",
        "application",
        [("timeout", "100"), ("db.url", "jdbc:x"), ("quote", "it's")],
    )
    .unwrap();
    a.publish_content(APP, "default", "datasource.yaml", "pool:\n  size: 5\n")
        .unwrap();
    s
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn lines(child: &mut Child) -> Receiver<String> {
    lines_of(child.stdout.take().unwrap())
}

/// The lines of `r`, read on a thread of their own.
fn lines_of(r: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn next_json(rx: &Receiver<String>) -> Value {
    let line = rx.recv_timeout(WAIT).expect("a line in time");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

/// Wait for the next line of `type`, skipping others (e.g. errors during a restart).
fn next_of_type(rx: &Receiver<String>, ty: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        let v = next_json(rx);
        if v["type"] == ty {
            return v;
        }
    }
    panic!("no {ty} line in time");
}

fn wait_until(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// SIGINT, as Ctrl-C sends it; the process must exit cleanly (status 0).
fn interrupt(child: &mut Child) {
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status after Ctrl-C: {status}");
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("did not exit after SIGINT");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn get_prints_values_and_uses_exit_codes() {
    let s = server();
    let o = run(&["get", "timeout"], &s.url());
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(stdout(&o).trim(), "timeout  100");

    let o = run(&["get", "--format", "json", "timeout", "nope"], &s.url());
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["timeout"], "100");
    assert!(v["nope"].is_null());
    assert!(String::from_utf8_lossy(&o.stderr).contains("nope"));

    let o = run(&["get", "--format", "env"], &s.url());
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("DB_URL='jdbc:x'"), "{}", stdout(&o));
    assert!(stdout(&o).contains("QUOTE='it'\\''s'"), "{}", stdout(&o));

    let o = run(
        &[
            "get",
            "-n",
            "datasource.yaml",
            "--format",
            "properties",
            "pool.size",
        ],
        &s.url(),
    );
    assert_eq!(stdout(&o), "pool.size=5\n");

    // Connection error: exit 2 with a hint.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let o = run(&["get", "timeout"], &dead);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("could not load") && err.contains("--config-service"),
        "{err}"
    );

    // Usage errors: exit 2.
    let o = run(&["get", "--format", "bogus"], &s.url());
    assert_eq!(o.status.code(), Some(2));
    let o = cmd().args(["get", "timeout"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("app id"),
        "{o:?}"
    );
    let o = cmd()
        .args(["--app-id", APP, "--meta", "not a url", "get"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));

    // A missing namespace: exit 1.
    let o = run(&["get", "-n", "missing.ns"], &s.url());
    assert_eq!(o.status.code(), Some(1), "{o:?}");
}

#[test]
fn get_reads_the_java_environment_variables() {
    let s = server();
    let o = cmd()
        .env("APP_ID", APP)
        .env("APOLLO_CONFIG_SERVICE", s.url())
        .args(["--no-cache", "get", "timeout"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(stdout(&o).trim(), "timeout  100");
    let o = cmd()
        .env("APP_ID", APP)
        .env("ENV", "prod")
        .env("PRO_META", s.url())
        .args(["--no-cache", "get", "timeout"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
}

#[test]
fn watch_writes_json_lines() {
    let s = server();
    let mut child = cmd()
        .args([
            "--config-service",
            &s.url(),
            "--app-id",
            APP,
            "--no-cache",
            "-n",
            "application",
        ])
        .args(["-n", "datasource.yaml", "watch", "--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rx = lines(&mut child);
    let first = rx.recv_timeout(WAIT).unwrap();
    assert!(
        first.starts_with(r#"{"type":"snapshot","namespace":"application","releaseKey":""#),
        "{first}"
    );
    let v: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(v["source"], "server");
    assert_eq!(v["configurations"]["timeout"], "100");
    let v = next_json(&rx);
    assert_eq!(v["namespace"], "datasource.yaml");
    assert_eq!(v["configurations"]["content"], "pool:\n  size: 5\n");

    assert!(wait_until(|| s.admin().held_polls() >= 1));
    let rel = s
        .admin()
        .publish(
            APP,
            "default",
            "application",
            [("timeout", "200"), ("quote", "it's")],
        )
        .unwrap();
    let line = rx.recv_timeout(WAIT).unwrap();
    let expected = format!(
        r#"{{"type":"change","namespace":"application","releaseKey":"{}","changes":[{{"key":"db.url","old":"jdbc:x","new":null,"kind":"deleted"}},{{"key":"timeout","old":"100","new":"200","kind":"modified"}}]}}"#,
        rel.release_key
    );
    assert_eq!(line, expected);

    // Problems it keeps going through are error lines.
    s.admin().pause();
    let e = next_of_type(&rx, "error");
    assert!(e["message"].as_str().is_some());
    s.admin().resume().unwrap();
    s.admin()
        .publish(APP, "default", "application", [("timeout", "300")])
        .unwrap();
    let c = next_of_type(&rx, "change");
    assert_eq!(
        c["changes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|ch| ch["key"] == "timeout")
            .count(),
        1
    );
    interrupt(&mut child);
}

#[test]
fn export_writes_every_format() {
    let s = server();
    let o = run(&["export", "--format", "properties"], &s.url());
    assert_eq!(stdout(&o), "db.url=jdbc\\:x\nquote=it's\ntimeout=100\n");
    let o = run(&["export", "--format", "json"], &s.url());
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["db.url"], "jdbc:x");
    let o = run(&["export", "--format", "yaml"], &s.url());
    assert!(
        stdout(&o).contains("\"timeout\": \"100\""),
        "{}",
        stdout(&o)
    );
    let o = run(&["export", "--format", "env"], &s.url());
    assert!(stdout(&o).contains("TIMEOUT='100'"));
    let o = run(
        &["export", "-n", "datasource.yaml", "--format", "yaml"],
        &s.url(),
    );
    assert_eq!(stdout(&o), "pool:\n  size: 5\n");
    let o = run(
        &["export", "-n", "datasource.yaml", "--format", "properties"],
        &s.url(),
    );
    assert_eq!(stdout(&o), "pool.size=5\n");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.properties");
    let o = run(&["export", "-o", file.to_str().unwrap()], &s.url());
    assert_eq!(o.status.code(), Some(0));
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains("timeout=100")
    );
    let o = run(&["export", "-n", "a", "-n", "b"], &s.url());
    assert_eq!(o.status.code(), Some(2));
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn write_app_file(dir: &Path, text: &str) {
    let f = dir.join(APP).join("default").join("application.properties");
    std::fs::create_dir_all(f.parent().unwrap()).unwrap();
    // Write then rename, so the watcher never reads half a file.
    let tmp = dir.join("tmp.properties");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, &f).unwrap();
}

#[test]
fn serve_publishes_file_edits() {
    let dir = tempfile::tempdir().unwrap();
    write_app_file(dir.path(), "greeting=hello\n");
    let port = free_port();
    let mut serve = cmd()
        .args([
            "serve",
            "--dir",
            dir.path().to_str().unwrap(),
            "--port",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    assert!(
        wait_until(|| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()),
        "serve listens"
    );
    let mut watch = cmd()
        .args([
            "--meta",
            &url,
            "--app-id",
            APP,
            "--no-cache",
            "watch",
            "--format",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rx = lines(&mut watch);
    let snap = next_of_type(&rx, "snapshot");
    assert_eq!(snap["configurations"]["greeting"], "hello");
    write_app_file(dir.path(), "greeting=bonjour\nextra=1\n");
    let change = next_of_type(&rx, "change");
    let keys: Vec<&str> = change["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["extra", "greeting"]);
    interrupt(&mut watch);
    interrupt(&mut serve);
}

/// One raw HTTP/1.1 GET: (status line, lower-cased head, body).
/// Whether the server answered a connection that sent nothing (a refusal's 503) or
/// closed it, within 100 ms.
fn refused(c: &std::net::TcpStream) -> bool {
    let _ = c.set_read_timeout(Some(Duration::from_millis(100)));
    let mut byte = [0u8; 1];
    // A served connection that sent no request gets nothing: the read times out.
    !matches!(std::io::Read::read(&mut &*c, &mut byte), Err(ref e)
        if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut))
}

fn http_get(port: u16, path: &str, headers: &[&str]) -> (String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, _) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head.lines().next().unwrap_or("").to_string();
    (status, head.to_ascii_lowercase())
}

/// `serve` beyond loopback makes up an admin token and prints it; `--admin-token`,
/// `--cors` and `--max-connections` reach the server.
#[test]
fn serve_admin_token_cors_and_connection_limit() {
    let dir = tempfile::tempdir().unwrap();
    write_app_file(dir.path(), "greeting=hello\n");
    let port = free_port();
    let mut serve = cmd()
        .args(["serve", "--dir", dir.path().to_str().unwrap()])
        .args(["--port", &port.to_string(), "--host", "0.0.0.0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = lines_of(serve.stderr.take().unwrap());
    let token = loop {
        let line = rx.recv_timeout(WAIT).expect("the token is printed");
        if let Some(rest) = line.split_once("Authorization: Bearer ") {
            break rest.1.trim_end_matches('`').to_string();
        }
    };
    assert_eq!(token.len(), 32, "{token}");
    assert!(http_get(port, "/__admin/stats", &[]).0.contains(" 401 "));
    let bearer = format!("Authorization: Bearer {token}");
    assert!(
        http_get(port, "/__admin/stats", &[&bearer])
            .0
            .contains(" 200 ")
    );
    interrupt(&mut serve);

    let port = free_port();
    let mut serve = cmd()
        .args(["serve", "--dir", dir.path().to_str().unwrap()])
        .args([
            "--port",
            &port.to_string(),
            "--admin-token",
            "tok",
            "--cors",
        ])
        .args(["--max-connections", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // (Retried: a probe that just hung up may still hold one of the two places.)
    let ok = |path: &str, headers: &[&str]| {
        let mut last = (String::new(), String::new());
        let done = wait_until(|| {
            last = match std::net::TcpStream::connect(("127.0.0.1", port)) {
                Ok(_) => http_get(port, path, headers),
                Err(_) => (String::new(), String::new()),
            };
            !last.0.contains(" 503 ") && !last.0.is_empty()
        });
        assert!(done, "{path}: {last:?}");
        last
    };
    let (status, head) = ok("/services/config", &[]);
    assert!(status.contains(" 200 "), "{status}");
    assert!(head.contains("access-control-allow-origin: *"), "{head}");
    assert!(ok("/__admin/stats", &[]).0.contains(" 401 "));
    assert!(
        ok("/__admin/stats", &["Authorization: Bearer tok"])
            .0
            .contains(" 200 ")
    );
    // Two connections held open take both places. A probe above that has not been
    // let go yet may still hold one, so a held connection that was refused (answered
    // and closed at once) is opened again.
    let mut held = Vec::new();
    assert!(wait_until(|| {
        held.retain(|c| !refused(c));
        if held.len() < 2 {
            held.push(std::net::TcpStream::connect(("127.0.0.1", port)).unwrap());
            return false;
        }
        http_get(port, "/services/config", &[]).0.contains(" 503 ")
    }));
    interrupt(&mut serve);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn embedded_default_serves_examples_config() {
    let cwd = tempfile::tempdir().unwrap();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/config");
    let config = cwd.path().join("examples").join("config");
    copy_dir(&sample, &config);
    let mut child = cmd()
        .current_dir(cwd.path())
        .args(["watch", "--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let erx = lines_of(child.stderr.take().unwrap());
    let rx = lines(&mut child);
    let mut seen = Vec::new();
    for _ in 0..3 {
        let v = next_of_type(&rx, "snapshot");
        assert_eq!(v["source"], "server");
        seen.push(v["namespace"].as_str().unwrap().to_string());
        if v["namespace"] == "platform.common" {
            assert_eq!(
                v["configurations"]["log.level"], "DEBUG",
                "the override wins"
            );
            assert!(v["releaseKey"].as_str().unwrap().contains('+'));
        }
    }
    assert_eq!(seen, ["application", "platform.common", "datasource.yaml"]);
    let note = erx.recv_timeout(WAIT).unwrap();
    assert!(
        note.contains("no Apollo server configured") && note.contains("examples"),
        "{note}"
    );

    let file = config
        .join(APP)
        .join("default")
        .join("application.properties");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("greeting=Hello from Apollo", "greeting=Edited live");
    let tmp = config.join("edit.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    let change = next_of_type(&rx, "change");
    assert_eq!(change["namespace"], "application");
    let ch = &change["changes"][0];
    assert_eq!(
        (ch["key"].as_str(), ch["new"].as_str(), ch["kind"].as_str()),
        (Some("greeting"), Some("Edited live"), Some("modified"))
    );
    interrupt(&mut child);
}

#[test]
fn watch_table_view_for_people() {
    let s = server();
    let mut child = cmd()
        .args([
            "--config-service",
            &s.url(),
            "--app-id",
            APP,
            "--no-cache",
            "watch",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rx = lines(&mut child);
    let mut seen = Vec::new();
    let mut next = |pred: &dyn Fn(&str) -> bool| -> String {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            let Ok(l) = rx.recv_timeout(WAIT) else { break };
            seen.push(l.clone());
            if pred(&l) {
                return l;
            }
        }
        panic!("not seen; got {seen:?}");
    };
    next(&|l| l.starts_with("app SampleApp") && l.contains(&s.url()));
    next(&|l| l.starts_with("── application (server, release "));
    next(&|l| l.trim_start().starts_with("timeout") && l.trim_end().ends_with("100"));
    let status = next(&|l| l.starts_with("● "));
    assert!(status.contains("connected"), "{status}");
    assert!(wait_until(|| s.admin().held_polls() >= 1));
    s.admin()
        .publish(APP, "default", "application", [("timeout", "200")])
        .unwrap();
    // Changes come sorted by key.
    let deleted = next(&|l| l.contains("db.url: jdbc:x → ∅"));
    assert!(deleted.contains("deleted"), "{deleted}");
    let change = next(&|l| l.contains("timeout: 100 → 200"));
    assert!(
        change.contains("application") && change.contains("modified"),
        "{change}"
    );
    interrupt(&mut child);
}

/// A throwaway CA and a server certificate it signed for `names`, as PEM:
/// (CA, certificate, key).
fn test_pki(names: &[&str]) -> (String, String, String) {
    let p = apolloconf_testserver::TestPki::generate(names).expect("test certificates");
    (p.ca_pem, p.cert_pem, p.key_pem)
}

#[test]
fn get_over_https_with_ca_file() {
    let (ca, cert, key) = test_pki(&["127.0.0.1", "localhost"]);
    let (other_ca, _, _) = test_pki(&["127.0.0.1"]);
    let s = TestServer::builder().tls(cert, key).start().unwrap();
    s.admin()
        .publish(APP, "default", "application", [("timeout", "100")])
        .unwrap();
    assert!(s.url().starts_with("https://"));
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    let other_file = dir.path().join("other.pem");
    std::fs::write(&ca_file, ca).unwrap();
    std::fs::write(&other_file, other_ca).unwrap();
    let ca_arg = ca_file.to_str().unwrap();
    let other_arg = other_file.to_str().unwrap();

    // Repeated and comma-separated --ca-file both work.
    let o = run(
        &[
            "get",
            "timeout",
            "--ca-file",
            other_arg,
            "--ca-file",
            ca_arg,
        ],
        &s.url(),
    );
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(stdout(&o).trim(), "timeout  100");
    let list = format!("{other_arg},{ca_arg}");
    let o = run(&["get", "timeout", "--ca-file", &list], &s.url());
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(stdout(&o).trim(), "timeout  100");

    // Without the CA: a connection error that says it is about the certificate.
    let o = run(&["get", "timeout", "--timeout", "3"], &s.url());
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("TLS error") && err.contains("UnknownIssuer"),
        "{err}"
    );
    assert!(err.contains("--ca-file"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    // An unusable CA file is a usage error naming the file.
    let o = run(
        &["get", "timeout", "--ca-file", "/nonexistent/ca.pem"],
        &s.url(),
    );
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("/nonexistent/ca.pem"), "{err}");

    // --help documents the option.
    let o = cmd().arg("--help").output().unwrap();
    assert!(stdout(&o).contains("--ca-file"));
}
