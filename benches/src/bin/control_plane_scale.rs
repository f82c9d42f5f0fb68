//! The control plane at 10,000 and at 100,000 connections across 100
//! tenants, on PostgreSQL and on the filesystem store: one API call's worth
//! of control-plane work (list one page, count a quota, create one
//! connection, look up a hostname's claim, the worker's due read), timed
//! per call. None of them may grow with the number of connections.
//!
//! Connections are seeded through the control plane's own storage layer
//! (`Repo::put`, `Repo::set_claim`, `TenantIndex::rebuild`): the records are
//! exactly those `create` and verification write, without the DNS checks.
//!
//! `cargo run --release -p benches --bin control-plane-scale -- [--backend file|postgres|both] [--sizes 10000,100000] [--samples 200]`
//! prints a JSON report on stdout, progress on stderr, and records one
//! result row per backend, size and call (its p95; target: ≤ 20 ms on
//! PostgreSQL at the largest size) for `benches/run`.

use std::{path::PathBuf, sync::Arc, time::Instant};

use acme_core::{CertManager, LocalCaIssuer, ManagerConfig};
use cert_store::{CertStore, FileStorage, Storage};
use control_plane::{Connection, ControlPlane, DomainState, Quotas, Settings};
use dns_verify::{Checker, Requirements};
use serde_json::json;
use time::OffsetDateTime;

const TENANTS: usize = 100;
const SEED_CONCURRENCY: usize = 32;

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    backends: Vec<String>,
    sizes: Vec<usize>,
    samples: usize,
}

fn args() -> Result<Args, Error> {
    let mut out =
        Args { backends: vec!["postgres".into(), "file".into()], sizes: vec![10_000, 100_000], samples: 200 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--backend" => {
                out.backends = match value.as_str() {
                    "both" => vec!["postgres".into(), "file".into()],
                    "file" | "postgres" => vec![value],
                    other => return Err(format!("--backend {other}: file, postgres or both").into()),
                }
            }
            "--sizes" => out.sizes = value.split(',').map(str::parse).collect::<Result<_, _>>()?,
            "--samples" => out.samples = value.parse()?,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    Ok(out)
}

/// The tenants' ids, in order.
type Tenants = Arc<Vec<String>>;

fn connection(tenants: &Tenants, i: usize, now: OffsetDateTime) -> Connection {
    let tenant = &tenants[i % TENANTS];
    let rfc3339 =
        |t: OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    let next_check_at = now + time::Duration::seconds((i % 86_400) as i64 + 60);
    serde_json::from_value(json!({
        "id": format!("{i:024x}"), "tenant": tenant, "hostname": format!("h{i}.customer{}.example", i % TENANTS),
        "plan": "free", "state": "live", "records": [], "certificate": null, "last_error": null,
        "created_at": rfc3339(now), "updated_at": rfc3339(now),
        // Spread over the next day: the worker's due read finds few.
        "next_check_at": rfc3339(next_check_at),
        "failed_checks": 0, "ownership_token": "0123456789abcdef"
    }))
    .expect("a connection record")
}

async fn control_plane(storage: Arc<dyn Storage>) -> Result<(Arc<ControlPlane>, Tenants), Error> {
    let store = Arc::new(CertStore::new(storage));
    let issuer = Arc::new(LocalCaIssuer::new(Arc::clone(&store)));
    let manager = Arc::new(CertManager::new(Arc::clone(&store), issuer, ManagerConfig::default()));
    let mut settings = Settings::default();
    settings.quotas = Quotas::new([("free".to_owned(), usize::MAX)]);
    let requirements = Requirements::delegating_to("acme.edge.example").routing_cname("edge.example");
    let cp = ControlPlane::builder(store, manager, Checker::builder().build(), requirements)
        .settings(settings)
        .build();
    let mut ids = Vec::with_capacity(TENANTS);
    for t in 0..TENANTS {
        ids.push(cp.tenants().create(&format!("T{t}"), "free", &cp.settings().quotas).await?.id);
    }
    Ok((Arc::new(cp), Arc::new(ids)))
}

/// Seeds connections `from..to` (records, due entries, claims), then
/// rewrites every tenant's index to hold `0..to`.
async fn seed(cp: &Arc<ControlPlane>, tenants: &Tenants, from: usize, to: usize) -> Result<(), Error> {
    let now = OffsetDateTime::now_utc();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(from));
    for _ in 0..SEED_CONCURRENCY {
        let (cp, next, tenants) = (Arc::clone(cp), Arc::clone(&next), Arc::clone(tenants));
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= to {
                    return Ok::<(), Error>(());
                }
                let c = connection(&tenants, i, now);
                cp.repo().put(&c).await?;
                cp.repo().set_claim(&c.hostname, &c.id).await?;
                if i % 10_000 == 0 {
                    eprintln!("  seeded {i} ({:.0} s)", started.elapsed().as_secs_f64());
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let (period, _) = cp.settings().quota_period.of(now);
    for t in 0..TENANTS {
        let ids: Vec<String> = (t..to).step_by(TENANTS).map(|i| format!("{i:024x}")).collect();
        let n = ids.len() as u64;
        cp.repo().tenant_index().rebuild(&tenants[t], &ids, &period, n).await?;
    }
    Ok(())
}

fn summary(mut samples: Vec<f64>) -> serde_json::Value {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    json!({"n": samples.len(), "p50_ms": at(0.5), "p95_ms": at(0.95), "max_ms": at(1.0)})
}

async fn time_calls<F, Fut>(samples: usize, mut call: F) -> Result<serde_json::Value, Error>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<(), Error>>,
{
    for i in 0..10 {
        call(usize::MAX - i).await?; // warm-up
    }
    let mut times = Vec::with_capacity(samples);
    for i in 0..samples {
        let t = Instant::now();
        call(i).await?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(summary(times))
}

async fn measure(
    cp: &Arc<ControlPlane>,
    tenants: &Tenants,
    size: usize,
    samples: usize,
) -> Result<serde_json::Value, Error> {
    let list = time_calls(samples, |i| {
        let (cp, tenants) = (Arc::clone(cp), Arc::clone(tenants));
        async move {
            let (page, total) = cp.list_page(&tenants[i % TENANTS], 1 + (i % 3) as u64, 20).await?;
            assert!(total > 0 && (i % 3 > 0 || !page.is_empty()));
            Ok(())
        }
    })
    .await?;
    let quota = time_calls(samples, |i| {
        let (cp, tenants) = (Arc::clone(cp), Arc::clone(tenants));
        async move {
            cp.quota_of(&tenants[i % TENANTS]).await?;
            Ok(())
        }
    })
    .await?;
    let claim = time_calls(samples, |i| {
        let cp = Arc::clone(cp);
        async move {
            let i = i.wrapping_mul(7919) % size;
            let holder = cp.repo().claim_holder(&format!("h{i}.customer{}.example", i % TENANTS)).await?;
            assert!(holder.is_some_and(|c| c.state == DomainState::Live));
            Ok(())
        }
    })
    .await?;
    let due = time_calls(samples, |_| {
        let cp = Arc::clone(cp);
        async move {
            cp.repo().due().due(OffsetDateTime::now_utc(), 100).await?;
            Ok(())
        }
    })
    .await?;
    let create = time_calls(samples, |i| {
        let (cp, tenants) = (Arc::clone(cp), Arc::clone(tenants));
        async move {
            let hostname = format!("new{i}-{size}.bench{}.example", i % TENANTS);
            cp.create(&tenants[i % TENANTS], &hostname).await?;
            Ok(())
        }
    })
    .await?;
    Ok(json!({
        "connections": size, "tenants": TENANTS,
        "list_page": list, "count_quota": quota, "create_connection": create, "claim_lookup": claim, "worker_due_read": due,
    }))
}

async fn run_backend(backend: &str, sizes: &[usize], samples: usize) -> Result<serde_json::Value, Error> {
    let _pg;
    let dir: PathBuf = std::env::temp_dir().join(format!("cp-scale-{}", std::process::id()));
    let storage: Arc<dyn Storage> = match backend {
        "postgres" => {
            let pg = testkit::PostgresServer::start()?;
            let storage = cert_store::PostgresStorage::connect(&pg.connection_string()).await?;
            _pg = Some(pg);
            Arc::new(storage)
        }
        _ => {
            _pg = None;
            let _ = std::fs::remove_dir_all(&dir);
            Arc::new(FileStorage::new(&dir)?)
        }
    };
    let (cp, tenants) = control_plane(storage).await?;
    let mut rows = Vec::new();
    let mut seeded = 0;
    for &size in sizes {
        eprintln!("{backend}: seeding to {size} connections");
        seed(&cp, &tenants, seeded, size).await?;
        seeded = size;
        eprintln!("{backend}: measuring at {size}");
        rows.push(measure(&cp, &tenants, size, samples).await?);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(json!({"backend": backend, "rows": rows}))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Error> {
    let args = args()?;
    let mut out = Vec::new();
    for backend in &args.backends {
        out.push(run_backend(backend, &args.sizes, args.samples).await?);
    }
    let largest = args.sizes.iter().copied().max().unwrap_or_default();
    for backend in &out {
        let name = backend["backend"].as_str().unwrap_or_default();
        for row in backend["rows"].as_array().into_iter().flatten() {
            let size = row["connections"].as_u64().unwrap_or_default();
            for (call, words) in [
                ("list_page", "list one page (20)"),
                ("count_quota", "count a tenant's quota"),
                ("create_connection", "create one connection"),
                ("claim_lookup", "look up a hostname's claim"),
                ("worker_due_read", "the worker's due read"),
            ] {
                let t = &row[call];
                let p95 = t["p95_ms"].as_f64().unwrap_or(f64::NAN);
                let metric =
                    format!("control plane, {name}, {size} connections / {TENANTS} tenants: {words}, p95");
                let target = (name == "postgres" && size as usize == largest).then_some(20.0);
                let mut out = match target {
                    Some(limit) => benches::at_most(&metric, "ms", &[p95], limit),
                    None => benches::reported(&metric, "ms", &[p95]),
                };
                out.rounds = t["n"].as_u64().unwrap_or_default() as usize;
                out.spread = format!(
                    "p50 {:.2} ms, max {:.2} ms over {} calls",
                    t["p50_ms"].as_f64().unwrap_or(f64::NAN),
                    t["max_ms"].as_f64().unwrap_or(f64::NAN),
                    out.rounds
                );
                out.failures = "none".into();
                out.record();
            }
        }
    }
    println!("{}", serde_json::to_string_pretty(&json!({"control_plane_scale": out}))?);
    Ok(())
}
