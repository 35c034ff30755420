//! Issue 11 for the command line: hostile values, closed pipes, secrets, credentials in
//! URLs, absurd timeouts, slow starts. The real binary against the real test server on
//! loopback.

use std::process::{Command, Output};
use std::time::Duration;

use apolloconf_testserver::TestServer;

const APP: &str = "SampleApp";

/// The binary with a clean environment: no Java variables, no server.properties.
fn cmd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_apolloconf"));
    c.env_clear().env(
        "APOLLO_PATH_SERVER_PROPERTIES",
        "/nonexistent/apolloconf/server.properties",
    );
    c
}

fn server(pairs: &[(&str, &str)]) -> TestServer {
    let s = TestServer::start().unwrap();
    s.admin()
        .publish(APP, "default", "application", pairs.iter().copied())
        .unwrap();
    s
}

fn run(args: &[&str], url: &str) -> Output {
    cmd()
        .args(["--config-service", url, "--app-id", APP, "--no-cache"])
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn any_timeout_is_accepted_without_a_panic() {
    let s = server(&[("timeout", "100")]);
    for t in ["1e19", "1e300", "inf", "18446744073709551616"] {
        let o = run(&["--timeout", t, "get", "timeout"], &s.url());
        assert_eq!(
            o.status.code(),
            Some(0),
            "--timeout {t}: {}",
            text(&o.stderr)
        );
        assert!(text(&o.stdout).contains("100"));
    }
}
