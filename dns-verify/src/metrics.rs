//! What this crate records through the [`metrics`] facade: DNS checks by
//! record kind and status.
//!
//! Nothing is exported unless the program installs a recorder; without one
//! every call is the facade's no-op. Label values are bounded: never a
//! hostname or a record value.

use crate::RecordReport;

/// Counter: records checked by [`Checker::check`](crate::Checker::check),
/// by `record` ([`Expectation::kind`](crate::Expectation::kind):
/// `acme_delegation`, `ownership_txt`, `routing`) and `status` (the
/// [`RecordStatus`](crate::RecordStatus) in snake case: `valid`, `missing`,
/// `wrong`, `duplicate`, `proxied`, `lookup_failed`).
pub const CHECKS: &str = "dns_verify_checks_total";

/// Counts `reports` and hands them back.
pub(crate) fn counted(reports: Vec<RecordReport>) -> Vec<RecordReport> {
    for report in &reports {
        let status = report.status.label().to_ascii_lowercase();
        metrics::counter!(CHECKS, "record" => report.expectation.kind(), "status" => status).increment(1);
    }
    reports
}

/// Gives every metric of this crate its help text (call once after
/// installing a recorder; without one it does nothing).
pub fn describe() {
    metrics::describe_counter!(CHECKS, "DNS records checked, by record kind and status.");
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::net::SocketAddr;

    use metrics_util::{
        MetricKind,
        debugging::{DebugValue, DebuggingRecorder},
    };

    use super::*;
    use crate::{Checker, Expectation};

    #[test]
    fn each_checked_record_is_counted_by_kind_and_status() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                // Nothing answers on this port: the lookup fails.
                let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                let silent: SocketAddr = socket.local_addr().unwrap();
                let checker = Checker::builder()
                    .authorities(crate::Authorities::fixed([silent]))
                    .timeout(std::time::Duration::from_millis(200))
                    .build();
                let host = "shop.example.com".parse().unwrap();
                let expectation = Expectation::OwnershipTxt { host, token: "t".into() };
                checker.check(&[expectation]).await;
            });
        });
        let counted: Vec<_> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(key, ..)| key.kind() == MetricKind::Counter && key.key().name() == CHECKS)
            .map(|(key, _, _, value)| {
                let labels: Vec<String> =
                    key.key().labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
                (labels.join(","), value)
            })
            .collect();
        assert_eq!(counted.len(), 1, "{counted:?}");
        assert_eq!(counted[0].0, "record=ownership_txt,status=lookup_failed");
        assert_eq!(counted[0].1, DebugValue::Counter(1));
    }
}
