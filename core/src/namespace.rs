//! Namespace names and formats (docs/protocol.md#names-and-formats).

use alloc::string::String;

/// The format of a namespace, taken from its name's suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// Key/value properties (no suffix, or `.properties`).
    Properties,
    /// `.yaml`: one `content` value, also flattened to dotted keys.
    Yaml,
    /// `.yml`: as `.yaml`.
    Yml,
    /// `.json`: one `content` value.
    Json,
    /// `.xml`: one `content` value.
    Xml,
    /// `.txt`: one `content` value.
    Txt,
}

impl Format {
    /// Detect the format the way the Java client does: the lower-cased name ends with
    /// `.` + format; anything else is properties.
    pub fn of(namespace: &str) -> Format {
        let lower = namespace.to_ascii_lowercase();
        for (suffix, f) in [
            (".yaml", Format::Yaml),
            (".yml", Format::Yml),
            (".json", Format::Json),
            (".xml", Format::Xml),
            (".txt", Format::Txt),
        ] {
            if lower.ends_with(suffix) {
                return f;
            }
        }
        Format::Properties
    }

    /// Whether values of this format are key/value properties (not one `content` text).
    pub fn is_properties(self) -> bool {
        self == Format::Properties
    }

    /// Whether the `content` of this format is YAML that gets flattened.
    pub fn is_yaml(self) -> bool {
        matches!(self, Format::Yaml | Format::Yml)
    }

    /// The suffix as written after the dot (`properties`, `yaml`, ...).
    pub fn extension(self) -> &'static str {
        match self {
            Format::Properties => "properties",
            Format::Yaml => "yaml",
            Format::Yml => "yml",
            Format::Json => "json",
            Format::Xml => "xml",
            Format::Txt => "txt",
        }
    }
}

/// The key holding the whole text of a non-properties namespace.
pub const CONTENT_KEY: &str = "content";

/// A name with a trailing `.properties` (any case) removed, as the server strips it.
pub fn strip_properties_suffix(name: &str) -> &str {
    let n = name.len();
    if n > 11 {
        if let Some(tail) = name.get(n - 11..) {
            if tail.eq_ignore_ascii_case(".properties") {
                return name.get(..n - 11).unwrap_or(name);
            }
        }
    }
    name
}

/// The key under which answered notification names are matched to watched namespaces:
/// `.properties` stripped, ASCII case folded (the server maps names case-insensitively).
pub(crate) fn match_key(name: &str) -> String {
    strip_properties_suffix(name).to_ascii_lowercase()
}

/// Whether `s` can be used inside a cache file name `{appId}+{cluster}+{ns}.properties`
/// without escaping the cache directory: non-empty, no path separators, no NUL or other
/// control characters, not `.`/`..`.
pub fn is_safe_file_component(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && !s
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control() || c == ':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(Format::of("application"), Format::Properties);
        assert_eq!(Format::of("a.properties"), Format::Properties);
        assert_eq!(Format::of("foo.YAML"), Format::Yaml);
        assert_eq!(Format::of("foo.yml"), Format::Yml);
        assert_eq!(Format::of("d.json"), Format::Json);
        assert_eq!(Format::of("d.xml"), Format::Xml);
        assert_eq!(Format::of("d.txt"), Format::Txt);
        assert_eq!(Format::of("FX.apollo"), Format::Properties);
    }

    #[test]
    fn suffix_and_keys() {
        assert_eq!(
            strip_properties_suffix("application.properties"),
            "application"
        );
        assert_eq!(
            strip_properties_suffix("APPLICATION.PROPERTIES"),
            "APPLICATION"
        );
        assert_eq!(strip_properties_suffix(".properties"), ".properties");
        assert_eq!(strip_properties_suffix("foo.yaml"), "foo.yaml");
        assert_eq!(match_key("FX.Apollo.properties"), "fx.apollo");
    }

    #[test]
    fn safe_components() {
        assert!(is_safe_file_component("application"));
        assert!(is_safe_file_component("a..b"));
        assert!(!is_safe_file_component("../x"));
        assert!(!is_safe_file_component("a/b"));
        assert!(!is_safe_file_component("a\\b"));
        assert!(!is_safe_file_component(".."));
        assert!(!is_safe_file_component("a\0"));
        assert!(!is_safe_file_component(""));
    }
}
