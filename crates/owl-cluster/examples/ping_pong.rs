//! Two nodes, ping-pong across them, with a remote monitor.
//!
//! In one terminal:
//!
//! ```text
//! cargo run -p owl-cluster --example ping_pong -- pong 127.0.0.1:4380
//! ```
//!
//! In another:
//!
//! ```text
//! cargo run -p owl-cluster --example ping_pong -- ping 127.0.0.1:4380
//! ```
//!
//! The ping node monitors the `pong` process on the other node, sends it a
//! thousand pings carrying its own pid, waits for each pong, and prints
//! the round trips. Stop the pong node (Ctrl-C, `kill -9`, `kill -STOP`)
//! while it runs and the ping node prints the monitor's `noconnection`.
//! Both nodes derive their TLS key from the same secret (`OWL_SECRET`, or
//! a demo default).

use std::time::{Duration, Instant};

use owl_cluster::ClusterSecret;
use owl_cluster::dist::{Dest, Dist, DistConfig, NodePid, RemoteDown};
use owl_runtime::supervisor::{Strategy, Supervisor, SupervisorSpec};
use owl_runtime::{Config, Runtime};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Ping {
    n: u32,
    reply_to: NodePid,
}

#[derive(Debug, Serialize, Deserialize)]
struct Pong(u32);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (role, addr) = match args.as_slice() {
        [role, addr] if role == "ping" || role == "pong" => (role.as_str(), addr.as_str()),
        _ => {
            eprintln!("usage: ping_pong pong LISTEN_ADDR | ping PONG_ADDR");
            std::process::exit(2);
        }
    };
    let addr = addr.parse().expect("an address like 127.0.0.1:4380");
    let secret = std::env::var("OWL_SECRET").unwrap_or_else(|_| "ping pong demo secret".into());
    let secret = ClusterSecret::new(&secret).expect("a secret of 16 characters or more");
    let listen = if role == "pong" {
        addr
    } else {
        "127.0.0.1:0".parse().unwrap()
    };
    let rt = Runtime::new(Config::default()).expect("a runtime");
    let node = rt.node();
    let config = DistConfig::new(role, listen, secret)
        .message::<Ping>("ping")
        .message::<Pong>("pong");
    let dist = Dist::new(&node, config).expect("listening");
    let spec = SupervisorSpec::new(Strategy::OneForOne).child(dist.child_spec());
    let _root = rt
        .block_on(Supervisor::start(&node, spec))
        .expect("the distribution agent");
    if role == "pong" {
        println!("listening {}", dist.local_addr());
        rt.block_on(async {
            let served = node.spawn(move |mut p| async move {
                p.register("pong").unwrap();
                loop {
                    let ping: Ping = p.recv().await;
                    let _ = dist.send(&ping.reply_to, Pong(ping.n));
                }
            });
            served.wait_exit().await
        });
        return;
    }
    dist.connect("pong", addr);
    let reason = rt.block_on(async move {
        let (tx, rx) = tokio::sync::oneshot::channel();
        node.spawn(move |mut p| async move {
            let pong = Dest::named("pong", "pong");
            let me = dist.pid_of(p.pid());
            dist.monitor(&p, &pong);
            let mut round_trips = Vec::new();
            for n in 0..1000 {
                let start = Instant::now();
                if let Err(e) = dist.send(&pong, Ping { n, reply_to: me.clone() }) {
                    println!("ping {n} not sent: {e}");
                    p.sleep(Duration::from_millis(100)).await;
                    continue;
                }
                let _: Pong = p.recv().await;
                round_trips.push(start.elapsed());
            }
            round_trips.sort();
            println!(
                "1000 pings: median {:?}, p99 {:?}; watching pong (stop that node to see its monitor fire)",
                round_trips[round_trips.len() / 2],
                round_trips[round_trips.len() * 99 / 100]
            );
            let down: RemoteDown = p.recv().await;
            let _ = tx.send(down);
        });
        rx.await.expect("the pinger ends with an answer")
    });
    println!("pong is down: {}", reason.reason);
}
