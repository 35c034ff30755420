//! Python bindings of the native client ([`apolloconf`]): the extension module
//! `apolloconf._native` of the Python package `apolloconf` (distribution
//! `apolloconf-client`).
//!
//! Everything here converts between Python and the native crate: settings go to
//! [`apolloconf::ClientBuilder`] (which applies the Java names and precedence), reads go to
//! the native [`apolloconf::Snapshot`], listeners are the native dispatcher's, errors are
//! the native errors with the native codes. The Python layer (`python/apolloconf/`) adds
//! the decorator, the asyncio bridge, the fork hooks, the compatibility layer and the
//! Django app.

mod client;
mod convert;
mod logbridge;
mod values;

use pyo3::prelude::*;

/// The extension module `apolloconf._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("TIMING_NAMES", apolloconf::Timing::NAMES.to_vec())?;
    m.add_class::<client::Client>()?;
    m.add_class::<client::ChangeIter>()?;
    m.add_class::<client::Listener>()?;
    m.add_class::<values::Namespace>()?;
    m.add_class::<values::ChangeEvent>()?;
    m.add_class::<values::Change>()?;
    m.add_function(wrap_pyfunction!(logbridge::refresh_log_level, m)?)?;
    logbridge::install(m.py());
    Ok(())
}
