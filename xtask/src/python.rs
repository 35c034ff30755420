//! The Python package (`adapters/python`, distribution `apolloconf-client`): its wheel,
//! its tests through the installed wheel, and the `python` conformance subject.
//!
//! Layout: a virtualenv in `{target}/python-venv` (made with the machine's `python3`,
//! holding maturin, pytest and Django: nothing is installed system-wide); the wheel in
//! `{target}/python-wheels/`; the abi3 import check unpacks it into
//! `{target}/python-abi3-check/`.

use crate::step::{Runner, cmd};
use crate::workspace::{build_test_server, cargo_cmd, root, s, target_dir, test_server};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// What the virtualenv holds (a change reinstalls).
const TOOLS: &[&str] = &["maturin>=1.9,<2", "pytest>=8,<10", "Django>=4.2,<6"];
/// The interpreters the abi3 import check tries besides the venv's: pyenv's, when present.
const PYENV_VERSIONS: &[&str] = &["3.9", "3.10", "3.11", "3.12", "3.13", "3.14"];

fn venv() -> PathBuf {
    target_dir().join("python-venv")
}

pub(crate) fn venv_python() -> PathBuf {
    venv().join("bin").join("python")
}

fn crate_dir() -> PathBuf {
    root().join("adapters").join("python")
}

fn wheel_dir() -> PathBuf {
    target_dir().join("python-wheels")
}

/// The virtualenv with the tools, made (or refreshed) when its stamp differs.
pub(crate) fn ensure_venv() -> bool {
    let stamp = venv().join(".apolloconf-tools");
    let want = TOOLS.join("\n");
    if venv_python().exists() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == want) {
        return true;
    }
    let made = venv_python().exists() || cmd("python3", &["-m", "venv", &s(&venv())]).ok();
    if !made {
        return false;
    }
    let mut args = vec![
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ];
    args.extend_from_slice(TOOLS);
    cmd(&s(&venv_python()), &args).ok() && std::fs::write(&stamp, want).is_ok()
}

/// `maturin build --release` into an empty wheel directory; returns the wheel.
pub(crate) fn build_wheel() -> Option<PathBuf> {
    let out = wheel_dir();
    let _ = std::fs::remove_dir_all(&out);
    let maturin = venv().join("bin").join("maturin");
    let ok = cmd(
        &s(&maturin),
        &[
            "build",
            "--release",
            "--quiet",
            "-m",
            &s(&crate_dir().join("Cargo.toml")),
            "-i",
            &s(&venv_python()),
            "--out",
            &s(&out),
        ],
    )
    .ok();
    if !ok {
        return None;
    }
    let wheel = std::fs::read_dir(&out)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))?;
    println!("wheel: {}", wheel.display());
    Some(wheel)
}

pub(crate) fn install_wheel(wheel: &Path) -> bool {
    cmd(
        &s(&venv_python()),
        &[
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-index",
            "--no-deps",
            "--force-reinstall",
            &s(wheel),
        ],
    )
    .ok()
}

/// pytest of the package through the installed wheel (run from the tests folder, so the
/// sources are never imported instead of the wheel).
fn pytest() -> bool {
    let tests = crate_dir().join("tests");
    cmd(
        &s(&venv_python()),
        &["-m", "pytest", "-q", "-p", "no:cacheprovider", "."],
    )
    .dir(&tests)
    .env("APOLLOCONF_TESTSERVER", &s(&test_server()))
    .env("PYTHONDONTWRITEBYTECODE", "1")
    .ok()
}

/// The interpreters to import-check the abi3 wheel with: the venv's and pyenv's 3.9+.
fn interpreters() -> Vec<PathBuf> {
    let mut out = vec![venv_python()];
    let home = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pyenv")));
    let Some(versions) = home.map(|h| h.join("versions")) else {
        return out;
    };
    let Ok(entries) = std::fs::read_dir(&versions) else {
        return out;
    };
    let mut found: Vec<(u32, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let minor = PYENV_VERSIONS
                .iter()
                .find(|v| name == **v || name.starts_with(&format!("{v}.")))?;
            let bin = e.path().join("bin").join("python3");
            let n = minor.rsplit('.').next()?.parse().ok()?;
            bin.exists().then_some((n, bin))
        })
        .collect();
    found.sort();
    // One interpreter per minor version.
    found.dedup_by(|a, b| a.0 == b.0);
    out.extend(found.into_iter().map(|(_, p)| p));
    out
}

/// Unpack the wheel and import it (and make a client fail typed) with every interpreter.
fn abi3_check(wheel: &Path) -> bool {
    let dir = target_dir().join("python-abi3-check");
    let _ = std::fs::remove_dir_all(&dir);
    if !cmd(
        &s(&venv_python()),
        &["-m", "zipfile", "-e", &s(wheel), &s(&dir)],
    )
    .ok()
    {
        return false;
    }
    let probe = format!(
        "import sys; sys.path.insert(0, {dir:?}); import apolloconf\n\
         try:\n    apolloconf.Client('', config_service='http://127.0.0.1:1', environ={{}}, server_properties='/nonexistent')\n\
         except apolloconf.ConfigError as e:\n    assert e.setting == 'app_id', e.setting\n\
         print('  python', sys.version.split()[0], 'imports apolloconf', apolloconf.__version__, 'from', apolloconf.__file__)",
        dir = s(&dir)
    );
    let mut all = true;
    for py in interpreters() {
        let ok = cmd(&s(&py), &["-I", "-c", &probe]).ok();
        if !ok {
            eprintln!("  {} cannot import the wheel", py.display());
        }
        all &= ok;
    }
    all
}

/// The shared scenarios against the installed wheel (`tests/conformance_subject.py`).
fn conformance() -> bool {
    let line = format!(
        "{} {}",
        s(&venv_python()),
        s(&crate_dir().join("tests").join("conformance_subject.py"))
    );
    cargo_cmd(&[
        "test",
        "-q",
        "-p",
        "apolloconf-conformance",
        "--test",
        "conformance",
    ])
    .env("APOLLOCONF_SUBJECT", "python")
    .env("APOLLOCONF_SUBJECT_CMD", &line)
    .env("PYTHONDONTWRITEBYTECODE", "1")
    .ok()
}

/// Venv, wheel, install: the first steps of `test` and `bench`.
fn prepare(r: &mut Runner) -> Option<PathBuf> {
    if !r.step(
        "python: virtualenv with maturin, pytest, Django (target/python-venv)",
        ensure_venv,
    ) {
        return None;
    }
    let mut wheel = None;
    if !r.step("python: maturin build --release (abi3 wheel)", || {
        wheel = build_wheel();
        wheel.is_some()
    }) {
        return None;
    }
    let wheel = wheel?;
    if !r.step("python: pip install the wheel into the virtualenv", || {
        install_wheel(&wheel)
    }) {
        return None;
    }
    if !r.step("python: build the test server", build_test_server) {
        return None;
    }
    Some(wheel)
}

/// Steps of `cargo xtask test` for the Python package.
pub fn steps(r: &mut Runner) {
    let Some(wheel) = prepare(r) else { return };
    r.step(
        "python: pytest (API, compat, Django, listeners under load, fork, exit, secret)",
        pytest,
    );
    r.step(
        "python: abi3 wheel imports on every Python >= 3.9 present",
        || abi3_check(&wheel),
    );
    r.step("conformance: python", conformance);
}

/// `cargo xtask bench`: the package's numbers.
pub fn bench(r: &mut Runner) {
    if prepare(r).is_none() {
        return;
    }
    r.step(
        "python: get() vs dict, publish-to-listener latency, start-up with 20 namespaces, idle RSS",
        || {
            cmd(
                &s(&venv_python()),
                &[&s(&crate_dir().join("tests").join("bench.py"))],
            )
            .env("APOLLOCONF_TESTSERVER", &s(&test_server()))
            .ok()
        },
    );
}

/// `cargo xtask python`: only the Python steps.
pub fn only() -> ExitCode {
    let mut r = Runner::new();
    steps(&mut r);
    r.finish()
}
