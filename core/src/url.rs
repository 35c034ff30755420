//! URL building exactly as the Java client escapes (docs/protocol.md#url-building).

use alloc::string::String;

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn push_pct(out: &mut String, b: u8) {
    out.push('%');
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 0x0F)]));
}

/// Escape one path segment like Guava's `urlPathSegmentEscaper`: unreserved `-._~`,
/// sub-delims `!$'()*,;&=`, `@`, `:` and `+` stay literal; everything else (space
/// included, as `%20`) becomes `%XX` of its UTF-8 bytes.
pub fn escape_path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        let keep = b.is_ascii_alphanumeric() || b"-._~!$'()*,;&=@:+".contains(&b);
        if keep {
            out.push(char::from(b));
        } else {
            push_pct(&mut out, b);
        }
    }
    out
}

/// Escape a query name or value like Guava's `urlFormParameterEscaper`: only
/// `A-Za-z0-9-_.*` stay literal, a space becomes `+`, everything else `%XX`
/// (so a `+` in a release key goes out as `%2B`).
pub fn escape_query_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-_.*".contains(&b) {
            out.push(char::from(b));
        } else if b == b' ' {
            out.push('+');
        } else {
            push_pct(&mut out, b);
        }
    }
    out
}

/// Append `?k=v&k=v` (escaped) to `url` for the present parameters, in the given order.
pub(crate) fn push_query(url: &mut String, params: &[(&str, Option<&str>)]) {
    let mut first = true;
    for (k, v) in params {
        if let Some(v) = v {
            url.push(if first { '?' } else { '&' });
            first = false;
            url.push_str(&escape_query_value(k));
            url.push('=');
            url.push_str(&escape_query_value(v));
        }
    }
}

/// The raw path and query of an absolute URL as it goes on the wire (what access-key
/// signatures cover): everything from the first `/` after `scheme://host[:port]`.
pub fn path_and_query(url: &str) -> &str {
    let rest = match url.find("://") {
        Some(i) => url.get(i + 3..).unwrap_or(""),
        None => url,
    };
    match rest.find(['/', '?']) {
        Some(i) => rest.get(i..).unwrap_or("/"),
        None => "/",
    }
}

/// Whether `s` looks like an absolute `http://` or `https://` URL with a host.
pub(crate) fn is_http_url(s: &str) -> bool {
    let rest = if let Some(r) = s.strip_prefix("http://") {
        r
    } else if let Some(r) = s.strip_prefix("https://") {
        r
    } else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    !host.is_empty()
        && !host.starts_with(':')
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:[]@%".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segment_matches_guava() {
        // RemoteConfigRepositoryTest: `someCluster+ &.-_someSign` -> `someCluster+%20&.-_someSign`
        assert_eq!(
            escape_path_segment("someCluster+ &.-_someSign"),
            "someCluster+%20&.-_someSign"
        );
        assert_eq!(escape_path_segment("a/b?c#d"), "a%2Fb%3Fc%23d");
        assert_eq!(escape_path_segment("中"), "%E4%B8%AD");
    }

    #[test]
    fn query_value_matches_guava() {
        // RemoteConfigLongPollServiceTest: query `someCluster%2B+%26.-_someSign`
        assert_eq!(
            escape_query_value("someCluster+ &.-_someSign"),
            "someCluster%2B+%26.-_someSign"
        );
        assert_eq!(escape_query_value("k1+k2"), "k1%2Bk2");
        assert_eq!(escape_query_value("*a~"), "*a%7E");
    }

    #[test]
    fn path_and_query_of_urls() {
        assert_eq!(
            path_and_query("http://h:8080/configs/a?x=1"),
            "/configs/a?x=1"
        );
        assert_eq!(
            path_and_query("https://h/apollo/configs/a"),
            "/apollo/configs/a"
        );
        assert_eq!(path_and_query("http://h"), "/");
        assert_eq!(path_and_query("http://h?x"), "?x");
    }

    #[test]
    fn http_url_validation() {
        assert!(is_http_url("http://127.0.0.1:8080"));
        assert!(is_http_url("https://apollo.example.com/prefix/"));
        assert!(!is_http_url("ftp://x"));
        assert!(!is_http_url("http://"));
        assert!(!is_http_url("http://bad host"));
        assert!(!is_http_url("127.0.0.1:8080"));
    }
}
