//! GoDaddy's Domains API (`/v1/domains/<domain>/records`, `Authorization:
//! sso-key KEY:SECRET`), writing whole sets with `PUT …/records/<type>/<name>`.
//!
//! GoDaddy's gate: the Management and DNS APIs answer
//! `403 {"code":"ACCESS_DENIED","message":"Authenticated user is not allowed access"}`
//! for accounts with fewer than 10 domains and no Discount Domain Club
//! (Premier) plan — [`ProviderError::AccountTierGate`].

use std::time::Duration;

use async_trait::async_trait;
use dns_verify::{DnsRecord, ProviderError};
use hyper::Method;
use serde::Deserialize;

use crate::{
    debug::debug_without_secrets,
    http::{Answer, HttpClient, json_body},
    rrset::{self, RrsetApi, SetWrite},
    text::{bare, relative, value_of},
};

/// GoDaddy's production API.
pub const GODADDY_API: &str = "https://api.godaddy.com";

/// A domain's DNS at GoDaddy.
///
/// ```
/// let gd = dns_providers::GoDaddy::new("key", "secret-part", "example.com").unwrap();
/// assert!(!format!("{gd:?}").contains("secret-part"));
/// ```
pub struct GoDaddy {
    http: HttpClient,
    base: String,
    domain: String,
    authorization: String,
}

debug_without_secrets!(GoDaddy { base, domain });

#[derive(Deserialize)]
struct Record {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    data: String,
    #[serde(default)]
    ttl: u32,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default, rename = "retryAfterSec")]
    retry_after_sec: Option<u64>,
}

impl GoDaddy {
    /// The domain `domain` of the account whose API key is `key` / `secret`.
    ///
    /// # Errors
    /// When the HTTPS client cannot be built.
    pub fn new(key: &str, secret: &str, domain: &str) -> Result<Self, crate::ClientError> {
        Ok(Self {
            http: HttpClient::new(Duration::from_secs(15))?,
            base: GODADDY_API.to_owned(),
            domain: bare(domain),
            authorization: format!("sso-key {key}:{secret}"),
        })
    }

    /// Another API base URL (GoDaddy's OTE test environment, a test server).
    #[must_use]
    pub fn with_api_url(mut self, url: &str) -> Self {
        self.base = url.trim_end_matches('/').to_owned();
        self
    }

    fn headers(&self) -> Vec<(&'static str, String)> {
        vec![
            ("authorization", self.authorization.clone()),
            ("content-type", "application/json".to_owned()),
            ("accept", "application/json".to_owned()),
        ]
    }

    /// GoDaddy's documented errors, by status and `code`.
    fn error(&self, answer: &Answer, what: &str) -> ProviderError {
        let body: Option<ErrorBody> = serde_json::from_slice(&answer.body).ok();
        let (code, message) =
            body.as_ref().map_or((String::new(), answer.snippet()), |b| (b.code.clone(), b.message.clone()));
        let detail = format!("{what}: HTTP {} {code} {message}", answer.status.as_u16());
        match (answer.status.as_u16(), code.as_str()) {
            (403, "ACCESS_DENIED") => ProviderError::account_tier_gate(detail),
            (401, _) | (_, "UNABLE_TO_AUTHENTICATE") => ProviderError::invalid_credential(detail),
            (403, _) => ProviderError::permission_denied(detail),
            (404, _) | (_, "UNKNOWN_DOMAIN") => {
                ProviderError::zone_not_found(&self.domain).with_source(std::io::Error::other(detail))
            }
            (429, _) => ProviderError::rate_limited(
                body.and_then(|b| b.retry_after_sec)
                    .map(Duration::from_secs)
                    .or_else(|| answer.retry_after()),
            ),
            _ => answer.generic_error(&detail),
        }
    }
}

#[async_trait]
impl RrsetApi for GoDaddy {
    async fn list_name(&self, name: &str) -> Result<Vec<DnsRecord>, ProviderError> {
        let rel = relative(name, &self.domain)?;
        let url = format!("{}/v1/domains/{}/records", self.base, self.domain);
        let answer = self
            .http
            .send(Method::GET, &url, &self.headers(), Vec::new())
            .await?
            .success_or(|a| self.error(a, &format!("list {}", self.domain)))?;
        let records: Vec<Record> =
            answer.json(format!("GoDaddy records of {} are not the JSON expected", self.domain))?;
        Ok(rrset::named(&records, name, &rel, |r| (&r.name, &r.kind, &r.data, r.ttl)))
    }

    async fn write_set(&self, set: &SetWrite<'_>) -> Result<(), ProviderError> {
        let SetWrite { name, kind, ttl, values, .. } = *set;
        let rel = relative(name, &self.domain)?;
        let url = format!(
            "{}/v1/domains/{}/records/{}/{}",
            self.base,
            self.domain,
            kind.type_name(),
            percent_encoding::utf8_percent_encode(&rel, percent_encoding::NON_ALPHANUMERIC)
        );
        let answer = if values.is_empty() {
            self.http.send(Method::DELETE, &url, &self.headers(), Vec::new()).await?
        } else {
            // GoDaddy's minimum TTL is 600 s.
            let body: Vec<_> = values
                .iter()
                .map(|v| serde_json::json!({ "data": value_of(v, false, false), "ttl": ttl.max(600) }))
                .collect();
            let body = json_body(&body, "cannot encode the GoDaddy change")?;
            self.http.send(Method::PUT, &url, &self.headers(), body).await?
        };
        if answer.status.is_success() || (values.is_empty() && answer.status.as_u16() == 404) {
            Ok(())
        } else {
            Err(self.error(&answer, &set.what()))
        }
    }
}

rrset::dns_provider!(GoDaddy);
