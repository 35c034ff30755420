//! What the CLI's test files share: the binary with a clean environment, run against a
//! test server.
#![allow(dead_code)]

use std::process::{Command, Output};

pub const APP: &str = "SampleApp";

/// The binary with a clean environment: no Java variables, no server.properties.
pub fn cmd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_apolloconf"));
    c.env_clear().env(
        "APOLLO_PATH_SERVER_PROPERTIES",
        "/nonexistent/apolloconf/server.properties",
    );
    c
}

/// `apolloconf ARGS` against the config service at `url`, app `APP`, no cache.
pub fn run(args: &[&str], url: &str) -> Output {
    cmd()
        .args(["--config-service", url, "--app-id", APP, "--no-cache"])
        .args(args)
        .output()
        .unwrap()
}
