//! The edge's [`WebhookTransport`]: hyper over plain HTTP.

use std::time::Duration;

use async_trait::async_trait;
use control_plane::{DeliveryError, WebhookTransport};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};

/// Posts webhook events with hyper (5 s connect timeout).
#[derive(Clone)]
pub struct HyperWebhooks {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl std::fmt::Debug for HyperWebhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HyperWebhooks").finish_non_exhaustive()
    }
}

impl Default for HyperWebhooks {
    fn default() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        Self { client: Client::builder(TokioExecutor::new()).build(connector) }
    }
}

#[async_trait]
impl WebhookTransport for HyperWebhooks {
    async fn post(
        &self,
        url: &str,
        headers: &[(&'static str, String)],
        body: Vec<u8>,
    ) -> Result<(), DeliveryError> {
        let mut request = hyper::Request::post(url);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request =
            request.body(Full::new(Bytes::from(body))).map_err(|e| DeliveryError::Transport(e.into()))?;
        let response = self.client.request(request).await.map_err(|e| DeliveryError::Transport(e.into()))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(DeliveryError::Status(response.status().as_u16()))
        }
    }
}
