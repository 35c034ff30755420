//! Small HTTP helpers: percent/form decoding, response building, error bodies.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Response, StatusCode};

use crate::json::Obj;
use hyper::header::HeaderValue;

use crate::state::{gson_date, iso_local_date_time, java_date_string, now_ms, now_us};

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
    // Tomcat decodes as UTF-8 and replaces what is not.
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// Decodes a path segment (`%XX`; `+` stays `+`; bytes that are not UTF-8 become
/// U+FFFD). `None` on a malformed `%` escape.
pub fn path_decode(s: &str) -> Option<String> {
    decode(s, false)
}

/// Parses a raw query string as Tomcat does (`+` is a space, `%XX` as UTF-8). A
/// parameter whose name or value has a malformed `%` escape is dropped, and so is one
/// with an empty name.
pub fn parse_query(q: Option<&str>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Some(q) = q else { return out };
    for part in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        if let (Some(k), Some(v)) = (decode(k, true), decode(v, true)) {
            if !k.is_empty() {
                out.push((k, v));
            }
        }
    }
    out
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

/// The `/error` page of an error answered through `response.sendError`, kept on the
/// response (as an extension) so that it can be rendered as HTML for a client that asks
/// for HTML.
#[derive(Debug, Clone)]
pub struct ErrorPage {
    pub status: u16,
    pub message: Option<String>,
    pub time_ms: u64,
}

/// An error answered through `response.sendError(status[, message])` and rendered by
/// Spring Boot's `BasicErrorController` with Apollo's Gson: a `LinkedHashMap` of
/// `timestamp` (a `java.util.Date` in Apollo's Gson date format), `status`, `error`,
/// `message` (only when the real server passes one to `sendError`), `path`.
pub fn spring_error(status: u16, message: Option<&str>, path: &str) -> Resp {
    let time_ms = now_ms();
    let mut s = String::new();
    let mut o = Obj::new(&mut s);
    o.str("timestamp", &gson_date(time_ms))
        .num("status", i64::from(status))
        .str("error", reason(status))
        .opt_str("message", message)
        .str("path", path);
    o.end();
    let mut r = reply(status, Some(JSON), s);
    r.extensions_mut().insert(ErrorPage {
        status,
        message: message.map(str::to_string),
        time_ms,
    });
    r
}

/// Whether Spring's content negotiation picks `BasicErrorController#errorHtml`: the
/// most preferred media type of `Accept` (by quality, then specificity) is `text/html`,
/// as with the JDK's `HttpURLConnection` default
/// `text/html, image/gif, image/jpeg, *; q=.2, */*; q=.2`.
pub fn wants_html(accept: Option<&str>) -> bool {
    let Some(accept) = accept else { return false };
    let mut best: Option<(f32, u8, String)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        if media.is_empty() {
            continue;
        }
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if q <= 0.0 {
            continue;
        }
        let specific = match media.as_str() {
            "*" | "*/*" => 0,
            m if m.ends_with("/*") => 1,
            _ => 2,
        };
        if best
            .as_ref()
            .is_none_or(|(bq, bs, _)| q > *bq || (q == *bq && specific > *bs))
        {
            best = Some((q, specific, media));
        }
    }
    best.is_some_and(|(_, _, m)| m == "text/html")
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Spring Boot's "Whitelabel Error Page" for an [`ErrorPage`] (what a client that asks
/// for `text/html` gets instead of the JSON body).
pub fn whitelabel(page: &ErrorPage) -> Resp {
    let mut s = String::from(
        "<html><body><h1>Whitelabel Error Page</h1><p>This application has no explicit \
         mapping for /error, so you are seeing this as a fallback.</p><div id='created'>",
    );
    s.push_str(&java_date_string(page.time_ms));
    s.push_str("</div><div>There was an unexpected error (type=");
    s.push_str(&html_escape(reason(page.status)));
    s.push_str(&format!(", status={}).</div>", page.status));
    if let Some(m) = &page.message {
        s.push_str("<div>");
        s.push_str(&html_escape(m));
        s.push_str("</div>");
    }
    s.push_str("</body></html>");
    reply(page.status, Some("text/html;charset=UTF-8"), s)
}

/// An exception mapped by Apollo's `GlobalDefaultExceptionHandler`: a `HashMap` written
/// by Gson, so in that map's order `exception` (the class name), `message` (left out
/// when null), `status`, `timestamp` (`LocalDateTime` as ISO text).
pub fn exception_error(status: u16, message: Option<&str>, exception: &str) -> Resp {
    let mut s = String::new();
    let mut o = Obj::new(&mut s);
    o.str("exception", exception)
        .opt_str("message", message)
        .num("status", i64::from(status))
        .str("timestamp", &iso_local_date_time(now_us()));
    o.end();
    reply(status, Some(JSON), s)
}

/// Apollo's `BadRequestException` as a 400.
pub fn bad_request(message: &str) -> Resp {
    exception_error(
        400,
        Some(message),
        "com.ctrip.framework.apollo.common.exception.BadRequestException",
    )
}

/// `HttpRequestMethodNotSupportedException` (Spring 5), which Apollo maps to 400.
pub fn method_not_supported(method: &str) -> Resp {
    exception_error(
        400,
        Some(&format!("Request method '{method}' not supported")),
        "org.springframework.web.HttpRequestMethodNotSupportedException",
    )
}

/// A missing required `@RequestParam`: Spring's `MissingServletRequestParameterException`
/// falls to Apollo's `Throwable` handler, a 500.
pub fn missing_parameter(name: &str, java_type: &str) -> Resp {
    exception_error(
        500,
        Some(&format!(
            "Required request parameter '{name}' for method parameter type {java_type} is not present"
        )),
        "org.springframework.web.bind.MissingServletRequestParameterException",
    )
}

/// The page Tomcat's `ErrorReportValve` writes (Spring Boot turns its report and server
/// info off) when it rejects a request before the application sees it: a bad request
/// target, an encoded `/` in the path, a request head over `max-http-header-size`.
pub fn tomcat_bad_request() -> Resp {
    const PAGE: &str = "<!doctype html><html lang=\"en\"><head><title>HTTP Status 400 \u{2013} \
        Bad Request</title><style type=\"text/css\">body {font-family:Tahoma,Arial,sans-serif;} \
        h1, h2, h3, b {color:white;background-color:#525D76;} h1 {font-size:22px;} \
        h2 {font-size:16px;} h3 {font-size:14px;} p {font-size:12px;} a {color:black;} \
        .line {height:1px;background-color:#525D76;border:none;}</style></head><body>\
        <h1>HTTP Status 400 \u{2013} Bad Request</h1></body></html>";
    let mut r = reply(400, Some("text/html;charset=utf-8"), PAGE);
    let h = r.headers_mut();
    h.insert("content-language", HeaderValue::from_static("en"));
    h.insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// Tomcat's default `maxHeaderCount`.
const MAX_HEADER_COUNT: usize = 100;

/// Whether Tomcat (as Spring Boot configures it) rejects the request before Spring or
/// Apollo sees it, with [`tomcat_bad_request`]:
///
/// - the request head (request line and headers) is longer than `max_head` bytes
///   (Apollo sets `server.max-http-header-size=10240`), or has more than 100 headers;
/// - the path holds a character that is not allowed in a request target (controls,
///   non-ASCII, space, `"` `<` `>` `\` `^` `` ` `` `{` `|` `}`), a malformed `%` escape,
///   an encoded `/` or `\` (`%2F`, `%5C`) or NUL, or a `.`/`..` segment;
/// - the query holds a character RFC 3986 does not allow there, unencoded `[` `]` `{`
///   `}` `|` `^` `` ` `` `"` `<` `>` `\`, a space or non-ASCII included.
pub fn tomcat_rejects<B>(req: &hyper::Request<B>, max_head: usize) -> bool {
    let path = req.uri().path();
    let query = req.uri().query();
    let mut head = req.method().as_str().len() + 1 + path.len() + 1 + "HTTP/1.1\r\n".len() + 2;
    if let Some(q) = query {
        head += 1 + q.len();
    }
    for (k, v) in req.headers() {
        head += k.as_str().len() + 2 + v.len() + 2;
    }
    if head > max_head || req.headers().len() > MAX_HEADER_COUNT {
        return true;
    }
    let bad_in_target = |b: u8| !(0x21..=0x7e).contains(&b) || b"\"<>\\^`{|}".contains(&b);
    if path.bytes().any(bad_in_target) {
        return true;
    }
    let query_ok = |b: u8| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=:@/?".contains(&b);
    if query.is_some_and(|q| !q.bytes().all(query_ok)) {
        return true;
    }
    // Unencoded, `\` and NUL were refused above (and `/` splits), so finding one decoded
    // means it was encoded.
    path.split('/').any(|seg| match path_decode(seg) {
        None => true,
        Some(d) => d == "." || d == ".." || d.contains(['/', '\\', '\0']),
    })
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
        assert_eq!(path_decode("%ff").as_deref(), Some("\u{fffd}"));
        let q = parse_query(Some("releaseKey=a%2Bb+c&x&y=&bad=%zz&%zz=1&=v&ok=%C3%A9"));
        assert_eq!(param(&q, "releaseKey"), Some("a+b c"));
        assert_eq!(param(&q, "x"), Some(""));
        assert_eq!(param(&q, "bad"), None);
        assert_eq!(q.len(), 4, "{q:?}");
        assert_eq!(param(&q, "ok"), Some("é"));
    }

    #[test]
    fn tomcat_path_rules() {
        let rejects = |path: &str| {
            let req = hyper::Request::builder()
                .uri(path)
                .body(())
                .expect("request");
            tomcat_rejects(&req, 10_240)
        };
        for bad in [
            "/a/%2F",
            "/a/%2fb",
            "/a/%5C",
            "/a/%5c",
            "/a/%00",
            "/a/%zz",
            "/a/%2",
            "/a/%2e",
            "/a/%2E%2e/b",
            "/a/./b",
            "/a/../b",
        ] {
            assert!(rejects(bad), "{bad}");
        }
        for ok in [
            "/a/b",
            "/a/%2e%2e%2e",
            "/a/%C0%AF",
            "/a/.b",
            "/a/%20",
            "/a//b",
            "/",
        ] {
            assert!(!rejects(ok), "{ok}");
        }
    }
}
