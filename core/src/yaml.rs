//! YAML → properties flattening (docs/protocol.md#yaml-flattening).
//!
//! The Java client (`YamlParser`, a port of Spring's `YamlProcessor`) loads every document of the
//! stream with SnakeYAML's `SafeConstructor` (YAML 1.1 scalar resolution, duplicate keys
//! forbidden) and flattens each one into dotted keys. This module reproduces that on top of the
//! low-level event parser of `yaml-rust2`; scalar resolution is done here, with SnakeYAML's YAML 1.1
//! rules, because `yaml-rust2`'s own resolution follows the YAML 1.2 core schema.
//!
//! What a value becomes:
//!
//! * quoted, literal and folded scalars, `!!str` and `!` tagged scalars: the text as written;
//! * plain `~`, `null`, `Null`, `NULL` and empty scalars, `!!null`: the empty string;
//! * plain `yes/no/true/false/on/off` (lower, Capitalised or UPPER case): `true` / `false`;
//! * integers (decimal, `0` octal, `0x` hex, `0b` binary, base 60 `1:20`, `_` separators):
//!   decimal digits, arbitrary precision, as Java's `Integer`/`Long`/`BigInteger.toString`;
//! * floats: Java's `Double.toString` (`1.5e3` → `1500.0`, `1e-5` → `1.0E-5`, `.inf` →
//!   `Infinity`, `.nan` → `NaN`), using the shortest round-tripping digits (JDK 19+ behaviour);
//! * timestamps (`2001-12-14`, `2001-12-14t21:59:43.10-05:00`, ...): the original text. Java
//!   prints `java.util.Date.toString()` in the JVM's time zone, which cannot be meaningfully
//!   reproduced here.
//!
//! Java-specific failures are reported as errors, as the Java client fails the whole parse (and
//! keeps its previous properties) in those cases: global tags other than the YAML 1.1 standard
//! ones (`!!javax.script...`, local `!foo` tags), a `null` mapping key (Java's
//! `NullPointerException`), a non-string key in a mapping reached through a list (Java's
//! `ClassCastException`), values that do not parse as their explicit type (`!!int abc`), more
//! than 50 aliases to collections (SnakeYAML's `maxAliasesForCollections`) and collections nested
//! deeper than SnakeYAML's nesting limit.
//!
//! Merge keys (`<<: *base`) are applied as SnakeYAML does: explicit keys win over merged ones, and
//! among merged mappings the first one listed wins. Anchors are scoped to their document.
//!
//! Known differences from the Java client, all on rare input:
//!
//! * `!!binary` and `!!pairs` are rejected (Java would print a `byte[]`/`Object[]` identity string)
//!   and so are `!!omap` and `!!set` (Java accepts them).
//! * Alias expansion is bounded (at most 10,000 nodes more than the document holds, output at most
//!   1 MiB plus 16 bytes per input byte, expanded nesting at most 256): hostile input gets
//!   [`YamlError::TooLarge`] / [`YamlError::TooDeep`] where Java might still succeed.
//! * `yaml-rust2` parses YAML 1.2 syntax; a few exotic 1.1-only syntax details may be accepted or
//!   rejected differently from SnakeYAML.
//! * Floats follow JDK 19+ `Double.toString` (shortest digits, checked against JDK 25 on 200,000
//!   random doubles); JDK 8 to 18 print other digits for some values, e.g. `9.999999999999999E22`
//!   where JDK 19+ prints `1.0E23`.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use thiserror::Error;
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, ScanError, TScalarStyle};

/// Error flattening YAML text.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum YamlError {
    /// The text is not well-formed YAML.
    #[error("YAML syntax error at line {line}, column {col}: {message}")]
    Syntax {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        col: usize,
        /// Parser message.
        message: String,
    },
    /// A mapping holds the same key twice (SnakeYAML's `DuplicateKeyException`).
    #[error("duplicate key `{key}` at line {line}")]
    DuplicateKey {
        /// The key as written (resolved scalar text).
        key: String,
        /// 1-based line of the second occurrence.
        line: usize,
    },
    /// A tag the Java client's `SafeConstructor` rejects (or whose value cannot be flattened).
    #[error("unsupported YAML tag `{tag}`")]
    UnsupportedTag {
        /// The full tag (`tag:yaml.org,2002:` prefix for `!!` tags).
        tag: String,
    },
    /// A scalar that cannot be converted to its (explicit or resolved) type, e.g. `!!int abc`.
    #[error("invalid {kind} value `{value}` at line {line}")]
    InvalidValue {
        /// `int`, `float` or `timestamp`.
        kind: &'static str,
        /// The scalar text.
        value: String,
        /// 1-based line.
        line: usize,
    },
    /// A mapping key the Java flattening cannot handle: `null`, or a non-string key in a mapping
    /// nested in a list.
    #[error("unsupported mapping key `{key}` at line {line}")]
    UnsupportedKey {
        /// The key rendered as Java would.
        key: String,
        /// 1-based line.
        line: usize,
    },
    /// A `<<` merge key whose value is not a mapping or a list of mappings.
    #[error("invalid merge key value at line {line}")]
    InvalidMerge {
        /// 1-based line.
        line: usize,
    },
    /// An alias refers to an anchor that is not defined (in this document).
    #[error("undefined alias at line {line}")]
    UndefinedAlias {
        /// 1-based line.
        line: usize,
    },
    /// An alias refers to a collection that contains it (a recursive structure).
    #[error("recursive alias at line {line}")]
    RecursiveAlias {
        /// 1-based line.
        line: usize,
    },
    /// More than 50 aliases to collections in the stream (SnakeYAML's default
    /// `maxAliasesForCollections`).
    #[error("too many aliases to collections (more than {max})")]
    TooManyAliases {
        /// The limit.
        max: usize,
    },
    /// Collections nested too deeply.
    #[error("collections nested deeper than {max} levels")]
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// Alias expansion (or the flattened output) grew past the safety limits.
    #[error("YAML expands to too much data")]
    TooLarge,
}

/// SnakeYAML's default `maxAliasesForCollections`.
const MAX_COLLECTION_ALIASES: usize = 50;
/// Nested collections accepted in the source text (SnakeYAML's default limit is 50 and it
/// rejects the 52nd level; one spare level is kept rather than risk rejecting what Java takes).
const MAX_SOURCE_DEPTH: usize = 51;
/// Height limit once aliases are expanded (bounds recursion while flattening).
const MAX_EXPANDED_HEIGHT: usize = 256;
/// Extra nodes alias expansion may add on top of the nodes actually written in a document.
const ALIAS_EXPANSION_BUDGET: usize = 10_000;
/// Output bytes allowed on top of 16 bytes per input byte.
const OUTPUT_BASE_BUDGET: usize = 1 << 20;
/// Longest integer digit string converted from a non-decimal base (hex, octal, binary):
/// 256 hex digits are a 1,024-bit number. The conversion is quadratic in the digits, so
/// this bounds its cost per input byte (20,000-digit numbers took 58 ms each); a longer one
/// is an invalid value.
const MAX_RADIX_DIGITS: usize = 256;

/// Prefix of the YAML 1.1 standard (`!!`) tags.
const STD_PREFIX: &str = "tag:yaml.org,2002:";

/// A resolved scalar value.
#[derive(Debug, Clone, PartialEq)]
enum Scalar {
    /// `null`.
    Null,
    /// A string.
    Str(String),
    /// A boolean.
    Bool(bool),
    /// An integer, as canonical decimal text.
    Int(String),
    /// A float, already rendered like Java's `Double.toString`.
    Float(String),
    /// A timestamp, original text.
    Timestamp(String),
    /// The `<<` merge key.
    Merge,
}

impl Scalar {
    /// Java `toString()` of the constructed object (`null` for null).
    fn java_string(&self) -> &str {
        match self {
            Scalar::Null => "null",
            Scalar::Str(s) | Scalar::Int(s) | Scalar::Float(s) | Scalar::Timestamp(s) => s,
            Scalar::Bool(true) => "true",
            Scalar::Bool(false) => "false",
            Scalar::Merge => "<<",
        }
    }
}

/// A node of the composed document graph (aliases share nodes).
#[derive(Debug)]
enum NodeKind {
    /// A collection still being read (an alias to it would be recursive).
    Pending,
    /// A scalar.
    Scalar(Scalar),
    /// A sequence of node indices.
    Seq(Vec<usize>),
    /// A mapping, merge keys already applied: (key node, value node).
    Map(Vec<(usize, usize)>),
}

/// A node with bookkeeping.
#[derive(Debug)]
struct Node {
    /// Content.
    kind: NodeKind,
    /// 1-based line where the node starts.
    line: usize,
    /// Height with aliases expanded (a scalar is 1).
    height: usize,
    /// Node count with aliases expanded (saturating).
    size: usize,
}

/// A collection being read.
enum Frame {
    /// A sequence.
    Seq {
        /// Arena index reserved for it.
        idx: usize,
        /// Items so far.
        items: Vec<usize>,
    },
    /// A mapping.
    Map {
        /// Arena index reserved for it.
        idx: usize,
        /// Complete pairs so far.
        entries: Vec<(usize, usize)>,
        /// A key waiting for its value.
        key: Option<usize>,
    },
}

/// Flatten YAML text to dotted properties with the Java client's rules
/// (docs/protocol.md#yaml-flattening).
///
/// # Errors
/// See [`YamlError`]; any error means the Java client would also reject the text (or, for
/// [`YamlError::TooLarge`] / [`YamlError::TooDeep`], that the text is hostile).
pub fn flatten(text: &str) -> Result<BTreeMap<String, String>, YamlError> {
    let mut out = BTreeMap::new();
    let mut composer = Composer {
        arena: Vec::new(),
        anchors: BTreeMap::new(),
        stack: Vec::new(),
        root: None,
        collection_aliases: 0,
    };
    let mut budget = OUTPUT_BASE_BUDGET.saturating_add(text.len().saturating_mul(16));
    let mut parser = Parser::new_from_str(text);
    loop {
        let (event, mark) = parser.next_token().map_err(syntax_error)?;
        let line = mark.line();
        match event {
            Event::StreamEnd => break,
            Event::Nothing | Event::StreamStart => {}
            Event::DocumentStart => {
                composer.arena.clear();
                composer.anchors.clear();
                composer.stack.clear();
                composer.root = None;
            }
            Event::DocumentEnd => {
                if let Some(root) = composer.root.take() {
                    let arena = core::mem::take(&mut composer.arena);
                    let mut flattener = Flattener {
                        out: &mut out,
                        budget,
                        arena: &arena,
                    };
                    flattener.document(root)?;
                    budget = flattener.budget;
                }
            }
            Event::Alias(id) => composer.alias(id, line)?,
            Event::Scalar(value, style, anchor, tag) => {
                let scalar = resolve_scalar(value, style, tag.as_ref(), line)?;
                let idx = composer.push(NodeKind::Scalar(scalar), line, 1, 1);
                composer.anchor(anchor, idx);
                composer.attach(idx)?;
            }
            Event::SequenceStart(anchor, tag) => {
                check_collection_tag(tag.as_ref(), "seq")?;
                composer.open(anchor, line, false)?;
            }
            Event::MappingStart(anchor, tag) => {
                check_collection_tag(tag.as_ref(), "map")?;
                composer.open(anchor, line, true)?;
            }
            Event::SequenceEnd | Event::MappingEnd => composer.close()?,
        }
    }
    Ok(out)
}

/// Converts a parser error.
fn syntax_error(err: ScanError) -> YamlError {
    let mark: &Marker = err.marker();
    YamlError::Syntax {
        line: mark.line(),
        col: mark.col().saturating_add(1),
        message: err.info().to_string(),
    }
}

/// Accepts only tags SnakeYAML's `SafeConstructor` can build a flattenable collection from.
fn check_collection_tag(tag: Option<&Tag>, expected: &str) -> Result<(), YamlError> {
    let Some(tag) = tag else { return Ok(()) };
    let full = format!("{}{}", tag.handle, tag.suffix);
    if full == "!" || full.strip_prefix(STD_PREFIX) == Some(expected) {
        Ok(())
    } else {
        Err(YamlError::UnsupportedTag { tag: full })
    }
}

/// Builds the node graph of one document from parser events.
struct Composer {
    /// Nodes of the current document.
    arena: Vec<Node>,
    /// Anchor id → node.
    anchors: BTreeMap<usize, usize>,
    /// Open collections.
    stack: Vec<Frame>,
    /// The finished document root.
    root: Option<usize>,
    /// Aliases to collections seen in the stream.
    collection_aliases: usize,
}

impl Composer {
    /// Adds a node and returns its index.
    fn push(&mut self, kind: NodeKind, line: usize, height: usize, size: usize) -> usize {
        self.arena.push(Node {
            kind,
            line,
            height,
            size,
        });
        self.arena.len().saturating_sub(1)
    }

    /// Registers an anchor (0 means none).
    fn anchor(&mut self, anchor: usize, idx: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, idx);
        }
    }

    /// Starts a collection.
    fn open(&mut self, anchor: usize, line: usize, is_map: bool) -> Result<(), YamlError> {
        if self.stack.len() >= MAX_SOURCE_DEPTH {
            return Err(YamlError::TooDeep {
                max: MAX_SOURCE_DEPTH,
            });
        }
        let idx = self.push(NodeKind::Pending, line, 1, 1);
        self.anchor(anchor, idx);
        self.stack.push(if is_map {
            Frame::Map {
                idx,
                entries: Vec::new(),
                key: None,
            }
        } else {
            Frame::Seq {
                idx,
                items: Vec::new(),
            }
        });
        Ok(())
    }

    /// Handles an alias event.
    fn alias(&mut self, id: usize, line: usize) -> Result<(), YamlError> {
        let idx = *self
            .anchors
            .get(&id)
            .ok_or(YamlError::UndefinedAlias { line })?;
        match self.arena.get(idx).map(|n| &n.kind) {
            Some(NodeKind::Pending) | None => return Err(YamlError::RecursiveAlias { line }),
            Some(NodeKind::Seq(_) | NodeKind::Map(_)) => {
                self.collection_aliases = self.collection_aliases.saturating_add(1);
                if self.collection_aliases > MAX_COLLECTION_ALIASES {
                    return Err(YamlError::TooManyAliases {
                        max: MAX_COLLECTION_ALIASES,
                    });
                }
            }
            Some(NodeKind::Scalar(_)) => {}
        }
        self.attach(idx)
    }

    /// Hands a finished node to the enclosing collection (or makes it the root).
    fn attach(&mut self, idx: usize) -> Result<(), YamlError> {
        match self.stack.last_mut() {
            None => self.root = Some(idx),
            Some(Frame::Seq { items, .. }) => items.push(idx),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => *key = Some(idx),
                Some(k) => entries.push((k, idx)),
            },
        }
        Ok(())
    }

    /// Finishes the innermost collection.
    fn close(&mut self) -> Result<(), YamlError> {
        let Some(frame) = self.stack.pop() else {
            return Ok(());
        };
        let (idx, kind, children): (usize, NodeKind, Vec<usize>) = match frame {
            Frame::Seq { idx, items } => {
                let children = items.clone();
                (idx, NodeKind::Seq(items), children)
            }
            Frame::Map { idx, entries, key } => {
                let mut entries = entries;
                if let Some(k) = key {
                    // A key without value cannot come out of the parser; treat it as `k: null`.
                    let line = self.arena.get(k).map_or(0, |n| n.line);
                    let null = self.push(NodeKind::Scalar(Scalar::Null), line, 1, 1);
                    entries.push((k, null));
                }
                let entries = self.merge_mapping(entries)?;
                let children = entries.iter().flat_map(|&(k, v)| [k, v]).collect();
                (idx, NodeKind::Map(entries), children)
            }
        };
        let mut height = 0usize;
        let mut size = 1usize;
        for child in &children {
            if let Some(node) = self.arena.get(*child) {
                height = height.max(node.height);
                size = size.saturating_add(node.size);
            }
        }
        let height = height.saturating_add(1);
        if height > MAX_EXPANDED_HEIGHT {
            return Err(YamlError::TooDeep {
                max: MAX_EXPANDED_HEIGHT,
            });
        }
        if size > self.arena.len().saturating_add(ALIAS_EXPANSION_BUDGET) {
            return Err(YamlError::TooLarge);
        }
        if let Some(node) = self.arena.get_mut(idx) {
            node.kind = kind;
            node.height = height;
            node.size = size;
        }
        self.attach(idx)
    }

    /// The scalar of a node, if it is one.
    fn scalar(&self, idx: usize) -> Option<&Scalar> {
        match self.arena.get(idx).map(|n| &n.kind) {
            Some(NodeKind::Scalar(s)) => Some(s),
            _ => None,
        }
    }

    /// Identity of a key for duplicate detection (Java `equals` of the constructed objects).
    fn key_identity(&self, idx: usize, depth: usize) -> String {
        let Some(node) = self.arena.get(idx) else {
            return String::new();
        };
        if depth > MAX_EXPANDED_HEIGHT {
            return String::new();
        }
        let next = depth.saturating_add(1);
        match &node.kind {
            NodeKind::Pending => String::from("?"),
            NodeKind::Scalar(s) => {
                let tag = match s {
                    Scalar::Null => 'n',
                    Scalar::Str(_) => 's',
                    Scalar::Bool(_) => 'b',
                    Scalar::Int(_) => 'i',
                    Scalar::Float(_) => 'f',
                    Scalar::Timestamp(_) => 't',
                    Scalar::Merge => 'm',
                };
                format!("{tag}{}", s.java_string())
            }
            NodeKind::Seq(items) => {
                let parts: Vec<String> =
                    items.iter().map(|&i| self.key_identity(i, next)).collect();
                format!("[{}]", parts.join(","))
            }
            NodeKind::Map(entries) => {
                let parts: Vec<String> = entries
                    .iter()
                    .map(|&(k, v)| {
                        format!(
                            "{}={}",
                            self.key_identity(k, next),
                            self.key_identity(v, next)
                        )
                    })
                    .collect();
                format!("{{{}}}", parts.join(","))
            }
        }
    }

    /// Rejects duplicate explicit keys and applies `<<` merge keys (SnakeYAML `flattenMapping`).
    fn merge_mapping(
        &mut self,
        entries: Vec<(usize, usize)>,
    ) -> Result<Vec<(usize, usize)>, YamlError> {
        // Duplicate check on the explicit keys only.
        let mut seen: BTreeMap<String, ()> = BTreeMap::new();
        let mut has_merge = false;
        for &(k, _) in &entries {
            if self.scalar(k) == Some(&Scalar::Merge) {
                has_merge = true;
                continue;
            }
            if seen.insert(self.key_identity(k, 0), ()).is_some() {
                let node = self.arena.get(k);
                let key = match node.map(|n| &n.kind) {
                    Some(NodeKind::Scalar(s)) => s.java_string().to_string(),
                    _ => String::from("<complex key>"),
                };
                return Err(YamlError::DuplicateKey {
                    key,
                    line: node.map_or(0, |n| n.line),
                });
            }
        }
        if !has_merge {
            return Ok(entries);
        }
        let mut result: Vec<(usize, usize)> = Vec::new();
        let mut positions: BTreeMap<String, usize> = BTreeMap::new();
        self.merge_into(&entries, true, &mut result, &mut positions)?;
        Ok(result)
    }

    /// One step of SnakeYAML's `mergeNode`.
    fn merge_into(
        &self,
        entries: &[(usize, usize)],
        preferred: bool,
        result: &mut Vec<(usize, usize)>,
        positions: &mut BTreeMap<String, usize>,
    ) -> Result<(), YamlError> {
        for &(k, v) in entries {
            if self.scalar(k) == Some(&Scalar::Merge) {
                let line = self.arena.get(v).map_or(0, |n| n.line);
                match self.arena.get(v).map(|n| &n.kind) {
                    // Merged mappings are complete, their own merges already applied.
                    Some(NodeKind::Map(sub)) => self.merge_into(sub, false, result, positions)?,
                    Some(NodeKind::Seq(items)) => {
                        for &item in items {
                            match self.arena.get(item).map(|n| &n.kind) {
                                Some(NodeKind::Map(sub)) => {
                                    self.merge_into(sub, false, result, positions)?;
                                }
                                _ => return Err(YamlError::InvalidMerge { line }),
                            }
                        }
                    }
                    _ => return Err(YamlError::InvalidMerge { line }),
                }
                continue;
            }
            let id = self.key_identity(k, 0);
            match positions.get(&id) {
                None => {
                    positions.insert(id, result.len());
                    result.push((k, v));
                }
                Some(&pos) if preferred => {
                    if let Some(slot) = result.get_mut(pos) {
                        *slot = (k, v);
                    }
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// Turns a document graph into flattened properties.
struct Flattener<'a> {
    /// Destination.
    out: &'a mut BTreeMap<String, String>,
    /// Output bytes still allowed.
    budget: usize,
    /// Nodes of the current document.
    arena: &'a [Node],
}

/// Java's `Character.isWhitespace`.
const fn is_java_whitespace(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r' | '\u{1C}'..='\u{1F}' | ' ' | '\u{1680}'
            | '\u{2000}'..='\u{2006}'
            | '\u{2008}'..='\u{200A}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{205F}'
            | '\u{3000}'
    )
}

/// Apollo's `StringUtils.isBlank`: empty or only `Character.isWhitespace` chars.
fn is_blank_path(path: &str) -> bool {
    path.chars().all(is_java_whitespace)
}

/// Joins a parent path and a child key like `buildFlattenedMap`.
fn join_path(path: &str, key: &str) -> String {
    if is_blank_path(path) {
        key.to_string()
    } else if key.starts_with('[') {
        format!("{path}{key}")
    } else {
        format!("{path}.{key}")
    }
}

impl Flattener<'_> {
    /// Charges output bytes against the budget.
    fn charge(&mut self, bytes: usize) -> Result<(), YamlError> {
        self.budget = self.budget.checked_sub(bytes).ok_or(YamlError::TooLarge)?;
        Ok(())
    }

    /// Flattens one document (`asMap` + `buildFlattenedMap`).
    fn document(&mut self, root: usize) -> Result<(), YamlError> {
        let Some(node) = self.arena.get(root) else {
            return Ok(());
        };
        match &node.kind {
            NodeKind::Scalar(Scalar::Null) | NodeKind::Pending => Ok(()),
            NodeKind::Map(entries) => self.map_entries(entries, "", false, 0),
            _ => self.value(root, "document", false, 0),
        }
    }

    /// Java `toString()` of a node (for non-string keys).
    fn java_string(&mut self, idx: usize, depth: usize) -> Result<String, YamlError> {
        let Some(node) = self.arena.get(idx) else {
            return Ok(String::new());
        };
        if depth > MAX_EXPANDED_HEIGHT {
            return Err(YamlError::TooDeep {
                max: MAX_EXPANDED_HEIGHT,
            });
        }
        let next = depth.saturating_add(1);
        let text = match &node.kind {
            NodeKind::Pending => String::new(),
            NodeKind::Scalar(s) => s.java_string().to_string(),
            NodeKind::Seq(items) => {
                let mut parts = Vec::new();
                for &i in items {
                    parts.push(self.java_string(i, next)?);
                }
                format!("[{}]", parts.join(", "))
            }
            NodeKind::Map(entries) => {
                let mut parts = Vec::new();
                for &(k, v) in entries {
                    let k = self.java_string(k, next)?;
                    let v = self.java_string(v, next)?;
                    parts.push(format!("{k}={v}"));
                }
                format!("{{{}}}", parts.join(", "))
            }
        };
        self.charge(text.len())?;
        Ok(text)
    }

    /// Flattens the entries of a mapping under `path`. `strict` is set for mappings reached
    /// through a list: Java did not run `asMap` on those, so only string keys work there.
    fn map_entries(
        &mut self,
        entries: &[(usize, usize)],
        path: &str,
        strict: bool,
        depth: usize,
    ) -> Result<(), YamlError> {
        // Key conversion first (Java builds an intermediate LinkedHashMap: a converted key equal
        // to an earlier one replaces its value in place).
        let mut converted: Vec<(String, usize)> = Vec::with_capacity(entries.len());
        let mut positions: BTreeMap<String, usize> = BTreeMap::new();
        for &(k, v) in entries {
            let Some(key_node) = self.arena.get(k) else {
                continue;
            };
            let line = key_node.line;
            let key = match &key_node.kind {
                NodeKind::Scalar(Scalar::Str(s)) => s.clone(),
                NodeKind::Scalar(Scalar::Null) => {
                    return Err(YamlError::UnsupportedKey {
                        key: String::from("null"),
                        line,
                    });
                }
                _ => {
                    let text = self.java_string(k, depth)?;
                    if strict {
                        return Err(YamlError::UnsupportedKey { key: text, line });
                    }
                    format!("[{text}]")
                }
            };
            if strict {
                converted.push((key, v));
            } else if let Some(slot) = positions.get(&key).and_then(|&p| converted.get_mut(p)) {
                slot.1 = v;
            } else {
                positions.insert(key.clone(), converted.len());
                converted.push((key, v));
            }
        }
        for (key, v) in converted {
            let full = join_path(path, &key);
            self.value(v, &full, strict, depth)?;
        }
        Ok(())
    }

    /// Flattens one value under its full key.
    fn value(
        &mut self,
        idx: usize,
        key: &str,
        strict: bool,
        depth: usize,
    ) -> Result<(), YamlError> {
        let Some(node) = self.arena.get(idx) else {
            return Ok(());
        };
        if depth > MAX_EXPANDED_HEIGHT {
            return Err(YamlError::TooDeep {
                max: MAX_EXPANDED_HEIGHT,
            });
        }
        let next = depth.saturating_add(1);
        match &node.kind {
            NodeKind::Pending => Ok(()),
            NodeKind::Scalar(s) => {
                let text = match s {
                    Scalar::Null => "",
                    other => other.java_string(),
                };
                self.charge(key.len().saturating_add(text.len()))?;
                self.out.insert(key.to_string(), text.to_string());
                Ok(())
            }
            NodeKind::Map(entries) => self.map_entries(entries, key, strict, next),
            NodeKind::Seq(items) => {
                for (i, &item) in items.iter().enumerate() {
                    let full = join_path(key, &format!("[{i}]"));
                    self.charge(full.len())?;
                    // Elements are wrapped in a singleton map without `asMap`: strict from here.
                    self.value(item, &full, true, next)?;
                }
                Ok(())
            }
        }
    }
}

/// Resolves a scalar event to its value (SnakeYAML `Resolver` + `SafeConstructor`).
fn resolve_scalar(
    text: String,
    style: TScalarStyle,
    tag: Option<&Tag>,
    line: usize,
) -> Result<Scalar, YamlError> {
    if let Some(tag) = tag {
        let full = format!("{}{}", tag.handle, tag.suffix);
        if full == "!" {
            return Ok(Scalar::Str(text));
        }
        return match full.strip_prefix(STD_PREFIX) {
            Some("str") => Ok(Scalar::Str(text)),
            Some("null") => Ok(Scalar::Null),
            Some("bool") => Ok(construct_bool(&text)),
            Some("int") => construct_int(&text, line),
            Some("float") => construct_float(&text, line),
            Some("timestamp") if is_timestamp(&text) => Ok(Scalar::Timestamp(text)),
            Some("timestamp") => Err(YamlError::InvalidValue {
                kind: "timestamp",
                value: text,
                line,
            }),
            Some("merge") => Ok(Scalar::Merge),
            _ => Err(YamlError::UnsupportedTag { tag: full }),
        };
    }
    if style != TScalarStyle::Plain {
        return Ok(Scalar::Str(text));
    }
    let first = text.chars().next();
    // Same order as SnakeYAML's implicit resolvers, each keyed by the first char.
    if matches!(
        first,
        Some('y' | 'Y' | 'n' | 'N' | 't' | 'T' | 'f' | 'F' | 'o' | 'O')
    ) {
        match text.as_str() {
            "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
                return Ok(Scalar::Bool(true));
            }
            "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
                return Ok(Scalar::Bool(false));
            }
            _ => {}
        }
    }
    if matches!(first, Some('-' | '+' | '0'..='9')) && is_int(&text) {
        return construct_int(&text, line);
    }
    if matches!(first, Some('-' | '+' | '.' | '0'..='9')) && is_float(&text) {
        return construct_float(&text, line);
    }
    if text == "<<" {
        return Ok(Scalar::Merge);
    }
    if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL") {
        return Ok(Scalar::Null);
    }
    if matches!(first, Some('0'..='9')) && is_timestamp(&text) {
        return Ok(Scalar::Timestamp(text));
    }
    Ok(Scalar::Str(text))
}

/// SnakeYAML `ConstructYamlBool`: unknown text constructs `null`.
fn construct_bool(text: &str) -> Scalar {
    match text.to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" => Scalar::Bool(true),
        "no" | "false" | "off" => Scalar::Bool(false),
        _ => Scalar::Null,
    }
}

/// Splits an optional leading sign: (negative, rest).
fn split_sign(s: &str) -> (bool, &str) {
    if let Some(rest) = s.strip_prefix('-') {
        (true, rest)
    } else {
        (false, s.strip_prefix('+').unwrap_or(s))
    }
}

/// Whether every char satisfies `f`, and there is at least one.
fn non_empty_all(s: &str, f: impl Fn(u8) -> bool) -> bool {
    !s.is_empty() && s.bytes().all(f)
}

/// Matches `head(:[0-5]?[0-9])+` where `head_ok` checks the part before the first colon.
fn is_sexagesimal(s: &str, head_ok: impl Fn(&str) -> bool) -> bool {
    let mut parts = s.split(':');
    let Some(head) = parts.next() else {
        return false;
    };
    if !head_ok(head) {
        return false;
    }
    let mut groups = 0usize;
    for part in parts {
        groups = groups.saturating_add(1);
        let ok = match part.as_bytes() {
            [d] => d.is_ascii_digit(),
            [a, b] => (b'0'..=b'5').contains(a) && b.is_ascii_digit(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    groups > 0
}

/// `[1-9][0-9_]*`.
fn is_nonzero_decimal_head(s: &str) -> bool {
    match s.as_bytes().split_first() {
        Some((first, rest)) => {
            (b'1'..=b'9').contains(first) && rest.iter().all(|&b| b.is_ascii_digit() || b == b'_')
        }
        None => false,
    }
}

/// SnakeYAML's YAML 1.1 INT regex.
fn is_int(text: &str) -> bool {
    let (_, s) = split_sign(text);
    if let Some(bin) = s.strip_prefix("0b") {
        return non_empty_all(bin, |b| b == b'0' || b == b'1' || b == b'_');
    }
    if let Some(hex) = s.strip_prefix("0x") {
        return non_empty_all(hex, |b| b.is_ascii_hexdigit() || b == b'_');
    }
    if let Some(oct) = s.strip_prefix('0') {
        return oct.is_empty() || non_empty_all(oct, |b| (b'0'..=b'7').contains(&b) || b == b'_');
    }
    is_nonzero_decimal_head(s) || is_sexagesimal(s, is_nonzero_decimal_head)
}

/// SnakeYAML's YAML 1.1 FLOAT regex.
fn is_float(text: &str) -> bool {
    if matches!(text, ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    let (_, s) = split_sign(text);
    if matches!(s, ".inf" | ".Inf" | ".INF") {
        return true;
    }
    // [0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*
    if let Some((head, frac)) = s.split_once('.') {
        let frac_ok = frac.bytes().all(|b| b.is_ascii_digit() || b == b'_');
        let head_ok = |h: &str| match h.as_bytes().split_first() {
            Some((first, rest)) => {
                first.is_ascii_digit() && rest.iter().all(|&b| b.is_ascii_digit() || b == b'_')
            }
            None => false,
        };
        if frac_ok && is_sexagesimal(head, head_ok) {
            return true;
        }
    }
    // (\.[0-9]+|[0-9_]+(\.[0-9_]*)?)([eE][-+]?[0-9]+)?
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(pos) => (s.get(..pos).unwrap_or(""), s.get(pos.saturating_add(1)..)),
        None => (s, None),
    };
    if let Some(exp) = exponent {
        let (_, digits) = split_sign(exp);
        if !non_empty_all(digits, |b| b.is_ascii_digit()) {
            return false;
        }
    }
    if let Some(frac) = mantissa.strip_prefix('.') {
        return non_empty_all(frac, |b| b.is_ascii_digit());
    }
    let (int_part, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, f),
        None => (mantissa, ""),
    };
    non_empty_all(int_part, |b| b.is_ascii_digit() || b == b'_')
        && frac.bytes().all(|b| b.is_ascii_digit() || b == b'_')
}

/// A position in a scalar, for matching SnakeYAML's TIMESTAMP regex by hand.
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn digit_at(&self, k: usize) -> bool {
        self.b
            .get(self.i.saturating_add(k))
            .is_some_and(u8::is_ascii_digit)
    }
    /// Skip `min..=max` digits; false when fewer than `min`.
    fn digits(&mut self, min: usize, max: usize) -> bool {
        let start = self.i;
        while self.i < start.saturating_add(max) && self.digit_at(0) {
            self.i = self.i.saturating_add(1);
        }
        self.i >= start.saturating_add(min)
    }
    /// Skip one `c`; false when the next byte is something else.
    fn eat(&mut self, c: u8) -> bool {
        let hit = self.b.get(self.i) == Some(&c);
        if hit {
            self.i = self.i.saturating_add(1);
        }
        hit
    }
    fn skip_blanks(&mut self) {
        while matches!(self.b.get(self.i), Some(b' ' | b'\t')) {
            self.i = self.i.saturating_add(1);
        }
    }
    fn at_end(&self) -> bool {
        self.i == self.b.len()
    }
}

/// SnakeYAML's TIMESTAMP regex.
fn is_timestamp(text: &str) -> bool {
    let mut c = Cursor {
        b: text.as_bytes(),
        i: 0,
    };
    // [0-9]{4}-[0-9][0-9]?-[0-9][0-9]?
    if !(c.digits(4, 4) && c.eat(b'-') && c.digits(1, 2)) {
        return false;
    }
    let month_len = c.i.saturating_sub(5);
    if !c.eat(b'-') {
        return false;
    }
    let day_start = c.i;
    if !c.digits(1, 2) {
        return false;
    }
    if c.at_end() {
        // Date only: exactly yyyy-mm-dd.
        return month_len == 2 && c.i.saturating_sub(day_start) == 2;
    }
    timestamp_time(&mut c) && timestamp_zone(&mut c)
}

/// `(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?` of a timestamp.
fn timestamp_time(c: &mut Cursor<'_>) -> bool {
    match c.b.get(c.i) {
        Some(b'T' | b't') => c.i = c.i.saturating_add(1),
        Some(b' ' | b'\t') => c.skip_blanks(),
        _ => return false,
    }
    if !(c.digits(1, 2) && c.eat(b':') && c.digits(2, 2) && c.eat(b':') && c.digits(2, 2)) {
        return false;
    }
    if c.eat(b'.') {
        c.digits(0, usize::MAX);
    }
    true
}

/// `(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?` and the end of a timestamp.
fn timestamp_zone(c: &mut Cursor<'_>) -> bool {
    if c.at_end() {
        return true;
    }
    c.skip_blanks();
    if c.eat(b'Z') {
        return c.at_end();
    }
    if !(c.eat(b'-') || c.eat(b'+')) || !c.digits(1, 2) {
        return false;
    }
    c.at_end() || (c.eat(b':') && c.digits(2, 2) && c.at_end())
}

/// SnakeYAML `ConstructYamlInt` (then Java `toString`).
fn construct_int(text: &str, line: usize) -> Result<Scalar, YamlError> {
    let invalid = || YamlError::InvalidValue {
        kind: "int",
        value: text.to_string(),
        line,
    };
    let cleaned: String = text.chars().filter(|&c| c != '_').collect();
    let (negative, value) = split_sign(&cleaned);
    if cleaned.is_empty() {
        return Err(invalid());
    }
    if value == "0" {
        return Ok(Scalar::Int(String::from("0")));
    }
    let (digits, radix) = if let Some(rest) = value.strip_prefix("0b") {
        (rest, 2)
    } else if let Some(rest) = value.strip_prefix("0x") {
        (rest, 16)
    } else if let Some(rest) = value.strip_prefix('0') {
        (rest, 8)
    } else if value.contains(':') {
        return sexagesimal_int(value, negative).ok_or_else(invalid);
    } else {
        (value, 10)
    };
    let magnitude = to_decimal(digits, radix).ok_or_else(invalid)?;
    if negative && magnitude != "0" {
        Ok(Scalar::Int(format!("-{magnitude}")))
    } else {
        Ok(Scalar::Int(magnitude))
    }
}

/// Base-60 integer exactly as SnakeYAML computes it (an `int` accumulator that wraps).
fn sexagesimal_int(value: &str, negative: bool) -> Option<Scalar> {
    let mut total: i32 = 0;
    let mut factor: i32 = 1;
    for part in value.rsplit(':') {
        let digit: i64 = if part.is_empty() {
            return None;
        } else {
            part.parse().ok()?
        };
        let product = digit.wrapping_mul(i64::from(factor));
        // `int += long` narrows the sum back to int.
        total = i64::from(total).wrapping_add(product) as i32;
        factor = factor.wrapping_mul(60);
    }
    let total = i64::from(total);
    let result = if negative {
        if total < 0 {
            // Java builds "--n", which fails to parse.
            return None;
        }
        -total
    } else {
        total
    };
    Some(Scalar::Int(result.to_string()))
}

/// Converts digits in `radix` to canonical decimal (no sign, no leading zeros).
fn to_decimal(digits: &str, radix: u32) -> Option<String> {
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    if radix == 10 {
        let trimmed = digits.trim_start_matches('0');
        return Some(if trimmed.is_empty() {
            String::from("0")
        } else {
            trimmed.to_string()
        });
    }
    if digits.len() > MAX_RADIX_DIGITS {
        return None;
    }
    // Little-endian limbs in base 10^9.
    const LIMB: u64 = 1_000_000_000;
    let mut limbs: Vec<u64> = Vec::new();
    for c in digits.chars() {
        let mut carry = u64::from(c.to_digit(radix)?);
        for limb in &mut limbs {
            let v = limb.saturating_mul(u64::from(radix)).saturating_add(carry);
            *limb = v % LIMB;
            carry = v / LIMB;
        }
        while carry > 0 {
            limbs.push(carry % LIMB);
            carry /= LIMB;
        }
    }
    while limbs.last() == Some(&0) {
        limbs.pop();
    }
    let mut out = String::new();
    let mut iter = limbs.iter().rev();
    match iter.next() {
        None => return Some(String::from("0")),
        Some(top) => out.push_str(&top.to_string()),
    }
    for limb in iter {
        out.push_str(&format!("{limb:09}"));
    }
    Some(out)
}

/// SnakeYAML `ConstructYamlFloat` (then Java `Double.toString`).
fn construct_float(text: &str, line: usize) -> Result<Scalar, YamlError> {
    let invalid = || YamlError::InvalidValue {
        kind: "float",
        value: text.to_string(),
        line,
    };
    let cleaned: String = text.chars().filter(|&c| c != '_').collect();
    if cleaned.is_empty() {
        return Err(invalid());
    }
    let (negative, value) = split_sign(&cleaned);
    let sign = if negative { -1.0 } else { 1.0 };
    let lower = value.to_ascii_lowercase();
    let number = if lower == ".inf" {
        sign * f64::INFINITY
    } else if lower == ".nan" {
        f64::NAN
    } else if value.contains(':') {
        let mut total = 0.0f64;
        let mut factor: i32 = 1;
        // Java's `split` drops trailing empty strings; the pattern never produces them.
        for part in value.rsplit(':') {
            total += parse_java_double(part).ok_or_else(invalid)? * f64::from(factor);
            factor = factor.wrapping_mul(60);
        }
        sign * total
    } else {
        // For `!!float` text a second sign is taken by `Double.valueOf`, as here.
        sign * parse_java_double(value).ok_or_else(invalid)?
    };
    Ok(Scalar::Float(java_double_to_string(number)))
}

/// `Double.parseDouble` for plain decimal text (digits, one dot, optional exponent).
fn parse_java_double(s: &str) -> Option<f64> {
    let allowed = |c: char| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-');
    if s.is_empty() || !s.chars().all(allowed) || !s.chars().any(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse::<f64>().ok()
}

/// Splits Rust's `{:e}` rendering (`d.ddde-5`) into its digits and exponent.
fn split_sci(sci: &str) -> (String, i64) {
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let digits = mantissa.chars().filter(char::is_ascii_digit).collect();
    (digits, exp.parse().unwrap_or(0))
}

/// Decimal digits and exponent Java's `Double.toString` picks for a finite positive `abs`: the
/// shortest digits that round to it (at least two), the closest such, an even last digit on ties.
fn java_digits(abs: f64) -> (String, i64) {
    let (mut digits, mut exp) = split_sci(&format!("{abs:e}"));
    if digits.len() == 1 {
        // With one digit Java still considers every two-digit decimal and takes the closest
        // (this only matters for subnormals: 4.9E-324).
        (digits, exp) = split_sci(&format!("{abs:.1e}"));
    }
    // Rust's shortest digits are the closest ones but may break an exact tie the other way.
    match even_tie_candidate(abs, &digits, exp) {
        Some(even) => (even, exp),
        None => (digits, exp),
    }
}

/// When `abs` lies exactly halfway between two decimals of `digits.len()` digits at exponent
/// `exp`, the one with an even last digit (if it rounds back to `abs`).
fn even_tie_candidate(abs: f64, digits: &str, exp: i64) -> Option<String> {
    // abs = m * 2^e with m odd.
    let bits = abs.to_bits();
    let biased = i64::try_from((bits >> 52) & 0x7ff).ok()?;
    let fraction = bits & ((1u64 << 52) - 1);
    let (mut m, mut e) = if biased == 0 {
        (fraction, -1074i64)
    } else {
        (fraction | (1u64 << 52), biased - 1075)
    };
    if m == 0 {
        return None;
    }
    let zeros = m.trailing_zeros();
    m >>= zeros;
    e += i64::from(zeros);
    // A tie means 2 * abs = D * 10^k with D odd; comparing powers of two forces k = e + 1.
    let k = e + 1;
    let n = i64::try_from(digits.len()).ok()?;
    if exp - n + 1 != k {
        return None;
    }
    let d: u128 = if k >= 0 {
        let p = 5u64.checked_pow(u32::try_from(k).ok()?)?;
        if m % p != 0 {
            return None;
        }
        u128::from(m / p)
    } else {
        u128::from(m).checked_mul(5u128.checked_pow(u32::try_from(-k).ok()?)?)?
    };
    let half = d / 2;
    let even = if half & 1 == 0 { half } else { half + 1 };
    let candidate = even.to_string();
    if candidate.len() != digits.len() {
        return None;
    }
    let (first, rest) = candidate.split_at(1);
    let round_trips = format!("{first}.{rest}e{exp}").parse::<f64>().ok() == Some(abs);
    round_trips.then_some(candidate)
}

/// Java's `Double.toString` (JDK 19+ shortest-digits algorithm).
fn java_double_to_string(x: f64) -> String {
    if x.is_nan() {
        return String::from("NaN");
    }
    if x.is_infinite() {
        return String::from(if x > 0.0 { "Infinity" } else { "-Infinity" });
    }
    let sign = if x.is_sign_negative() { "-" } else { "" };
    if x == 0.0 {
        return format!("{sign}0.0");
    }
    let abs = x.abs();
    let (mut digits, exp) = java_digits(abs);
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    let (first, rest) = digits.split_at(1.min(digits.len()));
    if (1e-3..1e7).contains(&abs) {
        if exp >= 0 {
            let int_len = usize::try_from(exp).unwrap_or(0).saturating_add(1);
            let mut int_part: String = digits.chars().take(int_len).collect();
            while int_part.len() < int_len {
                int_part.push('0');
            }
            let frac: String = digits.chars().skip(int_len).collect();
            let frac = if frac.is_empty() {
                String::from("0")
            } else {
                frac
            };
            format!("{sign}{int_part}.{frac}")
        } else {
            let zeros = usize::try_from(exp.unsigned_abs().saturating_sub(1)).unwrap_or(0);
            format!("{sign}0.{}{digits}", "0".repeat(zeros))
        }
    } else {
        let rest = if rest.is_empty() { "0" } else { rest };
        format!("{sign}{first}.{rest}E{exp}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn ok(text: &str) -> BTreeMap<String, String> {
        match flatten(text) {
            Ok(map) => map,
            Err(e) => panic!("flatten({text:?}) failed: {e}"),
        }
    }

    #[test]
    fn long_radix_integers_are_bounded() {
        let hex = |n: usize| format!("n: 0x{}\n", "f".repeat(n));
        let got = ok(&hex(MAX_RADIX_DIGITS));
        assert_eq!(
            got.get("n").map(String::len),
            Some(309),
            "2^1024 - 1 has 309 digits"
        );
        assert!(matches!(
            flatten(&hex(MAX_RADIX_DIGITS + 1)),
            Err(YamlError::InvalidValue { kind: "int", .. })
        ));
        assert!(flatten(&format!("n: 0x{}\n", "f".repeat(20_000))).is_err());
        // Decimal digits cost nothing to convert: no limit there.
        assert_eq!(ok(&format!("n: {}\n", "9".repeat(5_000)))["n"].len(), 5_000);
    }

    #[test]
    fn nested_maps() {
        let got = ok("server:\n  port: 8080\n  ssl:\n    enabled: true\nname: demo\n");
        assert_eq!(
            got,
            props(&[
                ("server.port", "8080"),
                ("server.ssl.enabled", "true"),
                ("name", "demo")
            ])
        );
    }

    #[test]
    fn lists_and_list_of_maps_and_nested_lists() {
        let got =
            ok("a:\n  - x\n  - y\nb:\n  - name: n1\n    v: 1\n  - name: n2\nc: [[1, 2], [3]]\n");
        assert_eq!(
            got,
            props(&[
                ("a[0]", "x"),
                ("a[1]", "y"),
                ("b[0].name", "n1"),
                ("b[0].v", "1"),
                ("b[1].name", "n2"),
                ("c[0][0]", "1"),
                ("c[0][1]", "2"),
                ("c[1][0]", "3"),
            ])
        );
    }

    #[test]
    fn empty_collections_produce_nothing() {
        assert_eq!(ok("a: []\nb: {}\nc: 1\n"), props(&[("c", "1")]));
    }

    #[test]
    fn non_string_keys_are_bracketed() {
        let got = ok("1: one\ntrue: t\n1.5: f\nmap:\n  2: two\n  0x10: hex\n");
        assert_eq!(
            got,
            props(&[
                ("[1]", "one"),
                ("[true]", "t"),
                ("[1.5]", "f"),
                ("map[2]", "two"),
                ("map[16]", "hex"),
            ])
        );
    }

    #[test]
    fn null_key_and_non_string_key_in_list_are_errors() {
        assert!(matches!(
            flatten("~: a\n"),
            Err(YamlError::UnsupportedKey { .. })
        ));
        assert!(matches!(
            flatten("l:\n  - 1: a\n"),
            Err(YamlError::UnsupportedKey { .. })
        ));
        // String keys inside lists are fine.
        assert_eq!(ok("l:\n  - '1': a\n"), props(&[("l[0].1", "a")]));
    }

    #[test]
    fn multi_document_override_and_empty_documents() {
        let got = ok("a: 1\nb: 2\n---\n---\n~\n---\nb: 3\nc: 4\n");
        assert_eq!(got, props(&[("a", "1"), ("b", "3"), ("c", "4")]));
    }

    #[test]
    fn non_mapping_documents() {
        assert_eq!(
            ok("- a\n- b: c\n"),
            props(&[("document[0]", "a"), ("document[1].b", "c")])
        );
        assert_eq!(ok("xxx\n"), props(&[("document", "xxx")]));
        assert_eq!(ok("--- 010\n"), props(&[("document", "8")]));
        assert_eq!(ok(""), props(&[]));
        assert_eq!(ok("# only a comment\n"), props(&[]));
    }

    #[test]
    fn null_values_become_empty() {
        let got = ok("a: ~\nb: null\nc: Null\nd: NULL\ne:\nf: !!null x\ng: 'null'\n");
        assert_eq!(
            got,
            props(&[
                ("a", ""),
                ("b", ""),
                ("c", ""),
                ("d", ""),
                ("e", ""),
                ("f", ""),
                ("g", "null")
            ])
        );
    }

    #[test]
    fn yaml11_booleans() {
        let got = ok("a: yes\nb: No\nc: ON\nd: off\ne: True\nf: FALSE\ng: y\nh: n\ni: Y\nj: yEs\n");
        assert_eq!(
            got,
            props(&[
                ("a", "true"),
                ("b", "false"),
                ("c", "true"),
                ("d", "false"),
                ("e", "true"),
                ("f", "false"),
                ("g", "y"),
                ("h", "n"),
                ("i", "Y"),
                ("j", "yEs"),
            ])
        );
    }

    #[test]
    fn yaml11_integers() {
        let got = ok(concat!(
            "oct: 010\nhex: 0x1F\nbin: 0b1010\nsixty: 1:20\nneg: -42\nplus: +7\nsep: 1_000\n",
            "zero: 0\nnegzero: -0\nbig: 123456789012345678901234567890\n",
            "bighex: 0xFFFFFFFFFFFFFFFFFFFF\nnegoct: -017\nbad_oct: 09\nsixty2: -1:30:00\n"
        ));
        assert_eq!(
            got,
            props(&[
                ("oct", "8"),
                ("hex", "31"),
                ("bin", "10"),
                ("sixty", "80"),
                ("neg", "-42"),
                ("plus", "7"),
                ("sep", "1000"),
                ("zero", "0"),
                ("negzero", "0"),
                ("big", "123456789012345678901234567890"),
                ("bighex", "1208925819614629174706175"),
                ("negoct", "-15"),
                // `09` is not an int in YAML 1.1 but matches the float pattern.
                ("bad_oct", "9.0"),
                ("sixty2", "-5400"),
            ])
        );
    }

    #[test]
    fn floats_like_java_double_to_string() {
        let got = ok(concat!(
            "a: 1.5e3\nb: .inf\nc: -.Inf\nd: .NaN\ne: 0.1\nf: 1e-5\ng: 12345678.9\nh: 1.0\n",
            "i: 3.\nj: .5\nk: 1e7\nl: 9999999.0\nm: 0.001\nn: 0.0009\no: -0.0\np: 1_000.5\n",
            "q: 1:30.5\nr: 1e+12\ns: 100.0\n"
        ));
        assert_eq!(
            got,
            props(&[
                ("a", "1500.0"),
                ("b", "Infinity"),
                ("c", "-Infinity"),
                ("d", "NaN"),
                ("e", "0.1"),
                ("f", "1.0E-5"),
                ("g", "1.23456789E7"),
                ("h", "1.0"),
                ("i", "3.0"),
                ("j", "0.5"),
                ("k", "1.0E7"),
                ("l", "9999999.0"),
                ("m", "0.001"),
                ("n", "9.0E-4"),
                ("o", "-0.0"),
                ("p", "1000.5"),
                ("q", "90.5"),
                ("r", "1.0E12"),
                ("s", "100.0"),
            ])
        );
    }

    #[test]
    fn quoted_and_tagged_scalars_stay_strings() {
        let got = ok(concat!(
            "a: \"010\"\nb: 'yes'\nc: !!str 0x10\nd: ! 12\ne: |\n  on\nf: >\n  1.5\n",
            "g: !!int '0x10'\nh: !!float '1'\ni: !!bool 'YES'\nj: !!bool maybe\n"
        ));
        assert_eq!(
            got,
            props(&[
                ("a", "010"),
                ("b", "yes"),
                ("c", "0x10"),
                ("d", "12"),
                ("e", "on\n"),
                ("f", "1.5\n"),
                ("g", "16"),
                ("h", "1.0"),
                ("i", "true"),
                ("j", ""),
            ])
        );
    }

    #[test]
    fn timestamps_keep_their_text() {
        let got = ok(
            "d: 2001-12-14\nt: 2001-12-14t21:59:43.10-05:00\ns: 2001-12-14 21:59:43.10 Z\nx: 2001-1-1\n",
        );
        assert_eq!(
            got,
            props(&[
                ("d", "2001-12-14"),
                ("t", "2001-12-14t21:59:43.10-05:00"),
                ("s", "2001-12-14 21:59:43.10 Z"),
                ("x", "2001-1-1"),
            ])
        );
        assert!(is_timestamp("2001-1-1 1:02:03"));
        assert!(!is_timestamp("2001-1-1"));
    }

    #[test]
    fn case_is_kept_in_keys() {
        assert_eq!(ok("Server:\n  Port: 80\n"), props(&[("Server.Port", "80")]));
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        assert_eq!(
            flatten("a: 1\nb: 2\na: 3\n"),
            Err(YamlError::DuplicateKey {
                key: String::from("a"),
                line: 3
            })
        );
        assert!(matches!(
            flatten("m:\n  1: x\n  0x1: y\n"),
            Err(YamlError::DuplicateKey { .. })
        ));
        assert!(matches!(
            flatten("{yes: 1, true: 2}"),
            Err(YamlError::DuplicateKey { .. })
        ));
        // Same text, different types: not duplicates.
        assert_eq!(ok("1: a\n'1': b\n"), props(&[("[1]", "a"), ("1", "b")]));
    }

    #[test]
    fn syntax_errors_are_errors() {
        assert!(matches!(
            flatten("a: [1, 2\n"),
            Err(YamlError::Syntax { .. })
        ));
        assert!(matches!(
            flatten("a: b: c\n"),
            Err(YamlError::Syntax { .. })
        ));
        assert!(matches!(flatten("a: 'x\n"), Err(YamlError::Syntax { .. })));
        match flatten("ok: 1\nbad: [\n") {
            Err(YamlError::Syntax { line, col, .. }) => assert!(line >= 2 && col >= 1),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn unsupported_tags() {
        assert!(matches!(
            flatten("a: !!javax.script.ScriptEngineManager [x]\n"),
            Err(YamlError::UnsupportedTag { .. })
        ));
        assert!(matches!(
            flatten("a: !custom x\n"),
            Err(YamlError::UnsupportedTag { .. })
        ));
        assert!(matches!(
            flatten("a: !!binary aGk=\n"),
            Err(YamlError::UnsupportedTag { .. })
        ));
        assert!(matches!(
            flatten("a: !!set {x}\n"),
            Err(YamlError::UnsupportedTag { .. })
        ));
        assert_eq!(
            ok("a: !!map {b: 1}\nc: !!seq [1]\n"),
            props(&[("a.b", "1"), ("c[0]", "1")])
        );
        assert!(matches!(
            flatten("a: !!int abc\n"),
            Err(YamlError::InvalidValue { .. })
        ));
        assert!(matches!(
            flatten("a: -_\n"),
            Err(YamlError::InvalidValue { .. })
        ));
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let got = ok(concat!(
            "base: &b\n  host: h\n  port: 1\n",
            "dev:\n  <<: *b\n  port: 2\n",
            "copy: *b\n",
            "name: &n x\nalias: *n\n",
            "multi:\n  <<: [{a: 1}, {a: 2, c: 3}]\n"
        ));
        assert_eq!(
            got,
            props(&[
                ("base.host", "h"),
                ("base.port", "1"),
                ("dev.host", "h"),
                ("dev.port", "2"),
                ("copy.host", "h"),
                ("copy.port", "1"),
                ("name", "x"),
                ("alias", "x"),
                ("multi.a", "1"),
                ("multi.c", "3"),
            ])
        );
        assert_eq!(ok("a: <<\n"), props(&[("a", "<<")]));
        assert!(matches!(
            flatten("a:\n  <<: 1\n"),
            Err(YamlError::InvalidMerge { .. })
        ));
        assert!(flatten("a: *nope\n").is_err());
        assert!(matches!(
            flatten("a: &x [1, *x]\n"),
            Err(YamlError::RecursiveAlias { .. })
        ));
    }

    #[test]
    fn alias_bomb_is_rejected() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        assert!(matches!(
            flatten(&text),
            Err(YamlError::TooLarge | YamlError::TooManyAliases { .. })
        ));
        // Few aliases but exponential growth: still bounded.
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..20 {
            let prev = i - 1;
            text.push_str(&format!("a{i}: &a{i} [*a{prev}, *a{prev}]\n"));
        }
        assert!(matches!(
            flatten(&text),
            Err(YamlError::TooLarge | YamlError::TooManyAliases { .. })
        ));
    }

    #[test]
    fn deep_nesting_is_rejected_not_overflowed() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(flatten(&deep).is_err());
        let ok_depth = format!("{}1{}", "[".repeat(40), "]".repeat(40));
        assert_eq!(ok(&ok_depth).len(), 1);
    }

    #[test]
    fn unicode_values_and_keys() {
        let got = ok("名字: 值\nemoji: \"😀 \\u00e9\"\n");
        assert_eq!(got, props(&[("名字", "值"), ("emoji", "😀 é")]));
    }

    #[test]
    fn blank_path_keeps_child_keys_unprefixed() {
        // Java's `StringUtils.isBlank(path)` check.
        assert_eq!(ok("'': {a: 1}\n"), props(&[("a", "1")]));
        assert_eq!(ok("'': [x]\n"), props(&[("[0]", "x")]));
        assert_eq!(ok("' ': {a: 1}\n"), props(&[("a", "1")]));
        assert_eq!(ok("\"\\u00a0\": {a: 1}\n"), props(&[("\u{a0}.a", "1")]));
    }

    #[test]
    fn converted_keys_replace_in_place() {
        // `1` becomes `[1]`, colliding with the string key `[1]`: the later value wins.
        assert_eq!(ok("'[1]': a\n1: b\n"), props(&[("[1]", "b")]));
    }

    #[test]
    fn complex_keys_use_java_to_string() {
        assert_eq!(ok("? [a, 1]\n: v\n"), props(&[("[[a, 1]]", "v")]));
        assert_eq!(ok("? {k: ~}\n: v\n"), props(&[("[{k=null}]", "v")]));
    }

    #[test]
    fn double_formatting() {
        let cases = [
            (1.0, "1.0"),
            (-2.5, "-2.5"),
            (1e7, "1.0E7"),
            (1.0e-3, "0.001"),
            (123_456.789, "123456.789"),
            (1e21, "1.0E21"),
            (1.234e-10, "1.234E-10"),
            (f64::MAX, "1.7976931348623157E308"),
            (f64::MIN_POSITIVE, "2.2250738585072014E-308"),
            (5e-324, "4.9E-324"),
            (1e-323, "9.9E-324"),
            // Exact tie between 16-digit candidates: Java takes the even one.
            (865_708_016_297_043.0 + 0.25, "8.657080162970432E14"),
        ];
        for (x, want) in cases {
            assert_eq!(java_double_to_string(x), want, "{x}");
        }
    }

    /// Deterministic xorshift64 generator for the fuzz loop.
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
    fn fuzz_flatten_never_panics() {
        let pieces = vec![
            "a",
            "b",
            "1",
            "0x",
            "010",
            ":",
            ": ",
            "- ",
            "-",
            "\n",
            "  ",
            " ",
            "[",
            "]",
            "{",
            "}",
            ",",
            "&a ",
            "*a",
            "&b ",
            "*b",
            "<<: ",
            "!!str ",
            "!!int ",
            "!foo ",
            "? ",
            "'",
            "\"",
            "#",
            "|",
            ">",
            "---\n",
            "...\n",
            "~",
            "yes",
            ".inf",
            "1:20",
            "\\",
            "\t",
            "%YAML 1.1\n",
            "中",
            "😀",
            "!!",
            "@",
            "`",
        ];
        let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
        for _ in 0..3000 {
            let count = usize::try_from(rng.next() % 24).unwrap();
            let mut text = String::new();
            for _ in 0..count {
                let i = usize::try_from(rng.next() % pieces.len() as u64).unwrap();
                text.push_str(pieces[i]);
            }
            let _ = flatten(&text);
        }
    }
}
