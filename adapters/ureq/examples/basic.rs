//! Read configuration once: `cargo run -p apolloconf --example basic`.
//!
//! Starts a local test server (so the example runs anywhere), publishes a release, then
//! reads it the way an application would. Point `config_service`/`meta_server` at a real
//! Apollo (or set `APOLLO_META` and `APP_ID`) to use your own.

use apolloconf::Client;
use apolloconf_testserver::TestServer;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = TestServer::start()?;
    server.admin().publish(
        "SampleApp",
        "default",
        "application",
        [
            ("timeout", "250"),
            ("greeting", "hello"),
            ("hosts", "a.example, b.example"),
        ],
    )?;

    let client = Client::builder()
        .app_id("SampleApp")
        .config_service(server.url())
        .cache(false)
        .build()?;

    let timeout: u64 = client.get_or("timeout", 1000);
    let greeting = client.get("greeting").unwrap_or_default();
    let hosts = client.get_array("hosts", ",").unwrap_or_default();
    println!("timeout={timeout} greeting={greeting} hosts={hosts:?}");
    let ns = client.namespace("application").ok_or("namespace missing")?;
    println!("release {:?} from {:?}", ns.release_key(), ns.source());
    println!("metrics: {:?}", client.metrics().configs);
    client.close();
    Ok(())
}
