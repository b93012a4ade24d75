//! Connections: dialling, accepting, the handshake, and the reader and
//! writer of a live connection. Dialling, accepting and the writer (with
//! the ticks that tell a peer this node lives) run on the distribution's
//! own I/O thread, so that a node whose schedulers are saturated still
//! answers its peers and is never taken for dead. The reader runs on the
//! node's schedulers, next to the processes it delivers to (see
//! `to_schedulers`), and small frames to an idle connection are written by
//! their senders (see `Outbound::push`). Each main connection has a bulk
//! connection beside it, for large frames (see `bulk`); an accepted
//! connection says by its first byte which of the two it is.

use std::sync::Arc;
use std::time::{Duration, Instant};

use owl_runtime::{CallError, ExitReason};
use tokio::io::{AsyncRead, AsyncReadExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsStream;

use super::arrivals::{Main, Piece};
use super::assembly::{Assembled, Partial};
use super::command::Command;
use super::dispatch::{self, refuse};
use super::outbound::Outbound;
use super::socket::{
    HANDSHAKE_TIMEOUT, read_single, tls_accept, tls_dial, tune, write_loop, write_single,
};
use super::wire::{self, CHUNK, CHUNK_HEADER, Head};
use super::{Peer, PeerState, Shared};
use crate::NodeEvent;

/// What the acceptor answers a dial it loses to its own (the node with the
/// smaller name dials).
const SIMULTANEOUS: &str = "simultaneous connect: my dial to you wins";

/// What the acceptor answers a dial from a peer it is connected to already.
const ALREADY_CONNECTED: &str = "already connected";

/// How long a dial that failed keeps the peer from being dialled again.
const RETRY_AFTER: Duration = Duration::from_millis(200);

/// Moves a socket's readiness from the I/O thread to the node's schedulers.
/// The connection's reader runs there: a scheduler that has nothing to run
/// waits in the kernel for the socket itself, so an incoming message is
/// read and handed to its process by the thread that then runs it, with
/// no wake-up of one thread by another on the way (tens of microseconds on
/// a virtual machine). Liveness does not depend on it: the writer, and so
/// the ticks that tell the peer this node lives, stay on the I/O thread.
fn to_schedulers(shared: &Shared, tcp: TcpStream) -> std::io::Result<TcpStream> {
    let tcp = tcp.into_std()?;
    let _inside = shared.node.handle().enter();
    TcpStream::from_std(tcp)
}

/// Starts dialling `name` (its state goes to `Dialing`); frames pushed
/// meanwhile wait in the returned queue.
pub(super) fn start_dial(shared: &Arc<Shared>, name: Arc<str>, peer: &mut Peer) -> Arc<Outbound> {
    let out = shared.new_outbound();
    peer.state = PeerState::Dialing(out.clone());
    let addr = peer.addr.expect("dialled only with an address");
    let shared2 = shared.clone();
    let dialing = out.clone();
    shared.io.spawn(async move {
        let result = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&shared2, addr)).await;
        match result {
            Ok(Ok((stream, Head::Welcome { creation }))) => {
                if promote(&shared2, &name, &dialing, creation) {
                    run(shared2, name, dialing, stream, creation, Some(addr)).await;
                }
            }
            Ok(Ok((_, Head::Refused { why }))) if why == SIMULTANEOUS => {
                // Its dial to us carries the connection; give it time to land.
                tokio::time::sleep(HANDSHAKE_TIMEOUT).await;
                dial_failed(&shared2, &name, &dialing, "its own dial never came");
            }
            Ok(Ok((_, head))) => dial_failed(&shared2, &name, &dialing, &format!("{head:?}")),
            Ok(Err(e)) => dial_failed(&shared2, &name, &dialing, &e),
            Err(_) => dial_failed(&shared2, &name, &dialing, "handshake timed out"),
        }
    });
    out
}

/// Connects, shakes hands, and reads the acceptor's answer.
async fn handshake(
    shared: &Shared,
    addr: std::net::SocketAddr,
) -> Result<(TlsStream<TcpStream>, Head<'static>), String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    tune(&tcp);
    let tcp = to_schedulers(shared, tcp).map_err(|e| e.to_string())?;
    let mut stream = tls_dial(shared, tcp).await?;
    let hello = Head::Hello {
        node: &shared.name,
        creation: shared.creation,
        version: wire::VERSION,
    };
    write_single(&mut stream, &hello).await?;
    let answer = read_single(&mut stream).await?;
    let head = match wire::decode(&answer).map_err(|e| e.to_string())?.0 {
        Head::Welcome { creation } => Head::Welcome { creation },
        Head::Refused { why } => Head::Refused {
            why: if why == SIMULTANEOUS {
                SIMULTANEOUS
            } else {
                "refused"
            },
        },
        other => return Err(format!("unexpected answer {other:?}")),
    };
    Ok((stream, head))
}

/// The dial got through: the peer is up (unless an accepted connection
/// took its place meanwhile).
fn promote(shared: &Shared, name: &Arc<str>, out: &Arc<Outbound>, creation: u32) -> bool {
    let mut peers = shared.peers.write();
    let Some(peer) = peers.get_mut(name) else {
        return false;
    };
    match &peer.state {
        PeerState::Dialing(o) if Arc::ptr_eq(o, out) => {
            peer.state = PeerState::Up {
                out: out.clone(),
                creation,
            };
            drop(peers);
            shared.node_event(NodeEvent::Up(name.to_string()));
            true
        }
        _ => false,
    }
}

fn dial_failed(shared: &Shared, name: &Arc<str>, out: &Arc<Outbound>, why: &str) {
    tracing::debug!(target: "owl::dist", node = %shared.name, peer = %name, why, "dial failed");
    {
        let mut peers = shared.peers.write();
        if let Some(peer) = peers.get_mut(name)
            && matches!(&peer.state, PeerState::Dialing(o) if Arc::ptr_eq(o, out))
        {
            peer.state = PeerState::Down;
            peer.retry_at = Some(Instant::now() + RETRY_AFTER);
        } else {
            return;
        }
    }
    out.close();
    lost(shared, name, out.generation);
}

/// Everything that went to a connection that is gone: the agent fires its
/// links and monitors, and its calls fail.
fn lost(shared: &Shared, name: &Arc<str>, generation: u32) {
    shared.to_agent(Command::PeerDown {
        peer: name.clone(),
        generation,
    });
    let mut calls = shared.calls.lock();
    let failed: Vec<u64> = calls
        .iter()
        .filter(|(_, c)| &c.peer == name && c.generation == generation)
        .map(|(id, _)| *id)
        .collect();
    for id in failed {
        if let Some(call) = calls.remove(&id) {
            let _ = call
                .reply
                .send(Err(CallError::Exited(ExitReason::NoConnection)));
        }
    }
}

/// Accepts connections for as long as the agent runs.
pub(super) async fn accept_loop(shared: Arc<Shared>) {
    let listener = match shared
        .listener
        .try_clone()
        .and_then(tokio::net::TcpListener::from_std)
    {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(target: "owl::dist", node = %shared.name, error = %e, "cannot listen");
            return;
        }
    };
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        tune(&tcp);
        tokio::spawn(route(shared.clone(), tcp));
    }
}

/// Sends an accepted connection where it belongs by its first byte: a
/// bulk connection's [`PREAMBLE`](wire::PREAMBLE) to the bulk
/// thread, anything else (TLS) to the handshake of a main connection.
async fn route(shared: Arc<Shared>, mut tcp: TcpStream) {
    let mut first = [0u8; 1];
    let peeked = tokio::time::timeout(HANDSHAKE_TIMEOUT, tcp.peek(&mut first)).await;
    if !matches!(peeked, Ok(Ok(1))) {
        return shared.refuse("nothing said");
    }
    if first[0] != wire::PREAMBLE {
        match to_schedulers(&shared, tcp) {
            Ok(tcp) => accept_one(shared, tcp).await,
            Err(e) => shared.refuse(&format!("socket: {e}")),
        }
        return;
    }
    let taken = tcp
        .read_exact(&mut first)
        .await
        .and_then(|_| tcp.into_std());
    match taken {
        Ok(tcp) => drop(
            shared
                .bulk_io
                .clone()
                .spawn(super::bulk::accept(shared, tcp)),
        ),
        Err(e) => shared.refuse(&format!("socket: {e}")),
    }
}

async fn accept_one(shared: Arc<Shared>, tcp: TcpStream) {
    let admitted = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        let mut stream = tls_accept(&shared, tcp).await?;
        let hello = read_single(&mut stream).await?;
        let (name, creation) = match wire::decode(&hello).map_err(|e| e.to_string())?.0 {
            Head::Hello {
                node,
                creation,
                version,
            } if version == wire::VERSION => (Arc::<str>::from(node), creation),
            Head::Hello { version, .. } => {
                return Err(format!("protocol version {version}, not {}", wire::VERSION));
            }
            other => return Err(format!("expected a hello, got {other:?}")),
        };
        if crate::check_node_name(&name).is_err() || name == shared.name {
            return Err(format!("a peer calling itself {name:?}"));
        }
        let decision = admit(&shared, &name, creation);
        let answer = match &decision {
            Ok(_) => Head::Welcome {
                creation: shared.creation,
            },
            Err(why) => Head::Refused { why },
        };
        write_single(&mut stream, &answer).await?;
        Ok(decision.ok().map(|out| (name, out, stream, creation)))
    })
    .await;
    match admitted {
        Ok(Ok(Some((name, out, stream, creation)))) => {
            shared.node_event(NodeEvent::Up(name.to_string()));
            run(shared, name, out, stream, creation, None).await;
        }
        Ok(Ok(None)) => {}
        Ok(Err(why)) => shared.refuse(&why),
        Err(_) => shared.refuse("handshake timed out"),
    }
}

/// Whether a dial from `name` becomes the connection to it: the node with
/// the smaller name wins a simultaneous connect. A peer that dials while we
/// are connected to it is either a new incarnation (it restarted: the new
/// connection replaces the old) or the same one, whose dial crossed ours
/// after it took ours over (refused: the connection both ends already use
/// stays; a peer that really lost it redials once our end sees it go).
fn admit(shared: &Shared, name: &Arc<str>, creation: u32) -> Result<Arc<Outbound>, &'static str> {
    let mut peers = shared.peers.write();
    let peer = peers.entry(name.clone()).or_insert(Peer {
        addr: None,
        state: PeerState::Down,
        retry_at: None,
    });
    let out = match &peer.state {
        PeerState::Dialing(_) if *shared.name < **name => return Err(SIMULTANEOUS),
        // Our dial loses: the frames queued for it go on this connection.
        PeerState::Dialing(out) => out.clone(),
        PeerState::Up {
            creation: known, ..
        } if *known == creation => {
            return Err(ALREADY_CONNECTED);
        }
        PeerState::Up { out, .. } => {
            out.close();
            shared.new_outbound()
        }
        PeerState::Down => shared.new_outbound(),
    };
    peer.state = PeerState::Up {
        out: out.clone(),
        creation,
    };
    Ok(out)
}

/// Runs a connection until it breaks, then reports it lost.
async fn run(
    shared: Arc<Shared>,
    name: Arc<str>,
    out: Arc<Outbound>,
    stream: TlsStream<TcpStream>,
    creation: u32,
    dialled: Option<std::net::SocketAddr>,
) {
    // What this node holds of names and groups, for the peer to catch up.
    if let Some(sync) = shared.sync_frame() {
        let _ = out.push(wire::CONTROL_LANE, sync);
    }
    let (reader, writer) = tokio::io::split(stream);
    out.attach(writer);
    // The dialler of the main connection dials its bulk one too.
    if let Some(addr) = dialled {
        super::bulk::dial(&shared, name.clone(), out.clone(), addr, creation);
    }
    // The reader runs on the node's schedulers (see `to_schedulers`).
    let reading = shared.node.handle().spawn({
        let (shared, name, out) = (shared.clone(), name.clone(), out.clone());
        async move { read_loop(&shared, &name, &out, creation, reader).await }
    });
    let stop_reading = reading.abort_handle();
    let why = tokio::select! {
        why = reading => why.unwrap_or_else(|e| format!("reader: {e}")),
        why = write_loop(&out, Some(shared.config.tick)) => why,
    };
    stop_reading.abort();
    let was_up = {
        let mut peers = shared.peers.write();
        match peers.get_mut(&name) {
            Some(peer) if matches!(&peer.state, PeerState::Up { out: o, .. } if Arc::ptr_eq(o, &out)) =>
            {
                peer.state = PeerState::Down;
                true
            }
            _ => false,
        }
    };
    out.close();
    tracing::info!(target: "owl::dist", node = %shared.name, peer = %name, why, "connection ended");
    lost(&shared, &name, out.generation);
    if was_up {
        shared.registry.lock().drop_node(&name);
        shared.node_event(NodeEvent::Down(name.to_string()));
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    shared: &Arc<Shared>,
    name: &Arc<str>,
    out: &Arc<Outbound>,
    creation: u32,
    reader: R,
) -> String {
    let mut reader = BufReader::with_capacity(CHUNK + CHUNK_HEADER, reader);
    let dead_after = shared.config.dead_after;
    let mut partial = Partial::new(shared.config.max_message, shared.frame_buffers.clone());
    let mut header = [0u8; CHUNK_HEADER];
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut since_yield = 0;
    loop {
        match tokio::time::timeout(dead_after, reader.read_exact(&mut header)).await {
            Err(_) => return format!("no word from it in {dead_after:?}"),
            Ok(Err(e)) => return format!("read: {e}"),
            Ok(Ok(_)) => {}
        }
        let (len, lane, place) = match wire::read_chunk_header(&header) {
            Ok(h) => h,
            Err(e) => return refuse(shared, e),
        };
        chunk.resize(len, 0);
        match tokio::time::timeout(dead_after, reader.read_exact(&mut chunk)).await {
            Err(_) => return format!("no word from it in {dead_after:?}"),
            Ok(Err(e)) => return format!("read: {e}"),
            Ok(Ok(_)) => {}
        }
        // This task runs on the node's schedulers: a stream of big frames
        // must not keep the processes there waiting for more than one
        // chunk's decryption (tokio's own budget allows a hundred reads).
        since_yield += len;
        if since_yield >= YIELD_EVERY {
            since_yield = 0;
            tokio::task::yield_now().await;
        }
        let deliver = |piece: Piece<'_>| dispatch::deliver(shared, name, out, creation, piece);
        let handled = match partial.add(lane, place, &chunk) {
            Err(e) => Err(e),
            Ok(Assembled::NotYet) => Ok(()),
            // An empty frame is a marker: a bulk frame's place.
            Ok(Assembled::Single) if chunk.is_empty() => {
                out.arrivals.take_main(lane, Main::Marker, deliver)
            }
            Ok(Assembled::Single) => {
                out.heard();
                let piece = Main::Frame(Piece::Borrowed(&chunk));
                out.arrivals.take_main(lane, piece, deliver)
            }
            Ok(Assembled::Whole(frame)) => {
                out.heard();
                let piece = Main::Frame(Piece::Shared(&frame));
                out.arrivals.take_main(lane, piece, deliver)
            }
        };
        if let Err(e) = handled {
            return refuse(shared, e);
        }
    }
}

/// How many bytes the reader takes in before it lets other tasks of its
/// scheduler run: one full chunk. Measured next to 10 MB messages (`owl
/// bench dist`, three runs each): a ping's p99 was 5.8–7.6 ms yielding
/// every 256 KiB, 1.9–3.4 ms every 64 KiB; 16 KiB chunks did no better.
const YIELD_EVERY: usize = CHUNK;

#[cfg(test)]
mod tests {
    //! A peer that holds the secret but sends malformed frames: the node
    //! closes that connection, counts it, and buffers nothing past its
    //! bounds.

    use std::time::Instant;

    use owl_runtime::Runtime;
    use owl_runtime::supervisor::{Strategy, Supervisor, SupervisorSpec};

    use tokio::io::AsyncWriteExt;

    use super::super::wire::{Place, put_chunk_header};
    use super::super::{Dist, DistConfig};
    use super::*;
    use crate::ClusterSecret;

    const SECRET: &str = "a secret the hostile peer holds too";

    fn node() -> (Runtime, Dist) {
        let rt = Runtime::new(Default::default()).unwrap();
        let config = DistConfig::new(
            "b",
            "127.0.0.1:0".parse().unwrap(),
            ClusterSecret::new(SECRET).unwrap(),
        )
        .max_message(1 << 20);
        let dist = Dist::new(&rt.node(), config).unwrap();
        let spec = SupervisorSpec::new(Strategy::OneForOne).child(dist.child_spec());
        std::mem::forget(rt.block_on(Supervisor::start(&rt.node(), spec)).unwrap());
        (rt, dist)
    }

    /// Connects as node "mallory" with the right secret and sends `junk`
    /// after a proper handshake; returns once the node closed the
    /// connection.
    async fn send_after_handshake(dist: &Dist, junk: Vec<u8>) {
        let shared = &dist.shared;
        let (mut stream, head) = handshake_as(shared, dist.local_addr()).await;
        assert!(matches!(head, Head::Welcome { .. }), "{head:?}");
        let _ = stream.write_all(&junk).await;
        let _ = stream.flush().await;
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut rest)).await;
    }

    async fn handshake_as(
        shared: &Shared,
        addr: std::net::SocketAddr,
    ) -> (TlsStream<TcpStream>, Head<'static>) {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut stream = tls_dial(shared, tcp).await.unwrap();
        let hello = Head::Hello {
            node: "mallory",
            creation: 1,
            version: wire::VERSION,
        };
        write_single(&mut stream, &hello).await.unwrap();
        let answer = read_single(&mut stream).await.unwrap();
        let head = match wire::decode(&answer).unwrap().0 {
            Head::Welcome { creation } => Head::Welcome { creation },
            other => panic!("{other:?}"),
        };
        (stream, head)
    }

    /// The first chunk of a frame of `total` bytes on `lane`.
    fn first_chunk(lane: u64, total: usize) -> Vec<u8> {
        let mut c = Vec::new();
        put_chunk_header(&mut c, CHUNK, lane, Place::First);
        c.extend((total as u32).to_le_bytes());
        c.extend(std::iter::repeat_n(7u8, CHUNK - wire::FIRST_PREFIX));
        c
    }

    #[test]
    fn malformed_frames_from_a_peer_with_the_secret_close_only_its_connection() {
        let (rt, dist) = node();
        let cases: Vec<Vec<u8>> = vec![
            // A chunk that claims more than a chunk may hold.
            {
                let mut c = Vec::new();
                put_chunk_header(&mut c, CHUNK + 1, 5, Place::Last);
                c
            },
            // A bad flag.
            {
                let mut c = Vec::new();
                put_chunk_header(&mut c, 1, 5, Place::Last);
                *c.last_mut().unwrap() = 9;
                c.push(0);
                c
            },
            // A whole frame that does not decode.
            wire::single_chunk(&vec![255, 255, 1, 2, 3].into()),
            // A handshake frame on a live connection.
            wire::single_chunk(&wire::encode::<()>(&Head::Welcome { creation: 1 }, None).unwrap()),
            // A frame announced past the message limit.
            first_chunk(5, (1 << 20) + 1),
            // Frames within the limit each, announced on many lanes at
            // once: refused before their memory is taken.
            (0..64u64)
                .flat_map(|lane| first_chunk(lane * 2 + 1, 1 << 20))
                .collect(),
            // A frame's middle with no start.
            {
                let mut c = Vec::new();
                put_chunk_header(&mut c, 10, 5, Place::Middle);
                c.extend([0; 10]);
                c
            },
            // A second start on a lane whose frame has not ended.
            [first_chunk(5, 3 * CHUNK), first_chunk(5, 3 * CHUNK)].concat(),
            // A frame longer than it announced.
            {
                let mut c = first_chunk(5, CHUNK + 10);
                put_chunk_header(&mut c, 100, 5, Place::Last);
                c.extend([0; 100]);
                c
            },
        ];
        for junk in cases {
            let before = dist.stats().refused;
            rt.block_on(send_after_handshake(&dist, junk));
            let deadline = Instant::now() + Duration::from_secs(20);
            while dist.stats().refused == before {
                assert!(Instant::now() < deadline, "the junk was not refused");
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        // The node still takes a well-behaved peer.
        let (_, head) = rt.block_on(handshake_as(&dist.shared, dist.local_addr()));
        assert!(matches!(head, Head::Welcome { .. }));
    }
}
