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

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

use crate::throttle::{Target, Throttled};
use crate::visitor::ClientIp;

/// A served connection's slot, kept by a WebSocket for its whole life.
#[derive(Clone)]
pub(crate) struct ConnectionSlot(#[allow(dead_code)] Arc<OwnedSemaphorePermit>);

/// How long the accept loop pauses after an accept error.
const BACK_OFF: Duration = Duration::from_millis(100);

/// What a connection beyond the limit reads before it is closed.
const OVERLOADED_BODY: &str = "the server has too many open connections; try again shortly\n";

/// The whole answer to a connection beyond the limit; its length header is
/// computed from the body, so the two cannot disagree.
fn overloaded_response() -> String {
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\n\
         Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\
         Content-Length: {}\r\n\r\n{OVERLOADED_BODY}",
        OVERLOADED_BODY.len()
    )
}

pub(crate) struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Arc<[std::net::IpAddr]>,
}

/// Tells the connections in flight to finish their current request and
/// close, and says when they have.
#[derive(Clone)]
pub(crate) struct Drain {
    stop: tokio::sync::watch::Sender<bool>,
    open: Arc<Open>,
}

/// Connections in flight, and a wake-up for whoever waits for none.
/// (Not a semaphore: one waiting for all its permits would turn away the
/// connections accepted meanwhile.)
#[derive(Default)]
pub(crate) struct Open {
    count: AtomicUsize,
    none_left: tokio::sync::Notify,
}

impl Open {
    /// Connections open now (the system page shows it).
    pub(crate) fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }
}

/// One connection counted in [`Open`] while it lives.
struct InFlight(Arc<Open>);

impl InFlight {
    fn enter(open: &Arc<Open>) -> InFlight {
        open.count.fetch_add(1, Ordering::AcqRel);
        InFlight(open.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.none_left.notify_waiters();
        }
    }
}

/// How long a connection that has not begun a request when a drain starts
/// may still begin one: its request may be in the socket already, and
/// closing would leave the client with no answer at all.
const FIRST_REQUEST_GRACE: Duration = Duration::from_millis(500);

impl Drain {
    /// A drain of the connections counted in `open`.
    pub(crate) fn new(open: Arc<Open>) -> Drain {
        Drain {
            stop: tokio::sync::watch::channel(false).0,
            open,
        }
    }

    /// Asks every connection to finish, and waits until all have (or the
    /// caller's timeout passes).
    pub(crate) async fn finish(&self) {
        let _ = self.stop.send(true);
        loop {
            let none_left = self.open.none_left.notified();
            tokio::pin!(none_left);
            none_left.as_mut().enable();
            if self.open.count.load(Ordering::Acquire) == 0 {
                return;
            }
            none_left.await;
        }
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
    static ACCEPT_ERRORS: Throttled =
        Throttled::new(Target::Web, "accepting a connection failed; backing off");
    static REFUSALS: Throttled =
        Throttled::new(Target::Web, "connections refused at the connection limit");
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let http = Arc::new(http);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                ACCEPT_ERRORS.hit(&e);
                tokio::time::sleep(BACK_OFF).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            REFUSALS.hit(&format_args!("{} open", limits.max_connections));
            tokio::spawn(refuse(stream));
            continue;
        };
        let slot = ConnectionSlot(Arc::new(permit));
        let router = router.clone();
        let begun = Arc::new(AtomicBool::new(false));
        let begun_in_service = begun.clone();
        let trusted = limits.trusted_proxies.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            begun_in_service.store(true, Ordering::Release);
            let ip = crate::visitor::client_ip(peer.ip(), request.headers(), &trusted);
            request.extensions_mut().insert(ClientIp(ip));
            request.extensions_mut().insert(ConnectInfo(peer));
            request.extensions_mut().insert(slot.clone());
            router.clone().oneshot(request.map(axum::body::Body::new))
        });
        let connection = http
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let mut stop = drain.stop.subscribe();
        let in_flight = InFlight::enter(&drain.open);
        tokio::spawn(async move {
            let _in_flight = in_flight;
            tokio::pin!(connection);
            // Errors here are the client's (reset, timeout, bad request).
            tokio::select! {
                _ = connection.as_mut() => {}
                () = stopping(&mut stop) => {
                    if !begun.load(Ordering::Acquire)
                        && tokio::time::timeout(FIRST_REQUEST_GRACE, connection.as_mut())
                            .await
                            .is_ok()
                    {
                        return;
                    }
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
}

/// Resolves once the drain has begun. If the endpoint was killed instead
/// (its `Drain` dropped without a drain), never: the connections it
/// accepted go on serving, as Erlang's connection processes outlive a
/// crashed acceptor, so a request already sent still gets its answer.
async fn stopping(stop: &mut tokio::sync::watch::Receiver<bool>) {
    if stop.wait_for(|stopping| *stopping).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Tells a connection beyond the limit to come back later, then closes it.
async fn refuse(mut stream: tokio::net::TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(overloaded_response().as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}
