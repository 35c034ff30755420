//! The native client against the real test server over loopback.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use apolloconf::{ChangeKind, Client, Env, Error, ErrorCause, Event, Interest, Source, Status};
use apolloconf_testserver::{Endpoint, Fault, FaultAction, TestServer};
use common::{APP, builder, dead_port, fast_timing, server, wait_until};
use serde::Deserialize;

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn starts_with_every_namespace_loaded() {
    let s = server();
    let a = s.admin();
    a.create_namespace(
        "PlatformApp",
        "platform.common",
        apolloconf_testserver::Format::Properties,
        true,
    )
    .unwrap();
    a.publish(
        "PlatformApp",
        "default",
        "platform.common",
        [("log.level", "INFO"), ("shared", "yes")],
    )
    .unwrap();
    a.publish(APP, "default", "platform.common", [("log.level", "DEBUG")])
        .unwrap();
    a.publish_content(
        APP,
        "default",
        "datasource.yaml",
        "datasource:\n  pool:\n    max-size: 20\n  hosts: [a, b]\n",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let c = builder(&s.url(), dir.path())
        .namespaces(["application", "platform.common", "datasource.yaml"])
        .build()
        .unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "start-up took {:?}",
        t0.elapsed()
    );
    assert!(c.is_ready());
    assert_eq!(c.get("timeout").as_deref(), Some("100"));
    assert_eq!(c.get_as::<u32>("timeout"), Some(Ok(100)));
    assert_eq!(c.get_or("missing", 7u8), 7);
    assert_eq!(
        c.get_or("greeting", 3u8),
        3,
        "unparseable falls back to the default"
    );
    assert_eq!(
        c.get("log.level").as_deref(),
        Some("DEBUG"),
        "the override wins"
    );
    assert_eq!(c.get("shared").as_deref(), Some("yes"));
    let public = c.namespace("platform.common").unwrap();
    assert!(
        public.release_key().unwrap().contains('+'),
        "merged release key"
    );
    let yaml = c.namespace("datasource.yaml").unwrap();
    assert!(yaml.content().unwrap().contains("max-size"));
    assert_eq!(yaml.get("datasource.pool.max-size"), Some("20"));
    assert_eq!(yaml.get("datasource.hosts[1]"), Some("b"));
    assert_eq!(c.get("datasource.hosts[0]").as_deref(), Some("a"));
    assert_eq!(
        c.get_array("datasource.hosts[0]", ","),
        Some(vec!["a".to_string()])
    );
    assert_eq!(yaml.source(), Source::Server);
    assert!(yaml.last_update().is_some());

    #[derive(Deserialize, Debug)]
    #[serde(rename_all = "kebab-case")]
    struct Pool {
        max_size: u32,
    }
    #[derive(Deserialize, Debug)]
    struct Ds {
        pool: Pool,
        hosts: Vec<String>,
    }
    let ds: Ds = c.bind_prefix("datasource.yaml", "datasource").unwrap();
    assert_eq!(ds.pool.max_size, 20);
    assert_eq!(ds.hosts, ["a", "b"]);

    let m = c.metrics();
    assert!(m.configs.ok >= 3);
    assert_eq!(m.namespaces.len(), 3);
    assert!(m.namespaces.iter().all(|n| n.release_key.is_some()));
    c.close();
}

#[test]
fn listener_fires_within_ms_of_a_publish() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let c = builder(&s.url(), dir.path()).build().unwrap();
    let rx = c.changes(Interest::all());
    assert!(
        wait_until(WAIT, || s.admin().held_polls() >= 1),
        "long poll held"
    );
    let t0 = Instant::now();
    s.admin()
        .publish(
            APP,
            "default",
            "application",
            [("timeout", "200"), ("greeting", "hello")],
        )
        .unwrap();
    let ev = rx.recv_timeout(WAIT).expect("change event");
    let took = t0.elapsed();
    assert!(took < Duration::from_millis(1000), "took {took:?}");
    assert_eq!(ev.namespace, "application");
    assert_eq!(ev.source, Source::Server);
    let kinds: BTreeMap<_, _> = ev
        .changes
        .iter()
        .map(|c| (c.key.as_str(), c.kind))
        .collect();
    assert_eq!(kinds.get("timeout"), Some(&ChangeKind::Modified));
    assert_eq!(kinds.get("db.url"), Some(&ChangeKind::Deleted));
    assert_eq!(
        c.get("timeout").as_deref(),
        Some("200"),
        "the snapshot is swapped before listeners run"
    );
    println!("publish -> listener: {took:?}");
}

#[test]
fn interest_filters_keys_and_prefixes() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let c = builder(&s.url(), dir.path()).build().unwrap();
    let by_key = c.changes(Interest::all().keys(["timeout"]));
    let by_prefix = c.changes(Interest::all().prefixes(["db."]));
    let calls = Arc::new(AtomicUsize::new(0));
    let calls2 = calls.clone();
    c.on_change(Interest::all().keys(["nothing.matches"]), move |_| {
        calls2.fetch_add(1, Ordering::SeqCst);
    });
    assert!(wait_until(WAIT, || s.admin().held_polls() >= 1));
    s.admin()
        .publish(
            APP,
            "default",
            "application",
            [("timeout", "100"), ("greeting", "hi"), ("db.url", "jdbc:y")],
        )
        .unwrap();
    let ev = by_prefix.recv_timeout(WAIT).expect("prefix listener");
    assert_eq!(ev.changes.len(), 1, "only the changes of interest: {ev:?}");
    assert_eq!(ev.changes[0].key, "db.url");
    assert!(
        by_key.recv_timeout(Duration::from_millis(300)).is_err(),
        "timeout did not change"
    );
    assert!(wait_until(WAIT, || s.admin().held_polls() >= 1));
    s.admin()
        .publish(
            APP,
            "default",
            "application",
            [("timeout", "5"), ("greeting", "hi"), ("db.url", "jdbc:y")],
        )
        .unwrap();
    let ev = by_key.recv_timeout(WAIT).expect("key listener");
    assert_eq!(ev.changes[0].key, "timeout");
    assert_eq!(ev.changes[0].old.as_deref(), Some("100"));
    assert_eq!(ev.changes[0].new.as_deref(), Some("5"));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[test]
fn a_panicking_listener_does_not_kill_the_client() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let c = builder(&s.url(), dir.path()).build().unwrap();
    c.on_change(Interest::all(), |_| {
        panic!("listener bug (expected by the test)")
    });
    let rx = c.changes(Interest::all());
    for v in ["1", "2"] {
        assert!(wait_until(WAIT, || s.admin().held_polls() >= 1));
        s.admin()
            .publish(APP, "default", "application", [("timeout", v)])
            .unwrap();
        let ev = rx.recv_timeout(WAIT).expect("still delivering");
        assert!(
            ev.changes
                .iter()
                .any(|ch| ch.key == "timeout" && ch.new.as_deref() == Some(v))
        );
    }
    assert!(c.metrics().listener_panics >= 2);
}

#[test]
fn cache_is_written_in_java_format_and_serves_when_the_server_is_down() {
    let s = server();
    s.admin()
        .publish(
            APP,
            "default",
            "application",
            [
                ("timeout", "100"),
                ("name", "caf\u{e9} \u{4e2d}"),
                ("k=1", " v"),
            ],
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let c = builder(&s.url(), dir.path()).build().unwrap();
    let file = dir
        .path()
        .join(APP)
        .join("config-cache")
        .join(format!("{APP}+default+application.properties"));
    assert!(
        wait_until(WAIT, || file.exists()),
        "cache file written at {}",
        file.display()
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("#Persisted by DefaultConfig"));
    assert!(lines.next().unwrap().starts_with('#'));
    assert!(text.contains("name=caf\\u00E9 \\u4E2D"), "{text}");
    assert!(text.contains("k\\=1=\\ v"), "{text}");
    assert!(text.is_ascii());
    c.close();

    // Server down: the next client starts from the file.
    s.admin().pause();
    let t0 = Instant::now();
    let c = builder(&s.url(), dir.path()).build().unwrap();
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "start-up from cache took {took:?}"
    );
    let ns = c.namespace("application").unwrap();
    assert_eq!(ns.source(), Source::Cache);
    assert_eq!(ns.get("name"), Some("caf\u{e9} \u{4e2d}"));
    assert_eq!(c.get("timeout").as_deref(), Some("100"));
    assert_eq!(c.get("k=1").as_deref(), Some(" v"));

    // Recovery fires change events and rewrites the file.
    let rx = c.changes(Interest::all());
    s.admin()
        .publish(APP, "default", "application", [("timeout", "300")])
        .unwrap();
    s.admin().resume().unwrap();
    let ev = rx.recv_timeout(WAIT).expect("recovery change");
    assert_eq!(ev.source, Source::Server);
    assert!(
        ev.changes
            .iter()
            .any(|ch| ch.key == "timeout" && ch.new.as_deref() == Some("300"))
    );
    assert_eq!(c.namespace("application").unwrap().source(), Source::Server);
    assert!(wait_until(WAIT, || std::fs::read_to_string(&file)
        .is_ok_and(|t| t.contains("timeout=300"))));
}

#[test]
fn a_corrupt_cache_file_is_reported_and_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join(APP).join("config-cache");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::write(
        cache.join(format!("{APP}+default+application.properties")),
        b"a=1\nbad=\\u12\n",
    )
    .unwrap();
    let (tx, rx) = mpsc::channel();
    let url = format!("http://127.0.0.1:{}", dead_port());
    let c = builder(&url, dir.path()).event_sink(tx).build().unwrap();
    assert_eq!(c.get("a"), None, "nothing from a corrupt file");
    assert_eq!(c.namespace("application").unwrap().source(), Source::None);
    let got = wait_until(WAIT, || {
        rx.try_iter()
            .any(|e| matches!(e, Event::Error(err) if matches!(err.cause, ErrorCause::Cache(_))))
    });
    assert!(got, "cache error reported");
    assert!(c.metrics().cache_read_failures >= 1);
    c.close();

    // With the server up the client is fine.
    let s = server();
    let c = builder(&s.url(), dir.path()).build().unwrap();
    assert_eq!(c.get("timeout").as_deref(), Some("100"));
}

#[test]
fn an_unwritable_cache_dir_never_stops_the_client() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    // A regular file where the cache root should be: nothing can be created under it
    // (works even as root, where permission bits do not stop writes).
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, b"x").unwrap();
    let c = builder(&s.url(), &blocker.join("cache")).build().unwrap();
    assert_eq!(c.get("timeout").as_deref(), Some("100"));
    let m = c.metrics();
    let used = m.cache_dir.clone().unwrap();
    assert!(
        used.starts_with(std::env::temp_dir()),
        "fell back to {}",
        used.display()
    );
    c.close();

    // A directory that breaks after start: writes fail, values stay in memory.
    let dir2 = tempfile::tempdir().unwrap();
    let c = builder(&s.url(), dir2.path()).build().unwrap();
    let cache = dir2.path().join(APP).join("config-cache");
    std::fs::remove_dir_all(&cache).unwrap();
    std::fs::write(&cache, b"now a file").unwrap();
    let rx = c.changes(Interest::all());
    assert!(wait_until(WAIT, || s.admin().held_polls() >= 1));
    s.admin()
        .publish(APP, "default", "application", [("timeout", "999")])
        .unwrap();
    rx.recv_timeout(WAIT).expect("change still delivered");
    assert_eq!(c.get("timeout").as_deref(), Some("999"));
    assert!(wait_until(WAIT, || c.metrics().cache_write_failures >= 1));
}

#[test]
fn hostile_namespace_names_never_escape_the_cache_dir() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let hostile = ["../escape", "..", "a/b", "..\\x", "x/../../y"];
    let c = builder(&s.url(), &root)
        .namespace("application")
        .namespaces(hostile)
        .startup_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    assert_eq!(c.get("timeout").as_deref(), Some("100"));
    let cache = root.join(APP).join("config-cache");
    assert!(wait_until(WAIT, || cache
        .join(format!("{APP}+default+application.properties"))
        .exists()));
    // Nothing but the application file anywhere under the temp dir.
    let mut files = Vec::new();
    let mut stack = vec![dir.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    assert_eq!(
        files,
        vec![cache.join(format!("{APP}+default+application.properties"))]
    );
    for h in hostile {
        assert!(c.namespace(h).is_some());
    }
}

#[test]
fn settings_follow_java_precedence() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let sp = dir.path().join("server.properties");
    std::fs::write(
        &sp,
        format!(
            "\u{feff}app.id=FromFile\napollo.config-service={}\napollo.cluster=file-cluster\nidc=file-idc\napollo.label=file-label\n",
            s.url()
        ),
    )
    .unwrap();
    let base = || {
        Client::builder()
            .server_properties(&sp)
            .cache(false)
            .timing(fast_timing())
    };

    // server.properties alone.
    let r = base().environment(Env::empty()).resolve().unwrap();
    assert_eq!(r.app_id, "FromFile");
    assert_eq!(r.cluster, "file-cluster");
    assert_eq!(r.idc.as_deref(), Some("file-idc"));
    assert_eq!(r.label.as_deref(), Some("file-label"));
    assert_eq!(
        r.servers,
        Some(apolloconf::ServerSource::ConfigService(s.url()))
    );

    // Environment beats the file; the builder beats the environment.
    let env = Env::from_map([
        ("APP_ID", APP),
        ("APOLLO_CLUSTER", "default"),
        ("IDC", "env-idc"),
        ("APOLLO_ACCESS_KEY_SECRET", "s3cret"),
        ("APOLLO_CACHE_DIR", "/env/cache"),
    ]);
    let r = base().environment(env.clone()).resolve().unwrap();
    assert_eq!((r.app_id.as_str(), r.cluster.as_str()), (APP, "default"));
    assert_eq!(r.idc.as_deref(), Some("env-idc"));
    assert_eq!(r.secret.as_deref(), Some("s3cret"));
    assert!(
        !format!("{r:?}").contains("s3cret"),
        "secrets are never printed"
    );
    assert_eq!(r.cache_root, std::path::PathBuf::from("/env/cache"));
    let r = base()
        .environment(env.clone())
        .app_id("Explicit")
        .cluster("c1")
        .resolve()
        .unwrap();
    assert_eq!((r.app_id.as_str(), r.cluster.as_str()), ("Explicit", "c1"));

    // APOLLO_PATH_SERVER_PROPERTIES selects the file.
    let r = Client::builder()
        .environment(Env::from_map([(
            "APOLLO_PATH_SERVER_PROPERTIES",
            sp.to_str().unwrap(),
        )]))
        .resolve()
        .unwrap();
    assert_eq!(r.app_id, "FromFile");

    // A client built from environment + file reaches the server.
    let c = base()
        .environment(Env::from_map([("APP_ID", APP)]))
        .build()
        .unwrap();
    assert_eq!(c.settings().cluster, "file-cluster");
    assert_eq!(
        c.get("timeout").as_deref(),
        Some("100"),
        "cluster falls back to default on the server"
    );
}

#[test]
fn bad_settings_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let none = dir.path().join("none.properties");
    let b = || {
        Client::builder()
            .environment(Env::empty())
            .server_properties(&none)
            .cache(false)
    };
    assert!(matches!(
        b().config_service("http://x").build(),
        Err(Error::MissingAppId { .. })
    ));
    assert!(matches!(
        b().app_id("  ").config_service("http://x").build(),
        Err(Error::MissingAppId { .. })
    ));
    assert!(matches!(
        b().app_id("A").build(),
        Err(Error::NoServers { .. })
    ));
    let e = b()
        .app_id("A")
        .meta_server("not a url")
        .build()
        .unwrap_err();
    assert!(
        matches!(e, Error::Config(apolloconf::ConfigError::InvalidUrl(_))),
        "{e}"
    );
    assert!(e.to_string().contains("not a url"));
    let e = b()
        .app_id("A")
        .config_service("http://x")
        .namespaces(["a", "a"])
        .build()
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Config(apolloconf::ConfigError::DuplicateNamespace(_))
        ),
        "{e}"
    );
}

#[test]
fn start_up_timeout_with_a_hanging_server() {
    let s = server();
    s.admin()
        .inject_fault(Fault::new(Endpoint::Configs, FaultAction::Hang).times(1));
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let c = builder(&s.url(), dir.path())
        .startup_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    assert!(!c.is_ready());
    assert_eq!(
        c.namespace("application").unwrap().status(),
        Status::Loading
    );
    // The hung request times out (2 s read timeout) and the retry loads the values.
    assert!(wait_until(WAIT, || c.get("timeout").is_some()));
    assert!(c.is_ready());
}

#[test]
fn a_missing_namespace_never_blocks_start_up() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let c = builder(&s.url(), dir.path())
        .namespaces(["application", "does.not.exist"])
        .build()
        .unwrap();
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert_eq!(
        c.namespace("does.not.exist").unwrap().status(),
        Status::NotFound
    );
    assert_eq!(c.get("timeout").as_deref(), Some("100"));
}

#[test]
fn close_joins_promptly_with_a_held_long_poll() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let c = builder(&s.url(), dir.path()).build().unwrap();
    let events = c.events();
    assert!(
        wait_until(WAIT, || s.admin().held_polls() >= 1),
        "long poll held"
    );
    let t0 = Instant::now();
    c.close();
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(1), "close took {took:?}");
    assert!(c.is_closed());
    assert!(events.try_iter().any(|e| matches!(e, Event::Closed)));
    assert!(c.watch("other").is_err());
    c.close();
    // The held long poll was interrupted and its worker joined.
    assert_eq!(c.metrics().requests_in_flight, 0);
    assert!(wait_until(WAIT, || s.admin().held_polls() == 0));
}

#[test]
fn dropping_the_client_closes_it() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let c = builder(&s.url(), dir.path()).build().unwrap();
    let events = c.events();
    assert!(wait_until(WAIT, || s.admin().held_polls() >= 1));
    let t0 = Instant::now();
    drop(c);
    assert!(t0.elapsed() < Duration::from_secs(1));
    let rest: Vec<Event> = events.iter().collect();
    assert!(matches!(rest.last(), Some(Event::Closed)), "{rest:?}");
}

#[test]
fn watch_adds_a_namespace_at_run_time() {
    let s = server();
    s.admin()
        .publish(APP, "default", "later", [("late", "yes")])
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let c = builder(&s.url(), dir.path()).build().unwrap();
    c.watch("later").unwrap();
    assert!(wait_until(WAIT, || c.get("late").is_some()));
    assert!(matches!(c.watch("bad\u{0}name"), Err(Error::Config(_))));
}

#[test]
fn meta_server_discovery() {
    let s = TestServer::start().unwrap();
    s.admin()
        .publish(APP, "default", "application", [("k", "v")])
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let c = Client::builder()
        .app_id(APP)
        .meta_server(format!("http://127.0.0.1:{},{}", dead_port(), s.url()))
        .environment(Env::empty())
        .server_properties(dir.path().join("none"))
        .cache(false)
        .timing(fast_timing())
        .build()
        .unwrap();
    assert!(wait_until(WAIT, || c.get("k").is_some()));
    assert_eq!(c.snapshot().services().len(), 1);
    assert!(c.metrics().discovery.ok >= 1);
}

#[test]
fn bad_answers_keep_the_last_good_values() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let (tx, events) = mpsc::channel();
    let c = builder(&s.url(), dir.path())
        .event_sink(tx)
        .build()
        .unwrap();
    let a = s.admin();
    // 5xx on fetches, then an oversized body (above the 16 MiB limit), then recovery.
    a.inject_fault(Fault::new(Endpoint::Configs, FaultAction::Status { code: 503 }).times(2));
    a.inject_fault(
        Fault::new(
            Endpoint::Configs,
            FaultAction::Oversized {
                bytes: 17 * 1024 * 1024,
            },
        )
        .times(1),
    );
    assert!(wait_until(WAIT, || a.held_polls() >= 1));
    a.publish(APP, "default", "application", [("timeout", "777")])
        .unwrap();
    assert!(
        wait_until(WAIT, || c.get("timeout").as_deref() == Some("777")),
        "recovered"
    );
    let seen: Vec<Event> = events.try_iter().collect();
    let causes: Vec<String> = seen
        .iter()
        .filter_map(|e| match e {
            Event::Error(err) => Some(format!("{:?}", err.cause)),
            _ => None,
        })
        .collect();
    assert!(causes.iter().any(|c| c.contains("503")), "{causes:?}");
    assert!(causes.iter().any(|c| c.contains("TooLarge")), "{causes:?}");
    let m = c.metrics();
    assert!(
        m.configs.other_status >= 2 && m.configs.transport_error >= 1,
        "{m:?}"
    );
    assert!(m.last_error.is_some());
}

#[test]
fn debug_output_never_shows_the_secret() {
    let b = Client::builder()
        .secret("top-secret-value")
        .environment(Env::from_map([(
            "APOLLO_ACCESS_KEY_SECRET",
            "env-secret-value",
        )]));
    let text = format!("{b:?}");
    assert!(
        !text.contains("top-secret-value") && !text.contains("env-secret-value"),
        "{text}"
    );
}

#[test]
fn the_client_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Client>();
    check::<apolloconf::Snapshot>();
}

#[test]
fn json_namespaces_bind_through_serde_json() {
    let s = server();
    s.admin()
        .publish_content(
            APP,
            "default",
            "limits.json",
            r#"{"max": 5, "names": ["a", "b"]}"#,
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let c = builder(&s.url(), dir.path())
        .namespaces(["application", "limits.json"])
        .build()
        .unwrap();
    #[derive(Deserialize)]
    struct Limits {
        max: u32,
        names: Vec<String>,
    }
    let l: Limits = c.bind("limits.json").unwrap();
    assert_eq!((l.max, l.names.len()), (5, 2));
    assert_eq!(
        c.content("limits.json").as_deref(),
        Some(r#"{"max": 5, "names": ["a", "b"]}"#)
    );
    assert!(c.bind::<Limits>("application").is_err());
}

#[test]
fn close_interrupts_a_hanging_fetch() {
    let s = server();
    s.admin()
        .inject_fault(Fault::new(Endpoint::Configs, FaultAction::Hang));
    let dir = tempfile::tempdir().unwrap();
    let c = builder(&s.url(), dir.path())
        .startup_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    assert!(c.metrics().requests_in_flight >= 1);
    let t0 = Instant::now();
    c.close();
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    assert_eq!(c.metrics().requests_in_flight, 0);
}

/// The merged lookup (docs/protocol.md#merged-lookups) answers from the first namespace
/// in configured order that holds a key, through publishes that move keys between
/// namespaces and a namespace watched later: every key reads as the merged view has it.
#[test]
fn merged_lookup_follows_namespace_order_through_changes() {
    let s = server();
    let a = s.admin();
    a.publish(APP, "default", "first", [("a", "1"), ("only.first", "f")])
        .unwrap();
    a.publish(APP, "default", "second", [("a", "2"), ("b", "2")])
        .unwrap();
    a.publish(APP, "default", "third", [("b", "3"), ("c", "3")])
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let c = builder(&s.url(), dir.path())
        .timing(fast_timing())
        .namespaces(["first", "second"])
        .build()
        .unwrap();
    let agrees = |c: &Client| {
        let snap = c.snapshot();
        let merged = snap.merged();
        merged.iter().all(|(k, v)| c.get(k).as_deref() == Some(*v)) && c.get("nowhere").is_none()
    };
    assert_eq!(c.get("a").as_deref(), Some("1"));
    assert_eq!(c.get("b").as_deref(), Some("2"));
    assert!(agrees(&c));
    // `a` leaves the first namespace, `b` enters it.
    a.publish(APP, "default", "first", [("b", "1")]).unwrap();
    assert!(wait_until(WAIT, || c.get("b").as_deref() == Some("1")));
    assert_eq!(c.get("a").as_deref(), Some("2"));
    assert_eq!(c.get("only.first"), None);
    assert!(agrees(&c));
    // A namespace watched later comes last.
    c.watch("third").unwrap();
    assert!(wait_until(WAIT, || c.get("c").as_deref() == Some("3")));
    assert_eq!(c.get("b").as_deref(), Some("1"));
    assert!(agrees(&c));
    c.close();
}
