//! The sum page in a real browser (headless Chromium), against a real node.

mod common;

use common::browser::{self, lines, submit, wait_js, wait_line};
use common::{TestNode, client_runtime};

#[test]
fn the_talks_three_bugs_on_the_sum_page_while_it_stays_live() {
    let Some(driver) = browser::driver("the_talks_three_bugs_on_the_sum_page") else {
        return;
    };
    let server = TestNode::start(100);
    client_runtime().block_on(async {
        let page = browser::open_live(&driver, 1, &server.url("/")).await;

        submit(&page, "5").await;
        wait_line(&page, "∑(1..5) = 15").await;

        // Bug 1: 13 crashes that calculation only; the page goes on.
        submit(&page, "13").await;
        wait_line(&page, "∑(1..13) = error").await;
        submit(&page, "6").await;
        wait_line(&page, "∑(1..6) = 21").await;

        // Why it failed is written under the line, not only in a tooltip
        // (a phone has no hover).
        wait_js(
            &page,
            "the crash reason under the line",
            "Array.from(document.querySelectorAll('#sum-lines li .reason'))
                .some(r => r.innerText.startsWith('crashed:') && r.offsetHeight > 0)",
        )
        .await;

        // Bug 2: -1 never finishes, and 7 completes meanwhile. The field
        // offers a keyboard with a minus sign (an iPhone's numeric pad has none).
        let mode = page
            .execute("return document.getElementById('n').inputMode;", vec![])
            .await
            .unwrap();
        assert_eq!(mode.as_str(), Some("text"), "a keyboard with a minus key");
        submit(&page, "-1").await;
        wait_line(&page, "∑(1..-1) = calculating…").await;
        submit(&page, "7").await;
        wait_line(&page, "∑(1..7) = 28").await;
        assert!(
            lines(&page)
                .await
                .contains(&"∑(1..-1) = calculating…".to_string())
        );

        // Not an integer: answered at once, nothing started.
        let running = server.math.running().len();
        submit(&page, "abc").await;
        wait_line(&page, "∑(1..abc) = invalid input").await;
        assert_eq!(server.math.running().len(), running);

        // Newest first, every line kept, all without a reload.
        assert_eq!(
            lines(&page).await,
            [
                "∑(1..abc) = invalid input",
                "∑(1..7) = 28",
                "∑(1..-1) = calculating…",
                "∑(1..6) = 21",
                "∑(1..13) = error",
                "∑(1..5) = 15",
            ]
        );
        let same = page
            .execute("return window.sameDocument === true;", vec![])
            .await
            .unwrap();
        assert_eq!(same.as_bool(), Some(true), "the page was reloaded");
        // The form is ready for the next number.
        let value = page
            .execute("return document.getElementById('n').value;", vec![])
            .await
            .unwrap();
        assert_eq!(value.as_str(), Some(""));

        // After the fix, any integer is answered exactly: 30 digits, far
        // beyond 64 bits, summed in the guest's own memory.
        server.upgrade_math();
        submit(&page, "123456789012345678901234567890").await;
        wait_line(
            &page,
            "∑(1..123456789012345678901234567890) = \
             7620789376619418375247675781329827788257125439388126809995",
        )
        .await;
        page.close().await.unwrap();
    });
}

#[test]
fn one_visitors_runaways_leave_another_visitor_alone_and_a_killed_session_reconnects() {
    let Some(driver) = browser::driver("one_visitors_runaways_leave_another_visitor_alone") else {
        return;
    };
    let server = TestNode::start(100);
    client_runtime().block_on(async {
        let a = browser::open_live(&driver, 1, &server.url("/")).await;
        let b = browser::open_live(&driver, 2, &server.url("/")).await;

        // Visitor A starts 20 runaways; the 21st is refused on that page.
        for _ in 0..21 {
            submit(&a, "-1").await;
        }
        wait_js(
            &a,
            "21 lines",
            "document.querySelectorAll('#sum-lines li').length === 21",
        )
        .await;
        let a_lines = lines(&a).await;
        assert!(
            a_lines[0].contains("not started: 20 calculations are running on this page"),
            "{a_lines:?}"
        );
        assert_eq!(
            a_lines
                .iter()
                .filter(|l| l.ends_with("calculating…"))
                .count(),
            20
        );

        // Visitor B is served at once and sees none of A's lines.
        submit(&b, "5").await;
        wait_line(&b, "∑(1..5) = 15").await;
        assert_eq!(lines(&b).await, ["∑(1..5) = 15"]);

        // Kill B's session process through the runtime: only B's page
        // reconnects (a fresh session), and it works again.
        let sessions = server.sessions();
        assert_eq!(sessions.len(), 2, "one session per page");
        let connects = |page: &fantoccini::Client| {
            let page = page.clone();
            async move {
                page.execute("return Number(document.body.dataset.connects);", vec![])
                    .await
                    .unwrap()
                    .as_u64()
                    .unwrap()
            }
        };
        let (a_before, b_before) = (connects(&a).await, connects(&b).await);
        // B's page connected second: its session is the newer one.
        let b_session = sessions.iter().max_by_key(|p| p.id()).unwrap();
        assert!(server.node.kill(b_session));
        wait_js(
            &b,
            "B to reconnect",
            &format!(
                "Number(document.body.dataset.connects) === {}",
                b_before + 1
            ),
        )
        .await;
        wait_js(
            &b,
            "B live again",
            "document.body.dataset.live === 'connected'",
        )
        .await;
        // The rebuilt page starts from its new session's state.
        wait_js(
            &b,
            "B's lines rebuilt",
            "document.querySelectorAll('#sum-lines li').length === 0",
        )
        .await;
        submit(&b, "8").await;
        wait_line(&b, "∑(1..8) = 36").await;
        // A never noticed: same connection, its lines intact.
        assert_eq!(connects(&a).await, a_before);
        assert_eq!(lines(&a).await.len(), 21);
        assert_eq!(server.sessions().len(), 2);
        a.close().await.unwrap();
        b.close().await.unwrap();
    });
}

#[test]
fn an_admin_finds_a_runaway_on_the_dashboard_and_kills_it_with_the_button() {
    let Some(driver) = browser::driver("an_admin_finds_a_runaway_on_the_dashboard") else {
        return;
    };
    let server = TestNode::start(100);
    client_runtime().block_on(async {
        let page = browser::open_live(&driver, 1, &server.url("/")).await;
        submit(&page, "-1").await;
        wait_line(&page, "∑(1..-1) = calculating…").await;
        let runaway = server.math.running()[0].clone();

        // Without the token the dashboard asks for it.
        page.goto(&server.url("/dashboard/processes"))
            .await
            .unwrap();
        wait_js(
            &page,
            "the login form",
            "document.querySelector('input[name=token]') !== null",
        )
        .await;
        browser::log_in(&page, common::ADMIN_TOKEN).await;

        // The live table lists the runaway at the top (most CPU).
        let row = format!("p{}", runaway.id().0);
        wait_js(
            &page,
            "the runaway at the top of the table",
            &format!("document.querySelector('#proc-table tbody tr')?.id === '{row}'"),
        )
        .await;
        // On a phone (this window is 412 px wide) the row is a card whose
        // activity, which names the runaway, is on screen without scrolling.
        wait_js(
            &page,
            "the runaway's activity on its card",
            &format!(
                "(() => {{ const a = document.querySelector('#{row} td.activity');
                    const r = a && a.getBoundingClientRect();
                    return a && a.innerText.includes('math:sum(-1)') && r.width > 0
                        && r.right <= window.innerWidth; }})()"
            ),
        )
        .await;
        // On a desktop the column headers sort.
        page.set_window_size(1440, 900).await.unwrap();
        browser::click(&page, "button[data-sort=reductions]").await;
        wait_js(
            &page,
            "the table sorted by reductions",
            "document.querySelector('th[aria-sort] button')?.dataset.sort === 'reductions'
             && document.querySelector('#proc-table .hint')?.innerText.includes('by reductions')",
        )
        .await;
        page.set_window_size(412, 915).await.unwrap();
        browser::click(&page, &format!("#{row} a")).await;
        // Its stack, once the guest threads (busy on a loaded machine) let
        // it reach an epoch tick within the page's second.
        // The page is live: no reload, the stack and figures come to it.
        wait_js(
            &page,
            "the runaway's stack on its live page",
            "document.body.dataset.live === 'connected'
             && document.getElementById('proc-detail').innerText.includes('naive_sum')",
        )
        .await;
        // How long it has run moves on with the clock (its CPU time would
        // wait for a busy machine to let the guest run).
        let cpu =
            "document.querySelector('#proc-detail table').innerText.match(/running for\\s+(.*)/)[1]";
        let first = browser::read_js(&page, "the runaway's running time", cpu).await;
        wait_js(
            &page,
            "the runaway's running time to move on the live page",
            &format!("{cpu} !== {}", serde_json::to_string(&first).unwrap()),
        )
        .await;

        // Kill: the process ends and the page says it is gone.
        browser::kill_and_confirm(&page).await;
        wait_js(
            &page,
            "the process to be gone",
            "document.body.innerText.includes('no such process')",
        )
        .await;
        assert!(!runaway.is_alive());

        // The nav bar says the admin is logged in, and Log out ends it.
        wait_js(
            &page,
            "Log out in the nav",
            "Array.from(document.querySelectorAll('nav button'))
                .some(b => b.innerText === 'Log out' && b.offsetHeight > 0)
             && document.querySelector('nav .admin-mark') !== null",
        )
        .await;
        browser::click(&page, "nav form.logout button").await;
        wait_js(
            &page,
            "Log in in the nav again",
            "document.querySelector('nav a[href=\"/login\"]') !== null
             && document.querySelector('nav .admin-mark') === null",
        )
        .await;
        page.close().await.unwrap();
    });
}

/// The load page in two real browsers: the admin logs in and sets 10,000
/// jobs; both charts draw and keep moving; a visitor's browser shows the
/// same charts live and has no controls.
#[test]
fn the_load_page_charts_live_for_the_admin_and_the_audience() {
    let Some(driver) = browser::driver("the_load_page_charts_live") else {
        return;
    };
    let server = TestNode::start(100);
    client_runtime().block_on(async {
        let admin = driver.browser(1).await;
        admin.goto(&server.url("/login?next=/load")).await.unwrap();
        browser::log_in(&admin, common::ADMIN_TOKEN).await;
        // The form is sent over the page's live socket, and the session's
        // first frame (its chart history) may paint the form again: type
        // only once the socket is open and that frame has arrived, or under
        // load the typing can be lost before the click.
        wait_js(
            &admin,
            "the load form, live, first frame painted",
            "document.getElementById('load-form') !== null
                && document.body.dataset.live === 'connected'
                && document.body.dataset.points !== undefined",
        )
        .await;
        let target = admin
            .find(fantoccini::Locator::Css("#target"))
            .await
            .unwrap();
        target.send_keys("10000").await.unwrap();
        admin
            .find(fantoccini::Locator::Css("#load-form button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_js(
            &admin,
            "10,000 workers",
            "document.getElementById('load-workers').innerText.trim() === '10,000'",
        )
        .await;
        // Both charts are drawn and keep moving.
        let canvases = "document.querySelectorAll('#load-charts canvas').length >= 2";
        wait_js(&admin, "two charts", canvases).await;
        let points = "Number(document.body.dataset.points || 0)";
        let before: f64 = admin
            .execute(&format!("return {points};"), vec![])
            .await
            .unwrap()
            .as_f64()
            .unwrap();
        wait_js(
            &admin,
            "new points",
            &format!("{points} >= {} + 10", before),
        )
        .await;
        // The rate near 10,000 — or, on a machine whose other programs
        // take the CPU from the (background) workers, the page saying so
        // rather than showing a silent drop.
        wait_js(
            &admin,
            "the rate near 10,000, or an honest 'behind'",
            "(() => { const t = document.getElementById('load-rate').innerText;
                const n = Number(t.split(' ')[0].replace(/,/g, ''));
                return n > 9000 || (n > 0 && t.includes('behind: ') && t.includes('of 10k jobs/s')); })()",
        )
        .await;
        // The latest figure stands beside the chart's title, as a legend.
        wait_js(
            &admin,
            "the latest rate beside the chart",
            "(() => { const t = document.getElementById('now-jobs').innerText;
                return /^[0-9,]+ jobs\\/s$/.test(t) && Number(t.replace(/[^0-9]/g, '')) > 0; })()",
        )
        .await;

        // The audience: same charts, no controls.
        let visitor = browser::open_live(&driver, 2, &server.url("/load")).await;
        wait_js(&visitor, "the visitor's charts", canvases).await;
        wait_js(&visitor, "history at once", &format!("{points} >= 10")).await;
        let then: f64 = visitor
            .execute(&format!("return {points};"), vec![])
            .await
            .unwrap()
            .as_f64()
            .unwrap();
        wait_js(&visitor, "live points", &format!("{points} > {then}")).await;
        let form = visitor
            .execute(
                "return document.getElementById('load-form') === null;",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(form.as_bool(), Some(true), "a visitor has no controls");
        assert_eq!(
            server
                .operator
                .node()
                .label_counts()
                .iter()
                .find(|(l, _)| l == "load worker")
                .map(|(_, n)| *n),
            Some(10_000)
        );
        admin.close().await.unwrap();
        visitor.close().await.unwrap();
    });
}

/// The board in three real browsers: two on one topic see each other's
/// posts and a deletion live; the third, on the other topic, sees neither.
#[test]
fn board_posts_and_deletions_appear_live_on_every_page_of_the_topic() {
    let Some(driver) = browser::driver("board_posts_and_deletions_appear_live") else {
        return;
    };
    let server = TestNode::start(10);
    client_runtime().block_on(async {
        let a = browser::open_live(&driver, 1, &server.url("/board/building-blocks")).await;
        let b = browser::open_live(&driver, 2, &server.url("/board/building-blocks")).await;
        let other = browser::open_live(&driver, 3, &server.url("/board/observability")).await;
        // On a phone (412 px) the QR code is under the form, the head's hidden.
        wait_js(
            &a,
            "the QR code under the form",
            "(() => { const qr = document.querySelector('figure.qr-phone img');
                const form = document.getElementById('board-form');
                const head = document.querySelector('img.qr-head');
                return qr && form && qr.offsetHeight > 0 && head.offsetHeight === 0
                    && qr.getBoundingClientRect().top >= form.getBoundingClientRect().bottom; })()",
        )
        .await;
        async fn post(page: &fantoccini::Client, text: &str, author: &str) {
            let t = page.find(fantoccini::Locator::Css("#post-text")).await.unwrap();
            t.send_keys(text).await.unwrap();
            let n = page.find(fantoccini::Locator::Css("#post-author")).await.unwrap();
            n.clear().await.unwrap();
            n.send_keys(author).await.unwrap();
            page.find(fantoccini::Locator::Css("#board-form button")).await.unwrap().click().await.unwrap();
        }
        let has = |text: &str| {
            format!(
                "Array.from(document.querySelectorAll('#posts .post-text')).some(p => p.innerText.trim() === {})",
                serde_json::to_string(text).unwrap()
            )
        };
        post(&a, "supervision trees", "Ana").await;
        wait_js(&b, "A's post on B's page", &has("supervision trees")).await;
        wait_js(&a, "A's own post", &has("supervision trees")).await;
        // The form is emptied once the post is committed.
        wait_js(&a, "an empty form", "document.getElementById('post-text').value === ''").await;
        post(&b, "links and monitors", "Ben").await;
        wait_js(&a, "B's post on A's page", &has("links and monitors")).await;

        // A deletion vanishes everywhere.
        let posts: serde_json::Value = common::get_json(&server, "/api/board/building-blocks").await;
        let id = posts["posts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["text"] == "supervision trees")
            .unwrap()["id"]
            .as_i64()
            .unwrap();
        let deleted = common::http()
            .delete(server.url(&format!("/api/board/building-blocks/{id}")))
            .bearer_auth(common::ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.status().as_u16(), 204);
        let gone = format!("!({})", has("supervision trees"));
        wait_js(&a, "the deletion on A", &gone).await;
        wait_js(&b, "the deletion on B", &gone).await;

        // A page opened now has B's post in the HTML the server sent, before
        // any live update (a phone's first paint, a link preview), and the
        // browser got that HTML compressed.
        let first_html = "fetch(location.href).then(r => r.text())
            .then(html => { window.firstHtml = html; })";
        b.execute(first_html, vec![]).await.unwrap();
        wait_js(
            &b,
            "the post in the first HTML",
            "typeof window.firstHtml === 'string'
             && window.firstHtml.includes('links and monitors')
             && !window.firstHtml.includes('loading posts')",
        )
        .await;
        let sizes = b
            .execute(
                "const n = performance.getEntriesByType('navigation')[0];
                 return [n.encodedBodySize, n.decodedBodySize];",
                vec![],
            )
            .await
            .unwrap();
        let (encoded, decoded) = (sizes[0].as_u64().unwrap(), sizes[1].as_u64().unwrap());
        assert!(
            encoded > 0 && encoded * 2 < decoded,
            "the page came compressed: {encoded} of {decoded} bytes"
        );

        // The other topic heard nothing.
        let count = other
            .execute("return document.querySelectorAll('#posts li').length;", vec![])
            .await
            .unwrap();
        assert_eq!(count.as_u64(), Some(0));
        for page in [a, b, other] {
            page.close().await.unwrap();
        }
    });
}

/// The system page charts the node's last five minutes — kept by the node,
/// so they are there the moment the page opens — with each chart's latest
/// figure, and lists connections, live pages and the board's store.
#[test]
fn the_system_page_charts_the_node_live() {
    let Some(driver) = browser::driver("the_system_page_charts_the_node_live") else {
        return;
    };
    let server = TestNode::start_with(100, true);
    // The node keeps its points whether anyone watches or not.
    let history = server.operator.history().clone();
    client_runtime().block_on(common::wait_until("three points of history", || {
        let enough = history.points().len() >= 3;
        async move { enough }
    }));
    client_runtime().block_on(async {
        let page = browser::open_live(&driver, 1, &server.url("/dashboard/system")).await;
        wait_js(
            &page,
            "six charts",
            "document.querySelectorAll('#system-charts canvas').length === 6",
        )
        .await;
        let points = "Number(document.body.dataset.systemPoints || 0)";
        wait_js(&page, "the first points", &format!("{points} >= 1")).await;
        // The first frame carried the node's history, not one point.
        let shown = page
            .execute(&format!("return {points};"), vec![])
            .await
            .unwrap();
        assert!(shown.as_u64().unwrap_or(0) >= 3, "{shown}");
        wait_js(
            &page,
            "the latest process count beside its chart",
            "/^[0-9,]+$/.test(document.getElementById('now-procs').innerText)
             && Number(document.getElementById('now-procs').innerText.replace(/,/g, '')) > 10",
        )
        .await;
        wait_js(
            &page,
            "the machine's CPU and memory beside their chart",
            "/^CPU [0-9]+ %, memory [0-9]+ %$/.test(document.getElementById('now-host').innerText)",
        )
        .await;
        wait_js(
            &page,
            "this page's own live session in the list",
            "document.body.innerText.includes('/dashboard/system')",
        )
        .await;
        let text = browser::page_text(&page).await;
        for part in [
            "HTTP connections open",
            "/dashboard/system",
            "The board's store",
            "SQLite in",
            "waiting for a scheduler",
            "disk of the data directory",
        ] {
            assert!(text.contains(part), "{part:?} missing from:\n{text}");
        }
        page.close().await.unwrap();
    });
}
