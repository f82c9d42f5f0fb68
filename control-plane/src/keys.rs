//! Every storage key the control plane uses, built here and nowhere else.
//!
//! All of them live under `edge/`, so an embedder can keep its own data in
//! the same store (anything outside `edge/` and `tls/` is theirs):
//!
//! | key | value |
//! |---|---|
//! | `edge/connections/<id>` | a [`Connection`](crate::Connection), JSON |
//! | `edge/claims/<hostname>` | the id of the connection holding the hostname |
//! | `edge/outbox/<entry>` | one webhook delivery waiting to be sent |
//! | `edge/activity/<hostname>/<entry>` | one activity record, never rewritten |
//! | `edge/leases/claim/<hostname>` | lease: claims of that hostname change under it |
//! | `edge/leases/quota/<plan>` | lease: a plan's quota is counted under it |
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
pub(crate) fn quota_lease(plan: &str) -> Result<Key, StorageError> {
    Key::new(format!("edge/leases/quota/{plan}"))
}

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
            activity_entry("Shop.Example.com", "1").unwrap(),
            claim_lease("shop.example.com").unwrap(),
            quota_lease("free").unwrap(),
            work_lease("ab12").unwrap(),
            outbox_lease(&entry).unwrap(),
        ] {
            assert!(key.as_str().starts_with("edge/"), "{key}");
        }
        assert_eq!(outbox_lease(&entry).unwrap().as_str(), "edge/leases/outbox/0001-ab-0");
        assert_eq!(
            activity_entry("Shop.Example.com", "1").unwrap().as_str(),
            "edge/activity/shop.example.com/1"
        );
    }
}
