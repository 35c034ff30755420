//! Small helpers: `${var}` expansion, query decoding.

use std::collections::HashMap;

use serde_json::Value;

/// Replaces every `${name}` in every string of `v` (keys included).
pub fn expand(v: &Value, vars: &HashMap<String, String>) -> Result<Value, String> {
    Ok(match v {
        Value::String(s) => Value::String(expand_str(s, vars)?),
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| expand(x, vars))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(o) => {
            let mut m = serde_json::Map::new();
            for (k, x) in o {
                m.insert(expand_str(k, vars)?, expand(x, vars)?);
            }
            Value::Object(m)
        }
        other => other.clone(),
    })
}

pub fn expand_str(s: &str, vars: &HashMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let tail = &rest[i + 2..];
        let j = tail
            .find('}')
            .ok_or_else(|| format!("unclosed ${{ in {s:?}"))?;
        let name = &tail[..j];
        let val = vars
            .get(name)
            .ok_or_else(|| format!("unknown variable ${{{name}}} in {s:?}"))?;
        out.push_str(val);
        rest = &tail[j + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Decodes a query component the way a servlet container does (`+` is a space).
pub fn form_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// The decoded parameters of a raw query string, in order.
pub fn query_params(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (form_decode(k), form_decode(v)),
            None => (form_decode(p), String::new()),
        })
        .collect()
}

/// Median and 99th percentile (nearest rank) of a sample, in the sample's unit.
pub fn median_p99(samples: &[f64]) -> (f64, f64) {
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return (0.0, 0.0);
    }
    let med = if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    let rank = ((v.len() as f64) * 0.99).ceil() as usize;
    (med, v[rank.clamp(1, v.len()) - 1])
}

/// Reads a cache file as the Java client writes it (ISO-8859-1).
pub fn read_latin1(path: &std::path::Path) -> std::io::Result<String> {
    Ok(std::fs::read(path)?.into_iter().map(char::from).collect())
}
