//! Puts the edge together: storage, issuer, manager, proxy, API, worker.

use std::{sync::Arc, time::Duration};

use acme_core::{
    AcmeIssuer, CertManager, ChallengeKind, ChallengeResponses, Dns01Solver, Issuer, LocalCaIssuer,
    ManagerConfig, RenewalPolicy,
};
use cert_store::{CertSource, CertStore, ChallengeAnswers, FileStorage, PostgresStorage, Provision, Storage};
use control_plane::{
    ActivityLog, CertificateEvents, ClaimTenants, ControlPlane, DomainCerts, Outbox, WORK_LEASE_TTL,
    WidgetKey,
};
use dns_verify::{Authorities, Checker, DnsProvider, DnsRecord, LocalZone, Requirements, Rfc2136Provider};
use sni_proxy::{Http80Config, HttpAskPolicy, OnDemand, Proxy, SniResolver, TlsConfig};

use super::{
    api::{ApiState, router},
    config::{ChallengeFlag, Config, IssuerChoice},
    webhook_client::{HyperWebhooks, check_url},
    widget,
};

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
    /// The development DNS zone could not start.
    #[error(transparent)]
    DevZone(#[from] dns_verify::LocalZoneError),
    /// The API listener could not be bound.
    #[error("API listener {0}: {1}")]
    Api(std::net::SocketAddr, std::io::Error),
}

async fn open_store(spec: &str) -> Result<Arc<dyn Storage>, StartError> {
    if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
        let pg = PostgresStorage::connect(spec).await.map_err(|e| StartError::Store("postgres".into(), e))?;
        Ok(Arc::new(cert_store::MeteredStorage::new(Arc::new(pg), "postgres")))
    } else {
        let fs = FileStorage::new(spec).map_err(|e| StartError::Store(spec.to_owned(), e))?;
        Ok(Arc::new(cert_store::MeteredStorage::new(Arc::new(fs), "file")))
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
    store: &Arc<CertStore<dyn Storage>>,
    dns01: Option<Dns01Solver>,
) -> Result<(Arc<dyn Issuer>, ChallengeResponses), StartError> {
    let directory = match &config.issuer {
        IssuerChoice::Local => {
            return Ok((Arc::new(LocalCaIssuer::new(Arc::clone(store))), ChallengeResponses::default()));
        }
        IssuerChoice::Acme(directory) => directory,
    };
    let kind = match config.challenge {
        ChallengeFlag::Http01 => ChallengeKind::Http01,
        ChallengeFlag::TlsAlpn01 => ChallengeKind::TlsAlpn01,
        ChallengeFlag::Dns01 => ChallengeKind::Dns01,
    };
    let mut acme = AcmeIssuer::new(directory, Arc::clone(store))
        .with_challenge(kind)
        .with_poll_timeout(Duration::from_secs(config.acme_timeout_secs.max(1)))
        .with_max_in_flight(config.acme_max_inflight.max(1));
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
    // First, so that /readyz answers 503 while the rest starts.
    let telemetry = super::metrics::Telemetry::start(config.metrics_addr).await;
    let storage = open_store(&config.store).await?;
    let store: Arc<CertStore<dyn Storage>> = Arc::new(CertStore::new(Arc::clone(&storage)));
    telemetry.health().store_opened(Arc::clone(&storage), Arc::clone(&store));
    let generated_key = (config.api_keys.is_empty() && config.admin_keys.is_empty())
        .then(|| hex::encode(rand::random::<[u8; 24]>()));
    if let Some(key) = &generated_key {
        config.api_keys.push(key.clone());
    }
    let widget_key =
        config.widget_secret.as_deref().map_or_else(WidgetKey::random, |s| WidgetKey::new(s.as_bytes()));
    let mut requirements = Requirements::delegating_to(&config.delegation_zone)
        .routing_cname(&config.routing_cname)
        .delegation(config.delegation_target);
    requirements = requirements.routing_addresses(config.routing_addresses.clone());
    // Development mode: our own authoritative zone, written by the control
    // plane, asked by the checker; the routing target points here.
    let dev_zone = if config.dev {
        let zone = Arc::new(LocalZone::start(config.dev_dns_addr).await?);
        let edge_ip = config.https_addr.ip();
        let routing = match edge_ip {
            std::net::IpAddr::V4(ip) => DnsRecord::a(&config.routing_cname, ip),
            std::net::IpAddr::V6(_) => DnsRecord::a(&config.routing_cname, std::net::Ipv4Addr::LOCALHOST),
        };
        if let Err(e) = zone.create(&routing).await {
            tracing::warn!(error = %e, "development zone: routing target not written");
        }
        config.dns_authorities = vec![zone.addr()];
        Some(zone)
    } else {
        None
    };
    let authorities = if config.dns_authorities.is_empty() {
        Authorities::Discover { resolver: config.dns_resolver, port: 53 }
    } else {
        Authorities::fixed(config.dns_authorities.clone())
    };
    let checker = Checker::builder().authorities(authorities).timeout(Duration::from_secs(3)).build();
    let solver = if config.uses_dns01() || config.rfc2136_server.is_some() {
        // Per tenant, a SAN's TXT goes where its tenant's shared target is:
        // the tenant of the connection claiming it.
        let tenants = ClaimTenants::new(control_plane::Repo::new(Arc::clone(&storage)));
        Some(dns01(&config, &requirements, &checker)?.with_tenants(Arc::new(tenants)))
    } else {
        None
    };
    let (issuer, responses) = issuer(&config, &store, solver)?;
    for url in &config.webhook_urls {
        check_url(url).map_err(|e| StartError::Config(format!("EDGE_WEBHOOK_URLS: {e}")))?;
    }
    let webhooks = HyperWebhooks::new(config.extra_root.as_deref())
        .map_err(|e| StartError::Config(format!("EDGE_EXTRA_ROOT: {e}")))?;
    let outbox = Outbox::new(
        Arc::clone(&storage),
        config.webhook_urls.clone(),
        &config.webhook_secret,
        Arc::new(webhooks),
    );
    let activity = ActivityLog::new(Arc::clone(&storage))
        .with_retention(config.control_plane_settings().activity_retention);
    let manager_config = ManagerConfig {
        lease_ttl: WORK_LEASE_TTL,
        renewal: RenewalPolicy {
            before_expiry: time::Duration::days(config.renew_before_days.into()),
            ..RenewalPolicy::default()
        },
        check_interval: Duration::from_secs(config.maintenance_interval_secs.max(1)),
        ..ManagerConfig::default()
    };
    // Maintenance (renewals, resumed orders) starts only once the listeners are bound, below.
    let manager: Arc<CertManager<dyn Storage>> = Arc::new(
        CertManager::builder(Arc::clone(&store), issuer)
            .config(manager_config)
            .sink(Arc::new(CertificateEvents { outbox: outbox.clone() }))
            .sink(Arc::new(activity.clone()))
            .build(),
    );

    let api_listener = tokio::net::TcpListener::bind(config.api_addr)
        .await
        .map_err(|e| StartError::Api(config.api_addr, e))?;
    let api_addr = api_listener.local_addr().map_err(|e| StartError::Api(config.api_addr, e))?;
    let controlplane = config.controlplane_url.clone().unwrap_or_else(|| format!("http://{api_addr}"));

    // Every node answers the challenges any node of the fleet published.
    let answers: Arc<dyn ChallengeAnswers> = Arc::new(responses.with_shared_store(Arc::clone(&storage)));
    let ask_url = format!("{}/internal/ask", controlplane.trim_end_matches('/'));
    let mut ask = HttpAskPolicy::new(&ask_url)
        .map_err(|e| StartError::Config(format!("CONTROLPLANE_URL: {e}")))?
        .allow_bodiless_2xx(config.ask_allow_bodiless);
    if let Some(root) = &config.extra_root {
        ask = ask
            .with_extra_root(root.clone())
            .map_err(|e| StartError::Config(format!("EDGE_EXTRA_ROOT: {e}")))?;
    }
    // One call connects the manager: certificates load at first handshake
    // and are replaced or dropped as soon as they are issued, renewed or archived.
    let tls = TlsConfig::from_source_with(
        Arc::new(SniResolver::with_capacity(100_000)),
        // A domain's certificate is found by any of its SANs (stored under its hostname).
        Arc::new(DomainCerts::new(Arc::clone(&manager), control_plane::Repo::new(Arc::clone(&storage))))
            as Arc<dyn CertSource>,
        config.upstream,
    )
    .with_answers(Arc::clone(&answers))
    .with_on_demand(OnDemand::new(Arc::new(ask), Arc::clone(&manager) as Arc<dyn Provision>));
    let mut http = Http80Config::new(answers);
    http.https_port = config.https_addr.port();
    let bound = Proxy::new(config.https_addr, tls).with_http(config.http_addr, http).bind().await?;

    let mut cp = ControlPlane::builder(store, Arc::clone(&manager), checker, requirements)
        .settings(config.control_plane_settings())
        .outbox(outbox)
        .activity(activity)
        .widget_key(widget_key.clone())
        .clock(Arc::new(OffsetClock(time::Duration::seconds(config.clock_offset_secs))));
    if let Some(zone) = &dev_zone {
        cp = cp.apply_records_with(Arc::clone(zone) as Arc<dyn DnsProvider>);
    }
    cp = cp.dns_credentials(config.dns_credentials.build(Arc::clone(&storage)).map_err(StartError::Config)?);
    let cp = Arc::new(cp.build());
    // An edge from before tenants and indexes upgrades in place (once per store).
    cp.migrate().await.map_err(|e| StartError::Config(format!("migrating the store: {e}")))?;
    let worker = config.worker_enabled.then(|| {
        let cp = Arc::clone(&cp);
        let tick = config.tick();
        let apply = super::dns_credentials::ApplyPass::every(Duration::from_secs(
            config.dns_credentials.apply_interval_secs.max(1),
        ));
        async move {
            loop {
                apply.tick(&cp).await;
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

    telemetry.health().listeners_bound();
    if let Some(addr) = telemetry.addr() {
        println!("edge: metrics on http://{addr}/metrics, probes on /healthz and /readyz");
    }
    print_banner(&config, api_addr, generated_key.as_deref(), dev_zone.as_deref());
    let app =
        router(ApiState::new(Arc::clone(&cp), &config.api_keys, &config.admin_keys, config.worker_enabled))
            .merge(widget::routes(widget_key, config.widget_settings()));
    let served =
        axum::serve(api_listener, app).with_graceful_shutdown(telemetry.draining_on(shutdown_signal())).await;
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

fn print_banner(
    config: &Config,
    api: std::net::SocketAddr,
    generated_key: Option<&str>,
    dev: Option<&LocalZone>,
) {
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
    if let Some(zone) = dev {
        let dns = zone.addr();
        println!(
            "edge: development mode: DNS records are written into the local zone at {dns} (dig @{} -p {} …)",
            dns.ip(),
            dns.port()
        );
    }
    println!(
        "edge: add a first hostname:\n  curl -s -H 'Authorization: Bearer {key}' -H 'content-type: application/json' \\\n    -d '{{\"hostname\":\"shop.customer.example\"}}' http://{api}/v1/connections"
    );
    if dev.is_some() {
        let https = config.https_addr;
        println!(
            "edge: it goes live in seconds; then:\n  curl -vk --resolve shop.customer.example:{}:{} https://shop.customer.example:{}/",
            https.port(),
            https.ip(),
            https.port()
        );
    }
}

/// The system clock moved by a fixed offset (`EDGE_CLOCK_OFFSET_SECS`, for
/// tests of a new quota period).
struct OffsetClock(time::Duration);

impl acme_core::Clock for OffsetClock {
    fn now(&self) -> time::OffsetDateTime {
        time::OffsetDateTime::now_utc() + self.0
    }
}
