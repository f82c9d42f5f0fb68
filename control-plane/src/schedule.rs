//! [`Schedule`]: when each connection is next due for the worker, kept in
//! memory so that a tick costs the due connections, not all of them.
//!
//! Every write of this edge updates it (through [`Repo`](crate::Repo));
//! what other edges sharing the store wrote is seen at the next full scan,
//! which the worker runs every [`Settings::rescan_interval`](crate::Settings::rescan_interval).

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use time::OffsetDateTime;

/// Next-due times by connection id.
///
/// ```
/// use control_plane::Schedule;
/// use time::{Duration, OffsetDateTime};
/// let now = OffsetDateTime::now_utc();
/// let s = Schedule::default();
/// s.set("a1", Some(now - Duration::SECOND));
/// s.set("b2", Some(now + Duration::HOUR));
/// s.set("c3", None); // archived: never due
/// assert_eq!(s.due(now, 10), ["a1"]);
/// ```
#[derive(Debug, Default)]
pub struct Schedule {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    queue: BTreeSet<(OffsetDateTime, String)>,
    at: HashMap<String, OffsetDateTime>,
    scanned: Option<Instant>,
}

impl Inner {
    fn set(&mut self, id: &str, at: Option<OffsetDateTime>) {
        if let Some(old) = self.at.remove(id) {
            self.queue.remove(&(old, id.to_owned()));
        }
        if let Some(at) = at {
            self.at.insert(id.to_owned(), at);
            self.queue.insert((at, id.to_owned()));
        }
    }
}

impl Schedule {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Connection `id` is next due `at`; `None`: never (archived, deleted).
    pub fn set(&self, id: &str, at: Option<OffsetDateTime>) {
        self.lock().set(id, at);
    }

    /// Up to `limit` ids due at `now`, earliest first. They stay scheduled
    /// until their next write moves them.
    #[must_use]
    pub fn due(&self, now: OffsetDateTime, limit: usize) -> Vec<String> {
        self.lock()
            .queue
            .iter()
            .take_while(|(at, _)| *at <= now)
            .take(limit)
            .map(|(_, id)| id.clone())
            .collect()
    }

    /// Replaces everything with a full scan's result.
    pub fn replace_all(&self, entries: impl IntoIterator<Item = (String, Option<OffsetDateTime>)>) {
        let mut fresh = Inner { scanned: Some(Instant::now()), ..Inner::default() };
        for (id, at) in entries {
            fresh.set(&id, at);
        }
        *self.lock() = fresh;
    }

    /// Whether the last full scan is older than `every` (or there was none).
    #[must_use]
    pub fn needs_scan(&self, every: Duration) -> bool {
        self.lock().scanned.is_none_or(|t| t.elapsed() >= every)
    }

    /// How many connections are scheduled.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().at.len()
    }

    /// Whether none is.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use time::Duration;

    use super::*;

    #[test]
    fn a_move_replaces_the_old_time_and_archived_leaves() {
        let now = OffsetDateTime::now_utc();
        let s = Schedule::default();
        s.set("a", Some(now - Duration::MINUTE));
        s.set("b", Some(now - Duration::HOUR));
        assert_eq!(s.due(now, 10), ["b", "a"], "earliest first");
        assert_eq!(s.due(now, 1), ["b"]);
        s.set("b", Some(now + Duration::HOUR));
        assert_eq!(s.due(now, 10), ["a"]);
        s.set("a", None);
        assert!(s.due(now, 10).is_empty());
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn a_full_scan_replaces_everything() {
        let now = OffsetDateTime::now_utc();
        let s = Schedule::default();
        assert!(s.needs_scan(std::time::Duration::from_secs(30)));
        s.set("gone", Some(now));
        s.replace_all([("x".to_owned(), Some(now)), ("y".to_owned(), None)]);
        assert_eq!(s.due(now, 10), ["x"]);
        assert!(!s.needs_scan(std::time::Duration::from_secs(30)));
        assert!(s.needs_scan(std::time::Duration::ZERO));
    }
}
