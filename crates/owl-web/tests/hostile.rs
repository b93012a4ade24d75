//! What a hostile probe found, each reproduced against a real node: bursts
//! on one live page, one client filling the node, connection exhaustion,
//! slow clients, forged admin requests, open redirects, framing.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::ws::{connect, connect_as, lines, next_text, send_sum, until, until_text};
use common::{
    ADMIN_TOKEN, LIMIT, Options, TestNode, client_runtime, http, post_json, visitor_cookie,
};
use serde_json::json;

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(LIMIT)
        .build()
        .unwrap()
}

/// A burst of submissions on one page: every calculation's answer arrives
/// (none is reported as an error because the page's mailbox was full), and
/// a burst of 25 quick sums is not refused by the per-page cap of 20.
#[test]
fn a_burst_of_submissions_on_one_page_loses_no_answer() {
    let server = TestNode::start(1000);
    client_runtime().block_on(async {
        let mut socket = connect(&server).await;
        next_text(&mut socket).await;
        for _ in 0..25 {
            send_sum(&mut socket, "5").await;
        }
        let settled = |html: &str| {
            let l = lines(html);
            l.len() == 25 && l.iter().all(|(state, _)| state != "calculating")
        };
        let page = until(&mut socket, settled).await;
        let all = lines(&page);
        assert!(
            all.iter()
                .all(|(state, value)| state == "ok" && value == "15"),
            "{all:?}"
        );

        // A flood far beyond the page's mailbox (64 events): the connection
        // stops reading instead of dropping events, and no answer is lost.
        let mut flood = connect(&server).await;
        next_text(&mut flood).await;
        for _ in 0..300 {
            send_sum(&mut flood, "5").await;
        }
        let full = |html: &str| {
            let l = lines(html);
            l.len() == 100 && l.iter().all(|(state, _)| state != "calculating")
        };
        let page = until(&mut flood, full).await;
        // The reason of each line that ended as an error (its tooltip).
        let errors: Vec<&str> = page
            .split("<li ")
            .filter(|li| li.contains("data-state=\"error\""))
            .map(|li| {
                li.split("title=\"")
                    .nth(1)
                    .unwrap_or(li)
                    .split('"')
                    .next()
                    .unwrap_or(li)
            })
            .collect();
        assert!(errors.is_empty(), "answers reported as errors: {errors:?}");
        assert!(!page.contains("too many events"), "events were dropped");
        let counts = server.math.counts();
        assert_eq!(counts.crashed + counts.killed, 0, "{counts:?}");
    });
}

/// One client cannot lock the others out: at the limit, a newcomer takes
/// the oldest slot of whoever holds the most, and only a client that holds
/// its fair share is refused.
#[test]
fn at_the_limit_newcomers_take_slots_from_the_heaviest_client() {
    let server = TestNode::start(4);
    client_runtime().block_on(async {
        let a = &visitor_cookie(&server).await;
        let b = &visitor_cookie(&server).await;
        let mut page_a = connect_as(&server, Some(a)).await;
        next_text(&mut page_a).await;
        for _ in 0..4 {
            send_sum(&mut page_a, "-1").await;
        }
        until(&mut page_a, |h| {
            lines(h).iter().filter(|(s, _)| s == "calculating").count() == 4
        })
        .await;

        // B is admitted: A's oldest calculation makes room, and says why.
        let mut page_b = connect_as(&server, Some(b)).await;
        next_text(&mut page_b).await;
        send_sum(&mut page_b, "-1").await;
        until(&mut page_b, |h| {
            lines(h).first().is_some_and(|(s, _)| s == "calculating")
        })
        .await;
        let squeezed = until_text(&mut page_a, "stopped").await;
        assert!(squeezed.contains("make room"), "{squeezed}");

        // A holds 3, B holds 1: A is at its fair share and is refused…
        send_sum(&mut page_a, "-1").await;
        let refused = until_text(&mut page_a, "fair share").await;
        assert!(refused.contains("not started"), "{refused}");
        // …while B may take one more from A (3 ≥ 1 + 2), but not a third (2, 2).
        send_sum(&mut page_b, "-1").await;
        until(&mut page_b, |h| {
            lines(h).iter().filter(|(s, _)| s == "calculating").count() == 2
        })
        .await;
        send_sum(&mut page_b, "-1").await;
        until_text(&mut page_b, "fair share").await;
        assert_eq!(server.math.running().len(), 4);

        // A cookie-less script is one client by its address.
        let (status, body) = {
            let r = http()
                .post(server.url("/api/sum?wait_ms=0"))
                .json(&json!({"input": "-1"}))
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.json::<serde_json::Value>().await.unwrap(),
            )
        };
        assert_eq!(
            (status, body["status"].as_str()),
            (202, Some("running")),
            "{body}"
        );
    });
}

/// When every slot is held by a different visitor, a newcomer takes none of
/// them and is told plainly that the server is full, not that it holds its
/// fair share of nothing.
#[test]
fn a_newcomer_to_a_fairly_shared_full_server_is_told_so() {
    let server = TestNode::start(2);
    client_runtime().block_on(async {
        let mut holders = Vec::new();
        for _ in 0..2 {
            let cookie = visitor_cookie(&server).await;
            let mut page = connect_as(&server, Some(&cookie)).await;
            next_text(&mut page).await;
            send_sum(&mut page, "-1").await;
            until(&mut page, |h| {
                lines(h).first().is_some_and(|(s, _)| s == "calculating")
            })
            .await;
            holders.push(page);
        }
        let cookie = visitor_cookie(&server).await;
        let mut newcomer = connect_as(&server, Some(&cookie)).await;
        next_text(&mut newcomer).await;
        send_sum(&mut newcomer, "-1").await;
        let refused = until_text(&mut newcomer, "not started").await;
        assert!(
            refused.contains("shared fairly among visitors"),
            "{refused}"
        );
        assert!(!refused.contains("you run 0"), "{refused}");
        assert_eq!(server.math.running().len(), 2);
    });
}

/// `--reap-orphans`: a closed page's calculations end after the grace.
#[test]
fn orphaned_calculations_end_after_the_grace_period() {
    let server = TestNode::with(Options {
        reap_orphans: Some(Duration::from_secs(1)),
        ..Options::default()
    });
    client_runtime().block_on(async {
        let mut page = connect(&server).await;
        next_text(&mut page).await;
        send_sum(&mut page, "-1").await;
        until_text(&mut page, "calculating").await;
        let calculation = server.math.running()[0].clone();
        drop(page);
        let gone = calculation.wait_exit();
        let reason = tokio::time::timeout(LIMIT, gone).await.expect("reaped");
        assert!(reason.to_string().contains("orphaned"), "{reason}");
    });
}

/// Idle and half-open connections cannot exhaust the node: beyond the cap a
/// connection gets a clear 503 at once, and a client that does not finish
/// its headers in time is closed.
#[test]
fn idle_and_slow_connections_cannot_lock_others_out() {
    let server = TestNode::with(Options {
        max_connections: Some(8),
        header_timeout: Some(Duration::from_millis(800)),
        ..Options::default()
    });
    let connect = || {
        let s = std::net::TcpStream::connect(server.addr).unwrap();
        s.set_read_timeout(Some(LIMIT)).unwrap();
        s
    };
    // Eight half-open connections take every slot…
    let idle: Vec<_> = (0..8).map(|_| connect()).collect();
    std::thread::sleep(Duration::from_millis(100));
    // …so the next one is told to come back, at once.
    let mut extra = connect();
    let mut answer = String::new();
    extra.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("Retry-After") && answer.contains("too many open connections"));
    // The length it announces is the length it sends (a client that trusts
    // the header must neither hang nor cut the message).
    let (head, body) = answer.split_once("\r\n\r\n").expect("a header and a body");
    let announced: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("a Content-Length")
        .trim()
        .parse()
        .unwrap();
    assert_eq!(announced, body.len(), "{answer:?}");
    // The idle ones are closed after the header timeout, freeing their slots.
    for mut s in idle {
        let started = Instant::now();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap_or(0);
        assert_eq!(n, 0, "closed without an answer");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    // A client sending its headers slowly is closed too.
    let mut slow = connect();
    let started = Instant::now();
    slow.write_all(b"GET /api/health HTTP/1.1\r\n").unwrap();
    let mut closed = false;
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(200));
        if slow.write_all(b"X-Slow: 1\r\n").is_err() {
            closed = true;
            break;
        }
    }
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    assert!(closed || rest.is_empty() || String::from_utf8_lossy(&rest).contains("408"));
    assert!(started.elapsed() < Duration::from_secs(6));
    // And normal clients are served.
    client_runtime().block_on(async {
        let health = http().get(server.url("/api/health")).send().await.unwrap();
        assert_eq!(health.status().as_u16(), 200);
    });
}

/// A fresh page's first result arrives at once: the answer frame does not
/// wait for the browser's delayed ACK of the `calculating…` frame.
#[test]
fn a_fresh_pages_first_result_is_not_delayed() {
    let server = TestNode::start(100);
    client_runtime().block_on(async {
        let mut times = Vec::new();
        for _ in 0..7 {
            let mut page = connect(&server).await;
            next_text(&mut page).await;
            let started = Instant::now();
            send_sum(&mut page, "7").await;
            until(&mut page, |h| {
                lines(h).first().is_some_and(|(s, _)| s == "ok")
            })
            .await;
            times.push(started.elapsed());
        }
        times.sort();
        // With Nagle's algorithm on, the median was ~43 ms (a delayed ACK).
        assert!(times[3] < Duration::from_millis(25), "{times:?}");
    });
}

/// A browser's session cookie acts only with our form from our origin —
/// also when the browser adds Basic credentials by itself.
#[test]
fn forged_admin_requests_change_nothing() {
    let server = TestNode::start(100);
    client_runtime().block_on(async {
        let answer: serde_json::Value =
            post_json(&server, "/api/sum?wait_ms=0", &json!({"input": "-1"})).await;
        let pid: owl_runtime::PidId = answer["pid"].as_str().unwrap().parse().unwrap();
        let login = no_redirects()
            .post(server.url("/login"))
            .form(&[("token", ADMIN_TOKEN)])
            .send()
            .await
            .unwrap();
        let cookie = login.headers()["set-cookie"].to_str().unwrap();
        let cookie = cookie.split(';').next().unwrap().to_string();
        let kill = server.url(&format!("/dashboard/processes/{}/kill", pid.0));
        let forged = no_redirects()
            .post(&kill)
            .header("cookie", &cookie)
            .header("authorization", "Basic eDp5")
            .header("origin", "http://evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status().as_u16(), 403);
        assert!(server.node.lookup(pid).is_some(), "not killed");
    });
}

/// A login link cannot send the browser to another site.
#[test]
fn logins_only_return_to_our_own_pages() {
    let server = TestNode::start(10);
    client_runtime().block_on(async {
        for next in [
            "/\\evil.example",
            "/%09/evil.example",
            "//evil.example",
            "https://evil.example",
        ] {
            let login = no_redirects()
                .post(server.url("/login"))
                .form(&[("token", ADMIN_TOKEN), ("next", next)])
                .send()
                .await
                .unwrap();
            assert_eq!(login.status().as_u16(), 303);
            assert_eq!(
                login.headers()["location"],
                "/dashboard/processes",
                "{next}"
            );
        }
        // Brute force is slowed down, with an honest Retry-After.
        let mut last = 0;
        for _ in 0..8 {
            last = no_redirects()
                .post(server.url("/login"))
                .form(&[("token", "guess-guess-guess")])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
        }
        assert_eq!(last, 429);
    });
}

/// Pages with actions are never framed by another site.
#[test]
fn pages_refuse_to_be_framed() {
    let server = TestNode::start(10);
    client_runtime().block_on(async {
        for path in ["/", "/login", "/dashboard/processes"] {
            let page = http().get(server.url(path)).send().await.unwrap();
            assert_eq!(page.headers()["x-frame-options"], "DENY", "{path}");
            assert!(
                page.headers()["content-security-policy"]
                    .to_str()
                    .unwrap()
                    .contains("frame-ancestors 'none'")
            );
        }
        // And a visitor gets a cookie of its own, for fair admission.
        let page = http().get(server.url("/")).send().await.unwrap();
        let cookie = page.headers()["set-cookie"].to_str().unwrap();
        assert!(cookie.starts_with("owl_client=") && cookie.contains("HttpOnly"));
    });
}

/// A client from 127.0.0.2: another network address than the tests' own.
fn from_elsewhere() -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .timeout(LIMIT)
        .build()
        .unwrap()
}

/// One address cannot multiply itself into many visitors: invented cookies
/// count as the address, and even fresh cookies the node signed (one per
/// request) share the address's ceiling — of calculations, of board posts
/// and of live pages. Another address is not held back by it, and the
/// admin keeps room for the dashboards.
#[test]
fn one_address_stays_within_its_ceilings_however_many_cookies_it_makes() {
    let server = TestNode::with(Options {
        max_calculations: Some(20),
        max_calculations_per_address: Some(10),
        post_limit_per_address: Some(12),
        max_live_per_address: Some(5),
        ..Options::default()
    });
    client_runtime().block_on(async {
        // Calculations: every request a new visitor, signed or invented.
        let mut statuses = Vec::new();
        for i in 0..25 {
            let cookie = if i % 2 == 0 {
                visitor_cookie(&server).await
            } else {
                format!("owl_client={i:032x}")
            };
            let r = http()
                .post(server.url("/api/sum?wait_ms=0"))
                .header("cookie", cookie)
                .json(&json!({"input": "-1"}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.unwrap();
            if status == 503 {
                assert!(
                    body["error"].as_str().unwrap().contains("network address"),
                    "{body}"
                );
            }
            statuses.push(status);
        }
        // Newcomers of the address may take slots from its heaviest client
        // (max-min within the address), but the address never holds more.
        assert!(statuses[..10].iter().all(|s| *s == 202), "{statuses:?}");
        assert!(statuses.contains(&503), "{statuses:?}");
        assert_eq!(server.math.running().len(), 10);
        let other = from_elsewhere()
            .post(server.url("/api/sum?wait_ms=0"))
            .json(&json!({"input": "-1"}))
            .send()
            .await
            .unwrap();
        assert_eq!(other.status().as_u16(), 202, "another address is served");
        server.kill_calculations();

        // Board posts: 12 per 10 s for the whole address.
        let mut posted = Vec::new();
        for i in 0..20 {
            let r = http()
                .post(server.url("/api/board/observability"))
                .header("cookie", visitor_cookie(&server).await)
                .json(&json!({"text": format!("flood {i}"), "author": "bot"}))
                .send()
                .await
                .unwrap();
            posted.push(r.status().as_u16());
        }
        assert_eq!(
            posted.iter().filter(|s| **s == 201).count(),
            12,
            "{posted:?}"
        );
        assert_eq!(posted[12..], [429; 8]);
        let other = from_elsewhere()
            .post(server.url("/api/board/observability"))
            .json(&json!({"text": "mine", "author": "phone"}))
            .send()
            .await
            .unwrap();
        assert_eq!(other.status().as_u16(), 201);

        // Live pages: five for this address, then a clear refusal.
        let here = std::net::IpAddr::from([127, 0, 0, 1]);
        let mut pages = Vec::new();
        for _ in 0..5 {
            let mut page = common::ws::connect_from(&server, "/live/sum", here, &[]).await;
            next_text(&mut page).await;
            pages.push(page);
        }
        let mut sixth = common::ws::connect_from(&server, "/live/sum", here, &[]).await;
        let (code, why) = common::ws::closed_with(&mut sixth).await;
        assert_eq!(code, 1013, "{why}");
        assert!(why.contains("network address"), "{why}");
        let elsewhere = std::net::IpAddr::from([127, 0, 0, 2]);
        let mut other = common::ws::connect_from(&server, "/live/sum", elsewhere, &[]).await;
        next_text(&mut other).await;
        // The admin's dashboard opens from the crowded address all the same.
        let bearer = format!("Bearer {ADMIN_TOKEN}");
        let mut admin = common::ws::connect_from(
            &server,
            "/live/dashboard/processes",
            here,
            &[("authorization", &bearer)],
        )
        .await;
        until_text(&mut admin, "proc-table").await;
        // A page that closes gives its room back.
        drop(pages.pop());
        // (Until the node has seen the close, a newcomer is still refused:
        // its socket closes, and it tries again.)
        common::wait_until("a page's room given back", || async {
            let mut page = common::ws::connect_from(&server, "/live/sum", here, &[]).await;
            common::ws::try_next_text(&mut page).await.is_some()
        })
        .await;
    });
}

/// Calculations of a page that closed end by themselves (after a grace of
/// seconds), without an operator; an API client's outlive its request.
#[test]
fn calculations_of_closed_pages_end_by_default() {
    let server = TestNode::start(10);
    client_runtime().block_on(async {
        let api = post_json(&server, "/api/sum?wait_ms=0", &json!({"input": "-1"})).await;
        let api_pid: owl_runtime::PidId = api["pid"].as_str().unwrap().parse().unwrap();
        let mut page = connect(&server).await;
        next_text(&mut page).await;
        send_sum(&mut page, "-1").await;
        until_text(&mut page, "calculating").await;
        let mine = server
            .math
            .running()
            .into_iter()
            .find(|p| p.id() != api_pid)
            .unwrap();
        drop(page);
        let reason = tokio::time::timeout(Duration::from_secs(40), mine.wait_exit())
            .await
            .expect("reaped within the default grace");
        assert!(reason.to_string().contains("orphaned"), "{reason}");
        assert!(
            server.node.lookup(api_pid).is_some(),
            "the API's calculation is its client's, not an orphan"
        );
    });
}

/// Behind HTTPS (`--public-url https://…`) cookies are sent over HTTPS
/// only; on plain HTTP they could not be.
#[test]
fn cookies_are_secure_behind_https() {
    for (public_url, secure) in [(Some("https://talk.example"), true), (None, false)] {
        let server = TestNode::with(Options {
            public_url: public_url.map(String::from),
            ..Options::default()
        });
        client_runtime().block_on(async {
            let page = http().get(server.url("/")).send().await.unwrap();
            let visitor = page.headers()["set-cookie"].to_str().unwrap().to_string();
            let login = no_redirects()
                .post(server.url("/login"))
                .form(&[("token", ADMIN_TOKEN)])
                .send()
                .await
                .unwrap();
            let admin = login.headers()["set-cookie"].to_str().unwrap().to_string();
            for cookie in [visitor, admin] {
                assert_eq!(
                    cookie.contains("; Secure"),
                    secure,
                    "{public_url:?}: {cookie}"
                );
            }
        });
    }
}
