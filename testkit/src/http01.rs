//! A minimal HTTP-01 responder for tests and benchmarks (sni-proxy serves
//! challenges in production).

use std::{future::Future, net::SocketAddr, pin::Pin, sync::Arc};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Looks up the body for a challenge token.
pub type TokenLookup =
    Arc<dyn Fn(String) -> Pin<Box<dyn Future<Output = Option<String>> + Send>> + Send + Sync>;

/// Serves `GET /.well-known/acme-challenge/<token>` on `addr` with
/// `lookup(token)` (404 when `None`), one request per connection.
///
/// # Errors
/// When `addr` cannot be bound.
pub async fn serve_http01(
    addr: SocketAddr,
    lookup: TokenLookup,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { continue };
            let lookup = Arc::clone(&lookup);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut len = 0;
                while len < buf.len() {
                    match stream.read(&mut buf[len..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => len += n,
                    }
                    if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let request = String::from_utf8_lossy(&buf[..len]);
                let path = request.split_whitespace().nth(1).unwrap_or("");
                let answer = match path.strip_prefix("/.well-known/acme-challenge/") {
                    Some(token) => lookup(token.to_owned()).await,
                    None => None,
                };
                let response = match answer {
                    Some(body) => {
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                    }
                    None => {
                        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned()
                    }
                };
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    }))
}
