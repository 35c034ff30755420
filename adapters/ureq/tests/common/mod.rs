//! Helpers shared by the integration tests: a real test server on loopback, fast timings,
//! and bounded waits.
#![allow(dead_code, missing_docs)]

use std::path::Path;
use std::time::{Duration, Instant};

use apolloconf::{ClientBuilder, Env, Timing};
use apolloconf_testserver::TestServer;

pub const APP: &str = "SampleApp";

/// Protocol timings scaled down for tests (same shape as the Java defaults).
pub fn fast_timing() -> Timing {
    let mut t = Timing::default();
    t.long_poll_initial_delay = Duration::ZERO;
    t.connect_timeout = Duration::from_millis(500);
    t.read_timeout = Duration::from_secs(2);
    t.fetch_retry_initial = Duration::from_millis(50);
    t.fetch_retry_max = Duration::from_millis(300);
    t.long_poll_retry_initial = Duration::from_millis(50);
    t.long_poll_retry_max = Duration::from_millis(300);
    t.long_poll_qps = 50;
    t.load_config_qps = 50;
    t
}

/// A server with a 60 s hold (as the real one) and the sample app published.
pub fn server() -> TestServer {
    let s = TestServer::start().expect("test server starts");
    s.admin()
        .publish(
            APP,
            "default",
            "application",
            [
                ("timeout", "100"),
                ("greeting", "hello"),
                ("db.url", "jdbc:x"),
            ],
        )
        .expect("publish");
    s
}

/// A builder pointed at `server` with no process environment, no server.properties and
/// the cache in `cache`.
pub fn builder(url: &str, cache: &Path) -> ClientBuilder {
    apolloconf::Client::builder()
        .app_id(APP)
        .config_service(url)
        .environment(Env::empty())
        .server_properties(cache.join("no-server.properties"))
        .cache_dir(cache)
        .timing(fast_timing())
        .startup_timeout(Duration::from_secs(10))
}

/// Poll `f` until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A loopback port nobody listens on.
pub fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let p = l.local_addr().expect("addr").port();
    drop(l);
    p
}
