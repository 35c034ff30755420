//! The merged view over several namespaces (docs/protocol.md#merged-lookups).
//!
//! A key is looked up in the namespaces in their configured order; the first namespace
//! whose properties view holds it wins, as with the Java client's `ConfigService` over
//! several namespaces. Every host reads through these functions.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::iter::Peekable;

use crate::client::Namespace;
use crate::values::Iter;

/// The value of `key` in the first of `namespaces` that holds it.
pub fn lookup<'a, I>(namespaces: I, key: &str) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a Namespace>,
{
    namespaces.into_iter().find_map(|n| n.get(key))
}

/// Every key of `namespaces` with the value [`lookup`] gives it, sorted by key.
pub fn merged<'a, I>(namespaces: I) -> BTreeMap<&'a str, &'a str>
where
    I: IntoIterator<Item = &'a Namespace>,
{
    merged_iter(namespaces).collect()
}

/// What [`merged`] holds, in the same order, without building a map: the namespaces'
/// properties views (each sorted by key) are walked side by side, so listing a merged
/// view of a million keys costs no memory.
pub fn merged_iter<'a, I>(namespaces: I) -> MergedIter<'a>
where
    I: IntoIterator<Item = &'a Namespace>,
{
    MergedIter {
        heads: namespaces
            .into_iter()
            .map(|ns| ns.properties().iter().peekable())
            .collect(),
    }
}

/// The pairs of a merged view in key order (see [`merged_iter`]).
#[derive(Debug, Clone)]
pub struct MergedIter<'a> {
    /// Each namespace's remaining pairs, in lookup order.
    heads: Vec<Peekable<Iter<'a>>>,
}

impl<'a> Iterator for MergedIter<'a> {
    type Item = (&'a str, &'a str);
    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        // The smallest next key; on equal keys the first namespace (in lookup order) wins.
        let mut best: Option<(&'a str, &'a str)> = None;
        for head in &mut self.heads {
            if let Some(&(k, v)) = head.peek() {
                if best.is_none_or(|(b, _)| k < b) {
                    best = Some((k, v));
                }
            }
        }
        let (key, _) = best?;
        // Every namespace holding that key moves past it.
        for head in &mut self.heads {
            head.next_if(|(k, _)| *k == key);
        }
        best
    }
}

impl core::iter::FusedIterator for MergedIter<'_> {}
