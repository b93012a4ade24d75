//! Dashboards across a cluster: node A's pages show node B's processes and
//! kill them, over distribution (TLS keyed by the cluster secret); a node
//! with another secret gets nowhere.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::browser::{self, wait_js};
use common::{ADMIN_TOKEN, LIMIT, Options, TestNode, client_runtime, get_admin_text};
use owl_cluster::{ClusterConfig, ClusterSecret};
use owl_runtime::SpawnOptions;

const SECRET: &str = "the dashboards' test cluster secret";

fn free_gossip_addr() -> SocketAddr {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Nodes a and b of one cluster, each with its web side; returns once a
/// knows where b's web side is.
/// Picks `node` in a dashboard's node menu, as a visitor would.
async fn choose_node(page: &fantoccini::Client, node: &str) {
    let js = format!(
        "const menu = document.querySelector('#node');
         menu.value = {};
         menu.dispatchEvent(new Event('change', {{ bubbles: true }}));",
        serde_json::to_string(node).unwrap()
    );
    page.execute(&js, vec![]).await.unwrap();
}

fn two_nodes() -> (TestNode, TestNode) {
    let (a_gossip, b_gossip) = (free_gossip_addr(), free_gossip_addr());
    let secret = ClusterSecret::new(SECRET).unwrap();
    let a = TestNode::with(Options {
        cluster: Some(ClusterConfig::new("a", a_gossip, secret.clone())),
        ..Options::default()
    });
    let b = TestNode::with(Options {
        cluster: Some(ClusterConfig::new("b", b_gossip, secret).join([a_gossip])),
        ..Options::default()
    });
    let start = Instant::now();
    let cluster = a.cluster.clone().unwrap();
    while !cluster.member("b").is_some_and(|m| {
        m.values.contains_key(owl_cluster::HTTP_KEY) && cluster.live_names().len() == 2
    }) {
        assert!(start.elapsed() < LIMIT, "b never joined a");
        std::thread::sleep(Duration::from_millis(20));
    }
    (a, b)
}

#[test]
fn the_process_dashboard_on_one_node_lists_and_kills_another_nodes_processes() {
    let Some(driver) = browser::driver("the_process_dashboard_lists_another_nodes_processes")
    else {
        return;
    };
    let (a, b) = two_nodes();
    // A process on b for the admin on a to find and kill.
    let victim = b.node.spawn_opts(
        SpawnOptions::new().label("remote victim"),
        |mut p| async move {
            p.recv::<()>().await;
        },
    );
    let id = victim.id().0;
    client_runtime().block_on(async {
        let page = driver.browser(1).await;
        page.goto(&a.url("/login?next=/dashboard/processes")).await.unwrap();
        browser::log_in(&page, ADMIN_TOKEN).await;
        wait_js(&page, "the live table", "document.body.dataset.live === 'connected' && document.querySelector('#proc-table table') !== null").await;

        // Choose node b and search for the victim: its row shows b's pid with b's name.
        page.execute("document.querySelector('#q').value = 'remote victim';", vec![])
            .await
            .unwrap();
        choose_node(&page, "b").await;
        let row = format!("b-p{id}");
        wait_js(
            &page,
            "b's victim in a's table",
            &format!("document.querySelector('#{row} a')?.textContent === 'b <0.{id}.0>'"),
        )
        .await;
        browser::click(&page, &format!("#{row} a")).await;
        wait_js(
            &page,
            "the remote process's page",
            &format!("document.querySelector('h1')?.textContent.startsWith('Process b <0.{id}.0>')"),
        )
        .await;
        let text = page.find(fantoccini::Locator::Css("main")).await.unwrap().text().await.unwrap();
        assert!(text.contains("label remote victim"), "{text}");

        browser::kill_and_confirm(&page).await;
        wait_js(
            &page,
            "the process gone",
            "document.body.textContent.includes('no such process')",
        )
        .await;

        // The system dashboard shows b's figures on request.
        page.goto(&a.url("/dashboard/system")).await.unwrap();
        wait_js(&page, "a's own figures", "document.querySelector('#system table') !== null").await;
        choose_node(&page, "b").await;
        wait_js(
            &page,
            "b's figures",
            "document.querySelector('#system')?.textContent.includes('Node b, over the cluster.')",
        )
        .await;
        page.close().await.unwrap();
    });
    assert!(!victim.is_alive(), "the kill reached node b");
}

#[test]
fn other_nodes_are_reached_over_distribution_and_a_stranger_gets_nowhere() {
    let (a, b) = two_nodes();
    let alone = TestNode::start(10);
    // The node-to-node HTTP route is gone: its calls travel over
    // distribution, TLS keyed by the cluster secret.
    client_runtime().block_on(async {
        let http = reqwest::Client::new();
        for node in [&a, &b, &alone] {
            let response = http
                .post(node.url("/cluster/node"))
                .body("{\"stats\": null}")
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 404);
        }
    });
    // A node with another secret cannot connect to b's distribution port,
    // so it cannot ask b anything.
    let b_dist = b.services().dist.clone().unwrap();
    let rt = owl_runtime::Runtime::new(Default::default()).unwrap();
    let stranger = owl_cluster::dist::Dist::new(
        &rt.node(),
        owl_cluster::dist::DistConfig::new(
            "a",
            "127.0.0.1:0".parse().unwrap(),
            ClusterSecret::new("some other cluster's secret!").unwrap(),
        ),
    )
    .unwrap();
    let spec =
        owl_runtime::supervisor::SupervisorSpec::new(owl_runtime::supervisor::Strategy::OneForOne)
            .child(stranger.child_spec());
    let _tree = rt
        .block_on(owl_runtime::supervisor::Supervisor::start(&rt.node(), spec))
        .unwrap();
    let refused = b_dist.stats().refused;
    stranger.connect("b", b_dist.local_addr());
    let start = Instant::now();
    while b_dist.stats().refused == refused {
        assert!(start.elapsed() < LIMIT, "b never refused the stranger");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!stranger.is_connected("b"));
    client_runtime().block_on(async {
        // Through the operator's handle, the same list comes back.
        let list = a
            .services()
            .at(owl_system::at::At::node("b"))
            .processes(owl_system::operator::ListQuery {
                limit: 5,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(list.processes.len(), 5);
        // An unknown node is a clear error, not a hang.
        let err = a
            .services()
            .at(owl_system::at::At::node("zz"))
            .stats()
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no node named"), "{err}");

        // b's operator sees the traffic and the stranger in /metrics.
        let metrics = get_admin_text(&b, "/metrics").await;
        let value = |name: &str| -> f64 {
            let line = metrics
                .lines()
                .find(|l| l.starts_with(&format!("{name} ")))
                .unwrap_or_else(|| panic!("no {name} in /metrics:\n{metrics}"));
            line[name.len() + 1..].parse().unwrap()
        };
        assert_eq!(value("owl_dist_peers_connected"), 1.0);
        assert!(value("owl_dist_connections_refused_total") >= 1.0);
        assert!(value("owl_dist_frames_received_total") >= 1.0, "a's call");
        assert!(value("owl_dist_frames_sent_total") >= 1.0, "b's answer");
        assert!(
            metrics.contains("owl_dist_queued_bytes{node=\"a\"} "),
            "{metrics}"
        );
    });
    assert!(b.root.pid().is_alive(), "nothing forged reached b's root");
}

#[test]
fn the_load_page_and_api_show_every_node_and_the_clusters_target() {
    let (a, b) = two_nodes();
    client_runtime().block_on(async {
        // The target is set on b; a's page and API show the whole cluster.
        let put = reqwest::Client::new()
            .put(b.url("/api/load"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&serde_json::json!({"target": 200}))
            .send()
            .await
            .unwrap();
        assert_eq!(put.status().as_u16(), 200);
        let request = format!("ws://{}/live/load", a.addr);
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let page = common::ws::until(&mut socket, |html| {
            html.contains(r#"data-node="b""#) && html.contains(r#"id="load-total-workers">200<"#)
        })
        .await;
        assert!(page.contains("target (whole cluster)"), "{page}");
        // The chart's points carry the whole cluster's rate as a fourth value.
        let data = common::ws::until(&mut socket, |html| html.contains("data-json=\"[[")).await;
        let rows = data.split("data-json=\"").nth(1).unwrap();
        let first = rows.trim_start_matches("[[").split(']').next().unwrap();
        assert_eq!(
            first.split(',').count(),
            4,
            "t, jobs/s, utilization, cluster jobs/s: {first}"
        );
        let html = common::get_text(&a, "/load").await;
        assert!(
            html.contains(r#"data-cluster="1""#),
            "the jobs chart is drawn for a cluster"
        );
        let load: serde_json::Value = common::get_json(&a, "/api/load").await;
        assert_eq!(load["target"], 200);
        assert_eq!(load["share"], 100);
        let nodes = load["nodes"].as_array().unwrap();
        let names: Vec<&str> = nodes.iter().map(|n| n["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["a", "b"]);
        assert!(
            nodes
                .iter()
                .all(|n| n["state"] == "up" && n["share"] == 100),
            "{load}"
        );
        assert_eq!(nodes[0]["self"], true);
    });
}
