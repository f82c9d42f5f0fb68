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
//! | `replace_leaves_one` | [`replace`](DnsProvider::replace) over two TXT values leaves only the new one |
//! | `long_txt` | a 300-byte TXT (more than one 255-byte string) is served whole and listed whole |
//! | `list_shows_records` | [`list`](DnsProvider::list) returns what was created, with its TTL type |
//! | `cname_beside_txt_fails` | a CNAME at a name holding a TXT fails with [`ProviderError::Conflict`], the TXT stays |
//!
//! A provider whose emulator does not answer DNS (moto's Route 53) is
//! observed through its own API instead ([`Observer::ProviderListing`]); the
//! test says so.
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
//!
//! One test per check, for a provider of your own
//! ([`provider_conformance_tests!`](crate::provider_conformance_tests)):
//!
//! ```ignore
//! dns_verify::provider_conformance_tests!(mod my_provider, || async {
//!     dns_verify::provider_conformance::Fixture::authoritative(provider, checker, "zone.example")
//! });
//! ```

use std::{
    any::Any,
    sync::Arc,
    time::{Duration, Instant},
};

use rand::Rng;

use crate::{
    Checker, DnsProvider, DnsRecord, Expectation, Hostname, OWNERSHIP_LABEL, ProviderError, RecordData,
    RecordStatus,
};

/// The names of every check, in the order [`run_all`] runs them.
pub const CHECKS: &[&str] = &[
    "create_is_seen",
    "create_is_idempotent",
    "delete_removes",
    "delete_missing_succeeds",
    "two_txt_values",
    "cname_delegation",
    "replace_leaves_one",
    "long_txt",
    "list_shows_records",
    "cname_beside_txt_fails",
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

/// How the suite sees what a provider wrote.
#[derive(Debug, Clone, Copy)]
pub enum Observer<'a> {
    /// Through the zone's authoritative servers (the normal case).
    Authoritative(&'a Checker),
    /// Through the provider's own [`list`](DnsProvider::list): only for
    /// emulators that do not answer DNS.
    ProviderListing,
}

/// What one test of [`provider_conformance_tests!`](crate::provider_conformance_tests) runs against.
pub struct Fixture {
    /// The provider under test.
    pub provider: Arc<dyn DnsProvider>,
    /// Its zone's authoritative servers, or `None` to observe through the
    /// provider's listing.
    pub checker: Option<Checker>,
    /// A zone the provider writes.
    pub zone: String,
    /// Kept alive until the check ends (servers, temp dirs).
    pub keep_alive: Box<dyn Any + Send>,
}

impl Fixture {
    /// Observed through `checker` (the zone's authoritative servers).
    pub fn authoritative(
        provider: Arc<dyn DnsProvider>,
        checker: Checker,
        zone: &str,
        keep_alive: impl Any + Send,
    ) -> Self {
        Self { provider, checker: Some(checker), zone: zone.to_owned(), keep_alive: Box::new(keep_alive) }
    }

    /// Observed through the provider's own listing (an emulator without DNS).
    pub fn listing(provider: Arc<dyn DnsProvider>, zone: &str, keep_alive: impl Any + Send) -> Self {
        Self { provider, checker: None, zone: zone.to_owned(), keep_alive: Box::new(keep_alive) }
    }

    fn observer(&self) -> Observer<'_> {
        self.checker.as_ref().map_or(Observer::ProviderListing, Observer::Authoritative)
    }
}

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture").field("zone", &self.zone).finish_non_exhaustive()
    }
}

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
    for check in CHECKS {
        run_check(check, provider, Observer::Authoritative(checker), zone_suffix, propagation).await?;
    }
    Ok(())
}

/// Runs the check named `check` (one of [`CHECKS`]).
///
/// # Errors
/// Its [`ProviderConformanceFailure`]; an unknown name fails too.
pub async fn run_check(
    check: &str,
    provider: &dyn DnsProvider,
    observer: Observer<'_>,
    zone_suffix: &str,
    propagation: Duration,
) -> Outcome {
    let suite = Suite { provider, observer, zone_suffix: zone_suffix.trim_end_matches('.'), propagation };
    match check {
        "create_is_seen" => suite.create_is_seen().await,
        "create_is_idempotent" => suite.create_is_idempotent().await,
        "delete_removes" => suite.delete_removes().await,
        "delete_missing_succeeds" => suite.delete_missing_succeeds().await,
        "two_txt_values" => suite.two_txt_values().await,
        "cname_delegation" => suite.cname_delegation().await,
        "replace_leaves_one" => suite.replace_leaves_one().await,
        "long_txt" => suite.long_txt().await,
        "list_shows_records" => suite.list_shows_records().await,
        "cname_beside_txt_fails" => suite.cname_beside_txt_fails().await,
        other => Err(fail("unknown", format!("no conformance check named {other:?}"))),
    }
}

/// Runs `check` against a [`Fixture`] (what the macro's tests call).
///
/// # Errors
/// Its [`ProviderConformanceFailure`].
pub async fn run_fixture_check(check: &str, fixture: &Fixture) -> Outcome {
    run_check(check, fixture.provider.as_ref(), fixture.observer(), &fixture.zone, PROPAGATION_TIMEOUT).await
}

/// One `#[tokio::test]` per conformance check for a provider, like
/// cert-store's `storage_conformance_tests!`: `$make` is a closure returning
/// a future of a [`Fixture`].
///
/// ```ignore
/// dns_verify::provider_conformance_tests!(mod powerdns, || async { fixture().await });
/// ```
#[macro_export]
macro_rules! provider_conformance_tests {
    (@tests $module:ident, $make:expr; $($check:ident),*) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let fixture: $crate::provider_conformance::Fixture = ($make)().await;
                    if let Err(e) =
                        $crate::provider_conformance::run_fixture_check(stringify!($check), &fixture).await
                    {
                        let mut message = e.to_string();
                        let mut source = std::error::Error::source(&e);
                        while let Some(s) = source {
                            message.push_str(&format!(": {s}"));
                            source = s.source();
                        }
                        panic!("{message}");
                    }
                    drop(fixture);
                }
            )*
        }
    };
    (mod $module:ident, $make:expr $(,)?) => {
        $crate::provider_conformance_tests!(@tests $module, $make;
            create_is_seen, create_is_idempotent, delete_removes, delete_missing_succeeds,
            two_txt_values, cname_delegation, replace_leaves_one, long_txt, list_shows_records,
            cname_beside_txt_fails);
    };
}

struct Suite<'a> {
    provider: &'a dyn DnsProvider,
    observer: Observer<'a>,
    zone_suffix: &'a str,
    propagation: Duration,
}

fn fail(check: &'static str, message: impl Into<String>) -> ProviderConformanceFailure {
    ProviderConformanceFailure { check, message: message.into(), source: None }
}

fn caused(check: &'static str, message: String, e: ProviderError) -> ProviderConformanceFailure {
    ProviderConformanceFailure { check, message, source: Some(Box::new(e)) }
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
        self.provider
            .create(record)
            .await
            .map_err(|e| caused(check, format!("create {} {:?} failed", record.name, record.data), e))
    }

    async fn delete(&self, check: &'static str, record: &DnsRecord) -> Outcome {
        self.provider
            .delete(record)
            .await
            .map_err(|e| caused(check, format!("delete {} {:?} failed", record.name, record.data), e))
    }

    async fn list(
        &self,
        check: &'static str,
        name: &str,
    ) -> Result<Vec<DnsRecord>, ProviderConformanceFailure> {
        self.provider.list(name).await.map_err(|e| caused(check, format!("list {name} failed"), e))
    }

    /// The status of `expectation` as the observer sees it now.
    async fn status(&self, expectation: &Expectation) -> (RecordStatus, String) {
        match self.observer {
            Observer::Authoritative(checker) => {
                let report = checker.check_one(expectation).await;
                (report.status, format!("{:?}", report.observed))
            }
            Observer::ProviderListing => match self.provider.list(&expectation.record_name()).await {
                Ok(records) => {
                    let want = expectation.expected_value().trim_end_matches('.').to_ascii_lowercase();
                    let found = records.iter().any(|r| {
                        r.data.type_name() == expectation.record_type()
                            && r.data.value().trim_end_matches('.').eq_ignore_ascii_case(&want)
                    });
                    let status = if found { RecordStatus::Valid } else { RecordStatus::Missing };
                    (status, format!("{records:?}"))
                }
                Err(e) => (RecordStatus::LookupFailed, e.to_string()),
            },
        }
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
            let (status, observed) = self.status(expectation).await;
            if status == want {
                return Ok(());
            }
            if start.elapsed() > self.propagation {
                return Err(fail(
                    check,
                    format!(
                        "{} {}: expected {} within {:?}, the authoritative servers say {} (observed {observed})",
                        expectation.record_type(),
                        expectation.record_name(),
                        want.label(),
                        self.propagation,
                        status.label(),
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The TXT values at `name`, per observation point.
    async fn txt_values(&self, name: &str) -> Result<Vec<Vec<String>>, String> {
        match self.observer {
            Observer::Authoritative(checker) => match checker.txt_values(name).await {
                Ok(per_server) if per_server.is_empty() => Err("no authoritative server".to_owned()),
                Ok(per_server) => Ok(per_server.into_iter().map(|(_, v)| v).collect()),
                Err(e) => Err(e.to_string()),
            },
            Observer::ProviderListing => match self.provider.list(name).await {
                Ok(records) => Ok(vec![
                    records
                        .into_iter()
                        .filter_map(|r| match r.data {
                            RecordData::Txt(v) => Some(v),
                            _ => None,
                        })
                        .collect(),
                ]),
                Err(e) => Err(e.to_string()),
            },
        }
    }

    /// Polls until every authoritative server returns exactly `want` (sorted) at `name`.
    async fn wait_txt_values(&self, check: &'static str, name: &str, want: &[&str]) -> Outcome {
        let start = Instant::now();
        let mut want: Vec<String> = want.iter().map(|s| (*s).to_owned()).collect();
        want.sort();
        loop {
            let last = match self.txt_values(name).await {
                Ok(per_server) => {
                    let all_match = per_server.iter().all(|values| {
                        let mut values = values.clone();
                        values.sort();
                        values == want
                    });
                    if all_match {
                        return Ok(());
                    }
                    format!("{per_server:?}")
                }
                Err(e) => e,
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

    async fn replace_leaves_one(&self) -> Outcome {
        const CHECK: &str = "replace_leaves_one";
        let host = self.host(CHECK)?;
        let (_, a) = Self::ownership(&host, "old-a");
        let (_, b) = Self::ownership(&host, "old-b");
        let (expect_c, mut c) = Self::ownership(&host, "new-c");
        c.ttl = 120;
        self.create(CHECK, &a).await?;
        self.create(CHECK, &b).await?;
        self.wait_txt_values(CHECK, &a.name, &["old-a", "old-b"]).await?;
        self.provider
            .replace(&c)
            .await
            .map_err(|e| caused(CHECK, format!("replace {} with {:?} failed", c.name, c.data), e))?;
        self.wait_txt_values(CHECK, &c.name, &["new-c"]).await?;
        self.provider.replace(&c).await.map_err(|e| caused(CHECK, "second replace failed".into(), e))?;
        self.wait_txt_values(CHECK, &c.name, &["new-c"]).await?;
        self.delete(CHECK, &c).await?;
        self.wait_status(CHECK, &expect_c, RecordStatus::Missing).await
    }

    async fn long_txt(&self) -> Outcome {
        const CHECK: &str = "long_txt";
        let host = self.host(CHECK)?;
        let value: String = (0..300).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        let (_, record) = Self::ownership(&host, &value);
        self.create(CHECK, &record).await?;
        self.wait_txt_values(CHECK, &record.name, &[&value]).await?;
        let listed = self.list(CHECK, &record.name).await?;
        if !listed.iter().any(|r| r.data == record.data) {
            return Err(fail(
                CHECK,
                format!("list {} does not return the 300-byte value whole: {listed:?}", record.name),
            ));
        }
        self.delete(CHECK, &record).await?;
        self.wait_txt_values(CHECK, &record.name, &[]).await
    }

    async fn list_shows_records(&self) -> Outcome {
        const CHECK: &str = "list_shows_records";
        let host = self.host(CHECK)?;
        let (expect, record) = Self::ownership(&host, "listed-value");
        if !self.list(CHECK, &record.name).await?.is_empty() {
            return Err(fail(CHECK, format!("list {} of a fresh name is not empty", record.name)));
        }
        self.create(CHECK, &record).await?;
        self.wait_status(CHECK, &expect, RecordStatus::Valid).await?;
        let listed = self.list(CHECK, &record.name).await?;
        let ok = listed.len() == 1
            && listed[0].data == record.data
            && listed[0].name.trim_end_matches('.').eq_ignore_ascii_case(&record.name);
        if !ok {
            return Err(fail(
                CHECK,
                format!("list {} returned {listed:?}, expected exactly {record:?}", record.name),
            ));
        }
        self.delete(CHECK, &record).await?;
        self.wait_status(CHECK, &expect, RecordStatus::Missing).await
    }

    async fn cname_beside_txt_fails(&self) -> Outcome {
        const CHECK: &str = "cname_beside_txt_fails";
        let host = self.host(CHECK)?;
        let (expect, txt) = Self::ownership(&host, "kept-value");
        self.create(CHECK, &txt).await?;
        self.wait_status(CHECK, &expect, RecordStatus::Valid).await?;
        let cname = DnsRecord::cname(&txt.name, &format!("target.{}", self.zone_suffix));
        match self.provider.create(&cname).await {
            Err(ProviderError::Conflict { .. }) => {}
            Err(other) => {
                return Err(caused(CHECK, "a CNAME beside a TXT failed, but not as Conflict".into(), other));
            }
            Ok(()) => {
                return Err(fail(
                    CHECK,
                    format!("creating a CNAME at {} beside its TXT succeeded", txt.name),
                ));
            }
        }
        self.wait_txt_values(CHECK, &txt.name, &["kept-value"]).await?;
        self.delete(CHECK, &txt).await?;
        self.wait_status(CHECK, &expect, RecordStatus::Missing).await
    }
}
