//! The native client over https against the real test server on loopback, with a
//! throwaway private CA made at test time: trusted roots from PEM and files, discovery
//! of https services, the long poll, and clear errors for an untrusted certificate, a
//! certificate for another name and unusable root PEM.

mod common;

use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use apolloconf::{ClientError, Error, ErrorCause, Event, Interest};
use apolloconf_core::TransportErrorKind;
use apolloconf_testserver::{TestPki, TestServer};
use common::*;

/// A throwaway CA and a server certificate it signed for `names`.
fn pki(names: &[&str]) -> TestPki {
    TestPki::generate(names).expect("test certificates")
}

/// An https server (60 s hold, as the real one) with the sample app published.
fn https_server(p: &TestPki) -> TestServer {
    let s = TestServer::builder()
        .tls(p.cert_pem.clone(), p.key_pem.clone())
        .start()
        .expect("tls server starts");
    assert!(s.url().starts_with("https://127.0.0.1:"), "{}", s.url());
    s.admin()
        .publish(APP, "default", "application", [("timeout", "100")])
        .expect("publish");
    s
}

/// The first transport error event within a bounded wait.
fn first_transport_error(events: &Receiver<Event>) -> ClientError {
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match events.recv_timeout(left) {
            Ok(Event::Error(e)) if matches!(e.cause, ErrorCause::Transport(_)) => return e,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    panic!("no transport error event within 10 s");
}

/// Builds a client that cannot load `server`'s namespace over TLS and returns the
/// error it reports (event and metric), checking that nothing was loaded.
fn tls_failure(server: &TestServer, trust: Option<&str>) -> (TransportErrorKind, String) {
    let dir = tempfile::tempdir().expect("tmp");
    let (tx, rx) = mpsc::channel();
    let mut b = builder(&server.url(), dir.path())
        .event_sink(tx)
        .startup_timeout(Duration::from_secs(3));
    if let Some(pem) = trust {
        b = b.tls_root_pem(pem);
    }
    let client = b.build().expect("a TLS failure is not a build error");
    let err = first_transport_error(&rx);
    assert_eq!(client.get("timeout"), None);
    let ErrorCause::Transport(t) = &err.cause else {
        unreachable!("checked by first_transport_error")
    };
    assert!(
        err.url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://")),
        "{err:?}"
    );
    assert!(
        wait_until(Duration::from_secs(5), || client
            .metrics()
            .last_error
            .is_some_and(|e| matches!(e.cause, ErrorCause::Transport(_)))),
        "the metric keeps the error"
    );
    let metric = client.metrics().last_error.expect("last error");
    assert_eq!(metric.cause, err.cause, "the metric keeps the same values");
    assert!(
        !server
            .admin()
            .requests()
            .iter()
            .any(|r| r.path.starts_with("/configs"))
    );
    client.close();
    (t.kind, t.message.clone())
}

#[test]
fn https_with_a_private_ca_loads_and_follows_the_long_poll() {
    let p = pki(&["127.0.0.1", "localhost"]);
    let server = https_server(&p);
    let dir = tempfile::tempdir().expect("tmp");
    let client = builder(&server.url(), dir.path())
        .tls_root_pem(p.ca_pem.clone())
        .build()
        .expect("client");
    assert!(client.is_ready());
    assert_eq!(client.get("timeout").as_deref(), Some("100"));
    assert!(client.metrics().last_error.is_none());

    let changes = client.changes(Interest::all());
    assert!(
        wait_until(Duration::from_secs(10), || server.admin().held_polls() == 1),
        "the long poll is held over https"
    );
    server
        .admin()
        .publish(APP, "default", "application", [("timeout", "250")])
        .expect("publish");
    let event = changes
        .recv_timeout(Duration::from_secs(10))
        .expect("change through the long poll");
    assert_eq!(event.changes[0].key, "timeout");
    assert_eq!(event.changes[0].new.as_deref(), Some("250"));
    assert_eq!(client.get("timeout").as_deref(), Some("250"));
    client.close();
}

#[test]
fn https_roots_from_files_add_up_and_discovery_hands_out_https_services() {
    let p = pki(&["127.0.0.1"]);
    let other = pki(&["127.0.0.1"]);
    let server = https_server(&p);
    let dir = tempfile::tempdir().expect("tmp");
    // A bundle file holding an unrelated CA first and the server's CA second.
    let bundle = dir.path().join("bundle.pem");
    std::fs::write(&bundle, format!("{}{}", other.ca_pem, p.ca_pem)).expect("write");
    let client = apolloconf::Client::builder()
        .app_id(APP)
        .meta_server(server.url())
        .environment(apolloconf::Env::empty())
        .server_properties(dir.path().join("no-server.properties"))
        .cache_dir(dir.path())
        .timing(fast_timing())
        .startup_timeout(Duration::from_secs(10))
        .tls_root_pem(other.ca_pem.clone())
        .tls_root_file(&bundle)
        .build()
        .expect("client");
    assert_eq!(client.get("timeout").as_deref(), Some("100"));
    assert_eq!(
        client.metrics().services,
        vec![format!("{}/", server.url())]
    );
    client.close();
}

#[test]
fn https_without_the_ca_fails_with_an_unknown_issuer_error() {
    let p = pki(&["127.0.0.1"]);
    let server = https_server(&p);
    // Only the public roots.
    let (kind, message) = tls_failure(&server, None);
    assert_eq!(kind, TransportErrorKind::Tls, "{message}");
    assert!(message.starts_with("TLS error: "), "{message}");
    assert!(message.contains("UnknownIssuer"), "{message}");
    assert!(message.contains("tls_root_pem"), "a hint: {message}");
    // Another private CA is no better.
    let other = pki(&["127.0.0.1"]);
    let (kind, message) = tls_failure(&server, Some(&other.ca_pem));
    assert_eq!(kind, TransportErrorKind::Tls, "{message}");
    assert!(message.contains("UnknownIssuer"), "{message}");
}

#[test]
fn https_certificate_for_another_name_fails() {
    let p = pki(&["apollo.example.com"]);
    let server = https_server(&p);
    let (kind, message) = tls_failure(&server, Some(&p.ca_pem));
    assert_eq!(kind, TransportErrorKind::Tls, "{message}");
    assert!(message.starts_with("TLS error: "), "{message}");
    assert!(message.contains("not valid for name"), "{message}");
    assert!(message.contains("127.0.0.1"), "{message}");
}

#[test]
fn unusable_root_pem_is_a_typed_build_error() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = pki(&["127.0.0.1"]);
    let build = |b: apolloconf::ClientBuilder| match b.build() {
        Err(Error::TlsRoot { origin, message }) => (origin, message),
        other => panic!("expected Error::TlsRoot, got {other:?}"),
    };
    // The URL is never contacted: the roots are checked first.
    let url = format!("https://127.0.0.1:{}", dead_port());
    let cases: [(&[u8], &str); 4] = [
        (b"not PEM at all", "no PEM CERTIFICATE"),
        (p.key_pem.as_bytes(), "no PEM CERTIFICATE"),
        (
            b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
            "invalid PEM",
        ),
        (
            b"-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n",
            "certificate #1",
        ),
    ];
    for (pem, expected) in cases {
        let (origin, message) = build(
            builder(&url, dir.path())
                .tls_root_pem(p.ca_pem.clone())
                .tls_root_pem(pem),
        );
        assert_eq!(origin, "PEM #2 given to tls_root_pem");
        assert!(message.contains(expected), "{message:?} for {pem:?}");
    }
    let missing = dir.path().join("missing.pem");
    let (origin, _) = build(builder(&url, dir.path()).tls_root_file(&missing));
    assert_eq!(origin, format!("file {}", missing.display()));
    let text = Error::TlsRoot {
        origin: "file ca.pem".into(),
        message: "invalid PEM".into(),
    }
    .to_string();
    assert_eq!(
        text,
        "unusable TLS root certificate (file ca.pem): invalid PEM"
    );
}

#[cfg(feature = "platform-verifier")]
#[test]
fn platform_verifier_does_not_trust_a_private_ca_and_excludes_extra_roots() {
    let p = pki(&["127.0.0.1"]);
    let server = https_server(&p);
    let dir = tempfile::tempdir().expect("tmp");
    match builder(&server.url(), dir.path())
        .tls_platform_verifier(true)
        .tls_root_pem(p.ca_pem.clone())
        .build()
    {
        Err(Error::TlsRoot { origin, .. }) => assert_eq!(origin, "tls_platform_verifier"),
        other => panic!("expected Error::TlsRoot, got {other:?}"),
    }
    let (tx, rx) = mpsc::channel();
    let client = builder(&server.url(), dir.path())
        .tls_platform_verifier(true)
        .event_sink(tx)
        .startup_timeout(Duration::from_secs(3))
        .build()
        .expect("client");
    let err = first_transport_error(&rx);
    let ErrorCause::Transport(t) = &err.cause else {
        unreachable!("checked by first_transport_error")
    };
    assert_eq!(t.kind, TransportErrorKind::Tls, "{err}");
    assert!(t.message.starts_with("TLS error: "), "{err}");
    assert_eq!(client.get("timeout"), None);
    client.close();
}
