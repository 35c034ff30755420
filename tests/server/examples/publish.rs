//! Publish benchmark: one admin-API publish of N keys over loopback HTTP (10,000, 40,000
//! and 100,000 keys, plus one repeated key), and the `/configs` read of the result. The
//! admin publish used to be quadratic in the number of keys (40,000 keys took 6.3 s).
//! Then directory mode with one `.properties` file of 100,000 and 1,000,000 keys: the time
//! to start (read, parse and publish it), and the CPU the server spends over 2 s while the
//! file does not change (its reader was quadratic too, and read every file every 200 ms:
//! 50,000 keys took 4.8 s per read, the CPU was never idle).
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

/// CPU time of this process so far (user and system, every thread), from
/// `/proc/self/stat` in clock ticks of 10 ms (Linux's fixed `USER_HZ` of 100).
fn cpu_ms() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0)) * 10
}

fn directory_mode(n: usize) {
    let dir = std::env::temp_dir().join(format!("apolloconf-publish-bench-{}", std::process::id()));
    let file = dir.join("BenchApp/default/application.properties");
    std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
    let mut text = String::with_capacity(n * 24);
    for i in 0..n {
        text.push_str(&format!("key.{i}=value {i}\n"));
    }
    std::fs::write(&file, &text).expect("write");
    let t = Instant::now();
    let server = TestServer::builder()
        .watch_dir(&dir)
        .start()
        .expect("server starts");
    let start = t.elapsed();
    // Past the two seconds in which a modified file is read at every scan.
    std::thread::sleep(Duration::from_millis(2_500));
    let before = cpu_ms();
    std::thread::sleep(Duration::from_secs(2));
    let idle = cpu_ms().saturating_sub(before);
    let (status, bytes) = request(&server, "GET", "/configs/BenchApp/default/application", b"");
    assert_eq!(status, 200, "read of {n} keys");
    println!(
        "directory mode, a file of {n:>9} keys ({:.1} MB): start {:>7.1} ms; CPU over 2 s unchanged: {idle} ms; /configs {:.1} MB",
        text.len() as f64 / 1e6,
        start.as_secs_f64() * 1e3,
        bytes as f64 / 1e6
    );
    server.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
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
    for n in [100_000, 1_000_000] {
        directory_mode(n);
    }
}
