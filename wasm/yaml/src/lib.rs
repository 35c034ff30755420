//! The YAML flattening of `apolloconf-core` ([`apolloconf_core::yaml::flatten`], the Java
//! client's rules) as a WebAssembly module of its own.
//!
//! The engine (`apolloconf-wasm`) is built without the core's `yaml` feature: the YAML
//! parser is about 40 % of a build with it. The `apolloconf` npm package loads this module
//! only when a YAML namespace is configured or watched, and hands its [`flatten`] to the
//! engine, whose core calls it for every YAML text it installs. The code that flattens is
//! the core's own, so YAML namespaces come out the same on every host.

use std::fmt::Write;

use wasm_bindgen::prelude::*;

/// Flatten YAML text. The answer is one string (what the engine's `yaml::decode` reads):
/// `E` and the error's text, or `O` and every property, in key order, as
/// `{key length}:{key}{value length}:{value}` with lengths in UTF-8 bytes.
#[wasm_bindgen]
pub fn flatten(text: &str) -> String {
    match apolloconf_core::yaml::flatten(text) {
        Ok(map) => {
            let size = map
                .iter()
                .map(|(k, v)| k.len() + v.len() + 8)
                .sum::<usize>();
            let mut out = String::with_capacity(size + 1);
            out.push('O');
            for (k, v) in &map {
                let _ = write!(out, "{}:{k}{}:{v}", k.len(), v.len());
            }
            out
        }
        Err(e) => format!("E{e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::flatten;

    #[test]
    fn answers_in_the_engines_format() {
        assert_eq!(
            flatten("a: 1\nb: [x, \"é:1\"]\nc: yes\n"),
            "O1:a1:14:b[0]1:x4:b[1]4:é:11:c4:true"
        );
        assert_eq!(flatten(""), "O");
        assert_eq!(
            flatten("a: 1\na: 2\n"),
            format!(
                "E{}",
                apolloconf_core::yaml::flatten("a: 1\na: 2\n").unwrap_err()
            )
        );
    }
}
