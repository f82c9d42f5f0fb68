//! The change feed: how every process sharing a store learns, within one
//! poll, that a certificate was saved or deleted by another.
//!
//! [`CertStore::save`](crate::CertStore::save) and
//! [`delete`](crate::CertStore::delete) leave a small record
//! `tls/changes/<time>-<random>` whose value is the certificate's name.
//! [`CertStore::changes_since`](crate::CertStore::changes_since) lists
//! those records and returns the names of the ones this [`ChangeCursor`]
//! has not seen; records older than [`CHANGE_RETENTION`] are deleted by
//! whichever process polls. The cursor remembers the records it has seen
//! (not a time), so a writer whose clock lags the reader's is not missed.
//! One `list` per poll on every backend; no backend-specific notification
//! is needed (PostgreSQL's `LISTEN/NOTIFY` would save the poll, at the cost
//! of a second code path).

use std::{collections::HashSet, time::Duration};

use time::OffsetDateTime;

use crate::{
    Key, Prefix, Storage, StorageError, keys,
    keys::{record_time, timed_record as record_name},
};

/// How long change records are kept: a process that polls less often than
/// this may miss changes (it then sees the stored state at its next load).
pub const CHANGE_RETENTION: Duration = Duration::from_secs(300);

/// What one process has seen of the change feed.
#[derive(Debug, Default)]
pub struct ChangeCursor {
    seen: HashSet<String>,
    primed: bool,
}

fn last_segment(key: &Key) -> &str {
    key.as_str().rsplit('/').next().unwrap_or_default()
}

/// Leaves a record that `name`'s certificate changed.
pub(crate) async fn record<S: Storage + ?Sized>(storage: &S, name: &str) -> Result<(), StorageError> {
    let key = keys::change(&record_name(OffsetDateTime::now_utc()))?;
    storage.put(&key, name.as_bytes()).await
}

/// The names changed since `cursor` last looked (none on the first call,
/// which only marks what is there as seen); prunes old records.
pub(crate) async fn since<S: Storage + ?Sized>(
    storage: &S,
    cursor: &mut ChangeCursor,
) -> Result<Vec<String>, StorageError> {
    let prefix: Prefix = keys::changes();
    let found = storage.list(&prefix).await?;
    let oldest_kept = OffsetDateTime::now_utc() - CHANGE_RETENTION;
    let mut present = HashSet::with_capacity(found.len());
    let mut names = Vec::new();
    for key in found {
        let record = last_segment(&key).to_owned();
        if record_time(&record).is_some_and(|at| at < oldest_kept) {
            storage.delete(&key).await?;
            continue;
        }
        if cursor.primed
            && !cursor.seen.contains(&record)
            && let Some(value) = storage.get(&key).await?
        {
            names.push(String::from_utf8_lossy(&value).into_owned());
        }
        present.insert(record);
    }
    // Forget records that are gone (pruned): the set stays as small as the feed.
    cursor.seen = present;
    cursor.primed = true;
    names.sort();
    names.dedup();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStorage;

    #[tokio::test]
    async fn each_cursor_sees_each_change_once_and_old_records_are_pruned() {
        let storage = MemoryStorage::new();
        let (mut a, mut b) = (ChangeCursor::default(), ChangeCursor::default());
        record(&storage, "before.example.com").await.unwrap();
        assert!(since(&storage, &mut a).await.unwrap().is_empty(), "the first look only primes");
        assert!(since(&storage, &mut b).await.unwrap().is_empty());
        record(&storage, "shop.example.com").await.unwrap();
        record(&storage, "shop.example.com").await.unwrap();
        record(&storage, "blog.example.com").await.unwrap();
        assert_eq!(since(&storage, &mut a).await.unwrap(), ["blog.example.com", "shop.example.com"]);
        assert!(since(&storage, &mut a).await.unwrap().is_empty(), "seen once");
        assert_eq!(since(&storage, &mut b).await.unwrap(), ["blog.example.com", "shop.example.com"]);

        // A record from a writer whose clock is behind is still seen.
        let late =
            keys::change(&record_name(OffsetDateTime::now_utc() - time::Duration::seconds(30))).unwrap();
        storage.put(&late, b"late.example.com").await.unwrap();
        assert_eq!(since(&storage, &mut a).await.unwrap(), ["late.example.com"]);

        let old = keys::change(&record_name(OffsetDateTime::now_utc() - time::Duration::hours(1))).unwrap();
        storage.put(&old, b"old.example.com").await.unwrap();
        since(&storage, &mut a).await.unwrap();
        assert!(storage.get(&old).await.unwrap().is_none(), "records past the retention are deleted");
    }
}
