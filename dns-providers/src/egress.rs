//! The address this host's API calls come from, asked of an echo service
//! (e.g. `https://api.ipify.org`): what Namecheap's `ClientIp` must be and
//! what a customer allow-lists, when the operator has not set it.

use std::{net::IpAddr, time::Duration};

use dns_verify::ProviderError;
use hyper::Method;

use crate::http::HttpClient;

/// Asks `url` for this host's egress address: the answer is the address as
/// text (`203.0.113.7`) or JSON with an `ip` field (`{"ip":"203.0.113.7"}`).
///
/// # Errors
/// [`ProviderError::Unavailable`] when the service fails or its answer is
/// not an address.
pub async fn discover_egress_ip(url: &str) -> Result<IpAddr, ProviderError> {
    let http = HttpClient::new(Duration::from_secs(10))
        .map_err(|e| ProviderError::unavailable("cannot build the HTTPS client").with_source(e))?;
    let answer = http
        .send(Method::GET, url, &[("accept", "text/plain, application/json".to_owned())], Vec::new())
        .await?;
    if !answer.status.is_success() {
        return Err(ProviderError::unavailable(format!(
            "egress IP service {url}: HTTP {}",
            answer.status.as_u16()
        )));
    }
    let text = String::from_utf8_lossy(&answer.body);
    let text = text.trim();
    let candidate = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v.get("ip").and_then(|ip| ip.as_str()).map(str::to_owned))
        .unwrap_or_else(|| text.to_owned());
    candidate.parse().map_err(|e| {
        ProviderError::unavailable(format!(
            "egress IP service {url} answered {:?}, not an IP address",
            answer.snippet()
        ))
        .with_source(e)
    })
}
