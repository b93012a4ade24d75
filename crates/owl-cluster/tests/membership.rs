//! Membership over real UDP on loopback: nodes in one runtime, each with
//! its own supervision tree, as separate nodes would be.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use owl_cluster::{Cluster, ClusterConfig, ClusterSecret, MemberState, NodeEvent};
use owl_runtime::supervisor::{Strategy, Supervisor, SupervisorRef, SupervisorSpec};
use owl_runtime::{Node, Runtime};

const SECRET: &str = "a secret every test node shares";

fn free_udp_port() -> SocketAddr {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap()
}

async fn start(
    node: &Node,
    name: &str,
    addr: SocketAddr,
    seeds: &[SocketAddr],
    secret: &str,
) -> (Cluster, SupervisorRef) {
    let secret = ClusterSecret::new(secret).unwrap();
    let cluster =
        Cluster::new(ClusterConfig::new(name, addr, secret).join(seeds.iter().copied())).unwrap();
    let spec = SupervisorSpec::new(Strategy::OneForOne).child(cluster.child_spec());
    let root = Supervisor::start(node, spec).await.unwrap();
    (cluster, root)
}

async fn until(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn nodes_join_share_settings_and_see_each_other_go_down() {
    let rt = Runtime::new(Default::default()).unwrap();
    let node = rt.node();
    rt.block_on(async {
        let (a_addr, b_addr, c_addr) = (free_udp_port(), free_udp_port(), free_udp_port());
        let (a, _a_root) = start(&node, "a", a_addr, &[], SECRET).await;
        let (b, b_root) = start(&node, "b", b_addr, &[a_addr], SECRET).await;
        let (c, c_root) = start(&node, "c", c_addr, &[b_addr], SECRET).await;

        // A watcher on a gets node events like net_kernel:monitor_nodes.
        let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
        node.spawn({
            let a = a.clone();
            move |mut p| async move {
                a.monitor_nodes(&p);
                loop {
                    let event = p.recv::<NodeEvent>().await;
                    let _ = tx.send(event);
                }
            }
        });

        for cluster in [&a, &b, &c] {
            until(
                "all three see three nodes up",
                Duration::from_secs(10),
                || cluster.live_names() == ["a", "b", "c"],
            )
            .await;
        }

        // A setting made on c (not the first node) reaches all, last writer wins.
        c.put_setting("load.target", 30_000);
        assert_eq!(c.setting("load.target").unwrap().value, "30000");
        until("a sees c's setting", Duration::from_secs(5), || {
            a.setting("load.target").is_some_and(|s| s.value == "30000")
        })
        .await;
        b.put_setting("load.target", 12);
        for cluster in [&a, &b, &c] {
            until(
                "the later write wins everywhere",
                Duration::from_secs(5),
                || {
                    cluster
                        .setting("load.target")
                        .is_some_and(|s| s.value == "12")
                },
            )
            .await;
        }
        // A start-up default never overrides a real setting.
        a.put_default_setting("load.target", 99);
        assert_eq!(a.setting("load.target").unwrap().value, "12");

        // Published figures travel too.
        b.publish("http", "127.0.0.1:4001");
        until("a sees b's address", Duration::from_secs(5), || {
            a.member("b")
                .is_some_and(|m| m.values.get("http").map(String::as_str) == Some("127.0.0.1:4001"))
        })
        .await;

        // b's membership process is killed: its supervisor restarts it, it
        // reopens the port and rejoins as a newer generation of b.
        let generation = a.member("b").unwrap().generation;
        let children = b_root.which_children(Duration::from_secs(5)).await.unwrap();
        let membership = children
            .iter()
            .find(|c| c.id == owl_cluster::MEMBERSHIP)
            .and_then(|c| c.pid.clone())
            .unwrap();
        assert!(node.kill(&membership));
        until(
            "b rejoins as a new generation",
            Duration::from_secs(10),
            || {
                a.member("b")
                    .is_some_and(|m| m.generation > generation && m.state == MemberState::Up)
                    && b.live_names() == ["a", "b", "c"]
            },
        )
        .await;
        assert_eq!(
            b.setting("load.target").unwrap().value,
            "12",
            "b kept the cluster's setting"
        );

        // c stops: a and b declare it down, and a's watcher hears it.
        c_root.shutdown(Duration::from_secs(5)).await;
        until("a and b see c down", Duration::from_secs(10), || {
            a.live_names() == ["a", "b"] && b.live_names() == ["a", "b"]
        })
        .await;
        assert_eq!(a.member("c").unwrap().state, MemberState::Down);
        let mut seen = Vec::new();
        while let Ok(event) = events.try_recv() {
            seen.push(event);
        }
        assert!(seen.contains(&NodeEvent::Up("c".into())), "{seen:?}");
        assert!(seen.contains(&NodeEvent::Down("c".into())), "{seen:?}");
        // The setting outlives nothing here, but it is still everyone's.
        assert_eq!(a.setting("load.target").unwrap().value, "12");

        // c comes back as a new generation and is up again.
        let (c2, _c2_root) = start(&node, "c", c_addr, &[a_addr], SECRET).await;
        until("c is back for a", Duration::from_secs(10), || {
            a.live_names() == ["a", "b", "c"]
        })
        .await;
        until(
            "c learns the cluster's setting",
            Duration::from_secs(5),
            || c2.setting("load.target").is_some_and(|s| s.value == "12"),
        )
        .await;
    });
}

#[test]
fn nodes_with_another_secret_never_merge() {
    let rt = Runtime::new(Default::default()).unwrap();
    let node = rt.node();
    rt.block_on(async {
        let (a_addr, x_addr) = (free_udp_port(), free_udp_port());
        let (a, _a_root) = start(&node, "a", a_addr, &[x_addr], SECRET).await;
        let (x, _x_root) =
            start(&node, "x", x_addr, &[a_addr], "some other cluster's secret").await;
        x.put_setting("load.target", 5);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(a.live_names(), ["a"]);
        assert_eq!(x.live_names(), ["x"]);
        assert!(a.members().iter().all(|m| m.name == "a"));
        assert_eq!(a.setting("load.target"), None);
        // Both keep knocking; each drops the other's unsigned datagrams.
        assert!(a.rejected_datagrams() > 0 && x.rejected_datagrams() > 0);
    });
}
