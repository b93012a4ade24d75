//! Live sessions over a real WebSocket: one process per page, bad frames
//! refused, a crashed session closes only its own socket with 1011.

mod common;

use common::ws::{connect, next_text, send_sum, until_text};
use common::{LIMIT, TestNode, client_runtime, wait_until};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[test]
fn each_page_is_a_session_process_that_monitors_its_calculations() {
    let server = TestNode::start(100);
    client_runtime().block_on(async {
        let mut socket = connect(&server).await;
        let first = next_text(&mut socket).await;
        assert!(
            first.contains("id=\"sum-lines\""),
            "the first frame renders the page: {first}"
        );
        let sessions = server.sessions();
        assert_eq!(sessions.len(), 1);
        let session = sessions[0].clone();
        let info = server.node.info(&session).unwrap();
        assert_eq!(
            info.parent,
            Some(server.node.resolve("live_sup").unwrap().id())
        );

        send_sum(&mut socket, "-1").await;
        until_text(&mut socket, "calculating…").await;
        let runaway = server.math.running()[0].clone();
        let info = server.node.info(&session).unwrap();
        assert!(
            info.monitors.contains(&runaway),
            "the session monitors its calculation"
        );

        // Killing the calculation turns its line into an error.
        server.node.kill(&runaway);
        let frame = until_text(&mut socket, "data-state=\"error\"").await;
        assert!(frame.contains("title=\"killed\""), "{frame}");

        // Closing the page ends its session.
        socket.close(None).await.unwrap();
        wait_until("the session to end", || async { !session.is_alive() }).await;
    });
}

#[test]
fn bad_frames_get_a_notice_and_change_nothing() {
    let server = TestNode::start(100);
    client_runtime().block_on(async {
        let mut socket = connect(&server).await;
        next_text(&mut socket).await;
        let session = server.sessions()[0].clone();
        for bad in [
            "not json",
            "[1,2]",
            "{\"n\":\"5\"}",
            "{\"event\":\"sum\",\"n\":5}",
        ] {
            socket.send(Message::Text(bad.into())).await.unwrap();
            let notice = next_text(&mut socket).await;
            assert!(notice.contains("message not understood"), "{bad}: {notice}");
        }
        socket
            .send(Message::Binary(vec![1, 2, 3].into()))
            .await
            .unwrap();
        assert!(
            next_text(&mut socket)
                .await
                .contains("binary messages are not understood")
        );
        // Unknown events are ignored; the page still works.
        socket
            .send(Message::Text("{\"event\":\"nope\"}".into()))
            .await
            .unwrap();
        send_sum(&mut socket, "5").await;
        let frame = until_text(&mut socket, "data-state=\"ok\"").await;
        assert!(frame.contains(">15<"), "{frame}");
        assert!(session.is_alive());
        assert_eq!(server.math.counts().started, 1);

        // A frame over the limit ends the connection (and its session), not
        // the node, with "message too big" (1009) and a reason.
        let huge = "x".repeat(owl_web::MAX_FRAME_BYTES + 1);
        let _ = socket.send(Message::Text(huge.into())).await;
        let close = loop {
            match tokio::time::timeout(LIMIT, socket.next())
                .await
                .expect("the socket ends")
            {
                Some(Ok(Message::Close(frame))) => break frame,
                None | Some(Err(_)) => break None,
                Some(Ok(_)) => continue,
            }
        };
        let close = close.expect("a close frame, not a dropped connection");
        assert_eq!(u16::from(close.code), 1009, "{close:?}");
        assert!(close.reason.contains("too big"), "{close:?}");
        wait_until("the session to end", || async { !session.is_alive() }).await;
        let mut again = connect(&server).await;
        next_text(&mut again).await;
        send_sum(&mut again, "6").await;
        assert!(
            until_text(&mut again, "data-state=\"ok\"")
                .await
                .contains(">21<")
        );
    });
}

#[test]
fn a_crashed_session_closes_its_socket_with_1011_and_no_other() {
    let server = TestNode::start(100);
    client_runtime().block_on(async {
        let mut a = connect(&server).await;
        next_text(&mut a).await;
        let a_session = server.sessions()[0].clone();
        let mut b = connect(&server).await;
        next_text(&mut b).await;
        assert_eq!(server.sessions().len(), 2);

        server.node.exit(
            &a_session,
            owl_runtime::ExitReason::error("a bug in the page"),
        );
        let close = loop {
            match tokio::time::timeout(LIMIT, a.next())
                .await
                .expect("a close frame")
            {
                Some(Ok(Message::Close(frame))) => break frame.expect("a close code"),
                Some(Ok(_)) => continue,
                other => panic!("no close frame: {other:?}"),
            }
        };
        assert_eq!(close.code, CloseCode::Error, "1011");

        // B is untouched and still live.
        send_sum(&mut b, "5").await;
        assert!(
            until_text(&mut b, "data-state=\"ok\"")
                .await
                .contains(">15<")
        );
        assert_eq!(server.sessions().len(), 1);
    });
}

#[test]
fn live_connections_from_another_site_are_refused() {
    let server = TestNode::start(100);
    client_runtime().block_on(async {
        let mut request = format!("ws://{}/live/sum", server.addr)
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("origin", "http://evil.example".parse().unwrap());
        let refused = tokio_tungstenite::connect_async(request).await;
        match refused {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status().as_u16(), 403)
            }
            other => panic!("expected a 403, got {other:?}"),
        }
        // The same origin is welcome.
        let mut request = format!("ws://{}/live/sum", server.addr)
            .into_client_request()
            .unwrap();
        let origin = format!("http://{}", server.addr);
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        next_text(&mut socket).await;
        assert_eq!(server.sessions().len(), 1);
    });
}
