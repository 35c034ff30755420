//! The apolloconf conformance suite.
//!
//! The runner is the `conformance` test of this crate (`cargo test -p
//! apolloconf-conformance`); it plays every scenario of `tests/scenarios/` against the
//! subject named by `APOLLOCONF_SUBJECT`. The `native_subject` binary is the subject for
//! the native client. See this crate's README for the subject protocol.
