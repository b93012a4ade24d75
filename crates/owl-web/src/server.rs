//! The HTTP server under the web endpoint: an accept loop that no client
//! can exhaust.
//!
//! - Every accepted socket gets `TCP_NODELAY` (a live page's answer must not
//!   wait for the browser's delayed ACK of the previous frame).
//! - At most `max_connections` are served at once (a WebSocket keeps its
//!   slot for its whole life); beyond, a connection gets a short `503` with
//!   `Retry-After` and is closed, so file descriptors are never exhausted
//!   and the console keeps working.
//! - A client must send a request's headers within `header_timeout`, which
//!   also closes idle keep-alive connections: half-open and slowly-sent
//!   requests cannot pile up.
//! - Accept errors (out of file descriptors, say) are logged at most once
//!   per few seconds, with a count, and backed off from instead of spun on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

/// A served connection's slot, kept by a WebSocket for its whole life.
#[derive(Clone)]
pub(crate) struct ConnectionSlot(#[allow(dead_code)] Arc<OwnedSemaphorePermit>);

/// How often a repeated accept error or refusal is logged at most.
const LOG_EVERY: Duration = Duration::from_secs(5);
/// How long the accept loop pauses after an accept error.
const BACK_OFF: Duration = Duration::from_millis(100);

const OVERLOADED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
Retry-After: 5\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: 61\r\n\r\n\
the server has too many open connections; try again shortly\n";

/// Counts and logs repeated events at most once per [`LOG_EVERY`].
struct Throttled {
    what: &'static str,
    since_log: AtomicU64,
    last: parking_lot::Mutex<Option<Instant>>,
}

impl Throttled {
    fn new(what: &'static str) -> Throttled {
        Throttled {
            what,
            since_log: AtomicU64::new(0),
            last: parking_lot::Mutex::new(None),
        }
    }

    fn hit(&self, detail: &dyn std::fmt::Display) {
        let count = self.since_log.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = self.last.lock();
        if last.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
            *last = Some(Instant::now());
            self.since_log.store(0, Ordering::Relaxed);
            tracing::warn!(target: "owl::web", count, "{}: {detail}", self.what);
        }
    }
}

pub(crate) struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
}

/// Tells the connections in flight to finish their current request and
/// close, and says when they have.
#[derive(Clone)]
pub(crate) struct Drain {
    stop: tokio::sync::watch::Sender<bool>,
    open: Arc<tokio::sync::Semaphore>,
}

/// Connections that may be in flight at once (a large bound, only counted).
const DRAIN_PERMITS: usize = 1 << 20;

impl Drain {
    pub(crate) fn new() -> Drain {
        Drain {
            stop: tokio::sync::watch::channel(false).0,
            open: Arc::new(tokio::sync::Semaphore::new(DRAIN_PERMITS)),
        }
    }

    /// Asks every connection to finish, and waits until all have (or the
    /// caller's timeout passes).
    pub(crate) async fn finish(&self) {
        let _ = self.stop.send(true);
        let _ = self.open.acquire_many(DRAIN_PERMITS as u32).await;
    }
}

/// Serves `router` on `listener` until the future is dropped; connections in
/// flight finish through `drain`.
pub(crate) async fn run(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: Limits,
    drain: Drain,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let accept_errors = Throttled::new("accepting a connection failed; backing off");
    let refusals = Arc::new(Throttled::new(
        "connections refused at the connection limit",
    ));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let http = Arc::new(http);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                accept_errors.hit(&e);
                tokio::time::sleep(BACK_OFF).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            refusals.hit(&format_args!("{} open", limits.max_connections));
            tokio::spawn(refuse(stream));
            continue;
        };
        let slot = ConnectionSlot(Arc::new(permit));
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request.extensions_mut().insert(slot.clone());
            router.clone().oneshot(request.map(axum::body::Body::new))
        });
        let connection = http
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let (mut stop, open) = (drain.stop.subscribe(), drain.open.clone());
        tokio::spawn(async move {
            let Ok(_in_flight) = open.try_acquire() else {
                return;
            };
            tokio::pin!(connection);
            // Errors here are the client's (reset, timeout, bad request).
            tokio::select! {
                _ = connection.as_mut() => {}
                () = stopping(&mut stop) => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
}

/// Resolves once the drain has begun.
async fn stopping(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopping| *stopping).await.map(|_| ());
}

/// Tells a connection beyond the limit to come back later, then closes it.
async fn refuse(mut stream: tokio::net::TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(OVERLOADED).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// The peer of a request, as the accept loop recorded it.
pub(crate) fn peer(extensions: &axum::http::Extensions) -> Option<SocketAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr)
}
