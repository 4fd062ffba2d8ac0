//! Taking connections, for both protocols: TCP, then TLS when the policy gives a certificate,
//! then the protocol's own connection (HTTP/1.1 for REST, HTTP/2 for gRPC).
//!
//! Against a caller that holds resources without sending anything, a TLS handshake has the
//! request's wall time to finish; the protocols bound the rest (a header read timeout, the
//! per-request wall time on bodies).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::rustls::ServerConfig;

use super::Server;

/// A connection's byte stream, plain or TLS.
pub(super) trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

/// What a protocol's connection handler is given.
pub(super) type Connection = TokioIo<Box<dyn Stream>>;

/// How long to wait before accepting again after the listener failed (out of file
/// descriptors, say), rather than spinning on the error.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Connections open at once on one listener; past it, new ones wait in the kernel's backlog
/// until one closes (against a caller that opens connections to exhaust file descriptors).
const MAX_CONNECTIONS: usize = 1024;

/// Accepts connections until `stopped` turns true, hands each to `serve_connection`, then
/// waits for every connection to finish the requests it took (each handler watches
/// `stopped` and shuts its connection down gracefully).
pub(super) async fn accept_loop<F, Fut>(
    server: Arc<Server>,
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    mut stopped: watch::Receiver<bool>,
    serve_connection: F,
) where
    F: Fn(Arc<Server>, Connection, watch::Receiver<bool>) -> Fut + Copy + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (done, mut all_done) = tokio::sync::mpsc::channel::<()>(1);
    let open = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let room = tokio::select! {
            room = Arc::clone(&open).acquire_owned() => room,
            _ = stopped.changed() => break,
        };
        let Ok(room) = room else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.changed() => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(_) => {
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let server = Arc::clone(&server);
        let tls = tls.clone();
        let stopped = stopped.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let stream: Box<dyn Stream> = match tls {
                None => Box::new(stream),
                Some(tls) => {
                    let handshake = tokio_rustls::TlsAcceptor::from(tls).accept(stream);
                    match tokio::time::timeout(server.limits.request_time.0, handshake).await {
                        Ok(Ok(stream)) => Box::new(stream),
                        // A failed or stalled handshake: nothing was asked, nothing to answer.
                        _ => return,
                    }
                }
            };
            serve_connection(server, TokioIo::new(stream), stopped).await;
            drop(room);
            drop(done);
        });
    }
    // New clients are refused from now on, rather than left waiting for the drain.
    drop(listener);
    drop(done);
    // Every connection task holds a sender: this returns once all have ended.
    let _ = all_done.recv().await;
}

/// The policy's TLS configuration for a listener that speaks `protocol` alone, so that a
/// client offering both HTTP/2 and HTTP/1.1 by ALPN is told the one this port speaks.
pub(super) fn with_alpn(
    tls: Option<&Arc<ServerConfig>>,
    protocol: &[u8],
) -> Option<Arc<ServerConfig>> {
    tls.map(|config| {
        let mut config = ServerConfig::clone(config);
        config.alpn_protocols = vec![protocol.to_vec()];
        Arc::new(config)
    })
}
