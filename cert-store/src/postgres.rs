//! A backend on PostgreSQL, for a fleet of nodes sharing one store.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use rustls_pki_types::{CertificateDer, pem::PemObject};
use tokio_postgres::{NoTls, config::SslMode};

use crate::{Key, KeyInfo, Prefix, Storage, StorageError};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS cert_store_values (
    key      TEXT PRIMARY KEY,
    value    BYTEA NOT NULL,
    modified TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
-- Byte order, whatever the database's collation: `list` is a range scan.
CREATE INDEX IF NOT EXISTS cert_store_values_key_bytes ON cert_store_values (key COLLATE \"C\");
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
/// Three ways in: [`connect`](Self::connect) (a connection string;
/// `sslmode=require` in it selects TLS), [`connect_with`](Self::connect_with)
/// ([`PostgresOptions`]: pool size, wait and connect timeouts, [`PgTls`] with
/// an extra root CA for a managed database's private CA), and
/// [`from_pool`](Self::from_pool) (a `deadpool_postgres::Pool` you built).
/// TLS is rustls on the ring provider, verifying the server certificate
/// against the webpki (Mozilla) roots plus the extra roots, for the host name
/// or IP address in the connection string.
///
/// ```no_run
/// # async fn demo() -> Result<(), cert_store::StorageError> {
/// use std::time::Duration;
/// use cert_store::{PgTls, PostgresOptions, PostgresStorage};
/// let store = PostgresStorage::connect("host=127.0.0.1 port=5432 user=postgres dbname=certs").await?;
/// // A managed database: TLS required, its provider's CA trusted besides the webpki roots.
/// let ca_pem = std::fs::read("/etc/certs/db-ca.pem").unwrap();
/// let options = PostgresOptions::default()
///     .max_size(32)
///     .wait_timeout(Duration::from_secs(5))
///     .tls(PgTls::require().with_root_pem(&ca_pem)?);
/// let store = PostgresStorage::connect_with("postgres://app@db.internal/certs", options).await?;
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
    /// with the default [`PostgresOptions`] (pool of up to 16 connections,
    /// 30 s to wait for one, TLS when the string says `sslmode=require`) and
    /// creates the schema if needed.
    ///
    /// # Errors
    /// [`StorageError::Backend`] (with a [`PostgresSetupError`] or the
    /// driver's error as its source) when the string is invalid or the
    /// database cannot be reached.
    pub async fn connect(config: &str) -> Result<Self, StorageError> {
        Self::connect_with(config, PostgresOptions::default()).await
    }

    /// Connects with `options` (pool size, timeouts, TLS) and creates the
    /// schema if needed.
    ///
    /// # Errors
    /// As [`connect`](Self::connect); a TLS failure (an untrusted server
    /// certificate, a server without TLS) is the driver's error, as source.
    pub async fn connect_with(config: &str, options: PostgresOptions) -> Result<Self, StorageError> {
        let mut pg_config: tokio_postgres::Config =
            config.parse().map_err(|source| StorageError::backend(PostgresSetupError::Config { source }))?;
        if let Some(timeout) = options.connect_timeout
            && pg_config.get_connect_timeout().is_none()
        {
            pg_config.connect_timeout(timeout);
        }
        let extra_roots = match options.tls {
            PgTls::FromConfig if pg_config.get_ssl_mode() == SslMode::Require => Some(Vec::new()),
            PgTls::FromConfig => None,
            PgTls::Disable => {
                pg_config.ssl_mode(SslMode::Disable);
                None
            }
            PgTls::Require { extra_roots } => Some(extra_roots),
        };
        let recycling = ManagerConfig { recycling_method: RecyclingMethod::Fast };
        let manager = match extra_roots {
            None => Manager::from_config(pg_config, NoTls, recycling),
            Some(extra_roots) => {
                pg_config.ssl_mode(SslMode::Require);
                let tls = tls_connector(&extra_roots).map_err(StorageError::backend)?;
                Manager::from_config(pg_config, tls, recycling)
            }
        };
        let pool = Pool::builder(manager)
            .max_size(options.max_size.max(1))
            .wait_timeout(options.wait_timeout)
            .create_timeout(options.connect_timeout)
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|source| StorageError::backend(PostgresSetupError::Pool { source }))?;
        Self::from_pool(pool).await
    }

    /// A store on a pool you built (your own TLS connector, hooks, limits),
    /// creating the schema if needed. Build it with a runtime
    /// (`Runtime::Tokio1`) if you set timeouts.
    ///
    /// # Errors
    /// [`StorageError::Backend`] when no connection can be had or the schema
    /// cannot be created.
    pub async fn from_pool(pool: Pool) -> Result<Self, StorageError> {
        let this = Self { pool };
        this.create_schema().await?;
        Ok(this)
    }

    /// The connection pool (for its `status()`, or queries of your own).
    #[must_use]
    pub fn pool(&self) -> &Pool {
        &self.pool
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

/// How [`PostgresStorage::connect_with`] secures the connection.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub enum PgTls {
    /// As the connection string says: TLS (as [`PgTls::require`]) with
    /// `sslmode=require`, plain TCP otherwise (`disable`, `prefer`, absent).
    #[default]
    FromConfig,
    /// Plain TCP, whatever the connection string says.
    Disable,
    /// TLS or no connection; the server certificate must chain to a webpki
    /// (Mozilla) root or to one of `extra_roots`, and name the host (or IP
    /// address) of the connection string. Stricter than libpq's
    /// `sslmode=require`, which checks nothing: this is its `verify-full`.
    Require {
        /// Trusted besides the webpki roots (a managed database's CA, a test CA).
        extra_roots: Vec<CertificateDer<'static>>,
    },
}

impl PgTls {
    /// TLS required, webpki roots only.
    #[must_use]
    pub fn require() -> Self {
        Self::Require { extra_roots: Vec::new() }
    }

    /// Adds every certificate of `pem` to the extra roots (turning this into
    /// [`PgTls::Require`] if it was not).
    ///
    /// # Errors
    /// [`StorageError::Backend`] with [`PostgresSetupError::RootCertificate`]
    /// when `pem` holds no certificate or a malformed one.
    pub fn with_root_pem(self, pem: &[u8]) -> Result<Self, StorageError> {
        let mut extra_roots = match self {
            Self::Require { extra_roots } => extra_roots,
            Self::FromConfig | Self::Disable => Vec::new(),
        };
        let before = extra_roots.len();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|source| {
                StorageError::backend(PostgresSetupError::RootCertificate { source: Some(source) })
            })?;
            extra_roots.push(cert);
        }
        if extra_roots.len() == before {
            return Err(StorageError::backend(PostgresSetupError::RootCertificate { source: None }));
        }
        Ok(Self::Require { extra_roots })
    }
}

/// Settings of [`PostgresStorage::connect_with`]: pool size, timeouts, TLS.
///
/// ```
/// use std::time::Duration;
/// let options = cert_store::PostgresOptions::default().max_size(4).wait_timeout(Duration::from_secs(2));
/// assert_eq!(options.get_max_size(), 4);
/// ```
#[derive(Clone, Debug)]
pub struct PostgresOptions {
    max_size: usize,
    wait_timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
    tls: PgTls,
}

impl Default for PostgresOptions {
    /// 16 connections, 30 s to wait for a free one, 10 s to open one (unless
    /// the connection string sets `connect_timeout`), TLS as the connection
    /// string says ([`PgTls::FromConfig`]).
    fn default() -> Self {
        Self {
            max_size: 16,
            wait_timeout: Some(Duration::from_secs(30)),
            connect_timeout: Some(Duration::from_secs(10)),
            tls: PgTls::FromConfig,
        }
    }
}

impl PostgresOptions {
    /// At most this many connections (at least 1).
    #[must_use]
    pub fn max_size(mut self, max_size: usize) -> Self {
        self.max_size = max_size;
        self
    }

    /// How long an operation waits for a free connection before failing
    /// with [`StorageError::Backend`] (a pool timeout).
    #[must_use]
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.wait_timeout = Some(timeout);
        self
    }

    /// Wait for a free connection as long as it takes.
    #[must_use]
    pub fn no_wait_timeout(mut self) -> Self {
        self.wait_timeout = None;
        self
    }

    /// How long opening a connection (TCP, TLS, authentication) may take.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// How to secure the connection.
    #[must_use]
    pub fn tls(mut self, tls: PgTls) -> Self {
        self.tls = tls;
        self
    }

    /// The pool size set.
    #[must_use]
    pub fn get_max_size(&self) -> usize {
        self.max_size
    }

    /// The wait timeout set (`None`: wait forever).
    #[must_use]
    pub fn get_wait_timeout(&self) -> Option<Duration> {
        self.wait_timeout
    }
}

/// Why [`PostgresStorage`] could not be set up (the source of a
/// [`StorageError::Backend`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostgresSetupError {
    /// The connection string or URL does not parse.
    #[error("invalid PostgreSQL connection string")]
    Config {
        /// The driver's parse error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// An extra root CA is not a PEM certificate (`source` is `None` when the
    /// PEM held no certificate at all).
    #[error("the extra root CA for PostgreSQL is not a PEM certificate")]
    RootCertificate {
        /// The PEM parser's error.
        #[source]
        source: Option<rustls_pki_types::pem::Error>,
    },
    /// An extra root CA was refused as a trust anchor.
    #[error("the extra root CA for PostgreSQL cannot be trusted")]
    TrustAnchor {
        /// Why rustls refused it.
        #[source]
        source: rustls::Error,
    },
    /// rustls refused the ring provider's protocol versions.
    #[error("TLS client configuration for PostgreSQL")]
    Tls {
        /// rustls's error.
        #[source]
        source: rustls::Error,
    },
    /// The pool could not be built.
    #[error("PostgreSQL connection pool")]
    Pool {
        /// deadpool's error.
        #[source]
        source: deadpool_postgres::BuildError,
    },
}

/// A rustls connector on the ring provider trusting the webpki roots and
/// `extra_roots`.
fn tls_connector(
    extra_roots: &[CertificateDer<'static>],
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, PostgresSetupError> {
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    for cert in extra_roots {
        roots.add(cert.clone()).map_err(|source| PostgresSetupError::TrustAnchor { source })?;
    }
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|source| PostgresSetupError::Tls { source })?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

fn ttl_ms(ttl: Duration) -> f64 {
    ttl.as_secs_f64() * 1000.0
}

#[async_trait]
impl Storage for PostgresStorage {
    async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StorageError> {
        let client = self.client().await?;
        // Prepared once per pooled connection: one round trip per read.
        let statement = client
            .prepare_cached("SELECT value FROM cert_store_values WHERE key = $1")
            .await
            .map_err(StorageError::backend)?;
        let row = client.query_opt(&statement, &[&key.as_str()]).await.map_err(StorageError::backend)?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn put(&self, key: &Key, value: &[u8]) -> Result<(), StorageError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "INSERT INTO cert_store_values (key, value, modified) VALUES ($1, $2, clock_timestamp())
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, modified = EXCLUDED.modified",
            )
            .await
            .map_err(StorageError::backend)?;
        client.execute(&statement, &[&key.as_str(), &value]).await.map_err(StorageError::backend)?;
        Ok(())
    }

    async fn delete(&self, key: &Key) -> Result<(), StorageError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("DELETE FROM cert_store_values WHERE key = $1")
            .await
            .map_err(StorageError::backend)?;
        client.execute(&statement, &[&key.as_str()]).await.map_err(StorageError::backend)?;
        Ok(())
    }

    async fn list(&self, prefix: &Prefix) -> Result<Vec<Key>, StorageError> {
        let client = self.client().await?;
        // A range over the byte-ordered index (`/` + 1 = `0`): the cost is
        // the keys listed, not the table's size.
        // (Two statements, not one with `$1 = '' OR …`: a prepared
        // statement's generic plan could not use the index for that.)
        let rows = if prefix.as_str().is_empty() {
            client.query("SELECT key FROM cert_store_values ORDER BY key COLLATE \"C\"", &[]).await
        } else {
            let (exact, start, end) =
                (prefix.as_str(), format!("{}/", prefix.as_str()), format!("{}0", prefix.as_str()));
            let statement = client
                .prepare_cached(
                    "SELECT key FROM cert_store_values
                     WHERE key = $1 OR (key COLLATE \"C\" >= $2 AND key COLLATE \"C\" < $3)
                     ORDER BY key COLLATE \"C\"",
                )
                .await
                .map_err(StorageError::backend)?;
            client.query(&statement, &[&exact, &start, &end]).await
        }
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
