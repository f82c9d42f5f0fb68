//! What this crate records through the [`metrics`] facade: issuance and
//! renewal attempts by outcome and error class, each ACME request's latency
//! by endpoint and status, and the orders in flight with the CA.
//!
//! Nothing is exported unless the program installs a recorder; without one
//! every call is the facade's no-op. Label values are bounded: never a
//! hostname, a URL or an order id.

use crate::ErrorClass;

/// Counter: issuance attempts, by `kind` (`issue`, `renew`), `outcome`
/// (`success`, `failure`) and `error` (the [`ErrorClass`] in snake case, `none` on success).
pub const ISSUANCE_ATTEMPTS: &str = "acme_issuance_attempts_total";
/// Histogram: seconds one HTTP request to the ACME CA took, by `endpoint`
/// ([`endpoint`]) and `status` (the HTTP status code, `error` when no response came).
pub const REQUEST_DURATION: &str = "acme_request_duration_seconds";
/// Gauge: orders with the CA right now (from the first request of an order to its last).
pub const ORDERS_IN_FLIGHT: &str = "acme_orders_in_flight";

/// The `endpoint` label values of [`REQUEST_DURATION`]: the directory's
/// resources by name, other URLs by what the path says they are.
pub mod endpoint {
    /// The directory itself.
    pub const DIRECTORY: &str = "directory";
    /// `newNonce`.
    pub const NEW_NONCE: &str = "new_nonce";
    /// `newAccount`.
    pub const NEW_ACCOUNT: &str = "new_account";
    /// `newOrder`.
    pub const NEW_ORDER: &str = "new_order";
    /// `revokeCert`.
    pub const REVOKE_CERT: &str = "revoke_cert";
    /// `keyChange`.
    pub const KEY_CHANGE: &str = "key_change";
    /// `renewalInfo` (ARI).
    pub const RENEWAL_INFO: &str = "renewal_info";
    /// An order's URL.
    pub const ORDER: &str = "order";
    /// An authorization's URL.
    pub const AUTHORIZATION: &str = "authorization";
    /// A challenge's URL.
    pub const CHALLENGE: &str = "challenge";
    /// An order's finalize URL.
    pub const FINALIZE: &str = "finalize";
    /// A certificate's URL.
    pub const CERTIFICATE: &str = "certificate";
    /// The account's URL.
    pub const ACCOUNT: &str = "account";
    /// Anything else.
    pub const OTHER: &str = "other";
}

/// The `error` label value of an [`ErrorClass`].
#[must_use]
pub fn error_label(class: ErrorClass) -> &'static str {
    match class {
        ErrorClass::CnameNotFound => "cname_not_found",
        ErrorClass::TxtConflict => "txt_conflict",
        ErrorClass::RateLimited => "rate_limited",
        ErrorClass::ValidationFailed => "validation_failed",
        ErrorClass::DnsFetch => "dns_fetch",
        ErrorClass::NoSan => "no_san",
        ErrorClass::CaUnavailable => "ca_unavailable",
        ErrorClass::Account => "account",
        ErrorClass::Storage => "storage",
        ErrorClass::Internal => "internal",
    }
}

/// Counts one issuance (`renewing`: a certificate was stored before) with
/// its outcome.
pub(crate) fn issuance(renewing: bool, failure: Option<ErrorClass>) {
    let kind = if renewing { "renew" } else { "issue" };
    let (outcome, error) = match failure {
        None => ("success", "none"),
        Some(class) => ("failure", error_label(class)),
    };
    metrics::counter!(ISSUANCE_ATTEMPTS, "kind" => kind, "outcome" => outcome, "error" => error).increment(1);
}

/// One order in [`ORDERS_IN_FLIGHT`], until dropped.
pub(crate) struct OrderInFlight(());

impl OrderInFlight {
    /// Counts an order as in flight.
    pub(crate) fn enter() -> Self {
        metrics::gauge!(ORDERS_IN_FLIGHT).increment(1.0);
        Self(())
    }
}

impl Drop for OrderInFlight {
    fn drop(&mut self) {
        metrics::gauge!(ORDERS_IN_FLIGHT).decrement(1.0);
    }
}

/// Which [`endpoint`] a URL the directory did not name is, from its path
/// (Let's Encrypt's `/acme/authz/…`, pebble's `/authZ/…`, …).
pub(crate) fn endpoint_of_path(path: &str) -> &'static str {
    let path = path.to_ascii_lowercase();
    let has = |word: &str| path.contains(word);
    if has("authz") {
        endpoint::AUTHORIZATION
    } else if has("chal") {
        endpoint::CHALLENGE
    } else if has("finalize") {
        endpoint::FINALIZE
    } else if has("cert") {
        endpoint::CERTIFICATE
    } else if has("order") {
        endpoint::ORDER
    } else if has("acct") || has("account") || has("reg") {
        endpoint::ACCOUNT
    } else {
        endpoint::OTHER
    }
}

/// The [`endpoint`] of a directory resource, by its field name.
pub(crate) fn endpoint_of_directory_field(field: &str) -> Option<&'static str> {
    Some(match field {
        "newNonce" => endpoint::NEW_NONCE,
        "newAccount" => endpoint::NEW_ACCOUNT,
        "newOrder" => endpoint::NEW_ORDER,
        "revokeCert" => endpoint::REVOKE_CERT,
        "keyChange" => endpoint::KEY_CHANGE,
        "renewalInfo" => endpoint::RENEWAL_INFO,
        _ => return None,
    })
}

/// Gives every metric of this crate its help text (call once after
/// installing a recorder; without one it does nothing).
pub fn describe() {
    metrics::describe_counter!(
        ISSUANCE_ATTEMPTS,
        "Issuance attempts by kind (issue, renew), outcome (success, failure) and error class."
    );
    metrics::describe_histogram!(
        REQUEST_DURATION,
        "Seconds one HTTP request to the ACME CA took, by endpoint and HTTP status."
    );
    metrics::describe_gauge!(ORDERS_IN_FLIGHT, "Orders with the ACME CA right now.");
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use metrics_util::{
        MetricKind,
        debugging::{DebugValue, DebuggingRecorder},
    };

    use super::*;

    #[test]
    fn issuance_outcomes_are_counted_with_their_class() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        // Taken while one order is still in flight.
        let snapshot = metrics::with_local_recorder(&recorder, || {
            issuance(false, None);
            issuance(true, Some(ErrorClass::RateLimited));
            issuance(true, Some(ErrorClass::RateLimited));
            let _a = OrderInFlight::enter();
            {
                let _b = OrderInFlight::enter();
            }
            snapshotter.snapshot().into_vec()
        });
        let value = |kind: MetricKind, name: &str, labels: &[(&str, &str)]| {
            snapshot
                .iter()
                .find(|(key, ..)| {
                    key.kind() == kind
                        && key.key().name() == name
                        && labels
                            .iter()
                            .all(|(k, v)| key.key().labels().any(|l| l.key() == *k && l.value() == *v))
                })
                .map(|entry| &entry.3)
        };
        let success = [("kind", "issue"), ("outcome", "success"), ("error", "none")];
        assert_eq!(value(MetricKind::Counter, ISSUANCE_ATTEMPTS, &success), Some(&DebugValue::Counter(1)));
        let limited = [("kind", "renew"), ("outcome", "failure"), ("error", "rate_limited")];
        assert_eq!(value(MetricKind::Counter, ISSUANCE_ATTEMPTS, &limited), Some(&DebugValue::Counter(2)));
        let Some(DebugValue::Gauge(in_flight)) = value(MetricKind::Gauge, ORDERS_IN_FLIGHT, &[]) else {
            panic!("no gauge")
        };
        assert_eq!(in_flight.into_inner(), 1.0);
    }

    #[test]
    fn endpoints_are_named_from_their_path() {
        assert_eq!(endpoint_of_path("/authZ/abc"), endpoint::AUTHORIZATION);
        assert_eq!(endpoint_of_path("/acme/chall/1/2"), endpoint::CHALLENGE);
        assert_eq!(endpoint_of_path("/finalize-order/x"), endpoint::FINALIZE);
        assert_eq!(endpoint_of_path("/certZ/x"), endpoint::CERTIFICATE);
        assert_eq!(endpoint_of_path("/my-order/x"), endpoint::ORDER);
        assert_eq!(endpoint_of_path("/my-account/1"), endpoint::ACCOUNT);
        assert_eq!(endpoint_of_path("/somewhere"), endpoint::OTHER);
        assert_eq!(endpoint_of_directory_field("newOrder"), Some(endpoint::NEW_ORDER));
        assert_eq!(endpoint_of_directory_field("meta"), None);
    }
}
