//! A tiny HTTP/1.1 client over `std::net::TcpStream` (no shared code with the core) and
//! helpers shared by the integration tests.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use apolloconf_testserver::TestServer;

/// A parsed response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(i) = find(b, b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(std::str::from_utf8(&b[..i]).unwrap_or("0").trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[i + 2..i + 2 + size]);
        b = &b[i + 2 + size + 2..];
    }
}

/// Sends one request (Connection: close) and reads the whole response. `Host` is `addr`
/// unless `headers` has one.
pub fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    timeout: Duration,
) -> std::io::Result<Resp> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(timeout))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: {addr}\r\n"));
    }
    head.push_str("Connection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        head.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    if let Some(b) = body {
        bytes.extend_from_slice(b);
    }
    s.write_all(&bytes)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse_response(&raw)
}

/// Parses a complete HTTP/1.1 response (head and body, chunked or not).
pub fn parse_response(raw: &[u8]) -> std::io::Result<Resp> {
    let end = find(raw, b"\r\n\r\n").ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "no response head")
    })?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Ok(Resp {
        status,
        headers,
        body,
    })
}

pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Resp {
    try_request(addr, method, path, headers, body, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

pub fn get(s: &TestServer, path: &str) -> Resp {
    request(s.addr(), "GET", path, &[], None)
}

pub fn get_h(s: &TestServer, path: &str, headers: &[(&str, &str)]) -> Resp {
    request(s.addr(), "GET", path, headers, None)
}

pub fn admin(s: &TestServer, method: &str, path: &str, body: &str) -> Resp {
    request(
        s.addr(),
        method,
        path,
        &[("Content-Type", "application/json")],
        Some(body.as_bytes()),
    )
}

/// Query-value encoding as the Java client does it (only `A-Za-z0-9-_.*` literal).
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.*".contains(&b) {
            out.push(b as char);
        } else if b == b' ' {
            out.push('+');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `notifications` JSON for (name, id) pairs.
fn notif_json(entries: &[(&str, i64)]) -> String {
    let items: Vec<String> = entries
        .iter()
        .map(|(n, id)| format!("{{\"namespaceName\":\"{n}\",\"notificationId\":{id}}}"))
        .collect();
    format!("[{}]", items.join(","))
}

/// The encoded `notifications` parameter for (name, id) pairs.
pub fn notif(entries: &[(&str, i64)]) -> String {
    enc(&notif_json(entries))
}

/// `/notifications/v2?...` path for an app and cluster.
pub fn poll_path(app: &str, cluster: &str, entries: &[(&str, i64)]) -> String {
    poll_path_raw(app, cluster, &notif_json(entries))
}

/// `/notifications/v2?...` path whose `notifications` is this text (encoded here).
pub fn poll_path_raw(app: &str, cluster: &str, notifications: &str) -> String {
    format!(
        "/notifications/v2?cluster={}&appId={}&notifications={}",
        enc(cluster),
        enc(app),
        enc(notifications)
    )
}

pub fn server(hold_ms: u64) -> TestServer {
    TestServer::builder()
        .hold(Duration::from_millis(hold_ms))
        .start()
        .expect("server starts")
}

/// The `apolloconf-testserver` binary started with some arguments; killed when dropped.
pub struct Binary {
    pub child: std::process::Child,
    /// The first line it printed (`listening http://127.0.0.1:PORT` when it started).
    pub first_line: String,
    out: std::io::BufReader<std::process::ChildStdout>,
}

impl Binary {
    pub fn start<I, S>(args: I) -> Binary
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_apolloconf-testserver"))
            .args(args)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let mut first_line = String::new();
        out.read_line(&mut first_line).expect("read");
        Binary {
            child,
            first_line,
            out,
        }
    }

    /// The next line it prints (waits for it; empty once its output ended).
    pub fn next_line(&mut self) -> String {
        use std::io::BufRead;
        let mut line = String::new();
        self.out.read_line(&mut line).expect("read");
        line
    }

    /// The address after `listening {scheme}://` on the first line.
    pub fn addr(&self, scheme: &str) -> Option<SocketAddr> {
        self.first_line
            .trim_end()
            .strip_prefix(&format!("listening {scheme}://"))
            .and_then(|a| a.parse().ok())
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
