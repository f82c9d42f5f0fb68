//! Delegated DNS credentials: a customer gives a credential for their DNS
//! provider, the control plane checks it at once (a harmless listing),
//! keeps it sealed ([`SecretBox`], bound to the connection), writes the
//! connection's desired records itself, and writes them again when they go
//! missing. What it did and the provider's last error (with the customer's
//! fix) are kept beside the credential, never the credential itself in
//! clear, and never in a log line.
//!
//! A provider gate (an error a person must fix: tier, IP allow-list,
//! permission, zone, credential) is tried again at most once per
//! [`DnsCredentials::gate_retry`] (an hour by default), so a refused
//! credential never makes a retry storm; each new error is one activity
//! entry.

use std::{sync::Arc, time::Duration};

use cert_store::Storage;
use dns_providers::{ConfigError, ProviderConfig};
use dns_verify::{DnsProvider, DnsRecord, ProviderError, RecordData};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::Mutex;

use crate::{
    Activity, ActivityLog, Connection, DesiredRecord, DomainState, Repo, SecretBox, SecretsError, keys,
};

/// Why a credential was not accepted or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// The edge has no secrets key (`EDGE_SECRETS_KEY`): credentials cannot be stored.
    #[error("delegated DNS credentials are not enabled on this edge (no secrets key)")]
    Disabled,
    /// The configuration cannot make a provider.
    #[error("invalid DNS provider settings: {0}")]
    Config(#[from] ConfigError),
    /// The credential names its own API URL for a hosted provider, which
    /// this edge does not allow.
    #[error("api_url/endpoint may not be set for {0}")]
    ApiUrlNotAllowed(&'static str),
    /// The provider refused the check call.
    #[error("the DNS provider refused the credential: {0}")]
    Provider(#[source] ProviderError),
    /// Sealing or opening failed.
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] cert_store::StorageError),
}

impl CredentialError {
    /// The customer's sentence for a provider refusal.
    #[must_use]
    pub fn resolution(&self) -> Option<String> {
        match self {
            Self::Provider(e) => Some(e.resolution()),
            _ => None,
        }
    }
}

/// The provider's last error as a customer reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProviderProblem {
    /// Stable code, e.g. `provider_account_tier`, `provider_ip_not_allowed`.
    pub code: String,
    /// What the provider said.
    pub message: String,
    /// What to do.
    pub fix: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub at: OffsetDateTime,
}

/// What the edge did with a connection's credential (shown by `records:check`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProviderState {
    /// `powerdns`, `cloudflare`, `godaddy`, …
    pub provider: String,
    /// The zone the credential manages.
    pub zone: String,
    /// `TYPE name` of each record the edge wrote.
    pub applied: Vec<String>,
    /// The last write, if any.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub last_applied_at: Option<OffsetDateTime>,
    /// The provider's last error, with its fix; `None` once a write succeeds.
    pub last_error: Option<ProviderProblem>,
    /// Not tried again before this (after an error).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub retry_at: Option<OffsetDateTime>,
}

/// What is stored at `edge/credentials/<id>`.
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    sealed: crate::Sealed,
    state: ProviderState,
}

/// The records `desired` asks for, as a provider writes them.
fn records_of(desired: &DesiredRecord) -> Vec<DnsRecord> {
    let values = desired.value.split(',').map(str::trim).filter(|v| !v.is_empty());
    match desired.record_type.as_str() {
        "TXT" => vec![DnsRecord::txt(&desired.name, &desired.value)],
        "CNAME" => vec![DnsRecord::cname(&desired.name, &desired.value)],
        "A" => values.filter_map(|v| v.parse().ok()).map(|ip| DnsRecord::a(&desired.name, ip)).collect(),
        "AAAA" => values
            .filter_map(|v| v.parse().ok())
            .map(|ip| DnsRecord { name: desired.name.clone(), ttl: 60, data: RecordData::Aaaa(ip) })
            .collect(),
        _ => Vec::new(),
    }
}

fn label(record: &DnsRecord) -> String {
    format!("{} {}", record.data.type_name(), record.name.trim_end_matches('.').to_ascii_lowercase())
}

/// Connections' DNS provider credentials in a shared store.
pub struct DnsCredentials {
    storage: Arc<dyn Storage>,
    secrets: Option<SecretBox>,
    egress_ip: Option<String>,
    egress_ip_url: Option<String>,
    discovered_ip: tokio::sync::OnceCell<String>,
    allow_api_url: bool,
    gate_retry: Duration,
    temporary_retry: Duration,
    /// One pass at a time per process.
    pass: Mutex<()>,
}

impl std::fmt::Debug for DnsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsCredentials")
            .field("enabled", &self.secrets.is_some())
            .field("egress_ip", &self.egress_ip)
            .finish_non_exhaustive()
    }
}

impl DnsCredentials {
    /// Credentials in `storage`, sealed with `secrets` (`None`: refused
    /// with [`CredentialError::Disabled`]).
    #[must_use]
    pub fn new(storage: Arc<dyn Storage>, secrets: Option<SecretBox>) -> Self {
        Self {
            storage,
            secrets,
            egress_ip: None,
            egress_ip_url: None,
            discovered_ip: tokio::sync::OnceCell::new(),
            allow_api_url: false,
            gate_retry: Duration::from_secs(3600),
            temporary_retry: Duration::from_secs(60),
            pass: Mutex::new(()),
        }
    }

    /// The address the edge's API calls come from (Namecheap's `ClientIp`,
    /// and the IP a customer allow-lists).
    #[must_use]
    pub fn egress_ip(mut self, ip: Option<String>) -> Self {
        self.egress_ip = ip;
        self
    }

    /// Without [`egress_ip`](Self::egress_ip): asks `url` (an echo service
    /// such as `https://api.ipify.org`) once, when a provider first needs it.
    #[must_use]
    pub fn egress_ip_from(mut self, url: Option<String>) -> Self {
        self.egress_ip_url = url;
        self
    }

    /// The egress IP: configured, or discovered once (a failed discovery is
    /// asked again next time).
    async fn egress(&self) -> Option<String> {
        if let Some(ip) = &self.egress_ip {
            return Some(ip.clone());
        }
        let url = self.egress_ip_url.as_deref()?;
        let found = self
            .discovered_ip
            .get_or_try_init(|| async {
                let ip = dns_providers::discover_egress_ip(url).await?;
                tracing::info!(%ip, "egress IP discovered");
                Ok::<_, ProviderError>(ip.to_string())
            })
            .await;
        match found {
            Ok(ip) => Some(ip.clone()),
            Err(e) => {
                tracing::warn!(error = %e, "egress IP not discovered");
                None
            }
        }
    }

    /// Lets credentials of hosted providers name another API URL (tests
    /// only: otherwise a credential could make the edge call internal
    /// addresses).
    #[must_use]
    pub fn allow_api_url_override(mut self, allow: bool) -> Self {
        self.allow_api_url = allow;
        self
    }

    /// How long after a provider gate (an error a person must fix) the
    /// edge tries again (default one hour).
    #[must_use]
    pub fn gate_retry(mut self, after: Duration) -> Self {
        self.gate_retry = after;
        self
    }

    fn secrets(&self) -> Result<&SecretBox, CredentialError> {
        self.secrets.as_ref().ok_or(CredentialError::Disabled)
    }

    /// Checks `config` with a harmless call (listing the ownership record's
    /// name), then stores it sealed for connection `c`. The credential is
    /// never returned.
    ///
    /// # Errors
    /// [`CredentialError`]; [`CredentialError::Provider`] carries the
    /// provider's typed error and its [`resolution`](CredentialError::resolution).
    pub async fn set(
        &self,
        c: &Connection,
        config: &ProviderConfig,
    ) -> Result<ProviderState, CredentialError> {
        let secrets = self.secrets()?;
        if config.overrides_api_url() && !self.allow_api_url {
            return Err(CredentialError::ApiUrlNotAllowed(config.kind()));
        }
        let egress = self.egress().await;
        let provider = config.build(egress.as_deref())?;
        let probe = c
            .records
            .iter()
            .find(|r| r.record_type == "TXT")
            .map_or_else(|| c.hostname.clone(), |r| r.name.clone());
        provider.list(&probe).await.map_err(CredentialError::Provider)?;
        let plain = serde_json::to_vec(config).map_err(cert_store::StorageError::backend)?;
        let sealed = secrets.seal(&plain, c.id.as_bytes())?;
        let state = ProviderState {
            provider: config.kind().to_owned(),
            zone: config.zone().to_owned(),
            applied: Vec::new(),
            last_applied_at: None,
            last_error: None,
            retry_at: None,
        };
        self.put(&c.id, &Stored { sealed, state: state.clone() }).await?;
        tracing::info!(connection = %c.id, provider = config.kind(), zone = config.zone(), "DNS provider credential stored");
        Ok(state)
    }

    async fn put(&self, id: &str, stored: &Stored) -> Result<(), CredentialError> {
        let bytes = serde_json::to_vec(stored).map_err(cert_store::StorageError::backend)?;
        Ok(self.storage.put(&keys::credential(id)?, &bytes).await?)
    }

    async fn load(&self, id: &str) -> Result<Option<Stored>, CredentialError> {
        let Some(bytes) = self.storage.get(&keys::credential(id)?).await? else { return Ok(None) };
        Ok(serde_json::from_slice(&bytes).ok())
    }

    /// What the edge did with connection `id`'s credential, if it has one.
    ///
    /// # Errors
    /// [`CredentialError::Storage`].
    pub async fn state(&self, id: &str) -> Result<Option<ProviderState>, CredentialError> {
        Ok(self.load(id).await?.map(|s| s.state))
    }

    async fn provider(&self, id: &str, stored: &mut Stored) -> Result<Arc<dyn DnsProvider>, CredentialError> {
        let secrets = self.secrets()?;
        let plain = secrets.open(&stored.sealed, id.as_bytes())?;
        if secrets.is_stale(&stored.sealed) {
            // Rotation: sealed again under the current key, saved with the state.
            stored.sealed = secrets.seal(&plain, id.as_bytes())?;
        }
        let config: ProviderConfig =
            serde_json::from_slice(&plain).map_err(cert_store::StorageError::backend)?;
        let egress = self.egress().await;
        Ok(config.build(egress.as_deref())?)
    }

    /// Deletes connection `c`'s credential, after removing the records the
    /// edge wrote with it (best effort).
    ///
    /// # Errors
    /// [`CredentialError::Storage`].
    pub async fn remove(&self, c: &Connection) -> Result<(), CredentialError> {
        let Some(mut stored) = self.load(&c.id).await? else { return Ok(()) };
        if let Ok(provider) = self.provider(&c.id, &mut stored).await {
            for record in c.records.iter().flat_map(records_of) {
                if stored.state.applied.contains(&label(&record))
                    && let Err(e) = provider.delete(&record).await
                {
                    tracing::warn!(connection = %c.id, record = %record.name, error = %e, "record not removed");
                }
            }
        }
        self.storage.delete(&keys::credential(&c.id)?).await?;
        Ok(())
    }

    /// Writes what is missing of `c`'s desired records through its
    /// credential (nothing without one, nothing before its retry time), and
    /// records what happened in `activity`.
    ///
    /// # Errors
    /// [`CredentialError::Storage`] and secrets errors; provider errors are
    /// kept in the state, not returned.
    pub async fn apply(&self, c: &Connection, activity: &ActivityLog) -> Result<(), CredentialError> {
        let Some(mut stored) = self.load(&c.id).await? else { return Ok(()) };
        let now = OffsetDateTime::now_utc();
        if stored.state.retry_at.is_some_and(|at| at > now) {
            return Ok(());
        }
        let provider = self.provider(&c.id, &mut stored).await?;
        let mut written = Vec::new();
        let mut failure = None;
        for record in c.records.iter().flat_map(records_of) {
            let outcome = async {
                let there = provider.list(&record.name).await?;
                if there.iter().any(|r| r.data == record.data) {
                    return Ok(false);
                }
                match record.data {
                    // One target per name: a stale CNAME is replaced.
                    RecordData::Cname(_) => provider.replace(&record).await?,
                    _ => provider.create(&record).await?,
                }
                Ok::<_, ProviderError>(true)
            }
            .await;
            match outcome {
                Ok(true) => written.push(label(&record)),
                Ok(false) => {}
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if !written.is_empty() {
            let repaired = written.iter().any(|w| stored.state.applied.contains(w));
            for w in &written {
                if !stored.state.applied.contains(w) {
                    stored.state.applied.push(w.clone());
                }
            }
            stored.state.last_applied_at = Some(now);
            tracing::info!(connection = %c.id, hostname = %c.hostname, records = ?written, repaired, "records written through the customer's DNS provider");
            activity.record(c, Activity::RecordsApplied { records: written, repaired }).await;
        }
        match failure {
            None => {
                stored.state.last_error = None;
                stored.state.retry_at = None;
            }
            Some(e) => {
                let wait = match &e {
                    ProviderError::RateLimited { retry_after, .. } => {
                        retry_after.unwrap_or(self.temporary_retry).min(self.gate_retry)
                    }
                    e if e.is_temporary() => self.temporary_retry,
                    _ => self.gate_retry,
                };
                stored.state.retry_at = Some(now + wait);
                let problem = ProviderProblem {
                    code: e.code().to_owned(),
                    message: e.to_string(),
                    fix: e.resolution(),
                    at: now,
                };
                tracing::warn!(connection = %c.id, hostname = %c.hostname, code = e.code(), error = %e, retry_in = ?wait, "DNS provider write failed");
                let new = stored.state.last_error.as_ref().is_none_or(|p| p.code != problem.code);
                if new {
                    activity
                        .record(
                            c,
                            Activity::ProviderFailed {
                                code: problem.code.clone(),
                                message: problem.message.clone(),
                                fix: problem.fix.clone(),
                            },
                        )
                        .await;
                }
                stored.state.last_error = Some(problem);
            }
        }
        self.put(&c.id, &stored).await
    }

    /// [`apply`](Self::apply) for every connection holding a credential
    /// (archived ones are skipped). One pass at a time per process.
    pub async fn apply_all(&self, repo: &Repo, activity: &ActivityLog) {
        let Ok(_one) = self.pass.try_lock() else { return };
        let names = match keys::credentials() {
            Ok(prefix) => self.storage.list(&prefix).await,
            Err(e) => Err(e),
        };
        let names = match names {
            Ok(names) => names,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list DNS provider credentials");
                return;
            }
        };
        for key in names {
            let id = key.as_str().rsplit('/').next().unwrap_or_default();
            match repo.get(id).await {
                Ok(Some(c)) if c.state != DomainState::Archived => {
                    if let Err(e) = self.apply(&c, activity).await {
                        tracing::warn!(connection = %id, error = %e, "DNS provider credential not usable");
                    }
                }
                _ => {}
            }
        }
    }
}
