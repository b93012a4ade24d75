//! Dashboards, /metrics and who may do what, over real HTTP.

mod common;

use common::{ADMIN_TOKEN, TestNode, admin_cookie, client_runtime, http, post_json, wait_until};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Starts a runaway calculation through the API; returns its pid number.
async fn runaway(server: &TestNode) -> u64 {
    let answer: serde_json::Value =
        post_json(server, "/api/sum?wait_ms=0", &json!({"input": "-1"})).await;
    let pid: owl_runtime::PidId = answer["pid"].as_str().unwrap().parse().unwrap();
    pid.0
}

/// The status of `GET path` without credentials.
async fn status_of(server: &TestNode, path: &str) -> u16 {
    let response = http().get(server.url(path)).send().await.unwrap();
    response.status().as_u16()
}

/// The CSRF field of a page's kill form.
fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a kill form") + 19;
    html[at..].split('"').next().unwrap().to_string()
}

#[test]
fn killing_from_the_browser_needs_the_token_and_a_genuine_form() {
    let server = TestNode::start(100);
    client_runtime().block_on(async {
        let n = runaway(&server).await;
        let alive = || server.node.lookup(owl_runtime::PidId(n)).is_some();
        let detail = server.url(&format!("/dashboard/processes/{n}"));
        let kill = format!("{detail}/kill");

        // No token: the pages ask for it, and a kill is refused.
        let page = http().get(&detail).send().await.unwrap();
        assert_eq!(page.status().as_u16(), 401);
        assert!(page.text().await.unwrap().contains("Admin login"));
        assert_eq!(status_of(&server, "/dashboard/processes").await, 401);
        assert_eq!(status_of(&server, "/metrics").await, 401);
        let refused = http()
            .post(&kill)
            .form(&[("csrf", "x")])
            .send()
            .await
            .unwrap();
        // Not logged in: the guard on the admin routes answers with the
        // login page before any form is looked at.
        assert_eq!(refused.status().as_u16(), 401);
        assert!(alive());

        // A wrong token does not log in; the right one sets the cookie.
        let no_redirect = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let wrong = no_redirect
            .post(server.url("/login"))
            .form(&[("token", "guess-guess-guess")])
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status().as_u16(), 401);
        let login = no_redirect
            .post(server.url("/login"))
            .form(&[("token", ADMIN_TOKEN), ("next", "/dashboard/system")])
            .send()
            .await
            .unwrap();
        assert_eq!(login.status().as_u16(), 303);
        assert_eq!(login.headers()["location"], "/dashboard/system");
        let set_cookie = login.headers()["set-cookie"].to_str().unwrap().to_string();
        assert!(
            set_cookie.starts_with("owl_admin=")
                && set_cookie.contains("HttpOnly")
                && set_cookie.contains("SameSite=Strict"),
            "{set_cookie}"
        );
        assert!(
            !set_cookie.contains(ADMIN_TOKEN),
            "the cookie is a session, not the token"
        );
        let session = set_cookie.split(';').next().unwrap().to_string();
        let cookie = session.as_str();
        // The token itself as a cookie proves nothing.
        let token_cookie = format!("owl_admin={ADMIN_TOKEN}");
        let page = http()
            .get(&detail)
            .header("cookie", &token_cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(page.status().as_u16(), 401);

        // With the token: the detail page shows the guest's stack and a Kill button.
        let page = http()
            .get(&detail)
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(page.status().as_u16(), 200);
        let html = page.text().await.unwrap();
        assert!(
            html.contains("math:sum(-1)") && html.contains("naive_sum"),
            "{html}"
        );
        let csrf = csrf_of(&html);

        // The cookie alone is not enough: no form field, or a forged one, or another site.
        for fields in [vec![], vec![("csrf", "forged")]] {
            let r = http()
                .post(&kill)
                .header("cookie", cookie)
                .form(&fields)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 403);
        }
        let cross = http()
            .post(&kill)
            .header("cookie", cookie)
            .header("origin", "http://evil.example")
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(cross.status().as_u16(), 403);
        assert!(alive());

        // The genuine form kills it.
        let origin = format!("http://{}", server.addr);
        let killed = no_redirect
            .post(&kill)
            .header("cookie", cookie)
            .header("origin", origin)
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(killed.status().as_u16(), 303);
        wait_until("the process to end", || async { !alive() }).await;
        let gone = http()
            .get(&detail)
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(gone.status().as_u16(), 404);
    });
}

#[test]
fn public_dashboards_show_everything_but_still_refuse_kills() {
    let server = TestNode::start_with(100, true);
    client_runtime().block_on(async {
        let n = runaway(&server).await;
        for path in [
            "/dashboard/processes",
            "/dashboard/system",
            &format!("/dashboard/processes/{n}"),
        ] {
            let page = http().get(server.url(path)).send().await.unwrap();
            assert_eq!(page.status().as_u16(), 200, "{path}");
            let html = page.text().await.unwrap();
            assert!(
                !html.contains("name=\"csrf\""),
                "no kill form without the token: {path}"
            );
        }
        let refused = http()
            .post(server.url(&format!("/dashboard/processes/{n}/kill")))
            .form(&[("csrf", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status().as_u16(), 401);
        assert!(server.node.lookup(owl_runtime::PidId(n)).is_some());
    });
}

#[test]
fn metrics_speak_prometheus() {
    let server = TestNode::start(2);
    client_runtime().block_on(async {
        runaway(&server).await;
        runaway(&server).await;
        // The third is refused at the limit of 2.
        let refused = http()
            .post(server.url("/api/sum"))
            .json(&json!({"input": "5"}))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status().as_u16(), 503);
        let metrics = http()
            .get(server.url("/metrics"))
            .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
            .send()
            .await
            .unwrap();
        assert_eq!(metrics.status().as_u16(), 200);
        assert!(
            metrics.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain; version=0.0.4")
        );
        let text = metrics.text().await.unwrap();
        for line in [
            "owl_calculations_started_total 2",
            "owl_calculations_refused_total 1",
            "owl_calculations_crashed_total 0",
            "owl_module_version{module=\"math\"} 1",
            "owl_supervisor_restarts_total{supervisor=\"math_sup\"} 0",
            "# TYPE owl_processes gauge",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        // Every sample line is `name{labels} number`.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let value = l.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{l}");
        }
    });
}

#[test]
fn the_live_process_table_refreshes_and_filters() {
    let server = TestNode::start(100);
    client_runtime().block_on(async {
        let n = runaway(&server).await;
        let mut request = format!("ws://{}/live/dashboard/processes", server.addr)
            .into_client_request()
            .unwrap();
        // Without the token the live table is refused too.
        assert!(
            tokio_tungstenite::connect_async(request.clone())
                .await
                .is_err()
        );
        request
            .headers_mut()
            .insert("cookie", admin_cookie(&server).await.parse().unwrap());
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let row = format!("id=\"p{n}\"");
        // The table arrives, its rows at once, then refreshes about every
        // second, the runaway on top as soon as the profiler has seen it.
        let mut listed = 0;
        let started = std::time::Instant::now();
        while listed < 2 {
            let Some(Ok(Message::Text(text))) = socket.next().await else {
                panic!("socket ended")
            };
            if text.contains(&row) {
                listed += 1;
            }
            assert!(
                started.elapsed() < common::LIMIT,
                "the runaway is listed: {text}"
            );
        }
        let filter = json!({"event": "filter", "q": "live session", "sort": "reductions"});
        socket
            .send(Message::Text(filter.to_string().into()))
            .await
            .unwrap();
        loop {
            let Some(Ok(Message::Text(text))) = socket.next().await else {
                panic!("socket ended")
            };
            if text.contains("matching “live session”") {
                assert!(!text.contains(&row), "the filter hides the calculation");
                assert!(text.contains("live session /dashboard/processes"));
                break;
            }
        }
    });
}

/// Logging out ends the rights of the dashboards that session opened, at
/// once: the live process table stops and tells the browser why (and not
/// to reconnect), while a dashboard opened by another session goes on.
#[test]
fn logging_out_closes_the_dashboards_that_session_opened() {
    let server = TestNode::start(10);
    client_runtime().block_on(async {
        let (mine, other) = (admin_cookie(&server).await, admin_cookie(&server).await);
        let here = std::net::IpAddr::from([127, 0, 0, 1]);
        let open = |cookie: String| {
            let server = &server;
            async move {
                let mut page = common::ws::connect_from(
                    server,
                    "/live/dashboard/processes",
                    here,
                    &[("cookie", &cookie)],
                )
                .await;
                common::ws::until_text(&mut page, "proc-table").await;
                page
            }
        };
        let mut page = open(mine.clone()).await;
        let mut still = open(other).await;
        let out = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .post(server.url("/logout"))
            .header("cookie", &mine)
            .send()
            .await
            .unwrap();
        assert_eq!(out.status().as_u16(), 303);
        let (code, why) = common::ws::closed_with(&mut page).await;
        assert_eq!(code, 1008, "{why}");
        assert!(why.contains("logged out"), "{why}");
        // The other session's table keeps refreshing.
        common::ws::next_text(&mut still).await;
        common::ws::next_text(&mut still).await;
        // And the revoked cookie opens nothing any more.
        assert_eq!(
            http()
                .get(server.url("/dashboard/processes"))
                .header("cookie", &mine)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
            401
        );
    });
}
