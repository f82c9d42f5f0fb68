//! The conformance suite every [`DnsProvider`] can run (feature `testing`).
//!
//! Each check writes records through the provider under a fresh random name
//! below `zone_suffix` and looks at the result the way the rest of the
//! toolkit does: through a [`Checker`] asking the zone's **authoritative**
//! servers (build it with [`Authorities::fixed`](crate::Authorities::fixed)
//! pointing at them, or let it discover them). A provider passes when what
//! it writes is what DNS answers:
//!
//! | check | what it asserts |
//! |---|---|
//! | `create_is_seen` | a created TXT is seen (`Valid`) |
//! | `create_is_idempotent` | creating the same record again leaves one value |
//! | `delete_removes` | a deleted record is `Missing` |
//! | `delete_missing_succeeds` | deleting a record that is not there succeeds |
//! | `two_txt_values` | two TXT values at one name are both served; deleting one keeps the other |
//! | `cname_delegation` | a created CNAME delegates `_acme-challenge` (`Valid`), deleted → `Missing` |
//!
//! Providers whose changes take time to reach the authoritative servers are
//! polled for up to [`PROPAGATION_TIMEOUT`] ([`run_all_within`] sets another bound).
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! # #[cfg(feature = "local-zone")] {
//! use dns_verify::{Authorities, Checker, LocalZone, provider_conformance};
//! let zone = LocalZone::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
//! let checker = Checker::builder().authorities(Authorities::fixed([zone.addr()])).build();
//! provider_conformance::run_all(&zone, &checker, "conformance.example").await.unwrap();
//! # }
//! # });
//! ```

use std::time::{Duration, Instant};

use rand::Rng;

use crate::{Checker, DnsProvider, DnsRecord, Expectation, Hostname, OWNERSHIP_LABEL, RecordStatus};

/// The names of every check, in the order [`run_all`] runs them.
pub const CHECKS: &[&str] = &[
    "create_is_seen",
    "create_is_idempotent",
    "delete_removes",
    "delete_missing_succeeds",
    "two_txt_values",
    "cname_delegation",
];

/// How long a check waits for a change to show on every authoritative server.
pub const PROPAGATION_TIMEOUT: Duration = Duration::from_secs(20);

/// A check that failed: its name and what went wrong.
#[derive(Debug, thiserror::Error)]
#[error("DNS provider conformance check `{check}` failed: {message}")]
pub struct ProviderConformanceFailure {
    /// The check's name (one of [`CHECKS`]).
    pub check: &'static str,
    /// What was expected and what was seen.
    pub message: String,
    /// The provider's or the lookup's error, if one caused the failure.
    #[source]
    pub source: Option<crate::BoxError>,
}

type Outcome = Result<(), ProviderConformanceFailure>;

/// Runs every check ([`CHECKS`]) in order; stops at the first failure.
/// `zone_suffix` is a zone the provider writes and `checker` reads (e.g.
/// `acme.example.net`); each check uses its own random name below it and
/// removes what it wrote.
///
/// # Errors
/// The first [`ProviderConformanceFailure`].
pub async fn run_all(provider: &dyn DnsProvider, checker: &Checker, zone_suffix: &str) -> Outcome {
    run_all_within(provider, checker, zone_suffix, PROPAGATION_TIMEOUT).await
}

/// [`run_all`], waiting up to `propagation` for each change to show.
///
/// # Errors
/// The first [`ProviderConformanceFailure`].
pub async fn run_all_within(
    provider: &dyn DnsProvider,
    checker: &Checker,
    zone_suffix: &str,
    propagation: Duration,
) -> Outcome {
    let suite = Suite { provider, checker, zone_suffix: zone_suffix.trim_end_matches('.'), propagation };
    suite.create_is_seen().await?;
    suite.create_is_idempotent().await?;
    suite.delete_removes().await?;
    suite.delete_missing_succeeds().await?;
    suite.two_txt_values().await?;
    suite.cname_delegation().await?;
    Ok(())
}

struct Suite<'a> {
    provider: &'a dyn DnsProvider,
    checker: &'a Checker,
    zone_suffix: &'a str,
    propagation: Duration,
}

fn fail(check: &'static str, message: impl Into<String>) -> ProviderConformanceFailure {
    ProviderConformanceFailure { check, message: message.into(), source: None }
}

impl Suite<'_> {
    /// A fresh hostname below the zone.
    fn host(&self, check: &'static str) -> Result<Hostname, ProviderConformanceFailure> {
        let label = format!("pc-{}", hex::encode(rand::rng().random::<[u8; 5]>()));
        let name = format!("{label}.{}", self.zone_suffix);
        Hostname::parse(&name).map_err(|e| ProviderConformanceFailure {
            check,
            message: format!("{name:?} is not a valid hostname (is the zone suffix one?)"),
            source: Some(Box::new(e)),
        })
    }

    async fn create(&self, check: &'static str, record: &DnsRecord) -> Outcome {
        self.provider.create(record).await.map_err(|e| ProviderConformanceFailure {
            check,
            message: format!("create {} {:?} failed", record.name, record.data),
            source: Some(Box::new(e)),
        })
    }

    async fn delete(&self, check: &'static str, record: &DnsRecord) -> Outcome {
        self.provider.delete(record).await.map_err(|e| ProviderConformanceFailure {
            check,
            message: format!("delete {} {:?} failed", record.name, record.data),
            source: Some(Box::new(e)),
        })
    }

    /// Polls until `expectation` has `want` on every authoritative server.
    async fn wait_status(
        &self,
        check: &'static str,
        expectation: &Expectation,
        want: RecordStatus,
    ) -> Outcome {
        let start = Instant::now();
        loop {
            let report = self.checker.check_one(expectation).await;
            if report.status == want {
                return Ok(());
            }
            if start.elapsed() > self.propagation {
                return Err(fail(
                    check,
                    format!(
                        "{} {}: expected {} within {:?}, the authoritative servers say {} (observed {:?})",
                        expectation.record_type(),
                        expectation.record_name(),
                        want.label(),
                        self.propagation,
                        report.status.label(),
                        report.observed,
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Polls until every authoritative server returns exactly `want` (sorted) at `name`.
    async fn wait_txt_values(&self, check: &'static str, name: &str, want: &[&str]) -> Outcome {
        let start = Instant::now();
        let mut want: Vec<String> = want.iter().map(|s| (*s).to_owned()).collect();
        want.sort();
        loop {
            let seen = self.checker.txt_values(name).await;
            let last = match &seen {
                Ok(per_server) if !per_server.is_empty() => {
                    let all_match = per_server.iter().all(|(_, values)| {
                        let mut values = values.clone();
                        values.sort();
                        values == want
                    });
                    if all_match {
                        return Ok(());
                    }
                    format!("{per_server:?}")
                }
                Ok(_) => "no authoritative server".to_owned(),
                Err(e) => e.to_string(),
            };
            if start.elapsed() > self.propagation {
                return Err(fail(
                    check,
                    format!("TXT {name}: expected exactly {want:?} on every server, got {last}"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn ownership(host: &Hostname, token: &str) -> (Expectation, DnsRecord) {
        let record = DnsRecord::txt(&format!("{OWNERSHIP_LABEL}.{host}"), token);
        (Expectation::OwnershipTxt { host: host.clone(), token: token.to_owned() }, record)
    }

    async fn create_is_seen(&self) -> Outcome {
        const CHECK: &str = "create_is_seen";
        let host = self.host(CHECK)?;
        let (expect, record) = Self::ownership(&host, "conformance-token-1");
        self.wait_status(CHECK, &expect, RecordStatus::Missing).await?;
        self.create(CHECK, &record).await?;
        self.wait_status(CHECK, &expect, RecordStatus::Valid).await?;
        self.delete(CHECK, &record).await
    }

    async fn create_is_idempotent(&self) -> Outcome {
        const CHECK: &str = "create_is_idempotent";
        let host = self.host(CHECK)?;
        let (expect, record) = Self::ownership(&host, "conformance-token-2");
        self.create(CHECK, &record).await?;
        self.create(CHECK, &record).await?;
        self.wait_status(CHECK, &expect, RecordStatus::Valid).await?;
        self.wait_txt_values(CHECK, &record.name, &["conformance-token-2"]).await?;
        self.delete(CHECK, &record).await?;
        self.wait_status(CHECK, &expect, RecordStatus::Missing).await
    }

    async fn delete_removes(&self) -> Outcome {
        const CHECK: &str = "delete_removes";
        let host = self.host(CHECK)?;
        let (expect, record) = Self::ownership(&host, "conformance-token-3");
        self.create(CHECK, &record).await?;
        self.wait_status(CHECK, &expect, RecordStatus::Valid).await?;
        self.delete(CHECK, &record).await?;
        self.wait_status(CHECK, &expect, RecordStatus::Missing).await
    }

    async fn delete_missing_succeeds(&self) -> Outcome {
        const CHECK: &str = "delete_missing_succeeds";
        let host = self.host(CHECK)?;
        let (expect, record) = Self::ownership(&host, "never-created");
        self.delete(CHECK, &record).await?;
        self.create(CHECK, &record).await?;
        self.delete(CHECK, &record).await?;
        self.delete(CHECK, &record).await?;
        self.wait_status(CHECK, &expect, RecordStatus::Missing).await
    }

    async fn two_txt_values(&self) -> Outcome {
        const CHECK: &str = "two_txt_values";
        let host = self.host(CHECK)?;
        let (expect_a, a) = Self::ownership(&host, "value-a");
        let (expect_b, b) = Self::ownership(&host, "value-b");
        self.create(CHECK, &a).await?;
        self.create(CHECK, &b).await?;
        self.wait_txt_values(CHECK, &a.name, &["value-a", "value-b"]).await?;
        self.wait_status(CHECK, &expect_a, RecordStatus::Valid).await?;
        self.wait_status(CHECK, &expect_b, RecordStatus::Valid).await?;
        self.delete(CHECK, &a).await?;
        self.wait_txt_values(CHECK, &a.name, &["value-b"]).await?;
        self.wait_status(CHECK, &expect_b, RecordStatus::Valid).await?;
        self.delete(CHECK, &b).await?;
        self.wait_status(CHECK, &expect_b, RecordStatus::Missing).await
    }

    async fn cname_delegation(&self) -> Outcome {
        const CHECK: &str = "cname_delegation";
        let host = self.host(CHECK)?;
        let target = format!("target.{}", self.zone_suffix);
        let record = DnsRecord::cname(&format!("{}.{host}", crate::ACME_CHALLENGE_LABEL), &target);
        let expect = Expectation::AcmeDelegation { host, target };
        self.create(CHECK, &record).await?;
        self.wait_status(CHECK, &expect, RecordStatus::Valid).await?;
        self.delete(CHECK, &record).await?;
        self.wait_status(CHECK, &expect, RecordStatus::Missing).await
    }
}
