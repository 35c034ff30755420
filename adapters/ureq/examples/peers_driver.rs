//! The native client's driver for `cargo xtask bench --peers`, which compares it with other
//! Apollo clients: settings from `PEERS_*` environment variables, JSON lines on stdout,
//! `get NS KEY` on stdin (the protocol is in `bench/peers/README.md`). The client runs
//! with its defaults (the Java client's timing) and a cache in `PEERS_DIR`.
//!
//! `cargo build --release -p apolloconf --example peers_driver`

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use apolloconf::{Client, Env, Interest};
use serde_json::json;

fn out(v: &serde_json::Value) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{v}");
    let _ = o.flush();
}

fn setting(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set"))
}

fn read(client: &Client, ns: &str, key: &str) -> Option<String> {
    client.namespace(ns)?.get(key).map(str::to_owned)
}

fn run() -> Result<(), String> {
    let url = setting("PEERS_URL")?;
    let app = setting("PEERS_APP")?;
    let namespaces: Vec<String> = setting("PEERS_NAMESPACES")?
        .split(',')
        .map(str::to_owned)
        .collect();
    let probe = setting("PEERS_PROBE")?;
    let dir = PathBuf::from(setting("PEERS_DIR")?);

    let started = Instant::now();
    let client = Client::builder()
        .app_id(app)
        .config_service(url)
        .namespaces(namespaces.iter().cloned())
        .cache_dir(&dir)
        .environment(Env::empty())
        .server_properties(dir.join("no-server.properties"))
        .build()
        .map_err(|e| format!("build: {e}"))?;
    client.on_change(Interest::all(), |event| {
        for c in &event.changes {
            out(&json!({"change": {"ns": event.namespace, "key": c.key, "value": c.new}}));
        }
    });
    let deadline = started + Duration::from_secs(60);
    loop {
        let all = namespaces
            .iter()
            .all(|ns| read(&client, ns, &probe).is_some_and(|v| !v.is_empty()));
        if all {
            out(&json!({"ready": started.elapsed().as_secs_f64() * 1000.0}));
            break;
        }
        if Instant::now() > deadline {
            return Err("not every namespace was readable within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }

    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let parts: Vec<&str> = line.split_whitespace().collect();
        match parts.as_slice() {
            ["get", ns, key] => {
                let value = read(&client, ns, key);
                out(&json!({"value": {"ns": ns, "key": key, "value": value}}));
            }
            ["quit"] => break,
            _ => {}
        }
    }
    client.close();
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            out(&json!({ "error": e }));
            ExitCode::FAILURE
        }
    }
}
