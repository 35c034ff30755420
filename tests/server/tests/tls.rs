//! The https listener (`TestServerBuilder::tls`, `--tls-cert`/`--tls-key`): the same
//! protocol, admin API, faults and pause/resume over TLS, with a throwaway CA made at test
//! time. The client side is a small blocking rustls client (no code shared with the core).

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apolloconf_testserver::{Endpoint, Fault, FaultAction, TestPki, TestServer};
use common::*;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// A throwaway CA and a server certificate it signed for `names`.
fn pki(names: &[&str]) -> TestPki {
    TestPki::generate(names).expect("test certificates")
}

fn tls_server(p: &TestPki, hold: Duration) -> TestServer {
    TestServer::builder()
        .hold(hold)
        .tls(p.cert_pem.clone(), p.key_pem.clone())
        .start()
        .expect("tls server starts")
}

/// One request over TLS (Connection: close), trusting only `ca_pem`, with SNI and name
/// check against `name`.
fn https(
    addr: SocketAddr,
    ca_pem: &str,
    name: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<Resp> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(c.map_err(std::io::Error::other)?)
            .map_err(std::io::Error::other)?;
    }
    let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let server_name = ServerName::try_from(name.to_string()).map_err(std::io::Error::other)?;
    let conn =
        ClientConnection::new(Arc::new(config), server_name).map_err(std::io::Error::other)?;
    let sock = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    sock.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut tls = StreamOwned::new(conn, sock);
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body.unwrap_or(""));
    tls.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    match tls.read_to_end(&mut raw) {
        Ok(_) => {}
        // A peer that closes without close_notify: keep what arrived.
        Err(e) if e.kind() == ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(e),
    }
    parse_response(&raw)
}

fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    f()
}

const CONFIGS: &str = "/configs/SampleApp/default/application";

#[test]
fn https_serves_the_protocol_admin_api_and_faults() {
    let p = pki(&["127.0.0.1", "localhost"]);
    let server = tls_server(&p, Duration::from_millis(500));
    let addr = server.addr();
    assert_eq!(server.url(), format!("https://127.0.0.1:{}", server.port()));
    assert_eq!(server.admin().url(), server.url());

    // The admin API over https.
    let r = https(
        addr,
        &p.ca_pem,
        "127.0.0.1",
        "POST",
        "/__admin/apps/SampleApp/clusters/default/namespaces/application/releases",
        Some("{\"configurations\":{\"timeout\":\"100\"}}"),
    )
    .expect("publish over https");
    assert_eq!(r.status, 200, "{}", r.text());
    let first_id = r.json()["messageId"].as_i64().expect("messageId");
    let stats = https(addr, &p.ca_pem, "127.0.0.1", "GET", "/__admin/stats", None)
        .expect("stats")
        .json();
    assert_eq!(stats["url"], server.url());

    // /configs by ip and by host name (SNI).
    for name in ["127.0.0.1", "localhost"] {
        let r = https(addr, &p.ca_pem, name, "GET", CONFIGS, None).expect("configs");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["configurations"]["timeout"], "100");
    }

    // Discovery answers https home pages.
    let services = https(
        addr,
        &p.ca_pem,
        "127.0.0.1",
        "GET",
        "/services/config",
        None,
    )
    .expect("services")
    .json();
    assert_eq!(services[0]["homepageUrl"], format!("{}/", server.url()));

    // A long poll is held, then 304.
    let poll = poll_path("SampleApp", "default", &[("application", first_id)]);
    let started = Instant::now();
    let r = https(addr, &p.ca_pem, "127.0.0.1", "GET", &poll, None).expect("held poll");
    assert_eq!(r.status, 304);
    assert!(started.elapsed() >= Duration::from_millis(400));

    // A held long poll is woken by a publish.
    server.admin().set_hold(Duration::from_secs(20));
    let ca = p.ca_pem.clone();
    let waiter = std::thread::spawn(move || https(addr, &ca, "127.0.0.1", "GET", &poll, None));
    assert!(
        wait_until(Duration::from_secs(10), || server.admin().held_polls() == 1),
        "the poll is held"
    );
    server
        .admin()
        .publish("SampleApp", "default", "application", [("timeout", "200")])
        .expect("publish");
    let r = waiter.join().expect("poll thread").expect("woken poll");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()[0]["namespaceName"], "application");

    // Faults apply over TLS: the connection is closed without an answer.
    server
        .admin()
        .inject_fault(Fault::new(Endpoint::Configs, FaultAction::Close).times(1));
    assert!(https(addr, &p.ca_pem, "127.0.0.1", "GET", CONFIGS, None).is_err());
    let r = https(addr, &p.ca_pem, "127.0.0.1", "GET", CONFIGS, None).expect("after fault");
    assert_eq!(r.json()["configurations"]["timeout"], "200");

    // Pause refuses connections; resume serves https again on the same port.
    server.admin().pause();
    assert!(https(addr, &p.ca_pem, "127.0.0.1", "GET", CONFIGS, None).is_err());
    server.admin().resume().expect("resume");
    let r = https(addr, &p.ca_pem, "127.0.0.1", "GET", CONFIGS, None).expect("after resume");
    assert_eq!(r.status, 200);
    server.shutdown();
}

#[test]
fn https_rejects_plain_http_and_untrusted_clients_see_a_certificate_error() {
    let p = pki(&["127.0.0.1"]);
    let server = tls_server(&p, Duration::from_millis(300));
    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = try_request(
        server.addr(),
        "GET",
        CONFIGS,
        &[],
        None,
        Duration::from_secs(5),
    );
    assert!(plain.is_err(), "{plain:?}");
    // A client trusting another CA fails the handshake.
    let other = pki(&["127.0.0.1"]);
    let err = https(
        server.addr(),
        &other.ca_pem,
        "127.0.0.1",
        "GET",
        CONFIGS,
        None,
    )
    .expect_err("unknown issuer");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    // A failed handshake does not disturb the listener.
    let r = https(
        server.addr(),
        &p.ca_pem,
        "127.0.0.1",
        "GET",
        "/services/config",
        None,
    )
    .expect("trusted client");
    assert_eq!(r.status, 200);
}

#[test]
fn unusable_tls_material_is_invalid_input() {
    let p = pki(&["127.0.0.1"]);
    let cases: [(&str, &str); 4] = [
        ("not pem", &p.key_pem),
        ("", &p.key_pem),
        (&p.cert_pem, "not a key"),
        // A key that does not belong to the certificate.
        (&p.cert_pem, &pki(&["127.0.0.1"]).key_pem),
    ];
    for (cert, key) in cases {
        let err = TestServer::builder()
            .tls(cert, key)
            .start()
            .expect_err("unusable tls material");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    }
}

#[test]
fn binary_serves_https_with_tls_flags() {
    let p = pki(&["127.0.0.1", "localhost"]);
    let dir: PathBuf =
        std::env::temp_dir().join(format!("apolloconf-ts-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
    std::fs::write(&cert, &p.cert_pem).expect("write cert");
    std::fs::write(&key, &p.key_pem).expect("write key");
    let bin = env!("CARGO_BIN_EXE_apolloconf-testserver");

    let server = Binary::start([
        "--port".as_ref(),
        "0".as_ref(),
        "--hold".as_ref(),
        "300ms".as_ref(),
        "--tls-cert".as_ref(),
        cert.as_os_str(),
        "--tls-key".as_ref(),
        key.as_os_str(),
    ]);
    let line = server.first_line.clone();
    let addr = server.addr("https");
    let result = addr.map(|addr| {
        let published = https(
            addr,
            &p.ca_pem,
            "localhost",
            "POST",
            "/__admin/apps/SampleApp/clusters/default/namespaces/application/releases",
            Some("{\"configurations\":{\"k\":\"v\"}}"),
        );
        let got = https(addr, &p.ca_pem, "localhost", "GET", CONFIGS, None);
        (published, got)
    });
    drop(server);
    assert!(line.starts_with("listening https://127.0.0.1:"), "{line:?}");
    let (published, got) = result.expect("address");
    assert_eq!(published.expect("publish").status, 200);
    assert_eq!(got.expect("configs").json()["configurations"]["k"], "v");

    // Only one of the two flags is a usage error; unusable files fail to start.
    let out = Command::new(bin)
        .args(["--port", "0", "--tls-cert"])
        .arg(&cert)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(bin)
        .args(["--port", "0", "--tls-cert"])
        .arg(&key)
        .arg("--tls-key")
        .arg(&key)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot start"));
    let _ = std::fs::remove_dir_all(&dir);
}
