//! The virtual users and the prober, speaking HTTP and WebSocket to the node
//! the way a browser and a script do.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::Shared;

/// How long one request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Time between two probes.
const PROBE_EVERY: Duration = Duration::from_millis(100);

/// Where the node is.
pub(super) struct Target {
    /// `host:port`.
    authority: String,
    /// Whether the node is on this machine's loopback, where every virtual
    /// user can have a source address of its own.
    loopback: bool,
    /// How the prober and the viewers reach it.
    shared: Peer,
}

/// One client's way to the node: its own connections and, on loopback, its
/// own source address — as each phone in a room has its own: the node's
/// per-address limits then see many visitors, not one.
pub(super) struct Peer {
    http: reqwest::Client,
    local: Option<IpAddr>,
}

impl Peer {
    fn new(local: Option<IpAddr>) -> Result<Peer, String> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .pool_max_idle_per_host(64)
            .local_address(local)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Peer { http, local })
    }
}

impl Target {
    pub(super) fn parse(url: &str) -> Result<Target, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url:?}: give an http:// address of an owl node"))?;
        let authority = rest.trim_end_matches('/').to_string();
        if authority.is_empty() || authority.contains('/') {
            return Err(format!(
                "{url:?}: give the node's address, e.g. http://127.0.0.1:4000"
            ));
        }
        let host = authority
            .rsplit_once(':')
            .map_or(authority.as_str(), |(h, _)| h);
        let loopback = host == "localhost"
            || host
                .trim_matches(|c| c == '[' || c == ']')
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_loopback() && ip.is_ipv4());
        Ok(Target {
            authority,
            loopback,
            shared: Peer::new(None)?,
        })
    }

    /// The way virtual user `n` reaches the node: from `127.1.x.y`, an
    /// address of its own, when the node is on loopback and `spread`;
    /// otherwise from wherever the system picks.
    pub(super) fn user(&self, n: u32, spread: bool) -> Result<Peer, String> {
        let local = (spread && self.loopback).then(|| {
            IpAddr::V4(std::net::Ipv4Addr::new(
                127,
                1,
                (n / 250) as u8,
                (n % 250) as u8 + 1,
            ))
        });
        Peer::new(local)
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.authority)
    }

    fn ws(&self, path: &str) -> String {
        format!("ws://{}{path}", self.authority)
    }
}

pub(super) async fn get(target: &Target, path: &str) -> Result<(u16, String), String> {
    let r = target
        .shared
        .http
        .get(target.url(path))
        .send()
        .await
        .map_err(|e| kind_of(&e))?;
    let status = r.status().as_u16();
    Ok((status, r.text().await.unwrap_or_default()))
}

fn kind_of(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connection refused or reset".into()
    } else {
        "request failed".into()
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a live page as a browser does: the page first (for its cookie),
/// then the WebSocket with it.
async fn open_live(target: &Target, peer: &Peer, page: &str, live: &str) -> Result<Socket, String> {
    let response = peer
        .http
        .get(target.url(page))
        .send()
        .await
        .map_err(|e| kind_of(&e))?;
    if response.status().as_u16() == 503 {
        return Err("503 on the page".into());
    }
    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_string);
    let _ = response.bytes().await;
    let mut request = target
        .ws(live)
        .into_client_request()
        .map_err(|e| e.to_string())?;
    request.headers_mut().insert(
        "origin",
        target
            .url("")
            .trim_end_matches('/')
            .parse()
            .map_err(|_| "bad origin")?,
    );
    if let Some(cookie) = cookie {
        request
            .headers_mut()
            .insert("cookie", cookie.parse().map_err(|_| "bad cookie")?);
    }
    let connect = async {
        match peer.local {
            None => tokio_tungstenite::connect_async(request)
                .await
                .map_err(|e| short(&e.to_string())),
            Some(local) => {
                let remote = tokio::net::lookup_host(&target.authority)
                    .await
                    .map_err(|e| e.to_string())?
                    .find(|a| a.is_ipv4())
                    .ok_or("no IPv4 address")?;
                let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
                socket
                    .bind(std::net::SocketAddr::new(local, 0))
                    .map_err(|e| format!("binding {local}: {e}"))?;
                let stream = socket.connect(remote).await.map_err(|e| e.to_string())?;
                let _ = stream.set_nodelay(true);
                tokio_tungstenite::client_async(
                    request,
                    tokio_tungstenite::MaybeTlsStream::Plain(stream),
                )
                .await
                .map_err(|e| short(&e.to_string()))
            }
        }
    };
    let (socket, _) = tokio::time::timeout(REQUEST_TIMEOUT, connect)
        .await
        .map_err(|_| "websocket: timeout".to_string())?
        .map_err(|e| format!("websocket: {e}"))?;
    Ok(socket)
}

fn short(text: &str) -> String {
    text.chars().take(60).collect()
}

/// The next text frame before `deadline`.
async fn next_text(socket: &mut Socket, deadline: Instant) -> Result<String, String> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, socket.next()).await {
            Err(_) => return Err("no answer in time".into()),
            Ok(None) => return Err("connection closed".into()),
            Ok(Some(Err(e))) => return Err(format!("websocket: {}", short(&e.to_string()))),
            Ok(Some(Ok(Message::Text(t)))) => return Ok(t.to_string()),
            Ok(Some(Ok(Message::Close(frame)))) => {
                return Err(format!(
                    "closed by the node ({})",
                    frame.map_or("no code".into(), |f| u16::from(f.code).to_string())
                ));
            }
            Ok(Some(Ok(_))) => continue,
        }
    }
}

fn sum_event(n: &str) -> Message {
    let event = serde_json::json!({"event": "sum", "n": n, "HEADERS": {"HX-Request": "true"}});
    Message::Text(event.to_string().into())
}

/// A live user: opens the sum page, submits `input`, checks that its line
/// appears, and keeps the page open to the end.
pub(super) async fn live_user(
    target: Arc<Target>,
    peer: Peer,
    shared: Arc<Shared>,
    input: String,
    end: Instant,
) {
    let tally = &shared.tally;
    let mut socket = match open_live(&target, &peer, "/", "/live/sum").await {
        Ok(s) => s,
        Err(e) => return tally.failed(e),
    };
    tally.connected.fetch_add(1, Ordering::Relaxed);
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    if let Err(e) = next_text(&mut socket, deadline).await {
        return tally.failed(e);
    }
    let sent = Instant::now();
    if socket.send(sum_event(&input)).await.is_err() {
        return tally.failed("could not send");
    }
    let line = format!("∑(1..{}) = ", input.trim());
    loop {
        match next_text(&mut socket, deadline).await {
            Ok(frame) if frame.contains(&line) => {
                if frame.contains("not started") {
                    tally.failed("not started (a limit)");
                } else {
                    tally.submit_ok.fetch_add(1, Ordering::Relaxed);
                    shared.submit.record(sent.elapsed());
                }
                break;
            }
            Ok(_) => continue,
            Err(e) => return tally.failed(e),
        }
    }
    // Stay, as a visitor does, reading what the page sends.
    while Instant::now() < end {
        match next_text(&mut socket, end).await {
            Ok(_) => continue,
            Err(e) if Instant::now() < end => {
                tally.error(format!("page lost before the end: {e}"));
                break;
            }
            Err(_) => break,
        }
    }
    let _ = socket.close(None).await;
}

/// An API user: one `POST /api/sum` without waiting for the result.
pub(super) async fn api_user(
    target: Arc<Target>,
    peer: Peer,
    shared: Arc<Shared>,
    input: String,
    _end: Instant,
) {
    let tally = &shared.tally;
    let started = Instant::now();
    let answer = peer
        .http
        .post(target.url("/api/sum?wait_ms=0"))
        .json(&serde_json::json!({"input": input}))
        .send()
        .await;
    match answer.map(|r| r.status().as_u16()) {
        Ok(200 | 202 | 422) => {
            tally.connected.fetch_add(1, Ordering::Relaxed);
            tally.submit_ok.fetch_add(1, Ordering::Relaxed);
            shared.submit.record(started.elapsed());
        }
        Ok(503) => {
            tally.connected.fetch_add(1, Ordering::Relaxed);
            tally.refused_503.fetch_add(1, Ordering::Relaxed);
            tally.failed("503 (a limit)");
        }
        Ok(other) => {
            tally.failed(format!("HTTP {other}"));
        }
        Err(e) => {
            tally.failed(kind_of(&e));
        }
    }
}

fn now_us() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros())
}

/// A board user: loads the board (for its visitor cookie), then posts
/// again and again until the end, each acknowledged.
pub(super) async fn board_user(
    target: Arc<Target>,
    peer: Peer,
    shared: Arc<Shared>,
    end: Instant,
    n: u32,
    every: Option<Duration>,
) {
    let tally = &shared.tally;
    let cookie = match peer
        .http
        .get(target.url("/board/building-blocks"))
        .send()
        .await
    {
        Ok(page) => page
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .unwrap_or_default()
            .to_string(),
        Err(e) => return tally.failed(kind_of(&e)),
    };
    tally.connected.fetch_add(1, Ordering::Relaxed);
    let mut i = 0u64;
    let mut next = Instant::now();
    while Instant::now() < end {
        if let Some(every) = every {
            // Paced: one post per interval, whatever the answers take.
            tokio::time::sleep_until(next.into()).await;
            next += every;
        }
        i += 1;
        let started = Instant::now();
        let answer = peer
            .http
            .post(target.url("/api/board/building-blocks"))
            .header("cookie", &cookie)
            .json(&serde_json::json!({"text": format!("load u{n} #{i} t={}", now_us()), "author": "owl load"}))
            .send()
            .await;
        match answer.map(|r| r.status().as_u16()) {
            Ok(201) => {
                tally.submit_ok.fetch_add(1, Ordering::Relaxed);
                shared.submit.record(started.elapsed());
            }
            Ok(429) => {
                tally.error("429 (posting too often)");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Ok(503) => {
                tally.refused_503.fetch_add(1, Ordering::Relaxed);
                tally.failed("503 (a limit)");
            }
            Ok(other) => {
                tally.failed(format!("HTTP {other}"));
            }
            Err(e) => {
                tally.failed(kind_of(&e));
            }
        }
    }
}

/// A board viewer: keeps the topic open and records how long each post
/// (its text carries the time it was sent) took to reach it.
pub(super) async fn board_viewer(target: Arc<Target>, shared: Arc<Shared>, end: Instant, _n: u32) {
    let mut socket = match open_live(
        &target,
        &target.shared,
        "/board/building-blocks",
        "/live/board/building-blocks",
    )
    .await
    {
        Ok(s) => s,
        Err(e) => return shared.tally.error(format!("viewer: {e}")),
    };
    let mut seen: HashSet<u128> = HashSet::new();
    let mut first = true;
    while Instant::now() < end {
        let Ok(frame) = next_text(&mut socket, end).await else {
            break;
        };
        let arrived = now_us();
        for part in frame.split(" t=").skip(1) {
            let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(sent) = digits.parse::<u128>()
                && seen.insert(sent)
                && !first
            {
                shared
                    .board_reach
                    .record(Duration::from_micros(arrived.saturating_sub(sent) as u64));
            }
        }
        // The first frame is the history, not news.
        first = false;
    }
    let _ = socket.close(None).await;
}

/// Every 100 ms until the end: a page load, a fresh live sum(7), an API sum(7).
pub(super) async fn probe(target: Arc<Target>, shared: Arc<Shared>, end: Instant) {
    let mut ticks = tokio::time::interval(PROBE_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while Instant::now() < end {
        ticks.tick().await;
        let started = Instant::now();
        match get(&target, "/").await {
            Ok((200, _)) => shared.page.record(started.elapsed()),
            Ok((status, _)) => shared.tally.error(format!("probe page: HTTP {status}")),
            Err(e) => shared.tally.error(format!("probe page: {e}")),
        }
        match live_sum(&target).await {
            Ok(took) => shared.live_sum.record(took),
            Err(e) => shared.tally.error(format!("probe live sum: {e}")),
        }
        let started = Instant::now();
        let answer = target
            .shared
            .http
            .post(target.url("/api/sum"))
            .json(&serde_json::json!({"input": "7"}))
            .send()
            .await;
        match answer {
            Ok(r) if r.status().as_u16() == 200 => {
                let body = r.text().await.unwrap_or_default();
                if body.contains("\"28\"") {
                    shared.api_sum.record(started.elapsed());
                } else {
                    shared.tally.error("probe api sum: wrong answer");
                }
            }
            Ok(r) => shared
                .tally
                .error(format!("probe api sum: HTTP {}", r.status().as_u16())),
            Err(e) => shared
                .tally
                .error(format!("probe api sum: {}", kind_of(&e))),
        }
    }
}

/// A fresh page's sum(7): from sending the input to seeing 28.
async fn live_sum(target: &Target) -> Result<Duration, String> {
    let mut socket = open_live(target, &target.shared, "/", "/live/sum").await?;
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    next_text(&mut socket, deadline).await?;
    let sent = Instant::now();
    socket
        .send(sum_event("7"))
        .await
        .map_err(|e| e.to_string())?;
    loop {
        let frame = next_text(&mut socket, deadline).await?;
        if frame.contains("∑(1..7) = <span class=\"value\">28") {
            let took = sent.elapsed();
            let _ = socket.close(None).await;
            return Ok(took);
        }
        if frame.contains("not started: the server is at its limit") {
            return Err("refused: the server is at its limit of calculations".into());
        }
    }
}
