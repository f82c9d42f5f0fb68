//! Cloudflare's API v4 (`/zones?name=`, `/zones/<id>/dns_records`, a bearer
//! API token), one record per call.
//!
//! Cloudflare's gates: a token without `Zone.DNS:Edit` on the zone answers
//! `403` with error `10000 Authentication error`
//! ([`ProviderError::PermissionDenied`]); a zone that is not on the account
//! (or not in the token's resources) lists as no zone
//! ([`ProviderError::ZoneNotFound`]); a bad token answers error `9109 Invalid
//! access token` ([`ProviderError::InvalidCredential`]).

use std::time::Duration;

use async_trait::async_trait;
use dns_verify::{DnsProvider, DnsRecord, ProviderError, cname_conflict};
use hyper::Method;
use serde::Deserialize;
use tokio::sync::OnceCell;

use crate::{
    debug::debug_without_secrets,
    http::{Answer, HttpClient, json_body},
    text::{bare, data_of, holds, relative, value_of},
};

/// Cloudflare's production API.
pub const CLOUDFLARE_API: &str = "https://api.cloudflare.com/client/v4";

/// A zone at Cloudflare.
///
/// ```
/// let cf = dns_providers::Cloudflare::new("token-value", "example.com").unwrap();
/// assert!(!format!("{cf:?}").contains("token-value"));
/// ```
pub struct Cloudflare {
    http: HttpClient,
    base: String,
    zone: String,
    token: String,
    zone_id: OnceCell<String>,
}

debug_without_secrets!(Cloudflare { base, zone });

#[derive(Deserialize)]
struct Envelope<T> {
    #[serde(default)]
    success: bool,
    #[serde(default)]
    errors: Vec<CfError>,
    result: Option<T>,
}

#[derive(Deserialize)]
struct CfError {
    #[serde(default)]
    code: u32,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct ZoneItem {
    id: String,
    name: String,
}

#[derive(Deserialize)]
struct RecordItem {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    name: String,
    content: String,
    #[serde(default)]
    ttl: u32,
}

impl Cloudflare {
    /// The zone `zone`, through the API token `token`.
    ///
    /// # Errors
    /// When the HTTPS client cannot be built.
    pub fn new(token: &str, zone: &str) -> Result<Self, crate::ClientError> {
        Ok(Self {
            http: HttpClient::new(Duration::from_secs(15))?,
            base: CLOUDFLARE_API.to_owned(),
            zone: bare(zone),
            token: token.to_owned(),
            zone_id: OnceCell::new(),
        })
    }

    /// Another API base URL (a test server).
    #[must_use]
    pub fn with_api_url(mut self, url: &str) -> Self {
        self.base = url.trim_end_matches('/').to_owned();
        self
    }

    fn headers(&self) -> Vec<(&'static str, String)> {
        vec![
            ("authorization", format!("Bearer {}", self.token)),
            ("content-type", "application/json".to_owned()),
        ]
    }

    fn error(&self, answer: &Answer, what: &str) -> ProviderError {
        let errors = serde_json::from_slice::<Envelope<serde_json::Value>>(&answer.body)
            .map(|e| e.errors)
            .unwrap_or_default();
        let codes: Vec<u32> = errors.iter().map(|e| e.code).collect();
        let text = errors.iter().map(|e| format!("{} {}", e.code, e.message)).collect::<Vec<_>>().join("; ");
        let detail = format!("{what}: HTTP {} {text}", answer.status.as_u16());
        let status = answer.status.as_u16();
        if codes.iter().any(|c| matches!(c, 9109 | 6003 | 6111 | 9106 | 9107 | 1000)) || status == 401 {
            ProviderError::invalid_credential(detail)
        } else if status == 403 || codes.contains(&10000) || codes.contains(&9300) {
            ProviderError::permission_denied(detail)
        } else if codes.contains(&7003) || codes.contains(&1001) {
            ProviderError::zone_not_found(&self.zone).with_source(std::io::Error::other(detail))
        } else if codes.contains(&81053) || codes.contains(&81054) {
            ProviderError::conflict(what, text)
        } else {
            answer.generic_error(&detail)
        }
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        url: &str,
        body: Vec<u8>,
        what: &str,
    ) -> Result<Option<T>, ProviderError> {
        let answer =
            self.http.send(method, url, &self.headers(), body).await?.success_or(|a| self.error(a, what))?;
        let envelope: Envelope<T> =
            answer.json(format!("{what}: Cloudflare's answer is not the JSON expected"))?;
        if !envelope.success {
            return Err(self.error(&answer, what));
        }
        Ok(envelope.result)
    }

    async fn zone_id(&self) -> Result<&str, ProviderError> {
        self.zone_id
            .get_or_try_init(|| async {
                let url = format!("{}/zones?name={}", self.base, self.zone);
                let zones: Vec<ZoneItem> = self
                    .call(Method::GET, &url, Vec::new(), &format!("find zone {}", self.zone))
                    .await?
                    .unwrap_or_default();
                zones
                    .into_iter()
                    .find(|z| bare(&z.name) == self.zone)
                    .map(|z| z.id)
                    .ok_or_else(|| ProviderError::zone_not_found(&self.zone))
            })
            .await
            .map(String::as_str)
    }

    async fn items(&self, name: &str) -> Result<Vec<RecordItem>, ProviderError> {
        relative(name, &self.zone)?;
        let id = self.zone_id().await?;
        let url = format!("{}/zones/{id}/dns_records?name={}&per_page=100", self.base, bare(name));
        let items: Vec<RecordItem> = self
            .call(Method::GET, &url, Vec::new(), &format!("list {}", bare(name)))
            .await?
            .unwrap_or_default();
        Ok(items.into_iter().filter(|i| bare(&i.name) == bare(name)).collect())
    }

    fn record_of(item: &RecordItem) -> Option<DnsRecord> {
        // Cloudflare keeps TXT content as it was sent (quoted or not).
        let quoted = item.content.starts_with('"');
        Some(DnsRecord {
            name: bare(&item.name),
            ttl: item.ttl,
            data: data_of(&item.kind, &item.content, quoted)?,
        })
    }
}

#[async_trait]
impl DnsProvider for Cloudflare {
    async fn create(&self, record: &DnsRecord) -> Result<(), ProviderError> {
        let existing = self.list(&record.name).await?;
        if holds(&existing, record) {
            return Ok(());
        }
        if let Some(conflict) = cname_conflict(record, &existing) {
            return Err(conflict);
        }
        let id = self.zone_id().await?;
        let record_json = serde_json::json!({
            "type": record.data.type_name(),
            "name": bare(&record.name),
            "content": value_of(&record.data, false, false),
            "ttl": record.ttl.max(60),
            "proxied": false,
        });
        let body = json_body(&record_json, "cannot encode the Cloudflare record")?;
        let url = format!("{}/zones/{id}/dns_records", self.base);
        self.call::<serde_json::Value>(Method::POST, &url, body, &format!("create {}", record.name)).await?;
        Ok(())
    }

    async fn delete(&self, record: &DnsRecord) -> Result<(), ProviderError> {
        let items = self.items(&record.name).await?;
        let id = self.zone_id().await?;
        for item in items.iter().filter(|i| Self::record_of(i).is_some_and(|r| r.data == record.data)) {
            let url = format!("{}/zones/{id}/dns_records/{}", self.base, item.id);
            self.call::<serde_json::Value>(
                Method::DELETE,
                &url,
                Vec::new(),
                &format!("delete {}", record.name),
            )
            .await?;
        }
        Ok(())
    }

    async fn list(&self, name: &str) -> Result<Vec<DnsRecord>, ProviderError> {
        Ok(self.items(name).await?.iter().filter_map(Self::record_of).collect())
    }
}
