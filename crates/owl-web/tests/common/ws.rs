//! A live page's WebSocket, as htmx drives it, for tests.

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::{LIMIT, TestNode};

pub(crate) type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the sum page's live connection, as the visitor with `cookie`
/// (`owl_client=…`) when given.
pub(crate) async fn connect_as(server: &TestNode, cookie: Option<&str>) -> Socket {
    connect_to(server, "/live/sum", cookie).await
}

/// Opens the live connection at `path` (`/live/board/TOPIC`, …), with
/// `cookie` when given.
pub(crate) async fn connect_to(server: &TestNode, path: &str, cookie: Option<&str>) -> Socket {
    let mut request = format!("ws://{}{path}", server.addr)
        .into_client_request()
        .unwrap();
    if let Some(cookie) = cookie {
        request
            .headers_mut()
            .insert("cookie", cookie.parse().unwrap());
    }
    let (socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("connects");
    socket
}

/// Opens the live connection at `path` from the loopback address `from`
/// (127.0.0.2, …: another client address than the tests' usual one), with
/// `headers` added; the socket, or the close frame the node answered with
/// at once.
pub(crate) async fn connect_from(
    server: &TestNode,
    path: &str,
    from: std::net::IpAddr,
    headers: &[(&'static str, &str)],
) -> Socket {
    let mut request = format!("ws://{}{path}", server.addr)
        .into_client_request()
        .unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(*name, value.parse().unwrap());
    }
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(std::net::SocketAddr::new(from, 0)).unwrap();
    let stream = socket.connect(server.addr).await.unwrap();
    let (socket, _) =
        tokio_tungstenite::client_async(request, tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await
            .expect("connects");
    socket
}

/// The close frame's code and reason, once the node closes `socket` (text
/// frames before it are skipped); panics after [`LIMIT`].
pub(crate) async fn closed_with(socket: &mut Socket) -> (u16, String) {
    loop {
        let frame = tokio::time::timeout(LIMIT, socket.next())
            .await
            .expect("a frame in time");
        match frame {
            Some(Ok(Message::Close(Some(close)))) => {
                return (close.code.into(), close.reason.to_string());
            }
            Some(Ok(Message::Close(None))) | None => return (1005, String::new()),
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("the socket failed instead of closing: {e}"),
        }
    }
}

pub(crate) async fn connect(server: &TestNode) -> Socket {
    connect_as(server, None).await
}

/// The next text frame, or `None` if the socket closes first (a refused
/// page); panics after [`LIMIT`].
pub(crate) async fn try_next_text(socket: &mut Socket) -> Option<String> {
    loop {
        let frame = tokio::time::timeout(LIMIT, socket.next())
            .await
            .expect("a frame in time");
        match frame {
            Some(Ok(Message::Text(text))) => return Some(text.to_string()),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => continue,
        }
    }
}

/// The next text frame; panics after [`LIMIT`].
pub(crate) async fn next_text(socket: &mut Socket) -> String {
    loop {
        let frame = tokio::time::timeout(LIMIT, socket.next())
            .await
            .expect("a frame in time")
            .expect("the socket is open")
            .expect("a valid frame");
        if let Message::Text(text) = frame {
            return text.to_string();
        }
    }
}

/// Reads frames until one contains `needle`.
pub(crate) async fn until_text(socket: &mut Socket, needle: &str) -> String {
    loop {
        let text = next_text(socket).await;
        if text.contains(needle) {
            return text;
        }
    }
}

/// Reads frames until `done` holds for one; returns it.
pub(crate) async fn until(socket: &mut Socket, done: impl Fn(&str) -> bool) -> String {
    loop {
        let text = next_text(socket).await;
        if done(&text) {
            return text;
        }
    }
}

pub(crate) async fn send_sum(socket: &mut Socket, n: &str) {
    let event = serde_json::json!({"event": "sum", "n": n, "HEADERS": {"HX-Request": "true"}});
    socket
        .send(Message::Text(event.to_string().into()))
        .await
        .unwrap();
}

/// The lines of a rendered sum list, newest first: (state, value).
pub(crate) fn lines(html: &str) -> Vec<(String, String)> {
    html.split("<li ")
        .skip(1)
        .map(|li| {
            let state = li
                .split("data-state=\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .unwrap_or("")
                .to_string();
            let value = li
                .split("class=\"value\">")
                .nth(1)
                .and_then(|s| s.split('<').next())
                .unwrap_or("")
                .to_string();
            (state, value)
        })
        .collect()
}
