//! Serving a router on a listener, with the bounds every listener needs: a connection cap,
//! a deadline for a client's headers (slowloris) and for a TLS handshake, and a graceful
//! drain on shutdown.
//!
//! Both front doors use it: the API over TLS, the data plane over plain HTTP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

/// The bounds of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    /// Open connections at most; past it a new connection is closed at once.
    pub max_connections: usize,
    /// A client has this long to send a request's headers, the first one and each one after
    /// it on a kept-alive connection; then the connection is closed.
    pub header_timeout: Duration,
    /// A TLS client has this long to finish its handshake.
    pub handshake_timeout: Duration,
}

impl ListenerLimits {
    /// The API's: kube-apiserver's order of size.
    pub const API: Self = Self {
        max_connections: 1024,
        header_timeout: Duration::from_secs(30),
        handshake_timeout: Duration::from_secs(10),
    };
    /// The data plane's: many clients, each bounded the same way.
    pub const DATA_PLANE: Self = Self {
        max_connections: 8192,
        header_timeout: Duration::from_secs(30),
        handshake_timeout: Duration::from_secs(10),
    };
}

/// Serve `router` on `listener` until `shutdown`; then stop accepting and let every open
/// connection finish its request in flight (the caller bounds how long it waits).
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: ListenerLimits,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    let mut refused_logged = false;
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            if !refused_logged {
                tracing::warn!(
                    limit = limits.max_connections,
                    "connection limit reached: closing new connections"
                );
                refused_logged = true;
            }
            drop(stream);
            continue;
        };
        refused_logged = false;
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let tls = tls.clone();
        let shutdown = shutdown.clone();
        connections.spawn(
            async move {
                serve_connection(stream, router, tls, limits, shutdown).await;
                drop(slot);
            }
            .instrument(tracing::debug_span!("connection", %peer)),
        );
    }
    connections.close();
    connections.wait().await;
}

async fn serve_connection(
    stream: TcpStream,
    router: axum::Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: ListenerLimits,
    shutdown: CancellationToken,
) {
    match tls {
        Some(acceptor) => {
            let handshake = tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream));
            match handshake.await {
                Ok(Ok(stream)) => http(stream, router, limits, shutdown).await,
                Ok(Err(err)) => tracing::debug!(error = %err, "TLS handshake failed"),
                Err(_) => tracing::debug!("TLS handshake timed out"),
            }
        }
        None => http(stream, router, limits, shutdown).await,
    }
}

async fn http<S>(stream: S, router: axum::Router, limits: ListenerLimits, shutdown: CancellationToken)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(router);
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => log_end(result),
        _ = shutdown.cancelled() => {
            // Finish the request in flight, then close.
            connection.as_mut().graceful_shutdown();
            log_end(connection.await);
        }
    }
}

fn log_end(result: Result<(), hyper::Error>) {
    if let Err(err) = result {
        tracing::debug!(error = %err, "connection ended with an error");
    }
}

/// The address clients reach a listener at: loopback when it listens everywhere.
pub fn reachable(address: SocketAddr) -> SocketAddr {
    match address.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::from(([127, 0, 0, 1], address.port())),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, address.port()))
        }
        _ => address,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    async fn start(limits: ListenerLimits) -> (SocketAddr, CancellationToken) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let router = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let shutdown = CancellationToken::new();
        tokio::spawn(serve(listener, router, None, limits, shutdown.clone()));
        (address, shutdown)
    }

    const QUICK: ListenerLimits = ListenerLimits {
        max_connections: 2,
        header_timeout: Duration::from_millis(300),
        handshake_timeout: Duration::from_millis(300),
    };

    /// Reads until the peer closes; what it sent.
    async fn read_to_close(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        tokio::time::timeout(within, stream.read_to_end(&mut out)).await.ok()?.ok()?;
        Some(out)
    }

    #[tokio::test]
    async fn unfinished_headers_and_silence_are_closed() {
        let (address, _shutdown) = start(QUICK).await;
        let mut partial = TcpStream::connect(address).await.unwrap();
        partial.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        let mut silent = TcpStream::connect(address).await.unwrap();
        assert!(read_to_close(&mut partial, Duration::from_secs(3)).await.is_some());
        assert!(read_to_close(&mut silent, Duration::from_secs(3)).await.is_some());
        // An idle kept-alive connection is closed too, after its answer.
        let mut kept = TcpStream::connect(address).await.unwrap();
        kept.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let answer = read_to_close(&mut kept, Duration::from_secs(3)).await.unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));
    }

    #[tokio::test]
    async fn connections_past_the_cap_are_closed() {
        let limits = ListenerLimits { header_timeout: Duration::from_secs(30), ..QUICK };
        let (address, _shutdown) = start(limits).await;
        let _first = TcpStream::connect(address).await.unwrap();
        let _second = TcpStream::connect(address).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut third = TcpStream::connect(address).await.unwrap();
        let _ = third.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let answer = read_to_close(&mut third, Duration::from_secs(3)).await.unwrap_or_default();
        assert!(answer.is_empty(), "the third connection was served");
    }
}
