//! Publish benchmark: one admin-API publish of N keys over loopback HTTP (10,000, 40,000
//! and 100,000 keys, plus one repeated key), and the `/configs` read of the result. The
//! admin publish used to be quadratic in the number of keys (40,000 keys took 6.3 s).
//!
//! `cargo run --release -p apolloconf-testserver --example publish`

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use apolloconf_testserver::TestServer;

const PATH: &str = "/__admin/apps/BenchApp/clusters/default/namespaces/application/releases";

/// One HTTP/1.1 request with `connection: close`; returns the status and the body size.
fn request(server: &TestServer, method: &str, path: &str, body: &[u8]) -> (u16, usize) {
    let addr = server.addr();
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(120)))
        .expect("timeout");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("write head");
    s.write_all(body).expect("write body");
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).expect("read");
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body_len = text.find("\r\n\r\n").map_or(0, |i| answer.len() - i - 4);
    (status, body_len)
}

fn main() {
    let server = TestServer::builder().start().expect("server starts");
    for n in [10_000usize, 40_000, 100_000] {
        let mut body = String::from("{\"configurations\":{");
        for i in 0..n {
            if i > 0 {
                body.push(',');
            }
            body.push_str(&format!("\"key.{i}\":\"value {i}\""));
        }
        body.push_str(",\"key.7\":\"repeated\"}}");
        let t = Instant::now();
        let (status, _) = request(&server, "POST", PATH, body.as_bytes());
        let publish = t.elapsed();
        assert_eq!(status, 200, "publish of {n} keys");
        let t = Instant::now();
        let (status, bytes) = request(&server, "GET", "/configs/BenchApp/default/application", b"");
        let read = t.elapsed();
        assert_eq!(status, 200, "read of {n} keys");
        println!(
            "publish of {n:>7} keys ({:.1} MB): {:>8.1} ms; /configs of the result ({:.1} MB): {:>7.1} ms",
            body.len() as f64 / 1e6,
            publish.as_secs_f64() * 1e3,
            bytes as f64 / 1e6,
            read.as_secs_f64() * 1e3
        );
    }
}
