//! A minimal HTTP/1.1 client for the test server's admin API on loopback (one connection
//! per request, `Connection: close`, every wait bounded).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The admin API of one test server instance.
pub struct Admin {
    addr: SocketAddr,
}

impl Admin {
    /// `url` is `http://127.0.0.1:PORT`.
    pub fn new(url: &str) -> Result<Admin, String> {
        let hostport = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("not an http URL: {url}"))?;
        let addr: SocketAddr = hostport
            .parse()
            .map_err(|e| format!("bad address {hostport}: {e}"))?;
        if !addr.ip().is_loopback() {
            return Err(format!("{addr} is not a loopback address"));
        }
        Ok(Admin { addr })
    }

    /// One request; the status and body of the answer.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        timeout: Duration,
    ) -> Result<(u16, String), String> {
        let fail = |e: std::io::Error| format!("{method} {path}: {e}");
        let mut conn =
            TcpStream::connect_timeout(&self.addr, Duration::from_secs(5)).map_err(fail)?;
        conn.set_read_timeout(Some(timeout)).map_err(fail)?;
        conn.set_write_timeout(Some(Duration::from_secs(5)))
            .map_err(fail)?;
        let body = body.unwrap_or("");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        conn.write_all(head.as_bytes()).map_err(fail)?;
        conn.write_all(body.as_bytes()).map_err(fail)?;
        let mut raw = Vec::new();
        conn.read_to_end(&mut raw).map_err(fail)?;
        parse_response(&raw).map_err(|e| format!("{method} {path}: {e}"))
    }

    /// Publish `items` as the whole configuration of a namespace (cluster `default`).
    pub fn publish(&self, app: &str, ns: &str, items: &[(String, String)]) -> Result<(), String> {
        let members: Vec<String> = items
            .iter()
            .map(|(k, v)| format!("{}:{}", super::json::quote(k), super::json::quote(v)))
            .collect();
        let body = format!("{{\"configurations\":{{{}}}}}", members.join(","));
        let path = format!("/__admin/apps/{app}/clusters/default/namespaces/{ns}/releases");
        match self.request("POST", &path, Some(&body), Duration::from_secs(10))? {
            (200, _) => Ok(()),
            (status, text) => Err(format!("publish {app}/{ns}: {status} {text}")),
        }
    }
}

fn parse_response(raw: &[u8]) -> Result<(u16, String), String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of the answer's head")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or("bad status line")?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let mut body = raw[split + 4..].to_vec();
    if chunked {
        body = dechunk(&body)?;
    }
    String::from_utf8(body)
        .map(|b| (status, b))
        .map_err(|_| "answer is not UTF-8".to_string())
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("bad chunk size line")?;
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size_text = size_text.split(';').next().unwrap_or("").trim().to_string();
        let size = usize::from_str_radix(&size_text, 16).map_err(|_| "bad chunk size")?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_plain_and_chunked_answers() {
        let plain = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(parse_response(plain).unwrap(), (200, "{}".to_string()));
        let chunked =
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked).unwrap(), (404, "abcde".to_string()));
    }
}
