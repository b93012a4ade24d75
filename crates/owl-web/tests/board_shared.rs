//! The board on PostgreSQL, shared by two nodes: a post made on one node
//! appears live on the other's pages (LISTEN/NOTIFY), deletions too, and
//! an unreachable database is a clear error at start. A real server,
//! started by the test (`initdb` + `pg_ctl`).

mod common;

use std::time::{Duration, Instant};

use common::browser::{self, wait_js};
use common::postgres::Postgres;
use common::{ADMIN_TOKEN, Options, TestNode, client_runtime, get_json, http};
use serde_json::{Value, json};

fn shared_node(pg: &Postgres) -> TestNode {
    TestNode::with(Options {
        database_url: Some(pg.url.clone()),
        ..Options::default()
    })
}

async fn post(node: &TestNode, text: &str, author: &str) -> Value {
    let r = http()
        .post(node.url("/api/board/building-blocks"))
        .json(&json!({"text": text, "author": author}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "posting on the shared board");
    r.json().await.unwrap()
}

#[test]
fn a_post_on_one_node_appears_live_on_another_nodes_page() {
    let Some(driver) = browser::driver("a_post_on_one_node_appears_live_on_another") else {
        return;
    };
    let Some(pg) = Postgres::start("live") else {
        return;
    };
    let (a, b) = (shared_node(&pg), shared_node(&pg));
    client_runtime().block_on(async {
        let page = browser::open_live(&driver, 1, &b.url("/board/building-blocks")).await;
        let has = |text: &str| {
            format!(
                "Array.from(document.querySelectorAll('#posts .post-text')).some(p => p.innerText.trim() === {})",
                serde_json::to_string(text).unwrap()
            )
        };
        let started = Instant::now();
        let posted = post(&a, "posted on node A", "Ana").await;
        wait_js(&page, "A's post on B's page", &has("posted on node A")).await;
        eprintln!(
            "post on A to B's page (API call + commit + NOTIFY + live update + browser): {:?}",
            started.elapsed()
        );

        // B's own posts come back through the database too, once each.
        post(&b, "posted on node B", "Ben").await;
        wait_js(&page, "B's own post", &has("posted on node B")).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let shown = page
            .execute("return document.querySelectorAll('#posts li').length;", vec![])
            .await
            .unwrap();
        assert_eq!(shown.as_u64(), Some(2), "each post shown once");

        // A deletion made on A vanishes from B's page.
        let id = posted["id"].as_i64().unwrap();
        let deleted = http()
            .delete(a.url(&format!("/api/board/building-blocks/{id}")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.status().as_u16(), 204);
        wait_js(&page, "the deletion on B", &format!("!({})", has("posted on node A"))).await;
        page.close().await.unwrap();

        // Both nodes list the same posts.
        let on_a: Value = get_json(&a, "/api/board/building-blocks").await;
        let on_b: Value = get_json(&b, "/api/board/building-blocks").await;
        assert_eq!(on_a["posts"], on_b["posts"]);
        assert_eq!(on_a["posts"].as_array().unwrap().len(), 1);
    });
}

#[test]
fn acknowledged_posts_survive_the_nodes_and_a_bad_url_is_a_clear_error() {
    let Some(pg) = Postgres::start("durable") else {
        return;
    };
    let a = shared_node(&pg);
    client_runtime().block_on(async {
        // Five: one client's allowance per ten seconds.
        for i in 0..5 {
            post(&a, &format!("post {i}"), "Ana").await;
        }
    });
    drop(a);
    // A new node on the same database finds every acknowledged post.
    let b = shared_node(&pg);
    client_runtime().block_on(async {
        let listed: Value = get_json(&b, "/api/board/building-blocks?limit=100").await;
        assert_eq!(listed["posts"].as_array().unwrap().len(), 5);
    });

    // Read-only is the database's: switched on one node, every node sharing
    // it refuses new posts, and a node started later finds it still on.
    let c = shared_node(&pg);
    let board = b.board.clone();
    b.block_on(async move { board.set_read_only(true).await.unwrap() });
    let refused = |node: &TestNode| {
        let url = node.url("/api/board/building-blocks");
        client_runtime().block_on(async move {
            http()
                .post(url)
                .json(&json!({"text": "frozen?", "author": "Cy"}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    assert_eq!(refused(&c), 503, "the other node refuses too");
    assert_eq!(refused(&b), 503);
    drop(c);
    let d = shared_node(&pg);
    let board = d.board.clone();
    assert!(d.block_on(async move { board.read_only().await.unwrap() }));
    let board = d.board.clone();
    d.block_on(async move { board.set_read_only(false).await.unwrap() });
    client_runtime().block_on(post(&b, "thawed", "Cy"));
    drop(d);

    // A database that cannot be reached stops the node at start, saying where.
    let dir = pg.dir().join("unreachable-node");
    let config = owl_system::Config {
        data_dir: dir,
        admin_token: owl_system::access::TokenSource::Given(ADMIN_TOKEN.into()),
        database_url: Some("postgres://owl@127.0.0.1:1/nothing".into()),
        ..owl_system::Config::default()
    };
    let err = owl_system::System::builder(config).start().unwrap_err();
    assert!(err.contains("PostgreSQL at 127.0.0.1:1/nothing"), "{err}");
}
