//! Project scripts, runnable locally and in CI.
//!
//! - `cargo xtask test`: every check CI runs (format, lint, tests, docs, the `no_std`
//!   build, and the steps later parts add). Prints `N passed, N failed` and exits
//!   non-zero on any failure.
//! - `cargo xtask bench`: benchmarks that print numbers (never asserted).
//! - `cargo xtask bench --peers`: our clients beside other Apollo clients installed from
//!   npm, crates.io and PyPI, in one table (see `peers.rs`).
//! - `cargo xtask python`: only the Python package's steps (wheel, pytest, abi3 import
//!   check, the `python` conformance subject).
//! - `cargo xtask fuzz [--seconds N] [TARGET…]`: coverage-guided fuzzing of the core
//!   (see `fuzz.rs`).

mod fuzz;
mod peers;
mod python;
mod step;
mod wasm;
mod workspace;

use std::process::ExitCode;

use step::{Runner, cargo, cmd};

/// A target without `std`, to prove the core is `no_std`.
const NO_STD_TARGET: &str = "thumbv7em-none-eabihf";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let task = args.first().map(String::as_str).unwrap_or("help");
    let rest = args.get(1..).unwrap_or(&[]);
    match task {
        "test" => test(rest),
        "bench" if rest.iter().any(|a| a == "--peers") => peers::run(),
        "bench" => bench(),
        "wasm" => wasm::build_only(),
        "python" => python::only(),
        "fuzz" => {
            if fuzz::fuzz(rest) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        _ => {
            eprintln!(
                "usage: cargo xtask test [--quick] | bench [--peers] | wasm | python | fuzz [--seconds N] [TARGET…]"
            );
            ExitCode::from(2)
        }
    }
}

fn test(rest: &[String]) -> ExitCode {
    let quick = rest.iter().any(|a| a == "--quick");
    let mut r = Runner::new();
    r.step("cargo fmt --check", || {
        cargo(&["fmt", "--all", "--", "--check"])
    });
    r.step("cargo clippy (all targets, -D warnings)", || {
        cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ])
    });
    r.step("cargo test (workspace)", || cargo(&["test", "--workspace"]));
    r.step(
        "cargo test apolloconf-core without default features",
        || cargo(&["test", "-p", "apolloconf-core", "--no-default-features"]),
    );
    r.step("rustdoc without warnings", || {
        cmd("cargo", &["doc", "--workspace", "--no-deps"])
            .env("RUSTDOCFLAGS", "-Dwarnings")
            .ok()
    });
    r.step(
        &format!("no_std build of apolloconf-core ({NO_STD_TARGET})"),
        || {
            cmd("rustup", &["target", "add", NO_STD_TARGET]).ok()
                && cargo(&[
                    "build",
                    "-p",
                    "apolloconf-core",
                    "--no-default-features",
                    "--target",
                    NO_STD_TARGET,
                ])
        },
    );
    if !quick {
        r.step("core fault simulation (1,000 seeds, release build)", || {
            fault_simulation(1_000)
        });
        r.step(
            "fuzz targets: replay the corpora (coverage build, stable)",
            fuzz::replay,
        );
        wasm::steps(&mut r);
        python::steps(&mut r);
    }
    r.finish()
}

fn bench() -> ExitCode {
    let mut r = Runner::new();
    r.step("core fault simulation throughput (2,000 seeds)", || {
        fault_simulation(2_000)
    });
    r.step("test server: 10,000 held long polls, one publish", || {
        release_example("apolloconf-testserver", "scale")
    });
    r.step(
        "test server: admin publish of 10,000 to 100,000 keys; directory mode with 100,000 and 1,000,000",
        || release_example("apolloconf-testserver", "publish"),
    );
    r.step(
        "native client: latency, Java-rate bursts and fan-out, start-up, get() vs HashMap",
        || release_example("apolloconf", "measure"),
    );
    r.step(
        "native client and CLI: hostile answers (time and peak memory of each)",
        || example_against_server("hostile", true),
    );
    r.step(
        "native client: soak (10 min, a publish every 100 ms) and outage (2 min of 503)",
        || example_against_server("soak", false),
    );
    wasm::bench(&mut r);
    python::bench(&mut r);
    r.finish()
}

/// A release example of the native client given the test server binary to start (its
/// measurements keep the server's memory out of the client's process). Both are release
/// builds: a debug server would take seconds to write a release of a million keys.
/// `with_cli`: the release `apolloconf` command is built and passed too.
fn example_against_server(example: &str, with_cli: bool) -> bool {
    let release = workspace::target_dir().join("release");
    let server = workspace::s(&release.join("apolloconf-testserver"));
    let cli = workspace::s(&release.join("apolloconf"));
    let mut args = vec![
        "run",
        "--release",
        "-p",
        "apolloconf",
        "--example",
        example,
        "--",
        &server,
    ];
    if with_cli {
        args.push(&cli);
    }
    cargo(&["build", "--release", "-p", "apolloconf-testserver"])
        && (!with_cli || cargo(&["build", "--release", "-p", "apolloconf-cli"]))
        && cargo(&args)
}

/// `cargo run --release -p PACKAGE --example EXAMPLE` (an example that prints numbers).
fn release_example(package: &str, example: &str) -> bool {
    cargo(&["run", "--release", "-p", package, "--example", example])
}

/// The core's seeded fault simulation in a release build, printing its numbers.
fn fault_simulation(seeds: u32) -> bool {
    cmd(
        "cargo",
        &[
            "test",
            "--release",
            "-p",
            "apolloconf-core",
            "--test",
            "faults",
            "--",
            "--nocapture",
        ],
    )
    .env("APOLLOCONF_SEEDS", &seeds.to_string())
    .ok()
}
