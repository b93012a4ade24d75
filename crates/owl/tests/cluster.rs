//! The cluster, as an operator runs it: several `owl serve` processes on
//! loopback ports, each with its own data directory, joined by gossip.
//! Killed with SIGKILL, frozen with SIGSTOP, restarted on the same data.

mod common;

use std::time::{Duration, Instant};

use common::{LIMIT, Served, http, owl};
use serde_json::Value;

const SECRET: &str = "the test cluster's shared secret";

/// A free UDP port on loopback, as `127.0.0.1:PORT`.
fn free_gossip_addr() -> String {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().to_string()
}

struct Member {
    name: &'static str,
    gossip: String,
    served: Served,
}

fn cluster_args<'a>(name: &'a str, gossip: &'a str, join: &'a str) -> Vec<&'a str> {
    let mut args = vec!["--cluster", gossip, "--node", name];
    if !join.is_empty() {
        args.extend(["--join", join]);
    }
    args
}

/// Starts node `name` of the test `test`'s cluster (the data directory is
/// named after both: tests run side by side).
fn start(test: &str, name: &'static str, join: &str, secret: &str) -> Member {
    start_with(test, name, join, secret, &[])
}

/// [`start`] with more arguments for `owl serve`.
fn start_with(test: &str, name: &'static str, join: &str, secret: &str, more: &[&str]) -> Member {
    let gossip = free_gossip_addr();
    let mut args = cluster_args(name, &gossip, join);
    args.extend(more);
    let served = Served::start_command(&format!("cluster-{test}-{name}"), &args, |c| {
        c.env("OWL_CLUSTER_SECRET", secret);
    });
    Member {
        name,
        gossip,
        served,
    }
}

fn load(m: &Member) -> Value {
    let answer = http(m.served.addr(), "GET /api/load HTTP/1.0\r\n\r\n");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{}: /api/load: {e}: {answer}", m.name))
}

/// `(name, state, workers)` of every node, as `m` sees them.
fn nodes(m: &Member) -> Vec<(String, String, u64)> {
    load(m)["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap().to_string(),
                n["state"].as_str().unwrap().to_string(),
                n["workers"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn up_names(m: &Member) -> Vec<String> {
    nodes(m)
        .into_iter()
        .filter(|(_, state, _)| state == "up")
        .map(|(name, _, _)| name)
        .collect()
}

/// Polls `check` until it holds, for at most `within`; the last value
/// seen is in the failure.
fn until<T: std::fmt::Debug>(what: &str, within: Duration, mut check: impl FnMut() -> (bool, T)) {
    let deadline = Instant::now() + within;
    loop {
        let (done, seen) = check();
        if done {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting until {what}; last seen: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn workers_are(members: &[&Member], each: u64) -> (bool, Vec<(String, u64, u64)>) {
    let seen: Vec<(String, u64, u64)> = members
        .iter()
        .map(|m| {
            let l = load(m);
            (
                m.name.to_string(),
                l["share"].as_u64().unwrap(),
                l["workers"].as_u64().unwrap(),
            )
        })
        .collect();
    let done = seen
        .iter()
        .all(|(_, share, workers)| *share == each && *workers == each);
    (done, seen)
}

#[test]
fn three_nodes_split_the_load_take_over_a_lost_share_and_rebalance_on_rejoin() {
    const T: &str = "split";
    let a = start(T, "a", "", SECRET);
    let mut b = start(T, "b", &a.gossip, SECRET);
    let mut c = start(T, "c", &a.gossip, SECRET);
    for m in [&a, &b, &c] {
        until("every node sees three up", LIMIT, || {
            let up = up_names(m);
            (up == ["a", "b", "c"], up)
        });
    }

    // The target is set on c — not the first node — and holds cluster-wide.
    let answer = c.served.ok(&["load", "3000"]);
    assert_eq!(answer["target"], 3000);
    until("each node runs a third", LIMIT, || {
        workers_are(&[&a, &b, &c], 1000)
    });
    for m in [&a, &b, &c] {
        assert_eq!(
            load(m)["target"],
            3000,
            "{} sees the cluster's target",
            m.name
        );
    }

    // kill -9 b: a and c take its share over.
    b.served.child.kill().unwrap();
    until("the survivors run half each", LIMIT, || {
        workers_are(&[&a, &c], 1500)
    });
    let seen = nodes(&a);
    assert!(
        seen.contains(&("b".into(), "down".into(), 0)),
        "a lists b as down: {seen:?}"
    );

    // b restarts on its data and joins again: a third each once more.
    let b2 = Member {
        name: "b",
        gossip: b.gossip.clone(),
        served: b
            .served
            .restart_command(&cluster_args("b", &b.gossip, &a.gossip), |cmd| {
                cmd.env("OWL_CLUSTER_SECRET", SECRET);
            }),
    };
    until("the rejoined node takes its third back", LIMIT, || {
        workers_are(&[&a, &b2, &c], 1000)
    });
    assert_eq!(
        load(&b2)["target"],
        3000,
        "the rejoined node learned the target"
    );

    // A change on any node reaches all; zero stops everything.
    let changed = c.served.ok(&["load", "0"]);
    assert_eq!(changed["target"], 0);
    until("every node stops its workers", LIMIT, || {
        workers_are(&[&a, &b2, &c], 0)
    });
    let console = a.served.ok(&["nodes"]);
    assert_eq!(console["nodes"].as_array().unwrap().len(), 3, "{console}");

    // a's console reaches c's processes: info, then kill, by c's pids.
    let before = a.served.ok(&["on", "c", "info", "load_sup"]);
    assert_eq!(before["node"], "c", "{before}");
    let pid = before["answer"]["id"].as_u64().unwrap().to_string();
    let killed = a.served.ok(&["on", "c", "kill", &pid]);
    assert_eq!(killed["node"], "c", "{killed}");
    until("c's supervisor restarts its load subtree", LIMIT, || {
        let after = a.served.ok(&["on", "c", "info", "load_sup"]);
        let now = after["answer"]["id"]
            .as_u64()
            .map(|id| id.to_string())
            .unwrap_or_default();
        (!now.is_empty() && now != pid, now)
    });
    let unknown = a.served.fails(&["on", "zz", "ps"]);
    assert!(unknown.contains("no node named"), "{unknown}");
    c.served.child.kill().unwrap();
}

/// Two nodes whose schedulers share one CPU, with far more background jobs
/// than it can run: both are saturated and behind, and still neither is
/// ever taken for dead — gossip runs on a thread of its own — so neither
/// takes over the other's share.
#[test]
fn saturated_nodes_sharing_a_core_never_take_each_other_for_dead() {
    const T: &str = "saturated";
    // One scheduler each, online on the first CPU: the two nodes' schedulers
    // share that core.
    let one_core = ["--schedulers", "1"];
    let a = start_with(T, "a", "", SECRET, &one_core);
    let b = start_with(T, "b", &a.gossip, SECRET, &one_core);
    for m in [&a, &b] {
        until("both nodes see two up", LIMIT, || {
            let up = up_names(m);
            (up == ["a", "b"], up)
        });
    }
    // 300,000 jobs a second each: more than one core runs (a debug build
    // spends microseconds on each).
    a.served.ok(&["load", "600000"]);
    let behind = |m: &Member| load(m)["behind"].is_string();
    until(
        "the jobs to fall behind: the core is full",
        LIMIT * 3,
        || (behind(&a) || behind(&b), (load(&a), load(&b))),
    );
    // Ten seconds of saturation: every look sees both up, each with its
    // half of the target.
    let watch = Instant::now();
    let mut looks = 0;
    while watch.elapsed() < Duration::from_secs(10) {
        for m in [&a, &b] {
            let l = load(m);
            let states: Vec<(String, String)> = nodes(m)
                .into_iter()
                .map(|(name, state, _)| (name, state))
                .collect();
            assert_eq!(
                states,
                [("a".into(), "up".into()), ("b".into(), "up".into())],
                "{} took its peer for dead while saturated: {l}",
                m.name
            );
            assert_eq!(l["share"], 300_000, "{} kept its half: {l}", m.name);
            looks += 1;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(looks >= 20, "{looks}");
    for m in [&a, &b] {
        assert!(
            !m.served.log().contains("node down"),
            "{} logged a node down",
            m.name
        );
    }
    a.served.ok(&["load", "0"]);
}

#[test]
fn clusters_with_different_secrets_never_merge() {
    const T: &str = "secrets";
    let a = start(T, "a", "", SECRET);
    let x = start(T, "x", &a.gossip, "another cluster's secret, not ours");
    // x keeps knocking at a's gossip port for the whole wait.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(up_names(&a), ["a"]);
    assert_eq!(up_names(&x), ["x"]);
    assert_eq!(nodes(&a).len(), 1, "a never learned of x");
    x.served.ok(&["load", "500"]);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(load(&a)["target"], 0, "x's target never reached a");
    assert!(
        a.served.log().contains("without a valid cluster signature"),
        "a logs the datagrams it dropped"
    );
}

#[test]
fn a_frozen_node_loses_its_share_and_gets_it_back_when_it_thaws() {
    const T: &str = "frozen";
    let a = start(T, "a", "", SECRET);
    let b = start(T, "b", &a.gossip, SECRET);
    let c = start(T, "c", &a.gossip, SECRET);
    for m in [&a, &b, &c] {
        until("every node sees three up", LIMIT, || {
            let up = up_names(m);
            (up == ["a", "b", "c"], up)
        });
    }
    a.served.ok(&["load", "300"]);
    until("a third each", LIMIT, || workers_are(&[&a, &b, &c], 100));

    // SIGSTOP: c is cut off as if its network were down. The others keep
    // serving and take its share over.
    let pid = c.served.child.id().to_string();
    let signal = |sig: &str| {
        let status = std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap();
        assert!(status.success());
    };
    signal("-STOP");
    until("a and b run half each", LIMIT, || {
        workers_are(&[&a, &b], 150)
    });
    assert!(up_names(&a) == ["a", "b"]);

    // SIGCONT: the partition heals and the cluster converges again.
    signal("-CONT");
    until("a third each again", LIMIT, || {
        workers_are(&[&a, &b, &c], 100)
    });
    for m in [&a, &b, &c] {
        assert_eq!(up_names(m), ["a", "b", "c"], "{} sees all three", m.name);
    }
}

#[test]
fn a_cluster_node_needs_a_good_secret_and_a_valid_name() {
    let dir = std::env::temp_dir().join(format!("owl-cluster-args-{}", std::process::id()));
    let run = |args: &[&str], secret: Option<&str>| {
        let mut cmd = owl();
        cmd.args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(&dir)
            .args(args)
            .env_remove("OWL_CLUSTER_SECRET");
        if let Some(secret) = secret {
            cmd.env("OWL_CLUSTER_SECRET", secret);
        }
        let out = cmd.output().unwrap();
        assert!(!out.status.success(), "{args:?} must not start");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let gossip = free_gossip_addr();
    let missing = run(&["--cluster", &gossip], None);
    assert!(missing.contains("cluster-secret"), "{missing}");
    let short = run(&["--cluster", &gossip], Some("short"));
    assert!(short.contains("at least 16"), "{short}");
    let bad_name = run(&["--cluster", &gossip, "--node", "a/b"], Some(SECRET));
    assert!(bad_name.contains("node name"), "{bad_name}");
    let wildcard = run(&["--cluster", "0.0.0.0:4370"], Some(SECRET));
    assert!(wildcard.contains("not a wildcard"), "{wildcard}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A free UDP port on `ip`, as `IP:PORT`.
fn free_gossip_addr_on(ip: &str) -> String {
    let socket = std::net::UdpSocket::bind((ip, 0)).unwrap();
    socket.local_addr().unwrap().to_string()
}

/// A node bound to every address (`--bind 0.0.0.0:…`, the talk's setting)
/// tells its peers an address they reach it at — its gossip host with its
/// web port, not `0.0.0.0` (which once made another node's `on x kill`
/// act on the sender itself). Two loopback addresses stand for two hosts.
#[test]
fn a_node_bound_to_every_address_advertises_one_its_peers_reach() {
    let gossip_x = free_gossip_addr_on("127.0.0.2");
    let x = Served::start_command(
        "cluster-advertise-x",
        &["--bind", "0.0.0.0:0", "--cluster", &gossip_x, "--node", "x"],
        |c| {
            c.env("OWL_CLUSTER_SECRET", SECRET);
        },
    );
    let port = x.addr().rsplit_once(':').unwrap().1.to_string();
    let gossip_y = free_gossip_addr();
    let y = Served::start_command(
        "cluster-advertise-y",
        &["--cluster", &gossip_y, "--node", "y", "--join", &gossip_x],
        |c| {
            c.env("OWL_CLUSTER_SECRET", SECRET);
        },
    );
    let expected = format!("http://127.0.0.2:{port}");
    let deadline = Instant::now() + LIMIT;
    loop {
        let nodes = y.ok(&["nodes"]);
        let x_http = nodes["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == "x" && n["state"] == "up")
            .and_then(|n| n["http"].as_str().map(String::from));
        if x_http.as_deref() == Some(expected.as_str()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "x advertises {x_http:?}, not {expected}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // y's console acts on x, through the advertised address: a runaway
    // started on x is killed on x.
    let answer = http(
        x.addr(),
        "POST /api/sum?wait_ms=0 HTTP/1.0\r\ncontent-type: application/json\r\n\
         content-length: 15\r\n\r\n{\"input\": \"-1\"}",
    );
    let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    let pid = body["pid"].as_str().unwrap().to_string();
    y.ok(&["on", "x", "kill", &pid]);
    let gone = x.fails(&["info", &pid]);
    assert!(gone.contains("no"), "{gone}");
    // A wildcard is no address to advertise.
    let bad = owl()
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(std::env::temp_dir().join(format!("owl-advertise-bad-{}", std::process::id())))
        .args([
            "--cluster",
            &free_gossip_addr(),
            "--advertise",
            "http://0.0.0.0:4000",
        ])
        .env("OWL_CLUSTER_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--advertise"));
}

/// Names are unique in a cluster: a second node started under a name that
/// is already up refuses to start (saying which node has it), and the
/// first keeps its share — the target is not run twice.
#[test]
fn a_second_node_with_a_taken_name_refuses_to_start() {
    const T: &str = "dupname";
    let a = start(T, "a", "", SECRET);
    let b = start(T, "b", &a.gossip, SECRET);
    a.served.ok(&["load", "3000"]);
    until("1,500 each", LIMIT, || workers_are(&[&a, &b], 1500));
    let gossip = free_gossip_addr();
    let dir = std::env::temp_dir().join(format!("owl-cluster-dupname-b2-{}", std::process::id()));
    let out = owl()
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(&dir)
        .args(["--cluster", &gossip, "--node", "b", "--join", &a.gossip])
        .env("OWL_CLUSTER_SECRET", SECRET)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a second b must not start: {stderr}");
    assert!(
        stderr.contains("a node named b is already up") && stderr.contains(&b.gossip),
        "{stderr}"
    );
    until("still 1,500 each, 3,000 in all", LIMIT, || {
        workers_are(&[&a, &b], 1500)
    });
}
