//! The `apolloconf-testserver` binary: `--data` persistence across restarts and `--dir`
//! watching; and the library's `watch_dir`.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use apolloconf_testserver::TestServer;
use common::*;

struct Proc {
    _bin: Binary,
    addr: SocketAddr,
}

fn start(args: &[&str]) -> Proc {
    let bin = Binary::start(args);
    let line = &bin.first_line;
    assert!(
        line.starts_with("listening http://127.0.0.1:"),
        "unexpected first line {line:?}"
    );
    let addr = bin.addr("http").expect("addr");
    Proc { _bin: bin, addr }
}

fn tmp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("apolloconf-ts-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).expect("tmp dir");
    p
}

fn post(addr: SocketAddr, path: &str, body: &str) -> Resp {
    request(
        addr,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        Some(body.as_bytes()),
    )
}

#[test]
fn data_file_survives_restart() {
    let dir = tmp("data");
    let data = dir.join("state.json");
    let data_s = data.to_str().expect("utf8");
    let p1 = start(&["--port", "0", "--hold", "300ms", "--data", data_s]);
    let r1 = post(
        p1.addr,
        "/__admin/apps/A/clusters/default/namespaces/application/releases",
        "{\"configurations\":{\"k\":\"v\"}}",
    )
    .json();
    post(
        p1.addr,
        "/__admin/apps/A/accesskeys",
        "{\"secret\":\"s\",\"mode\":\"OBSERVER\"}",
    );
    drop(p1);
    assert!(data.exists());
    assert!(!dir.join("state.json.tmp").exists());
    let p2 = start(&["--port", "0", "--hold", "300ms", "--data", data_s]);
    let v = request(p2.addr, "GET", "/configs/A/default/application", &[], None).json();
    assert_eq!(v["releaseKey"], r1["releaseKey"]);
    // The admin API never shows a secret in full; the data file keeps it.
    let keys = request(p2.addr, "GET", "/__admin/apps/A/accesskeys", &[], None).json();
    assert_eq!(
        (&keys[0]["secret"], &keys[0]["mode"]),
        (&serde_json::json!("****"), &serde_json::json!("OBSERVER"))
    );
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&data).expect("data file")).expect("json");
    assert_eq!(state["apps"]["A"]["access_keys"][0]["secret"], "s");
    let r2 = post(
        p2.addr,
        "/__admin/apps/B/clusters/default/namespaces/application/releases",
        "{\"configurations\":{}}",
    )
    .json();
    assert!(r2["messageId"].as_i64() > r1["messageId"].as_i64());
    // Long poll across the restart: the old id is stale, answered at once.
    let p = poll_path("A", "default", &[("application", -1)]);
    let v = request(p2.addr, "GET", &p, &[], None).json();
    assert_eq!(v[0]["notificationId"], r1["messageId"]);
    drop(p2);
    let _ = std::fs::remove_dir_all(&dir);
}

fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(path, text).expect("write");
}

fn wait_for(addr: SocketAddr, path: &str, want: &str) {
    let t = Instant::now();
    loop {
        let r = request(addr, "GET", path, &[], None);
        if r.text().contains(want) {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{path}: {}",
            r.text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn binary_dir_watch_publishes_changes_and_wakes_polls() {
    let dir = tmp("dir");
    write(
        &dir.join("App/default/application.properties"),
        "# comment\ntimeout = 100\nname:x\\\n  y\n",
    );
    write(&dir.join("App/default/cfg.yaml"), "a: 1\n");
    write(
        &dir.join("Owner/default/FX.apollo.properties"),
        "p=1\nq=2\n",
    );
    write(
        &dir.join("Owner/public.txt"),
        "# public namespaces\nFX.apollo\n",
    );
    write(&dir.join("App/default/FX.apollo.properties"), "q=app\n");
    let p = start(&[
        "--port",
        "0",
        "--hold",
        "5s",
        "--dir",
        dir.to_str().expect("utf8"),
    ]);
    let v = request(p.addr, "GET", "/configs/App/default/application", &[], None).json();
    assert_eq!(
        v["configurations"],
        serde_json::json!({"timeout":"100","name":"xy"})
    );
    assert_eq!(
        request(
            p.addr,
            "GET",
            "/configfiles/raw/App/default/cfg.yaml",
            &[],
            None
        )
        .text(),
        "a: 1\n"
    );
    let v = request(p.addr, "GET", "/configs/App/default/FX.apollo", &[], None).json();
    assert_eq!(v["configurations"], serde_json::json!({"p":"1","q":"app"}));
    assert!(v["releaseKey"].as_str().expect("key").contains('+'));
    // Edit a file while a poll is held.
    let last = v_last(p.addr);
    let addr = p.addr;
    let path = poll_path(
        "App",
        "default",
        &[("application", last), ("cfg.yaml", last)],
    );
    let h = std::thread::spawn(move || request(addr, "GET", &path, &[], None));
    std::thread::sleep(Duration::from_millis(300));
    write(&dir.join("App/default/cfg.yaml"), "a: 2\n");
    let r = h.join().expect("thread");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()[0]["namespaceName"], "cfg.yaml");
    wait_for(p.addr, "/configfiles/raw/App/default/cfg.yaml", "a: 2");
    // A new file appears.
    write(&dir.join("App/dc1/application.properties"), "timeout=5\n");
    wait_for(p.addr, "/configs/App/dc1/application", "\"timeout\":\"5\"");
    drop(p);
    let _ = std::fs::remove_dir_all(&dir);
}

fn v_last(addr: SocketAddr) -> i64 {
    request(addr, "GET", "/__admin/stats", &[], None).json()["lastMessageId"]
        .as_i64()
        .expect("id")
}

#[test]
fn library_watch_dir_loads_before_start_returns() {
    let dir = tmp("lib");
    write(&dir.join("App/default/application.properties"), "k=v\n");
    let s = TestServer::builder()
        .watch_dir(&dir)
        .start()
        .expect("start");
    assert_eq!(
        get(&s, "/configfiles/json/App/default/application").text(),
        "{\"k\":\"v\"}"
    );
    write(&dir.join("App/default/application.properties"), "k=w\n");
    let t = Instant::now();
    while get(&s, "/configfiles/json/App/default/application").text() != "{\"k\":\"w\"}" {
        assert!(t.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(50));
    }
    s.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

/// An unchanged file is not read again, but a file with the same length, time and inode
/// as at its last read is, while that time is recent: two writes in one tick of a coarse
/// clock look alike. Here its time is in the future (a clock set back), recent for the
/// whole test, and the second write keeps it.
#[test]
fn watch_dir_reads_a_recent_file_again_whatever_its_stamp() {
    use std::io::Write as _;
    let dir = tmp("stamp");
    let path = dir.join("App/default/application.properties");
    write(&path, "k=1\n");
    let future = std::time::SystemTime::now() + Duration::from_secs(600);
    let set_time = |f: &std::fs::File| f.set_modified(future).expect("set time");
    set_time(
        &std::fs::File::options()
            .write(true)
            .open(&path)
            .expect("open"),
    );
    let s = TestServer::builder()
        .watch_dir(&dir)
        .start()
        .expect("start");
    let json = "/configfiles/json/App/default/application";
    assert_eq!(get(&s, json).text(), "{\"k\":\"1\"}");
    // A few scans see it as it is.
    std::thread::sleep(Duration::from_millis(600));
    let mut f = std::fs::File::options()
        .write(true)
        .open(&path)
        .expect("open");
    f.write_all(b"k=2\n").expect("rewrite in place");
    set_time(&f);
    drop(f);
    let t = Instant::now();
    while get(&s, json).text() != "{\"k\":\"2\"}" {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the rewrite was not seen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    s.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn dir_with_data_file_does_not_republish_on_restart() {
    let dir = tmp("dirdata");
    let files = dir.join("files");
    write(&files.join("App/default/application.properties"), "k=v\n");
    let data = dir.join("state.json");
    let args = [
        "--port",
        "0",
        "--dir",
        files.to_str().expect("utf8"),
        "--data",
        data.to_str().expect("utf8"),
    ];
    let p1 = start(&args);
    let k1 = request(
        p1.addr,
        "GET",
        "/configs/App/default/application",
        &[],
        None,
    )
    .json()["releaseKey"]
        .clone();
    drop(p1);
    let p2 = start(&args);
    let k2 = request(
        p2.addr,
        "GET",
        "/configs/App/default/application",
        &[],
        None,
    )
    .json()["releaseKey"]
        .clone();
    assert_eq!(k1, k2);
    drop(p2);
    let _ = std::fs::remove_dir_all(&dir);
}

/// docs/protocol.md#edge-cases (38) (a client-side entry; the server side is the directory
/// mode's reader).
#[test]
fn properties_rules_in_directory_mode() {
    let dir = tmp("props");
    write(
        &dir.join("App/default/application.properties"),
        concat!(
            "# comment\n",
            "! bang comment\n",
            "   indented = value with trailing  \n",
            "colon:c\n",
            "blank b\n",
            "keyonly\n",
            "cont = a\\\n",
            "       b\\\n",
            "  c\n",
            "even = x\\\\\n",
            "next = y\n",
            "uni = caf\\u00e9 \\t|\n",
            "esc\\=aped\\:key\\ x = 1\n",
            "#not\\\n",
            "after = comment\n",
            "dup = 1\n",
            "dup = 2\n",
        ),
    );
    write(&dir.join("App/default/bad.properties"), "k=\\u12\n");
    let s = TestServer::builder()
        .watch_dir(&dir)
        .start()
        .expect("start");
    let v = get(&s, "/configs/App/default/application").json();
    assert_eq!(
        v["configurations"],
        serde_json::json!({
            "indented": "value with trailing  ",
            "colon": "c",
            "blank": "b",
            "keyonly": "",
            "cont": "abc",
            "even": "x\\",
            "next": "y",
            "uni": "café \t|",
            "esc=aped:key x": "1",
            "after": "comment",
            "dup": "2",
        })
    );
    // A malformed \u escape: the file is skipped.
    assert_eq!(get(&s, "/configs/App/default/bad").status, 404);
    s.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}
