//! Hostile input against a real node over HTTP and WebSocket: random JSON
//! bodies, query strings and frames get a clear answer (never a 500, never a
//! hang), the node keeps serving, and nothing grows without bound.
//! `OWL_FUZZ_CASES` sets the requests per target (200 here).

mod common;

use common::{TestNode, client_runtime, get_json, http};
use futures_util::SinkExt;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use tokio_tungstenite::tungstenite::Message;

fn cases() -> usize {
    std::env::var("OWL_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200)
}

/// JSON-ish bodies: real JSON of many shapes, and broken text.
fn bodies() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        (-5i64..100).prop_map(serde_json::Value::from),
        "\\PC{0,30}".prop_map(serde_json::Value::from),
    ];
    let json = leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::hash_map(
                "(input|text|author|target|schedulers|[a-z]{1,6})",
                inner,
                0..4
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    });
    prop_oneof![json.prop_map(|v| v.to_string()), "\\PC{0,60}"]
}

#[test]
fn random_bodies_queries_and_frames_get_clear_answers() {
    let server = TestNode::start(50);
    let mut runner = TestRunner::default();
    let strategy = (bodies(), "[a-z_=&0-9%-]{0,20}");
    client_runtime().block_on(async {
        for case in 0..cases() {
            // Random valid inputs leave runaways behind; end them now and
            // then, so a long run measures requests, not a saturated node.
            if case % 1000 == 999 {
                server.kill_calculations();
            }
            let (body, query) = strategy.new_tree(&mut runner).unwrap().current();
            for (method, path) in [
                // `wait_ms=0`: a random valid input may run for long, and
                // the default 5 s wait would make the run measure waiting.
                ("POST", format!("/api/sum?wait_ms=0&{query}")),
                ("POST", "/api/board/building-blocks".to_string()),
                ("PUT", "/api/load".to_string()),
                ("GET", format!("/api/board/observability?{query}")),
            ] {
                let request = match method {
                    "POST" => http().post(server.url(&path)),
                    "PUT" => http()
                        .put(server.url(&path))
                        .bearer_auth(common::ADMIN_TOKEN),
                    _ => http().get(server.url(&path)),
                };
                let answer = request
                    .header("content-type", "application/json")
                    .header("cookie", "owl_client=ffffffffffffffffffffffffffffffff")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{method} {path} {body:?}: {e}"));
                let status = answer.status().as_u16();
                assert!(
                    status < 500 || status == 503,
                    "{method} {path} {body:?} → {status}"
                );
            }
        }
        server.kill_calculations();
        // Random frames on one live page: refusals, never a dead node.
        let url = format!("ws://{}/live/sum", server.addr);
        let (mut page, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        for _ in 0..cases() {
            let (body, _) = strategy.new_tree(&mut runner).unwrap().current();
            if page.send(Message::Text(body.into())).await.is_err() {
                break;
            }
        }
        let health = http().get(server.url("/api/health")).send().await.unwrap();
        assert_eq!(health.status().as_u16(), 200);
        // Random "target" values never left a load running beyond the limit.
        let load: serde_json::Value = get_json(&server, "/api/load").await;
        assert!(load["target"].as_u64().unwrap() <= 10_000_000);
    });
}
