//! Headless Chromium driven through chromedriver (WebDriver), one browser per test.
//!
//! Browser tests need Debian's `chromium` and `chromium-driver`. Without
//! them a test fails under CI (`CI=true`, where `.ci/run` installs them)
//! and skips with a loud message elsewhere.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

use super::LIMIT;

/// A running chromedriver; killed on drop.
pub(crate) struct Driver {
    child: Child,
    port: u16,
    profile: std::path::PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn find(names: &[&str]) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([std::path::PathBuf::from("/usr/bin")])
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// Starts chromedriver, or returns `None` (skip) when the browser is not
/// installed outside CI. Under CI a missing browser is a failure.
pub(crate) fn driver(test: &str) -> Option<Driver> {
    let found = (
        find(&["chromedriver"]),
        find(&["chromium", "chromium-browser"]),
    );
    let (Some(driver), Some(_)) = found else {
        let msg = "chromium and chromedriver are needed for browser tests \
                   (apt-get install -y chromium chromium-driver)";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{test}: {msg}");
        }
        eprintln!("\n!!! SKIPPING browser test {test}: {msg} !!!\n");
        return None;
    };
    let mut child = Command::new(driver)
        .arg("--port=0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    // "ChromeDriver was started successfully on port 12345."
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let port = loop {
        let line = lines
            .next()
            .expect("chromedriver said where it listens")
            .unwrap();
        if let Some(rest) = line.split("started successfully on port ").nth(1) {
            break rest.trim_end_matches('.').trim().parse::<u16>().unwrap();
        }
    };
    // Keep draining its output so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let profile = std::env::temp_dir().join(format!("owl-chromium-{}-{port}", std::process::id()));
    Some(Driver {
        child,
        port,
        profile,
    })
}

impl Driver {
    /// A new headless browser window (its own profile, so its own cookies).
    pub(crate) async fn browser(&self, n: usize) -> Client {
        let profile = self.profile.join(n.to_string());
        let caps = serde_json::json!({
            "goog:chromeOptions": {
                "binary": find(&["chromium", "chromium-browser"]).unwrap(),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=412,915",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        });
        let serde_json::Value::Object(caps) = caps else {
            unreachable!()
        };
        let url = format!("http://127.0.0.1:{}", self.port);
        let start = Instant::now();
        loop {
            match ClientBuilder::rustls()
                .expect("rustls")
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => return client,
                Err(e) if start.elapsed() < LIMIT => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("no browser session: {e}"),
            }
        }
    }
}

/// A new browser window on the live page at `url`, connected, with a marker
/// (`window.sameDocument`) that a reload would wipe out.
pub(crate) async fn open_live(driver: &Driver, n: usize, url: &str) -> Client {
    let page = driver.browser(n).await;
    page.goto(url).await.unwrap();
    wait_js(
        &page,
        "the live connection",
        "document.body.dataset.live === 'connected'",
    )
    .await;
    page.execute("window.sameDocument = true;", vec![])
        .await
        .unwrap();
    page
}

/// Waits until `js` (an expression) is truthy in the page; panics naming
/// `what` after [`LIMIT`], with the page's text for the failure message.
pub(crate) async fn wait_js(client: &Client, what: &str, js: &str) {
    let script = format!("return Boolean({js});");
    poll_js(client, what, &script, |v| {
        (v.as_bool() == Some(true)).then_some(())
    })
    .await
}

/// Waits until `js` (an expression) gives a string and returns it: a live
/// page asked between two of its updates may not have the element yet.
pub(crate) async fn read_js(client: &Client, what: &str, js: &str) -> String {
    let script = format!("try {{ return {js}; }} catch (e) {{ return null; }}");
    poll_js(client, what, &script, |v| v.as_str().map(String::from)).await
}

/// Runs `script` until `accept` takes its value (errors count as not yet);
/// panics naming `what` after [`LIMIT`], with the page's text.
async fn poll_js<T>(
    client: &Client,
    what: &str,
    script: &str,
    accept: impl Fn(&serde_json::Value) -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(found) = client
            .execute(script, vec![])
            .await
            .ok()
            .as_ref()
            .and_then(&accept)
        {
            return found;
        }
        if start.elapsed() > LIMIT {
            let text = page_text(client).await;
            panic!("timed out waiting for {what}; page text:\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub(crate) async fn page_text(client: &Client) -> String {
    client
        .execute("return document.body.innerText;", vec![])
        .await
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// Types `value` into the sum form and submits it.
pub(crate) async fn submit(client: &Client, value: &str) {
    let input = client.find(Locator::Css("#n")).await.expect("the input");
    input.clear().await.unwrap();
    input.send_keys(value).await.unwrap();
    client
        .find(Locator::Css("#sum-form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// The text of the sum page's lines, newest first.
pub(crate) async fn lines(client: &Client) -> Vec<String> {
    let v = client
        .execute(
            "return Array.from(document.querySelectorAll('#sum-lines li .line')).map(li => li.innerText);",
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(v).unwrap()
}

/// Waits until some line reads exactly `text`.
pub(crate) async fn wait_line(client: &Client, text: &str) {
    let js = format!(
        "Array.from(document.querySelectorAll('#sum-lines li .line')).some(li => li.innerText.trim() === {})",
        serde_json::to_string(text).unwrap()
    );
    wait_js(client, &format!("the line {text:?}"), &js).await;
}

/// Clicks the first element matching `css`. A live page may replace the
/// element between finding and clicking it (a table refreshed every
/// second): then it is found again, until [`LIMIT`].
pub(crate) async fn click(client: &Client, css: &str) {
    let start = Instant::now();
    loop {
        let clicked = match client.find(fantoccini::Locator::Css(css)).await {
            Ok(element) => element.click().await,
            Err(e) => Err(e),
        };
        match clicked {
            Ok(()) => return,
            Err(e) if start.elapsed() > LIMIT => panic!("no {css} to click: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(25)).await,
        }
    }
}

/// Waits until `js` holds on a page that is not live, reloading it while
/// it does not (a process page asks the node afresh on each load).
pub(crate) async fn wait_js_reloading(client: &Client, what: &str, js: &str) {
    let start = Instant::now();
    let script = format!("return Boolean({js});");
    loop {
        let holds = client.execute(&script, vec![]).await;
        if holds.is_ok_and(|v| v.as_bool() == Some(true)) {
            return;
        }
        if start.elapsed() > LIMIT {
            let text = page_text(client).await;
            panic!("timed out waiting for {what}; page text:\n{text}");
        }
        client.refresh().await.unwrap();
    }
}

/// Logs in with `token` on the login form the page shows.
pub(crate) async fn log_in(client: &Client, token: &str) {
    client
        .find(fantoccini::Locator::Css("input[name=token]"))
        .await
        .expect("a login form")
        .send_keys(token)
        .await
        .unwrap();
    click(client, "form button").await;
}

/// Clicks the admin's Kill button and confirms the question it asks.
pub(crate) async fn kill_and_confirm(client: &Client) {
    click(client, "button.danger").await;
    let start = Instant::now();
    loop {
        match client.get_alert_text().await {
            Ok(text) => {
                assert!(text.starts_with("Kill "), "{text}");
                client.accept_alert().await.unwrap();
                return;
            }
            Err(e) if start.elapsed() > LIMIT => panic!("Kill asked nothing: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(25)).await,
        }
    }
}
