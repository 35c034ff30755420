//! YAML flattening through the YAML module.
//!
//! The engine is built without the core's `yaml` feature (the YAML parser is most of a
//! YAML build's size). The core calls [`flatten`] instead (`ConfigBuilder::yaml_flattener`),
//! which calls the function given to [`set_yaml_flattener`]: the `flatten` export of the
//! YAML module (`wasm/yaml/`, the core's own `yaml::flatten`), so every host flattens YAML
//! with the same code. The wrapper loads that module before a YAML namespace's values can
//! reach the engine.
//!
//! The YAML module answers with one string: `E` and the error's text, or `O` and every
//! property as `{key length}:{key}{value length}:{value}` (lengths in UTF-8 bytes).

use std::cell::RefCell;
use std::collections::BTreeMap;

use apolloconf_core::namespace::Format;
use js_sys::Function;
use wasm_bindgen::prelude::*;

thread_local! {
    static FLATTENER: RefCell<Option<Function>> = const { RefCell::new(None) };
}

/// Set the YAML module's `flatten` (text → its answer, see the module docs). One for the
/// whole engine: every client of this instance shares it.
#[wasm_bindgen(js_name = setYamlFlattener)]
pub fn set_yaml_flattener(flatten: Function) {
    FLATTENER.with(|slot| {
        if let Ok(mut slot) = slot.try_borrow_mut() {
            *slot = Some(flatten);
        }
    });
}

/// Whether the namespace is YAML (`.yaml` / `.yml`), by the core's rule.
pub fn is_yaml(namespace: &str) -> bool {
    Format::of(namespace).is_yaml()
}

/// The core's YAML hook. An error keeps the namespace's previous properties and is
/// reported (`YAML: ...`), as a syntax error is.
pub fn flatten(text: &str) -> Result<BTreeMap<String, String>, String> {
    let f = FLATTENER.with(|slot| slot.try_borrow().ok().and_then(|f| f.clone()));
    let Some(f) = f else {
        return Err(String::from("the YAML module is not loaded"));
    };
    let answer = f
        .call1(&JsValue::UNDEFINED, &JsValue::from_str(text))
        .map_err(|_| String::from("the YAML module failed"))?;
    let Some(answer) = answer.as_string() else {
        return Err(String::from("the YAML module gave no answer"));
    };
    decode(&answer)
}

fn decode(answer: &str) -> Result<BTreeMap<String, String>, String> {
    if let Some(message) = answer.strip_prefix('E') {
        return Err(message.to_string());
    }
    let bad = || String::from("the YAML module gave a malformed answer");
    let mut rest = answer.strip_prefix('O').ok_or_else(bad)?;
    let take = |rest: &mut &str| -> Option<String> {
        let (len, tail) = rest.split_once(':')?;
        let len: usize = len.parse().ok()?;
        let (item, tail) = (tail.get(..len)?, tail.get(len..)?);
        *rest = tail;
        Some(item.to_string())
    };
    let mut out = BTreeMap::new();
    while !rest.is_empty() {
        let key = take(&mut rest).ok_or_else(bad)?;
        let value = take(&mut rest).ok_or_else(bad)?;
        out.insert(key, value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn decodes_the_yaml_modules_answers() {
        let m = decode("O3:a.b1:15:k[0]:0:").unwrap();
        assert_eq!(m.get("a.b").map(String::as_str), Some("1"));
        assert_eq!(m.get("k[0]:").map(String::as_str), Some(""));
        assert_eq!(m.len(), 2);
        let m = decode("O2:é3:x:y").unwrap();
        assert_eq!(m.get("é").map(String::as_str), Some("x:y"));
        assert!(decode("O").unwrap().is_empty());
        assert_eq!(decode("Eduplicate key").unwrap_err(), "duplicate key");
        assert!(decode("O3:ab").is_err());
        assert!(decode("O2:é").is_err());
        assert!(decode("X").is_err());
    }
}
