//! Stores a freshly made certificate in a filesystem store and lists the store.
//!
//! ```text
//! cargo run -p tls-cert-store --example store_and_list -- [DIR] [HOSTNAME]
//! ```
//! `DIR` defaults to `./data`, `HOSTNAME` to `shop.example.com`.

use std::sync::Arc;

use cert_store::{CertBundle, CertStore, FileStorage, Provenance};
use time::OffsetDateTime;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| "./data".into());
    let hostname = args.next().unwrap_or_else(|| "shop.example.com".into());

    let key = rcgen::KeyPair::generate()?;
    let cert = rcgen::CertificateParams::new(vec![hostname.clone()])?.self_signed(&key)?;
    let bundle = CertBundle::from_pem(&cert.pem(), &key.serialize_pem(), Provenance::LocalCa)?;

    let store = CertStore::new(Arc::new(FileStorage::new(&dir)?));
    store.save(&bundle).await?;
    println!("stored {hostname} in {dir}\n");
    println!("{:<40} {:<12} {:<26} renew/attention at", "name", "key", "not after");
    let index = store.index().await?;
    for name in store.names().await? {
        if let Some(b) = store.load(&name).await? {
            let m = b.meta();
            let attention = index.get(&name).map_or(m.attention_at(), |e| e.attention_at);
            println!(
                "{name:<40} {:<12} {:<26} {attention}",
                format!("{:?}", m.key_type),
                m.not_after.to_string()
            );
        }
    }
    let due = store.due_before(OffsetDateTime::now_utc() + time::Duration::days(365 * 5)).await?;
    println!("\n{} certificate(s) need attention within five years", due.len());
    Ok(())
}
