//! Project scripts. `cargo xtask test` runs every check CI runs.
fn main() {}
