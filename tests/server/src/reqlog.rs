//! The request log of one instance, bounded by entries and by bytes.

use std::collections::VecDeque;

use crate::types::RecordedRequest;

/// Default bound of the request log in bytes (see [`RecordedRequest`]'s accounted size).
pub const DEFAULT_LOG_BYTES: usize = 32 << 20;
/// Entries kept at most, whatever their size.
pub const MAX_LOG_ENTRIES: usize = 100_000;

/// What one entry is accounted as: its text plus a fixed overhead per entry and header.
fn cost(r: &RecordedRequest) -> usize {
    96 + r.method.len()
        + r.path.len()
        + r.endpoint.len()
        + r.headers
            .iter()
            .map(|(k, v)| 48 + k.len() + v.len())
            .sum::<usize>()
}

/// Oldest first; pushing past a bound drops the oldest entries (O(1) each).
#[derive(Debug)]
pub struct RequestLog {
    entries: VecDeque<RecordedRequest>,
    bytes: usize,
    limit: usize,
}

impl RequestLog {
    /// A log holding at most `limit_bytes` (accounted) and [`MAX_LOG_ENTRIES`] entries.
    pub fn new(limit_bytes: usize) -> RequestLog {
        RequestLog {
            entries: VecDeque::new(),
            bytes: 0,
            limit: limit_bytes,
        }
    }

    /// Appends an entry; drops the oldest ones while a bound is passed. An entry larger
    /// than the whole budget is not kept.
    pub fn push(&mut self, r: RecordedRequest) {
        let c = cost(&r);
        if c > self.limit {
            return;
        }
        while !self.entries.is_empty()
            && (self.bytes + c > self.limit || self.entries.len() >= MAX_LOG_ENTRIES)
        {
            if let Some(old) = self.entries.pop_front() {
                self.bytes -= cost(&old);
            }
        }
        self.bytes += c;
        self.entries.push_back(r);
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> &VecDeque<RecordedRequest> {
        &self.entries
    }

    /// Accounted size of what is kept.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: usize, header_bytes: usize) -> RecordedRequest {
        RecordedRequest {
            method: "GET".into(),
            path: format!("/configs/A/default/application?i={i}"),
            headers: vec![("x-pad".into(), "p".repeat(header_bytes))],
            time_ms: 0,
            endpoint: "configs".into(),
        }
    }

    #[test]
    fn bounded_by_bytes_oldest_dropped_first() {
        let mut log = RequestLog::new(100_000);
        for i in 0..1000 {
            log.push(entry(i, 10_000));
            assert!(log.bytes() <= 100_000);
        }
        let kept = log.entries().len();
        assert!((8..=10).contains(&kept), "{kept}");
        assert!(log.entries()[kept - 1].path.ends_with("i=999"));
        assert!(
            log.entries()[0]
                .path
                .ends_with(&format!("i={}", 1000 - kept))
        );
        // Larger than everything: not kept, nothing else lost.
        log.push(entry(5000, 200_000));
        assert_eq!(log.entries().len(), kept);
        log.clear();
        assert_eq!((log.entries().len(), log.bytes()), (0, 0));
    }

    /// Dropping the oldest entry is O(1): 200,000 pushes past a full log of 100,000 take
    /// milliseconds (shifting a `Vec` each time would take minutes).
    #[test]
    fn bounded_by_entries() {
        let mut log = RequestLog::new(usize::MAX);
        let t = std::time::Instant::now();
        for i in 0..3 * MAX_LOG_ENTRIES {
            log.push(entry(i, 0));
        }
        assert_eq!(log.entries().len(), MAX_LOG_ENTRIES);
        assert!(
            log.entries()[0]
                .path
                .ends_with(&format!("i={}", 2 * MAX_LOG_ENTRIES))
        );
        assert!(
            t.elapsed() < std::time::Duration::from_secs(20),
            "{:?}",
            t.elapsed()
        );
    }
}
