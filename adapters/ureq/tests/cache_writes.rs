//! When the native client writes its cache files (docs/protocol.md#cache-file): after the
//! listeners have the new values, batched, and never lost at close.

mod common;

use std::time::Duration;

use apolloconf::Interest;
use common::{APP, builder, server, wait_until};

const WAIT: Duration = Duration::from_secs(10);

/// A change is written before `close()` returns, even when the client is closed right
/// after its listener saw the change (the write may still be queued then).
#[test]
fn close_writes_what_is_queued() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let file = dir
        .path()
        .join(APP)
        .join("config-cache")
        .join(format!("{APP}+default+application.properties"));
    for round in 0..5 {
        let c = builder(&s.url(), dir.path()).build().unwrap();
        let rx = c.changes(Interest::all());
        let value = format!("v{round}");
        s.admin()
            .publish(APP, "default", "application", [("timeout", value.as_str())])
            .unwrap();
        let ev = rx.recv_timeout(WAIT).expect("the change");
        assert!(
            ev.changes
                .iter()
                .any(|ch| ch.key == "timeout" && ch.new.as_deref() == Some(value.as_str()))
        );
        c.close();
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.contains(&format!("timeout={value}")),
            "round {round}: {text}"
        );
    }
}

/// Many changes in a burst: the file ends with the last values.
#[test]
fn a_burst_of_changes_ends_with_the_last_values_on_disk() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let c = builder(&s.url(), dir.path()).build().unwrap();
    let before = c.metrics().cache_writes;
    for i in 0..30 {
        s.admin()
            .publish(APP, "default", "application", [("n", i.to_string())])
            .unwrap();
    }
    assert!(wait_until(WAIT, || c.get("n").as_deref() == Some("29")));
    let file = dir
        .path()
        .join(APP)
        .join("config-cache")
        .join(format!("{APP}+default+application.properties"));
    assert!(wait_until(WAIT, || std::fs::read_to_string(&file)
        .is_ok_and(|t| t.contains("n=29"))));
    let writes = c.metrics().cache_writes - before;
    assert!(writes >= 1, "written");
    c.close();
}
