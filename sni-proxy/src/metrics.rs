//! What this crate records through the [`metrics`] facade: handshakes by
//! result and route, connections open, on-demand decisions and the ask
//! endpoint's latency.
//!
//! Nothing is exported unless the program installs a recorder; without one
//! every call is the facade's no-op. Label values are bounded: never a
//! hostname or an address.

/// Counter: TLS handshakes, by `result` ([`result`]) and `route` ([`route`]).
pub const HANDSHAKES: &str = "sni_proxy_handshakes_total";
/// Gauge: TLS connections open (from accept to close, handshake included).
pub const CONNECTIONS_OPEN: &str = "sni_proxy_connections_open";
/// Counter: on-demand decisions about names without a certificate, by `decision` ([`decision`]).
pub const ON_DEMAND_DECISIONS: &str = "sni_proxy_on_demand_decisions_total";
/// Histogram: seconds the ask policy took to answer, by `answer` (`allow`, `refuse`).
pub const ASK_DURATION: &str = "sni_proxy_on_demand_ask_duration_seconds";

/// The `result` label values of [`HANDSHAKES`].
pub mod result {
    /// The handshake completed (or, passed through, the ClientHello was routed).
    pub const OK: &str = "ok";
    /// No certificate for the name: `unrecognized_name` sent.
    pub const UNKNOWN_NAME: &str = "unknown_name";
    /// No certificate because on-demand issuance refused the name (policy,
    /// limits, implausible, or refused recently): `unrecognized_name` sent.
    pub const REFUSED: &str = "refused";
    /// The ClientHello or the rest of the handshake did not arrive in time.
    pub const TIMEOUT: &str = "timeout";
    /// The TLS exchange or the connection failed.
    pub const ERROR: &str = "error";
}

/// The `route` label values of [`HANDSHAKES`].
pub mod route {
    /// Terminated here and forwarded in plaintext.
    pub const TERMINATE: &str = "terminate";
    /// Passed through untouched to a backend.
    pub const PASSTHROUGH: &str = "passthrough";
    /// A TLS-ALPN-01 challenge answered.
    pub const CHALLENGE: &str = "challenge";
}

/// The `decision` label values of [`ON_DEMAND_DECISIONS`].
pub mod decision {
    /// Asked and allowed: issuance follows.
    pub const ALLOWED: &str = "allowed";
    /// The ask policy said no (or gave no usable answer).
    pub const REFUSED_POLICY: &str = "refused_policy";
    /// Over the ask rate limits.
    pub const REFUSED_LIMITS: &str = "refused_limits";
    /// Not a public hostname (an IP address, `localhost`, one label …).
    pub const REFUSED_IMPLAUSIBLE: &str = "refused_implausible";
    /// Refused less than the refused-names TTL ago: not asked again.
    pub const REFUSED_RECENTLY: &str = "refused_recently";
}

/// Counts one handshake.
pub(crate) fn handshake(result: &'static str, route: &'static str) {
    metrics::counter!(HANDSHAKES, "result" => result, "route" => route).increment(1);
}

/// Counts one on-demand decision.
pub(crate) fn on_demand(decision: &'static str) {
    metrics::counter!(ON_DEMAND_DECISIONS, "decision" => decision).increment(1);
}

/// Records how long one ask took.
pub(crate) fn ask(took: std::time::Duration, allowed: bool) {
    let answer = if allowed { "allow" } else { "refuse" };
    metrics::histogram!(ASK_DURATION, "answer" => answer).record(took.as_secs_f64());
}

/// One open connection in [`CONNECTIONS_OPEN`], until dropped.
pub(crate) struct OpenConnection(());

impl OpenConnection {
    /// Counts a connection as open.
    pub(crate) fn open() -> Self {
        metrics::gauge!(CONNECTIONS_OPEN).increment(1.0);
        Self(())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        metrics::gauge!(CONNECTIONS_OPEN).decrement(1.0);
    }
}

/// Gives every metric of this crate its help text (call once after
/// installing a recorder; without one it does nothing).
pub fn describe() {
    metrics::describe_counter!(
        HANDSHAKES,
        "TLS handshakes by result (ok, unknown_name, refused, timeout, error) and route (terminate, passthrough, challenge)."
    );
    metrics::describe_gauge!(CONNECTIONS_OPEN, "TLS connections open.");
    metrics::describe_counter!(
        ON_DEMAND_DECISIONS,
        "On-demand decisions about names without a certificate, by decision."
    );
    metrics::describe_histogram!(
        ASK_DURATION,
        "Seconds the on-demand ask policy took, by answer (allow, refuse)."
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::{net::IpAddr, sync::Arc};

    use cert_store::{AskPolicy, CertBundle, Provision, ProvisionError};
    use metrics_util::{
        MetricKind,
        debugging::{DebugValue, DebuggingRecorder},
    };

    use super::*;
    use crate::OnDemand;

    /// Allows only `yes.example.com`.
    struct OnlyYes;

    #[async_trait::async_trait]
    impl AskPolicy for OnlyYes {
        async fn allow(&self, name: &str, _client: IpAddr) -> bool {
            name == "yes.example.com"
        }
    }

    /// Issues nothing (the decision is what is counted).
    struct Nothing;

    #[async_trait::async_trait]
    impl Provision for Nothing {
        async fn provision(&self, name: &str) -> Result<Arc<CertBundle>, ProvisionError> {
            Err(ProvisionError::Temporary { name: name.to_owned(), source: "test issuer".into() })
        }
    }

    #[test]
    fn on_demand_decisions_are_counted_by_kind() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let on_demand = OnDemand::new(Arc::new(OnlyYes), Arc::new(Nothing));
                let client = IpAddr::from([192, 0, 2, 1]);
                assert!(on_demand.obtain("localhost", client).await.is_none());
                assert!(on_demand.obtain("no.example.com", client).await.is_none());
                assert!(on_demand.obtain("no.example.com", client).await.is_none());
                assert!(on_demand.obtain("yes.example.com", client).await.is_none());
            });
        });
        let counts: Vec<(String, u64)> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(key, ..)| key.kind() == MetricKind::Counter && key.key().name() == ON_DEMAND_DECISIONS)
            .map(|(key, _, _, value)| {
                let label = key.key().labels().next().unwrap().value().to_owned();
                let DebugValue::Counter(n) = value else { panic!("{value:?}") };
                (label, n)
            })
            .collect();
        for expected in [
            (decision::REFUSED_IMPLAUSIBLE, 1),
            (decision::REFUSED_POLICY, 1),
            (decision::REFUSED_RECENTLY, 1),
            (decision::ALLOWED, 1),
        ] {
            assert!(counts.contains(&(expected.0.to_owned(), expected.1)), "{expected:?} in {counts:?}");
        }
    }

    /// The counts of [`HANDSHAKES`] as `result/route`, and [`CONNECTIONS_OPEN`].
    fn handshakes(snapshotter: &metrics_util::debugging::Snapshotter) -> (Vec<(String, u64)>, f64) {
        let mut counts = Vec::new();
        let mut open = f64::NAN;
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            match (key.key().name(), value) {
                (HANDSHAKES, DebugValue::Counter(n)) => {
                    let labels: Vec<&str> = key.key().labels().map(metrics::Label::value).collect();
                    counts.push((labels.join("/"), n));
                }
                (CONNECTIONS_OPEN, DebugValue::Gauge(v)) => open = v.into_inner(),
                _ => {}
            }
        }
        (counts, open)
    }

    #[test]
    fn handshakes_are_counted_by_result_and_connections_while_open() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let (early, early_open) = metrics::with_local_recorder(&recorder, || {
            // One thread: the listener's tasks record into this thread's recorder.
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                let upstream: std::net::SocketAddr = ([127, 0, 0, 1], 9).into();
                let mut config = crate::TlsConfig::new(Arc::new(crate::SniResolver::new()), upstream);
                config.handshake_timeout = std::time::Duration::from_millis(200);
                tokio::spawn(crate::serve_tls(listener, config));

                // A name nobody serves: unrecognized_name.
                let client = rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
                let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
                let name = rustls::pki_types::ServerName::try_from("unknown.example.com").unwrap();
                let tls = tokio_rustls::TlsConnector::from(Arc::new(client)).connect(name, tcp).await;
                assert!(tls.is_err());

                // A client that sends nothing: open until the ClientHello timeout.
                let _silent = tokio::net::TcpStream::connect(addr).await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                let (counted, open) = handshakes(&snapshotter);
                assert_eq!(open, 1.0);
                tokio::time::sleep(std::time::Duration::from_millis(400)).await;
                (counted, open)
            })
        });
        // A snapshot drains what was recorded since the last: add both.
        let (later, open) = handshakes(&snapshotter);
        let mut counts: Vec<(String, u64)> = Vec::new();
        for (key, n) in early.into_iter().chain(later) {
            match counts.iter_mut().find(|(k, _)| *k == key) {
                Some((_, total)) => *total += n,
                None => counts.push((key, n)),
            }
        }
        counts.retain(|(_, n)| *n > 0);
        counts.sort();
        assert_eq!(
            counts,
            [("timeout/terminate".to_owned(), 1), ("unknown_name/terminate".to_owned(), 1)],
            "{counts:?}"
        );
        assert_eq!(early_open + open, 0.0, "closed connections still counted open");
    }
}
