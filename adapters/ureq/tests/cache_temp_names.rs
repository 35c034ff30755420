//! Symbolic links planted at the names of the cache's temporary and probe files are
//! never followed (issue 11). Alone in its test binary: the names the client once used
//! (`.apolloconf-probe-{pid}-{n}`, `.{file}.{pid}.{n}.tmp`) counted from 0 per process,
//! so this process can plant exactly the names an attacker would.
#![cfg(unix)]

mod common;

use std::time::Duration;

use common::{APP, builder, server, wait_until};

#[test]
fn links_at_temp_and_probe_names_are_not_followed() {
    let s = server();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join(APP).join("config-cache");
    std::fs::create_dir_all(&dir).unwrap();
    let victim = root.path().join("victim.txt");
    std::fs::write(&victim, b"precious").unwrap();
    let file = format!("{APP}+default+application.properties");
    let pid = std::process::id();
    for n in 0..64 {
        for name in [
            format!(".apolloconf-probe-{pid}-{n}"),
            format!(".{file}.{pid}.{n}.tmp"),
        ] {
            std::os::unix::fs::symlink(&victim, dir.join(name)).unwrap();
        }
    }

    let c = builder(&s.url(), root.path()).build().unwrap();
    assert_eq!(c.get("timeout").as_deref(), Some("100"));
    let cache = dir.join(&file);
    assert!(
        wait_until(Duration::from_secs(10), || std::fs::read_to_string(&cache)
            .is_ok_and(|t| t.contains("timeout=100"))),
        "cache written"
    );
    c.close();
    assert_eq!(
        std::fs::read(&victim).unwrap(),
        b"precious",
        "victim touched"
    );
    let meta = std::fs::symlink_metadata(&cache).unwrap();
    assert!(meta.file_type().is_file(), "the cache file is a plain file");
    // The planted links are still there, untouched (nothing was created through them).
    let links = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_type().is_ok_and(|t| t.is_symlink()))
        })
        .count();
    assert_eq!(links, 128);
}
