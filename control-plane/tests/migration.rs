//! An edge from before tenants and indexes upgrades in place: the
//! connections it stored (no tenant, no index entry, no due entry) load as
//! the default tenant's, are listed, counted against its quota, worked on by
//! the worker, and the migration runs once.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::{sync::Arc, time::Duration};

use acme_core::{CertManager, LocalCaIssuer, ManagerConfig};
use cert_store::{CertStore, FileStorage, Key, Storage};
use control_plane::{ControlPlane, DEFAULT_TENANT, DomainState, Error, QuotaPeriod, Quotas, Settings};
use dns_verify::{Authorities, Checker, Requirements};
use time::OffsetDateTime;

/// A connection record exactly as the version before tenants wrote it.
fn old_record(id: &str, hostname: &str, created: OffsetDateTime, state: &str) -> Vec<u8> {
    let at = created.format(&time::format_description::well_known::Rfc3339).unwrap();
    serde_json::json!({
        "id": id, "hostname": hostname, "plan": "free", "state": state,
        "records": [{"purpose": "ownership", "name": format!("_customdomain-challenge.{hostname}"),
                     "type": "TXT", "value": "t0k3n", "required": true}],
        "certificate": null, "last_error": null,
        "created_at": at, "updated_at": at, "next_check_at": at,
        "failed_checks": 0, "ownership_token": "t0k3n"
    })
    .to_string()
    .into_bytes()
}

fn control_plane(storage: Arc<dyn Storage>) -> ControlPlane {
    let store = Arc::new(CertStore::new(Arc::clone(&storage)));
    let issuer = Arc::new(LocalCaIssuer::new(Arc::clone(&store)));
    let manager = Arc::new(CertManager::new(Arc::clone(&store), issuer, ManagerConfig::default()));
    // Nothing answers here: the worker's DNS checks fail fast (lookup failed).
    let checker = Checker::builder()
        .authorities(Authorities::fixed(vec!["127.0.0.1:9".parse().unwrap()]))
        .timeout(Duration::from_millis(300))
        .build();
    let requirements = Requirements::delegating_to("acme.edge.example").routing_cname("edge.example");
    let mut settings = Settings::default();
    settings.quotas = Quotas::new([("free".to_owned(), 3)]);
    ControlPlane::builder(store, manager, checker, requirements).settings(settings).build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_stored_before_tenants_load_as_the_default_tenants() {
    let dir = std::env::temp_dir().join(format!("cp-migration-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let storage: Arc<dyn Storage> = Arc::new(FileStorage::new(&dir).unwrap());
    let now = OffsetDateTime::now_utc();
    let old = [
        ("0a01", "old-a.customer.example", now - time::Duration::days(400), "live"),
        ("0a02", "old-b.customer.example", now - time::Duration::minutes(5), "pending_ownership"),
    ];
    for (id, hostname, created, state) in old {
        let key = Key::new(format!("edge/connections/{id}")).unwrap();
        storage.put(&key, &old_record(id, hostname, created, state)).await.unwrap();
    }
    storage.put(&Key::new("edge/claims/old-a.customer.example").unwrap(), b"0a01").await.unwrap();

    let cp = Arc::new(control_plane(Arc::clone(&storage)));
    cp.migrate().await.unwrap();
    cp.migrate().await.unwrap(); // once per store: the second finds the marker

    let (page, total) = cp.list_page(DEFAULT_TENANT, 1, 20).await.unwrap();
    assert_eq!(total, 2);
    assert_eq!(page.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["0a02", "0a01"], "newest first");
    assert!(page.iter().all(|c| c.tenant == DEFAULT_TENANT));
    assert_eq!(cp.get_in(DEFAULT_TENANT, "0a01").await.unwrap().state, DomainState::Live);
    assert!(matches!(cp.get_in("0badc0de", "0a01").await, Err(Error::NotFound)));
    // Only the one created this period counts against the quota.
    let usage = cp.quota_of(DEFAULT_TENANT).await.unwrap();
    let period = |t: OffsetDateTime| QuotaPeriod::Month.of(t).0;
    let expected = old.iter().filter(|(_, _, created, _)| period(*created) == period(now)).count() as u64;
    assert_eq!((usage.used, usage.limit), (expected, Some(3)));
    // The claim still holds; a new connection joins the same index.
    assert!(cp.ask("old-a.customer.example").await.unwrap());
    let new = cp.create(DEFAULT_TENANT, "new.customer.example").await.unwrap();
    assert_eq!(cp.list_page(DEFAULT_TENANT, 1, 1).await.unwrap().0[0].id, new.id);
    // The worker finds the old connections due (they were never in a due index).
    let due: Vec<String> = cp
        .repo()
        .due()
        .due(now + time::Duration::seconds(1), 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    for id in ["0a01", "0a02"] {
        assert!(due.iter().any(|d| d == id), "{id} due: {due:?}");
    }
    cp.work_once().await;
    let worked = cp.get("0a02").await.unwrap();
    assert!(worked.next_check_at > now, "the worker looked at it: {worked:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
