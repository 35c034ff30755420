//! WebAssembly build and the npm package's runtime tests (filled in with the WASM host).

use crate::step::Runner;
use std::process::ExitCode;

/// Steps of `cargo xtask test` for the WASM host and the npm package.
pub fn steps(_r: &mut Runner) {}

/// Size and speed numbers of the package.
pub fn bench(_r: &mut Runner) {}

/// `cargo xtask wasm`: build the package only.
pub fn build_only() -> ExitCode {
    let r = Runner::new();
    r.finish()
}
