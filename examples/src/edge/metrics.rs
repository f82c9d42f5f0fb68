//! The metrics and health listener (`EDGE_METRICS_ADDR`): `/metrics` in the
//! Prometheus text format, `/healthz` (the process is up) and `/readyz`
//! (listeners bound, store reachable, not draining) for load balancers and
//! Kubernetes probes.
//!
//! The library crates record through the `metrics` facade; this module
//! installs `metrics-exporter-prometheus` as the process's recorder and
//! serves what it renders. It starts first, so `/readyz` answers 503 while
//! the edge is still starting, and again once it drains.

use std::{
    net::SocketAddr,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{
    Json, Router,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use cert_store::{CertStore, Key, Storage, metrics::Inventory};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::json;

/// Where the metrics listener binds: an address, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsAddr(pub Option<SocketAddr>);

/// An `EDGE_METRICS_ADDR` that is neither an address nor `off`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("expected IP:PORT or `off`, not `{0}`")]
pub struct InvalidMetricsAddr(String);

impl std::str::FromStr for MetricsAddr {
    type Err = InvalidMetricsAddr;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "off" | "" => Ok(Self(None)),
            addr => addr.parse().map(|a| Self(Some(a))).map_err(|_| InvalidMetricsAddr(s.to_owned())),
        }
    }
}

/// Buckets of every `_seconds` histogram: 1 ms to 60 s.
const SECONDS_BUCKETS: [f64; 14] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0];

/// How long `/readyz` waits for the store, and `/metrics` for the inventory.
const STORE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);
const INVENTORY_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest request on the metrics listener.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The store as `/readyz` probes it and as `/metrics` reads its inventory.
type OpenStore = (Arc<dyn Storage>, Arc<CertStore<dyn Storage>>);

/// What `/readyz` checks; the edge sets it as it starts and stops.
#[derive(Default)]
pub struct Health {
    bound: AtomicBool,
    draining: AtomicBool,
    store: OnceLock<OpenStore>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("bound", &self.bound)
            .field("draining", &self.draining)
            .field("store_open", &self.store.get().is_some())
            .finish()
    }
}

impl Health {
    /// The store is open: `/readyz` probes it, `/metrics` reads its inventory.
    pub fn store_opened(&self, storage: Arc<dyn Storage>, store: Arc<CertStore<dyn Storage>>) {
        let _ = self.store.set((storage, store));
    }

    /// Every listener is bound and serving.
    pub fn listeners_bound(&self) {
        self.bound.store(true, Ordering::SeqCst);
    }

    /// Shutting down: connections drain, new ones should go elsewhere.
    pub fn draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Why the edge is not ready, or `None` when it is.
    pub async fn not_ready(&self) -> Option<String> {
        if self.draining.load(Ordering::SeqCst) {
            return Some("draining: shutting down".into());
        }
        if !self.bound.load(Ordering::SeqCst) {
            return Some("starting: listeners not bound yet".into());
        }
        let Some((storage, _)) = self.store.get() else { return Some("starting: store not open yet".into()) };
        let probe = match Key::new("edge/readyz") {
            Ok(key) => key,
            Err(e) => return Some(format!("store probe: {e}")),
        };
        match tokio::time::timeout(STORE_PROBE_TIMEOUT, storage.stat(&probe)).await {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(format!("store unreachable: {e}")),
            Err(_) => Some(format!("store unreachable: no answer within {STORE_PROBE_TIMEOUT:?}")),
        }
    }
}

/// The metrics listener's state.
#[derive(Clone)]
struct Served {
    health: Arc<Health>,
    handle: PrometheusHandle,
    inventory: Arc<Inventory>,
}

/// The metrics and health listener of a running edge.
#[derive(Debug, Clone)]
pub struct Telemetry {
    health: Arc<Health>,
    addr: Option<SocketAddr>,
}

impl Telemetry {
    /// Installs the Prometheus recorder and serves `/metrics`, `/healthz` and
    /// `/readyz` on `addr` (nothing with `off`). A listener that cannot be
    /// bound, or a recorder already installed, is logged as an error and the
    /// edge runs without metrics (its probes then fail, which keeps traffic away).
    pub async fn start(addr: MetricsAddr) -> Self {
        let health = Arc::new(Health::default());
        let Some(addr) = addr.0 else { return Self { health, addr: None } };
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => listener,
            Err(e) => {
                tracing::error!(%addr, error = %e, "metrics listener not bound: no /metrics, /healthz or /readyz");
                return Self { health, addr: None };
            }
        };
        // Installed only once something renders it (and runs its upkeep):
        // histogram samples would otherwise pile up.
        let handle = match install_recorder() {
            Ok(handle) => handle,
            Err(e) => {
                tracing::error!(error = %e, "metrics recorder not installed: /metrics stays empty");
                PrometheusBuilder::new().build_recorder().handle()
            }
        };
        let bound = listener.local_addr().ok();
        let upkeep = handle.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                upkeep.run_upkeep();
            }
        });
        let app =
            router(Served { health: Arc::clone(&health), handle, inventory: Arc::new(Inventory::new()) });
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "metrics listener stopped");
            }
        });
        Self { health, addr: bound }
    }

    /// What `/readyz` checks.
    #[must_use]
    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }

    /// The bound address, when serving.
    #[must_use]
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// `signal`, after which the edge is draining (`/readyz` answers 503).
    pub fn draining_on<F: Future<Output = ()>>(&self, signal: F) -> impl Future<Output = ()> + use<F> {
        let health = Arc::clone(&self.health);
        async move {
            signal.await;
            health.draining();
            tracing::info!("draining: /readyz answers 503");
        }
    }
}

/// The recorder every crate's metrics go to, with their descriptions.
fn install_recorder() -> Result<PrometheusHandle, metrics_exporter_prometheus::BuildError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)?
        .install_recorder()?;
    cert_store::metrics::describe();
    acme_core::metrics::describe();
    sni_proxy::metrics::describe();
    dns_verify::metrics::describe();
    control_plane::metrics::describe();
    Ok(handle)
}

fn router(served: Served) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        .with_state(served)
}

async fn metrics(State(served): State<Served>) -> Response {
    if let Some((_, store)) = served.health.store.get() {
        let now = time::OffsetDateTime::now_utc();
        match tokio::time::timeout(INVENTORY_TIMEOUT, served.inventory.record(store, now)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "certificate inventory not read"),
            Err(_) => tracing::warn!("certificate inventory not read in time (continued at the next scrape)"),
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], served.handle.render())
        .into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(served): State<Served>) -> Response {
    match served.health.not_ready().await {
        None => (StatusCode::OK, Json(json!({ "ready": true }))).into_response(),
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "ready": false, "reason": reason })))
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use cert_store::MemoryStorage;

    use super::*;

    #[test]
    fn metrics_addr_is_an_address_or_off() {
        assert_eq!("off".parse::<MetricsAddr>().unwrap(), MetricsAddr(None));
        assert_eq!(
            "127.0.0.1:9464".parse::<MetricsAddr>().unwrap(),
            MetricsAddr(Some(([127, 0, 0, 1], 9464).into()))
        );
        assert!("9464".parse::<MetricsAddr>().unwrap_err().to_string().contains("9464"));
    }

    #[tokio::test]
    async fn ready_only_when_bound_with_a_store_and_not_draining() {
        let health = Health::default();
        assert!(health.not_ready().await.unwrap().contains("not bound"));
        health.listeners_bound();
        assert!(health.not_ready().await.unwrap().contains("store not open"));
        let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
        health.store_opened(Arc::clone(&storage), Arc::new(CertStore::new(storage)));
        assert_eq!(health.not_ready().await, None);
        health.draining();
        assert!(health.not_ready().await.unwrap().contains("draining"));
    }
}
