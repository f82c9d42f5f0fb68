//! [`SqliteStorage`]: a `cert_store::Storage` backend on one SQLite file.
//!
//! Copy this file into your application to keep certificates, ACME accounts
//! and leases in SQLite (`rusqlite` with its `bundled` feature: SQLite is
//! compiled in, nothing to install). Two tables:
//!
//! - `kv(key, value, modified_ns)`: the values, with the time of the last put
//!   (nanoseconds since the Unix epoch, moved forward by at least 1 ns per
//!   put so that `stat` sees every write);
//! - `leases(name, holder, expires_ns)`: one row per held lease, expiring on
//!   the wall clock — the clock every process on this machine shares (the
//!   file is not meant to be shared between machines).
//!
//! Values hold private keys: the file is created `0600` (SQLite gives its
//! journal the same mode). rusqlite is blocking, so every call runs on
//! Tokio's blocking pool with the one connection behind a mutex.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use cert_store::{Key, KeyInfo, Prefix, Storage, StorageError, async_trait};
use rusqlite::{Connection, OptionalExtension, params};

/// A [`Storage`] on one SQLite file; several processes on one machine may
/// open the same file (SQLite locks it; leases are rows with an expiry).
#[derive(Clone)]
pub struct SqliteStorage {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStorage").field("path", &self.path).finish_non_exhaustive()
    }
}

const SCHEMA: &str = "
    PRAGMA journal_mode = WAL;
    PRAGMA synchronous = FULL;
    CREATE TABLE IF NOT EXISTS kv (
        key TEXT PRIMARY KEY NOT NULL,
        value BLOB NOT NULL,
        modified_ns INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS leases (
        name TEXT PRIMARY KEY NOT NULL,
        holder TEXT NOT NULL,
        expires_ns INTEGER NOT NULL
    );
";

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> StorageError {
    StorageError::backend(e)
}

/// Now, in nanoseconds since the Unix epoch (the unit of both tables).
fn now_ns() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_nanos()).unwrap_or(i64::MAX)
}

fn ttl_ns(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_nanos()).unwrap_or(i64::MAX)
}

impl SqliteStorage {
    /// Opens (creating it `0600` if needed) the database at `path`.
    ///
    /// # Errors
    /// [`StorageError::Io`] when the file cannot be created or its mode set,
    /// [`StorageError::Backend`] when SQLite cannot open it.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StorageError> {
        let path = path.as_ref().to_path_buf();
        let io = |source| StorageError::Io { path: path.clone(), source };
        // Create the file ourselves, owner-only, before SQLite opens it: SQLite
        // would create it with the process umask (often 0644), and values hold
        // private keys. An existing file is tightened too.
        #[cfg(unix)]
        {
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(&path).map_err(io)?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        }
        let conn = Connection::open(&path).map_err(backend)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(backend)?;
        conn.execute_batch(SCHEMA).map_err(backend)?;
        Ok(Self { conn: Arc::new(Mutex::new(conn)), path })
    }

    /// Where the database lives.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn with_conn<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StorageError> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut conn)
        })
        .await
        .map_err(backend)?
        .map_err(backend)
    }
}

#[async_trait]
impl Storage for SqliteStorage {
    async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StorageError> {
        let key = key.to_string();
        self.with_conn(move |c| {
            c.query_row("SELECT value FROM kv WHERE key = ?1", [key], |row| row.get(0)).optional()
        })
        .await
    }

    async fn put(&self, key: &Key, value: &[u8]) -> Result<(), StorageError> {
        let (key, value) = (key.to_string(), value.to_vec());
        // One statement: atomic, and `modified_ns` moves forward even when the
        // clock has not (two puts within its resolution).
        self.with_conn(move |c| {
            c.execute(
                "INSERT INTO kv (key, value, modified_ns) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value,
                     modified_ns = MAX(excluded.modified_ns, kv.modified_ns + 1)",
                params![key, value, now_ns()],
            )
        })
        .await?;
        Ok(())
    }

    async fn delete(&self, key: &Key) -> Result<(), StorageError> {
        let key = key.to_string();
        self.with_conn(move |c| c.execute("DELETE FROM kv WHERE key = ?1", [key])).await?;
        Ok(())
    }

    async fn list(&self, prefix: &Prefix) -> Result<Vec<Key>, StorageError> {
        let prefix = prefix.as_str().to_owned();
        let keys: Vec<String> = self
            .with_conn(move |c| {
                // Segment-wise: the key itself, or keys in ["p/", "p0") ('0' follows
                // '/'); TEXT compares bytewise, the order of Rust strings.
                let mut stmt = c.prepare(
                    "SELECT key FROM kv
                     WHERE ?1 = '' OR key = ?1 OR (key >= ?1 || '/' AND key < ?1 || '0')
                     ORDER BY key",
                )?;
                let rows = stmt.query_map([prefix], |row| row.get(0))?;
                rows.collect()
            })
            .await?;
        keys.into_iter().map(Key::new).collect()
    }

    async fn stat(&self, key: &Key) -> Result<Option<KeyInfo>, StorageError> {
        let key = key.to_string();
        let row: Option<(i64, i64)> = self
            .with_conn(move |c| {
                c.query_row("SELECT length(value), modified_ns FROM kv WHERE key = ?1", [key], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .optional()
            })
            .await?;
        Ok(row.map(|(size, modified)| KeyInfo {
            size: u64::try_from(size).unwrap_or(0),
            modified: UNIX_EPOCH + Duration::from_nanos(u64::try_from(modified).unwrap_or(0)),
        }))
    }

    async fn try_acquire_lease(&self, name: &Key, holder: &str, ttl: Duration) -> Result<bool, StorageError> {
        let (name, holder) = (name.to_string(), holder.to_owned());
        // Taken when free (no row), expired, or already ours (then extended).
        let changed = self
            .with_conn(move |c| {
                let now = now_ns();
                c.execute(
                    "INSERT INTO leases (name, holder, expires_ns) VALUES (?1, ?2, ?3)
                     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_ns = excluded.expires_ns
                     WHERE leases.holder = excluded.holder OR leases.expires_ns <= ?4",
                    params![name, holder, now.saturating_add(ttl_ns(ttl)), now],
                )
            })
            .await?;
        Ok(changed == 1)
    }

    async fn renew_lease(&self, name: &Key, holder: &str, ttl: Duration) -> Result<bool, StorageError> {
        let (name, holder) = (name.to_string(), holder.to_owned());
        // Still ours (even if expired, as long as nobody took it).
        let changed = self
            .with_conn(move |c| {
                c.execute(
                    "UPDATE leases SET expires_ns = ?3 WHERE name = ?1 AND holder = ?2",
                    params![name, holder, now_ns().saturating_add(ttl_ns(ttl))],
                )
            })
            .await?;
        Ok(changed == 1)
    }

    async fn release_lease(&self, name: &Key, holder: &str) -> Result<(), StorageError> {
        let (name, holder) = (name.to_string(), holder.to_owned());
        // Only the holder's own row: a holder that lost the lease frees nothing.
        self.with_conn(move |c| {
            c.execute("DELETE FROM leases WHERE name = ?1 AND holder = ?2", params![name, holder])
        })
        .await?;
        Ok(())
    }
}
