//! Access-key signing (docs/protocol.md#signing).

use alloc::format;
use alloc::string::String;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

/// Base64 of HMAC-SHA1(secret, `timestamp\npath_with_query`), the value after
/// `Apollo {appId}:` in the `Authorization` header.
pub fn signature(timestamp_ms: u64, path_with_query: &str, secret: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret.as_bytes()) else {
        // HMAC accepts keys of any length; this branch cannot be taken.
        return String::new();
    };
    mac.update(format!("{timestamp_ms}\n{path_with_query}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The `Authorization` header value for `app_id`.
pub fn authorization(
    app_id: &str,
    timestamp_ms: u64,
    path_with_query: &str,
    secret: &str,
) -> String {
    format!(
        "Apollo {app_id}:{}",
        signature(timestamp_ms, path_with_query, secret)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_test_vector() {
        // apollo-core SignatureTest (docs/protocol.md#signing).
        assert_eq!(
            signature(
                1576478257344,
                "/configs/100004458/default/application?ip=10.0.0.1",
                "df23df3f59884980844ff3dada30fa97"
            ),
            "EoKyziXvKqzHgwx+ijDJwgVTDgE="
        );
    }

    #[test]
    fn header_format() {
        let h = authorization("app", 1, "/x", "s");
        assert!(h.starts_with("Apollo app:"));
        assert!(h.ends_with('='));
    }
}
