//! The JSON API and the pages over real HTTP on a loopback port.

mod common;

use std::time::Duration;

use common::{TestNode, client_runtime, http, wait_until};
use owl_runtime::PidId;
use serde_json::{Value, json};

async fn post_sum(server: &TestNode, body: &str, query: &str) -> (u16, Value) {
    let response = http()
        .post(server.url(&format!("/api/sum{query}")))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("an answer");
    let status = response.status().as_u16();
    let json: Value = response.json().await.expect("a JSON body");
    (status, json)
}

async fn sum_of(server: &TestNode, input: &str, query: &str) -> (u16, Value) {
    post_sum(server, &json!({ "input": input }).to_string(), query).await
}

fn pid_of(server: &TestNode, answer: &Value) -> owl_runtime::Pid {
    let text = answer["pid"].as_str().expect("a pid");
    let id: PidId = text.parse().expect("a pid like <0.N.0>");
    server.node.lookup(id).expect("a live process")
}

#[test]
fn the_api_answers_every_kind_of_input() {
    let server = TestNode::start(100);
    client_runtime().block_on(async {
        let (status, ok) = sum_of(&server, "5", "").await;
        assert_eq!(status, 200);
        assert_eq!(ok["status"], "ok");
        assert_eq!(ok["input"], "5");
        assert_eq!(ok["result"], "15");
        assert!(ok["pid"].as_str().unwrap().starts_with("<0."));

        // Spaces around a number are forgiven (phone keyboards add them).
        let (status, spaced) = sum_of(&server, " 5", "").await;
        assert_eq!((status, &spaced["result"]), (200, &json!("15")));

        // Bug 1: 13 crashes; the answer carries the crash reason.
        let (status, crash) = sum_of(&server, "13", "").await;
        assert_eq!(status, 200);
        assert_eq!(crash["status"], "error");
        let reason = crash["error"].as_str().unwrap();
        assert!(
            reason.contains("math:sum") && reason.contains("unreachable"),
            "{reason}"
        );

        // Bug 2: -1 runs on after the wait; the calculation goes on.
        let (status, running) = sum_of(&server, "-1", "?wait_ms=200").await;
        assert_eq!(status, 202);
        assert_eq!(running["status"], "running");
        let runaway = pid_of(&server, &running);
        let (status, _) = sum_of(&server, "6", "").await;
        assert_eq!(status, 200);
        let info = server.node.info(&runaway).expect("still running later");
        assert_eq!(info.current_activity, "math:sum(-1)");
        assert!(server.node.kill(&runaway));

        // Not integers: 422 at once, and no calculation is started.
        let started = server.math.counts().started;
        for input in ["abc", "", "   ", "5.0", "1e3", "0x10", "1 000", "½"] {
            let (status, invalid) = sum_of(&server, input, "").await;
            assert_eq!(status, 422, "input {input:?}: {invalid}");
            assert_eq!(invalid["status"], "invalid");
            assert_eq!(invalid["error"], "invalid input");
            assert_eq!(invalid["input"], input);
        }
        let (status, long) = sum_of(&server, &"9".repeat(5000), "").await;
        assert_eq!(status, 422);
        assert!(
            long["detail"].as_str().unwrap().contains("1,000 digits"),
            "{long}"
        );
        assert_eq!(
            long["input"].as_str().unwrap().len(),
            100,
            "the echo is cut short"
        );
        assert_eq!(server.math.counts().started, started);
    });
}

#[test]
fn malformed_requests_get_json_errors_and_change_nothing() {
    let server = TestNode::start(100);
    client_runtime().block_on(async {
        let processes = server.node.process_count();
        let cases: &[(&str, &str, u16)] = &[
            ("{\"input\":", "", 400),
            ("not json", "", 400),
            ("[\"5\"]", "", 422),
            ("{\"input\":5}", "", 422),
            ("{}", "", 422),
            ("{\"input\":\"5\",\"extra\":1}", "", 422),
            ("{\"input\":\"5\"}", "?wait_ms=abc", 400),
            ("{\"input\":\"5\"}", "?wait_ms=60001", 400),
            ("{\"input\":\"5\"}", "?wait_ms=-1", 400),
        ];
        for (body, query, want) in cases {
            let (status, error) = post_sum(&server, body, query).await;
            assert_eq!(status, *want, "body {body:?} query {query:?}: {error}");
            assert_eq!(error["status"], "bad_request");
            assert!(!error["error"].as_str().unwrap().is_empty());
        }
        // A 1 MiB body is refused before it is read whole.
        let big = json!({ "input": "1".repeat(1 << 20) }).to_string();
        let (status, error) = post_sum(&server, &big, "").await;
        assert_eq!(status, 413);
        assert_eq!(error["status"], "bad_request");
        // Without a JSON content type.
        let response = http()
            .post(server.url("/api/sum"))
            .body("{\"input\":\"5\"}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 415);
        let response = http().get(server.url("/api/nope")).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 404);
        assert_eq!(
            response.json::<Value>().await.unwrap()["status"],
            "bad_request"
        );
        // Nothing was started, nothing left behind.
        assert_eq!(server.math.counts().started, 0);
        wait_until("request processes to end", || async {
            server.node.process_count() == processes
        })
        .await;
        // And the API still works.
        assert_eq!(sum_of(&server, "100", "").await.1["result"], "5050");
    });
}

#[test]
fn health_and_exact_results_from_the_fixed_guest() {
    let server = TestNode::start(100);
    client_runtime().block_on(async {
        let health = http().get(server.url("/api/health")).send().await.unwrap();
        assert_eq!(health.status().as_u16(), 200);
        assert_eq!(
            health.json::<Value>().await.unwrap(),
            json!({"status": "ok"})
        );

        assert_eq!(server.upgrade_math(), 2);
        let (status, big) = sum_of(&server, "9999999999", "").await;
        assert_eq!(status, 200);
        assert_eq!(big["result"], "49999999995000000000");
        let (_, max) = sum_of(&server, &i64::MAX.to_string(), "").await;
        // (2^63 - 1) · 2^63 / 2, beyond 64 bits and exact.
        assert_eq!(max["result"], "42535295865117307928310139910543638528");
        let (status, negative) = sum_of(&server, "-1", "").await;
        assert_eq!(status, 422);
        assert_eq!(negative["status"], "invalid");
        assert!(negative["pid"].is_string(), "the guest itself said so");
        assert_eq!(sum_of(&server, "13", "").await.1["result"], "91");

        // Integers of any size, exact: 1,000 nines and 10^999 (their sums
        // have closed forms to check against), and a 30-digit negative one
        // the guest itself refuses.
        let nines = "9".repeat(1000);
        let (status, answer) = sum_of(&server, &nines, "").await;
        assert_eq!(status, 200, "{answer}");
        let expected = format!("4{}5{}", "9".repeat(999), "0".repeat(999));
        assert_eq!(answer["result"], expected.as_str());
        assert_eq!(answer["input"], "9".repeat(100), "the echo is cut short");
        let power = format!("1{}", "0".repeat(999));
        let (_, answer) = sum_of(&server, &power, "").await;
        let expected = format!("5{}5{}", "0".repeat(998), "0".repeat(998));
        assert_eq!(answer["result"], expected.as_str());
        let (status, negative) = sum_of(&server, "-123456789012345678901234567890", "").await;
        assert_eq!((status, &negative["status"]), (422, &json!("invalid")));
        assert!(negative["pid"].is_string(), "the guest itself said so");
    });
}

#[test]
fn beyond_the_calculation_limit_the_api_says_overloaded() {
    let server = TestNode::start(3);
    client_runtime().block_on(async {
        for _ in 0..3 {
            let (status, _) = sum_of(&server, "-1", "?wait_ms=0").await;
            assert_eq!(status, 202);
        }
        let response = http()
            .post(server.url("/api/sum"))
            .json(&json!({"input": "5"}))
            .send()
            .await
            .unwrap();
        // This client holds all three slots: its fair share. Retrying in a
        // second would not help, and the answer says why.
        assert_eq!(response.status().as_u16(), 503);
        assert_eq!(response.headers()["retry-after"], "10");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "overloaded");
        assert_eq!(body["input"], "5");
        let why = body["error"].as_str().unwrap();
        assert!(
            why.contains("you hold 3") && why.contains("fair share"),
            "{why}"
        );
        // Room again once the runaways are killed.
        server.kill_calculations();
        wait_until("the runaways to end", || async {
            server.math.running().is_empty()
        })
        .await;
        assert_eq!(sum_of(&server, "5", "").await.1["result"], "15");
    });
}

#[test]
fn pages_and_api_answer_while_twenty_runaways_run() {
    let server = TestNode::start(100);
    client_runtime().block_on(async {
        for _ in 0..20 {
            assert_eq!(sum_of(&server, "-1", "?wait_ms=0").await.0, 202);
        }
        assert_eq!(server.math.running().len(), 20);
        // Every request below is bounded by the client's timeout: a hang fails.
        for _ in 0..10 {
            let page = http().get(server.url("/")).send().await.unwrap();
            assert_eq!(page.status().as_u16(), 200);
            assert!(page.text().await.unwrap().contains("∑(1..n)"));
            let (status, answer) = sum_of(&server, "5", "?wait_ms=10000").await;
            assert_eq!((status, &answer["result"]), (200, &json!("15")));
        }
        assert_eq!(server.math.running().len(), 20);
    });
}

#[test]
fn every_page_links_every_page_and_loads_nothing_from_elsewhere() {
    let server = TestNode::start(100);
    client_runtime().block_on(async {
        let page = http().get(server.url("/")).send().await.unwrap();
        assert_eq!(page.status().as_u16(), 200);
        assert!(
            page.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let html = page.text().await.unwrap();
        assert!(html.contains("name=\"viewport\""), "mobile viewport");
        for path in ["/", "/dashboard/processes", "/dashboard/system"] {
            assert!(
                html.contains(&format!("href=\"{path}\"")),
                "nav links {path}"
            );
        }
        // Every script and stylesheet is ours, and served.
        let refs: Vec<&str> = html
            .split(['"', '\''])
            .filter(|s| s.starts_with("/assets/") || s.contains("://"))
            .collect();
        assert!(refs.len() >= 5, "{refs:?}");
        for r in refs {
            assert!(r.starts_with("/assets/"), "external reference {r}");
            let asset = http().get(server.url(r)).send().await.unwrap();
            assert_eq!(asset.status().as_u16(), 200, "{r}");
            assert!(
                asset.headers()["cache-control"]
                    .to_str()
                    .unwrap()
                    .contains("immutable")
            );
            assert!(!asset.bytes().await.unwrap().is_empty());
        }
        let missing = http()
            .get(server.url("/no/such/page"))
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status().as_u16(), 404);
        assert!(missing.text().await.unwrap().contains("<nav"));
        let missing = http()
            .get(server.url("/assets/nope.js"))
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status().as_u16(), 404);
    });
}

#[test]
fn calculations_live_under_the_math_supervisor() {
    let server = TestNode::start(100);
    client_runtime().block_on(async {
        let (_, running) = sum_of(&server, "-1", "?wait_ms=0").await;
        let pid = pid_of(&server, &running);
        let info = server.node.info(&pid).unwrap();
        let math_sup = server.node.resolve("math_sup").unwrap();
        assert_eq!(info.parent, Some(math_sup.id()));
        assert_eq!(info.label, "sandbox math v1");
        let sup = owl_runtime::supervisor::SupervisorRef::from_pid(math_sup);
        assert_eq!(
            sup.count_children(Duration::from_secs(5))
                .await
                .unwrap()
                .active,
            1
        );
        assert!(server.node.kill(&pid));
        wait_until("the supervisor to forget it", || async {
            sup.count_children(Duration::from_secs(5))
                .await
                .unwrap()
                .active
                == 0
        })
        .await;
        assert_eq!(server.math.counts().killed, 1);
    });
}
