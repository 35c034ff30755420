//! The local cache against other local users: where the fallback lives, which files are
//! read, how big they may be (issue 11). Files planted "by another user" are chowned to
//! `nobody` (65534), which needs root; as another user those parts say so and are
//! skipped, the rest runs.
#![cfg(unix)]

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use apolloconf::{Client, Env, ErrorCause, Event, Source};
use common::{APP, builder, dead_port};

const NOBODY: u32 = 65534;
const FILE: &str = "SampleApp+default+application.properties";

fn our_uid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("Uid line")
}

/// Whether files can be given to another user; says why not otherwise.
fn can_chown(what: &str) -> bool {
    let root = our_uid() == 0;
    if !root {
        eprintln!(
            "NOTE: {what}: not root, so files cannot be planted as another user (uid {NOBODY}); \
             that part of the test does not run"
        );
    }
    root
}

fn cache_text(value: &str) -> String {
    format!("#Persisted by DefaultConfig\n#now\ntimeout={value}\n")
}

/// A client whose server is down (so only the cache can give values), with every event
/// from the start.
fn start(cache_root: &Path, env: Env) -> (Client, Receiver<Event>) {
    let (tx, rx) = mpsc::channel();
    let url = format!("http://127.0.0.1:{}", dead_port());
    let c = builder(&url, cache_root)
        .environment(env)
        .startup_timeout(Duration::from_secs(3))
        .event_sink(tx)
        .build()
        .expect("client starts");
    (c, rx)
}

/// The cache problems reported (the messages of `ErrorCause::Cache` events so far).
fn cache_errors(rx: &Receiver<Event>) -> Vec<String> {
    // Start-up problems are delivered first; give the listener thread a moment.
    std::thread::sleep(Duration::from_millis(200));
    rx.try_iter()
        .filter_map(|e| match e {
            Event::Error(err) => match err.cause {
                ErrorCause::Cache(m) => Some(m),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// A primary cache root nothing can be created in, even as root (procfs), but where
/// reads find nothing.
#[cfg(target_os = "linux")]
fn unwritable_root() -> PathBuf {
    PathBuf::from("/proc/apolloconf-no-such-dir/cache")
}

#[cfg(target_os = "linux")]
#[test]
fn the_fallback_is_per_user_not_a_shared_temp_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let xdg = tmp.path().join("xdg");
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();

    // XDG_CACHE_HOME first.
    let env = Env::from_map([
        ("XDG_CACHE_HOME", xdg.to_str().unwrap()),
        ("HOME", home.to_str().unwrap()),
    ]);
    let (c, _rx) = start(&unwritable_root(), env);
    let used = c.metrics().cache_dir.unwrap();
    assert_eq!(used, xdg.join("apolloconf").join(APP).join("config-cache"));
    c.close();

    // Then ~/.cache.
    let env = Env::from_map([("HOME", home.to_str().unwrap())]);
    let (c, _rx) = start(&unwritable_root(), env);
    let used = c.metrics().cache_dir.unwrap();
    assert_eq!(
        used,
        home.join(".cache")
            .join("apolloconf")
            .join(APP)
            .join("config-cache")
    );
    c.close();

    // Neither: a private folder in the temp dir, made by the client with mode 0700.
    let temp = tmp.path().join("temp");
    std::fs::create_dir_all(&temp).unwrap();
    let env = Env::from_map([("TMPDIR", temp.to_str().unwrap())]);
    let (c, _rx) = start(&unwritable_root(), env);
    let used = c.metrics().cache_dir.unwrap();
    let private = temp.join(format!("apolloconf-{}", our_uid()));
    assert_eq!(used, private.join(APP).join("config-cache"));
    let meta = std::fs::symlink_metadata(&private).unwrap();
    assert!(meta.is_dir());
    assert_eq!(meta.mode() & 0o777, 0o700);
    assert_eq!(meta.uid(), our_uid());
    c.close();

    // Never the old shared folder.
    let env = Env::empty();
    let (c, _rx) = start(&unwritable_root(), env);
    let used = c.metrics().cache_dir.unwrap();
    assert!(
        !used.starts_with(std::env::temp_dir().join("apolloconf-cache")),
        "{}",
        used.display()
    );
}

/// Removes the folders a test made (deepest last in the list), even when it fails.
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for d in self.0.iter().rev() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// The attack of issue 11: another user creates the old shared fallback folder first
/// and plants a cache file there; it must not be served.
#[cfg(target_os = "linux")]
#[test]
fn a_cache_planted_in_the_old_shared_folder_is_not_served() {
    if !can_chown("planted shared folder") {
        return;
    }
    let app = format!("PlantedApp{}", std::process::id());
    let shared = std::env::temp_dir().join("apolloconf-cache");
    let dir = shared.join(&app).join("config-cache");
    // Only folders this test makes are given away (the shared one may exist already).
    let mut made = Vec::new();
    if !shared.exists() {
        made.push(shared.clone());
    }
    made.extend([shared.join(&app), dir.clone()]);
    std::fs::create_dir_all(&dir).unwrap();
    let _cleanup = Cleanup(made.clone());
    for d in &made {
        std::os::unix::fs::chown(d, Some(NOBODY), Some(NOBODY)).unwrap();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let file = dir.join(format!("{app}+default+application.properties"));
    std::fs::write(&file, cache_text("planted")).unwrap();
    std::os::unix::fs::chown(&file, Some(NOBODY), Some(NOBODY)).unwrap();

    let temp = tempfile::tempdir().unwrap();
    let (tx, _rx) = mpsc::channel();
    let url = format!("http://127.0.0.1:{}", dead_port());
    let c = builder(&url, &unwritable_root())
        .app_id(&app)
        .environment(Env::from_map([("TMPDIR", temp.path().to_str().unwrap())]))
        .startup_timeout(Duration::from_secs(3))
        .event_sink(tx)
        .build()
        .unwrap();
    let got = c.get("timeout");
    let used = c.metrics().cache_dir.unwrap();
    c.close();
    assert_eq!(got, None, "a value planted by another user was served");
    assert!(!used.starts_with(&shared), "{}", used.display());
}

/// Another user made the private temp folder first: refused, reported, values only in
/// memory.
#[cfg(target_os = "linux")]
#[test]
fn a_private_temp_folder_made_by_someone_else_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    let private = temp.path().join(format!("apolloconf-{}", our_uid()));
    let dir = private.join(APP).join("config-cache");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(FILE), cache_text("planted")).unwrap();
    // Open to everybody (as a folder made by another user would be to its maker).
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o777)).unwrap();
    let env = || Env::from_map([("TMPDIR", temp.path().to_str().unwrap())]);

    let (c, rx) = start(&unwritable_root(), env());
    assert_eq!(c.get("timeout"), None);
    let errors = cache_errors(&rx);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("no fallback is usable") && e.contains("mode 777")),
        "{errors:?}"
    );
    c.close();

    // Owned by another user, even with mode 0700.
    if can_chown("private temp folder owned by another user") {
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::chown(&private, Some(NOBODY), Some(NOBODY)).unwrap();
        let (c, rx) = start(&unwritable_root(), env());
        assert_eq!(c.get("timeout"), None);
        let errors = cache_errors(&rx);
        assert!(
            errors
                .iter()
                .any(|e| e.contains(&format!("owned by uid {NOBODY}"))),
            "{errors:?}"
        );
        c.close();
    }

    // A symbolic link in its place.
    std::fs::remove_dir_all(&private).unwrap();
    let elsewhere = temp.path().join("elsewhere");
    std::fs::create_dir_all(elsewhere.join(APP).join("config-cache")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &private).unwrap();
    let (c, rx) = start(&unwritable_root(), env());
    let errors = cache_errors(&rx);
    assert!(
        errors.iter().any(|e| e.contains("symbolic link")),
        "{errors:?}"
    );
    c.close();
}

fn primary_file(root: &Path) -> PathBuf {
    let dir = root.join(APP).join("config-cache");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(FILE)
}

#[test]
fn a_symlinked_cache_file_is_not_read() {
    let root = tempfile::tempdir().unwrap();
    let target = root.path().join("elsewhere.properties");
    std::fs::write(&target, cache_text("via-link")).unwrap();
    std::os::unix::fs::symlink(&target, primary_file(root.path())).unwrap();

    let (c, rx) = start(root.path(), Env::empty());
    assert_eq!(c.get("timeout"), None, "read through a symbolic link");
    let errors = cache_errors(&rx);
    assert!(
        errors.iter().any(|e| e.contains("symbolic link")),
        "{errors:?}"
    );
    assert!(c.metrics().cache_read_failures >= 1);
}

#[test]
fn a_cache_file_others_may_write_is_not_read() {
    let root = tempfile::tempdir().unwrap();
    let file = primary_file(root.path());
    std::fs::write(&file, cache_text("shared")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (c, rx) = start(root.path(), Env::empty());
    assert_eq!(c.get("timeout"), None);
    let errors = cache_errors(&rx);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("writable by group or others")),
        "{errors:?}"
    );
    c.close();

    // Mode 0644 is fine (the control).
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (c, _rx) = start(root.path(), Env::empty());
    assert_eq!(c.get("timeout").as_deref(), Some("shared"));
    assert_eq!(c.namespace("application").unwrap().source(), Source::Cache);
}

#[test]
fn a_cache_file_of_another_user_is_not_read() {
    if !can_chown("cache file of another user") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let file = primary_file(root.path());
    std::fs::write(&file, cache_text("theirs")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::chown(&file, Some(NOBODY), Some(NOBODY)).unwrap();
    let (c, rx) = start(root.path(), Env::empty());
    assert_eq!(c.get("timeout"), None, "a file of uid {NOBODY} was served");
    let errors = cache_errors(&rx);
    assert!(
        errors
            .iter()
            .any(|e| e.contains(&format!("owned by uid {NOBODY}"))),
        "{errors:?}"
    );
}

#[test]
fn an_oversized_cache_file_is_refused_without_reading_it() {
    let root = tempfile::tempdir().unwrap();
    let file = primary_file(root.path());
    std::fs::write(&file, cache_text("big")).unwrap();
    // 200 MB, sparse: costs no disk, and nothing if it is never read.
    let f = std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap();
    f.set_len(200 * 1024 * 1024).unwrap();
    drop(f);
    let (c, rx) = start(root.path(), Env::empty());
    assert_eq!(c.get("timeout"), None);
    let errors = cache_errors(&rx);
    assert!(errors.iter().any(|e| e.contains("too large")), "{errors:?}");
}
