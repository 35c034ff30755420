//! Request bookkeeping: ids, who owns each request in flight, and the safety net that
//! gives a request up when the host never answers it.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use crate::io::RequestId;
use crate::time::Instant;

/// Extra time the core waits past a request's own timeouts before it gives the request
/// up itself (a safety net against hosts that never answer).
const SAFETY_GRACE: Duration = Duration::from_secs(5);
/// How many ids of given-up requests are remembered (late answers are then ignored).
const RETIRED: usize = 1024;

/// The part of the client a request belongs to; its answer is routed there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    Discovery,
    /// The fetch of the namespace at this index.
    Configs(usize),
    Poll,
}

/// A request in flight.
#[derive(Debug, Clone)]
pub(crate) struct InFlight {
    pub(crate) owner: Owner,
    /// The meta server or config service it went to.
    pub(crate) service: String,
    deadline: Instant,
}

/// What an answer's id stands for.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// A request in flight (now removed from the table).
    Live(InFlight),
    /// A request the core gave up or abandoned: its answer is ignored.
    Retired,
    /// An id this client never issued.
    Unknown,
}

/// Every request in flight, by id.
#[derive(Debug, Clone)]
pub(crate) struct Requests {
    next_id: u64,
    live: BTreeMap<u64, InFlight>,
    retired: VecDeque<u64>,
}

impl Requests {
    pub(crate) fn new() -> Requests {
        Requests {
            next_id: 1,
            live: BTreeMap::new(),
            retired: VecDeque::new(),
        }
    }

    /// Register a request to `service` sent at `now` with the given connect and read
    /// timeouts; returns its id.
    pub(crate) fn open(
        &mut self,
        owner: Owner,
        service: String,
        now: Instant,
        connect: Duration,
        read: Duration,
    ) -> RequestId {
        let id = self.next_id;
        self.next_id += 1;
        let deadline = now + connect + read + SAFETY_GRACE;
        self.live.insert(
            id,
            InFlight {
                owner,
                service,
                deadline,
            },
        );
        RequestId(id)
    }

    /// When the earliest safety net fires.
    pub(crate) fn due(&self) -> Option<Instant> {
        self.live.values().map(|r| r.deadline).min()
    }

    /// The requests whose safety net has fired at `now`, oldest id first.
    pub(crate) fn expired(&self, now: Instant) -> Vec<RequestId> {
        self.live
            .iter()
            .filter(|(_, r)| r.deadline <= now)
            .map(|(id, _)| RequestId(*id))
            .collect()
    }

    /// Take the request an answer is for out of the table.
    pub(crate) fn take(&mut self, id: RequestId) -> Lookup {
        match self.live.remove(&id.0) {
            Some(r) => Lookup::Live(r),
            None if self.retired.contains(&id.0) => Lookup::Retired,
            None => Lookup::Unknown,
        }
    }

    /// Remember that `id` was given up, so a late answer is ignored, not an error.
    pub(crate) fn retire(&mut self, id: RequestId) {
        if self.retired.len() >= RETIRED {
            self.retired.pop_front();
        }
        self.retired.push_back(id.0);
    }

    /// Give up every request in flight (close).
    pub(crate) fn abandon_all(&mut self) {
        for id in core::mem::take(&mut self.live).into_keys() {
            self.retire(RequestId(id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_routed_once() {
        let mut r = Requests::new();
        let s = Duration::from_secs;
        let t0 = Instant::ZERO;
        let a = r.open(Owner::Poll, "p".into(), t0, s(1), s(90));
        let b = r.open(Owner::Configs(2), "c".into(), t0, s(1), s(5));
        assert_eq!(r.due(), Some(Instant::from_millis(11_000)));
        assert!(r.expired(Instant::from_millis(10_999)).is_empty());
        assert_eq!(r.expired(Instant::from_millis(11_000)), [b]);
        assert!(matches!(
            r.take(b),
            Lookup::Live(InFlight {
                owner: Owner::Configs(2),
                ..
            })
        ));
        assert!(matches!(r.take(b), Lookup::Unknown));
        r.abandon_all();
        assert!(matches!(r.take(a), Lookup::Retired));
        assert_eq!(r.due(), None);
    }
}
