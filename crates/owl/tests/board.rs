//! The board's durability against a real `owl serve` and its SQLite file:
//! posts survive a restart, and every post acknowledged (201) survives a
//! `kill -9` in the middle of a thousand.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;
use common::{LIMIT, Served, http};

fn post(addr: &str, text: &str, client: usize) -> Option<i64> {
    let body = format!("{{\"text\":\"{text}\",\"author\":\"load\"}}");
    let request = format!(
        "POST /api/board/building-blocks HTTP/1.0\r\nContent-Type: application/json\r\nCookie: owl_client={client:032x}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let answer = std::panic::catch_unwind(|| http(addr, &request)).ok()?;
    if !answer.starts_with("HTTP/1.0 201") {
        return None;
    }
    let json: serde_json::Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1)?).ok()?;
    json["id"].as_i64()
}

/// Every post of the topic: (id, text).
fn all_posts(addr: &str) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    let mut before = String::new();
    loop {
        let page = http(
            addr,
            &format!("GET /api/board/building-blocks?limit=1000{before} HTTP/1.0\r\n\r\n"),
        );
        let json: serde_json::Value =
            serde_json::from_str(page.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        for p in json["posts"].as_array().unwrap() {
            out.push((
                p["id"].as_i64().unwrap(),
                p["text"].as_str().unwrap().to_string(),
            ));
        }
        match json["next"].as_i64() {
            Some(next) => before = format!("&before={next}"),
            None => return out,
        }
    }
}

#[test]
fn posts_survive_a_restart() {
    let mut node = Served::start("board-restart");
    let id = post(node.addr(), "kept", 1).expect("posted");
    let _ = node.child.kill();
    let _ = node.child.wait();
    let again = node.restart(&[]);
    assert!(all_posts(again.addr()).contains(&(id, "kept".to_string())));
}

#[test]
fn every_acknowledged_post_survives_kill_9() {
    let mut node = Served::start_with(
        "board-kill9",
        &["--post-limit", "1000", "--post-limit-per-address", "100000"],
    );
    let addr = node.addr().to_string();
    let acked: Arc<Mutex<Vec<(i64, String)>>> = Arc::default();
    let posters: Vec<_> = (0..20)
        .map(|thread| {
            let (addr, acked) = (addr.clone(), acked.clone());
            std::thread::spawn(move || {
                for i in 0..50 {
                    let text = format!("t{thread}-{i}");
                    if let Some(id) = post(&addr, &text, thread + 1) {
                        acked.lock().unwrap().push((id, text));
                    }
                }
            })
        })
        .collect();
    // Kill the node hard while posts are in flight.
    let started = Instant::now();
    while acked.lock().unwrap().len() < 200 {
        assert!(started.elapsed() < LIMIT, "posts are not acknowledged");
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: SIGKILL to our own child process.
    unsafe { libc::kill(node.child.id() as i32, libc::SIGKILL) };
    let _ = node.child.wait();
    for p in posters {
        p.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 200);
    let again = node.restart(&[]);
    let stored: std::collections::HashMap<i64, String> =
        all_posts(again.addr()).into_iter().collect();
    let lost: Vec<_> = acked
        .iter()
        .filter(|(id, text)| stored.get(id) != Some(text))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged posts lost: {lost:?}",
        lost.len()
    );
}
