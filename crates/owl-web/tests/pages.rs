//! What a phone on conference Wi-Fi gets from the pages, over real HTTP:
//! compressed bodies, an icon, the board's posts in the first HTML, and
//! whether the admin is logged in, in the nav bar of every page.

mod common;

use std::io::Read;

use common::{TestNode, admin_cookie, client_runtime, get_text, http, post_json};
use serde_json::json;

/// `GET path` asking for gzip: (content-encoding, body bytes as sent).
async fn get_gzip(server: &TestNode, path: &str) -> (Option<String>, Vec<u8>) {
    let r = http()
        .get(server.url(path))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "GET {path}");
    let encoding = r
        .headers()
        .get("content-encoding")
        .map(|v| v.to_str().unwrap().to_string());
    (encoding, r.bytes().await.unwrap().to_vec())
}

fn gunzip(bytes: &[u8]) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut text)
        .expect("a gzip body");
    text
}

#[test]
fn pages_and_assets_are_compressed_for_browsers_that_accept_it() {
    let server = TestNode::start(10);
    client_runtime().block_on(async {
        for (path, marker) in [
            ("/", "∑(1..n)"),
            ("/load", "Load control"),
            ("/board/building-blocks", "id=\"posts\""),
            ("/assets/app.css", "box-sizing"),
            ("/assets/htmx-2.0.11.min.js", "htmx"),
        ] {
            let (encoding, body) = get_gzip(&server, path).await;
            assert_eq!(encoding.as_deref(), Some("gzip"), "{path}");
            let plain = gunzip(&body);
            assert!(plain.contains(marker), "{path}: {plain}");
            // Most of what a page weighs is its scripts, a third or less
            // of their size once compressed.
            let most = if plain.len() > 10_000 {
                plain.len() / 3
            } else {
                plain.len()
            };
            assert!(
                body.len() < most,
                "{path}: {} bytes sent for {}",
                body.len(),
                plain.len()
            );
        }
        // A client that does not ask gets the plain text.
        let r = http().get(server.url("/")).send().await.unwrap();
        assert!(r.headers().get("content-encoding").is_none());
        assert!(r.text().await.unwrap().contains("∑(1..n)"));
    });
}

#[test]
fn every_page_has_an_icon() {
    let server = TestNode::start(10);
    client_runtime().block_on(async {
        let html = get_text(&server, "/").await;
        let href = html
            .split("rel=\"icon\"")
            .nth(1)
            .and_then(|rest| rest.split("href=\"").nth(1))
            .and_then(|rest| rest.split('"').next())
            .expect("an icon link")
            .to_string();
        let icon = http().get(server.url(&href)).send().await.unwrap();
        assert_eq!(icon.status().as_u16(), 200);
        assert_eq!(icon.headers()["content-type"], "image/svg+xml");
        assert!(icon.text().await.unwrap().contains("<svg"));
        // Browsers that ask for /favicon.ico before reading the page.
        let ico = http().get(server.url("/favicon.ico")).send().await.unwrap();
        assert_eq!(ico.status().as_u16(), 200);
        assert_eq!(ico.headers()["content-type"], "image/svg+xml");
    });
}

#[test]
fn the_board_sends_its_newest_posts_in_the_first_html() {
    let server = TestNode::start(10);
    client_runtime().block_on(async {
        let empty = get_text(&server, "/board/observability").await;
        assert!(empty.contains("No posts yet"), "{empty}");
        assert!(!empty.contains("loading posts"), "{empty}");

        for n in 1..=3 {
            let body = json!({"text": format!("first paint {n} <b>bold</b>"), "author": "Ann"});
            let answer: serde_json::Value =
                post_json(&server, "/api/board/observability", &body).await;
            assert!(answer["id"].is_number(), "{answer}");
        }
        let html = get_text(&server, "/board/observability").await;
        let (one, three) = (
            html.find("first paint 1").expect("post 1 in the page"),
            html.find("first paint 3").expect("post 3 in the page"),
        );
        assert!(three < one, "newest first");
        assert!(html.contains("&lt;b&gt;bold&lt;/b&gt;"), "escaped");
        // When, in a form no locale can misread.
        assert!(html.contains("<time datetime="), "{html}");
        assert!(html.contains(" UTC</time>"), "{html}");
        assert!(!html.contains("No posts yet"));
        // Still a live page: it connects for what comes next.
        assert!(html.contains("ws-connect=\"/live/board/observability\""));

        // Each topic's tab counts its posts; a post on this node counts at
        // once (the counts of a page load are at most seconds old).
        let tab = |html: &str, topic: &str| -> Option<String> {
            let at = html.find(&format!("href=\"/board/{topic}\""))?;
            let rest = &html[at..];
            let end = rest.find("</a>")?;
            let count = rest[..end].split("class=\"count\"").nth(1)?;
            Some(count.split('>').nth(1)?.split('<').next()?.to_string())
        };
        assert_eq!(tab(&html, "observability").as_deref(), Some("3"), "{html}");
        assert_eq!(tab(&html, "building-blocks").as_deref(), Some("0"));
        let body = json!({"text": "one more", "author": "Bo"});
        let _: serde_json::Value = post_json(&server, "/api/board/building-blocks", &body).await;
        let html = get_text(&server, "/board/observability").await;
        assert_eq!(
            tab(&html, "building-blocks").as_deref(),
            Some("1"),
            "{html}"
        );
    });
}

#[test]
fn the_nav_bar_says_whether_the_admin_is_logged_in() {
    let server = TestNode::start(10);
    client_runtime().block_on(async {
        let visitor = get_text(&server, "/board").await;
        assert!(visitor.contains("href=\"/login\""), "{visitor}");
        // The login page says why a restart asks again.
        let login = get_text(&server, "/login").await;
        assert!(login.contains("ends when the node restarts"), "{login}");
        assert!(!visitor.contains("Log out"));

        let cookie = admin_cookie(&server).await;
        for path in ["/", "/board", "/dashboard/system"] {
            let html = http()
                .get(server.url(path))
                .header("cookie", &cookie)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            assert!(
                html.contains("action=\"/logout\"") && html.contains("Log out"),
                "{path}: {html}"
            );
            assert!(html.contains("class=\"admin-mark\""), "{path}");
        }
    });
}

#[test]
fn the_supervision_tree_has_a_page_of_its_own() {
    let server = common::TestNode::start_with(10, true);
    client_runtime().block_on(async {
        let html = get_text(&server, "/dashboard/tree").await;
        // The root and the services under it, each a link to its process.
        for part in ["math_sup", "board_sup", "load"] {
            assert!(html.contains(part), "{part}: {html}");
        }
        assert!(html.contains("href=\"/dashboard/processes/"), "{html}");
        assert!(html.contains(" children"), "{html}");
    });
    // Without public dashboards it is the admin's, like the others.
    let private = TestNode::start(10);
    client_runtime().block_on(async {
        let r = http()
            .get(private.url("/dashboard/tree"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401);
    });
}
