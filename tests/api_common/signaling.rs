//! Signaling from a test: a WebSocket joined with a data-only offer (enough to be in a room and
//! receive its messages; the peer never connects media), or with a real data-channel
//! connection that does (a present participant: presence means media), and the tokens of a
//! lesson's links.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::Api;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A browser-like offer with only a data channel.
pub const DATA_ONLY_OFFER: &str = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
a=group:BUNDLE 0\r\na=msid-semantic: WMS\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n\
c=IN IP4 0.0.0.0\r\na=ice-ufrag:kT9x\r\na=ice-pwd:0123456789abcdefghijklmn\r\na=ice-options:trickle\r\n\
a=fingerprint:sha-256 6B:8B:5D:EA:59:04:20:23:29:C8:87:1C:CC:87:32:BE:DD:8C:66:A5:8E:50:55:EA:8C:D3:B6:5C:09:5E:D6:BC\r\n\
a=setup:actpass\r\na=mid:0\r\na=sctp-port:5000\r\na=max-message-size:262144\r\n";

/// The next message of type `typ` (others are skipped), within 5 s.
pub async fn next_of(ws: &mut Ws, typ: &str) -> Value {
    let within = Duration::from_secs(5);
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no {typ} message within {within:?}"))
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

/// Opens the signaling socket; returns it with its `welcome`.
pub async fn connect(api: &Api, token: &str) -> (Ws, Value) {
    let url = format!("ws://{}/ws?t={token}", api.server.http_addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket");
    let welcome = next_of(&mut ws, "welcome").await;
    (ws, welcome)
}

/// Joins over signaling with a data-only offer; returns the socket and its `welcome`.
pub async fn join(api: &Api, token: &str) -> (Ws, Value) {
    let (mut ws, welcome) = connect(api, token).await;
    send(
        &mut ws,
        json!({"type": "offer", "sdp": DATA_ONLY_OFFER, "tracks": []}),
    )
    .await;
    next_of(&mut ws, "answer").await;
    (ws, welcome)
}

/// Joins over signaling with a connection that connects media (a data channel); returns the
/// socket, its `welcome` and the connection, which stays up while it lives (also after the
/// socket is dropped).
pub async fn join_with_media(
    api: &Api,
    token: &str,
) -> (Ws, Value, ketang_loadtest::data_peer::DataPeer) {
    let (mut ws, welcome) = connect(api, token).await;
    let opts = ketang_loadtest::ClientOptions::default();
    let (mut peer, sdp) = ketang_loadtest::data_peer::DataPeer::offer(&opts)
        .await
        .expect("offer");
    send(&mut ws, json!({"type": "offer", "sdp": sdp, "tracks": []})).await;
    let answer = next_of(&mut ws, "answer").await;
    let sdp = answer["sdp"].as_str().expect("answer sdp").to_owned();
    peer.accept_answer(sdp).await.expect("media connected");
    (ws, welcome, peer)
}

/// The token of a lesson's link of `kind` (for `classroom`, if given).
pub fn link_token(links: &Value, kind: &str, classroom: Option<&str>) -> String {
    links["links"]
        .as_array()
        .expect("links")
        .iter()
        .find(|l| l["kind"] == kind && classroom.is_none_or(|c| l["classroomId"] == c))
        .unwrap_or_else(|| panic!("no {kind} link in {links:#}"))["token"]
        .as_str()
        .expect("token")
        .to_owned()
}
