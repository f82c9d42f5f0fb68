//! What this crate records through the [`metrics`] facade: the webhook
//! outbox's depth and its deliveries.
//!
//! Nothing is exported unless the program installs a recorder; without one
//! every call is the facade's no-op. Label values are bounded: never a
//! hostname or a URL.

/// Gauge: webhook deliveries waiting in the outbox (due or backing off), as
/// of the last delivery pass.
pub const WEBHOOK_QUEUE_DEPTH: &str = "control_plane_webhook_queue_depth";
/// Counter: webhook deliveries that reached their receiver (2xx).
pub const WEBHOOK_DELIVERIES: &str = "control_plane_webhook_deliveries_total";
/// Counter: webhook delivery attempts that failed (each is retried with
/// backoff), by `reason` (`timeout`, `status`, `transport`).
pub const WEBHOOK_DELIVERY_FAILURES: &str = "control_plane_webhook_delivery_failures_total";

/// Records the outbox's depth.
pub(crate) fn queue_depth(entries: usize) {
    #[allow(clippy::cast_precision_loss)] // far below 2^52
    metrics::gauge!(WEBHOOK_QUEUE_DEPTH).set(entries as f64);
}

/// Counts one delivery attempt: `None` delivered, else the failure.
pub(crate) fn delivery(failure: Option<&crate::DeliveryError>) {
    use crate::DeliveryError;
    let Some(failure) = failure else {
        metrics::counter!(WEBHOOK_DELIVERIES).increment(1);
        return;
    };
    let reason = match failure {
        DeliveryError::Timeout => "timeout",
        DeliveryError::Status(_) => "status",
        _ => "transport",
    };
    metrics::counter!(WEBHOOK_DELIVERY_FAILURES, "reason" => reason).increment(1);
}

/// Gives every metric of this crate its help text (call once after
/// installing a recorder; without one it does nothing).
pub fn describe() {
    metrics::describe_gauge!(
        WEBHOOK_QUEUE_DEPTH,
        "Webhook deliveries waiting in the outbox, as of the last delivery pass."
    );
    metrics::describe_counter!(WEBHOOK_DELIVERIES, "Webhook deliveries that reached their receiver.");
    metrics::describe_counter!(
        WEBHOOK_DELIVERY_FAILURES,
        "Failed webhook delivery attempts (retried), by reason (timeout, status, transport)."
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use metrics_util::{
        MetricKind,
        debugging::{DebugValue, DebuggingRecorder},
    };

    use super::*;
    use crate::DeliveryError;

    #[test]
    fn deliveries_and_failures_are_counted_by_reason() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            queue_depth(3);
            delivery(None);
            delivery(Some(&DeliveryError::Status(500)));
            delivery(Some(&DeliveryError::Timeout));
            delivery(Some(&DeliveryError::Timeout));
        });
        let snapshot = snapshotter.snapshot().into_vec();
        let find = |kind: MetricKind, name: &str, label: Option<&str>| {
            snapshot
                .iter()
                .find(|(key, ..)| {
                    key.kind() == kind
                        && key.key().name() == name
                        && label.is_none_or(|l| key.key().labels().any(|x| x.value() == l))
                })
                .map(|entry| &entry.3)
        };
        assert_eq!(find(MetricKind::Counter, WEBHOOK_DELIVERIES, None), Some(&DebugValue::Counter(1)));
        let timeouts = find(MetricKind::Counter, WEBHOOK_DELIVERY_FAILURES, Some("timeout"));
        assert_eq!(timeouts, Some(&DebugValue::Counter(2)));
        let status = find(MetricKind::Counter, WEBHOOK_DELIVERY_FAILURES, Some("status"));
        assert_eq!(status, Some(&DebugValue::Counter(1)));
        let Some(DebugValue::Gauge(depth)) = find(MetricKind::Gauge, WEBHOOK_QUEUE_DEPTH, None) else {
            panic!("no depth")
        };
        assert_eq!(depth.into_inner(), 3.0);
    }
}
