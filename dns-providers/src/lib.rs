//! [`DnsProvider`]s for customers' own DNS, so a
//! platform can write the records of a custom domain itself with a
//! credential the customer gives: RFC 2136 ([`Rfc2136Provider`], from
//! `dns-verify`), [`PowerDns`], [`Cloudflare`], [`GoDaddy`], [`Namecheap`]
//! and [`Route53`].
//!
//! Every provider creates, deletes, replaces and lists TXT, CNAME, A and
//! AAAA records with their TTL, idempotently, and refuses a CNAME beside
//! other data with [`ProviderError::Conflict`]. Each provider's gates come
//! back as typed [`ProviderError`]s with a sentence for the customer
//! ([`ProviderError::resolution`]):
//!
//! | provider | gate | error |
//! |---|---|---|
//! | GoDaddy | `403 ACCESS_DENIED` (fewer than 10 domains, no Discount Domain Club) | `AccountTierGate` |
//! | Namecheap | error `1011150 Invalid request IP` (caller not allow-listed) | `IpNotAllowed { ip }` |
//! | Cloudflare | `403 10000` (token without `Zone.DNS:Edit`) / zone not on the account | `PermissionDenied` / `ZoneNotFound` |
//! | all | bad key, `429`, `5xx` / timeout | `InvalidCredential`, `RateLimited { retry_after }`, `Unavailable` |
//!
//! [`ProviderConfig`] is a provider and its credential as JSON (tagged by
//! `provider`), built with [`ProviderConfig::build`].
//!
//! The HTTPS clients are hyper + rustls on ring with the webpki roots, one
//! deadline per request and a bound on answer size; Route 53 requests are
//! signed with AWS SigV4 over ring's HMAC. Why not the `dns-update` crate:
//! see the README.

mod cloudflare;
mod config;
mod debug;
mod egress;
mod godaddy;
mod http;
mod namecheap;
mod powerdns;
mod route53;
mod rrset;
mod sigv4;
mod text;
mod xml;

pub use cloudflare::{CLOUDFLARE_API, Cloudflare};
pub use config::{ConfigError, ProviderConfig};
pub use dns_verify::{DnsProvider, DnsRecord, ProviderError, RecordData, Rfc2136Provider};
pub use egress::discover_egress_ip;
pub use godaddy::{GODADDY_API, GoDaddy};
pub use http::ClientError;
pub use namecheap::{NAMECHEAP_API, Namecheap};
pub use powerdns::PowerDns;
pub use route53::{ROUTE53_API, Route53};
pub use xml::XmlError;

/// The README's example, compiled and run as a doc test so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
