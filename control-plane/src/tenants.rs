//! Tenants (who owns connections) and their API keys.
//!
//! A tenant has an id, a name and a plan; its connections count against the
//! plan's quota. A tenant API key is shown once, when it is made, and stored
//! only as the SHA-256 digest of its secret part (`edge/api-keys/<key id>`):
//! a key is found by its id in one read and its secret compared in constant
//! time. A revoked key stays on record (with `revoked_at`) and never
//! authenticates again.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::sync::Arc;
//! use control_plane::{Quotas, Tenants};
//!
//! let tenants = Tenants::new(Arc::new(cert_store::MemoryStorage::new()));
//! let quotas = Quotas::default();
//! let acme = tenants.create("Acme Inc", "free", &quotas).await.unwrap();
//! let key = tenants.create_key(&acme.id).await.unwrap();
//! assert_eq!(tenants.authenticate(&key.secret).await.unwrap(), Some(acme.id.clone()));
//! tenants.revoke_key(&acme.id, &key.key_id).await.unwrap();
//! assert_eq!(tenants.authenticate(&key.secret).await.unwrap(), None);
//! # }
//! ```

use std::sync::Arc;

use cert_store::{Storage, StorageError};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use crate::{DEFAULT_TENANT, Error, Quotas, keys};

/// Who owns connections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Tenant {
    /// Stable identifier (hex, or `default`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// The plan its connections count against.
    pub plan: String,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: OffsetDateTime,
}

/// A new tenant API key: the only time its secret is seen.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewTenantKey {
    /// The key's id (to revoke it).
    pub key_id: String,
    /// The whole key, sent as `Authorization: Bearer <secret>`. Not stored.
    pub secret: String,
    /// The tenant it acts for.
    pub tenant: String,
}

/// What is stored of a key.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyRecord {
    tenant: String,
    /// SHA-256 of the secret part, hex.
    digest: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    revoked_at: Option<OffsetDateTime>,
}

const KEY_PREFIX: &str = "tk_";

/// Tenants and their keys in the shared [`Storage`].
#[derive(Clone)]
pub struct Tenants {
    storage: Arc<dyn Storage>,
}

impl std::fmt::Debug for Tenants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenants").finish_non_exhaustive()
    }
}

/// Whether `id` has the shape of a tenant id (hex, or `default`): anything
/// else names no tenant and is never used in a storage key.
#[must_use]
pub fn is_tenant_id(id: &str) -> bool {
    id == DEFAULT_TENANT || (!id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn corrupt(key: &cert_store::Key, e: &serde_json::Error) -> StorageError {
    StorageError::Corrupt { key: key.to_string(), reason: e.to_string() }
}

fn digest(secret: &str) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, secret.as_bytes()))
}

impl Tenants {
    /// Tenants kept in `storage`.
    #[must_use]
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self { storage }
    }

    /// Creates a tenant on `plan`.
    ///
    /// # Errors
    /// [`Error::UnknownPlan`], [`Error::InvalidRequest`] (empty or overlong
    /// name), [`Error::Storage`].
    pub async fn create(&self, name: &str, plan: &str, quotas: &Quotas) -> Result<Tenant, Error> {
        let tenant = Tenant {
            id: hex::encode(rand::random::<[u8; 8]>()),
            name: valid_name(name)?,
            plan: valid_plan(plan, quotas)?,
            created_at: OffsetDateTime::now_utc(),
        };
        self.put(&tenant).await?;
        Ok(tenant)
    }

    /// The tenant `id`. The default tenant exists without being created
    /// (on the `free` plan unless changed), so an edge that had no tenants
    /// upgrades in place.
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub async fn get(&self, id: &str) -> Result<Option<Tenant>, Error> {
        if !is_tenant_id(id) {
            return Ok(None);
        }
        let key = keys::tenant(id)?;
        match self.storage.get(&key).await? {
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes).map_err(|e| corrupt(&key, &e))?)),
            None if id == DEFAULT_TENANT => Ok(Some(Tenant {
                id: DEFAULT_TENANT.to_owned(),
                name: "Default".to_owned(),
                plan: "free".to_owned(),
                created_at: OffsetDateTime::UNIX_EPOCH,
            })),
            None => Ok(None),
        }
    }

    /// Every tenant (operators' view; tenants are few compared with
    /// connections), oldest first.
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub async fn list(&self) -> Result<Vec<Tenant>, Error> {
        let mut out = Vec::new();
        for key in self.storage.list(&keys::tenants()?).await? {
            if let Some(bytes) = self.storage.get(&key).await? {
                out.push(serde_json::from_slice::<Tenant>(&bytes).map_err(|e| corrupt(&key, &e))?);
            }
        }
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Changes a tenant's name and/or plan.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::UnknownPlan`], [`Error::InvalidRequest`],
    /// [`Error::Storage`].
    pub async fn update(
        &self,
        id: &str,
        name: Option<&str>,
        plan: Option<&str>,
        quotas: &Quotas,
    ) -> Result<Tenant, Error> {
        let mut tenant = self.get(id).await?.ok_or(Error::NotFound)?;
        if let Some(name) = name {
            tenant.name = valid_name(name)?;
        }
        if let Some(plan) = plan {
            tenant.plan = valid_plan(plan, quotas)?;
        }
        self.put(&tenant).await?;
        Ok(tenant)
    }

    async fn put(&self, tenant: &Tenant) -> Result<(), Error> {
        let bytes = serde_json::to_vec(tenant).map_err(StorageError::backend)?;
        Ok(self.storage.put(&keys::tenant(&tenant.id)?, &bytes).await?)
    }

    /// Makes an API key for tenant `id`.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Storage`].
    pub async fn create_key(&self, id: &str) -> Result<NewTenantKey, Error> {
        let tenant = self.get(id).await?.ok_or(Error::NotFound)?;
        let key_id = hex::encode(rand::random::<[u8; 8]>());
        let secret_part = hex::encode(rand::random::<[u8; 32]>());
        let record = KeyRecord {
            tenant: tenant.id.clone(),
            digest: digest(&secret_part),
            created_at: OffsetDateTime::now_utc(),
            revoked_at: None,
        };
        self.put_key(&key_id, &record).await?;
        Ok(NewTenantKey { secret: format!("{KEY_PREFIX}{key_id}_{secret_part}"), key_id, tenant: tenant.id })
    }

    /// Revokes tenant `id`'s key `key_id` (a key of another tenant is
    /// [`Error::NotFound`]).
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Storage`].
    pub async fn revoke_key(&self, id: &str, key_id: &str) -> Result<(), Error> {
        let mut record = self.key(key_id).await?.filter(|r| r.tenant == id).ok_or(Error::NotFound)?;
        if record.revoked_at.is_none() {
            record.revoked_at = Some(OffsetDateTime::now_utc());
            self.put_key(key_id, &record).await?;
        }
        Ok(())
    }

    /// The tenant a bearer key acts for, if it is a live key of ours. One
    /// storage read; the secret is compared in constant time.
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub async fn authenticate(&self, candidate: &str) -> Result<Option<String>, Error> {
        let Some((key_id, secret_part)) = candidate.strip_prefix(KEY_PREFIX).and_then(|k| k.split_once('_'))
        else {
            return Ok(None);
        };
        let Some(record) = self.key(key_id).await? else { return Ok(None) };
        let matches: bool = digest(secret_part).as_bytes().ct_eq(record.digest.as_bytes()).into();
        Ok((matches && record.revoked_at.is_none()).then_some(record.tenant))
    }

    async fn key(&self, key_id: &str) -> Result<Option<KeyRecord>, Error> {
        if key_id.is_empty() || key_id.len() > 32 || !key_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let key = keys::api_key(key_id)?;
        match self.storage.get(&key).await? {
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes).map_err(|e| corrupt(&key, &e))?)),
            None => Ok(None),
        }
    }

    async fn put_key(&self, key_id: &str, record: &KeyRecord) -> Result<(), Error> {
        let bytes = serde_json::to_vec(record).map_err(StorageError::backend)?;
        Ok(self.storage.put(&keys::api_key(key_id)?, &bytes).await?)
    }
}

fn valid_name(name: &str) -> Result<String, Error> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(Error::InvalidRequest { reason: "a tenant's name is 1 to 200 characters".to_owned() });
    }
    Ok(name.to_owned())
}

fn valid_plan(plan: &str, quotas: &Quotas) -> Result<String, Error> {
    quotas.limit(plan).map(|_| plan.to_owned()).ok_or_else(|| Error::UnknownPlan { plan: plan.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenants() -> Tenants {
        Tenants::new(Arc::new(cert_store::MemoryStorage::new()))
    }

    #[tokio::test]
    async fn keys_authenticate_their_tenant_until_revoked() {
        let t = tenants();
        let q = Quotas::default();
        let a = t.create("A", "free", &q).await.unwrap();
        let b = t.create("B", "free", &q).await.unwrap();
        let ka = t.create_key(&a.id).await.unwrap();
        let kb = t.create_key(&b.id).await.unwrap();
        assert_eq!(t.authenticate(&ka.secret).await.unwrap().as_deref(), Some(a.id.as_str()));
        assert_eq!(t.authenticate(&kb.secret).await.unwrap().as_deref(), Some(b.id.as_str()));
        // A forged secret for a real key id, junk, another tenant's revoke.
        let forged = format!("{KEY_PREFIX}{}_{}", ka.key_id, "0".repeat(64));
        assert_eq!(t.authenticate(&forged).await.unwrap(), None);
        assert_eq!(t.authenticate("tk_../../x_y").await.unwrap(), None);
        assert_eq!(t.authenticate("").await.unwrap(), None);
        assert!(matches!(t.revoke_key(&b.id, &ka.key_id).await, Err(Error::NotFound)));
        t.revoke_key(&a.id, &ka.key_id).await.unwrap();
        assert_eq!(t.authenticate(&ka.secret).await.unwrap(), None);
        assert!(t.authenticate(&kb.secret).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn the_secret_is_not_stored() {
        let storage = Arc::new(cert_store::MemoryStorage::new());
        let t = Tenants::new(storage.clone());
        let a = t.create("A", "free", &Quotas::default()).await.unwrap();
        let k = t.create_key(&a.id).await.unwrap();
        let secret_part = k.secret.rsplit('_').next().unwrap();
        let stored = storage.get(&keys::api_key(&k.key_id).unwrap()).await.unwrap().unwrap();
        assert!(!String::from_utf8_lossy(&stored).contains(secret_part));
    }

    #[tokio::test]
    async fn plans_and_names_are_checked_and_default_exists() {
        let t = tenants();
        let q = Quotas::default();
        assert!(matches!(t.create("A", "platinum", &q).await, Err(Error::UnknownPlan { .. })));
        assert!(matches!(t.create("  ", "free", &q).await, Err(Error::InvalidRequest { .. })));
        assert!(t.list().await.unwrap().is_empty(), "nothing stored for bad input");
        assert_eq!(t.get(DEFAULT_TENANT).await.unwrap().unwrap().plan, "free");
        assert!(t.get("../x").await.unwrap().is_none());
        let a = t.create("A", "free", &q).await.unwrap();
        let a2 = t.update(&a.id, Some("A2"), None, &q).await.unwrap();
        assert_eq!((a2.name.as_str(), a2.plan.as_str()), ("A2", "free"));
        assert_eq!(t.list().await.unwrap(), vec![a2]);
    }
}
