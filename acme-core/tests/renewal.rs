//! Renewal timing and self-managed warnings on real certificates.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use acme_core::{RenewalAction, RenewalPolicy};
use cert_store::{CertBundle, CertMeta, Provenance};
use time::{Duration, OffsetDateTime};

fn meta(lifetime_days: i64, provenance: Provenance) -> CertMeta {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["r.example.com".to_owned()]).unwrap();
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    params.not_before = now;
    params.not_after = now + Duration::days(lifetime_days);
    let cert = params.self_signed(&key).unwrap();
    CertBundle::from_pem(&cert.pem(), &key.serialize_pem(), provenance).unwrap().meta().clone()
}

#[test]
fn renews_at_the_earlier_of_30_days_and_a_third_left() {
    let p = RenewalPolicy::default();
    let m = meta(90, Provenance::LocalCa);
    assert_eq!(p.renew_at(&m, None), m.not_after - Duration::days(30));
    let m = meta(365, Provenance::LocalCa);
    assert_eq!(p.renew_at(&m, None), m.not_after - (m.not_after - m.not_before) / 3);
    let m = meta(6, Provenance::LocalCa);
    assert_eq!(p.renew_at(&m, None), m.not_before + Duration::days(3));
    // The CA's ARI window wins.
    let ari = m.not_before + Duration::hours(5);
    assert_eq!(p.renew_at(&m, Some(ari)), ari);
    assert_eq!(p.action(&m, m.not_before + Duration::hours(6), Some(ari)), RenewalAction::Renew);
}

#[test]
fn actions_over_time() {
    let p = RenewalPolicy::default();
    let m = meta(90, Provenance::Acme { directory: "https://ca/dir".into() });
    assert!(matches!(p.action(&m, m.not_before + Duration::days(1), None), RenewalAction::Wait { .. }));
    assert_eq!(p.action(&m, m.not_after - Duration::days(29), None), RenewalAction::Renew);
    assert_eq!(p.action(&m, m.not_after + Duration::days(1), None), RenewalAction::Renew);
}

#[test]
fn self_managed_is_warned_about_never_renewed() {
    let p = RenewalPolicy::default();
    let m = meta(365, Provenance::SelfManaged);
    assert!(matches!(p.action(&m, m.not_before, None), RenewalAction::Wait { .. }));
    for (days_before, threshold) in [(29, 30), (13, 14), (6, 7), (0, 1)] {
        let now = m.not_after - Duration::days(days_before) - Duration::hours(1);
        assert_eq!(p.action(&m, now, None), RenewalAction::Warn { days_left: days_before });
        assert_eq!(p.warning_threshold(days_before), Some(threshold));
    }
    assert_eq!(p.action(&m, m.not_after + Duration::seconds(1), None), RenewalAction::Expired);
}
