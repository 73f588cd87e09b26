//! Signaling from a test: a WebSocket joined with a data-only offer.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::TestServer;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub const DATA_ONLY_OFFER: &str = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
a=group:BUNDLE 0\r\na=msid-semantic: WMS\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n\
c=IN IP4 0.0.0.0\r\na=ice-ufrag:kT9x\r\na=ice-pwd:0123456789abcdefghijklmn\r\na=ice-options:trickle\r\n\
a=fingerprint:sha-256 6B:8B:5D:EA:59:04:20:23:29:C8:87:1C:CC:87:32:BE:DD:8C:66:A5:8E:50:55:EA:8C:D3:B6:5C:09:5E:D6:BC\r\n\
a=setup:actpass\r\na=mid:0\r\na=sctp-port:5000\r\na=max-message-size:262144\r\n";

/// The next message of type `typ`, within 5 s.
pub async fn next_of(ws: &mut Ws, typ: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no {typ} within 5 s"))
            .expect("socket open")
            .expect("no socket error");
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).expect("json");
            if v["type"] == typ {
                return v;
            }
        }
    }
}

pub async fn send(ws: &mut Ws, msg: Value) {
    ws.send(Message::Text(msg.to_string().into()))
        .await
        .expect("send");
}

/// The first message after connecting (`welcome`, or `bye` for a barred link).
pub async fn connect(s: &TestServer, token: &str) -> (Ws, Value) {
    let (mut ws, _) = tokio_tungstenite::connect_async(s.ws_url(token))
        .await
        .expect("websocket");
    let first = loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a first message")
            .expect("socket open")
            .expect("no error");
        if let Message::Text(t) = msg {
            break serde_json::from_str::<Value>(&t).expect("json");
        }
    };
    (ws, first)
}

pub async fn join(s: &TestServer, token: &str) -> Ws {
    let (mut ws, welcome) = connect(s, token).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    send(
        &mut ws,
        json!({"type": "offer", "sdp": DATA_ONLY_OFFER, "tracks": []}),
    )
    .await;
    next_of(&mut ws, "answer").await;
    ws
}
