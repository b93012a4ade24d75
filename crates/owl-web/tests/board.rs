//! The bulletin board against a real node and a real SQLite file: posting,
//! validation, escaping, the rate limit, moderation rights, failures that
//! show the flash, and the QR code.

mod common;

use common::{ADMIN_TOKEN, Options, TestNode, client_runtime, get_admin_text, get_json, http};
use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

async fn post(server: &TestNode, topic: &str, body: Value, cookie: Option<&str>) -> (u16, Value) {
    let mut request = http()
        .post(server.url(&format!("/api/board/{topic}")))
        .json(&body);
    if let Some(c) = cookie {
        request = request.header("cookie", c);
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn posts(server: &TestNode, topic: &str) -> Vec<Value> {
    let r: Value = get_json(server, &format!("/api/board/{topic}?limit=1000")).await;
    r["posts"].as_array().unwrap().clone()
}

#[test]
fn posts_are_stored_listed_paged_and_refused_when_invalid() {
    let server = TestNode::start(10);
    client_runtime().block_on(async {
        let (status, first) = post(
            &server,
            "building-blocks",
            json!({"text": "supervisors\nand links", "author": " Ada "}),
            None,
        )
        .await;
        assert_eq!(status, 201, "{first}");
        assert_eq!(
            (first["text"].as_str(), first["author"].as_str()),
            (Some("supervisors\nand links"), Some("Ada"))
        );
        assert!(first["inserted_at"].as_str().unwrap().ends_with('Z'));
        for i in 0..3 {
            let (status, _) = post(
                &server,
                "building-blocks",
                json!({"text": format!("p{i}"), "author": "Bo"}),
                Some(&common::visitor_cookie(&server).await),
            )
            .await;
            assert_eq!(status, 201);
        }
        // Newest first, paged with `next`.
        let page: Value = get_json(&server, "/api/board/building-blocks?limit=2").await;
        let ids: Vec<i64> = page["posts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_i64().unwrap())
            .collect();
        assert!(ids[0] > ids[1]);
        let next = page["next"].as_i64().unwrap();
        let rest: Value = http()
            .get(server.url(&format!(
                "/api/board/building-blocks?limit=10&before={next}"
            )))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(rest["posts"].as_array().unwrap().len(), 2);
        assert!(rest["next"].is_null());
        assert!(
            posts(&server, "observability").await.is_empty(),
            "topics are apart"
        );

        // Invalid posts: clear messages per field, nothing stored.
        let before = posts(&server, "building-blocks").await.len();
        let cases = [
            (json!({"text": "", "author": "A"}), 422),
            (json!({"text": "  \n ", "author": "A"}), 422),
            (json!({"text": "x".repeat(2001), "author": "A"}), 422),
            (json!({"text": "ok", "author": "y".repeat(81)}), 422),
            (json!({"text": "ok"}), 422),
            (json!({"text": 5, "author": "A"}), 422),
            (json!({"text": "ok", "author": "A", "extra": 1}), 422),
            (json!(["ok", "A"]), 422),
            (json!({"text": "bell\u{7}", "author": "A"}), 422),
        ];
        for (body, want) in cases {
            let (status, answer) = post(&server, "building-blocks", body.clone(), None).await;
            assert_eq!(status, want, "{body} → {answer}");
        }
        let (_, answer) = post(
            &server,
            "building-blocks",
            json!({"text": " ", "author": ""}),
            None,
        )
        .await;
        assert_eq!(answer["errors"]["text"], "must not be empty");
        assert_eq!(answer["errors"]["author"], "must not be empty");
        // Bytes that are not UTF-8.
        let r = http()
            .post(server.url("/api/board/building-blocks"))
            .header("content-type", "application/json")
            .body(b"{\"text\":\"\xff\xfe\",\"author\":\"A\"}".to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400);
        assert_eq!(posts(&server, "building-blocks").await.len(), before);
        // Unknown topics.
        assert_eq!(
            post(&server, "nope", json!({"text": "a", "author": "b"}), None)
                .await
                .0,
            404
        );
        let r = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        for path in ["/board", "/board/nope"] {
            let answer = r.get(server.url(path)).send().await.unwrap();
            assert_eq!(answer.status().as_u16(), 303);
            assert_eq!(answer.headers()["location"], "/board/building-blocks");
        }
    });
}

#[test]
fn the_rate_limit_answers_429_and_moderation_needs_the_token() {
    let server = TestNode::start(10);
    client_runtime().block_on(async {
        let me = &common::visitor_cookie(&server).await;
        let mut statuses = Vec::new();
        for i in 0..7 {
            statuses.push(
                post(
                    &server,
                    "observability",
                    json!({"text": format!("n{i}"), "author": "C"}),
                    Some(me),
                )
                .await
                .0,
            );
        }
        assert_eq!(&statuses[..5], &[201; 5]);
        assert_eq!(statuses[5], 429, "{statuses:?}");
        let r = http()
            .post(server.url("/api/board/observability"))
            .header("cookie", me)
            .json(&json!({"text": "again", "author": "C"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 429);
        assert!(r.headers().contains_key("retry-after"));
        // Another visitor is not held back by this one's limit; a cookie
        // the node did not sign is no visitor's (it counts as its address).
        let neighbour = &common::visitor_cookie(&server).await;
        let (status, _) = post(
            &server,
            "observability",
            json!({"text": "mine", "author": "D"}),
            Some(neighbour),
        )
        .await;
        assert_eq!(status, 201);

        let id = posts(&server, "observability").await[0]["id"]
            .as_i64()
            .unwrap();
        // Without the token: refused, nothing changes.
        let r = http()
            .delete(server.url(&format!("/api/board/observability/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401);
        let r = http()
            .post(server.url(&format!("/board/observability/admin/delete/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401);
        let r = http()
            .post(server.url("/board/observability/admin/reset"))
            .form(&[("csrf", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401);
        assert_eq!(
            http()
                .get(server.url("/board/observability/admin"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
            401
        );
        assert_eq!(posts(&server, "observability").await.len(), 6);
        // With it: gone.
        let r = http()
            .delete(server.url(&format!("/api/board/observability/{id}")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 204);
        assert_eq!(posts(&server, "observability").await.len(), 5);
        let r = http()
            .delete(server.url(&format!("/api/board/observability/{id}")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 404);
    });
}

#[test]
fn the_moderator_freezes_the_board_from_its_admin_page_and_thaws_it_again() {
    let server = TestNode::start(4);
    client_runtime().block_on(async {
        let switch = |on: &'static str, token: Option<&'static str>| {
            let mut request = http()
                .post(server.url("/board/building-blocks/admin/read-only"))
                .form(&[("on", on)]);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            async move { request.send().await.unwrap().status().as_u16() }
        };
        let admin_page = || get_admin_text(&server, "/board/building-blocks/admin");
        assert!(admin_page().await.contains("Refuse new posts"));
        // A visitor cannot freeze it.
        assert_eq!(switch("true", None).await, 401);
        let (status, _) = post(
            &server,
            "building-blocks",
            json!({"text": "open", "author": "A"}),
            None,
        )
        .await;
        assert_eq!(status, 201);

        // Redirected back (reqwest follows) to a page that says so.
        assert_eq!(switch("true", Some(ADMIN_TOKEN)).await, 200);
        let page = admin_page().await;
        assert!(
            page.contains("Read-only:") && page.contains("Accept posts again"),
            "{page}"
        );
        let (status, body) = post(
            &server,
            "building-blocks",
            json!({"text": "frozen", "author": "A"}),
            None,
        )
        .await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"], "Posting of Message failed.");
        // Moderation still works while frozen.
        let id = posts(&server, "building-blocks").await[0]["id"]
            .as_i64()
            .unwrap();
        let r = http()
            .delete(server.url(&format!("/api/board/building-blocks/{id}")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 204);
        // A form that is not understood changes nothing.
        assert_eq!(switch("maybe", Some(ADMIN_TOKEN)).await, 400);
        assert!(admin_page().await.contains("Accept posts again"));

        assert_eq!(switch("false", Some(ADMIN_TOKEN)).await, 200);
        let (status, _) = post(
            &server,
            "building-blocks",
            json!({"text": "thawed", "author": "A"}),
            None,
        )
        .await;
        assert_eq!(status, 201);
        let texts: Vec<Value> = posts(&server, "building-blocks")
            .await
            .iter()
            .map(|p| p["text"].clone())
            .collect();
        assert_eq!(texts, [json!("thawed")]);
    });
}

#[test]
fn posts_are_escaped_and_a_failed_save_shows_the_flash_and_keeps_the_text() {
    let server = TestNode::start(10);
    client_runtime().block_on(async {
        let url = format!("ws://{}/live/board/building-blocks", server.addr);
        let (mut page, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let send = |text: &'static str| {
            json!({"event": "post", "text": text, "author": "<i>Eve</i>"}).to_string()
        };
        page.send(Message::Text(send("<script>alert(1)</script>").into()))
            .await
            .unwrap();
        // Saved: in the list of posts, not only kept in the form.
        let listed = |h: &str| {
            h.split_once("<li id=\"post-")
                .is_some_and(|(_, l)| l.contains("alert(1)"))
        };
        let shown = common::ws::until(&mut page, listed).await;
        assert!(
            shown.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{shown}"
        );
        assert!(!shown.contains("<script>alert"));
        assert!(shown.contains("&lt;i&gt;Eve&lt;/i&gt;"));

        // The database refuses writes: the poster sees the flash, keeps the text.
        let services_board = server.board.clone();
        server.block_on(async move { services_board.set_read_only(true).await.unwrap() });
        page.send(Message::Text(send("lost?").into()))
            .await
            .unwrap();
        let failed = common::ws::until(&mut page, |h| {
            h.contains("Posting of Message failed") && h.contains("lost?")
        })
        .await;
        // Why, and what to do, in words a phone shows (no tooltip).
        assert!(
            failed.contains("the board is read-only for now. Your text is kept"),
            "{failed}"
        );
        assert!(
            failed.contains(">lost?</textarea>"),
            "the form keeps the text: {failed}"
        );
        // Nothing half-written.
        assert!(
            !posts(&server, "building-blocks")
                .await
                .iter()
                .any(|p| p["text"] == "lost?")
        );
        // The cause gone, the board works again.
        let services_board = server.board.clone();
        server.block_on(async move { services_board.set_read_only(false).await.unwrap() });
        page.send(Message::Text(send("back").into())).await.unwrap();
        let ok = common::ws::until(&mut page, |h| h.contains(">back<")).await;
        assert!(!ok.contains("Posting of Message failed"));
    });
}

#[test]
fn the_qr_code_decodes_to_the_topics_public_address() {
    let server = TestNode::with(Options {
        public_url: Some("https://talk.example/".into()),
        ..Options::default()
    });
    client_runtime().block_on(async {
        let r = http()
            .get(server.url("/board/observability/qr.svg"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["content-type"], "image/svg+xml");
        let svg = r.text().await.unwrap();
        assert_eq!(
            decode_qr_svg(&svg),
            "https://talk.example/board/observability"
        );
        let page = common::get_text(&server, "/board/observability").await;
        assert!(page.contains("/board/observability/qr.svg"));
    });
}

/// Rasterizes the SVG's dark squares and decodes them as a QR code.
fn decode_qr_svg(svg: &str) -> String {
    let size: usize = svg
        .split("width=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let mut dark = vec![false; size * size];
    // The renderer draws one path of unit squares: "M{x} {y}h{w}v{h}H{x}V{y}" pieces.
    let d = svg
        .split(" d=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    for piece in d.split('M').skip(1) {
        let nums: Vec<usize> = piece
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap())
            .collect();
        let (x, y, w, h) = (nums[0], nums[1], nums[2], nums[3]);
        for yy in y..(y + h).min(size) {
            for xx in x..(x + w).min(size) {
                dark[yy * size + xx] = true;
            }
        }
    }
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(size, size, |x, y| {
        if dark[y * size + x] { 0 } else { 255 }
    });
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code");
    grids[0].decode().unwrap().1
}

/// Posts that escape to far more than they hold (2,000 `"` become 12 KB of
/// HTML) and long ordinary posts never take the live board down: every
/// viewer stays connected and sees each new post, and a page opened
/// afterwards gets the newest posts at once, with a link to the older
/// ones. (The live socket once refused any frame over 64 KiB and dropped
/// every viewer of the topic, for good.)
#[test]
fn big_posts_never_take_the_live_board_down() {
    use common::ws::{connect_to, until, until_text};
    let server = TestNode::with(Options {
        post_limit: Some(1000),
        ..Options::default()
    });
    client_runtime().block_on(async {
        let path = "/live/board/observability";
        let mut viewer = connect_to(&server, path, None).await;
        until(&mut viewer, |html| {
            html.contains("id=\"posts\"") && !html.contains("loading posts")
        })
        .await;
        let mut last = 0;
        let quotes = "\"".repeat(2000);
        let letters = "a".repeat(2000);
        for text in std::iter::repeat_n(&quotes, 7).chain(std::iter::repeat_n(&letters, 40)) {
            let (status, answer) = post(
                &server,
                "observability",
                json!({"text": text, "author": "\"\"\"\""}),
                None,
            )
            .await;
            assert_eq!(status, 201, "{answer}");
            last = answer["id"].as_i64().unwrap();
            // Every viewer hears of every post, however big the page got.
            until_text(&mut viewer, &format!("post-{last}")).await;
        }
        // A page opened now gets the newest posts in its first frames.
        let mut fresh = connect_to(&server, path, None).await;
        let page = until(&mut fresh, |html| html.contains(&format!("post-{last}"))).await;
        assert_eq!(
            page.matches("<li id=\"post-").count(),
            30,
            "the newest 30 posts"
        );
        assert!(page.contains("Older posts"), "and a way to the older ones");
        assert!(page.len() < 1024 * 1024, "{} bytes", page.len());
        // A moderator acts on the topic it names: a post of another topic
        // is not found there, and stays.
        let elsewhere = http()
            .delete(server.url(&format!("/api/board/building-blocks/{last}")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(elsewhere.status().as_u16(), 404);
        assert_eq!(posts(&server, "observability").await[0]["id"], last);
        // Both viewers are still live: a deletion reaches them as a change.
        let admin = http()
            .delete(server.url(&format!("/api/board/observability/{last}")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(admin.status().as_u16(), 204);
        for socket in [&mut viewer, &mut fresh] {
            let change = until_text(socket, &format!("post-{last}")).await;
            assert!(change.contains("hx-swap-oob=\"delete\""), "{change}");
            assert!(
                change.len() < 64 * 1024,
                "a deletion is a small change: {} bytes",
                change.len()
            );
        }
    });
}
