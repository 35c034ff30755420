//! Typed reads and serde binding: `cargo run -p apolloconf --example typed`.

use apolloconf::Client;
use apolloconf_testserver::TestServer;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Pool {
    max_size: u32,
    min_idle: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct Replica {
    host: String,
    port: u16,
}

#[derive(Debug, Deserialize)]
struct DataSource {
    url: String,
    pool: Pool,
    replicas: Vec<Replica>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct App {
    server_port: u16,
    feature_enabled: bool,
    origins: Vec<String>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = TestServer::start()?;
    let admin = server.admin();
    admin.publish(
        "SampleApp",
        "default",
        "application",
        [
            ("server-port", "8080"),
            ("feature-enabled", "TRUE"),
            ("origins", "https://a, https://b"),
        ],
    )?;
    admin.publish_content(
        "SampleApp",
        "default",
        "datasource.yaml",
        "datasource:\n  url: jdbc:postgresql://db/sample\n  pool:\n    max-size: 20\n  replicas:\n    - host: r1\n      port: 5432\n    - host: r2\n      port: 5433\n",
    )?;
    let client = Client::builder()
        .app_id("SampleApp")
        .config_service(server.url())
        .namespaces(["application", "datasource.yaml"])
        .cache(false)
        .build()?;

    // Typed single values.
    let port: u16 = client.get_or("server-port", 80);
    let enabled = client.get_bool("feature-enabled").unwrap_or(false);
    println!("port={port} enabled={enabled}");
    match client.get_as::<u16>("origins") {
        Some(Err(e)) => println!("origins is not a number: {e}"),
        other => println!("origins: {other:?}"),
    }

    // Whole namespaces into structs (dotted keys → nested fields, `[i]` → lists).
    let app: App = client.bind("application")?;
    let ds: DataSource = client.bind_prefix("datasource.yaml", "datasource")?;
    println!(
        "app: port {} enabled {} origins {:?}",
        app.server_port, app.feature_enabled, app.origins
    );
    println!(
        "datasource: {} pool max {} min idle {:?}",
        ds.url, ds.pool.max_size, ds.pool.min_idle
    );
    for r in &ds.replicas {
        println!("  replica {}:{}", r.host, r.port);
    }
    println!(
        "raw YAML:\n{}",
        client.content("datasource.yaml").unwrap_or_default()
    );
    client.close();
    Ok(())
}
