//! Binding properties into `serde` types.
//!
//! The flat keys of a namespace become a tree, and that tree is deserialized into the
//! user's type:
//!
//! - a dot separates levels: `db.pool.size=10` fills `db: { pool: { size: 10 } }`;
//! - `[i]` addresses a list element: `hosts[0]=a`, `hosts[1]=b`, `servers[0].port=80`
//!   (elements are taken in index order; gaps are skipped);
//! - every value is text and is converted to what the target field asks for: integers and
//!   floats through `FromStr` (surrounding blanks ignored), booleans case-insensitively
//!   from `true`/`false`, `char` from a one-character string, unit enum variants by name;
//! - a list field given as one value is split on commas (`hosts=a, b` → `["a", "b"]`);
//! - an `Option` field is `None` when the key is missing or its value is empty;
//! - key names are matched exactly (use `#[serde(rename_all = "kebab-case")]` or
//!   `#[serde(rename = "...")]` for other spellings); unknown keys are ignored unless the
//!   type says `#[serde(deny_unknown_fields)]`;
//! - when a key is both a value and a parent (`a=1` and `a.b=2`), the nested keys win;
//! - a key may have at most [`MAX_DEPTH`] levels (dot-separated parts and `[i]` indexes):
//!   a deeper one is a [`BindError`] naming it, whatever the target type, so that binding
//!   never recurses without bound (the flattened view of a YAML namespace stays within
//!   this, as the core caps YAML nesting at 256).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};

/// A value that did not fit the target type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindError {
    message: String,
}

impl BindError {
    pub(crate) fn new(message: impl Into<String>) -> BindError {
        BindError {
            message: message.into(),
        }
    }
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BindError {}

impl de::Error for BindError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        BindError {
            message: msg.to_string(),
        }
    }
}

#[derive(Debug, Clone)]
enum Node {
    Leaf(String),
    Map(BTreeMap<String, Node>),
    List(BTreeMap<usize, Node>),
}

enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// The most levels a key may have (see the module docs).
pub const MAX_DEPTH: usize = 256;

/// `a.b[0][1].c` → `a`, `b`, 0, 1, `c`. A bracket that is not a number stays part of the key.
fn segments(key: &str) -> Vec<Seg<'_>> {
    let mut out = Vec::new();
    for part in key.split('.') {
        let mut rest = part;
        let head_end = rest.find('[').unwrap_or(rest.len());
        let (head, mut tail) = rest.split_at(head_end);
        let mut indexes = Vec::new();
        let mut ok = true;
        while !tail.is_empty() {
            let Some(close) = tail.find(']') else {
                ok = false;
                break;
            };
            match tail.get(1..close).and_then(|n| n.parse::<usize>().ok()) {
                Some(i) if tail.starts_with('[') => indexes.push(i),
                _ => {
                    ok = false;
                    break;
                }
            }
            tail = tail.get(close + 1..).unwrap_or("");
        }
        if !ok {
            indexes.clear();
        } else {
            rest = head;
        }
        if !rest.is_empty() {
            out.push(Seg::Key(rest));
        }
        out.extend(indexes.into_iter().map(Seg::Index));
    }
    out
}

/// Put `value` at `segs` below `node` (a loop: the depth is bounded by the caller, but
/// nothing here recurses).
fn insert(mut node: &mut Node, segs: &[Seg<'_>], value: &str) {
    for seg in segs {
        node = match seg {
            Seg::Key(k) => {
                if !matches!(node, Node::Map(_)) {
                    *node = Node::Map(BTreeMap::new());
                }
                let Node::Map(m) = node else { return };
                m.entry((*k).to_string())
                    .or_insert_with(|| Node::Leaf(String::new()))
            }
            Seg::Index(i) => {
                if !matches!(node, Node::List(_)) {
                    *node = Node::List(BTreeMap::new());
                }
                let Node::List(l) = node else { return };
                l.entry(*i).or_insert_with(|| Node::Leaf(String::new()))
            }
        };
    }
    if !matches!(node, Node::Map(_) | Node::List(_)) {
        *node = Node::Leaf(value.to_string());
    }
}

/// At most the first 60 characters of a key, for messages.
fn shorten(key: &str) -> String {
    match key.char_indices().nth(60) {
        Some((at, _)) => format!("{}...", &key[..at]),
        None => key.to_string(),
    }
}

/// Deserialize `T` from flat `key=value` pairs (rules in the module docs).
///
/// # Errors
/// A [`BindError`] naming the key whose value did not fit, or a key with more than
/// [`MAX_DEPTH`] levels.
pub fn from_properties<'a, T, I>(pairs: I) -> Result<T, BindError>
where
    T: DeserializeOwned,
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut root = Node::Map(BTreeMap::new());
    for (k, v) in pairs {
        let segs = segments(k);
        if segs.len() > MAX_DEPTH {
            return Err(BindError::new(format!(
                "key {:?} has {} levels; at most {MAX_DEPTH} can be bound",
                shorten(k),
                segs.len()
            )));
        }
        if !segs.is_empty() {
            insert(&mut root, &segs, v);
        }
    }
    T::deserialize(NodeDe {
        node: root,
        path: String::new(),
    })
}

struct NodeDe {
    node: Node,
    path: String,
}

impl NodeDe {
    fn at(&self) -> &str {
        if self.path.is_empty() {
            "(root)"
        } else {
            &self.path
        }
    }
    fn leaf(&self, want: &str) -> Result<&str, BindError> {
        match &self.node {
            Node::Leaf(s) => Ok(s.as_str()),
            _ => Err(BindError::new(format!(
                "{}: expected {want}, found nested keys",
                self.at()
            ))),
        }
    }
    fn parse<T: std::str::FromStr>(&self, want: &str) -> Result<T, BindError> {
        let s = self.leaf(want)?;
        s.trim()
            .parse()
            .map_err(|_| BindError::new(format!("{}: {s:?} is not a valid {want}", self.at())))
    }
}

macro_rules! parse_num {
    ($($method:ident => $visit:ident : $t:ty),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BindError> {
            let v: $t = self.parse(stringify!($t))?;
            visitor.$visit(v)
        }
    )*};
}

struct MapIter {
    entries: std::collections::btree_map::IntoIter<String, Node>,
    pending: Option<(String, Node)>,
    path: String,
}

impl<'de> MapAccess<'de> for MapIter {
    type Error = BindError;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, BindError> {
        match self.entries.next() {
            None => Ok(None),
            Some((k, v)) => {
                let key = seed.deserialize(k.clone().into_deserializer())?;
                self.pending = Some((k, v));
                Ok(Some(key))
            }
        }
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, BindError> {
        let (k, node) = self
            .pending
            .take()
            .ok_or_else(|| BindError::new("value requested before key"))?;
        let path = if self.path.is_empty() {
            k
        } else {
            format!("{}.{k}", self.path)
        };
        seed.deserialize(NodeDe { node, path })
    }
}

struct SeqIter {
    items: std::vec::IntoIter<(String, Node)>,
}

impl<'de> SeqAccess<'de> for SeqIter {
    type Error = BindError;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, BindError> {
        match self.items.next() {
            None => Ok(None),
            Some((path, node)) => seed.deserialize(NodeDe { node, path }).map(Some),
        }
    }
}

impl<'de> de::Deserializer<'de> for NodeDe {
    type Error = BindError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BindError> {
        match self.node {
            Node::Leaf(s) => visitor.visit_string(s),
            Node::Map(_) => self.deserialize_map(visitor),
            Node::List(_) => self.deserialize_seq(visitor),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BindError> {
        let s = self.leaf("bool")?;
        match crate::snapshot::parse_bool(s) {
            Some(b) => visitor.visit_bool(b),
            None => Err(BindError::new(format!(
                "{}: {s:?} is not a valid bool",
                self.at()
            ))),
        }
    }

    parse_num! {
        deserialize_i8 => visit_i8: i8,
        deserialize_i16 => visit_i16: i16,
        deserialize_i32 => visit_i32: i32,
        deserialize_i64 => visit_i64: i64,
        deserialize_i128 => visit_i128: i128,
        deserialize_u8 => visit_u8: u8,
        deserialize_u16 => visit_u16: u16,
        deserialize_u32 => visit_u32: u32,
        deserialize_u64 => visit_u64: u64,
        deserialize_u128 => visit_u128: u128,
        deserialize_f32 => visit_f32: f32,
        deserialize_f64 => visit_f64: f64,
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BindError> {
        let s = self.leaf("char")?;
        let mut chars = s.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => visitor.visit_char(c),
            _ => Err(BindError::new(format!(
                "{}: {s:?} is not a single character",
                self.at()
            ))),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BindError> {
        self.deserialize_string(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BindError> {
        self.leaf("a string")?;
        match self.node {
            Node::Leaf(s) => visitor.visit_string(s),
            _ => Err(BindError::new("unreachable")),
        }
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BindError> {
        let s = self.leaf("bytes")?;
        visitor.visit_bytes(s.as_bytes())
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BindError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BindError> {
        match &self.node {
            Node::Leaf(s) if s.trim().is_empty() => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BindError> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, BindError> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, BindError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BindError> {
        let path = self.path;
        let items: Vec<(String, Node)> = match self.node {
            Node::List(l) => l
                .into_iter()
                .map(|(i, n)| (format!("{path}[{i}]"), n))
                .collect(),
            Node::Leaf(s) => s
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .enumerate()
                .map(|(i, p)| (format!("{path}[{i}]"), Node::Leaf(p.to_string())))
                .collect(),
            Node::Map(_) => {
                let at = if path.is_empty() {
                    "(root)".to_string()
                } else {
                    path
                };
                return Err(BindError::new(format!(
                    "{at}: expected a list, found nested keys"
                )));
            }
        };
        visitor.visit_seq(SeqIter {
            items: items.into_iter(),
        })
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, BindError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, BindError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BindError> {
        let entries = match self.node {
            Node::Map(m) => m,
            Node::Leaf(s) if s.trim().is_empty() => BTreeMap::new(),
            Node::List(l) => l.into_iter().map(|(i, n)| (i.to_string(), n)).collect(),
            Node::Leaf(s) => {
                let at = if self.path.is_empty() {
                    "(root)".to_string()
                } else {
                    self.path
                };
                return Err(BindError::new(format!(
                    "{at}: expected nested keys, found the value {s:?}"
                )));
            }
        };
        visitor.visit_map(MapIter {
            entries: entries.into_iter(),
            pending: None,
            path: self.path,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, BindError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, BindError> {
        match &self.node {
            Node::Leaf(s) => {
                let d: de::value::StringDeserializer<BindError> =
                    s.trim().to_string().into_deserializer();
                visitor.visit_enum(d)
            }
            _ => Err(BindError::new(format!(
                "{}: only unit enum variants (a name) can be bound",
                self.at()
            ))),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BindError> {
        self.deserialize_string(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BindError> {
        visitor.visit_unit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "kebab-case")]
    struct Pool {
        max_size: u32,
        timeout_ms: Option<u64>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Server {
        host: String,
        port: u16,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        Fast,
        Safe,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct App {
        name: String,
        debug: bool,
        ratio: f64,
        pool: Pool,
        servers: Vec<Server>,
        tags: Vec<String>,
        mode: Mode,
        missing: Option<String>,
        #[serde(default)]
        retries: u8,
    }

    #[test]
    fn binds_nested_lists_and_coerces() {
        let pairs = [
            ("name", "demo"),
            ("debug", "TRUE"),
            ("ratio", " 0.5"),
            ("pool.max-size", "10"),
            ("pool.timeout-ms", ""),
            ("servers[1].host", "b"),
            ("servers[1].port", "81"),
            ("servers[0].host", "a"),
            ("servers[0].port", "80"),
            ("tags", "x, y,,z"),
            ("mode", "safe"),
            ("unknown.key", "ignored"),
        ];
        let app: App = from_properties(pairs).unwrap();
        assert_eq!(
            app.pool,
            Pool {
                max_size: 10,
                timeout_ms: None
            }
        );
        assert_eq!(
            app.servers[0],
            Server {
                host: "a".into(),
                port: 80
            }
        );
        assert_eq!(app.servers[1].port, 81);
        assert_eq!(app.tags, ["x", "y", "z"]);
        assert_eq!(app.mode, Mode::Safe);
        assert!(app.debug);
        assert_eq!(app.retries, 0);
        assert_eq!(app.missing, None);
        let _ = Mode::Fast;
    }

    #[test]
    fn errors_name_the_key() {
        let e = from_properties::<Server, _>([("host", "a"), ("port", "eighty")]).unwrap_err();
        assert!(e.to_string().contains("port"), "{e}");
        let e = from_properties::<App, _>([("pool", "x")]).unwrap_err();
        assert!(e.to_string().contains("pool"), "{e}");
    }

    #[test]
    fn yaml_style_lists_of_lists() {
        #[derive(Deserialize)]
        struct M {
            m: Vec<Vec<i32>>,
        }
        let m: M = from_properties([("m[0][0]", "1"), ("m[0][1]", "2"), ("m[1][0]", "3")]).unwrap();
        assert_eq!(m.m, vec![vec![1, 2], vec![3]]);
    }
}
