//! A backend on PostgreSQL, for a fleet of nodes sharing one store.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use crate::{Key, KeyInfo, Prefix, Storage, StorageError};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS cert_store_values (
    key      TEXT PRIMARY KEY,
    value    BYTEA NOT NULL,
    modified TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE IF NOT EXISTS cert_store_leases (
    name    TEXT PRIMARY KEY,
    holder  TEXT NOT NULL,
    expires TIMESTAMPTZ NOT NULL
);";

/// A [`Storage`] in PostgreSQL: values in `cert_store_values`, leases in
/// `cert_store_leases` with the expiry taken from the database clock, so
/// every node agrees on it. The tables are created on first connect.
///
/// Lease acquisition is one `INSERT … ON CONFLICT DO UPDATE … WHERE expired
/// OR ours` statement: atomic, whatever the number of nodes.
///
/// ```no_run
/// # async fn demo() -> Result<(), cert_store::StorageError> {
/// use cert_store::PostgresStorage;
/// let store = PostgresStorage::connect("host=127.0.0.1 port=5432 user=postgres dbname=certs").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PostgresStorage {
    pool: Pool,
}

impl std::fmt::Debug for PostgresStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStorage").finish_non_exhaustive()
    }
}

impl PostgresStorage {
    /// Connects with a libpq-style connection string or `postgres://` URL
    /// (pool of up to 16 connections) and creates the schema if needed.
    ///
    /// # Errors
    /// [`StorageError::Backend`] when the string is invalid or the database
    /// cannot be reached.
    pub async fn connect(config: &str) -> Result<Self, StorageError> {
        let pg_config: tokio_postgres::Config = config.parse().map_err(StorageError::backend)?;
        let manager =
            Manager::from_config(pg_config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager).max_size(16).build().map_err(StorageError::backend)?;
        let this = Self { pool };
        this.create_schema().await?;
        Ok(this)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StorageError> {
        self.pool.get().await.map_err(StorageError::backend)
    }

    async fn create_schema(&self) -> Result<(), StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(StorageError::backend)?;
        // Concurrent CREATE TABLE IF NOT EXISTS can still collide; serialise it.
        tx.execute("SELECT pg_advisory_xact_lock(7320125911)", &[]).await.map_err(StorageError::backend)?;
        tx.batch_execute(SCHEMA).await.map_err(StorageError::backend)?;
        tx.commit().await.map_err(StorageError::backend)
    }
}

fn ttl_ms(ttl: Duration) -> f64 {
    ttl.as_secs_f64() * 1000.0
}

#[async_trait]
impl Storage for PostgresStorage {
    async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StorageError> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT value FROM cert_store_values WHERE key = $1", &[&key.as_str()])
            .await
            .map_err(StorageError::backend)?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn put(&self, key: &Key, value: &[u8]) -> Result<(), StorageError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO cert_store_values (key, value, modified) VALUES ($1, $2, clock_timestamp())
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, modified = EXCLUDED.modified",
                &[&key.as_str(), &value],
            )
            .await
            .map_err(StorageError::backend)?;
        Ok(())
    }

    async fn delete(&self, key: &Key) -> Result<(), StorageError> {
        let client = self.client().await?;
        client
            .execute("DELETE FROM cert_store_values WHERE key = $1", &[&key.as_str()])
            .await
            .map_err(StorageError::backend)?;
        Ok(())
    }

    async fn list(&self, prefix: &Prefix) -> Result<Vec<Key>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT key FROM cert_store_values
                 WHERE $1 = '' OR key = $1 OR starts_with(key, $1 || '/') ORDER BY key",
                &[&prefix.as_str()],
            )
            .await
            .map_err(StorageError::backend)?;
        rows.iter().map(|r| Key::new(r.get::<_, String>(0))).collect()
    }

    async fn stat(&self, key: &Key) -> Result<Option<KeyInfo>, StorageError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT octet_length(value)::BIGINT, modified FROM cert_store_values WHERE key = $1",
                &[&key.as_str()],
            )
            .await
            .map_err(StorageError::backend)?;
        Ok(row.map(|r| KeyInfo {
            size: u64::try_from(r.get::<_, i64>(0)).unwrap_or(0),
            modified: r.get::<_, SystemTime>(1),
        }))
    }

    async fn try_acquire_lease(&self, name: &Key, holder: &str, ttl: Duration) -> Result<bool, StorageError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "INSERT INTO cert_store_leases (name, holder, expires)
                 VALUES ($1, $2, clock_timestamp() + $3 * interval '1 millisecond')
                 ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires = EXCLUDED.expires
                 WHERE cert_store_leases.expires <= clock_timestamp()
                    OR cert_store_leases.holder = EXCLUDED.holder
                 RETURNING holder",
                &[&name.as_str(), &holder, &ttl_ms(ttl)],
            )
            .await
            .map_err(StorageError::backend)?;
        Ok(row.is_some())
    }

    async fn renew_lease(&self, name: &Key, holder: &str, ttl: Duration) -> Result<bool, StorageError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE cert_store_leases SET expires = clock_timestamp() + $3 * interval '1 millisecond'
                 WHERE name = $1 AND holder = $2",
                &[&name.as_str(), &holder, &ttl_ms(ttl)],
            )
            .await
            .map_err(StorageError::backend)?;
        Ok(n == 1)
    }

    async fn release_lease(&self, name: &Key, holder: &str) -> Result<(), StorageError> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM cert_store_leases WHERE name = $1 AND holder = $2",
                &[&name.as_str(), &holder],
            )
            .await
            .map_err(StorageError::backend)?;
        Ok(())
    }
}
