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
    let mut request = format!("ws://{}/live/sum", server.addr)
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

pub(crate) async fn connect(server: &TestNode) -> Socket {
    connect_as(server, None).await
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
