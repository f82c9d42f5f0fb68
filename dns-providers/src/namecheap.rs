//! Namecheap's XML API (`namecheap.domains.dns.getHosts` / `setHosts`).
//! `setHosts` replaces every host record of the domain, so each change reads
//! all hosts, changes one set and writes all back (mail settings kept).
//!
//! Namecheap's gate: the API only answers calls from allow-listed client
//! IPs (at most 20, no ranges), every call carries that `ClientIp`, and
//! others get `<Error Number="1011150">Invalid request IP: …</Error>` —
//! [`ProviderError::IpNotAllowed`] naming the IP to allow-list.

use std::time::Duration;

use async_trait::async_trait;
use dns_verify::{DnsRecord, ProviderError, same_type};
use hyper::Method;
use tokio::sync::Mutex;

use crate::{
    debug::debug_without_secrets,
    http::{HttpClient, redact},
    rrset::{self, RrsetApi, SetWrite},
    text::{bare, data_of, relative, value_of},
    xml::Element,
};

/// Namecheap's production API.
pub const NAMECHEAP_API: &str = "https://api.namecheap.com/xml.response";

/// A domain's DNS at Namecheap (the domain must use Namecheap's DNS).
///
/// ```
/// let nc = dns_providers::Namecheap::new("user", "api-key-value", "example.com", "203.0.113.7").unwrap();
/// assert!(!format!("{nc:?}").contains("api-key-value"));
/// ```
pub struct Namecheap {
    http: HttpClient,
    base: String,
    api_user: String,
    api_key: String,
    username: String,
    client_ip: String,
    domain: String,
    /// One read-modify-write of the whole host list at a time.
    writing: Mutex<()>,
}

debug_without_secrets!(Namecheap { base, domain, client_ip });

/// One host as `getHosts` returns it.
#[derive(Debug, Clone)]
struct Host {
    name: String,
    kind: String,
    address: String,
    mx_pref: String,
    ttl: u32,
}

impl Namecheap {
    /// The domain `domain` of the account `api_user` (also the `UserName`),
    /// calling from `client_ip` (the edge's egress address, which the
    /// customer allow-lists).
    ///
    /// # Errors
    /// When the HTTPS client cannot be built.
    pub fn new(
        api_user: &str,
        api_key: &str,
        domain: &str,
        client_ip: &str,
    ) -> Result<Self, crate::ClientError> {
        Ok(Self {
            http: HttpClient::new(Duration::from_secs(20))?,
            base: NAMECHEAP_API.to_owned(),
            api_user: api_user.to_owned(),
            api_key: api_key.to_owned(),
            username: api_user.to_owned(),
            client_ip: client_ip.to_owned(),
            domain: bare(domain),
            writing: Mutex::new(()),
        })
    }

    /// Another API URL (Namecheap's sandbox, a test server).
    #[must_use]
    pub fn with_api_url(mut self, url: &str) -> Self {
        self.base = url.to_owned();
        self
    }

    /// The domain split as Namecheap wants it: `SLD` and `TLD` (`example`,
    /// `co.uk`).
    fn sld_tld(&self) -> Result<(&str, &str), ProviderError> {
        self.domain
            .split_once('.')
            .ok_or_else(|| ProviderError::invalid_name(format!("{} is not a registered domain", self.domain)))
    }

    fn params(&self, command: &str) -> Result<Vec<(String, String)>, ProviderError> {
        let (sld, tld) = self.sld_tld()?;
        Ok(vec![
            ("ApiUser".into(), self.api_user.clone()),
            ("ApiKey".into(), self.api_key.clone()),
            ("UserName".into(), self.username.clone()),
            ("ClientIp".into(), self.client_ip.clone()),
            ("Command".into(), command.into()),
            ("SLD".into(), sld.into()),
            ("TLD".into(), tld.into()),
        ])
    }

    /// Sends `params` (POSTed as a form, so the key stays out of URLs) and
    /// returns the `CommandResponse`, or the documented error.
    async fn call(&self, params: &[(String, String)], what: &str) -> Result<Element, ProviderError> {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
        let headers = [("content-type", "application/x-www-form-urlencoded".to_owned())];
        let answer = self.http.send(Method::POST, &self.base, &headers, body.into_bytes()).await?;
        if answer.status.as_u16() == 429 {
            return Err(ProviderError::rate_limited(answer.retry_after()));
        }
        let answer = answer.success_or(|a| a.generic_error(&format!("{what} at {}", redact(&self.base))))?;
        let root = answer.xml(format!("{what}: Namecheap's answer is not the XML expected"))?;
        if root.attr("Status").is_some_and(|s| s.eq_ignore_ascii_case("OK")) {
            return root.child("CommandResponse").cloned().ok_or_else(|| {
                ProviderError::server(format!("{what}: no CommandResponse in Namecheap's answer"))
            });
        }
        let errors = root.all("Error");
        let first = errors.first();
        let number = first.and_then(|e| e.attr("Number")).unwrap_or_default().to_owned();
        let message = first.map(|e| e.text.trim().to_owned()).unwrap_or_else(|| answer.snippet());
        Err(self.error(&number, &message, what))
    }

    /// Namecheap's documented error numbers.
    fn error(&self, number: &str, message: &str, what: &str) -> ProviderError {
        let detail = format!("{what}: error {number}: {message}");
        match number {
            "1011150" => ProviderError::ip_not_allowed(&self.client_ip, detail),
            "1011102" | "1011103" | "1010101" | "1010102" | "1010104" | "1011104" => {
                ProviderError::invalid_credential(detail)
            }
            "2019166" | "2016166" | "2030166" => {
                ProviderError::zone_not_found(&self.domain).with_source(std::io::Error::other(detail))
            }
            "2030288" => ProviderError::permission_denied(detail),
            "500000" | "502000" => ProviderError::rate_limited(None),
            _ => ProviderError::server(detail),
        }
    }

    async fn hosts(&self) -> Result<(Vec<Host>, Option<String>), ProviderError> {
        let params = self.params("namecheap.domains.dns.getHosts")?;
        let response = self.call(&params, &format!("getHosts {}", self.domain)).await?;
        let result = response.child("DomainDNSGetHostsResult");
        let email_type = result.and_then(|r| r.attr("EmailType")).map(str::to_owned);
        let hosts = response
            .all("host")
            .into_iter()
            .map(|h| Host {
                name: h.attr("Name").unwrap_or("@").to_owned(),
                kind: h.attr("Type").unwrap_or_default().to_ascii_uppercase(),
                address: h.attr("Address").unwrap_or_default().to_owned(),
                mx_pref: h.attr("MXPref").unwrap_or("10").to_owned(),
                ttl: h.attr("TTL").and_then(|t| t.parse().ok()).unwrap_or(1800),
            })
            .collect();
        Ok((hosts, email_type))
    }
}

#[async_trait]
impl RrsetApi for Namecheap {
    async fn list_name(&self, name: &str) -> Result<Vec<DnsRecord>, ProviderError> {
        let rel = relative(name, &self.domain)?;
        let (hosts, _) = self.hosts().await?;
        Ok(rrset::named(&hosts, name, &rel, |h| (&h.name, &h.kind, &h.address, h.ttl)))
    }

    async fn write_set(&self, set: &SetWrite<'_>) -> Result<(), ProviderError> {
        let SetWrite { name, kind, ttl, values, .. } = *set;
        let _one = self.writing.lock().await;
        let rel = relative(name, &self.domain)?;
        let (hosts, email_type) = self.hosts().await?;
        let in_set = |h: &Host| {
            h.name.eq_ignore_ascii_case(&rel)
                && data_of(&h.kind, &h.address, false).is_some_and(|d| same_type(&d, kind))
        };
        let mut all: Vec<Host> = hosts.into_iter().filter(|h| !in_set(h)).collect();
        all.extend(values.iter().map(|v| Host {
            name: rel.clone(),
            kind: kind.type_name().to_owned(),
            address: value_of(v, false, false),
            mx_pref: "10".to_owned(),
            ttl: ttl.max(60),
        }));
        let mut params = self.params("namecheap.domains.dns.setHosts")?;
        if let Some(email_type) = email_type {
            params.push(("EmailType".into(), email_type));
        }
        for (i, h) in all.iter().enumerate() {
            let n = i + 1;
            params.push((format!("HostName{n}"), h.name.clone()));
            params.push((format!("RecordType{n}"), h.kind.clone()));
            params.push((format!("Address{n}"), h.address.clone()));
            params.push((format!("MXPref{n}"), h.mx_pref.clone()));
            params.push((format!("TTL{n}"), h.ttl.to_string()));
        }
        let response = self.call(&params, &format!("setHosts {}", self.domain)).await?;
        let ok = response
            .child("DomainDNSSetHostsResult")
            .and_then(|r| r.attr("IsSuccess"))
            .is_some_and(|s| s.eq_ignore_ascii_case("true"));
        if ok {
            Ok(())
        } else {
            Err(ProviderError::server(format!("setHosts {}: IsSuccess is not true", self.domain)))
        }
    }
}

rrset::dns_provider!(Namecheap);
