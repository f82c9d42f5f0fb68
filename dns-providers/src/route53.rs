//! Amazon Route 53's REST API (2013-04-01), signed with AWS SigV4
//! ([`crate::sigv4`]): `hostedzonesbyname` to find the zone,
//! `…/rrset` GET to list, `ChangeResourceRecordSets` (UPSERT / DELETE of a
//! whole set) to write.

use std::time::Duration;

use async_trait::async_trait;
use dns_verify::{DnsRecord, ProviderError, RecordData};
use hyper::Method;
use time::{OffsetDateTime, macros::format_description};
use tokio::sync::OnceCell;

use crate::{
    debug::debug_without_secrets,
    http::{Answer, HttpClient},
    rrset::{self, RrsetApi, SetWrite},
    sigv4::{Signer, uri_encode},
    text::{bare, data_of, dotted, relative, value_of},
    xml::{Element, escape},
};

/// Route 53's global endpoint.
pub const ROUTE53_API: &str = "https://route53.amazonaws.com";

const API_VERSION: &str = "2013-04-01";

/// A hosted zone in Route 53.
///
/// ```
/// let r53 = dns_providers::Route53::new("AKIDEXAMPLE", "secret-value", "example.com").unwrap();
/// assert!(!format!("{r53:?}").contains("secret-value"));
/// ```
pub struct Route53 {
    http: HttpClient,
    base: String,
    host: String,
    signer: Signer,
    zone: String,
    zone_id: OnceCell<String>,
}

debug_without_secrets!(Route53 { base, zone });

impl Route53 {
    /// The hosted zone named `zone`, with the IAM access key
    /// `access_key_id` / `secret_access_key`.
    ///
    /// # Errors
    /// When the HTTPS client cannot be built.
    pub fn new(access_key_id: &str, secret_access_key: &str, zone: &str) -> Result<Self, crate::ClientError> {
        let mut r53 = Self {
            http: HttpClient::new(Duration::from_secs(20))?,
            base: String::new(),
            host: String::new(),
            signer: Signer {
                access_key_id: access_key_id.to_owned(),
                secret_access_key: secret_access_key.to_owned(),
                region: "us-east-1".to_owned(),
                service: "route53".to_owned(),
            },
            zone: bare(zone),
            zone_id: OnceCell::new(),
        };
        r53.set_base(ROUTE53_API);
        Ok(r53)
    }

    /// Another endpoint (an emulator such as moto, a regional partition).
    #[must_use]
    pub fn with_endpoint(mut self, url: &str) -> Self {
        self.set_base(url);
        self
    }

    /// The hosted zone id (`Z…`), when known: no lookup by name.
    #[must_use]
    pub fn with_hosted_zone_id(self, id: &str) -> Self {
        let id = id.trim_start_matches("/hostedzone/").to_owned();
        let _ = self.zone_id.set(id);
        self
    }

    fn set_base(&mut self, url: &str) {
        self.base = url.trim_end_matches('/').to_owned();
        self.host = self
            .base
            .split("://")
            .nth(1)
            .unwrap_or(&self.base)
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned();
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Answer, ProviderError> {
        let now = OffsetDateTime::now_utc();
        let amz_date = now
            .format(format_description!("[year][month][day]T[hour][minute][second]Z"))
            .map_err(|e| ProviderError::server("cannot format the request date").with_source(e))?;
        let mut signed = vec![("host", self.host.as_str()), ("x-amz-date", amz_date.as_str())];
        if !body.is_empty() {
            signed.push(("content-type", "application/xml"));
        }
        let authorization =
            self.signer.authorization(method.as_str(), path, query, &signed, &body, &amz_date);
        let mut headers: Vec<(&str, String)> =
            vec![("x-amz-date", amz_date.clone()), ("authorization", authorization)];
        if !body.is_empty() {
            headers.push(("content-type", "application/xml".to_owned()));
        }
        let query_string = query
            .iter()
            .map(|(k, v)| format!("{}={}", uri_encode(k), uri_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let url = if query_string.is_empty() {
            format!("{}{path}", self.base)
        } else {
            format!("{}{path}?{query_string}", self.base)
        };
        self.http.send(method, &url, &headers, body).await
    }

    /// Route 53's documented error codes.
    fn error(&self, answer: &Answer, what: &str) -> ProviderError {
        let parsed = Element::parse(&answer.body).ok();
        let error = parsed.as_ref().and_then(|root| root.all("Error").first().map(|e| (*e).clone()));
        let code = error.as_ref().and_then(|e| e.child_text("Code")).unwrap_or_default().to_owned();
        let message = error
            .as_ref()
            .and_then(|e| e.child_text("Message"))
            .map_or_else(|| answer.snippet(), str::to_owned);
        let detail = format!("{what}: HTTP {} {code}: {message}", answer.status.as_u16());
        match code.as_str() {
            "InvalidClientTokenId"
            | "SignatureDoesNotMatch"
            | "IncompleteSignature"
            | "MissingAuthenticationToken"
            | "UnrecognizedClientException"
            | "ExpiredToken" => ProviderError::invalid_credential(detail),
            "AccessDenied" | "AccessDeniedException" => ProviderError::permission_denied(detail),
            "NoSuchHostedZone" => {
                ProviderError::zone_not_found(&self.zone).with_source(std::io::Error::other(detail))
            }
            "Throttling" | "ThrottlingException" | "PriorRequestNotComplete" => {
                ProviderError::rate_limited(answer.retry_after())
            }
            "InvalidChangeBatch" if message.contains("conflict") => ProviderError::conflict(what, message),
            _ => answer.generic_error(&detail),
        }
    }

    async fn zone_id(&self) -> Result<&str, ProviderError> {
        self.zone_id
            .get_or_try_init(|| async {
                let path = format!("/{API_VERSION}/hostedzonesbyname");
                let zone = dotted(&self.zone);
                let root = self
                    .send(Method::GET, &path, &[("dnsname", &zone), ("maxitems", "1")], Vec::new())
                    .await?
                    .success_or(|a| self.error(a, &format!("find hosted zone {}", self.zone)))?
                    .xml("Route 53's hosted zone list is not the XML expected")?;
                root.all("HostedZone")
                    .into_iter()
                    .find(|z| z.child_text("Name").is_some_and(|n| bare(n) == self.zone))
                    .and_then(|z| z.child_text("Id"))
                    .map(|id| id.trim_start_matches("/hostedzone/").to_owned())
                    .ok_or_else(|| ProviderError::zone_not_found(&self.zone))
            })
            .await
            .map(String::as_str)
    }

    fn change_xml(action: &str, name: &str, kind: &RecordData, ttl: u32, values: &[RecordData]) -> String {
        let records: String = values
            .iter()
            .map(|v| {
                format!(
                    "<ResourceRecord><Value>{}</Value></ResourceRecord>",
                    escape(&value_of(v, true, true))
                )
            })
            .collect();
        format!(
            "<Change><Action>{action}</Action><ResourceRecordSet><Name>{}</Name><Type>{}</Type><TTL>{ttl}</TTL>\
             <ResourceRecords>{records}</ResourceRecords></ResourceRecordSet></Change>",
            escape(&dotted(name)),
            kind.type_name()
        )
    }
}

#[async_trait]
impl RrsetApi for Route53 {
    async fn list_name(&self, name: &str) -> Result<Vec<DnsRecord>, ProviderError> {
        relative(name, &self.zone)?;
        let id = self.zone_id().await?;
        let path = format!("/{API_VERSION}/hostedzone/{id}/rrset");
        let owner = dotted(name);
        let root = self
            .send(Method::GET, &path, &[("name", &owner), ("maxitems", "20")], Vec::new())
            .await?
            .success_or(|a| self.error(a, &format!("list {}", bare(name))))?
            .xml("Route 53's record list is not the XML expected")?;
        let want = bare(name);
        let mut out = Vec::new();
        for set in root.all("ResourceRecordSet") {
            if set.child_text("Name").map(bare).as_deref() != Some(want.as_str()) {
                continue;
            }
            let kind = set.child_text("Type").unwrap_or_default();
            let ttl = set.child_text("TTL").and_then(|t| t.parse().ok()).unwrap_or(300);
            for value in set.all("Value") {
                if let Some(data) = data_of(kind, value.text.trim(), true) {
                    out.push(DnsRecord { name: want.clone(), ttl, data });
                }
            }
        }
        Ok(out)
    }

    async fn write_set(&self, set: &SetWrite<'_>) -> Result<(), ProviderError> {
        let SetWrite { name, kind, ttl, values, before } = *set;
        let id = self.zone_id().await?;
        let change = if values.is_empty() {
            // A DELETE must name the set exactly as it is.
            let old: Vec<RecordData> = before.iter().map(|r| r.data.clone()).collect();
            let old_ttl = before.first().map_or(ttl, |r| r.ttl);
            Self::change_xml("DELETE", name, kind, old_ttl, &old)
        } else {
            Self::change_xml("UPSERT", name, kind, ttl, values)
        };
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
             <ChangeResourceRecordSetsRequest xmlns=\"https://route53.amazonaws.com/doc/{API_VERSION}/\">\
             <ChangeBatch><Changes>{change}</Changes></ChangeBatch></ChangeResourceRecordSetsRequest>"
        );
        let path = format!("/{API_VERSION}/hostedzone/{id}/rrset/");
        self.send(Method::POST, &path, &[], body.into_bytes())
            .await?
            .success_or(|a| self.error(a, &set.what()))?;
        Ok(())
    }
}

rrset::dns_provider!(Route53);
