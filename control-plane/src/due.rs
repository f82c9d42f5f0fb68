//! [`DueIndex`]: when each connection is next due for the worker, in the
//! shared store, so that a worker round costs the connections due now —
//! not a scan of all of them — and every edge sees what the others wrote.
//!
//! An entry is an empty record `edge/due/<minute>/<secs>-<id>` in the bucket
//! of the minute it is due in. Writing a connection moves its entry (the new
//! one is written before the old one is deleted, so a crash leaves a stale
//! entry — skipped and removed by the worker — never none). A worker round
//! lists the buckets from its low-water mark to the current minute: one
//! listing per minute, each as cheap as the entries in it on every backend.
//! Buckets of the last [`GRACE_MINUTES`] are always read again, for entries
//! another edge (whose clock may be a little behind) wrote late.

use std::sync::{Arc, Mutex, PoisonError};

use cert_store::{Key, Storage, StorageError};
use time::OffsetDateTime;

use crate::keys;

/// Minutes behind the current one whose buckets every round reads again.
pub const GRACE_MINUTES: i64 = 5;

/// How far back an edge with no low-water mark looks (a store written by
/// an edge without the index is migrated first, which sets the mark).
const FIRST_LOOK_BACK_MINUTES: i64 = 60;

/// One due entry: the connection and the storage key of its entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueEntry {
    /// The connection's id.
    pub id: String,
    /// When it is due.
    pub at: OffsetDateTime,
    /// The entry's key (the worker deletes it if stale).
    pub key: Key,
}

/// The due index in a [`Storage`].
#[derive(Clone)]
pub struct DueIndex {
    storage: Arc<dyn Storage>,
    /// The earliest minute that may still hold entries, as this edge knows.
    low_water: Arc<Mutex<Option<i64>>>,
}

impl std::fmt::Debug for DueIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DueIndex").finish_non_exhaustive()
    }
}

fn minute(at: OffsetDateTime) -> i64 {
    at.unix_timestamp().div_euclid(60)
}

fn bucket_name(minute: i64) -> String {
    format!("{minute:012}")
}

/// The key of `id`'s entry when due `at`.
///
/// # Errors
/// When `id` cannot be part of a key.
pub fn entry_key(id: &str, at: OffsetDateTime) -> Result<Key, StorageError> {
    keys::due_entry(&bucket_name(minute(at)), &format!("{:012}-{id}", at.unix_timestamp()))
}

impl DueIndex {
    /// The index in `storage`.
    #[must_use]
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self { storage, low_water: Arc::default() }
    }

    /// Moves `id`'s entry from `old` to `new` (`None`: not due, e.g.
    /// archived): [`add`](Self::add) then [`remove`](Self::remove).
    ///
    /// # Errors
    /// When the storage fails.
    pub async fn set(
        &self,
        id: &str,
        old: Option<OffsetDateTime>,
        new: Option<OffsetDateTime>,
    ) -> Result<(), StorageError> {
        let old_key = old.map(|at| entry_key(id, at)).transpose()?;
        if let Some(at) = new {
            if old_key.as_ref() == Some(&entry_key(id, at)?) {
                return Ok(());
            }
            self.add(id, at).await?;
        }
        match old_key {
            Some(key) => self.remove(&key).await,
            None => Ok(()),
        }
    }

    /// Writes `id`'s entry for `at`.
    ///
    /// # Errors
    /// When the storage fails.
    pub async fn add(&self, id: &str, at: OffsetDateTime) -> Result<(), StorageError> {
        self.storage.put(&entry_key(id, at)?, b"").await?;
        let m = minute(at);
        let mut low = self.low_water.lock().unwrap_or_else(PoisonError::into_inner);
        if low.is_some_and(|l| m < l) {
            *low = Some(m);
        }
        Ok(())
    }

    /// Removes one entry (an old one, or a stale one found by the worker).
    ///
    /// # Errors
    /// When the storage fails.
    pub async fn remove(&self, key: &Key) -> Result<(), StorageError> {
        self.storage.delete(key).await
    }

    async fn start_minute(&self, now: OffsetDateTime) -> Result<i64, StorageError> {
        if let Some(m) = *self.low_water.lock().unwrap_or_else(PoisonError::into_inner) {
            return Ok(m);
        }
        let stored = match self.storage.get(&keys::due_low_water()?).await? {
            Some(bytes) => String::from_utf8_lossy(&bytes).trim().parse::<i64>().ok(),
            None => None,
        };
        let m = stored.unwrap_or_else(|| minute(now) - FIRST_LOOK_BACK_MINUTES);
        *self.low_water.lock().unwrap_or_else(PoisonError::into_inner) = Some(m);
        Ok(m)
    }

    /// Lowers the stored low-water mark to `minute` if it is above (the
    /// migration, which writes entries in the past).
    ///
    /// # Errors
    /// When the storage fails.
    pub async fn lower_low_water(&self, minute: i64) -> Result<(), StorageError> {
        let current = self.start_minute(OffsetDateTime::now_utc()).await?;
        if minute < current {
            self.storage.put(&keys::due_low_water()?, minute.to_string().as_bytes()).await?;
            *self.low_water.lock().unwrap_or_else(PoisonError::into_inner) = Some(minute);
        }
        Ok(())
    }

    /// The entries due at `now`, earliest minute first, at most `limit`.
    /// Buckets found empty below the grace window move the low-water mark
    /// past them (stored, for the next edge that starts).
    ///
    /// # Errors
    /// When the storage fails.
    pub async fn due(&self, now: OffsetDateTime, limit: usize) -> Result<Vec<DueEntry>, StorageError> {
        let current = minute(now);
        let start = self.start_minute(now).await?;
        // The new low-water mark: past every empty bucket at the start.
        let mut low = start;
        let mut out = Vec::new();
        for m in start..=current {
            let found = self.storage.list(&keys::due_bucket(&bucket_name(m))?).await?;
            if found.is_empty() && m == low && m < current - GRACE_MINUTES {
                low = m + 1;
                continue;
            }
            for key in found {
                let name = key.as_str().rsplit('/').next().unwrap_or_default();
                let Some((secs, id)) = name.split_once('-') else { continue };
                let Some(at) =
                    secs.parse::<i64>().ok().and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
                else {
                    continue;
                };
                if at <= now && out.len() < limit {
                    out.push(DueEntry { id: id.to_owned(), at, key });
                }
            }
            if out.len() >= limit {
                break;
            }
        }
        if low != start {
            *self.low_water.lock().unwrap_or_else(PoisonError::into_inner) = Some(low);
            self.storage.put(&keys::due_low_water()?, low.to_string().as_bytes()).await?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cert_store::MemoryStorage;
    use time::Duration;

    #[tokio::test]
    async fn a_move_replaces_the_old_entry_and_archived_leaves() {
        let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        let index = DueIndex::new(Arc::new(MemoryStorage::new()));
        index.set("a", None, Some(now - Duration::MINUTE)).await.unwrap();
        index.set("b", None, Some(now - Duration::minutes(3))).await.unwrap();
        let ids = |v: Vec<DueEntry>| v.into_iter().map(|e| e.id).collect::<Vec<_>>();
        assert_eq!(ids(index.due(now, 10).await.unwrap()), ["b", "a"], "earliest first");
        assert_eq!(ids(index.due(now, 1).await.unwrap()), ["b"]);
        index.set("b", Some(now - Duration::minutes(3)), Some(now + Duration::HOUR)).await.unwrap();
        assert_eq!(ids(index.due(now, 10).await.unwrap()), ["a"]);
        index.set("a", Some(now - Duration::MINUTE), None).await.unwrap();
        assert!(index.due(now, 10).await.unwrap().is_empty());
        assert_eq!(ids(index.due(now + Duration::hours(2), 10).await.unwrap()), ["b"]);
    }

    #[tokio::test]
    async fn another_edge_sees_the_entries_and_starts_at_the_low_water_mark() {
        let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
        let now = OffsetDateTime::now_utc();
        let first = DueIndex::new(Arc::clone(&storage));
        first.set("old", None, Some(now - Duration::hours(30))).await.unwrap();
        first.lower_low_water(minute(now - Duration::hours(30))).await.unwrap();
        first.set("new", None, Some(now)).await.unwrap();
        let second = DueIndex::new(Arc::clone(&storage));
        let due: Vec<_> = second.due(now, 10).await.unwrap().into_iter().map(|e| e.id).collect();
        assert_eq!(due, ["old", "new"]);
        // Once "old" moves on, the empty minutes are passed for good.
        second.set("old", Some(now - Duration::hours(30)), Some(now + Duration::HOUR)).await.unwrap();
        second.due(now, 10).await.unwrap();
        let stored = storage.get(&keys::due_low_water().unwrap()).await.unwrap().unwrap();
        let low: i64 = String::from_utf8(stored).unwrap().parse().unwrap();
        assert!(low >= minute(now) - GRACE_MINUTES - 1, "low-water moved up to the grace window");
    }
}
