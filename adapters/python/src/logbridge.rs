//! The native crate's `log` records go to Python's `logging`, under the `apolloconf`
//! logger.
//!
//! Records come from the client's own threads (driver, HTTP workers, dispatcher). Each one
//! attaches to the interpreter for the call to `logging` (records are rare: warnings and
//! errors, debug lines only when Python asked for them); while the interpreter shuts down
//! they are dropped. `log`'s maximum level follows the effective level of the
//! `apolloconf` logger (read at import and at every client start, or by
//! `refresh_log_level()`), so records Python would drop never take the GIL.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

static LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

struct Bridge;

static BRIDGE: Bridge = Bridge;

fn python_level(level: log::Level) -> u32 {
    match level {
        log::Level::Error => 40,
        log::Level::Warn => 30,
        log::Level::Info => 20,
        log::Level::Debug => 10,
        log::Level::Trace => 5,
    }
}

fn logger(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    LOGGER
        .get_or_try_init(py, || {
            py.import("logging")?
                .call_method1("getLogger", ("apolloconf",))
                .map(Bound::unbind)
        })
        .map(|l| l.bind(py))
}

impl log::Log for Bridge {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let message = record.args().to_string();
        let level = python_level(record.level());
        let _ = Python::try_attach(|py| {
            if let Ok(l) = logger(py) {
                // A failing handler is Python's business; it must never reach the client.
                let _ = l.call_method1("log", (level, message));
            }
        });
    }

    fn flush(&self) {}
}

/// Set `log`'s maximum level from the `apolloconf` logger's effective level.
pub(crate) fn refresh(py: Python<'_>) {
    let level: u32 = logger(py)
        .and_then(|l| l.call_method0("getEffectiveLevel"))
        .and_then(|v| v.extract())
        .unwrap_or(30);
    let max = match level {
        0..=5 => log::LevelFilter::Trace,
        6..=10 => log::LevelFilter::Debug,
        11..=20 => log::LevelFilter::Info,
        21..=30 => log::LevelFilter::Warn,
        31..=40 => log::LevelFilter::Error,
        _ => log::LevelFilter::Off,
    };
    log::set_max_level(max);
}

/// Install the bridge (once per process; another `log` logger already installed in the
/// process keeps its place).
pub(crate) fn install(py: Python<'_>) {
    if log::set_logger(&BRIDGE).is_ok() {
        refresh(py);
    }
}

/// Re-read the effective level of the `apolloconf` logger (after changing it, to see
/// records below the level it had when the client started).
#[pyfunction]
pub(crate) fn refresh_log_level(py: Python<'_>) {
    refresh(py);
}
