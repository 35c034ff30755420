//! Change listeners with interest filters: `cargo run -p apolloconf --example listeners`.

use std::time::Duration;

use apolloconf::{Client, Interest, Timing};
use apolloconf_testserver::TestServer;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = TestServer::start()?;
    let admin = server.admin().clone();
    admin.publish(
        "SampleApp",
        "default",
        "application",
        [("db.url", "jdbc:a"), ("timeout", "1")],
    )?;

    let mut timing = Timing::default();
    timing.long_poll_initial_delay = Duration::ZERO;
    let client = Client::builder()
        .app_id("SampleApp")
        .config_service(server.url())
        .cache(false)
        .timing(timing)
        .build()?;

    // A callback for keys under `db.` (runs on the client's listener thread).
    client.on_change(Interest::all().prefixes(["db."]), |event| {
        for c in &event.changes {
            println!(
                "[callback] {} {}: {:?} -> {:?}",
                c.kind.as_str(),
                c.key,
                c.old,
                c.new
            );
        }
    });
    // A channel for one exact key.
    let timeouts = client.changes(Interest::all().keys(["timeout"]));

    while admin.held_polls() == 0 {
        std::thread::sleep(Duration::from_millis(10));
    }
    admin.publish(
        "SampleApp",
        "default",
        "application",
        [("db.url", "jdbc:b"), ("timeout", "2")],
    )?;
    let event = timeouts.recv_timeout(Duration::from_secs(10))?;
    println!("[channel] timeout is now {:?}", event.changes[0].new);
    client.close();
    Ok(())
}
