//! A namespace's key/value pairs, held compactly (docs/protocol.md#held-values).
//!
//! A release can hold a million small keys. As a map of `String`s each pair costs two heap
//! blocks and a tree slot (well over 100 bytes for `"k123456":"6"`). Here every pair is a
//! record in one text buffer (its key and value, each after its length) and the pairs are
//! found through a sorted list of 4-byte record offsets: about 6 bytes per pair beyond its
//! text. The pairs are sorted by key (byte order, as a `BTreeMap<String, String>` sorts),
//! so a lookup is a binary search and two releases are compared by walking both in order.
//!
//! Lengths are written in ASCII digits of 6 bits (`0x40` set: more digits follow), so the
//! buffer stays a valid `String` and every key and value is read back as a `&str` slice
//! without checks or copies.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::iter::FusedIterator;
use thiserror::Error;

/// Why a [`Values`] could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ValuesError {
    /// The keys and values together exceed 4 GiB (offsets are 32-bit).
    #[error("keys and values exceed 4 GiB in one namespace")]
    TooLarge,
}

/// The most text a [`Values`] holds: record offsets are `u32`.
const MAX_TEXT: usize = u32::MAX as usize;

/// The length digits of one `usize`: 6 bits each.
const MAX_DIGITS: usize = usize::BITS.div_ceil(6) as usize;

/// Key/value pairs sorted by key, each key once: a namespace's configurations or its
/// properties view.
///
/// Read it like a sorted map: [`get`](Values::get), [`iter`](Values::iter) (in key
/// order), [`len`](Values::len). Build one with [`ValuesBuilder`] or
/// [`Values::try_from_pairs`]; it cannot be changed afterwards (a new release is a new
/// `Values`).
#[derive(Clone, Default)]
pub struct Values {
    /// Records `len(key) key len(value)·2 value`, see [`Record`]. May hold records no
    /// offset points at (a key given twice to the builder) when they were too few to be
    /// worth a copy.
    text: String,
    /// Record offsets, sorted by key, keys distinct.
    records: Vec<u32>,
}

/// One record read back.
#[derive(Clone, Copy)]
struct Record<'a> {
    key: &'a str,
    value: &'a str,
    /// A removal recorded by [`ValuesBuilder::remove`] (or a `null` value).
    removed: bool,
    /// Bytes from the record's start to its end.
    len: usize,
}

/// Appends the length digits of `n`.
fn push_len(text: &mut String, mut n: usize) {
    let mut digits = [0u8; MAX_DIGITS];
    let mut count = 0;
    loop {
        if let Some(d) = digits.get_mut(count) {
            *d = (n & 0x3f) as u8;
        }
        count += 1;
        n >>= 6;
        if n == 0 {
            break;
        }
    }
    // Most significant digit first; every digit but the last carries 0x40.
    for i in (0..count).rev() {
        let d = digits.get(i).copied().unwrap_or(0);
        let more = if i == 0 { 0 } else { 0x40 };
        text.push(char::from(d | more));
    }
}

/// Reads length digits at `at`: the length and where the digits end.
#[inline]
fn read_len(bytes: &[u8], at: usize) -> Option<(usize, usize)> {
    let b = *bytes.get(at)?;
    if b & 0x40 == 0 {
        // One digit: lengths below 64, most keys.
        return Some((usize::from(b), at + 1));
    }
    read_long_len(bytes, at)
}

fn read_long_len(bytes: &[u8], mut at: usize) -> Option<(usize, usize)> {
    let mut n: usize = 0;
    for _ in 0..MAX_DIGITS {
        let b = *bytes.get(at)?;
        at += 1;
        n = n.checked_mul(64)?.checked_add(usize::from(b & 0x3f))?;
        if b & 0x40 == 0 {
            return Some((n, at));
        }
    }
    None
}

/// The record at `start` (`None` only if the text is not one: it always is, records are
/// written whole by the builder).
fn record(text: &str, start: u32) -> Option<Record<'_>> {
    let start = start as usize;
    let bytes = text.as_bytes();
    let (key_len, key_at) = read_len(bytes, start)?;
    let key_end = key_at.checked_add(key_len)?;
    let key = text.get(key_at..key_end)?;
    let (tagged, value_at) = read_len(bytes, key_end)?;
    let value_end = value_at.checked_add(tagged >> 1)?;
    let value = text.get(value_at..value_end)?;
    Some(Record {
        key,
        value,
        removed: tagged & 1 == 1,
        len: value_end.saturating_sub(start),
    })
}

/// The key of the record at `start` (the value is not looked at: sorting and searching
/// read only keys).
#[inline]
fn key_at(text: &str, start: u32) -> &str {
    let start = start as usize;
    read_len(text.as_bytes(), start)
        .and_then(|(len, at)| text.get(at..at.checked_add(len)?))
        .unwrap_or_default()
}

fn pair_at(text: &str, start: u32) -> (&str, &str) {
    record(text, start).map_or(("", ""), |r| (r.key, r.value))
}

impl Values {
    /// No pairs.
    pub fn new() -> Values {
        Values::default()
    }

    /// The pairs of `pairs`, sorted; a key given more than once keeps its last value.
    ///
    /// # Errors
    /// [`ValuesError::TooLarge`] past 4 GiB of text.
    pub fn try_from_pairs<I, K, V>(pairs: I) -> Result<Values, ValuesError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut b = ValuesBuilder::new();
        for (k, v) in pairs {
            b.push(k.as_ref(), v.as_ref())?;
        }
        Ok(b.finish())
    }

    /// How many pairs.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        let i = self
            .records
            .binary_search_by(|&r| key_at(&self.text, r).cmp(key))
            .ok()?;
        let r = self.records.get(i)?;
        Some(pair_at(&self.text, *r).1)
    }

    /// Whether `key` is held.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Every pair, in key order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            text: &self.text,
            records: self.records.iter(),
        }
    }

    /// Every key, in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator + '_ {
        self.iter().map(|(k, _)| k)
    }

    /// Every value, in key order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator + '_ {
        self.iter().map(|(_, v)| v)
    }

    /// A copy as an ordered map of owned strings.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.iter()
            .map(|(k, v)| (String::from(k), String::from(v)))
            .collect()
    }

    /// The heap bytes held (text and offsets, by capacity).
    pub fn allocated_bytes(&self) -> usize {
        self.text
            .capacity()
            .saturating_add(self.records.capacity().saturating_mul(size_of::<u32>()))
    }

    /// These pairs with `changes` applied: `Some(value)` sets a key, `None` removes it.
    /// `changes` must be sorted by key with each key once (a `BTreeMap` iterator is).
    ///
    /// # Errors
    /// [`ValuesError::TooLarge`] past 4 GiB of text.
    pub(crate) fn patched<'a>(
        &self,
        changes: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Result<Values, ValuesError> {
        let mut out = ValuesBuilder::new();
        let mut held = self.iter().peekable();
        for (key, change) in changes {
            while let Some((k, v)) = held.next_if(|(k, _)| *k < key) {
                out.push(k, v)?;
            }
            // The held pair of the same key (if any) is replaced or removed.
            held.next_if(|(k, _)| *k == key);
            if let Some(v) = change {
                out.push(key, v)?;
            }
        }
        for (k, v) in held {
            out.push(k, v)?;
        }
        Ok(out.finish())
    }
}

impl PartialEq for Values {
    fn eq(&self, other: &Values) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Values {}

impl PartialEq<BTreeMap<String, String>> for Values {
    fn eq(&self, other: &BTreeMap<String, String>) -> bool {
        self.len() == other.len()
            && self
                .iter()
                .zip(other)
                .all(|((k, v), (ok, ov))| k == ok && v == ov)
    }
}

impl fmt::Debug for Values {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl serde::Serialize for Values {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl TryFrom<BTreeMap<String, String>> for Values {
    type Error = ValuesError;
    fn try_from(map: BTreeMap<String, String>) -> Result<Values, ValuesError> {
        Values::try_from_pairs(map)
    }
}

impl TryFrom<&BTreeMap<String, String>> for Values {
    type Error = ValuesError;
    fn try_from(map: &BTreeMap<String, String>) -> Result<Values, ValuesError> {
        Values::try_from_pairs(map)
    }
}

impl<'a> IntoIterator for &'a Values {
    type Item = (&'a str, &'a str);
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// The pairs of a [`Values`], in key order.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    text: &'a str,
    records: core::slice::Iter<'a, u32>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);
    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        let r = self.records.next()?;
        Some(pair_at(self.text, *r))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.records.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let r = self.records.next_back()?;
        Some(pair_at(self.text, *r))
    }
}

impl ExactSizeIterator for Iter<'_> {}
impl FusedIterator for Iter<'_> {}

/// Collects pairs in any order into a [`Values`]; a key pushed again (or removed) later
/// wins over what came before, as inserting into a map would.
#[derive(Debug, Clone, Default)]
pub struct ValuesBuilder {
    text: String,
    /// Record offsets in the order pushed.
    records: Vec<u32>,
    /// Whether a key came out of order (or a removal came): then
    /// [`finish`](ValuesBuilder::finish) sorts.
    unordered: bool,
}

impl ValuesBuilder {
    /// An empty builder.
    pub fn new() -> ValuesBuilder {
        ValuesBuilder::default()
    }

    /// Add a pair; it replaces an earlier pair of the same key.
    ///
    /// # Errors
    /// [`ValuesError::TooLarge`] past 4 GiB of text (nothing is added).
    pub fn push(&mut self, key: &str, value: &str) -> Result<(), ValuesError> {
        self.record(key, |b| b.append_value(value))
    }

    /// Drop `key` from what was pushed before (a later push adds it again).
    ///
    /// # Errors
    /// [`ValuesError::TooLarge`] past 4 GiB of text.
    pub fn remove(&mut self, key: &str) -> Result<(), ValuesError> {
        self.record(key, ValuesBuilder::append_removal)
    }

    /// One whole record: `key`, then what `rest` appends; nothing is left of it on an
    /// error.
    fn record(
        &mut self,
        key: &str,
        rest: impl FnOnce(&mut ValuesBuilder) -> Result<(), ValuesError>,
    ) -> Result<(), ValuesError> {
        let start = self.mark();
        match self.append_key(key).and_then(|()| rest(self)) {
            Ok(()) => {
                self.commit(start);
                Ok(())
            }
            Err(e) => {
                self.discard(start);
                Err(e)
            }
        }
    }

    /// The sorted pairs, each key with its last value.
    pub fn finish(mut self) -> Values {
        let text = &self.text;
        let key = |r: &u32| key_at(text, *r);
        if self.unordered {
            // Equal keys stay in push order (offsets grow with each push), so the last
            // one pushed ends each run of equal keys.
            self.records
                .sort_unstable_by(|a, b| key(a).cmp(key(b)).then(a.cmp(b)));
            // One record per key: the last one pushed.
            self.records.dedup_by(|later, kept| {
                let same = key(later) == key(kept);
                if same {
                    *kept = *later;
                }
                same
            });
            self.records
                .retain(|r| record(text, *r).is_some_and(|r| !r.removed));
        }
        let used: usize = self
            .records
            .iter()
            .map(|r| record(text, *r).map_or(0, |r| r.len))
            .sum();
        let mut values = if used.saturating_mul(4) < self.text.len().saturating_mul(3) {
            // Over a quarter of the text is replaced pairs: copy what is used.
            compact(&self.text, &self.records, used)
        } else {
            Values {
                text: self.text,
                records: self.records,
            }
        };
        values.text.shrink_to_fit();
        values.records.shrink_to_fit();
        values
    }

    /// The text length: where the next record starts.
    pub(crate) fn mark(&self) -> usize {
        self.text.len()
    }

    /// Append a record's key.
    pub(crate) fn append_key(&mut self, key: &str) -> Result<(), ValuesError> {
        self.append(key.len(), key)
    }

    /// Append a record's value (after its key).
    pub(crate) fn append_value(&mut self, value: &str) -> Result<(), ValuesError> {
        self.append(
            value.len().checked_mul(2).ok_or(ValuesError::TooLarge)?,
            value,
        )
    }

    /// Append a removal in place of a value (after the key).
    pub(crate) fn append_removal(&mut self) -> Result<(), ValuesError> {
        self.append(1, "")
    }

    fn append(&mut self, len: usize, s: &str) -> Result<(), ValuesError> {
        let needed = s.len().saturating_add(MAX_DIGITS);
        if self.text.len().saturating_add(needed) > MAX_TEXT {
            return Err(ValuesError::TooLarge);
        }
        push_len(&mut self.text, len);
        self.text.push_str(s);
        Ok(())
    }

    /// Forget the text appended since `mark` (a record left unfinished).
    pub(crate) fn discard(&mut self, mark: usize) {
        self.text.truncate(mark);
    }

    /// Record the key and value (or removal) appended since `start`.
    pub(crate) fn commit(&mut self, start: usize) {
        // `append` keeps the text within MAX_TEXT, so the offset fits.
        let Ok(offset) = u32::try_from(start) else {
            self.discard(start);
            return;
        };
        if !self.unordered {
            let ordered = match (self.records.last(), record(&self.text, offset)) {
                (_, None) => false,
                (_, Some(new)) if new.removed => false,
                (None, Some(_)) => true,
                (Some(&last), Some(new)) => key_at(&self.text, last) < new.key,
            };
            self.unordered = !ordered;
        }
        self.records.push(offset);
    }
}

/// A copy of `records` over a text of only the bytes they use.
fn compact(text: &str, records: &[u32], used: usize) -> Values {
    let mut out = Values {
        text: String::with_capacity(used),
        records: Vec::with_capacity(records.len()),
    };
    for r in records {
        let Some(rec) = record(text, *r) else {
            continue;
        };
        let start = *r as usize;
        // The copy is no longer than the text the offsets came from, so its offsets fit.
        let (Some(bytes), Ok(offset)) = (
            text.get(start..start.saturating_add(rec.len)),
            u32::try_from(out.text.len()),
        ) else {
            continue;
        };
        out.text.push_str(bytes);
        out.records.push(offset);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (String::from(*k), String::from(*v)))
            .collect()
    }

    #[test]
    fn reads_like_a_sorted_map() {
        let v = Values::try_from_pairs([("b", "2"), ("a", "1"), ("c", "")]).unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v.get("a"), Some("1"));
        assert_eq!(v.get("c"), Some(""));
        assert_eq!(v.get("d"), None);
        assert!(v.contains_key("b"));
        assert_eq!(v.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(v.values().rev().collect::<Vec<_>>(), ["", "2", "1"]);
        assert_eq!(v, map(&[("a", "1"), ("b", "2"), ("c", "")]));
        assert_eq!(v.to_map(), map(&[("a", "1"), ("b", "2"), ("c", "")]));
        assert_eq!(format!("{v:?}"), r#"{"a": "1", "b": "2", "c": ""}"#);
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"a":"1","b":"2","c":""}"#
        );
        assert!(Values::new().is_empty());
    }

    #[test]
    fn later_pairs_and_removals_win_as_in_a_map() {
        let steps: &[(&str, Option<&str>)] = &[
            ("k", Some("1")),
            ("a", Some("x")),
            ("k", Some("2")),
            ("a", None),
            ("z", None),
            ("k", Some("3")),
            ("a", Some("y")),
            ("b", None),
        ];
        let mut b = ValuesBuilder::new();
        let mut m = BTreeMap::new();
        for (k, v) in steps {
            match v {
                Some(v) => {
                    b.push(k, v).unwrap();
                    m.insert(String::from(*k), String::from(*v));
                }
                None => {
                    b.remove(k).unwrap();
                    m.remove(*k);
                }
            }
        }
        assert_eq!(b.finish(), m);
    }

    #[test]
    fn byte_order_as_strings_sort() {
        let keys = ["é", "Z", "a", "", "a.b", "a[0]", "ab", "\u{10000}", "~"];
        let v = Values::try_from_pairs(keys.iter().map(|k| (*k, *k))).unwrap();
        let m: BTreeMap<String, String> = keys
            .iter()
            .map(|k| (String::from(*k), String::from(*k)))
            .collect();
        assert_eq!(v, m);
        for k in keys {
            assert_eq!(v.get(k), Some(k));
        }
    }

    #[test]
    fn replaced_pairs_do_not_keep_their_text() {
        let mut b = ValuesBuilder::new();
        for i in 0..1000 {
            b.push("k", &format!("{i:0100}")).unwrap();
        }
        let v = b.finish();
        assert_eq!(v.len(), 1);
        assert!(v.allocated_bytes() < 200, "{} bytes", v.allocated_bytes());
    }

    #[test]
    fn lengths_of_every_size_read_back() {
        for n in [
            0,
            1,
            63,
            64,
            65,
            4095,
            4096,
            262_143,
            262_144,
            usize::MAX >> 1,
            usize::MAX,
        ] {
            let mut t = String::from("x");
            push_len(&mut t, n);
            assert!(t.is_ascii());
            assert_eq!(read_len(t.as_bytes(), 1), Some((n, t.len())), "{n}");
        }
        let long = "é".repeat(5000);
        let v = Values::try_from_pairs([(long.as_str(), long.as_str()), ("", "")]).unwrap();
        assert_eq!(v.get(&long), Some(long.as_str()));
        assert_eq!(v.get(""), Some(""));
    }

    #[test]
    fn a_million_small_pairs_cost_their_text_and_six_bytes_each() {
        let mut b = ValuesBuilder::new();
        // Pushed out of order, as a JSON object may list them.
        for i in (0..1_000_000u32).rev() {
            b.push(&format!("k{i}"), &format!("{}", i % 10)).unwrap();
        }
        let v = b.finish();
        assert_eq!(v.len(), 1_000_000);
        assert_eq!(v.get("k123456"), Some("6"));
        // 6.9 MB of keys, 1 MB of values, 2 MB of lengths, 4 MB of offsets.
        assert!(v.allocated_bytes() < 14_000_000, "{}", v.allocated_bytes());
    }

    #[test]
    fn patched_sets_and_removes() {
        let v = Values::try_from_pairs([("a", "1"), ("b", "2"), ("d", "4")]).unwrap();
        let p = v
            .patched([("a", None), ("c", Some("3")), ("d", Some("5")), ("e", None)])
            .unwrap();
        assert_eq!(p, map(&[("b", "2"), ("c", "3"), ("d", "5")]));
    }
}
