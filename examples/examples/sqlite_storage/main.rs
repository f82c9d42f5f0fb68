//! A `cert_store::Storage` of your own, on SQLite: certificates from the local
//! CA are issued into it, read back through a second connection (as another
//! process would), and the file is checked to be owner-only (`0600`).
//!
//! ```sh
//! cargo run -p examples --example sqlite_storage            # a database in a temporary directory
//! cargo run -p examples --example sqlite_storage -- certs.db
//! ```
//!
//! The backend is in `storage.rs`; `examples/tests/sqlite_storage.rs` runs
//! cert-store's whole conformance suite (`storage_conformance_tests!`) on it.

mod storage;

use std::{error::Error, path::PathBuf, sync::Arc};

use acme_core::{CertManager, CertRequest, LocalCaIssuer, ManagerConfig};
use cert_store::CertStore;
use storage::SqliteStorage;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let tmp = tempfile::tempdir()?;
    let path = std::env::args_os().nth(1).map_or_else(|| tmp.path().join("certs.db"), PathBuf::from);

    let storage = Arc::new(SqliteStorage::open(&path)?);
    let store = Arc::new(CertStore::new(Arc::clone(&storage)));
    let issuer = Arc::new(LocalCaIssuer::new(Arc::clone(&store)));
    let manager = CertManager::new(Arc::clone(&store), issuer, ManagerConfig::default());
    let issued = manager.ensure(&CertRequest::new(["shop.example.com", "www.shop.example.com"])).await?;
    println!("issued {:?} into {}", issued.meta().names, path.display());

    // Another connection (another process would do the same) reads it back.
    let reader = CertStore::new(Arc::new(SqliteStorage::open(&path)?));
    let loaded = reader.load("shop.example.com").await?.ok_or("the certificate is not in the database")?;
    if loaded.meta().serial != issued.meta().serial {
        return Err("read back a different certificate".into());
    }
    println!("read back serial {} through a second connection", loaded.meta().serial);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(storage.path())?.permissions().mode() & 0o777;
        println!("{} is {mode:o}", path.display());
        if mode != 0o600 {
            return Err(format!("the database holds private keys but is {mode:o}, not 600").into());
        }
    }
    Ok(())
}
