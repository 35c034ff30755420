//! `ConfigBuilder::yaml_flattener`: a host-supplied YAML flattener (the WebAssembly package
//! ships the YAML parser as a module of its own and plugs it in this way).

mod sim;

use std::collections::BTreeMap;

use apolloconf_core::{ErrorCause, Event, Timing};
use sim::{Harness, Sim};

const DOC: &str = "server:\n  port: 8080\nlist:\n  - a\n  - b\nflag: yes\n";

fn start(flattener: Option<apolloconf_core::YamlFlattener>, content: &str) -> Harness {
    let mut sim = Sim::new("app", 1);
    sim.publish(0, "app.yaml", &[("content", content)]);
    let mut timing = Timing::default();
    timing.long_poll_initial_delay = core::time::Duration::from_millis(0);
    let mut b = Harness::config_direct(&sim)
        .namespaces(["application", "app.yaml"])
        .timing(timing);
    if let Some(f) = flattener {
        b = b.yaml_flattener(f);
    }
    let mut h = Harness::new(b.build(), sim);
    h.run_for(100);
    h
}

fn view(h: &Harness) -> BTreeMap<String, String> {
    h.client
        .namespace("app.yaml")
        .map(|ns| ns.properties().to_map())
        .unwrap_or_default()
}

fn yaml_errors(h: &Harness) -> Vec<String> {
    h.events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Error(e) => match &e.cause {
                ErrorCause::Parse(m) => Some(m.clone()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Flattens every document to `lines` = its number of lines; `!` fails.
fn counting(text: &str) -> Result<BTreeMap<String, String>, String> {
    if text.contains('!') {
        return Err(String::from("no exclamations"));
    }
    Ok(BTreeMap::from([(
        String::from("lines"),
        text.lines().count().to_string(),
    )]))
}

#[test]
fn a_custom_flattener_makes_the_view() {
    let mut h = start(Some(counting), DOC);
    assert_eq!(view(&h), BTreeMap::from([("lines".into(), "6".into())]));
    assert_eq!(h.client.get("lines"), Some("6"));
    assert!(
        h.client
            .namespace("app.yaml")
            .unwrap()
            .content()
            .unwrap()
            .starts_with("server:")
    );
    // Its error keeps the previous view and is reported as a YAML parse error.
    h.sim.publish(h.now, "app.yaml", &[("content", "a: !x")]);
    h.run_for(3_000);
    assert_eq!(h.client.get("lines"), Some("6"));
    assert_eq!(yaml_errors(&h), ["YAML: no exclamations"]);
}

#[test]
fn properties_namespaces_never_reach_the_flattener() {
    fn refuse(_: &str) -> Result<BTreeMap<String, String>, String> {
        Err(String::from("called"))
    }
    let mut sim = Sim::new("app", 1);
    sim.publish(0, "application", &[("k", "v")]);
    let cfg = Harness::config_direct(&sim).yaml_flattener(refuse).build();
    let mut h = Harness::new(cfg, sim);
    h.run_for(100);
    assert_eq!(h.client.get("k"), Some("v"));
    assert!(yaml_errors(&h).is_empty());
}

#[cfg(feature = "yaml")]
#[test]
fn the_builtin_flattener_plugged_in_gives_the_same_view() {
    fn plugged(text: &str) -> Result<BTreeMap<String, String>, String> {
        apolloconf_core::yaml::flatten(text).map_err(|e| e.to_string())
    }
    let builtin = start(None, DOC);
    let plugged_in = start(Some(plugged), DOC);
    assert_eq!(view(&builtin).get("list[1]").map(String::as_str), Some("b"));
    assert_eq!(view(&builtin), view(&plugged_in));
    // The same error text too.
    let bad = "a: [unclosed";
    assert_eq!(
        yaml_errors(&start(None, bad)),
        yaml_errors(&start(Some(plugged), bad))
    );
    assert_eq!(yaml_errors(&start(None, bad)).len(), 1);
}

#[cfg(not(feature = "yaml"))]
#[test]
fn without_the_feature_or_a_flattener_yaml_is_not_flattened() {
    let h = start(None, DOC);
    assert_eq!(view(&h), BTreeMap::from([("content".into(), DOC.into())]));
    assert!(yaml_errors(&h).is_empty());
}
