//! What a main connection and a bulk connection share: the thread that
//! runs them, how their sockets are tuned, TLS, the handshake's
//! single-chunk frames, and the writer loop.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsStream;

use super::Shared;
use super::outbound::{Outbound, Turn};
use super::wire::{self, CHUNK, CHUNK_HEADER, Head, Place};

/// Starts a thread named `name` that runs a single-threaded tokio runtime
/// until the returned sender is dropped; `setup` runs first, on the thread.
pub(super) fn start_thread(
    name: String,
    setup: impl FnOnce() + Send + 'static,
) -> std::io::Result<(tokio::runtime::Handle, tokio::sync::oneshot::Sender<()>)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let handle = runtime.handle().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new().name(name).spawn(move || {
        setup();
        runtime.block_on(async move {
            let _ = stopped.await;
        });
    })?;
    Ok((handle, stop))
}

/// TLS over a socket this node dialled, authenticated by the cluster secret.
pub(super) async fn tls_dial(
    shared: &Shared,
    tcp: TcpStream,
) -> Result<TlsStream<TcpStream>, String> {
    let connector = tokio_rustls::TlsConnector::from(shared.tls.client.clone());
    let stream = connector
        .connect(super::tls::server_name(), tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    Ok(TlsStream::Client(stream))
}

/// TLS over a socket this node accepted, authenticated by the cluster secret.
pub(super) async fn tls_accept(
    shared: &Shared,
    tcp: TcpStream,
) -> Result<TlsStream<TcpStream>, String> {
    let acceptor = tokio_rustls::TlsAcceptor::from(shared.tls.server.clone());
    let stream = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
    Ok(TlsStream::Server(stream))
}

/// Writes `head` as a frame of one chunk, and flushes it (the handshake's).
pub(super) async fn write_single<S: AsyncWrite + Unpin>(
    stream: &mut S,
    head: &Head<'_>,
) -> Result<(), String> {
    let frame = wire::encode::<()>(head, None).map_err(|e| e.to_string())?;
    stream
        .write_all(&wire::single_chunk(&frame))
        .await
        .map_err(|e| e.to_string())?;
    stream.flush().await.map_err(|e| e.to_string())
}

/// How long connecting and the handshake may take.
pub(super) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);

/// The most bytes written to the socket at once.
const BATCH: usize = 256 * 1024;

/// The kernel's send buffer of a connection. Small on purpose: whatever
/// sits there is in one queue that no lane can overtake, so a deep buffer
/// full of a 10 MB message would hold a small one behind it; the lanes
/// above it do the queueing, in turns.
const SEND_BUFFER: usize = 256 * 1024;

/// No Nagle delay, and a shallow kernel queue (see [`SEND_BUFFER`]).
pub(super) fn tune(tcp: &TcpStream) {
    let _ = tcp.set_nodelay(true);
    let _ = socket2::SockRef::from(tcp).set_send_buffer_size(SEND_BUFFER);
}

/// Reads one frame that fits one chunk (the handshake's).
pub(super) async fn read_single<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Vec<u8>, String> {
    let mut header = [0u8; CHUNK_HEADER];
    stream
        .read_exact(&mut header)
        .await
        .map_err(|e| e.to_string())?;
    let (len, _, place) = wire::read_chunk_header(&header).map_err(|e| e.to_string())?;
    if place != Place::Last {
        return Err("a handshake frame in pieces".into());
    }
    let mut frame = vec![0u8; len];
    stream
        .read_exact(&mut frame)
        .await
        .map_err(|e| e.to_string())?;
    Ok(frame)
}

/// Writes what waits in the lanes (and what a sender's direct write left),
/// and a tick when nothing was written for `tick` (the main connection's:
/// a bulk connection has none).
pub(super) async fn write_loop(out: &Outbound, tick: Option<Duration>) -> String {
    let tick_frame = wire::encode::<()>(&Head::Tick, None).expect("a tick encodes");
    let mut batch = Vec::with_capacity(BATCH + CHUNK);
    loop {
        batch.clear();
        match out.take_turn(&mut batch, BATCH) {
            Turn::Idle => {
                if out.is_closed() {
                    return out.closed_why();
                }
                match tick {
                    Some(tick) => {
                        if tokio::time::timeout(tick, out.wait()).await.is_err() {
                            let _ = out.push(wire::CONTROL_LANE, tick_frame.clone());
                        }
                    }
                    None => out.wait().await,
                }
            }
            Turn::Write => {
                let mut written = 0;
                let result =
                    std::future::poll_fn(|cx| out.poll_write_all(cx, &batch, &mut written)).await;
                out.done_writing();
                if let Err(e) = result {
                    return format!("write: {e}");
                }
            }
        }
    }
}
