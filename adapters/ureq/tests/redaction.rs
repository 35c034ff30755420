//! A password embedded in a server URL (`http://user:pass@host`) never shows in error
//! messages, `Debug` output or log lines (issue 11).

mod common;

use std::sync::Mutex;
use std::time::Duration;

use apolloconf::{Client, Env};
use common::{APP, builder, dead_port, server};

const PASSWORD: &str = "hunter2";

/// Every log line of this test binary.
struct Capture(Mutex<Vec<String>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, r: &log::Record<'_>) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("{}", r.args()));
    }
    fn flush(&self) {}
}

static LOGS: Capture = Capture(Mutex::new(Vec::new()));

fn init_logs() {
    if log::set_logger(&LOGS).is_ok() {
        log::set_max_level(log::LevelFilter::Trace);
    }
}

#[test]
fn errors_and_debug_output_hide_url_passwords() {
    // An invalid URL is quoted in the error.
    let e = Client::builder()
        .app_id(APP)
        .environment(Env::empty())
        .server_properties("/nonexistent/server.properties")
        .config_service(format!("ftp://apollo:{PASSWORD}@config:8080"))
        .build()
        .expect_err("ftp is not a server URL");
    let text = e.to_string();
    assert!(!text.contains(PASSWORD), "{text}");
    assert!(text.contains("ftp://apollo:***@config:8080"), "{text}");

    // The resolved settings, and a client, print their servers without it.
    let b = Client::builder()
        .app_id(APP)
        .environment(Env::empty())
        .server_properties("/nonexistent/server.properties")
        .meta_server(format!("http://apollo:{PASSWORD}@meta:8080"));
    let r = b.resolve().unwrap();
    let debug = format!("{r:?} {b:?}");
    assert!(!debug.contains(PASSWORD), "{debug}");
    assert!(debug.contains("apollo:***@meta:8080"), "{debug}");
}

#[test]
fn client_debug_and_log_lines_hide_url_passwords() {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    // A server that answers, and one that does not: both log their URLs.
    let s = server();
    let url = s
        .url()
        .replace("http://", &format!("http://apollo:{PASSWORD}@"));
    let c = builder(&url, dir.path()).build().unwrap();
    assert_eq!(
        c.get("timeout").as_deref(),
        Some("100"),
        "basic auth is fine"
    );
    let debug = format!("{c:?}");
    c.close();
    let dead = format!("http://apollo:{PASSWORD}@127.0.0.1:{}", dead_port());
    let c = builder(&dead, dir.path())
        .cache(false)
        .startup_timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    c.close();
    let logs = LOGS.0.lock().unwrap().clone();
    assert!(!logs.is_empty());
    let leaks: Vec<&String> = logs.iter().filter(|l| l.contains(PASSWORD)).collect();
    assert!(leaks.is_empty(), "{leaks:#?}");
    assert!(!debug.contains(PASSWORD), "{debug}");
}
