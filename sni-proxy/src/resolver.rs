//! [`SniResolver`]: certificates by server name, exact then single-level
//! wildcard, read without locks.

use std::{collections::HashMap, hash::BuildHasher, sync::Arc};

use arc_swap::ArcSwap;

use crate::names::{MAX_NAME, exact_then_wildcard, normalize};
use rustls::{
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};

/// Number of independently swapped shards: an update copies one shard
/// (1/256 of the names), never the whole table.
const SHARDS: usize = 256;

/// foldhash: fast on short keys and seeded per process, so names chosen by
/// clients cannot be aimed at one bucket.
type Hasher = foldhash::fast::RandomState;
type Shard = HashMap<Box<str>, Arc<CertifiedKey>, Hasher>;

/// Certificates by server name, for rustls.
///
/// - Exact names first, then the single-level wildcard: `*.example.com`
///   serves `a.example.com`, never `a.b.example.com` nor `example.com`.
/// - Lookups take no lock and do not allocate: each of 256 shards is an
///   `ArcSwap` of an immutable map, replaced whole on update (copy-on-write
///   of one shard); names are lowercased into a stack buffer.
///
/// ```
/// use sni_proxy::SniResolver;
/// let resolver = SniResolver::new();
/// assert!(resolver.lookup("shop.example.com").is_none());
/// ```
pub struct SniResolver {
    shards: Vec<ArcSwap<Shard>>,
    /// Most names per shard (unbounded by default).
    shard_capacity: usize,
    hasher: Hasher,
    default: ArcSwap<Option<Arc<CertifiedKey>>>,
}

impl std::fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SniResolver").field("names", &self.len()).finish_non_exhaustive()
    }
}

impl Default for SniResolver {
    fn default() -> Self {
        Self::new()
    }
}

impl SniResolver {
    /// An empty resolver.
    #[must_use]
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| ArcSwap::from_pointee(Shard::default())).collect(),
            hasher: Hasher::default(),
            default: ArcSwap::from_pointee(None),
            shard_capacity: usize::MAX,
        }
    }

    /// A resolver that keeps about `max_names` names (at least one per
    /// shard): inserting into a full shard evicts another name of that shard.
    /// Use it as a cache in front of the store (the TLS listener reloads an
    /// evicted name at its next handshake), so memory stays flat however many
    /// certificates the store holds.
    #[must_use]
    pub fn with_capacity(max_names: usize) -> Self {
        Self { shard_capacity: max_names.div_ceil(SHARDS).max(1), ..Self::new() }
    }

    fn shard_index(&self, key: &str) -> usize {
        // The high bits pick the shard; the maps inside use the low ones.
        #[allow(clippy::cast_possible_truncation)]
        let high = (self.hasher.hash_one(key) >> 56) as usize;
        high % SHARDS
    }

    fn shard_of(&self, key: &str) -> &ArcSwap<Shard> {
        &self.shards[self.shard_index(key)]
    }

    /// Serves `key` for `name` (`shop.example.com` or `*.example.com`),
    /// replacing any previous certificate for it.
    pub fn insert(&self, name: &str, key: Arc<CertifiedKey>) {
        let mut buf = [0u8; MAX_NAME];
        let Some(name) = normalize(name, &mut buf) else { return };
        let name: Box<str> = name.into();
        let capacity = self.shard_capacity;
        self.shard_of(&name).rcu(|shard| {
            let mut next = Shard::clone(shard);
            if next.len() >= capacity && !next.contains_key(&name) {
                // Evict an arbitrary name (hash order: effectively random).
                if let Some(victim) = next.keys().next().cloned() {
                    next.remove(&victim);
                }
            }
            next.insert(name.clone(), Arc::clone(&key));
            next
        });
    }

    /// Serves `bundle` for every name it carries.
    ///
    /// # Errors
    /// When the bundle's key cannot be loaded or does not match.
    pub fn insert_bundle(&self, bundle: &cert_store::CertBundle) -> Result<Arc<CertifiedKey>, LoadError> {
        let key = certified_key(bundle)?;
        for name in &bundle.meta().names {
            self.insert(name, Arc::clone(&key));
        }
        Ok(key)
    }

    /// Inserts many certificates at once (startup): each shard is copied once.
    pub fn insert_many(&self, entries: impl IntoIterator<Item = (String, Arc<CertifiedKey>)>) {
        let mut per_shard: Vec<Vec<(Box<str>, Arc<CertifiedKey>)>> =
            (0..SHARDS).map(|_| Vec::new()).collect();
        for (name, key) in entries {
            let mut buf = [0u8; MAX_NAME];
            let Some(name) = normalize(&name, &mut buf) else { continue };
            per_shard[self.shard_index(name)].push((name.into(), key));
        }
        for (shard, entries) in self.shards.iter().zip(per_shard) {
            if entries.is_empty() {
                continue;
            }
            shard.rcu(|current| {
                let mut next = Shard::clone(current);
                next.extend(entries.iter().cloned());
                next
            });
        }
    }

    /// Stops serving `name`.
    pub fn remove(&self, name: &str) {
        let mut buf = [0u8; MAX_NAME];
        let Some(name) = normalize(name, &mut buf) else { return };
        let name: Box<str> = name.into();
        self.shard_of(&name).rcu(|shard| {
            let mut next = Shard::clone(shard);
            next.remove(&name);
            next
        });
    }

    /// The certificate served when no name matches (none by default:
    /// the handshake fails with `unrecognized_name`).
    pub fn set_default(&self, key: Option<Arc<CertifiedKey>>) {
        self.default.store(Arc::new(key));
    }

    /// The certificate for `server_name`: exact, then `*.<parent>`.
    #[must_use]
    pub fn lookup(&self, server_name: &str) -> Option<Arc<CertifiedKey>> {
        exact_then_wildcard(server_name, |name| self.shard_of(name).load().get(name).cloned())
    }

    /// Whether a handshake for `server_name` gets a certificate: a name or
    /// wildcard in the table, or the default certificate (an empty name has
    /// only the default).
    #[must_use]
    pub fn serves(&self, server_name: &str) -> bool {
        (!server_name.is_empty() && self.lookup(server_name).is_some()) || self.default.load().is_some()
    }

    /// How many names are served.
    #[must_use]
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.load().len()).sum()
    }

    /// Whether no name is served.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a certificate bundle cannot be served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The chain or the key could not be decoded.
    #[error("the bundle's PEM cannot be decoded")]
    Pem(#[source] cert_store::CertError),
    /// rustls refused the key or found that it does not match the leaf.
    #[error("rustls refused the certificate and key")]
    Rustls(#[source] rustls::Error),
}

/// A bundle as rustls serves it (key checked against the leaf).
///
/// # Errors
/// [`LoadError`] when the PEM, the key or their match is bad (a bundle from
/// `CertStore` was validated when saved, so this only fails if storage was
/// tampered with).
pub fn certified_key(bundle: &cert_store::CertBundle) -> Result<Arc<CertifiedKey>, LoadError> {
    let chain = bundle.chain_der().map_err(LoadError::Pem)?;
    let key = bundle.key_der().map_err(LoadError::Pem)?;
    CertifiedKey::from_der(chain, key, &rustls::crypto::ring::default_provider())
        .map(Arc::new)
        .map_err(LoadError::Rustls)
}

/// Keeps the table in step with a [`CertSource`](cert_store::CertSource):
/// an issued or renewed certificate is served from the next handshake on, a
/// removed name is no longer served (until the source has it again).
impl cert_store::CertListener for SniResolver {
    fn updated(&self, bundle: &cert_store::CertBundle) {
        if let Err(e) = self.insert_bundle(bundle) {
            let error = &e as &(dyn std::error::Error + 'static);
            tracing::warn!(name = bundle.meta().primary_name(), error, "new certificate cannot be served");
        }
    }

    fn removed(&self, name: &str) {
        self.remove(name);
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        match hello.server_name() {
            Some(name) => self.lookup(name).or_else(|| (**self.default.load()).clone()),
            None => (**self.default.load()).clone(),
        }
    }
}
