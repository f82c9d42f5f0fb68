//! [`tcp_server`]: a loopback TCP server running one handler per connection.

use std::{future::Future, net::SocketAddr};

use tokio::net::{TcpListener, TcpStream};

/// Listens on 127.0.0.1 (a free port) and runs `handler` on every accepted
/// connection in its own task, for as long as the runtime lives; returns the
/// address. For upstreams, backends and receivers in tests.
///
/// # Panics
/// When no loopback port can be bound (the test cannot run).
pub async fn tcp_server<F, Fut>(handler: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    let addr = listener.local_addr().expect("bound address");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            tokio::spawn(handler(stream));
        }
    });
    addr
}
