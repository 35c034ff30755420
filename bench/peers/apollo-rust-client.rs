//! Driver of crates.io `apollo-rust-client` (see README.md for the line protocol).
//! `cargo xtask bench --peers` copies it to `target/peers/rq/src/main.rs` and writes the
//! Cargo.toml beside it.
//!
//! The client fetches each namespace on first use, then `start()` re-fetches every
//! namespace every 30 s and calls the namespace's listeners with the whole namespace each
//! time. Its `Properties` has getters but no list of keys, so the driver reports changes
//! of the keys in `PEERS_WATCH` only.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use apollo_rust_client::client_config::ClientConfig;
use apollo_rust_client::namespace::Namespace;
use apollo_rust_client::Client;

fn out(line: String) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{line}");
    let _ = o.flush();
}

fn quote(s: &str) -> String {
    let mut q = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            c if (c as u32) < 0x20 => q.push_str(&format!("\\u{:04x}", c as u32)),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

fn opt(v: &Option<String>) -> String {
    v.as_deref().map_or_else(|| "null".to_string(), quote)
}

fn setting(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) => v,
        Err(_) => {
            out(format!("{{\"error\":{}}}", quote(&format!("{name} is not set"))));
            std::process::exit(2);
        }
    }
}

async fn read(client: &Client, ns: &str, key: &str) -> Option<String> {
    match client.namespace(ns).await {
        Ok(Namespace::Properties(p)) => p.get_string(key),
        _ => None,
    }
}

#[tokio::main]
async fn main() {
    let url = setting("PEERS_URL");
    let app = setting("PEERS_APP");
    let namespaces: Vec<String> = setting("PEERS_NAMESPACES")
        .split(',')
        .map(str::to_string)
        .collect();
    let probe = setting("PEERS_PROBE");
    let dir = setting("PEERS_DIR");
    let watch: Vec<String> = std::env::var("PEERS_WATCH")
        .unwrap_or_default()
        .split(',')
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect();

    let started = Instant::now();
    // What ClientConfig::from_env() gives (cache TTL 600 s, refresh every 30 s), with the
    // cache in PEERS_DIR instead of /opt/data.
    let config = ClientConfig {
        app_id: app,
        cluster: "default".to_string(),
        cache_dir: Some(dir),
        config_server: url,
        secret: None,
        label: None,
        ip: None,
        allow_insecure_https: None,
        cache_ttl: Some(600),
        refresh_interval: Some(30),
        http_client: None,
    };
    let mut client = Client::new(config);
    if let Err(e) = client.preload(&namespaces).await {
        out(format!("{{\"error\":{}}}", quote(&format!("preload: {e}"))));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut all = true;
        for ns in &namespaces {
            all &= read(&client, ns, &probe).await.is_some_and(|v| !v.is_empty());
        }
        if all {
            out(format!("{{\"ready\":{}}}", started.elapsed().as_secs_f64() * 1000.0));
            break;
        }
        if Instant::now() > deadline {
            out("{\"error\":\"not every namespace was readable within 60 s\"}".to_string());
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    for ns in &namespaces {
        let name = ns.clone();
        let watch = watch.clone();
        let last: Mutex<Option<HashMap<String, Option<String>>>> = Mutex::new(None);
        client
            .add_listener(
                ns,
                Arc::new(move |result| {
                    let Ok(Namespace::Properties(p)) = result else {
                        return;
                    };
                    let now: HashMap<String, Option<String>> =
                        watch.iter().map(|k| (k.clone(), p.get_string(k))).collect();
                    let mut last = last.lock().unwrap_or_else(PoisonError::into_inner);
                    if let Some(before) = last.as_ref() {
                        for k in &watch {
                            if before.get(k) != now.get(k) {
                                let v = now.get(k).cloned().flatten();
                                out(format!(
                                    "{{\"change\":{{\"ns\":{},\"key\":{},\"value\":{}}}}}",
                                    quote(&name),
                                    quote(k),
                                    opt(&v)
                                ));
                            }
                        }
                    }
                    *last = Some(now);
                }),
            )
            .await;
    }
    if let Err(e) = client.start().await {
        out(format!("{{\"error\":{}}}", quote(&format!("start: {e}"))));
    }

    // stdin on its own thread; the answers are read on the runtime.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    while let Some(line) = rx.recv().await {
        let parts: Vec<&str> = line.split_whitespace().collect();
        match parts.as_slice() {
            ["get", ns, key] => {
                let v = read(&client, ns, key).await;
                out(format!(
                    "{{\"value\":{{\"ns\":{},\"key\":{},\"value\":{}}}}}",
                    quote(ns),
                    quote(key),
                    opt(&v)
                ));
            }
            ["quit"] => break,
            _ => {}
        }
    }
    std::process::exit(0);
}
