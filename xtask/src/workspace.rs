//! The workspace's folders and its cargo, shared by the task modules.

use crate::step::{Cmd, cargo, cmd, project_root};
use std::path::{Path, PathBuf};

/// The workspace root (`.` when it cannot be told).
pub fn root() -> PathBuf {
    project_root().unwrap_or_else(|| PathBuf::from("."))
}

/// The workspace target directory (honours `CARGO_TARGET_DIR` as cargo does).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => {
            let d = PathBuf::from(d);
            if d.is_absolute() { d } else { root().join(d) }
        }
        _ => root().join("target"),
    }
}

/// A path as a command-line argument.
pub fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// A cargo command (the cargo running xtask, else `cargo` on PATH), to add settings to
/// before it runs.
pub fn cargo_cmd(args: &[&str]) -> Cmd {
    cmd(
        &std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()),
        args,
    )
}

/// The test server binary that [`build_test_server`] makes.
pub fn test_server() -> PathBuf {
    target_dir().join("debug").join("apolloconf-testserver")
}

/// `cargo build -p apolloconf-testserver` (the hosts' tests start it as a child process).
pub fn build_test_server() -> bool {
    cargo(&["build", "-p", "apolloconf-testserver"])
}
