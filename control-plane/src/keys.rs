//! Every storage key the control plane uses, built here and nowhere else.
//!
//! All of them live under `edge/`, so an embedder can keep its own data in
//! the same store (anything outside `edge/` and `tls/` is theirs):
//!
//! | key | value |
//! |---|---|
//! | `edge/connections/<id>` | a [`Connection`](crate::Connection), JSON |
//! | `edge/claims/<hostname>` | the id of the connection holding the hostname |
//! | `edge/tenants/<tenant>` | a [`Tenant`](crate::Tenant), JSON |
//! | `edge/api-keys/<key id>` | a tenant API key: its tenant and the SHA-256 of its secret |
//! | `edge/tenant-index/<tenant>/head` | how many connections the tenant has, and made this quota period |
//! | `edge/tenant-index/<tenant>/pages/<n>` | the ids of its connections `n*100 ..`, oldest first |
//! | `edge/due/<minute>/<secs>-<id>` | the connection is due for the worker at `secs` |
//! | `edge/due-low-water` | the earliest minute that may still hold due entries |
//! | `edge/migrations/<name>` | a one-time migration that has run |
//! | `edge/outbox/<entry>` | one webhook delivery waiting to be sent |
//! | `edge/activity/<tenant>/<entry>` | one activity record, never rewritten |
//! | `edge/credentials/<id>` | a connection's DNS provider credential, sealed (AES-256-GCM), and its apply state |
//! | `edge/leases/claim/<hostname>` | lease: claims of that hostname change under it |
//! | `edge/leases/tenant/<tenant>` | lease: a tenant's index and quota change under it |
//! | `edge/leases/work/<id>` | lease: one edge works on a connection at a time |
//! | `edge/leases/outbox/<entry>` | lease: one edge sends an outbox entry |

use cert_store::{Key, Prefix, StorageError};

/// `edge/connections/<id>`.
pub(crate) fn connection(id: &str) -> Result<Key, StorageError> {
    Key::new(format!("edge/connections/{id}"))
}

/// Every connection.
pub(crate) fn connections() -> Result<Prefix, StorageError> {
    Prefix::new("edge/connections")
}

/// `edge/claims/<hostname>`.
pub(crate) fn tenant(id: &str) -> Result<Key, StorageError> {
    Key::new(format!("edge/tenants/{id}"))
}

pub(crate) fn tenants() -> Result<Prefix, StorageError> {
    Prefix::new("edge/tenants")
}

pub(crate) fn api_key(key_id: &str) -> Result<Key, StorageError> {
    Key::new(format!("edge/api-keys/{key_id}"))
}

pub(crate) fn tenant_index(tenant: &str) -> Result<Key, StorageError> {
    Key::new(format!("edge/tenant-index/{tenant}/head"))
}

pub(crate) fn tenant_index_page(tenant: &str, page: u64) -> Result<Key, StorageError> {
    Key::new(format!("edge/tenant-index/{tenant}/pages/{page:010}"))
}

pub(crate) fn tenant_lease(tenant: &str) -> Result<Key, StorageError> {
    Key::new(format!("edge/leases/tenant/{tenant}"))
}

pub(crate) fn due_entry(bucket: &str, entry: &str) -> Result<Key, StorageError> {
    Key::new(format!("edge/due/{bucket}/{entry}"))
}

pub(crate) fn due_bucket(bucket: &str) -> Result<Prefix, StorageError> {
    Prefix::new(format!("edge/due/{bucket}"))
}

pub(crate) fn due_low_water() -> Result<Key, StorageError> {
    Key::new("edge/due-low-water")
}

pub(crate) fn migration(name: &str) -> Result<Key, StorageError> {
    Key::new(format!("edge/migrations/{name}"))
}

pub(crate) fn claim(hostname: &str) -> Result<Key, StorageError> {
    Key::new(format!("edge/claims/{hostname}"))
}

/// `edge/outbox/<entry>`.
pub(crate) fn outbox_entry(name: &str) -> Result<Key, StorageError> {
    Key::new(format!("edge/outbox/{name}"))
}

/// The whole outbox.
pub(crate) fn outbox() -> Result<Prefix, StorageError> {
    Prefix::new("edge/outbox")
}

/// `edge/credentials/<id>`.
pub(crate) fn credential(id: &str) -> Result<Key, StorageError> {
    Key::new(format!("edge/credentials/{id}"))
}

/// Every stored DNS provider credential.
pub(crate) fn credentials() -> Result<Prefix, StorageError> {
    Prefix::new("edge/credentials")
}

/// `edge/activity/<hostname>/<entry>`.
pub(crate) fn activity_entry(hostname: &str, entry: &str) -> Result<Key, StorageError> {
    Key::new(format!("edge/activity/{}/{entry}", hostname.to_ascii_lowercase()))
}

/// One hostname's activity.
pub(crate) fn activity(hostname: &str) -> Result<Prefix, StorageError> {
    Prefix::new(format!("edge/activity/{}", hostname.to_ascii_lowercase()))
}

/// `edge/leases/claim/<hostname>`.
pub(crate) fn claim_lease(hostname: &str) -> Result<Key, StorageError> {
    Key::new(format!("edge/leases/claim/{hostname}"))
}

/// `edge/leases/quota/<plan>`.
/// `edge/leases/work/<id>`.
pub(crate) fn work_lease(id: &str) -> Result<Key, StorageError> {
    Key::new(format!("edge/leases/work/{id}"))
}

/// `edge/leases/outbox/<entry>` for the outbox entry stored at `entry`.
pub(crate) fn outbox_lease(entry: &Key) -> Result<Key, StorageError> {
    let name = entry.as_str().rsplit('/').next().unwrap_or_default();
    Key::new(format!("edge/leases/outbox/{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_under_edge() {
        let entry = outbox_entry("0001-ab-0").unwrap();
        for key in [
            connection("ab12").unwrap(),
            claim("shop.example.com").unwrap(),
            entry.clone(),
            activity_entry("default", "1").unwrap(),
            claim_lease("shop.example.com").unwrap(),
            tenant_lease("default").unwrap(),
            tenant("0a1b").unwrap(),
            api_key("0a1b").unwrap(),
            tenant_index("0a1b").unwrap(),
            tenant_index_page("0a1b", 3).unwrap(),
            due_entry("000029000000", "1740000000-ab12").unwrap(),
            due_low_water().unwrap(),
            migration("tenant-index").unwrap(),
            work_lease("ab12").unwrap(),
            outbox_lease(&entry).unwrap(),
        ] {
            assert!(key.as_str().starts_with("edge/"), "{key}");
        }
        assert_eq!(outbox_lease(&entry).unwrap().as_str(), "edge/leases/outbox/0001-ab-0");
        assert_eq!(activity_entry("default", "1").unwrap().as_str(), "edge/activity/default/1");
    }
}
