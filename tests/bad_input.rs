//! Bad input of every kind gets its documented error while a lesson runs undisturbed next to
//! it: tokens (expired, forged, wrong room), WHIP misuse, oversized and malformed signaling.

mod common;

use std::time::Duration;

use common::TestServer;
use futures_util::{SinkExt, StreamExt};
use ketang::auth::TokenAuthority;
use ketang_loadtest::{WhepOptions, WhepViewer, WhipOptions, WhipPublisher};
use ketang_sfu::Role;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_json(ws: &mut Ws) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("a message within 5 s")
            .expect("socket open")
            .expect("no socket error");
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

/// The next message of `type` (skipping others, e.g. participant events).
async fn next_of(ws: &mut Ws, typ: &str) -> Value {
    for _ in 0..50 {
        let v = next_json(ws).await;
        if v["type"] == typ {
            return v;
        }
    }
    panic!("no {typ} message");
}

async fn post_sdp(url: &str, token: &str, content_type: &str, body: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(url)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", content_type)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body = r.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_documented_errors_and_the_lesson_goes_on() {
    let s = TestServer::start().await;
    let teacher = s.token("math", Role::Teacher, "Ms Li");
    let viewer = s.token("math", Role::Viewer, "student");
    let v = WhepViewer::connect(&s.url("/whep/math"), &viewer, WhepOptions::default())
        .await
        .unwrap();
    // A light stream (100 kbit/s video): on a loaded CI machine a late receiver reads as
    // congestion to the bandwidth estimate, and a dip must not pause the one video layer
    // here; this test is about bad input, the allocator has its own tests.
    let options = WhipOptions {
        video: Some(ketang_loadtest::media::Vp8Config {
            bitrate_bps: 100_000,
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut p = WhipPublisher::connect(&s.url("/whip/math"), &teacher, options)
        .await
        .unwrap();
    // The lesson runs in the background while the abuse happens.
    let lesson = tokio::spawn(async move {
        let sent = p.run_for(Duration::from_secs(7)).await;
        (p, sent)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    // --- WHIP / WHEP ---
    let whip = s.url("/whip/math");
    let (st, body) = post_sdp(&whip, &viewer, "application/sdp", "v=0").await;
    assert_eq!(
        (st, body["error"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    let (st, body) = post_sdp(&whip, &teacher, "text/plain", "v=0").await;
    assert_eq!(st, 415, "{body}");
    let (st, body) = post_sdp(&whip, &teacher, "application/sdp", "this is not sdp").await;
    assert_eq!(
        (st, body["error"].as_str()),
        (400, Some("invalidSdp")),
        "{body}"
    );
    let expired = s.expired_token("math", Role::Viewer);
    let (st, body) = post_sdp(&s.url("/whep/math"), &expired, "application/sdp", "v=0").await;
    assert_eq!(
        (st, body["error"].as_str()),
        (401, Some("tokenExpired")),
        "{body}"
    );
    let (st, body) = post_sdp(&s.url("/whip/physics"), &teacher, "application/sdp", "v=0").await;
    assert_eq!(
        (st, body["error"].as_str()),
        (401, Some("tokenWrongRoom")),
        "{body}"
    );
    let forger = TokenAuthority::new(&[7u8; 32], Duration::from_secs(30));
    let forged = forger
        .mint(
            &ketang::auth::MintRequest {
                room: ketang_sfu::RoomId::new("math").unwrap(),
                role: Role::Teacher,
                name: "mallory".into(),
                classroom: None,
                mode: None,
                not_before: None,
                ttl: Duration::from_secs(600),
            },
            std::time::SystemTime::now(),
        )
        .unwrap();
    let (st, body) = post_sdp(&whip, &forged, "application/sdp", "v=0").await;
    assert_eq!(
        (st, body["error"].as_str()),
        (401, Some("tokenInvalid")),
        "{body}"
    );
    let (st, _) = post_sdp(&whip, "", "application/sdp", "v=0").await;
    assert_eq!(st, 401);
    let r = reqwest::Client::new()
        .delete(s.url("/whip/math/00112233445566778899aabbccddeeff"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // --- Pages ---
    let r = reqwest::get(s.url(&format!("/r/math?t={expired}")))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("tokenExpired") && html.contains("expired"),
        "{html}"
    );
    let r = reqwest::get(s.url(&format!("/r/math/session?t={viewer}")))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let claims: Value = r.json().await.unwrap();
    assert_eq!(claims["role"], "viewer");

    // --- WebSocket ---
    let refused = tokio_tungstenite::connect_async(s.ws_url(&expired)).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 401);
            let body = String::from_utf8(resp.body().clone().unwrap_or_default()).unwrap();
            assert!(body.contains("tokenExpired"), "{body}");
        }
        other => panic!("expected a 401, got {other:?}"),
    }

    let c1 = s.token("math", Role::Classroom, "Rural 3-2");
    let (mut ws, _) = tokio_tungstenite::connect_async(s.ws_url(&c1))
        .await
        .unwrap();
    let welcome = next_of(&mut ws, "welcome").await;
    assert_eq!(welcome["role"], "classroom");
    assert!(
        welcome["participants"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "Ms Li"),
        "{welcome}"
    );

    ws.send(Message::text(r#"{"type":"dance"}"#)).await.unwrap();
    let e = next_of(&mut ws, "error").await;
    assert_eq!(
        (e["code"].as_str(), e["ref"].as_str()),
        (Some("badMessage"), Some("dance"))
    );

    let big = format!(r#"{{"type":"offer","sdp":"{}"}}"#, "a".repeat(1 << 20));
    ws.send(Message::text(big)).await.unwrap();
    let e = next_of(&mut ws, "error").await;
    assert_eq!(e["code"], "messageTooLarge", "{e}");

    ws.send(Message::text(r#"{"type":"offer","sdp":"v=0 garbage"}"#))
        .await
        .unwrap();
    let e = next_of(&mut ws, "error").await;
    assert_eq!(e["code"], "invalidSdp", "{e}");

    ws.send(Message::text(r#"{"type":"answer","sdp":"v=0"}"#))
        .await
        .unwrap();
    let e = next_of(&mut ws, "error").await;
    assert_eq!(e["code"], "notJoined", "{e}");

    ws.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    let e = next_of(&mut ws, "error").await;
    assert_eq!(e["code"], "badMessage", "{e}");

    // The connection is still usable.
    ws.send(Message::text(r#"{"type":"ping"}"#)).await.unwrap();
    next_of(&mut ws, "pong").await;

    // A flood is throttled: the burst passes, the rest is refused.
    for _ in 0..100 {
        ws.send(Message::text(r#"{"type":"ping"}"#)).await.unwrap();
    }
    let mut limited = 0;
    let mut pongs = 0;
    for _ in 0..100 {
        match next_json(&mut ws).await["type"].as_str() {
            Some("pong") => pongs += 1,
            Some("error") => limited += 1,
            _ => {}
        }
        if pongs + limited == 100 {
            break;
        }
    }
    assert!(
        limited >= 50 && pongs >= 30,
        "pongs {pongs}, limited {limited}"
    );

    // Frames beyond the hard limit close the socket.
    let huge = "b".repeat(3 << 20);
    let _ = ws.send(Message::text(huge)).await;
    let mut closed = false;
    for _ in 0..200 {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => {
                if let Some(f) = frame {
                    assert_eq!(u16::from(f.code), 1009);
                }
                closed = true;
                break;
            }
            Ok(Some(Ok(_))) => continue,
            _ => {
                closed = true;
                break;
            }
        }
    }
    assert!(closed);

    // --- The lesson was not disturbed ---
    let (p, sent) = lesson.await.unwrap();
    let total = sent.audio.packets + sent.video.packets;
    let (got, _) = v
        .wait_for(Duration::from_secs(2), |st| {
            st.audio.unique_packets + st.video.unique_packets >= total
        })
        .await;
    let (audio, video) = (got.audio.unique_packets, got.video.unique_packets);
    assert!(
        audio * 100 >= sent.audio.packets * 95 && video * 100 >= sent.video.packets * 95,
        "audio {audio} of {}, video {video} of {}",
        sent.audio.packets,
        sent.video.packets
    );
    p.close().await.unwrap();
    v.close().await.unwrap();
}

/// A WebRTC offer publishing `n` Opus m-lines, bundled, as any client could send.
fn offer_with_audio_lines(n: usize) -> String {
    let mids: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    let mut s = format!(
        "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
         a=group:BUNDLE {}\r\na=msid-semantic: WMS\r\n",
        mids.join(" ")
    );
    for mid in &mids {
        s.push_str(&format!(
            "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n\
             a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=ice-options:trickle\r\n\
             a=fingerprint:sha-256 00:EC:71:FB:92:49:80:7F:81:CF:77:88:36:26:14:EC:4F:8C:9C:0C:73:5D:AC:C7:13:80:D3:4F:72:D6:F4:4D\r\n\
             a=setup:actpass\r\na=mid:{mid}\r\na=sendonly\r\na=msid:s t{mid}\r\na=rtcp-mux\r\n\
             a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\na=ssrc:{} cname:x\r\n",
            1000 + mid.parse::<u32>().unwrap_or(0)
        ));
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_with_too_many_m_lines_is_refused_on_whip_and_signaling() {
    let s = TestServer::start().await;
    let teacher = s.token("tracks", Role::Teacher, "Teacher");
    let (st, body) = post_sdp(
        &s.url("/whip/tracks"),
        &teacher,
        "application/sdp",
        &offer_with_audio_lines(100),
    )
    .await;
    assert_eq!(
        (st, body["error"].as_str()),
        (400, Some("tooManyTracks")),
        "{body}"
    );

    let c1 = s.token("tracks", Role::Classroom, "Class 1");
    let (mut ws, _) = tokio_tungstenite::connect_async(s.ws_url(&c1))
        .await
        .unwrap();
    let offer = serde_json::json!({"type": "offer", "sdp": offer_with_audio_lines(100)});
    ws.send(Message::text(offer.to_string())).await.unwrap();
    let e = next_of(&mut ws, "error").await;
    assert_eq!(e["code"], "tooManyTracks", "{e}");
    assert!(
        e["message"].as_str().unwrap_or("").contains("at most 8"),
        "{e}"
    );
    // A browser's four m-lines are within the cap: that offer joins.
    let offer = serde_json::json!({"type": "offer", "sdp": offer_with_audio_lines(4)});
    ws.send(Message::text(offer.to_string())).await.unwrap();
    let a = next_of(&mut ws, "answer").await;
    assert!(a["sdp"].as_str().unwrap_or("").contains("m=audio"), "{a}");
}
