//! The HTTP server's own accept loop, so that slow or hostile clients cannot
//! take it over (measured before: 19,900 connections that sent half a request
//! stayed open, RSS grew from 15 MB to 427 MB, and at 20,000 the file limit was
//! used up and `/healthz` timed out for everyone).
//!
//! - A client has `http.header_timeout` to send a request's headers, and again
//!   to start its next request on a kept-alive connection (hyper's header-read
//!   timer runs while a connection waits for a request, so it is also the idle
//!   timeout); then the connection is closed.
//! - At most `http.max_connections` are open. When a new one arrives at the
//!   limit, the oldest connection that has not yet sent a whole request is
//!   closed to make room, so a flood of half-sent requests cannot lock out a
//!   health probe; if every open connection is serving requests (live
//!   streams), the new one is refused.

use super::auth::BasicAuth;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use openssl::ssl::{Ssl, SslAcceptor, SslFiletype, SslMethod};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tower::ServiceExt;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
}

/// How the server meets its clients: limits, and optionally TLS and basic
/// authentication (both off by default, with the loopback bind).
#[derive(Clone)]
pub struct ServerSettings {
    pub limits: Limits,
    pub tls: Option<Arc<SslAcceptor>>,
    pub auth: Option<Arc<BasicAuth>>,
}

impl ServerSettings {
    /// From the `[http]` settings; fails when the certificate or key cannot be
    /// used.
    pub fn from_config(http: &crate::config::HttpSettings) -> Result<Self, String> {
        let tls = match (&http.tls_cert_file, &http.tls_key_file) {
            (Some(cert), Some(key)) => Some(Arc::new(acceptor(cert, key)?)),
            _ => None,
        };
        Ok(ServerSettings {
            limits: Limits {
                max_connections: http.max_connections,
                header_timeout: http.header_timeout.as_duration(),
            },
            tls,
            auth: BasicAuth::new(&http.basic_auth_users).map(Arc::new),
        })
    }

    /// Limits only: plain HTTP, no authentication.
    pub fn plain(limits: Limits) -> Self {
        ServerSettings {
            limits,
            tls: None,
            auth: None,
        }
    }
}

fn acceptor(cert: &str, key: &str) -> Result<SslAcceptor, String> {
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())
        .map_err(|e| format!("http TLS: {e}"))?;
    b.set_private_key_file(key, SslFiletype::PEM)
        .map_err(|e| format!("http.tls_key_file `{key}`: {e}"))?;
    b.set_certificate_chain_file(cert)
        .map_err(|e| format!("http.tls_cert_file `{cert}`: {e}"))?;
    b.check_private_key()
        .map_err(|e| format!("http.tls_key_file does not match http.tls_cert_file: {e}"))?;
    Ok(b.build())
}

/// The open connections, and those still waiting for their first request
/// (oldest first), each with the sender that closes it.
#[derive(Default)]
struct Table {
    open: usize,
    next_id: u64,
    waiting: BTreeMap<u64, oneshot::Sender<()>>,
}

/// One connection's place in the table; leaving it (drop) frees the place.
struct Place {
    id: u64,
    table: Arc<Mutex<Table>>,
}

impl Place {
    /// Takes a place for a new connection, closing the oldest waiting one at
    /// the limit; `None` when every open connection is serving requests.
    fn admit(table: &Arc<Mutex<Table>>, max: usize) -> Option<(Place, oneshot::Receiver<()>)> {
        let mut t = crate::sync::lock(table);
        if t.open >= max {
            let (_, close) = t.waiting.pop_first()?;
            // Its task frees its place when it ends, right after this.
            let _ = close.send(());
            tracing::debug!("http: closed the oldest connection without a request to make room");
        }
        t.open += 1;
        t.next_id += 1;
        let id = t.next_id;
        let (tx, rx) = oneshot::channel();
        t.waiting.insert(id, tx);
        Some((
            Place {
                id,
                table: table.clone(),
            },
            rx,
        ))
    }

    /// Closes the oldest connection still waiting for a request, if any.
    fn make_room(table: &Arc<Mutex<Table>>) {
        if let Some((_, close)) = crate::sync::lock(table).waiting.pop_first() {
            let _ = close.send(());
        }
    }

    /// The connection sent a whole request: it is no longer the first to go.
    fn serving(&self) {
        let mut t = crate::sync::lock(&self.table);
        t.waiting.remove(&self.id);
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut t = crate::sync::lock(&self.table);
        t.waiting.remove(&self.id);
        t.open -= 1;
    }
}

/// Serves `router` on `listener` until `shutdown` completes; then stops
/// accepting and closes every open connection (live streams included).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: ServerSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = settings.limits;
    let settings = Arc::new(settings);
    let table = Arc::new(Mutex::new(Table::default()));
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it
                    // was accepted: wait a moment rather than spin. Out of
                    // descriptors, the oldest connection still without a
                    // request goes, so a probe gets in.
                    if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
                        Place::make_room(&table);
                    }
                    crate::repeats::warn(&format!("http: accept failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        while tasks.try_join_next().is_some() {}
        match Place::admit(&table, limits.max_connections) {
            Some((place, close)) => {
                tasks.spawn(connection(
                    stream,
                    router.clone(),
                    place,
                    close,
                    settings.clone(),
                ));
            }
            None => tracing::debug!("http: refused a connection: every place is serving"),
        }
    }
    tasks.shutdown().await;
    Ok(())
}

async fn connection(
    stream: TcpStream,
    router: Router,
    place: Place,
    close: oneshot::Receiver<()>,
    settings: Arc<ServerSettings>,
) {
    let _ = stream.set_nodelay(true);
    let place = Arc::new(place);
    let work = async {
        match &settings.tls {
            Some(acceptor) => {
                // The handshake gets the header time-out too: a client that
                // opens TLS and stops is a slow client like any other.
                let tls = Ssl::new(acceptor.context())
                    .and_then(|ssl| tokio_openssl::SslStream::new(ssl, stream));
                let Ok(mut tls) = tls else { return };
                let handshake = std::pin::Pin::new(&mut tls).accept();
                match tokio::time::timeout(settings.limits.header_timeout, handshake).await {
                    Ok(Ok(())) => serve_io(TokioIo::new(tls), router, &place, &settings).await,
                    Ok(Err(e)) => tracing::debug!(error = %e, "http: TLS handshake failed"),
                    Err(_) => tracing::debug!("http: TLS handshake timed out"),
                }
            }
            None => serve_io(TokioIo::new(stream), router, &place, &settings).await,
        }
    };
    tokio::select! {
        () = work => {}
        // Only a sent close counts: the sender is dropped, not sent, once the
        // connection has sent a request.
        Ok(()) = close => {}
    }
}

/// HTTP/1.1 on one connection, every request authenticated when users are set.
async fn serve_io<I>(io: TokioIo<I>, router: Router, place: &Arc<Place>, settings: &ServerSettings)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let marker = place.clone();
    let auth = settings.auth.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        marker.serving();
        let router = router.clone();
        let auth = auth.clone();
        async move {
            if let Some(auth) = auth {
                let header = request
                    .headers()
                    .get(hyper::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let allowed = tokio::task::spawn_blocking(move || auth.allows(header.as_deref()))
                    .await
                    .unwrap_or(false);
                if !allowed {
                    return Ok(unauthorized());
                }
            }
            router.oneshot(request.map(axum::body::Body::new)).await
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(settings.limits.header_timeout);
    if let Err(e) = builder.serve_connection(io, service).await {
        tracing::debug!(error = %e, "http: connection ended");
    }
}

fn unauthorized() -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        axum::http::StatusCode::UNAUTHORIZED,
        [(
            axum::http::header::WWW_AUTHENTICATE,
            "Basic realm=\"crowdpark\"",
        )],
        "authentication required\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_limit_the_oldest_waiting_connection_makes_room() {
        let table = Arc::new(Mutex::new(Table::default()));
        let (a, mut close_a) = Place::admit(&table, 2).unwrap();
        let (b, _close_b) = Place::admit(&table, 2).unwrap();
        b.serving();
        let (c, _close_c) = Place::admit(&table, 2).expect("a is evicted");
        assert!(
            close_a.try_recv().is_ok(),
            "the oldest waiting one is told to close"
        );
        drop(a);
        c.serving();
        assert!(
            Place::admit(&table, 2).is_none(),
            "every place is serving: refused"
        );
        drop(b);
        assert!(Place::admit(&table, 2).is_some());
    }
}
