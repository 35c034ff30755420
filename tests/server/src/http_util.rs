//! Small HTTP helpers: percent/form decoding, response building, error bodies.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Response, StatusCode};

use crate::json::Obj;
use crate::state::{iso_time, now_ms};

/// Response type of every handler.
pub type Resp = Response<Full<Bytes>>;

/// `application/json;charset=UTF-8`, as the real server sends it.
pub const JSON: &str = "application/json;charset=UTF-8";
/// `text/plain;charset=UTF-8`.
pub const TEXT: &str = "text/plain;charset=UTF-8";

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

fn decode(s: &str, plus_is_space: bool) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let h = *bytes.get(i + 1)?;
                let l = *bytes.get(i + 2)?;
                out.push(hex(h)? * 16 + hex(l)?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Decodes a path segment (`%XX`; `+` stays `+`). `None` on bad encoding or bad UTF-8.
pub fn path_decode(s: &str) -> Option<String> {
    decode(s, false)
}

/// Parses a raw query string as a servlet container does (`+` is a space).
/// `None` on bad encoding.
pub fn parse_query(q: Option<&str>) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let Some(q) = q else { return Some(out) };
    for part in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        out.push((decode(k, true)?, decode(v, true)?));
    }
    Some(out)
}

/// First value of a query parameter.
pub fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Builds a response with an optional content type.
pub fn reply(status: u16, content_type: Option<&str>, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Some(ct) = content_type {
        if let Ok(v) = ct.parse() {
            r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
        }
    }
    r
}

/// 200 with a JSON body.
pub fn json(body: String) -> Resp {
    reply(200, Some(JSON), body)
}

fn reason(status: u16) -> &'static str {
    StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error")
}

/// An error answered through `response.sendError` and Spring Boot's `/error` page.
pub fn spring_error(status: u16, message: &str, path: &str) -> Resp {
    let mut s = String::new();
    let mut o = Obj::new(&mut s);
    o.str("timestamp", &iso_time(now_ms()))
        .num("status", i64::from(status))
        .str("error", reason(status))
        .str("message", message)
        .str("path", path);
    o.end();
    reply(status, Some(JSON), s)
}

/// An error raised as an exception and mapped by Apollo's `GlobalDefaultExceptionHandler`.
pub fn exception_error(status: u16, message: &str, exception: &str) -> Resp {
    let mut s = String::new();
    let mut o = Obj::new(&mut s);
    o.num("status", i64::from(status))
        .str("message", message)
        .str("timestamp", &iso_time(now_ms()))
        .str("exception", exception);
    o.end();
    reply(status, Some(JSON), s)
}

/// Apollo's `BadRequestException` as a 400.
pub fn bad_request(message: &str) -> Resp {
    exception_error(
        400,
        message,
        "com.ctrip.framework.apollo.common.exception.BadRequestException",
    )
}

/// Content type of a static file by extension.
pub fn static_content_type(path: &str) -> &'static str {
    let ext = path.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "html" | "htm" => "text/html;charset=UTF-8",
        "js" | "mjs" => "text/javascript;charset=UTF-8",
        "wasm" => "application/wasm",
        "json" | "map" => "application/json;charset=UTF-8",
        "css" => "text/css;charset=UTF-8",
        "txt" => "text/plain;charset=UTF-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        assert_eq!(path_decode("a%20b+c").as_deref(), Some("a b+c"));
        assert_eq!(path_decode("a%2"), None);
        assert_eq!(path_decode("%ff"), None);
        let q = parse_query(Some("releaseKey=a%2Bb+c&x&y=")).expect("valid");
        assert_eq!(param(&q, "releaseKey"), Some("a+b c"));
        assert_eq!(param(&q, "x"), Some(""));
        assert!(parse_query(Some("a=%zz")).is_none());
    }
}
