//! `apolloconf-testserver`: run the Apollo-compatible test config service.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use apolloconf_testserver::TestServer;

const USAGE: &str = "usage: apolloconf-testserver [--port N] [--host ADDR] [--hold 60s|500ms] \
[--data FILE] [--dir DIR] [--static DIR] [--tls-cert FILE --tls-key FILE] [--cors] \
[--admin-token TOKEN] [--max-connections N] [--max-header-bytes N] [--request-log-bytes N]";

fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: u64 = num.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        _ => None,
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("apolloconf-testserver: {msg}\n{USAGE}");
    std::process::exit(2);
}

fn main() {
    let mut builder = TestServer::builder();
    let mut tls_cert: Option<PathBuf> = None;
    let mut tls_key: Option<PathBuf> = None;
    let mut token_given = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| fail(&format!("{name} needs a value")))
        };
        match a.as_str() {
            "--port" => {
                let v = value("--port");
                builder = builder.port(v.parse().unwrap_or_else(|_| fail("bad --port")));
            }
            "--host" => {
                let v = value("--host");
                builder = builder.host(v.parse::<IpAddr>().unwrap_or_else(|_| fail("bad --host")));
            }
            "--hold" => {
                let v = value("--hold");
                builder = builder.hold(parse_duration(&v).unwrap_or_else(|| fail("bad --hold")));
            }
            "--data" => builder = builder.data_file(PathBuf::from(value("--data"))),
            "--dir" => builder = builder.watch_dir(PathBuf::from(value("--dir"))),
            "--static" => builder = builder.static_dir(PathBuf::from(value("--static"))),
            "--tls-cert" => tls_cert = Some(PathBuf::from(value("--tls-cert"))),
            "--tls-key" => tls_key = Some(PathBuf::from(value("--tls-key"))),
            "--cors" => builder = builder.cors(true),
            "--admin-token" => {
                token_given = true;
                builder = builder.admin_token(value("--admin-token"));
            }
            "--max-connections" => {
                let v = value("--max-connections");
                builder = builder.max_connections(
                    v.parse()
                        .ok()
                        .filter(|&n: &usize| n > 0)
                        .unwrap_or_else(|| fail("bad --max-connections")),
                );
            }
            "--max-header-bytes" => {
                let v = value("--max-header-bytes");
                builder = builder
                    .max_header_bytes(v.parse().unwrap_or_else(|_| fail("bad --max-header-bytes")));
            }
            "--request-log-bytes" => {
                let v = value("--request-log-bytes");
                builder = builder.request_log_bytes(
                    v.parse()
                        .unwrap_or_else(|_| fail("bad --request-log-bytes")),
                );
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return;
            }
            other => fail(&format!("unknown argument {other}")),
        }
    }
    match (tls_cert, tls_key) {
        (None, None) => {}
        (Some(cert), Some(key)) => {
            let read = |path: &PathBuf| {
                std::fs::read(path)
                    .unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", path.display())))
            };
            builder = builder.tls(read(&cert), read(&key));
        }
        _ => fail("--tls-cert and --tls-key go together"),
    }
    let server = builder
        .start()
        .unwrap_or_else(|e| fail(&format!("cannot start: {e}")));
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening {}", server.url());
        // A token made up at start (listening beyond loopback) is useless unless shown.
        if let Some(token) = server.admin_token().filter(|_| !token_given) {
            let _ = writeln!(out, "admin token {token}");
        }
        let _ = out.flush();
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(&format!("cannot start: {e}")));
    rt.block_on(async {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => fail(&format!("cannot install a signal handler: {e}")),
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    });
    server.shutdown();
}
