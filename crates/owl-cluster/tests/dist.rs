//! Distribution between real nodes on loopback: each node a runtime of its
//! own with a real TLS listener; some tests put a TCP relay between two
//! nodes to read the bytes or to cut the wire, and some run the other node
//! as an OS process (the ping_pong example) to kill or freeze it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use owl_cluster::ClusterSecret;
use owl_cluster::dist::{
    Bytes, Dest, Dist, DistConfig, GlobalError, NameConflict, NodePid, RemoteDown, RemoteExit,
    SpawnError,
};
use owl_runtime::prelude::*;
use owl_runtime::supervisor::{Strategy, Supervisor, SupervisorRef, SupervisorSpec};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

const SECRET: &str = "a secret shared by every test node";
const LONG: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Numbered(u64);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Text(String);

/// A numbered message with a byte string of any size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Blob {
    n: u64,
    data: Bytes,
}

#[derive(Debug, Serialize, Deserialize)]
struct Ping {
    n: u32,
    reply_to: NodePid,
}

#[derive(Debug, Serialize, Deserialize)]
struct Pong(u32);

#[derive(Default)]
struct Counter(u64);
impl Server for Counter {}

#[derive(Debug, Serialize, Deserialize)]
struct Add(u64);
impl Handle<Add> for Counter {
    type Reply = u64;
    async fn handle(&mut self, Add(n): Add, _: &mut Ctx<'_>) -> u64 {
        self.0 += n;
        self.0
    }
}

/// Answers a blob with its bytes reversed.
impl Handle<Blob> for Counter {
    type Reply = Blob;
    async fn handle(&mut self, Blob { n, data }: Blob, _: &mut Ctx<'_>) -> Blob {
        let mut reversed = data.to_vec();
        reversed.reverse();
        Blob {
            n,
            data: reversed.into(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Nap(u64);
impl Handle<Nap> for Counter {
    type Reply = ();
    async fn handle(&mut self, Nap(ms): Nap, _: &mut Ctx<'_>) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

fn config(name: &str, secret: &str) -> DistConfig {
    DistConfig::new(
        name,
        "127.0.0.1:0".parse().unwrap(),
        ClusterSecret::new(secret).unwrap(),
    )
    .message::<Numbered>("numbered")
    .message::<Text>("text")
    .message::<Blob>("blob")
    .message::<Ping>("ping")
    .message::<Pong>("pong")
    .serve::<Counter, Add, _>("counter.add")
    .serve::<Counter, Nap, _>("counter.nap")
    .serve::<Counter, Blob, _>("counter.reverse")
    .message::<NameConflict>("name conflict")
    .spawner::<String>("greeter", start_greeter)
}

/// A start function other nodes may call by name: a process that answers
/// each ping with the ping's number plus the length of its greeting.
fn start_greeter(node: &Node, greeting: String) -> Pid {
    node.spawn(move |mut p| async move {
        let ping: Ping = p.recv().await;
        p.register(&format!("greeted {}", ping.n + greeting.len() as u32))
            .unwrap();
        let _never: Text = p.recv().await;
    })
}

/// One node: its runtime, its distribution, and the tree that runs it.
struct TestNode {
    rt: Runtime,
    dist: Dist,
    _root: SupervisorRef,
}

impl TestNode {
    fn start(name: &str) -> TestNode {
        TestNode::with_secret(name, SECRET)
    }

    fn with_secret(name: &str, secret: &str) -> TestNode {
        let rt = Runtime::new(Config::default()).unwrap();
        let dist = Dist::new(&rt.node(), config(name, secret)).unwrap();
        let spec = SupervisorSpec::new(Strategy::OneForOne).child(dist.child_spec());
        let root = rt.block_on(Supervisor::start(&rt.node(), spec)).unwrap();
        TestNode {
            rt,
            dist,
            _root: root,
        }
    }

    fn node(&self) -> Node {
        self.rt.node()
    }

    /// Spawns a process that registers `name` and forwards what it
    /// receives of type `M` to the returned channel.
    fn collector<M: Send + 'static>(&self, name: &str) -> std::sync::mpsc::Receiver<M> {
        let (tx, rx) = std::sync::mpsc::channel();
        let (ready, is_ready) = std::sync::mpsc::channel();
        let name = name.to_string();
        self.node().spawn(move |mut p| async move {
            p.register(&name).unwrap();
            ready.send(()).unwrap();
            loop {
                let m: M = p.recv().await;
                if tx.send(m).is_err() {
                    return;
                }
            }
        });
        is_ready.recv_timeout(LONG).unwrap();
        rx
    }
}

/// Waits until `check` holds, polling; fails after 20 s.
fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + LONG;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn connected_pair() -> (TestNode, TestNode) {
    let a = TestNode::start("a");
    let b = TestNode::start("b");
    a.dist.connect("b", b.dist.local_addr());
    wait_for("a and b to connect", || {
        a.dist.is_connected("b") && b.dist.is_connected("a")
    });
    (a, b)
}

#[test]
fn messages_cross_by_name_and_by_pid_in_the_order_sent() {
    let (a, b) = connected_pair();
    let inbox = b.collector::<Numbered>("sink");
    let sink = Dest::named("sink", "b");
    for i in 0..10_000 {
        a.dist.send(&sink, Numbered(i)).unwrap();
    }
    let got: Vec<u64> = (0..10_000)
        .map(|_| inbox.recv_timeout(LONG).unwrap().0)
        .collect();
    assert_eq!(got, (0..10_000).collect::<Vec<_>>(), "in the order sent");

    // A pid carried in a message is answered across, by pid.
    let pongs = a.collector::<Pong>("pinger");
    let pinger = a.dist.pid_of(&a.node().whereis("pinger").unwrap());
    assert_eq!(pinger.node(), "a");
    let b_dist = b.dist.clone();
    b.node().spawn(move |mut p| async move {
        p.register("ponger").unwrap();
        loop {
            let ping: Ping = p.recv().await;
            b_dist.send(&ping.reply_to, Pong(ping.n)).unwrap();
        }
    });
    wait_for("ponger", || b.node().whereis("ponger").is_some());
    for n in 0..100 {
        a.dist
            .send(
                Dest::named("ponger", "b"),
                Ping {
                    n,
                    reply_to: pinger.clone(),
                },
            )
            .unwrap();
        assert_eq!(pongs.recv_timeout(LONG).unwrap().0, n);
    }
    assert_eq!(b.dist.stats().undeliverable, 0);
    // Each pong answers a ping: its sender wrote it (a liveness tick from
    // the connection's writer may take one pong's turn now and then).
    let direct = b.dist.stats().direct_writes;
    assert!(
        direct >= 95,
        "{direct} of 100 pongs written by their sender"
    );
}

/// Message `n`, with `size` bytes that differ from message to message.
fn blob(n: u64, size: usize) -> Blob {
    let data: Vec<u8> = (0..size).map(|i| (i as u64 * 31 + n) as u8).collect();
    Blob {
        n,
        data: data.into(),
    }
}

#[test]
fn messages_of_every_size_arrive_whole_and_in_the_order_sent() {
    let (a, b) = connected_pair();
    let inbox = b.collector::<Blob>("blobs");
    let to = Dest::named("blobs", "b");
    // Around the sizes where a frame splits into chunks (64 KiB) and where
    // a byte string is shared rather than copied (32 KiB), then large.
    let sizes = [
        0,
        1,
        32 * 1024 - 1,
        32 * 1024,
        64 * 1024 - 40,
        64 * 1024,
        64 * 1024 + 1,
        200_000,
        3 << 20,
        7,
    ];
    let blobs: Vec<Blob> = sizes
        .iter()
        .enumerate()
        .map(|(n, &size)| blob(n as u64, size))
        .collect();
    // Twice: the second round's large frames take the buffers the first
    // round's messages gave back once they were dropped.
    for round in 0..2 {
        for blob in &blobs {
            a.dist.send(&to, blob.clone()).unwrap();
        }
        for blob in &blobs {
            let got = inbox.recv_timeout(LONG).unwrap();
            assert_eq!(got.n, blob.n, "round {round}: in the order sent");
            assert!(
                got.data == blob.data,
                "round {round}: message {} whole",
                blob.n
            );
        }
    }
    assert_eq!(b.dist.stats().undeliverable, 0);
    assert_eq!(b.dist.stats().refused, 0);
}

#[test]
fn large_messages_take_the_bulk_connection_and_keep_their_place_among_small_ones() {
    let (a, b) = connected_pair();
    wait_for("the bulk connections", || {
        a.dist.stats().bulk_connections == 1 && b.dist.stats().bulk_connections == 1
    });
    let inbox = b.collector::<Blob>("mixed");
    let to = Dest::named("mixed", "b");
    // Every third message is over the bulk threshold (256 KiB); the small
    // ones between them must not overtake them.
    let sent: Vec<Blob> = (0..40u64)
        .map(|n| {
            let size = if n % 3 == 1 { 300 * 1024 } else { 10 };
            blob(n, size + n as usize)
        })
        .collect();
    let before = a.dist.stats().bulk_frames;
    for blob in &sent {
        a.dist.send(&to, blob.clone()).unwrap();
    }
    for blob in &sent {
        let got = inbox.recv_timeout(LONG).unwrap();
        assert_eq!(got.n, blob.n, "in the order sent");
        assert!(got.data == blob.data, "message {} whole", blob.n);
    }
    assert_eq!(
        a.dist.stats().bulk_frames - before,
        13,
        "the large ones took the bulk connection"
    );
    assert_eq!(b.dist.stats().undeliverable, 0);
}

#[test]
fn an_unregistered_type_or_an_unknown_node_is_refused_at_the_send() {
    let (a, _b) = connected_pair();
    #[derive(Serialize)]
    struct Unregistered;
    let err = a
        .dist
        .send(Dest::named("sink", "b"), Unregistered)
        .unwrap_err();
    assert!(err.to_string().contains("Unregistered"), "{err}");
    let err = a
        .dist
        .send(Dest::named("sink", "nowhere"), Numbered(1))
        .unwrap_err();
    assert_eq!(err.to_string(), "no connection to node nowhere");
}

/// Starts a `Counter` registered as "counter" on `node`, named `name`.
fn start_counter(node: &TestNode, name: &str) -> Dest {
    let local = node.node();
    node.rt.block_on(async {
        owl_runtime::server::start_named(
            &local,
            "counter",
            Counter::default(),
            SpawnOptions::new(),
        )
        .await
        .unwrap();
    });
    Dest::named("counter", name)
}

#[test]
fn a_call_reaches_a_server_on_another_node_and_fails_the_way_a_local_one_does() {
    let (a, b) = connected_pair();
    let counter = start_counter(&b, "b");
    a.rt.block_on(async {
        let t = Duration::from_secs(5);
        assert_eq!(
            a.dist.call::<Counter, _, _>(&counter, Add(5), t).await,
            Ok(5)
        );
        assert_eq!(
            a.dist.call::<Counter, _, _>(&counter, Add(2), t).await,
            Ok(7)
        );
        let missing = Dest::named("no such server", "b");
        assert_eq!(
            a.dist.call::<Counter, _, _>(&missing, Add(1), t).await,
            Err(CallError::NoProcess)
        );
        let slow = a
            .dist
            .call::<Counter, _, _>(&counter, Nap(5_000), Duration::from_millis(100))
            .await;
        assert_eq!(slow, Err(CallError::Timeout));
    });
}

#[test]
fn a_call_carries_large_requests_and_replies_whole() {
    let (a, b) = connected_pair();
    let counter = start_counter(&b, "b");
    a.rt.block_on(async {
        for (n, size) in [(1, 10), (2, 100_000), (3, 3 << 20)] {
            let sent = blob(n, size);
            let got = a
                .dist
                .call::<Counter, _, _>(&counter, sent.clone(), LONG)
                .await
                .unwrap();
            let mut expected = sent.data.to_vec();
            expected.reverse();
            assert_eq!(got.n, n);
            assert!(*got.data == *expected, "reply {n} whole and reversed");
        }
    });
}

#[test]
fn a_remote_monitor_carries_the_real_reason_and_noproc() {
    let (a, b) = connected_pair();
    let node_b = b.node();
    let victim = node_b.spawn(|mut p| async move {
        p.register("victim").unwrap();
        let Numbered(n) = p.recv().await;
        if n == 13 {
            panic!("13 is unlucky");
        }
    });
    wait_for("victim", || node_b.whereis("victim").is_some());
    let dist = a.dist.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    a.node().spawn(move |mut p| async move {
        let victim = Dest::named("victim", "b");
        let monitor = dist.monitor(&p, &victim);
        let missing = dist.monitor(&p, Dest::named("nobody", "b"));
        // At once: the monitor goes ahead of the message that ends the
        // victim, as signals from one process do on the BEAM.
        dist.send(&victim, Numbered(13)).unwrap();
        for _ in 0..2 {
            let down: RemoteDown = p.recv().await;
            assert!(down.monitor == monitor || down.monitor == missing);
            tx.send(down).unwrap();
        }
    });
    let mut downs: Vec<RemoteDown> = (0..2).map(|_| rx.recv_timeout(LONG).unwrap()).collect();
    downs.sort_by_key(|d| d.monitor);
    assert!(
        matches!(&downs[0].reason, ExitReason::Panic(m) if m.contains("13 is unlucky")),
        "{:?}",
        downs[0]
    );
    assert_eq!(downs[0].pid.as_ref().map(|p| p.id()), Some(victim.id()));
    assert_eq!(downs[1].reason, ExitReason::NoProc);
}

#[test]
fn a_monitor_of_a_name_too_long_to_send_fires_noproc_and_the_node_carries_on() {
    let (a, b) = connected_pair();
    let dist = a.dist.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    a.node().spawn(move |mut p| async move {
        let monitor = dist.monitor(&p, Dest::named(&"x".repeat(70_000), "b"));
        let down: RemoteDown = p.recv().await;
        assert_eq!(down.monitor, monitor);
        tx.send(down.reason).unwrap();
    });
    assert_eq!(rx.recv_timeout(LONG).unwrap(), ExitReason::NoProc);
    // The connection is untouched.
    let inbox = b.collector::<Numbered>("still");
    a.dist.send(Dest::named("still", "b"), Numbered(1)).unwrap();
    assert_eq!(inbox.recv_timeout(LONG).unwrap(), Numbered(1));
}

#[test]
fn a_link_across_nodes_carries_an_exit_both_ways() {
    let (a, b) = connected_pair();
    // b's process crashes: the linked process on a dies with its reason.
    let node_b = b.node();
    node_b.spawn(|mut p| async move {
        p.register("crasher").unwrap();
        let _: Numbered = p.recv().await;
        Err::<(), _>("boom")
    });
    wait_for("crasher", || node_b.whereis("crasher").is_some());
    let dist = a.dist.clone();
    let linked = a.node().spawn(move |mut p| async move {
        let crasher = Dest::named("crasher", "b");
        dist.link(&p, &crasher);
        let _go: Numbered = p.recv().await;
        dist.send(&crasher, Numbered(1)).unwrap();
        let _never: Text = p.recv().await;
    });
    let exit = linked.wait_exit();
    wait_for("the link on b", || b.dist.stats().watched_here == 1);
    linked.send(Numbered(0)).unwrap();
    let reason = a.rt.block_on(exit);
    assert_eq!(reason, ExitReason::error("boom"));
    // The first link is gone on both sides before the second is counted
    // (else its count below could be the first's).
    wait_for("the first link forgotten", || {
        b.dist.stats().watched_here == 0 && a.dist.stats().watching == 0
    });

    // a's process crashes: the linked process on b dies with its reason.
    let survivor = node_b.spawn(|mut p| async move {
        p.register("linked").unwrap();
        let _never: Text = p.recv().await;
    });
    wait_for("linked", || node_b.whereis("linked").is_some());
    let dist = a.dist.clone();
    let linker = a.node().spawn(move |mut p| async move {
        dist.link(&p, Dest::named("linked", "b"));
        let _go: Numbered = p.recv().await;
        Err::<(), _>("the other end")
    });
    // The crash comes only once b's agent holds the link.
    let exit = survivor.wait_exit();
    wait_for("the link on b", || b.dist.stats().watched_here == 1);
    linker.send(Numbered(0)).unwrap();
    let reason = b.rt.block_on(exit);
    assert_eq!(reason, ExitReason::error("the other end"));
    wait_for("both ends forgotten", || {
        b.dist.stats().watched_here == 0 && a.dist.stats().watching == 0
    });
}

#[test]
fn a_process_that_traps_exits_learns_which_remote_process_ended_and_why() {
    let (a, b) = connected_pair();
    // a traps exits and links to b's process, which crashes.
    let crasher = b.node().spawn(|mut p| async move {
        let _: Numbered = p.recv().await;
        Err::<(), _>("boom")
    });
    let crasher_pid = b.dist.pid_of(&crasher);
    let (tx, rx) = std::sync::mpsc::channel();
    let (dist, target) = (a.dist.clone(), crasher_pid.clone());
    let trapping = a.node().spawn(move |mut p| async move {
        p.trap_exit(true);
        dist.link(&p, target.clone());
        let _go: Numbered = p.recv().await;
        dist.send(target, Numbered(1)).unwrap();
        let exit: RemoteExit = p.recv().await;
        tx.send(exit).unwrap();
    });
    wait_for("the link on b", || b.dist.stats().watched_here == 1);
    trapping.send(Numbered(0)).unwrap();
    let exit = rx.recv_timeout(LONG).unwrap();
    assert_eq!(exit.from, Dest::from(crasher_pid));
    assert_eq!(exit.reason, ExitReason::error("boom"));

    // b traps exits; a's process that linked to it crashes.
    let (tx, rx) = std::sync::mpsc::channel();
    b.node().spawn(move |mut p| async move {
        p.trap_exit(true);
        p.register("trapper").unwrap();
        let exit: RemoteExit = p.recv().await;
        tx.send(exit).unwrap();
    });
    wait_for("trapper", || b.node().whereis("trapper").is_some());
    let dist = a.dist.clone();
    let linker = a.node().spawn(move |mut p| async move {
        dist.link(&p, Dest::named("trapper", "b"));
        let _go: Numbered = p.recv().await;
        Err::<(), _>("the other end")
    });
    wait_for("the link on b", || b.dist.stats().watched_here == 1);
    linker.send(Numbered(0)).unwrap();
    let exit = rx.recv_timeout(LONG).unwrap();
    assert_eq!(exit.from, Dest::from(a.dist.pid_of(&linker)));
    assert_eq!(exit.reason, ExitReason::error("the other end"));
}

/// Code written for any node works when the target is on this one.
#[test]
fn a_monitor_or_link_through_the_distribution_to_this_node_works_as_a_local_one() {
    let a = TestNode::start("a");
    let crasher = |a: &TestNode| {
        a.node().spawn(|mut p| async move {
            let _: Numbered = p.recv().await;
            Err::<(), _>("boom")
        })
    };
    // A monitor: the real reason, the target's pid.
    let target = crasher(&a);
    let target_pid = a.dist.pid_of(&target);
    let (tx, rx) = std::sync::mpsc::channel();
    let (dist, to) = (a.dist.clone(), target_pid.clone());
    a.node().spawn(move |mut p| async move {
        dist.monitor(&p, to.clone());
        dist.send(to, Numbered(1)).unwrap();
        let down: RemoteDown = p.recv().await;
        let missing = dist.monitor(&p, Dest::named("nobody", "a"));
        let noproc: RemoteDown = p.recv().await;
        tx.send((down, noproc, missing)).unwrap();
    });
    let (down, noproc, missing) = rx.recv_timeout(LONG).unwrap();
    assert_eq!(down.reason, ExitReason::error("boom"));
    assert_eq!(down.pid, Some(target_pid));
    assert_eq!(noproc.reason, ExitReason::NoProc);
    assert_eq!(noproc.monitor, missing);

    // A link, seen by a process that traps exits: a RemoteExit.
    let target = crasher(&a);
    let target_pid = a.dist.pid_of(&target);
    let (tx, rx) = std::sync::mpsc::channel();
    let (dist, to) = (a.dist.clone(), target_pid.clone());
    a.node().spawn(move |mut p| async move {
        p.trap_exit(true);
        dist.link(&p, to.clone());
        dist.send(to, Numbered(1)).unwrap();
        let exit: RemoteExit = p.recv().await;
        tx.send(exit).unwrap();
    });
    let exit = rx.recv_timeout(LONG).unwrap();
    assert_eq!(exit.from, Dest::from(target_pid));
    assert_eq!(exit.reason, ExitReason::error("boom"));

    // A link the other way: the linking process crashes, the local target
    // goes down with its reason.
    let target = a.node().spawn(|mut p| async move {
        let _never: Text = p.recv().await;
    });
    let target_exit = target.wait_exit();
    let (dist, to) = (a.dist.clone(), a.dist.pid_of(&target));
    let linker = a.node().spawn(move |mut p| async move {
        dist.link(&p, to);
        let _go: Numbered = p.recv().await;
        Err::<(), _>("the other end")
    });
    linker.send(Numbered(0)).unwrap();
    assert_eq!(
        a.rt.block_on(target_exit),
        ExitReason::error("the other end")
    );
}

/// A TCP relay between two nodes: it records what passes, and can be
/// frozen — the bytes stop, the sockets stay open, as with a pulled cable
/// or a firewall that drops packets.
struct Relay {
    addr: SocketAddr,
    frozen: Arc<AtomicBool>,
    captured: Arc<Mutex<Vec<u8>>>,
}

impl Relay {
    fn to(target: SocketAddr) -> Relay {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let frozen = Arc::new(AtomicBool::new(false));
        let captured = Arc::new(Mutex::new(Vec::new()));
        let (f, c) = (frozen.clone(), captured.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = std::net::TcpStream::connect(target) else {
                    continue;
                };
                for (from, to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let (f, c) = (f.clone(), c.clone());
                    std::thread::spawn(move || pump(from, to, &f, &c));
                }
            }
        });
        Relay {
            addr,
            frozen,
            captured,
        }
    }
}

fn pump(
    mut from: std::net::TcpStream,
    mut to: std::net::TcpStream,
    frozen: &AtomicBool,
    captured: &Mutex<Vec<u8>>,
) {
    use std::io::{Read, Write};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let Ok(n) = from.read(&mut buf) else { return };
        if n == 0 {
            return;
        }
        while frozen.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
        captured.lock().extend_from_slice(&buf[..n]);
        if to.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

fn relayed_pair() -> (TestNode, TestNode, Relay) {
    let a = TestNode::start("a");
    let b = TestNode::start("b");
    let relay = Relay::to(b.dist.local_addr());
    a.dist.connect("b", relay.addr);
    wait_for("a and b to connect", || {
        a.dist.is_connected("b") && b.dist.is_connected("a")
    });
    (a, b, relay)
}

#[test]
fn what_crosses_the_wire_is_encrypted() {
    let (a, b, relay) = relayed_pair();
    let inbox = b.collector::<Text>("inbox");
    let secret_text = "the launch codes are 0xC0FFEE-0xBADF00D";
    a.dist
        .send(Dest::named("inbox", "b"), Text(secret_text.into()))
        .unwrap();
    assert_eq!(inbox.recv_timeout(LONG).unwrap().0, secret_text);
    // A large message takes the bulk connection, through the relay too.
    wait_for("the bulk connections", || {
        a.dist.stats().bulk_connections == 1 && b.dist.stats().bulk_connections == 1
    });
    let blobs = b.collector::<Blob>("blobs");
    let large = Blob {
        n: 1,
        data: secret_text
            .bytes()
            .cycle()
            .take(300 * 1024)
            .collect::<Vec<u8>>()
            .into(),
    };
    a.dist
        .send(Dest::named("blobs", "b"), large.clone())
        .unwrap();
    assert!(blobs.recv_timeout(LONG).unwrap().data == large.data);
    assert_eq!(a.dist.stats().bulk_frames, 1);
    let captured = relay.captured.lock().clone();
    assert!(captured.len() > 100, "the relay saw the traffic");
    let find = |needle: &[u8]| captured.windows(needle.len()).any(|w| w == needle);
    assert!(!find(secret_text.as_bytes()), "the message is not in clear");
    assert!(!find(b"launch codes"));
    assert!(!find(b"inbox"), "nor the name it was sent to");
}

#[test]
fn an_unreachable_node_fires_noconnection_within_two_seconds() {
    let (a, b, relay) = relayed_pair();
    let _inbox = b.collector::<Numbered>("far");
    let dist = a.dist.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    a.node().spawn(move |mut p| async move {
        dist.monitor(&p, Dest::named("far", "b"));
        let down: RemoteDown = p.recv().await;
        tx.send((down, Instant::now())).unwrap();
    });
    let dist = a.dist.clone();
    let linked = a.node().spawn(move |mut p| async move {
        dist.link(&p, Dest::named("far", "b"));
        let _never: Text = p.recv().await;
    });
    let linked_exit = linked.wait_exit();
    wait_for("both watches held on b", || {
        b.dist.stats().watched_here == 2
    });
    let cut = Instant::now();
    relay.frozen.store(true, Ordering::Relaxed);
    let (down, at) = rx.recv_timeout(LONG).unwrap();
    assert_eq!(down.reason, ExitReason::NoConnection);
    let took = at - cut;
    assert!(
        took <= Duration::from_secs(2),
        "noconnection after {took:?}"
    );
    assert_eq!(
        a.rt.block_on(linked_exit),
        ExitReason::NoConnection,
        "a linked process dies with noconnection"
    );
    // b saw a go silent too and dropped what a's processes held there.
    wait_for("b to drop a's watches", || b.dist.stats().watched_here == 0);
    assert!(!a.dist.is_connected("b"));
}

/// More watches than the agent fires in one poll: every one of them still
/// fires, with `noconnection`, and none is left behind.
#[test]
fn losing_a_node_fires_every_one_of_thousands_of_monitors() {
    const WATCHED: usize = 2_500;
    let (a, b, relay) = relayed_pair();
    let targets: Vec<NodePid> = (0..WATCHED).map(|_| b.dist.pid_of(&idle(&b))).collect();
    let dist = a.dist.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    a.node().spawn(move |mut p| async move {
        for t in &targets {
            dist.monitor(&p, t.clone());
        }
        let mut reasons = Vec::new();
        for _ in 0..WATCHED {
            let down: RemoteDown = p.recv().await;
            reasons.push(down.reason);
        }
        tx.send(reasons).unwrap();
    });
    wait_for("every watch held on b", || {
        b.dist.stats().watched_here == WATCHED as u64
    });
    relay.frozen.store(true, Ordering::Relaxed);
    let reasons = rx.recv_timeout(LONG).unwrap();
    assert!(reasons.iter().all(|r| *r == ExitReason::NoConnection));
    wait_for("a to forget its watches", || a.dist.stats().watching == 0);
    wait_for("b to drop the watches it held", || {
        b.dist.stats().watched_here == 0
    });
}

#[test]
fn a_node_with_another_secret_cannot_connect() {
    let b = TestNode::start("b");
    let stranger = TestNode::with_secret("mallory", "not the secret of this cluster");
    let inbox = b.collector::<Numbered>("sink");
    stranger.dist.connect("b", b.dist.local_addr());
    wait_for("b to refuse the stranger", || b.dist.stats().refused >= 1);
    assert!(!b.dist.is_connected("mallory"));
    assert!(!stranger.dist.is_connected("b"));
    // Whatever it queued while dialling never arrives.
    let _ = stranger.dist.send(Dest::named("sink", "b"), Numbered(1));
    wait_for("the stranger's dial to fail", || {
        stranger
            .dist
            .send(Dest::named("sink", "b"), Numbered(2))
            .is_err()
    });
    assert!(inbox.try_recv().is_err());
}

#[test]
fn garbage_on_the_port_is_refused_and_the_node_carries_on() {
    use std::io::Write;
    let (a, b) = connected_pair();
    let inbox = b.collector::<Numbered>("sink");
    for garbage in [
        &b"GET / HTTP/1.1\r\nHost: owl\r\n\r\n"[..],
        &[0x16, 0x03, 0x01, 0xff, 0xff, 0, 0, 0, 0],
        &[0u8; 4096],
        // A bulk connection's first byte, then no TLS.
        &b"B GET / HTTP/1.1\r\n\r\n"[..],
    ] {
        let before = b.dist.stats().refused;
        let mut raw = std::net::TcpStream::connect(b.dist.local_addr()).unwrap();
        let _ = raw.write_all(garbage);
        drop(raw);
        wait_for("the garbage refused", || b.dist.stats().refused > before);
    }
    a.dist.send(Dest::named("sink", "b"), Numbered(42)).unwrap();
    assert_eq!(inbox.recv_timeout(LONG).unwrap(), Numbered(42));
    assert!(a.dist.is_connected("b"), "the real peer is untouched");
}

/// The pong node of the ping_pong example, as an OS process.
struct PongProcess(std::process::Child);

impl PongProcess {
    fn start() -> (PongProcess, SocketAddr) {
        let exe = std::env::current_exe().unwrap();
        let examples = exe.parent().unwrap().parent().unwrap().join("examples");
        let bin = examples.join("ping_pong");
        assert!(
            bin.exists(),
            "{bin:?} is missing: `cargo test` builds the examples first"
        );
        let mut child = std::process::Command::new(bin)
            .args(["pong", "127.0.0.1:0"])
            .env("OWL_SECRET", SECRET)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .unwrap();
        (PongProcess(child), addr)
    }

    fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([signal, &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for PongProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Connects node "ping" to a pong process, monitors its pong server, and
/// returns how long after `stop` the monitor fired, and with what.
fn monitor_then(stop: &str) -> (ExitReason, Duration) {
    let (pong, addr) = PongProcess::start();
    let ping = TestNode::start("ping");
    ping.dist.connect("pong", addr);
    wait_for("the pong node", || ping.dist.is_connected("pong"));
    let dist = ping.dist.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let (answered, is_answered) = std::sync::mpsc::channel();
    ping.node().spawn(move |mut p| async move {
        let me = dist.pid_of(p.pid());
        let server = Dest::named("pong", "pong");
        dist.monitor(&p, &server);
        dist.send(&server, Ping { n: 1, reply_to: me }).unwrap();
        let Pong(1) = p.recv().await else {
            panic!("a wrong pong")
        };
        answered.send(()).unwrap();
        let down: RemoteDown = p.recv().await;
        tx.send((down.reason, Instant::now())).unwrap();
    });
    is_answered.recv_timeout(LONG).unwrap();
    let stopped = Instant::now();
    pong.signal(stop);
    let (reason, at) = rx.recv_timeout(LONG).unwrap();
    if stop == "-STOP" {
        pong.signal("-CONT");
    }
    (reason, at - stopped)
}

#[test]
fn kill_9_of_a_node_fires_noconnection() {
    let (reason, took) = monitor_then("-KILL");
    assert_eq!(reason, ExitReason::NoConnection);
    assert!(took <= Duration::from_secs(2), "after {took:?}");
}

#[test]
fn a_stopped_node_fires_noconnection_within_two_seconds() {
    let (reason, took) = monitor_then("-STOP");
    assert_eq!(reason, ExitReason::NoConnection);
    assert!(took <= Duration::from_secs(2), "after {took:?}");
}

fn connect_all(nodes: &[&TestNode]) {
    for (i, a) in nodes.iter().enumerate() {
        for b in &nodes[i + 1..] {
            a.dist.connect(b.dist.node_name(), b.dist.local_addr());
        }
    }
    wait_for("every pair connected", || {
        nodes
            .iter()
            .all(|n| n.dist.nodes().len() == nodes.len() - 1)
    });
}

/// A process that waits forever (until killed or told to stop).
fn idle(node: &TestNode) -> Pid {
    node.node().spawn(|mut p| async move {
        let _stop: Numbered = p.recv().await;
    })
}

#[test]
fn a_global_name_is_seen_on_every_node_and_goes_with_its_process() {
    let (a, b, c) = (
        TestNode::start("a"),
        TestNode::start("b"),
        TestNode::start("c"),
    );
    connect_all(&[&a, &b, &c]);
    let leader = idle(&b);
    b.dist.register_global("leader", &leader).unwrap();
    let expected = b.dist.pid_of(&leader);
    wait_for("a and c to see the name", || {
        a.dist.whereis_global("leader") == Some(expected.clone())
            && c.dist.whereis_global("leader") == Some(expected.clone())
    });
    assert_eq!(
        c.dist.register_global("leader", &idle(&c)),
        Err(GlobalError::Taken(expected.clone()))
    );
    // A message to the name's holder, found from another node.
    a.dist
        .send(a.dist.whereis_global("leader").unwrap(), Numbered(1))
        .unwrap();
    wait_for("the holder to end", || !leader.is_alive());
    wait_for("the name gone everywhere", || {
        [&a, &b, &c]
            .iter()
            .all(|n| n.dist.whereis_global("leader").is_none())
    });
    c.dist.register_global("leader", &idle(&c)).unwrap();
    wait_for("a to see c's", || {
        a.dist
            .whereis_global("leader")
            .map(|p| p.node().to_string())
            == Some("c".into())
    });
}

#[test]
fn a_name_taken_on_both_sides_of_a_partition_goes_to_the_node_that_sorts_first() {
    let a = TestNode::start("a");
    let b = TestNode::start("b");
    // Apart, each hands out the name.
    let on_a = idle(&a);
    let (told, conflicts) = std::sync::mpsc::channel();
    let on_b = b.node().spawn(move |mut p| async move {
        let conflict: NameConflict = p.recv().await;
        told.send(conflict).unwrap();
        let _stop: Numbered = p.recv().await;
    });
    a.dist.register_global("leader", &on_a).unwrap();
    b.dist.register_global("leader", &on_b).unwrap();
    // The partition heals.
    connect_all(&[&a, &b]);
    let winner = a.dist.pid_of(&on_a);
    wait_for("both to agree on a's", || {
        a.dist.whereis_global("leader") == Some(winner.clone())
            && b.dist.whereis_global("leader") == Some(winner.clone())
    });
    let conflict = conflicts.recv_timeout(LONG).unwrap();
    assert_eq!(conflict.name, "leader");
    assert_eq!(conflict.winner, winner);
    assert!(on_b.is_alive(), "the loser is told, not killed");
}

#[test]
fn a_group_spans_nodes_and_loses_the_members_of_a_lost_node() {
    let (a, b, relay) = relayed_pair();
    let here = idle(&a);
    a.dist.pg_join("workers", &here);
    let there: Vec<Pid> = (0..2).map(|_| idle(&b)).collect();
    for pid in &there {
        b.dist.pg_join("workers", pid);
    }
    wait_for("a to see all three", || {
        a.dist.pg_members("workers").len() == 3
    });
    wait_for("b to see all three", || {
        b.dist.pg_members("workers").len() == 3
    });
    // A member that ends leaves everywhere.
    there[0].send(Numbered(0)).unwrap();
    wait_for("a to see two", || a.dist.pg_members("workers").len() == 2);
    // A lost node takes its members with it.
    relay.frozen.store(true, Ordering::Relaxed);
    wait_for("a to see only its own", || {
        a.dist.pg_members("workers") == vec![a.dist.pid_of(&here)]
    });
}

#[test]
fn a_process_is_started_on_another_node_by_the_name_of_its_start_function() {
    let (a, b) = connected_pair();
    a.rt.block_on(async {
        let t = Duration::from_secs(5);
        let pid = a
            .dist
            .spawn("b", "greeter", "hello".to_string(), t)
            .await
            .unwrap();
        assert_eq!(pid.node(), "b");
        let me = a.dist.pid_of(&Pid::system());
        a.dist.send(&pid, Ping { n: 2, reply_to: me }).unwrap();
        assert_eq!(
            a.dist.spawn("b", "no such function", 1u8, t).await,
            Err(SpawnError::Unknown("no such function".into()))
        );
        assert_eq!(
            a.dist.spawn("b", "greeter", 5u64, t).await,
            Err(SpawnError::BadArguments)
        );
        assert_eq!(
            a.dist.spawn("nowhere", "greeter", "x".to_string(), t).await,
            Err(SpawnError::NoConnection)
        );
    });
    // The started process got its arguments: it registered "greeted 7".
    wait_for("the greeter", || b.node().whereis("greeted 7").is_some());
}

#[test]
fn node_up_and_down_reach_any_process_that_asks() {
    let a = TestNode::start("a");
    let b = TestNode::start("b");
    let (tx, events) = std::sync::mpsc::channel();
    let dist = a.dist.clone();
    let (ready, is_ready) = std::sync::mpsc::channel();
    a.node().spawn(move |mut p| async move {
        dist.monitor_nodes(&p);
        ready.send(()).unwrap();
        loop {
            let event: owl_cluster::NodeEvent = p.recv().await;
            tx.send(event).unwrap();
        }
    });
    is_ready.recv_timeout(LONG).unwrap();
    let relay = Relay::to(b.dist.local_addr());
    a.dist.connect("b", relay.addr);
    assert_eq!(
        events.recv_timeout(LONG).unwrap(),
        owl_cluster::NodeEvent::Up("b".into())
    );
    relay.frozen.store(true, Ordering::Relaxed);
    assert_eq!(
        events.recv_timeout(LONG).unwrap(),
        owl_cluster::NodeEvent::Down("b".into())
    );
}

/// The distribution agent of `node` (it has a label, not a name).
fn agent_of(node: &TestNode) -> Pid {
    node.node()
        .processes()
        .into_iter()
        .find(|p| p.label == "distribution agent")
        .map(|p| p.pid)
        .expect("a distribution agent")
}

#[test]
fn a_restarted_agent_drops_its_connections_then_serves_again() {
    let (a, b) = connected_pair();
    let inbox = b.collector::<Numbered>("sink");
    let holder = idle(&b);
    b.dist.register_global("kept", &holder).unwrap();
    wait_for("a to see the name", || {
        a.dist.whereis_global("kept").is_some()
    });
    let dist = a.dist.clone();
    let (tx, downs) = std::sync::mpsc::channel();
    a.node().spawn(move |mut p| async move {
        dist.monitor(&p, Dest::named("sink", "b"));
        let down: RemoteDown = p.recv().await;
        tx.send(down.reason).unwrap();
    });
    wait_for("the monitor held on b", || b.dist.stats().watched_here == 1);
    // b's agent dies; its supervisor starts another.
    let old = agent_of(&b);
    b.node().kill(&old);
    // What b's old agent held is gone with the connection: a's monitor
    // fires, as for a lost node.
    assert_eq!(downs.recv_timeout(LONG).unwrap(), ExitReason::NoConnection);
    wait_for("a new agent", || agent_of(&b) != old);
    // The nodes find each other again, and b's names are still b's.
    a.dist.connect("b", b.dist.local_addr());
    wait_for("a and b to reconnect", || {
        a.dist.is_connected("b") && b.dist.is_connected("a")
    });
    wait_for("a to see the name again", || {
        a.dist.whereis_global("kept") == Some(b.dist.pid_of(&holder))
    });
    a.dist.send(Dest::named("sink", "b"), Numbered(5)).unwrap();
    assert_eq!(inbox.recv_timeout(LONG).unwrap(), Numbered(5));
    // The new agent's names process watches the holder it found.
    holder.send(Numbered(0)).unwrap();
    wait_for("the name gone with its holder", || {
        a.dist.whereis_global("kept").is_none() && b.dist.whereis_global("kept").is_none()
    });
}
