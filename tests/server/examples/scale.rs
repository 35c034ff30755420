//! Scale benchmark: N (default 10,000) held long polls over loopback, one publish, and the
//! time until the last waiter is answered.
//!
//! `cargo run --release -p apolloconf-testserver --example scale [-- N]`
//!
//! The server runs in this process; the clients run in a child process (the same binary
//! started with `--client`), so each side needs only N file descriptors and the reported
//! memory (VmRSS / VmHWM from `/proc/self/status`) is the server's alone.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apolloconf_testserver::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const APP: &str = "ScaleApp";

fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn open_files_limit() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--client") {
        let url = args.get(2).cloned().unwrap_or_default();
        let n: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10_000);
        let id: i64 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(0);
        client(&url, n, id);
        return;
    }
    let mut n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let limit = open_files_limit();
    if (n as u64) + 200 > limit {
        let fit = limit.saturating_sub(200) as usize;
        eprintln!(
            "RLIMIT_NOFILE is {limit}: running {fit} polls instead of {n} (raise `ulimit -n`)"
        );
        n = fit;
    }
    let server = TestServer::builder()
        .hold(Duration::from_secs(120))
        // Every poll is a connection: allow them all (and a few for the admin calls).
        .max_connections(n + 100)
        .start()
        .expect("server starts");
    let release = server
        .admin()
        .publish(APP, "default", "application", [("k", "v0")])
        .expect("publish");
    let rss_idle = status_kb("VmRSS:");
    let mut child = Command::new(std::env::current_exe().expect("current exe"))
        .args([
            "--client",
            &server.url(),
            &n.to_string(),
            &release.message_id.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn client");
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let started = Instant::now();
    for line in stdout.lines() {
        let Ok(line) = line else { break };
        if let Some(rest) = line.strip_prefix("HELD ") {
            let rss = status_kb("VmRSS:");
            println!(
                "held polls:           {} (server reports {})",
                rest,
                server.admin().held_polls()
            );
            println!(
                "time to open them:    {:.1} s",
                started.elapsed().as_secs_f64()
            );
            println!(
                "server RSS:           {} KiB idle, {} KiB with polls held (+{:.1} KiB per poll)",
                rss_idle,
                rss,
                (rss.saturating_sub(rss_idle)) as f64 / n as f64
            );
            let _ = writeln!(stdin, "GO");
            let _ = stdin.flush();
        } else {
            println!("{line}");
        }
    }
    let _ = child.wait();
    println!("server peak RSS:      {} KiB", status_kb("VmHWM:"));
    server.shutdown();
}

fn client(url: &str, n: usize, id: i64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let addr = url.trim_start_matches("http://").to_string();
    let notifications = format!("[{{\"namespaceName\":\"application\",\"notificationId\":{id}}}]");
    let enc: String = notifications
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let path = format!("/notifications/v2?cluster=default&appId={APP}&notifications={enc}");
    rt.block_on(async move {
        let gate = Arc::new(tokio::sync::Semaphore::new(256));
        let mut tasks = Vec::with_capacity(n);
        for _ in 0..n {
            let permit = gate.clone().acquire_owned().await.expect("semaphore");
            let (addr, path) = (addr.clone(), path.clone());
            tasks.push(tokio::spawn(async move {
                let mut s = TcpStream::connect(&addr).await.ok()?;
                drop(permit);
                let req =
                    format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
                s.write_all(req.as_bytes()).await.ok()?;
                let mut buf = Vec::with_capacity(512);
                s.read_to_end(&mut buf).await.ok()?;
                buf.starts_with(b"HTTP/1.1 200").then(Instant::now)
            }));
        }
        // Wait until the server holds every poll (bounded).
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let stats = poll_stats(&addr).await;
            if stats >= n as i64 || Instant::now() > deadline {
                println!("HELD {stats}");
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Wait for the parent to sample its memory.
        let _ = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        })
        .await;
        let published = publish(&addr).await.unwrap_or_else(Instant::now);
        let mut answered = Vec::with_capacity(n);
        let all = async {
            for t in tasks {
                if let Ok(Some(at)) = t.await {
                    answered.push(at);
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(60), all).await;
        let last = answered.iter().max().map(|t| t.duration_since(published));
        let first = answered.iter().min().map(|t| t.duration_since(published));
        println!("answered with 200:    {} of {n}", answered.len());
        if let (Some(first), Some(last)) = (first, last) {
            println!(
                "publish -> first 200: {:.1} ms",
                first.as_secs_f64() * 1000.0
            );
            println!(
                "publish -> last 200:  {:.1} ms",
                last.as_secs_f64() * 1000.0
            );
        }
    });
}

async fn poll_stats(addr: &str) -> i64 {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return 0;
    };
    let req = format!("GET /__admin/stats HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return 0;
    }
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf).await;
    buf.split("\"heldPolls\":")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Publishes through the admin API; returns the instant the request was sent.
async fn publish(addr: &str) -> Option<Instant> {
    let body = "{\"configurations\":{\"k\":\"v1\"}}";
    let req = format!(
        "POST /__admin/apps/{APP}/clusters/default/namespaces/application/releases HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut s = TcpStream::connect(addr).await.ok()?;
    let at = Instant::now();
    s.write_all(req.as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.ok()?;
    Some(at)
}
