//! The bulk connection: a second TLS connection per node pair that carries
//! the large frames, moved by a thread of lower CPU priority.
//!
//! One connection is one byte stream: a small message written after a
//! large one is read after it, however the writer interleaves their chunks,
//! because the kernel's buffers ahead of it hold the large one's bytes and
//! the reader must decrypt them first. And on a busy machine the threads
//! that encrypt and decrypt a 10 MB message take whole cores, so the
//! threads that would answer a ping wait for a core. Both are measured in
//! docs/benchmarks.md. So a frame of [`BULK_FRAME`](wire::BULK_FRAME) bytes or more goes on
//! this connection instead, with a marker in its place on the main one
//! (see [`arrivals`](super::arrivals) for how the order is kept), and this
//! connection's reads and writes run on the node's bulk thread, at nice
//! [`BULK_NICE`]: the kernel runs the node's schedulers and its main
//! connection first, and the bulk thread gets the rest of the machine.
//!
//! The node that dialled the main connection dials this one once the main
//! one is up; its first byte, before TLS, is [`PREAMBLE`], so the acceptor
//! registers its socket with the bulk thread from the start. Until it is
//! up, or if it cannot be made, large frames go on the main connection as
//! before. It lives and dies with the main connection: either ending ends
//! both, and the main connection's end fires the monitors.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsStream;

use super::assembly::{Assembled, Partial};
use super::dispatch::{self, refuse};
use super::outbound::Outbound;
use super::socket::{self, HANDSHAKE_TIMEOUT};
use super::wire::{self, CHUNK, CHUNK_HEADER, Head, PREAMBLE};
use super::{PeerState, Shared};

/// The bulk thread's nice value: a weight of 655 against the schedulers'
/// 1,024. Measured next to 10 MB messages on two vCPUs (docs/benchmarks.md):
/// at nice 0 a ping's p99 was about 1.1 ms, at nice 2 about 0.65 ms with the
/// messages moving at half the speed while the pings kept both cores busy;
/// at nice 19 they barely moved at all.
pub(crate) const BULK_NICE: i32 = 2;

/// The bulk thread's time slice: a scheduler thread that wakes while the
/// bulk thread holds its core waits at most about this long. Measured next
/// to 10 MB messages on two vCPUs, whose schedulers shared one core
/// (docs/benchmarks.md): with the kernel's default slice a ping's p99 went
/// over 1 ms in 7 runs of 11, with 100 µs in 2 of 11.
pub(crate) const BULK_SLICE: std::time::Duration = std::time::Duration::from_micros(100);

/// Starts the bulk thread of a node: a single-threaded tokio runtime at
/// [`BULK_NICE`], named `owl-bulk-<name>`, on the CPUs no scheduler of
/// `node` uses when there are any.
pub(super) fn start_thread(
    node: &owl_runtime::Node,
    name: &str,
) -> std::io::Result<(tokio::runtime::Handle, tokio::sync::oneshot::Sender<()>)> {
    let spare = node.spare_cpus();
    socket::start_thread(format!("owl-bulk-{name}"), move || {
        // Off the schedulers' cores if there are others: the kernel cannot
        // preempt a thread in a page fault, and a large frame's first use
        // of fresh memory faults for milliseconds.
        if !spare.is_empty() {
            let _ = owl_runtime::sys::pin_current_thread(&spare);
        }
        if let Err(e) = owl_runtime::sys::lower_thread_priority(BULK_NICE) {
            tracing::warn!(target: "owl::dist", error = %e,
                "the bulk thread runs at normal priority");
        }
        // Not worth a warning: the kernel then keeps its own slice.
        let _ = owl_runtime::sys::shorten_thread_slice(BULK_SLICE);
    })
}

/// How long the dialler waits for its bulk connection: well past the
/// acceptor's own handshake timeout, so that it never gives up on a
/// connection the acceptor has just taken (whose end would end the main
/// connection with it). Only a stopped peer takes that long, and its main
/// connection is given up long before.
const DIAL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Dials the bulk connection to `name`, whose main connection (`main`, to
/// its incarnation `peer_creation`) this node dialled at `addr`.
pub(super) fn dial(
    shared: &Arc<Shared>,
    name: Arc<str>,
    main: Arc<Outbound>,
    addr: SocketAddr,
    peer_creation: u32,
) {
    let shared = shared.clone();
    shared.bulk_io.clone().spawn(async move {
        let dialled =
            tokio::time::timeout(DIAL_TIMEOUT, handshake(&shared, addr, peer_creation)).await;
        match dialled {
            Ok(Ok(stream)) => run(shared, name, main, stream, peer_creation).await,
            Ok(Err(why)) => tracing::info!(target: "owl::dist", node = %shared.name, peer = %name,
                why, "no bulk connection: large messages share the main one"),
            Err(_) => tracing::info!(target: "owl::dist", node = %shared.name, peer = %name,
                "no bulk connection (handshake timed out): large messages share the main one"),
        }
    });
}

async fn handshake(
    shared: &Shared,
    addr: SocketAddr,
    peer_creation: u32,
) -> Result<TlsStream<TcpStream>, String> {
    let mut tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    socket::tune(&tcp);
    tcp.write_all(&[PREAMBLE])
        .await
        .map_err(|e| e.to_string())?;
    let mut stream = socket::tls_dial(shared, tcp).await?;
    let hello = Head::BulkHello {
        node: &shared.name,
        creation: shared.creation,
        peer_creation,
        version: wire::VERSION,
    };
    socket::write_single(&mut stream, &hello).await?;
    let answer = socket::read_single(&mut stream).await?;
    match wire::decode(&answer).map_err(|e| e.to_string())?.0 {
        Head::Welcome { .. } => Ok(stream),
        Head::Refused { why } => Err(format!("refused: {why}")),
        other => Err(format!("unexpected answer {other:?}")),
    }
}

/// Takes a bulk connection whose [`PREAMBLE`] was read (on the bulk
/// thread): it must pair with a live main connection from the same
/// incarnation of the same node, to this incarnation of this one.
pub(super) async fn accept(shared: Arc<Shared>, tcp: std::net::TcpStream) {
    let admitted = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        let tcp = TcpStream::from_std(tcp).map_err(|e| e.to_string())?;
        let mut stream = socket::tls_accept(&shared, tcp).await?;
        let hello = socket::read_single(&mut stream).await?;
        let (name, creation) = match wire::decode(&hello).map_err(|e| e.to_string())?.0 {
            Head::BulkHello {
                node,
                creation,
                peer_creation,
                version,
            } if version == wire::VERSION && peer_creation == shared.creation => {
                (Arc::<str>::from(node), creation)
            }
            Head::BulkHello { version, .. } if version != wire::VERSION => {
                return Err(format!("protocol version {version}, not {}", wire::VERSION));
            }
            Head::BulkHello { .. } => {
                return Err("a bulk connection to an earlier incarnation".into());
            }
            other => return Err(format!("expected a bulk hello, got {other:?}")),
        };
        let main = match shared.peers.read().get(&name).map(|p| &p.state) {
            Some(PeerState::Up {
                out,
                creation: known,
            }) if *known == creation => out.clone(),
            _ => {
                return Err(format!(
                    "a bulk connection from {name:?} without its main one"
                ));
            }
        };
        let welcome = Head::Welcome {
            creation: shared.creation,
        };
        socket::write_single(&mut stream, &welcome).await?;
        Ok((name, main, stream, creation))
    })
    .await;
    match admitted {
        Ok(Ok((name, main, stream, creation))) => run(shared, name, main, stream, creation).await,
        Ok(Err(why)) => shared.refuse(&why),
        Err(_) => shared.refuse("bulk handshake timed out"),
    }
}

/// Runs a bulk connection until it or its main connection ends.
async fn run(
    shared: Arc<Shared>,
    name: Arc<str>,
    main: Arc<Outbound>,
    stream: TlsStream<TcpStream>,
    creation: u32,
) {
    let out = Arc::new(Outbound::new(
        main.generation,
        shared.config.max_queued,
        Arc::default(),
    ));
    let (reader, writer) = tokio::io::split(stream);
    out.attach(writer);
    if !main.attach_bulk(out.clone()) {
        out.close();
        return shared.refuse("a second bulk connection");
    }
    shared.bulk_connections.fetch_add(1, Ordering::Relaxed);
    let why = tokio::select! {
        why = read_loop(&shared, &name, &main, creation, reader) => Some(why),
        why = socket::write_loop(&out, None) => Some(why),
        _ = main.closed() => None,
    };
    out.close();
    shared.bulk_connections.fetch_sub(1, Ordering::Relaxed);
    let Some(why) = why else {
        return;
    };
    // Markers on the main connection may wait for frames that were lost
    // with this one: the main connection ends too, and its monitors fire.
    // Its end is logged, with this reason.
    main.close_for(format!("its bulk connection ended: {why}"));
}

/// Reads whole frames and hands each to its place among the main
/// connection's frames. No deadline: the main connection tells whether the
/// peer lives.
async fn read_loop<R: AsyncRead + Unpin>(
    shared: &Arc<Shared>,
    name: &Arc<str>,
    main: &Arc<Outbound>,
    creation: u32,
    reader: R,
) -> String {
    let mut reader = BufReader::with_capacity(CHUNK + CHUNK_HEADER, reader);
    let mut partial = Partial::new(shared.config.max_message, shared.frame_buffers.clone());
    let mut header = [0u8; CHUNK_HEADER];
    let mut chunk = Vec::with_capacity(CHUNK);
    loop {
        if let Err(e) = reader.read_exact(&mut header).await {
            return format!("read: {e}");
        }
        let (len, lane, place) = match wire::read_chunk_header(&header) {
            Ok(h) => h,
            Err(e) => return refuse(shared, e),
        };
        chunk.resize(len, 0);
        if let Err(e) = reader.read_exact(&mut chunk).await {
            return format!("read: {e}");
        }
        // Other connections' bulk work shares this thread.
        tokio::task::yield_now().await;
        let frame = match partial.add(lane, place, &chunk) {
            Err(e) => return refuse(shared, e),
            Ok(Assembled::NotYet) => continue,
            Ok(Assembled::Single) => bytes::Bytes::copy_from_slice(&chunk),
            Ok(Assembled::Whole(frame)) => frame,
        };
        let handled = main.arrivals.take_bulk(lane, frame, |piece| {
            dispatch::deliver(shared, name, main, creation, piece)
        });
        if let Err(e) = handled {
            return refuse(shared, e);
        }
    }
}
