//! A small JSON writer that produces the same bytes as Gson with its default settings
//! (docs/protocol.md#json-bodies): compact, HTML-safe escapes with lower-case hex, nulls omitted by
//! the callers, fields in the order they are written.

/// Appends `s` as a Gson-escaped JSON string literal (with the quotes) to `out`.
pub fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '=' | '\'' | '\u{2028}' | '\u{2029}' => push_unicode_escape(out, c),
            c if (c as u32) < 0x20 => push_unicode_escape(out, c),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn push_unicode_escape(out: &mut String, c: char) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let v = c as u32;
    out.push_str("\\u");
    for shift in [12u32, 8, 4, 0] {
        out.push(char::from(HEX[((v >> shift) & 0xf) as usize]));
    }
}

/// Builds one JSON object field by field, writing commas as needed.
pub struct Obj<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> Obj<'a> {
    /// Starts an object (`{`) in `out`.
    pub fn new(out: &'a mut String) -> Self {
        out.push('{');
        Obj { out, first: true }
    }

    fn key(&mut self, k: &str) -> &mut String {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        write_str(self.out, k);
        self.out.push(':');
        self.out
    }

    /// Writes a string field.
    pub fn str(&mut self, k: &str, v: &str) -> &mut Self {
        let out = self.key(k);
        write_str(out, v);
        self
    }

    /// Writes a string field when `v` is present (Gson omits nulls).
    pub fn opt_str(&mut self, k: &str, v: Option<&str>) -> &mut Self {
        if let Some(v) = v {
            self.str(k, v);
        }
        self
    }

    /// Writes an integer field.
    pub fn num(&mut self, k: &str, v: i64) -> &mut Self {
        let out = self.key(k);
        out.push_str(&v.to_string());
        self
    }

    /// Writes a field whose value is already-serialised JSON.
    pub fn raw(&mut self, k: &str, json: &str) -> &mut Self {
        let out = self.key(k);
        out.push_str(json);
        self
    }

    /// Writes a field holding a flat string-to-string object, in the given order.
    pub fn map<'m, I>(&mut self, k: &str, entries: I) -> &mut Self
    where
        I: IntoIterator<Item = (&'m str, &'m str)>,
    {
        let out = self.key(k);
        write_map(out, entries);
        self
    }

    /// Closes the object (`}`).
    pub fn end(self) {
        self.out.push('}');
    }
}

/// Writes a flat string-to-string object in the given order.
pub fn write_map<'m, I>(out: &mut String, entries: I)
where
    I: IntoIterator<Item = (&'m str, &'m str)>,
{
    let mut o = Obj::new(out);
    for (k, v) in entries {
        o.str(k, v);
    }
    o.end();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gson_escapes() {
        let mut s = String::new();
        write_str(&mut s, "a=b&c<d>'e\"f\\g\n\u{1}\u{2028}ü/");
        assert_eq!(
            s,
            "\"a\\u003db\\u0026c\\u003cd\\u003e\\u0027e\\\"f\\\\g\\n\\u0001\\u2028ü/\""
        );
    }
}
