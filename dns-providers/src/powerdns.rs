//! PowerDNS Authoritative through its HTTP API (`/api/v1/servers/<id>/zones/<zone>`,
//! `X-API-Key`), writing whole RRsets with `PATCH … changetype REPLACE/DELETE`.

use std::time::Duration;

use async_trait::async_trait;
use dns_verify::{DnsRecord, ProviderError};
use hyper::Method;
use serde::Deserialize;

use crate::{
    debug::debug_without_secrets,
    http::{Answer, HttpClient, json_body},
    rrset::{self, RrsetApi, SetWrite},
    text::{bare, data_of, dotted, value_of},
};

/// A zone on a PowerDNS Authoritative server.
///
/// ```
/// let pdns = dns_providers::PowerDns::new("http://127.0.0.1:8081", "secret-key", "example.com").unwrap();
/// assert!(!format!("{pdns:?}").contains("secret-key"));
/// ```
pub struct PowerDns {
    http: HttpClient,
    base: String,
    server_id: String,
    zone: String,
    api_key: String,
}

debug_without_secrets!(PowerDns { base, zone });

#[derive(Deserialize)]
struct Zone {
    #[serde(default)]
    rrsets: Vec<RrSet>,
}

#[derive(Deserialize)]
struct RrSet {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    ttl: u32,
    #[serde(default)]
    records: Vec<Content>,
}

#[derive(Deserialize)]
struct Content {
    content: String,
    #[serde(default)]
    disabled: bool,
}

impl PowerDns {
    /// The zone `zone` of the server whose API is at `api_url` (e.g.
    /// `http://127.0.0.1:8081`), server id `localhost`.
    ///
    /// # Errors
    /// When the HTTPS client cannot be built.
    pub fn new(api_url: &str, api_key: &str, zone: &str) -> Result<Self, crate::ClientError> {
        Ok(Self {
            http: HttpClient::new(Duration::from_secs(15))?,
            base: api_url.trim_end_matches('/').to_owned(),
            server_id: "localhost".to_owned(),
            zone: bare(zone),
            api_key: api_key.to_owned(),
        })
    }

    /// Another server id than `localhost`.
    #[must_use]
    pub fn with_server_id(mut self, server_id: &str) -> Self {
        self.server_id = server_id.to_owned();
        self
    }

    fn zone_url(&self) -> String {
        format!("{}/api/v1/servers/{}/zones/{}", self.base, self.server_id, dotted(&self.zone))
    }

    fn headers(&self) -> Vec<(&'static str, String)> {
        vec![("x-api-key", self.api_key.clone()), ("content-type", "application/json".to_owned())]
    }

    fn error(&self, answer: &Answer, what: &str) -> ProviderError {
        let message = serde_json::from_slice::<serde_json::Value>(&answer.body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
            .unwrap_or_else(|| answer.snippet());
        let status = answer.status.as_u16();
        if status == 404 || (status == 422 && message.contains("Could not find domain")) {
            return ProviderError::zone_not_found(&self.zone)
                .with_source(std::io::Error::other(format!("{what}: {message}")));
        }
        if status == 422 && message.contains("Conflicts with pre-existing") {
            return ProviderError::conflict(what, message);
        }
        answer.generic_error(what)
    }
}

#[async_trait]
impl RrsetApi for PowerDns {
    async fn list_name(&self, name: &str) -> Result<Vec<DnsRecord>, ProviderError> {
        crate::text::relative(name, &self.zone)?;
        let answer = self
            .http
            .send(Method::GET, &self.zone_url(), &self.headers(), Vec::new())
            .await?
            .success_or(|a| self.error(a, &format!("list {}", self.zone)))?;
        let zone: Zone = answer.json(format!("PowerDNS zone {} is not the JSON expected", self.zone))?;
        let want = bare(name);
        Ok(zone
            .rrsets
            .iter()
            .filter(|set| bare(&set.name) == want)
            .flat_map(|set| {
                set.records.iter().filter(|r| !r.disabled).filter_map(|r| {
                    Some(DnsRecord {
                        name: want.clone(),
                        ttl: set.ttl,
                        data: data_of(&set.kind, &r.content, true)?,
                    })
                })
            })
            .collect())
    }

    async fn write_set(&self, set: &SetWrite<'_>) -> Result<(), ProviderError> {
        let SetWrite { name, kind, ttl, values, .. } = *set;
        let rrset = if values.is_empty() {
            serde_json::json!({ "name": dotted(name), "type": kind.type_name(), "changetype": "DELETE" })
        } else {
            let records: Vec<_> = values
                .iter()
                .map(|v| serde_json::json!({ "content": value_of(v, true, true), "disabled": false }))
                .collect();
            serde_json::json!({
                "name": dotted(name), "type": kind.type_name(), "ttl": ttl,
                "changetype": "REPLACE", "records": records,
            })
        };
        let body = json_body(&serde_json::json!({ "rrsets": [rrset] }), "cannot encode the PowerDNS change")?;
        self.http
            .send(Method::PATCH, &self.zone_url(), &self.headers(), body)
            .await?
            .success_or(|a| self.error(a, &set.what()))?;
        Ok(())
    }
}

rrset::dns_provider!(PowerDns);
