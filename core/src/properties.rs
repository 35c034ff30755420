//! Java `.properties` codec (docs/protocol.md#properties-codec).
//!
//! The reader follows `java.util.Properties.load`, the writers follow `Properties.store`:
//!
//! * [`load`] / [`load_latin1`] parse text (or ISO-8859-1 bytes, as the Java client reads its local
//!   cache file) into [`Values`] (sorted by key); later duplicate keys win.
//! * [`store_ascii`] produces the pure-ASCII form written by `store(OutputStream, comment)` (the
//!   local cache file, docs/protocol.md#cache-file).
//! * [`store_text`] produces the form written by `store(Writer, null)` without the date line (the
//!   `/configfiles` text body).
//! * [`java_date_utc`] renders `java.util.Date.toString()` in UTC for the cache file's date line.
//!
//! Java strings are UTF-16; a `\uXXXX` escape that decodes to an unpaired surrogate cannot be kept
//! in a Rust [`String`] and is replaced by U+FFFD.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;
use thiserror::Error;

use crate::values::{Values, ValuesBuilder};

/// Error reading properties text.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PropertiesError {
    /// A `\u` escape is not followed by exactly four hexadecimal digits (Java's
    /// "Malformed \uxxxx encoding."). `line` is the 1-based natural line where the logical line
    /// holding the escape starts.
    #[error("malformed \\uxxxx encoding in the logical line starting at line {line}")]
    MalformedUnicodeEscape {
        /// 1-based line number where the offending logical line starts.
        line: usize,
    },
    /// The keys and values exceed what one namespace can hold (4 GiB).
    #[error("the keys and values exceed 4 GiB")]
    TooLarge,
}

/// Blank characters as `Properties.load` understands them (space, tab, form feed).
const fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\x0c')
}

/// Parse text with `java.util.Properties.load` semantics. Later duplicate keys win.
///
/// # Errors
/// [`PropertiesError::MalformedUnicodeEscape`] when a `\u` escape is not followed by four hex
/// digits. A lone backslash at the very end of the input is dropped, as the JDK does.
pub fn load(text: &str) -> Result<Values, PropertiesError> {
    load_chars(text.chars())
}

/// Decode ISO-8859-1 bytes (each byte is one char U+0000..U+00FF) and [`load`] them: how the Java
/// client reads its cache file. The bytes are decoded as they are read, not copied first.
///
/// # Errors
/// Same as [`load`].
pub fn load_latin1(bytes: &[u8]) -> Result<Values, PropertiesError> {
    load_chars(bytes.iter().map(|&b| char::from(b)))
}

fn load_chars(chars: impl Iterator<Item = char>) -> Result<Values, PropertiesError> {
    let mut values = ValuesBuilder::new();
    let mut reader = LineReader {
        chars: chars.peekable(),
        line: 1,
    };
    let mut logical: Vec<char> = Vec::new();
    let (mut key, mut value) = (String::new(), String::new());
    while let Some(start_line) = reader.next_logical_line(&mut logical) {
        let (raw_key, raw_value) = split_key_value(&logical);
        unescape(raw_key, start_line, &mut key)?;
        unescape(raw_value, start_line, &mut value)?;
        values
            .push(&key, &value)
            .map_err(|_| PropertiesError::TooLarge)?;
    }
    Ok(values.finish())
}

/// Splits input into logical lines the way the JDK's `Properties.LineReader` does.
struct LineReader<I: Iterator<Item = char>> {
    /// Remaining input.
    chars: core::iter::Peekable<I>,
    /// 1-based number of the natural line the next char belongs to.
    line: usize,
}

impl<I: Iterator<Item = char>> LineReader<I> {
    /// Counts a consumed line terminator (`\r\n` counts once, at its `\n`).
    fn count_terminator(&mut self, c: char) {
        if c == '\n' || (c == '\r' && self.chars.peek() != Some(&'\n')) {
            self.line = self.line.saturating_add(1);
        }
    }

    /// Reads the next logical line (comments and blank lines skipped, continuations joined) into
    /// `out`; returns the 1-based line number where it starts, or `None` at end of input.
    ///
    /// This is the state machine of the JDK's `Properties.LineReader.readLine`, including its
    /// corner cases: a line that is empty after a continuation is dropped (and a comment may
    /// follow), and a continuation whose line terminator is the very last char of the input
    /// yields the line without its backslash, even when that leaves it empty.
    fn next_logical_line(&mut self, out: &mut Vec<char>) -> Option<usize> {
        out.clear();
        let mut skip_blanks = true;
        let mut appended_line = false;
        let mut preceding_backslash = false;
        let mut skip_lf = false;
        let mut start_line = None;
        loop {
            let Some(c) = self.chars.next() else {
                if out.is_empty() {
                    return None;
                }
                if preceding_backslash {
                    out.pop();
                }
                return Some(start_line.unwrap_or(self.line));
            };
            if skip_lf {
                skip_lf = false;
                if c == '\n' {
                    self.count_terminator(c);
                    continue;
                }
            }
            if skip_blanks {
                if is_blank(c) {
                    continue;
                }
                if !appended_line && (c == '\n' || c == '\r') {
                    self.count_terminator(c);
                    continue;
                }
                skip_blanks = false;
                appended_line = false;
            }
            if out.is_empty() && (c == '#' || c == '!') {
                // A comment runs to the end of its natural line, even if that ends in `\`.
                while let Some(d) = self.chars.next() {
                    if d == '\n' || d == '\r' {
                        self.count_terminator(d);
                        break;
                    }
                }
                skip_blanks = true;
                continue;
            }
            if c != '\n' && c != '\r' {
                if start_line.is_none() {
                    start_line = Some(self.line);
                }
                out.push(c);
                preceding_backslash = c == '\\' && !preceding_backslash;
                continue;
            }
            let line_of_terminator = self.line;
            self.count_terminator(c);
            if out.is_empty() {
                skip_blanks = true;
                continue;
            }
            if self.chars.peek().is_none() {
                if preceding_backslash {
                    out.pop();
                }
                return Some(start_line.unwrap_or(line_of_terminator));
            }
            if !preceding_backslash {
                return Some(start_line.unwrap_or(line_of_terminator));
            }
            // Odd number of backslashes: drop the last one, join the next line without its
            // leading blanks.
            out.pop();
            skip_blanks = true;
            appended_line = true;
            preceding_backslash = false;
            skip_lf = c == '\r';
        }
    }
}

/// Splits a logical line into its raw (still escaped) key and value parts.
fn split_key_value(line: &[char]) -> (&[char], &[char]) {
    let mut key_len = line.len();
    let mut value_start = line.len();
    let mut has_separator = false;
    let mut preceding_backslash = false;
    for (i, &c) in line.iter().enumerate() {
        if !preceding_backslash && (c == '=' || c == ':') {
            key_len = i;
            value_start = i.saturating_add(1);
            has_separator = true;
            break;
        }
        if !preceding_backslash && is_blank(c) {
            key_len = i;
            value_start = i.saturating_add(1);
            break;
        }
        preceding_backslash = c == '\\' && !preceding_backslash;
    }
    let rest = line.get(value_start..).unwrap_or(&[]);
    let mut skip = 0usize;
    for &c in rest {
        if is_blank(c) {
            skip = skip.saturating_add(1);
        } else if !has_separator && (c == '=' || c == ':') {
            has_separator = true;
            skip = skip.saturating_add(1);
        } else {
            break;
        }
    }
    let key = line.get(..key_len).unwrap_or(&[]);
    let value = rest.get(skip..).unwrap_or(&[]);
    (key, value)
}

/// Decodes `Properties` escapes (`\t \n \r \f`, `\uXXXX`, `\` + other char) into `out`
/// (cleared first).
fn unescape(raw: &[char], line: usize, out: &mut String) -> Result<(), PropertiesError> {
    out.clear();
    let mut units: Vec<u16> = Vec::with_capacity(raw.len());
    let mut buf = [0u16; 2];
    let mut iter = raw.iter().copied();
    while let Some(c) = iter.next() {
        let decoded = if c == '\\' {
            match iter.next() {
                // A lone trailing backslash cannot survive the line reader; drop it defensively.
                None => break,
                Some('t') => '\t',
                Some('n') => '\n',
                Some('r') => '\r',
                Some('f') => '\x0c',
                Some('u') => {
                    let mut value: u16 = 0;
                    for _ in 0..4 {
                        let digit = iter
                            .next()
                            .and_then(|d| d.to_digit(16))
                            .and_then(|d| u16::try_from(d).ok())
                            .ok_or(PropertiesError::MalformedUnicodeEscape { line })?;
                        value = (value << 4) | digit;
                    }
                    units.push(value);
                    continue;
                }
                Some(other) => other,
            }
        } else {
            c
        };
        units.extend_from_slice(decoded.encode_utf16(&mut buf));
    }
    out.extend(char::decode_utf16(units).map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER)));
    Ok(())
}

/// Appends `\uXXXX` (upper-case hex) for one UTF-16 unit.
fn push_unicode_escape(out: &mut String, unit: u16) {
    // Writing to a String cannot fail.
    let _ = write!(out, "\\u{unit:04X}");
}

/// Escapes a key or value like the JDK's `Properties.saveConvert`.
fn save_convert(out: &mut String, text: &str, escape_space: bool, escape_unicode: bool) {
    let mut buf = [0u16; 2];
    for (i, c) in text.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            ' ' if i == 0 || escape_space => out.push_str("\\ "),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\x0c' => out.push_str("\\f"),
            '=' | ':' | '#' | '!' => {
                out.push('\\');
                out.push(c);
            }
            _ if escape_unicode && !(' '..='~').contains(&c) => {
                for &unit in c.encode_utf16(&mut buf).iter() {
                    push_unicode_escape(out, unit);
                }
            }
            _ => out.push(c),
        }
    }
}

/// Writes one comment like the JDK's `Properties.writeComments`: `#` prefix, embedded line breaks
/// start new comment lines (with `#` added unless the next line already starts with `#`/`!`).
///
/// Deviation: the JDK escapes only chars above U+00FF and writes U+0080..U+00FF as raw Latin-1
/// bytes; to keep the output pure ASCII every char outside `0x20..=0x7E` (except line breaks) is
/// escaped here. Comments are ignored by readers, so this never changes the loaded data.
fn write_comment(out: &mut String, comment: &str) {
    out.push('#');
    let mut buf = [0u16; 2];
    let mut chars = comment.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\n' || c == '\r' {
            if c == '\r' && chars.peek() == Some(&'\n') {
                chars.next();
            }
            out.push('\n');
            match chars.peek() {
                Some('#' | '!') => {}
                _ => out.push('#'),
            }
        } else if !(' '..='~').contains(&c) {
            for &unit in c.encode_utf16(&mut buf).iter() {
                push_unicode_escape(out, unit);
            }
        } else {
            out.push(c);
        }
    }
    out.push('\n');
}

/// Writes `key=value` lines.
fn write_entries<'a>(
    out: &mut String,
    entries: impl IntoIterator<Item = (&'a str, &'a str)>,
    escape_unicode: bool,
) {
    for (key, value) in entries {
        save_convert(out, key, true, escape_unicode);
        out.push('=');
        save_convert(out, value, false, escape_unicode);
        out.push('\n');
    }
}

/// Write like `Properties.store(OutputStream, comment)`: output is pure ASCII (chars below 0x20
/// or above 0x7E as `\uXXXX` upper-case hex, one per UTF-16 unit, so non-BMP chars become
/// surrogate pairs), first the comment lines (`#` + text, each comment given; if None no comment line), then
/// `#` + date line, then `key=value` lines, `\n` line ends. Entries in the iterator's order.
///
/// Line breaks inside `comment` start new comment lines as in the JDK; the date line goes through
/// the same comment writer so it can never break the format.
pub fn store_ascii<'a>(
    entries: impl IntoIterator<Item = (&'a str, &'a str)>,
    comment: Option<&str>,
    date_line: &str,
) -> String {
    let mut out = String::new();
    if let Some(comment) = comment {
        write_comment(&mut out, comment);
    }
    write_comment(&mut out, date_line);
    write_entries(&mut out, entries, true);
    out
}

/// Write like `Properties.store(Writer, null)` minus the date line (the `/configfiles` text form):
/// same escaping rules but non-ASCII written raw.
pub fn store_text<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    write_entries(&mut out, entries, false);
    out
}

/// Format a Unix time in milliseconds as `java.util.Date.toString()` in UTC, e.g.
/// `Sat Nov 21 20:12:46 UTC 2026` (used for the cache file's date comment line).
pub fn java_date_utc(unix_ms: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = unix_ms / 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (hour, minute, second) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil-from-days (proleptic Gregorian) on unsigned values; days since 1970-01-01 fit easily.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    let weekday = DAYS
        .get(usize::try_from(days % 7).unwrap_or(0))
        .copied()
        .unwrap_or("Thu");
    let month_name = MONTHS
        .get(usize::try_from(month.saturating_sub(1)).unwrap_or(0))
        .copied()
        .unwrap_or("Jan");
    let mut out = String::new();
    let _ = write!(
        out,
        "{weekday} {month_name} {day:02} {hour:02}:{minute:02}:{second:02} UTC {year}"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn map(pairs: &[(&str, &str)]) -> Values {
        Values::try_from_pairs(pairs.iter().copied()).unwrap()
    }

    #[test]
    fn empty_and_blank_input() {
        assert_eq!(load(""), Ok(Values::new()));
        assert_eq!(load("\n\r\n  \t\x0c\n\r"), Ok(Values::new()));
    }

    #[test]
    fn separators_equals_colon_blank() {
        let got = load("a=1\nb:2\nc 3\nd\t4\ne = 5\nf : 6\ng   7\nh\x0c8\n").unwrap();
        assert_eq!(
            got,
            map(&[
                ("a", "1"),
                ("b", "2"),
                ("c", "3"),
                ("d", "4"),
                ("e", "5"),
                ("f", "6"),
                ("g", "7"),
                ("h", "8")
            ])
        );
    }

    #[test]
    fn only_one_separator_is_consumed() {
        let got = load("a==b\nc :=d\ne = :f\ng h=i\n").unwrap();
        assert_eq!(
            got,
            map(&[("a", "=b"), ("c", "=d"), ("e", ":f"), ("g", "h=i")])
        );
    }

    #[test]
    fn key_only_lines() {
        let got = load("alone\nwith_eq=\nwith_colon:\n  spaced   \n").unwrap();
        assert_eq!(
            got,
            map(&[
                ("alone", ""),
                ("with_eq", ""),
                ("with_colon", ""),
                ("spaced", "")
            ])
        );
    }

    #[test]
    fn value_keeps_trailing_blanks_and_leading_blanks_skipped() {
        let got = load("   key = value with spaces   \n").unwrap();
        assert_eq!(got, map(&[("key", "value with spaces   ")]));
    }

    #[test]
    fn comments_hash_and_bang() {
        let got = load("# comment\n! bang comment\n  # indented\na=1\nb=#not a comment\n").unwrap();
        assert_eq!(got, map(&[("a", "1"), ("b", "#not a comment")]));
    }

    #[test]
    fn comment_ending_with_backslash_does_not_continue() {
        let got = load("# comment \\\na=1\n").unwrap();
        assert_eq!(got, map(&[("a", "1")]));
    }

    #[test]
    fn continuation_lines() {
        let got = load("a=one \\\n    two \\\n\tthree\nb=x\n").unwrap();
        assert_eq!(got, map(&[("a", "one two three"), ("b", "x")]));
    }

    #[test]
    fn continuation_line_starting_with_hash_is_data() {
        let got = load("a=1\\\n  #2\n").unwrap();
        assert_eq!(got, map(&[("a", "1#2")]));
    }

    #[test]
    fn continuation_in_key() {
        let got = load("ke\\\n  y=v\n").unwrap();
        assert_eq!(got, map(&[("key", "v")]));
    }

    #[test]
    fn odd_and_even_trailing_backslashes() {
        // Two backslashes: an escaped backslash, no continuation.
        let got = load("a=x\\\\\nb=y\n").unwrap();
        assert_eq!(got, map(&[("a", "x\\"), ("b", "y")]));
        // Three: escaped backslash + continuation.
        let got = load("a=x\\\\\\\nb=y\n").unwrap();
        assert_eq!(got, map(&[("a", "x\\b=y")]));
        // Four: two escaped backslashes.
        let got = load("a=x\\\\\\\\\nb=y\n").unwrap();
        assert_eq!(got, map(&[("a", "x\\\\"), ("b", "y")]));
    }

    #[test]
    fn continuation_into_empty_line_ends_the_entry() {
        let got = load("a=1\\\n\nb=2").unwrap();
        assert_eq!(got, map(&[("a", "1"), ("b", "2")]));
    }

    #[test]
    fn trailing_backslash_at_end_of_input_is_dropped() {
        assert_eq!(load("a=1\\").unwrap(), map(&[("a", "1")]));
        assert_eq!(load("a=1\\\\\\").unwrap(), map(&[("a", "1\\")]));
    }

    #[test]
    fn jdk_line_reader_corner_cases() {
        // A line left empty by a continuation is dropped; a comment may follow it.
        assert_eq!(load("\\\n# c\nk=v\n").unwrap(), map(&[("k", "v")]));
        assert_eq!(load("\\\r\n").unwrap(), Values::new());
        // ...but a continuation whose terminator ends the input yields an empty entry.
        assert_eq!(load("\\\n").unwrap(), map(&[("", "")]));
        assert_eq!(load("a\\\n").unwrap(), map(&[("a", "")]));
        // Blank lines inside a continuation end it only when something was read.
        assert_eq!(
            load("a=1\\\n   \nb=2\n").unwrap(),
            map(&[("a", "1"), ("b", "2")])
        );
    }

    #[test]
    fn error_line_numbers_count_crlf_once() {
        assert_eq!(
            load("a=1\r\nb=2\r\n\r\nc=\\\r\n  \\u12\r\n"),
            Err(PropertiesError::MalformedUnicodeEscape { line: 4 })
        );
    }

    #[test]
    fn line_terminators_lf_cr_crlf() {
        let got = load("a=1\r\nb=2\rc=3\nd=4\\\r\n  5\r\n").unwrap();
        assert_eq!(got, map(&[("a", "1"), ("b", "2"), ("c", "3"), ("d", "45")]));
    }

    #[test]
    fn escapes() {
        let got = load("a=\\t\\n\\r\\f\\\\\\=\\:\\ \\#\\!\\q\n").unwrap();
        assert_eq!(got, map(&[("a", "\t\n\r\x0c\\=: #!q")]));
    }

    #[test]
    fn escaped_separators_in_keys() {
        let got = load("a\\=b=c\nd\\:e:f\ng\\ h i\n").unwrap();
        assert_eq!(got, map(&[("a=b", "c"), ("d:e", "f"), ("g h", "i")]));
    }

    #[test]
    fn backslash_before_separator_after_escaped_backslash() {
        // `\\` is an escaped backslash, so the following `=` is a real separator.
        let got = load("a\\\\=b\n").unwrap();
        assert_eq!(got, map(&[("a\\", "b")]));
    }

    #[test]
    fn unicode_escapes() {
        let got = load("k\\u00e9y=\\u4E2D\\u6587\nemoji=\\uD83D\\uDE00\n").unwrap();
        assert_eq!(got, map(&[("k\u{e9}y", "中文"), ("emoji", "😀")]));
    }

    #[test]
    fn lone_surrogate_becomes_replacement_char() {
        let got = load("a=\\uD83Dx\n").unwrap();
        assert_eq!(got, map(&[("a", "\u{FFFD}x")]));
    }

    #[test]
    fn malformed_unicode_escape_is_an_error() {
        assert_eq!(
            load("a=1\nb=\\u12G4\n"),
            Err(PropertiesError::MalformedUnicodeEscape { line: 2 })
        );
        assert_eq!(
            load("a=\\u12"),
            Err(PropertiesError::MalformedUnicodeEscape { line: 1 })
        );
        assert_eq!(
            load("\n\nbad\\u=1"),
            Err(PropertiesError::MalformedUnicodeEscape { line: 3 })
        );
        // A malformed escape inside a comment is ignored.
        assert_eq!(load("# \\uZZZZ\n"), Ok(Values::new()));
    }

    #[test]
    fn later_duplicates_win() {
        assert_eq!(load("a=1\na=2\n").unwrap(), map(&[("a", "2")]));
    }

    #[test]
    fn non_ascii_text_is_kept() {
        assert_eq!(load("名字=值\n").unwrap(), map(&[("名字", "值")]));
    }

    #[test]
    fn latin1_decoding() {
        let got = load_latin1(b"a=caf\xe9\nb=\\u4E2D\n").unwrap();
        assert_eq!(got, map(&[("a", "café"), ("b", "中")]));
    }

    #[test]
    fn store_ascii_exact_bytes() {
        let out = store_ascii(
            [("a b", "=x"), ("k", "中")],
            Some("Persisted by DefaultConfig"),
            "Sat Nov 21 20:12:46 UTC 2026",
        );
        assert_eq!(
            out,
            "#Persisted by DefaultConfig\n#Sat Nov 21 20:12:46 UTC 2026\na\\ b=\\=x\nk=\\u4E2D\n"
        );
    }

    #[test]
    fn store_ascii_without_comment() {
        let out = store_ascii([("k", "v")], None, "Thu Jan 01 00:00:00 UTC 1970");
        assert_eq!(out, "#Thu Jan 01 00:00:00 UTC 1970\nk=v\n");
    }

    #[test]
    fn store_ascii_escaping_rules() {
        let out = store_ascii(
            [
                (" lead", " lead and inner space "),
                ("c:#!", "a=b:c#d!e"),
                ("tab\t", "\t\n\r\x0c\\"),
                ("ctl", "\x01\x7f\u{e9}😀"),
            ],
            None,
            "d",
        );
        assert_eq!(
            out,
            "#d\n\
             \\ lead=\\ lead and inner space \n\
             c\\:\\#\\!=a\\=b\\:c\\#d\\!e\n\
             tab\\t=\\t\\n\\r\\f\\\\\n\
             ctl=\\u0001\\u007F\\u00E9\\uD83D\\uDE00\n"
        );
        assert!(out.is_ascii());
    }

    #[test]
    fn store_ascii_multi_line_comment() {
        let out = store_ascii([], Some("one\ntwo\r\n#three\r!four"), "d");
        assert_eq!(out, "#one\n#two\n#three\n!four\n#d\n");
        let out = store_ascii([], Some("caf\u{e9} 中"), "d");
        assert_eq!(out, "#caf\\u00E9 \\u4E2D\n#d\n");
    }

    #[test]
    fn store_text_keeps_non_ascii_raw() {
        let out = store_text([("k ey", " 中文 😀"), ("a", "=\\")]);
        assert_eq!(out, "k\\ ey=\\ 中文 😀\na=\\=\\\\\n");
        assert_eq!(store_text([]), "");
    }

    #[test]
    fn round_trip_store_ascii_load_latin1() {
        let entries = vec![
            ("plain", "value"),
            ("with space", "  leading and trailing  "),
            ("eq=colon:hash#bang!", "=:#!"),
            ("back\\slash", "\\ \\\\ \\u0041"),
            ("new\nline", "multi\nline\r\nvalue\x0c\t"),
            ("中文", "中文值"),
            ("emoji😀", "😀🎉"),
            (" ", " "),
            ("", ""),
            ("#notcomment", "!x"),
            ("ctl\x01", "\x00\x1f\x7f\u{80}\u{ff}"),
        ];
        let out = store_ascii(
            entries.iter().copied(),
            Some("Persisted by DefaultConfig"),
            "date",
        );
        assert!(out.is_ascii());
        let loaded = load_latin1(out.as_bytes()).unwrap();
        assert_eq!(loaded, map(&entries));
        // The text form round trips through `load` too.
        let text = store_text(entries.iter().copied());
        assert_eq!(load(&text).unwrap(), map(&entries));
    }

    #[test]
    fn java_date_known_values() {
        assert_eq!(java_date_utc(0), "Thu Jan 01 00:00:00 UTC 1970");
        assert_eq!(
            java_date_utc(1_795_292_966_000),
            "Sat Nov 21 20:29:26 UTC 2026"
        );
        assert_eq!(
            java_date_utc(1_795_291_966_999),
            "Sat Nov 21 20:12:46 UTC 2026"
        );
        // Leap days.
        assert_eq!(
            java_date_utc(951_782_400_000),
            "Tue Feb 29 00:00:00 UTC 2000"
        );
        assert_eq!(
            java_date_utc(1_709_164_800_000),
            "Thu Feb 29 00:00:00 UTC 2024"
        );
        assert_eq!(
            java_date_utc(1_709_251_199_000),
            "Thu Feb 29 23:59:59 UTC 2024"
        );
        assert_eq!(
            java_date_utc(4_107_542_400_000),
            "Mon Mar 01 00:00:00 UTC 2100"
        );
        assert_eq!(
            java_date_utc(1_735_689_599_000),
            "Tue Dec 31 23:59:59 UTC 2024"
        );
        // Extreme input must not panic.
        let _ = java_date_utc(u64::MAX);
    }

    /// Deterministic xorshift64 generator for the fuzz loops.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }
    }

    #[test]
    fn fuzz_load_never_panics() {
        const ALPHABET: &[u8] = b"ab =:#!\\\\\\u0F9\n\r\t \x0c\xe9\xff";
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        for round in 0..4000 {
            let len = usize::try_from(rng.next() % 48).unwrap();
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    let r = rng.next();
                    if round % 2 == 0 {
                        ALPHABET[usize::try_from(r % ALPHABET.len() as u64).unwrap()]
                    } else {
                        (r & 0xff) as u8
                    }
                })
                .collect();
            let _ = load_latin1(&bytes);
            if let Ok(text) = core::str::from_utf8(&bytes) {
                let _ = load(text);
            }
            // Whatever loads must survive a store/load round trip.
            if let Ok(parsed) = load_latin1(&bytes) {
                let out = store_ascii(parsed.iter(), Some("c"), "d");
                assert_eq!(load_latin1(out.as_bytes()).unwrap(), parsed, "{bytes:?}");
            }
        }
    }
}
