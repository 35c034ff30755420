//! Marks: the points of a scenario that requests are counted from (`sinceMark`).

use apolloconf_testserver::RecordedRequest;

/// A mark taken at `ms` (milliseconds since the Unix epoch). The server records when each
/// request arrived in whole milliseconds, so a request of the mark's own millisecond may
/// have come before the mark or after it: those already in an instance's log when the mark
/// was taken came before it (`before[i]` of them on instance `i`).
pub struct Mark {
    ms: u64,
    before: Vec<usize>,
}

impl Mark {
    /// A mark at `ms`, given every instance's log as it is now.
    pub fn new(ms: u64, logs: impl IntoIterator<Item = Vec<RecordedRequest>>) -> Mark {
        let before = logs
            .into_iter()
            .map(|log| log.iter().filter(|r| r.time_ms == ms).count())
            .collect();
        Mark { ms, before }
    }

    /// The requests of instance `on` (its log, oldest first) that came after the mark.
    pub fn requests_after<'a>(
        &self,
        on: usize,
        log: &'a [RecordedRequest],
    ) -> Vec<&'a RecordedRequest> {
        let before = self.before.get(on).copied().unwrap_or(0);
        let mut of_its_ms = 0;
        log.iter()
            .filter(|r| {
                if r.time_ms != self.ms {
                    return r.time_ms > self.ms;
                }
                of_its_ms += 1;
                of_its_ms > before
            })
            .collect()
    }
}
