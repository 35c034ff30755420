//! The merged view over several namespaces (docs/protocol.md#merged-lookups).
//!
//! A key is looked up in the namespaces in their configured order; the first namespace
//! whose properties view holds it wins, as with the Java client's `ConfigService` over
//! several namespaces. Every host reads through these functions.

use alloc::collections::BTreeMap;

use crate::client::Namespace;

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
    let mut out = BTreeMap::new();
    for ns in namespaces {
        for (k, v) in ns.properties() {
            out.entry(k.as_str()).or_insert(v.as_str());
        }
    }
    out
}
