//! The SSL view of a connection: where its certificate stands, each SAN's
//! DNS status with the fix, and the certificate served.

use cert_store::CertMeta;
use dns_verify::{Expectation, Hostname, RecordReport, RecordStatus};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{CertificateInfo, CertificateSource, SanSet};

/// Where a domain's certificate stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SslStatus {
    /// Created, DNS not checked yet.
    #[default]
    Initializing,
    /// A SAN's records are not (yet) right: nothing is issued until they are.
    PendingValidation,
    /// Every SAN is valid; the certificate is being issued.
    PendingIssuance,
    /// A valid certificate covering every SAN is served.
    Active,
    /// The certificate served has expired (auto-managed: renewal keeps
    /// retrying; self-managed: upload a new one).
    Expired,
    /// Issuance failed and is not retried by itself: a person must act.
    Failed,
}

/// One SAN's DNS status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SanDnsStatus {
    /// A lookup failed: nothing concluded, checked again soon.
    Pending,
    /// A record it needs does not exist.
    Missing,
    /// A record it needs has another value.
    Wrong,
    /// A TXT record sits where the `_acme-challenge` CNAME must be.
    Duplicate,
    /// The record is proxied by a CDN: it must be DNS only.
    Proxied,
    /// Every record it needs is right.
    Valid,
}

impl SanDnsStatus {
    /// The status of one record.
    #[must_use]
    pub fn of(status: RecordStatus) -> Self {
        match status {
            RecordStatus::Valid => Self::Valid,
            RecordStatus::Missing => Self::Missing,
            RecordStatus::Wrong => Self::Wrong,
            RecordStatus::Duplicate => Self::Duplicate,
            RecordStatus::Proxied => Self::Proxied,
            _ => Self::Pending,
        }
    }

    /// Which of two statuses a SAN shows (the one a person must act on first).
    fn severity(self) -> u8 {
        match self {
            Self::Missing => 5,
            Self::Duplicate => 4,
            Self::Wrong => 3,
            Self::Proxied => 2,
            Self::Pending => 1,
            Self::Valid => 0,
        }
    }
}

/// One SAN of the SSL view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SanCheck {
    /// The name on the certificate (`*.customer.com` for the wildcard).
    pub name: String,
    /// `pending`, `missing`, `wrong`, `duplicate`, `proxied` or `valid`.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "missing"))]
    pub dns_status: SanDnsStatus,
    /// The record shown: its name and type (the `_acme-challenge` CNAME
    /// when every record is valid).
    pub record: String,
    /// The value it must have.
    pub expected: String,
    /// What DNS answers now.
    pub observed: Vec<String>,
    /// What to do, in one line (empty when valid).
    pub fix: String,
    /// When it was last checked.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub last_checked_at: Option<OffsetDateTime>,
    /// When it is checked next.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub next_check_at: Option<OffsetDateTime>,
}

/// The certificate of the SSL view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SslCertificate {
    /// Its names.
    pub names: Vec<String>,
    /// Serial number (hex).
    pub serial: String,
    /// Not valid before.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub not_before: OffsetDateTime,
    /// Not valid after.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub not_after: OffsetDateTime,
    /// The issuer's distinguished name.
    pub issuer: String,
    /// `acme`, `local_ca` or `self_managed`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub source: CertificateSource,
    /// When it is renewed (`None`: self-managed, never renewed).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub renews_at: Option<OffsetDateTime>,
}

impl SslCertificate {
    /// The view of `meta`, renewed `renew_before` before expiry (per
    /// [`CertMeta::renewal_time`]) unless self-managed.
    #[must_use]
    pub fn of(meta: &CertMeta, renew_before: time::Duration) -> Self {
        let source = CertificateInfo::source_of(&meta.provenance);
        Self {
            names: meta.names.clone(),
            serial: meta.serial.clone(),
            not_before: meta.not_before,
            not_after: meta.not_after,
            issuer: meta.issuer.clone(),
            source,
            renews_at: (source != CertificateSource::SelfManaged).then(|| meta.renewal_time(renew_before)),
        }
    }

    /// Whether it carries `san` (a wildcard SAN exactly, a plain one exactly
    /// or through a wildcard).
    #[must_use]
    pub fn covers(&self, san: &str) -> bool {
        self.names.iter().any(|n| n == san || (!san.starts_with("*.") && dns_verify::name_matches(n, san)))
    }
}

/// The SSL view of a connection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Ssl {
    /// `initializing`, `pending_validation`, `pending_issuance`, `active`,
    /// `expired` or `failed`.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "pending_validation"))]
    pub status: SslStatus,
    /// Each SAN with its DNS status, as last checked.
    pub sans: Vec<SanCheck>,
    /// The certificate served, once there is one.
    pub certificate: Option<SslCertificate>,
}

impl Ssl {
    /// Whether every SAN was found valid at the last check.
    #[must_use]
    pub fn all_valid(&self) -> bool {
        !self.sans.is_empty() && self.sans.iter().all(|s| s.dns_status == SanDnsStatus::Valid)
    }

    /// The status from what is known: the certificate (if any) against
    /// `sans`, the last checks, and whether issuance gave up (`failed`).
    #[must_use]
    pub fn status_of(&self, sans: &[String], failed: bool, now: OffsetDateTime) -> SslStatus {
        if let Some(cert) = &self.certificate {
            if cert.not_after <= now {
                return SslStatus::Expired;
            }
            if sans.iter().all(|s| cert.covers(s)) {
                return SslStatus::Active;
            }
        }
        if failed {
            SslStatus::Failed
        } else if self.sans.is_empty() {
            SslStatus::Initializing
        } else if self.all_valid() {
            SslStatus::PendingIssuance
        } else {
            SslStatus::PendingValidation
        }
    }
}

/// Each SAN's status from one check's `reports`: the worst of the records
/// it needs (`required(san, expectation)` says which), that record shown.
#[must_use]
pub fn san_checks(
    set: &SanSet,
    reports: &[RecordReport],
    required: impl Fn(&Hostname, &Expectation) -> bool,
    next_check_at: OffsetDateTime,
) -> Vec<SanCheck> {
    set.hosts()
        .iter()
        .map(|host| {
            let mine: Vec<&RecordReport> =
                reports.iter().filter(|r| required(host, &r.expectation)).collect();
            let worst = mine
                .iter()
                .max_by_key(|r| {
                    let delegation = matches!(r.expectation, Expectation::AcmeDelegation { .. });
                    (SanDnsStatus::of(r.status).severity(), delegation)
                })
                .copied();
            match worst {
                Some(r) => SanCheck {
                    name: host.as_str().to_owned(),
                    dns_status: SanDnsStatus::of(r.status),
                    record: format!("{} {}", r.name, r.record_type),
                    expected: r.expected.clone(),
                    observed: r.observed.clone(),
                    fix: if r.status == RecordStatus::Valid { String::new() } else { r.fix.clone() },
                    last_checked_at: Some(r.checked_at),
                    next_check_at: Some(next_check_at),
                },
                // Nothing needed for it (cannot happen: a SAN always has records).
                None => SanCheck {
                    name: host.as_str().to_owned(),
                    dns_status: SanDnsStatus::Valid,
                    record: String::new(),
                    expected: String::new(),
                    observed: Vec::new(),
                    fix: String::new(),
                    last_checked_at: None,
                    next_check_at: Some(next_check_at),
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn san(name: &str, dns_status: SanDnsStatus) -> SanCheck {
        SanCheck {
            name: name.into(),
            dns_status,
            record: String::new(),
            expected: String::new(),
            observed: Vec::new(),
            fix: String::new(),
            last_checked_at: None,
            next_check_at: None,
        }
    }

    fn cert(names: &[&str], not_after: OffsetDateTime) -> SslCertificate {
        SslCertificate {
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            serial: "01".into(),
            not_before: not_after - time::Duration::days(90),
            not_after,
            issuer: "CN=ca".into(),
            source: CertificateSource::Acme,
            renews_at: None,
        }
    }

    #[test]
    fn the_status_follows_checks_and_certificate() {
        let now = OffsetDateTime::now_utc();
        let sans = ["c.com".to_owned(), "*.c.com".to_owned()];
        let mut ssl = Ssl::default();
        assert_eq!(ssl.status_of(&sans, false, now), SslStatus::Initializing);
        ssl.sans = vec![san("c.com", SanDnsStatus::Valid), san("*.c.com", SanDnsStatus::Missing)];
        assert_eq!(ssl.status_of(&sans, false, now), SslStatus::PendingValidation);
        ssl.sans[1].dns_status = SanDnsStatus::Valid;
        assert_eq!(ssl.status_of(&sans, false, now), SslStatus::PendingIssuance);
        assert_eq!(ssl.status_of(&sans, true, now), SslStatus::Failed);
        ssl.certificate = Some(cert(&["c.com"], now + time::Duration::days(60)));
        assert_eq!(ssl.status_of(&sans, false, now), SslStatus::PendingIssuance, "the wildcard is not on it");
        ssl.certificate = Some(cert(&["c.com", "*.c.com"], now + time::Duration::days(60)));
        assert_eq!(ssl.status_of(&sans, false, now), SslStatus::Active);
        ssl.certificate = Some(cert(&["c.com", "*.c.com"], now - time::Duration::seconds(1)));
        assert_eq!(ssl.status_of(&sans, false, now), SslStatus::Expired);
        let wild = cert(&["*.c.com"], now);
        assert!(wild.covers("a.c.com") && !wild.covers("a.b.c.com") && !wild.covers("c.com"));
    }
}
