//! Pluggable storage for automatic TLS: certificates, ACME accounts and leases.
//!
//! Two layers:
//! - [`Storage`]: the one small async trait a backend implements — a key–value
//!   store with `/`-separated [`Key`]s plus named leases. Backends here:
//!   [`MemoryStorage`], [`FileStorage`] (atomic writes, `0600`/`0700`, safe for
//!   several processes on one directory) and `PostgresStorage` (feature
//!   `postgres`, for a fleet sharing one database). The conformance suite in
//!   `conformance` (feature `testing`) checks any backend, including yours;
//!   the [`Storage`] docs show a complete backend.
//! - [`CertStore`]: the typed layer — validated [`CertBundle`]s with their
//!   [`CertMeta`], ACME account credentials per directory URL, and an
//!   [`ExpiryIndex`] answering "what needs renewing before T" from one record.
//!
//! Every key [`CertStore`] writes lies under `tls/`, built in [`keys`] (which
//! documents the layout), so your own data can share the store.
//!
//! Leases come from [`Leases::lock`] on any `Arc<impl Storage>`: the returned
//! [`LeaseGuard`] renews the lease while held and releases it on drop.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::{sync::Arc, time::Duration};
//! use cert_store::{Key, Leases, MemoryStorage, Storage};
//!
//! let storage = Arc::new(MemoryStorage::new());
//! let _lease = storage.lock(&Key::new("issue/shop.example.com")?, Duration::from_secs(60)).await?;
//! storage.put(&Key::new("notes/shop.example.com")?, b"ordering").await?;
//! # Ok::<(), cert_store::StorageError>(()) }).unwrap();
//! ```

mod bundle;
mod cert_store;
pub mod changes;
#[cfg(feature = "testing")]
pub mod conformance;
mod error;
mod file;
pub mod hostname;
mod index;
mod key;
pub mod keys;
mod lease;
mod memory;
pub mod metrics;
#[cfg(feature = "postgres")]
mod postgres;
pub mod serving;
mod storage;

/// Re-exported so that implementing this crate's traits needs no extra dependency.
pub use async_trait::async_trait;
pub use bundle::{CertBundle, CertMeta, KeyType, Provenance};
pub use cert_store::CertStore;
pub use changes::{CHANGE_RETENTION, ChangeCursor};
pub use error::{BoxError, CertError, StorageError};
pub use file::FileStorage;
pub use index::{ExpiryIndex, IndexDecodeError, IndexEntry, IndexGeneration};
pub use key::{Key, MAX_KEY_LEN, Prefix};
pub use lease::{LeaseGuard, Leases, MIN_LEASE_TTL};
pub use memory::MemoryStorage;
pub use metrics::MeteredStorage;
#[cfg(feature = "postgres")]
pub use postgres::{PgTls, PostgresOptions, PostgresSetupError, PostgresStorage};
pub use serving::{
    AskPolicy, CertListener, CertSource, ChallengeAnswers, NoChallenges, Provision, ProvisionError,
};
pub use storage::{KeyInfo, Storage};
pub use tls_names::{Hostname, HostnameError};

/// The README's example, compiled and run as a doc test so it
/// stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
