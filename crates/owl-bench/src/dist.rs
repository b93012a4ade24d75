//! `owl bench dist`: two nodes on loopback, the second a child OS process
//! (`owl bench dist-peer`), measured as ../shared/bench-beam/dist.escript
//! measures Distributed Erlang: ping-pong, streaming, ping-pong while
//! streaming and while 10 MB messages flow, and how long 10,000 remote
//! monitors take to fire `noconnection` after `kill -9` and `SIGSTOP`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use owl_cluster::ClusterSecret;
use owl_cluster::dist::{Bytes, Dest, Dist, DistConfig, DistError, NodePid, RemoteDown};
use owl_runtime::supervisor::{Strategy, Supervisor, SupervisorRef, SupervisorSpec};
use owl_runtime::{ExitReason, Node};
use serde::{Deserialize, Serialize};

use super::Report;

const SECRET: &str = "owl bench dist: a throwaway secret";

/// The size of the big messages, and how many are sent, as in dist.escript.
const BLOB: usize = 10 << 20;
const BLOBS: u32 = 20;

/// What may wait for a peer (`DistConfig::max_queued`'s default).
const QUEUE_LIMIT: usize = 64 << 20;

#[derive(Serialize, Deserialize)]
struct BPing {
    n: u32,
    reply_to: NodePid,
}

#[derive(Serialize, Deserialize)]
struct BPong(u32);

#[derive(Serialize, Deserialize)]
struct Item(u32);

#[derive(Serialize, Deserialize)]
struct Blob(Bytes);

#[derive(Serialize, Deserialize)]
struct SinkDone;

/// Asks the peer to start processes and report them.
#[derive(Clone, Copy, Serialize, Deserialize)]
enum Start {
    /// `count` sinks that each take `each` messages, then send `SinkDone`.
    Sinks { count: u32, each: u32 },
    /// One sink of `each` blobs.
    BlobSink { each: u32 },
    /// `count` processes that wait forever.
    Holders { count: u32 },
}

#[derive(Serialize, Deserialize)]
struct StartRequest {
    what: Start,
    reply_to: NodePid,
}

#[derive(Serialize, Deserialize)]
struct Started(Vec<NodePid>);

fn config(name: &str, listen: SocketAddr) -> DistConfig {
    DistConfig::new(
        name,
        listen,
        ClusterSecret::new(SECRET).expect("long enough"),
    )
    .message::<BPing>("bench.ping")
    .message::<BPong>("bench.pong")
    .message::<Item>("bench.item")
    .message::<Blob>("bench.blob")
    .message::<SinkDone>("bench.sink_done")
    .message::<StartRequest>("bench.start")
    .message::<Started>("bench.started")
}

async fn start_dist(
    node: &Node,
    name: &str,
    listen: SocketAddr,
) -> Result<(Dist, SupervisorRef), String> {
    let dist = Dist::new(node, config(name, listen)).map_err(|e| e.to_string())?;
    let spec = SupervisorSpec::new(Strategy::OneForOne).child(dist.child_spec());
    let root = Supervisor::start(node, spec)
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok((dist, root))
}

/// The peer node: an echo process and a starter of sinks and holders.
pub(crate) async fn peer(node: &Node, listen: SocketAddr) -> Result<(), String> {
    let (dist, _root) = start_dist(node, "b", listen).await?;
    println!("listening {}", dist.local_addr());
    let echo_dist = dist.clone();
    node.spawn(move |mut p| async move {
        p.register("echo").unwrap();
        loop {
            let ping: BPing = p.recv().await;
            let _ = echo_dist.send(&ping.reply_to, BPong(ping.n));
        }
    });
    let starter = node.spawn(move |mut p| async move {
        p.register("bench").unwrap();
        loop {
            let StartRequest { what, reply_to } = p.recv().await;
            let mut pids = Vec::new();
            let sink = |each: u32, blobs: bool| {
                let dist = dist.clone();
                let reply_to = reply_to.clone();
                p.spawn(move |mut s| async move {
                    for _ in 0..each {
                        if blobs {
                            let _: Blob = s.recv().await;
                        } else {
                            let _: Item = s.recv().await;
                        }
                    }
                    let _ = dist.send(&reply_to, SinkDone);
                })
            };
            match what {
                Start::Sinks { count, each } => {
                    pids.extend((0..count).map(|_| sink(each, false)));
                }
                Start::BlobSink { each } => pids.push(sink(each, true)),
                Start::Holders { count } => {
                    for _ in 0..count {
                        pids.push(p.spawn(|mut h| async move {
                            let _: Item = h.recv().await;
                        }));
                    }
                }
            }
            let pids = pids.iter().map(|pid| dist.pid_of(pid)).collect();
            let _ = dist.send(&reply_to, Started(pids));
        }
    });
    starter.wait_exit().await;
    Ok(())
}

/// The peer as a child process of this one.
struct PeerProcess(std::process::Child);

impl PeerProcess {
    fn start() -> Result<(PeerProcess, SocketAddr), String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = std::process::Command::new(exe)
            .args(["bench", "dist-peer", "--listen", "127.0.0.1:0"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the peer node: {e}"))?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let addr = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("the peer said {line:?}"))?;
        Ok((PeerProcess(child), addr))
    }

    fn signal(&self, signal: &str) {
        let _ = std::process::Command::new("kill")
            .args([signal, &self.0.id().to_string()])
            .status();
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        self.signal("-CONT");
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Resident memory after handing freed heap back to the system, so that
/// what is left is what is live (the frames and commands a monitor took
/// on its way are gone by then).
fn live_rss() -> u64 {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free memory of glibc's heap; it
    // touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
    super::rss_bytes()
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).round() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1e6
}

/// Runs in a process of node a: everything, in the escript's order.
pub(crate) async fn run(
    node: &Node,
    pings: u32,
    senders: u32,
    each: u32,
    monitors: u32,
) -> Result<Report, String> {
    let (peer, addr) = PeerProcess::start()?;
    let (dist, _root) = start_dist(node, "a", "127.0.0.1:0".parse().unwrap()).await?;
    dist.connect("b", addr);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let d = dist.clone();
    node.spawn(move |mut p| async move {
        let result = measure(&d, &mut p, pings, senders, each, monitors, &peer).await;
        let _ = tx.send(result);
    });
    rx.await.map_err(|_| "the bench process died".to_string())?
}

async fn ping_pong(
    dist: &Dist,
    p: &mut owl_runtime::Process,
    echo: &Dest,
    n: u32,
) -> Vec<Duration> {
    let me = dist.pid_of(p.pid());
    let mut took = Vec::with_capacity(n as usize);
    for i in 0..n {
        let start = Instant::now();
        while dist
            .send(
                echo,
                BPing {
                    n: i,
                    reply_to: me.clone(),
                },
            )
            .is_err()
        {
            p.sleep(Duration::from_millis(1)).await;
        }
        let _: BPong = p.recv().await;
        took.push(start.elapsed());
    }
    took.sort();
    took
}

async fn start_on_peer(dist: &Dist, p: &mut owl_runtime::Process, what: Start) -> Vec<NodePid> {
    let reply_to = dist.pid_of(p.pid());
    while dist
        .send(
            Dest::named("bench", "b"),
            StartRequest {
                what,
                reply_to: reply_to.clone(),
            },
        )
        .is_err()
    {
        p.sleep(Duration::from_millis(10)).await;
    }
    let Started(pids) = p.recv().await;
    pids
}

/// Sends, retrying while the peer's queue is full (back pressure).
async fn send_paced<M: Serialize + Send + 'static>(
    dist: &Dist,
    to: &Dest,
    mut make: impl FnMut() -> M,
    pause: &owl_runtime::Process,
) {
    loop {
        match dist.send(to, make()) {
            Ok(()) => return,
            Err(DistError::Busy(_) | DistError::NoConnection(_)) => {
                pause.sleep(Duration::from_micros(200)).await
            }
            Err(e) => panic!("{e}"),
        }
    }
}

async fn measure(
    dist: &Dist,
    p: &mut owl_runtime::Process,
    pings: u32,
    senders: u32,
    each: u32,
    monitors: u32,
    peer: &PeerProcess,
) -> Result<Report, String> {
    // Remote monitors first, while this node's heap is fresh (what each
    // costs this node, as the BEAM's figure is what each costs the
    // monitoring process); they stay for the kill -9 at the end.
    let holders = start_on_peer(dist, p, Start::Holders { count: monitors }).await;
    let before = live_rss();
    for h in &holders {
        dist.monitor(p, h);
    }
    while dist.stats().watching < monitors as u64 {
        p.sleep(Duration::from_millis(5)).await;
    }
    let rss_per_monitor = live_rss().saturating_sub(before) as f64 / monitors as f64;
    let monitor_bytes = dist.stats().watch_table_bytes as f64 / monitors as f64;
    let echo = Dest::named("echo", "b");
    let _ = ping_pong(dist, p, &echo, 10_000).await;
    let t = Instant::now();
    let idle = ping_pong(dist, p, &echo, pings).await;
    let rate = pings as f64 / t.elapsed().as_secs_f64();

    // Streaming: `senders` processes here, one sink each there.
    let sinks = start_on_peer(
        dist,
        p,
        Start::Sinks {
            count: senders,
            each,
        },
    )
    .await;
    let t = Instant::now();
    for sink in sinks {
        let dist = dist.clone();
        p.spawn(move |s| async move {
            let to = Dest::from(sink);
            for i in 0..each {
                send_paced(&dist, &to, || Item(i), &s).await;
            }
        });
    }
    let (lat_tx, lat_rx) = tokio::sync::oneshot::channel();
    let d = dist.clone();
    let e = echo.clone();
    p.spawn(move |mut q| async move {
        let _ = lat_tx.send(ping_pong(&d, &mut q, &e, 2_000).await);
    });
    for _ in 0..senders {
        let _: SinkDone = p.recv().await;
    }
    let stream_rate = (senders * each) as f64 / t.elapsed().as_secs_f64();
    let under_stream = lat_rx.await.unwrap_or_default();

    // 10 MB messages on the same pair while pinging.
    let blob_sink = start_on_peer(dist, p, Start::BlobSink { each: BLOBS }).await;
    // Built once, before the pings start, and shared by every send, as
    // dist.escript's binary.
    let blob = Bytes::from(vec![b'x'; BLOB]);
    let d = dist.clone();
    p.spawn(move |s| async move {
        let to = Dest::from(&blob_sink[0]);
        for _ in 0..BLOBS {
            // A well-behaved sender of big messages: it builds the next one
            // only when the queue has room for it, rather than building it
            // again at every refusal.
            while d.queued_bytes("b") + BLOB > QUEUE_LIMIT {
                s.sleep(Duration::from_millis(1)).await;
            }
            send_paced(&d, &to, || Blob(blob.clone()), &s).await;
        }
    });
    let blob_start = Instant::now();
    let under_10mb = ping_pong(dist, p, &echo, 500).await;
    let _: SinkDone = p.recv().await;
    let blob_mb_per_s = (BLOBS as usize * BLOB) as f64 / 1e6 / blob_start.elapsed().as_secs_f64();

    let t = Instant::now();
    peer.signal("-KILL");
    let mut down = 0;
    for _ in 0..monitors {
        let d: RemoteDown = p.recv().await;
        down += (d.reason == ExitReason::NoConnection) as u32;
    }
    let kill9_ms = t.elapsed().as_secs_f64() * 1e3;

    // SIGSTOP of a fresh peer.
    let (stopped, addr) = PeerProcess::start()?;
    dist.connect("b", addr);
    let holders = start_on_peer(dist, p, Start::Holders { count: monitors }).await;
    for h in &holders {
        dist.monitor(p, h);
    }
    while dist.stats().watching < monitors as u64 {
        p.sleep(Duration::from_millis(5)).await;
    }
    let t = Instant::now();
    stopped.signal("-STOP");
    for _ in 0..monitors {
        let _: RemoteDown = p.recv().await;
    }
    let sigstop_ms = t.elapsed().as_secs_f64() * 1e3;
    drop(stopped);

    Ok(Report::new("dist", "owl")
        .with("pingpong_rtt_per_s", rate)
        .with("pingpong_p50_us", percentile(&idle, 0.5))
        .with("pingpong_p99_us", percentile(&idle, 0.99))
        .with("stream_msgs_per_s", stream_rate)
        .with("rtt_under_stream_p50_us", percentile(&under_stream, 0.5))
        .with("rtt_under_stream_p99_us", percentile(&under_stream, 0.99))
        .with("rtt_under_10mb_p50_us", percentile(&under_10mb, 0.5))
        .with("rtt_under_10mb_p99_us", percentile(&under_10mb, 0.99))
        .with("blob_mb_per_s", blob_mb_per_s)
        .with("kill9_noconnection_ms", kill9_ms)
        .with("kill9_down", down as f64)
        .with("monitor_bytes", monitor_bytes)
        .with("rss_per_monitor_burst", rss_per_monitor)
        .with("sigstop_noconnection_ms", sigstop_ms))
}
