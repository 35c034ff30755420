//! Steps with a pass/fail tally and the closing `N passed, N failed` line.

use std::process::{Command, ExitCode};
use std::time::Instant;

/// Runs named steps and counts their outcomes.
pub struct Runner {
    passed: u32,
    failed: Vec<String>,
    started: Instant,
}

impl Runner {
    pub fn new() -> Runner {
        Runner {
            passed: 0,
            failed: Vec::new(),
            started: Instant::now(),
        }
    }

    /// Run one step; `f` returns whether it passed.
    pub fn step(&mut self, name: &str, f: impl FnOnce() -> bool) -> bool {
        println!("=== {name}");
        let t = Instant::now();
        let ok = f();
        let secs = t.elapsed().as_secs_f64();
        if ok {
            self.passed += 1;
            println!("=== ok   {name} ({secs:.1} s)");
        } else {
            self.failed.push(name.to_string());
            println!("=== FAIL {name} ({secs:.1} s)");
        }
        ok
    }

    /// Print the summary and the exit code.
    pub fn finish(self) -> ExitCode {
        println!("total {:.0} s", self.started.elapsed().as_secs_f64());
        for f in &self.failed {
            println!("failed: {f}");
        }
        println!("{} passed, {} failed", self.passed, self.failed.len());
        if self.failed.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

/// A command builder that reports how it ended.
pub struct Cmd(Command);

pub fn cmd(program: &str, args: &[&str]) -> Cmd {
    let mut c = Command::new(program);
    c.args(args);
    if let Some(root) = project_root() {
        c.current_dir(root);
    }
    Cmd(c)
}

impl Cmd {
    pub fn env(mut self, k: &str, v: &str) -> Cmd {
        self.0.env(k, v);
        self
    }

    pub fn dir(mut self, d: &std::path::Path) -> Cmd {
        self.0.current_dir(d);
        self
    }

    /// Run it; true when it exited with status 0.
    pub fn ok(mut self) -> bool {
        match self.0.status() {
            Ok(s) => s.success(),
            Err(e) => {
                eprintln!("cannot run {:?}: {e}", self.0.get_program());
                false
            }
        }
    }

    /// Run it and capture stdout (None when it failed).
    pub fn output(mut self) -> Option<String> {
        let out = self.0.output().ok()?;
        if out.status.success() {
            String::from_utf8(out.stdout).ok()
        } else {
            None
        }
    }
}

pub fn cargo(args: &[&str]) -> bool {
    crate::workspace::cargo_cmd(args).ok()
}

/// The workspace root (the parent of this crate's directory).
pub fn project_root() -> Option<std::path::PathBuf> {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(std::path::Path::to_path_buf)
}
