//! `Proxy::bind` errors. (That listeners are bound before provisioning
//! starts is proven against pebble in acme-core's `serving` tests: sni-proxy
//! does not depend on an issuer.)

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::Arc;

use sni_proxy::{Proxy, SniResolver, TlsConfig};

#[tokio::test]
async fn a_port_in_use_is_a_typed_bind_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let tls = TlsConfig::new(Arc::new(SniResolver::new()), addr);
    let err = Proxy::new(addr, tls).bind().await.unwrap_err();
    assert_eq!(err.addr, addr);
    assert_eq!(err.source.kind(), std::io::ErrorKind::AddrInUse);
}
