//! Puts the edge together: storage, issuer, manager, proxy, API, worker.

use std::{sync::Arc, time::Duration};

use acme_core::{
    AcmeIssuer, CertManager, ChallengeKind, ChallengeResponses, Dns01Solver, EventSink, Issuer,
    LocalCaIssuer, ManagerConfig, RenewalPolicy, SystemClock,
};
use cert_store::{CertStore, FileStorage, PostgresStorage, Storage};
use control_plane::{
    ActivityLog, CertificateEvents, ControlPlane, Outbox, ServedCertificates, WORK_LEASE_TTL, WidgetKey,
};
use dns_verify::{Authorities, Checker, Requirements, Rfc2136Provider};
use sni_proxy::{Http80Config, HttpAskPolicy, OnDemand, Proxy, SniResolver, TlsConfig};

use super::{
    api::{ApiState, router},
    config::{ChallengeFlag, Config, IssuerChoice},
    webhook_client::HyperWebhooks,
};

/// The proxy's certificate table as the control plane sees it: a changed
/// name is dropped, so the next handshake loads what is stored now.
struct Resolver(Arc<SniResolver>);

impl ServedCertificates for Resolver {
    fn changed(&self, hostname: &str) {
        self.0.remove(hostname);
    }
}

/// Why the edge could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store could not be opened.
    #[error("store {0}: {1}")]
    Store(String, cert_store::StorageError),
    /// A setting is unusable.
    #[error("{0}")]
    Config(String),
    /// A listener could not be bound.
    #[error(transparent)]
    Bind(#[from] sni_proxy::BindError),
    /// The API listener could not be bound.
    #[error("API listener {0}: {1}")]
    Api(std::net::SocketAddr, std::io::Error),
}

async fn open_store(spec: &str) -> Result<Arc<dyn Storage>, StartError> {
    if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
        let pg = PostgresStorage::connect(spec).await.map_err(|e| StartError::Store("postgres".into(), e))?;
        Ok(Arc::new(pg))
    } else {
        let fs = FileStorage::new(spec).map_err(|e| StartError::Store(spec.to_owned(), e))?;
        Ok(Arc::new(fs))
    }
}

/// The DNS-01 solver: RFC 2136 into the delegation zone, propagation
/// checked on its authoritative servers.
fn dns01(config: &Config, requirements: &Requirements, checker: &Checker) -> Result<Dns01Solver, StartError> {
    use base64::Engine;
    let missing = || {
        StartError::Config("dns-01 needs EDGE_RFC2136_SERVER, EDGE_TSIG_KEY_NAME and EDGE_TSIG_SECRET".into())
    };
    let server = config.rfc2136_server.ok_or_else(missing)?;
    let key_name = config.tsig_key_name.as_deref().ok_or_else(missing)?;
    let secret = base64::engine::general_purpose::STANDARD
        .decode(config.tsig_secret.as_deref().ok_or_else(missing)?)
        .map_err(|e| StartError::Config(format!("EDGE_TSIG_SECRET is not base64: {e}")))?;
    let zone = config.rfc2136_zone.as_deref().unwrap_or(&config.delegation_zone);
    let provider = Rfc2136Provider::new(server, zone, key_name, secret)
        .map_err(|e| StartError::Config(format!("RFC 2136 settings: {e}")))?;
    Ok(Dns01Solver::new(Arc::new(provider), checker.clone(), requirements.clone()))
}

fn issuer(
    config: &Config,
    store: Arc<CertStore<dyn Storage>>,
    dns01: Option<Dns01Solver>,
) -> Result<(Arc<dyn Issuer>, ChallengeResponses), StartError> {
    let directory = match &config.issuer {
        IssuerChoice::Local => {
            return Ok((
                Arc::new(LocalCaIssuer::new(Arc::clone(store.storage()))),
                ChallengeResponses::default(),
            ));
        }
        IssuerChoice::Acme(directory) => directory,
    };
    let kind = match config.challenge {
        ChallengeFlag::Http01 => ChallengeKind::Http01,
        ChallengeFlag::TlsAlpn01 => ChallengeKind::TlsAlpn01,
        ChallengeFlag::Dns01 => ChallengeKind::Dns01,
    };
    let mut acme = AcmeIssuer::new(directory, store)
        .with_challenge(kind)
        .with_poll_timeout(Duration::from_secs(config.acme_timeout_secs.max(1)));
    if let Some(solver) = dns01 {
        acme = acme.with_dns01(solver);
    }
    if let Some(root) = &config.ca_root {
        acme = acme.with_root(root);
    }
    if let Some(email) = &config.acme_email {
        acme = acme.with_contact(vec![format!("mailto:{email}")]);
    }
    let responses = acme.responses().clone();
    Ok((Arc::new(acme), responses))
}

/// Starts everything and serves until Ctrl-C / SIGTERM.
///
/// # Errors
/// [`StartError`] when something cannot start.
pub async fn run(mut config: Config) -> Result<(), StartError> {
    let storage = open_store(&config.store).await?;
    let store: Arc<CertStore<dyn Storage>> = Arc::new(CertStore::new(Arc::clone(&storage)));
    let generated_key = config.api_keys.is_empty().then(|| hex::encode(rand::random::<[u8; 24]>()));
    if let Some(key) = &generated_key {
        config.api_keys.push(key.clone());
    }
    let widget_key =
        config.widget_secret.as_deref().map_or_else(WidgetKey::random, |s| WidgetKey::new(s.as_bytes()));
    let mut requirements =
        Requirements::delegating_to(&config.delegation_zone).routing_cname(&config.routing_cname);
    requirements = requirements.routing_addresses(config.routing_addresses.clone());
    let authorities = if config.dns_authorities.is_empty() {
        Authorities::Discover { resolver: config.dns_resolver, port: 53 }
    } else {
        Authorities::fixed(config.dns_authorities.clone())
    };
    let checker = Checker::builder().authorities(authorities).timeout(Duration::from_secs(3)).build();
    let solver = if config.uses_dns01() || config.rfc2136_server.is_some() {
        Some(dns01(&config, &requirements, &checker)?)
    } else {
        None
    };
    let (issuer, responses) = issuer(&config, Arc::clone(&store), solver)?;
    let resolver = Arc::new(SniResolver::with_capacity(100_000));
    let served: Arc<dyn ServedCertificates> = Arc::new(Resolver(Arc::clone(&resolver)));
    let outbox = Outbox::new(
        Arc::clone(&storage),
        config.webhook_urls.clone(),
        &config.webhook_secret,
        Arc::new(HyperWebhooks::default()),
    );
    let activity = ActivityLog::new(Arc::clone(&storage));
    let sinks: Vec<Arc<dyn EventSink>> = vec![
        Arc::new(CertificateEvents { outbox: outbox.clone(), served: Arc::clone(&served) }),
        Arc::new(activity.clone()),
    ];
    let manager_config = ManagerConfig {
        background_at_start: false,
        lease_ttl: WORK_LEASE_TTL,
        renewal: RenewalPolicy {
            before_expiry: time::Duration::days(config.renew_before_days.into()),
            ..RenewalPolicy::default()
        },
        check_interval: Duration::from_secs(config.maintenance_interval_secs.max(1)),
        ..ManagerConfig::default()
    };
    let manager: Arc<CertManager<dyn Storage>> = Arc::new(CertManager::with_clock(
        Arc::clone(&store),
        issuer,
        manager_config,
        Arc::new(SystemClock),
        sinks,
    ));

    let api_listener = tokio::net::TcpListener::bind(config.api_addr)
        .await
        .map_err(|e| StartError::Api(config.api_addr, e))?;
    let api_addr = api_listener.local_addr().map_err(|e| StartError::Api(config.api_addr, e))?;
    let controlplane = config.controlplane_url.clone().unwrap_or_else(|| format!("http://{api_addr}"));

    let mut tls = TlsConfig::new(Arc::clone(&resolver), responses.clone(), config.upstream);
    tls.source = Some(manager.clone());
    let ask = HttpAskPolicy::new(&format!("{}/internal/ask", controlplane.trim_end_matches('/')));
    tls.on_demand = Some(OnDemand::new(Arc::new(ask), manager.clone()));
    let mut http = Http80Config::new(responses);
    http.store = Some(Arc::clone(&storage));
    http.https_port = config.https_addr.port();
    let bound = Proxy::new(config.https_addr, tls).with_http(config.http_addr, http).bind().await?;

    let cp = Arc::new(
        ControlPlane::builder(store, Arc::clone(&manager), checker, requirements)
            .settings(config.control_plane_settings())
            .served(served)
            .outbox(outbox)
            .activity(activity)
            .widget_key(widget_key)
            .build(),
    );
    let worker = config.worker_enabled.then(|| {
        let cp = Arc::clone(&cp);
        let tick = config.tick();
        async move {
            loop {
                cp.work_once().await;
                tokio::time::sleep(tick).await;
            }
        }
    });
    // Listeners are bound: now provisioning (renewals, resumed orders) and the worker may start.
    let provisioning_manager = Arc::clone(&manager);
    let running = bound.serve_then(async move {
        provisioning_manager.start_background();
        if let Some(worker) = worker {
            worker.await;
        }
    });

    print_banner(&config, api_addr, generated_key.as_deref());
    let app = router(ApiState::new(Arc::clone(&cp), &config.api_keys, config.worker_enabled));
    let served = axum::serve(api_listener, app).with_graceful_shutdown(shutdown_signal()).await;
    if let Err(e) = served {
        tracing::error!(error = %e, "API server stopped");
    }
    let left = running.shutdown().await;
    tracing::info!(left, "stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return ctrl_c.await.unwrap_or(()),
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn print_banner(config: &Config, api: std::net::SocketAddr, generated_key: Option<&str>) {
    let key = generated_key.unwrap_or("<your API key>");
    let issuer = match &config.issuer {
        IssuerChoice::Local => "the local CA",
        IssuerChoice::Acme(directory) => directory.as_str(),
    };
    println!(
        "edge: API on http://{api}, TLS on {}, HTTP on {}, certificates from {issuer}, store {}",
        config.https_addr, config.http_addr, config.store
    );
    if generated_key.is_some() {
        println!("edge: no EDGE_API_KEYS set; generated API key for this run: {key}");
    }
    println!(
        "edge: add a first hostname:\n  curl -s -H 'Authorization: Bearer {key}' -H 'content-type: application/json' \\\n    -d '{{\"hostname\":\"shop.customer.example\"}}' http://{api}/v1/connections"
    );
}
