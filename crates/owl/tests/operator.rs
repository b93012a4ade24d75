//! The talk's operator walkthrough against a real `owl serve`, with the
//! remote console (`owl console`) and a real browser page connected
//! throughout: find the runaways, inspect them, kill them, ship the fix live.

use std::io::BufReader;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

mod common;
// The shared browser helpers find the limit at `super::LIMIT`.
use common::LIMIT;
use common::{Served, http, owl};

// Shared with owl-web's tests: not every helper is used here.
#[allow(dead_code)]
#[path = "../../owl-web/tests/common/browser.rs"]
mod browser;

#[test]
fn find_inspect_kill_and_fix_live_while_a_page_stays_connected() {
    let Some(driver) = browser::driver("find_inspect_kill_and_fix_live") else {
        return;
    };
    let node = Served::start("operator");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let page = browser::open_live(&driver, 1, &node.url).await;

        // Two visitors' runaways on version 1.
        browser::submit(&page, "-1").await;
        browser::submit(&page, "9999999999").await;
        browser::wait_line(&page, "∑(1..-1) = calculating…").await;
        browser::wait_line(&page, "∑(1..9999999999) = calculating…").await;

        // top: both at the top, burning CPU.
        let top = node.ok(&["top", "--seconds", "1"]);
        let first_two: Vec<&Value> = top["top"].as_array().unwrap().iter().take(2).collect();
        let mut activities: Vec<&str> = first_two
            .iter()
            .map(|e| e["current_activity"].as_str().unwrap())
            .collect();
        activities.sort();
        assert_eq!(
            activities,
            ["math:sum(-1)", "math:sum(9999999999)"],
            "{top}"
        );
        for e in &first_two {
            assert!(e["cpu_share"].as_f64().unwrap() > 5.0, "{e}");
        }
        let pid_of = |activity: &str| {
            first_two
                .iter()
                .find(|e| e["current_activity"] == activity)
                .unwrap()["id"]
                .as_u64()
                .unwrap()
                .to_string()
        };
        let (looping, slow) = (pid_of("math:sum(-1)"), pid_of("math:sum(9999999999)"));

        // stack names the guest function; trace sees function entries.
        // A guest on a busy machine may not reach a tick within the
        // console's second: the answer says so, and asking again is right.
        let deadline = std::time::Instant::now() + LIMIT;
        let stack = loop {
            let stack = node.ok(&["stack", &looping]);
            if stack["stack"]["guest"].is_array() {
                break stack;
            }
            assert!(std::time::Instant::now() < deadline, "{stack}");
        };
        let frames: Vec<&str> = stack["stack"]["guest"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        assert!(frames.contains(&"sum"), "{stack}");
        let trace = node.ok(&["trace", &slow, "--seconds", "0.3"]);
        let samples = trace["samples"].as_u64().unwrap();
        assert!(samples > 0, "{trace}");
        // What the runaway did over the window, not just what it entered:
        // the outer function is on every sample, something runs in each.
        let profile = trace["profile"].as_array().unwrap();
        assert!(
            profile
                .iter()
                .any(|p| p["function"] == "sum" && p["on_stack"] == samples),
            "{trace}"
        );
        let running: u64 = profile.iter().map(|p| p["running"].as_u64().unwrap()).sum();
        assert_eq!(running, samples, "{trace}");

        // kill one: its line turns to error.
        node.ok(&["kill", &looping]);
        browser::wait_line(&page, "∑(1..-1) = error").await;
        // kill-all math ends the rest.
        let killed = node.ok(&["kill-all", "math"]);
        assert_eq!(killed["killed"], 1);
        browser::wait_line(&page, "∑(1..9999999999) = error").await;

        // The live fix.
        let upgraded = node.ok(&["upgrade", "math", "../../guests/math_fixed.wat"]);
        assert_eq!(upgraded["version"], 2);
        assert_eq!(upgraded["old_running"], 0);
        browser::submit(&page, "-1").await;
        browser::wait_line(&page, "∑(1..-1) = invalid input").await;
        browser::submit(&page, "13").await;
        browser::wait_line(&page, "∑(1..13) = 91").await;
        browser::submit(&page, "9999999999").await;
        browser::wait_line(&page, "∑(1..9999999999) = 49999999995000000000").await;

        // The page never reconnected nor reloaded, and kept its earlier lines.
        let connects = page
            .execute("return document.body.dataset.connects;", vec![])
            .await
            .unwrap();
        assert_eq!(connects.as_str(), Some("1"));
        let same = page
            .execute("return window.sameDocument === true;", vec![])
            .await
            .unwrap();
        assert_eq!(same.as_bool(), Some(true));
        assert_eq!(browser::lines(&page).await.len(), 5);
        let modules = node.ok(&["modules"]);
        assert_eq!(modules["modules"][0]["current"], 2);
        page.close().await.unwrap();
    });
}

#[test]
fn console_commands_report_errors_and_leave_the_node_alone() {
    let node = Served::start("console-errors");
    let bad = std::env::temp_dir().join(format!("owl-broken-{}.wat", std::process::id()));
    std::fs::write(&bad, "(module (func (export \"sum\")").unwrap();
    let bad = bad.to_str().unwrap().to_string();
    let cases: &[(&[&str], &str)] = &[
        (&["kill", "<0.999999.0>"], "no process"),
        (&["info", "not-a-pid"], "no process"),
        (&["stack", "<0.1.2.3>"], "no process"),
        (&["upgrade", "math", "/no/such/file.wat"], "cannot read"),
        (&["upgrade", "math", &bad], "does not compile"),
        (&["upgrade", "Bad Name", &bad], "not upgraded"),
        (&["frobnicate"], "unknown command"),
        (&["top", "--seconds", "999"], "60"),
        (&["ps", "--sort", "colour"], "unknown sort key"),
        (&["kill-all", "nope"], "no module"),
        (&["schedulers", "0"], "between"),
        (&["kill", "<0.0.0>"], "node itself"),
    ];
    for (args, says) in cases {
        let (ok, json, _) = node.console(args);
        assert!(!ok, "{args:?} should fail");
        let error = json["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "{args:?}: {error}");
    }
    let _ = std::fs::remove_file(&bad);
    // Nothing changed: still version 1, all parts running, and it answers.
    let modules = node.ok(&["modules"]);
    assert_eq!(modules["modules"][0]["current"], 1);
    let tree = node.ok(&["tree"]);
    let ids: Vec<&str> = tree["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "math_sup",
            "math_reaper",
            "load_sup",
            "board_sup",
            "system_history",
            "web",
            "console"
        ]
    );
    let web: Vec<&str> = tree["children"][5]["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(web, ["live_sup", "web_endpoint"]);
    let stats = node.ok(&["stats"]);
    assert!(stats["processes"].as_u64().unwrap() >= 6);
    let help = node.ok(&["help"]);
    for command in [
        "ps",
        "top",
        "info",
        "stack",
        "trace",
        "kill",
        "kill-all",
        "tree",
        "modules",
        "upgrade",
        "schedulers",
        "stats",
    ] {
        assert!(
            help["help"].as_str().unwrap().contains(command),
            "help lists {command}"
        );
    }
    // The interactive shell reads commands line by line (here from a pipe),
    // keeps going after an error, and keeps a history.
    let mut shell = owl()
        .arg("console")
        .arg("--data-dir")
        .arg(&node.data_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    shell
        .stdin
        .take()
        .unwrap()
        .write_all(b"bogus\nps --filter \"math sup\"\nexit\n")
        .unwrap();
    let out = shell.wait_with_output().unwrap();
    assert!(out.status.success());
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(stderr.contains("unknown command \"bogus\""), "{stderr}");
    assert!(stdout.contains("math_sup"), "{stdout}");
    let history = std::fs::read_to_string(node.data_dir.join("console_history")).unwrap();
    assert!(history.contains("ps --filter"), "{history}");
    // Schedulers online can be changed live.
    let one = node.ok(&["schedulers", "1"]);
    assert_eq!(one["online"], 1);
    assert_eq!(node.ok(&["stats"])["schedulers_online"], 1);
    // Raw protocol: malformed and oversized requests get an error, not a crash.
    {
        use std::io::{BufRead, Write};
        let socket =
            std::os::unix::net::UnixStream::connect(node.data_dir.join("console.sock")).unwrap();
        socket.set_read_timeout(Some(LIMIT)).unwrap();
        let mut reader = BufReader::new(socket.try_clone().unwrap());
        let mut ask = |request: &[u8]| {
            (&socket).write_all(request).unwrap();
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            serde_json::from_str::<Value>(&line).unwrap()
        };
        let bad = ask(b"{\"words\": 5}\n");
        assert!(
            bad["error"].as_str().unwrap().starts_with("bad request"),
            "{bad}"
        );
        let fine = ask(b"{\"words\": [\"modules\"]}\n");
        assert_eq!(fine["ok"], true);
        let mut huge = vec![b'x'; 70 * 1024];
        huge.push(b'\n');
        let long = ask(&huge);
        assert!(
            long["error"].as_str().unwrap().contains("too long"),
            "{long}"
        );
    }
    assert_eq!(node.ok(&["modules"])["modules"][0]["current"], 1);
    // Let it crash: killing the web endpoint or the math supervisor restarts
    // them (same socket), and the system answers again.
    for part in ["web_endpoint", "math_sup"] {
        let before = node.ok(&["info", part])["id"].clone();
        node.ok(&["kill", part]);
        let deadline = std::time::Instant::now() + LIMIT;
        loop {
            let (ok, now, _) = node.console(&["info", part]);
            if ok && now["id"] != before {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{part} was not restarted"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let addr = node.addr();
    let body = r#"{"input":"5"}"#;
    let answer = http(
        addr,
        &format!(
            "POST /api/sum HTTP/1.0\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(answer.contains("\"result\":\"15\""), "{answer}");
    // A console without a node says so.
    let lonely = owl()
        .args(["console", "--data-dir", "/nonexistent-owl", "stats"])
        .output()
        .unwrap();
    assert!(!lonely.status.success());
    assert!(String::from_utf8_lossy(&lonely.stderr).contains("no node answers"));
    // The socket is private to the node's user.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(node.data_dir.join("console.sock"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// The talk's `--schedulers 1` starts the node on one core, and the
/// operator can still bring more online live (one per CPU at most).
#[test]
fn schedulers_1_is_one_online_and_more_can_come_online() {
    let node = Served::start_with("schedulers-online", &["--schedulers", "1"]);
    let now = node.ok(&["schedulers"]);
    assert_eq!(now["online"], 1, "{now}");
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(now["schedulers"], cpus.max(1), "{now}");
    if cpus >= 2 {
        let raised = node.ok(&["schedulers", "2"]);
        assert_eq!(raised["online"], 2, "{raised}");
        assert_eq!(node.ok(&["stats"])["schedulers_online"], 2);
    } else {
        eprintln!("one CPU here: nothing more to bring online");
    }
}

/// `owl console top --watch` keeps showing the busiest processes, a new
/// view every second, until stopped (into a pipe: one view after another).
#[test]
fn top_watch_keeps_showing_the_busiest_processes() {
    use std::io::BufRead;
    let node = Served::start("top-watch");
    let mut watch = owl()
        .args(["console", "--data-dir"])
        .arg(&node.data_dir)
        .args(["top", "--watch"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    let mut views = 0;
    // Each view opens with the same header line.
    let mut header = None;
    while views < 3 {
        let line = lines.next().expect("more views").unwrap();
        if header.is_none() && !line.trim().is_empty() {
            header = Some(line.clone());
        }
        if Some(&line) == header.as_ref() {
            views += 1;
        }
    }
    assert!(
        watch.try_wait().unwrap().is_none(),
        "still watching after three views"
    );
    watch.kill().unwrap();
    let _ = watch.wait();
}
