//! The embedded TURN server against the real server on loopback: it relays only to Ketang's
//! own media sockets, refuses expired and forged credentials, survives a flood of
//! unauthenticated requests, and carries a webrtc-rs client that may use nothing but the relay.

mod common;
#[path = "turn/stun_client.rs"]
mod stun_client;

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use common::TestServer;
use ketang_loadtest::{
    ClientOptions, WhepOptions, WhepViewer, WhipOptions, WhipPublisher, ice_servers_from_links,
};
use ketang_sfu::Role;
use rtc_stun::message::{
    METHOD_ALLOCATE, METHOD_BINDING, METHOD_CHANNEL_BIND, METHOD_CREATE_PERMISSION, Setter,
};
use rtc_turn::proto::channum::ChannelNumber;
use rtc_turn::proto::data::Data;
use rtc_turn::proto::peeraddr::PeerAddress;
use stun_client::{allocate, exchange, request};
use tokio::net::UdpSocket;

fn turn_addr(s: &TestServer) -> SocketAddr {
    s.server
        .state
        .turn
        .get()
        .expect("TURN is on by default")
        .udp_addr
}

fn peer(a: SocketAddr) -> Box<dyn Setter> {
    Box::new(PeerAddress {
        ip: a.ip(),
        port: a.port(),
    })
}

/// A credential the server minted for `who`.
fn credential(s: &TestServer, who: &str) -> (String, String) {
    let t = s.server.state.turn.get().unwrap();
    t.credentials().mint(who, SystemTime::now())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_refuses_every_peer_but_ketang() {
    let s = TestServer::start().await;
    let server = turn_addr(&s);
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (user, pass) = credential(&s, "probe");
    let (reply, auth) = allocate(&client, server, &user, &pass).await;
    assert!(reply.ok(), "allocation refused: {:?}", reply.code());
    let relayed = reply.relayed().expect("XOR-RELAYED-ADDRESS");
    assert!(relayed.ip().is_loopback(), "{relayed}");

    // A socket of ours on the same host, Ketang's HTTP port, a public address: all refused.
    let victim = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let victim_addr = victim.local_addr().unwrap();
    let shard = s.server.state.media.shards()[0].local_addr;
    for other in [
        victim_addr,
        s.server.http_addr,
        "8.8.8.8:53".parse().unwrap(),
        SocketAddr::new(shard.ip(), shard.port().wrapping_add(1000)),
    ] {
        let r = exchange(
            &client,
            server,
            &request(METHOD_CREATE_PERMISSION, vec![peer(other)], Some(&auth)),
        )
        .await
        .expect("reply");
        assert_eq!(r.code(), Some(403), "permission for {other}");
        let r = exchange(
            &client,
            server,
            &request(
                METHOD_CHANNEL_BIND,
                vec![Box::new(ChannelNumber(0x4001)), peer(other)],
                Some(&auth),
            ),
        )
        .await
        .expect("reply");
        assert_eq!(r.code(), Some(403), "channel to {other}");
    }
    // One forbidden address among allowed ones refuses the whole request.
    let r = exchange(
        &client,
        server,
        &request(
            METHOD_CREATE_PERMISSION,
            vec![peer(shard), peer(victim_addr)],
            Some(&auth),
        ),
    )
    .await
    .unwrap();
    assert_eq!(r.code(), Some(403));
    // Ketang's own media sockets are allowed.
    for sh in s.server.state.media.shards() {
        let r = exchange(
            &client,
            server,
            &request(
                METHOD_CREATE_PERMISSION,
                vec![peer(sh.local_addr)],
                Some(&auth),
            ),
        )
        .await
        .unwrap();
        assert!(
            r.ok(),
            "permission for shard {}: {:?}",
            sh.local_addr,
            r.code()
        );
    }
    // A Send indication to the victim is dropped: nothing arrives there.
    let send = rtc_stun_send(victim_addr, b"open relay?");
    client.send_to(&send, server).await.unwrap();
    let mut buf = [0u8; 64];
    let got = tokio::time::timeout(Duration::from_millis(300), victim.recv_from(&mut buf)).await;
    assert!(got.is_err(), "the relay forwarded to a foreign address");
    let stats = s.server.state.turn.get().unwrap().stats();
    assert!(
        stats
            .refused_forbidden
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 10
    );
    let text = reqwest::get(s.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let forbidden = text
        .lines()
        .find(|l| l.starts_with("ketang_turn_refused_total{reason=\"forbidden\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(forbidden >= 10.0, "{forbidden}");
    assert!(text.contains("\nketang_turn_allocations 1\n"), "{text}");
}

/// A Send indication (no credentials: indications carry none).
fn rtc_stun_send(to: SocketAddr, data: &[u8]) -> Vec<u8> {
    use rtc_stun::message::{CLASS_INDICATION, METHOD_SEND, Message, MessageType};
    let mut m = Message::new();
    m.new_transaction_id().unwrap();
    let mut tid = Message::new();
    tid.transaction_id = m.transaction_id;
    m.build(&[
        Box::new(MessageType::new(METHOD_SEND, CLASS_INDICATION)),
        Box::new(tid),
        peer(to),
        Box::new(Data(data.to_vec())),
    ])
    .unwrap();
    m.raw
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_and_forged_credentials_are_refused() {
    let s = TestServer::start().await;
    let server = turn_addr(&s);
    let t = s.server.state.turn.get().unwrap();
    let long_ago = SystemTime::now() - Duration::from_secs(2 * 86_400);
    let (user, pass) = t.credentials().mint("late", long_ago);
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (reply, _) = allocate(&client, server, &user, &pass).await;
    assert_eq!(reply.code(), Some(401), "expired credential");

    let (user, _) = t.credentials().mint("forger", SystemTime::now());
    let forged = "bm90IHRoZSByaWdodCBwYXNzd29yZA==";
    let (reply, _) = allocate(&client, server, &user, forged).await;
    assert_eq!(reply.code(), Some(401), "forged password");

    // A later expiry with the old password: the MAC does not match.
    let (user, pass) = t.credentials().mint("stretch", SystemTime::now());
    let (exp, who) = user.split_once(':').unwrap();
    let stretched = format!("{}:{who}", exp.parse::<u64>().unwrap() + 86_400);
    let (reply, _) = allocate(&client, server, &stretched, &pass).await;
    assert_eq!(reply.code(), Some(401), "stretched expiry");
    assert_eq!(t.allocations(), 0);

    // The real one works from the same address.
    let (reply, _) = allocate(&client, server, &user, &pass).await;
    assert!(reply.ok(), "{:?}", reply.code());
    assert_eq!(t.allocations(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unauthenticated_allocates_leaves_it_serving() {
    let s = TestServer::start().await;
    let server = turn_addr(&s);
    let t = s.server.state.turn.get().unwrap();
    let rss_before = rss_kib();
    let started = Instant::now();
    let mut sockets = Vec::new();
    for _ in 0..10 {
        sockets.push(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    }
    let (mut sent, mut answered) = (0usize, 0usize);
    let mut buf = vec![0u8; 2048];
    // 10,000 Allocates in rounds of 100 (10 per socket), each round's replies read back.
    for _ in 0..100 {
        for sock in &sockets {
            for _ in 0..10 {
                let req = request(METHOD_ALLOCATE, stun_client::allocate_attrs(), None);
                sock.send_to(&req, server).await.unwrap();
                sent += 1;
            }
        }
        for sock in &sockets {
            for _ in 0..10 {
                match tokio::time::timeout(Duration::from_millis(200), sock.recv_from(&mut buf))
                    .await
                {
                    Ok(Ok(_)) => answered += 1,
                    _ => break,
                }
            }
        }
    }
    let took = started.elapsed();
    let rss_after = rss_kib();
    eprintln!(
        "flood: {sent} Allocates, {answered} answered in {took:?}; RSS {rss_before} -> {rss_after} KiB"
    );
    assert_eq!(sent, 10_000);
    assert!(answered >= 9_900, "only {answered} answered");
    assert!(took < Duration::from_secs(60));
    assert_eq!(t.allocations(), 0, "an unauthenticated request allocated");
    // Nothing is kept per unauthenticated request (stateless nonces): the process does not
    // grow by more than noise (the test binary's other threads included).
    assert!(
        rss_after.saturating_sub(rss_before) < 32 * 1024,
        "RSS grew {rss_before} -> {rss_after} KiB"
    );
    // Still serving: a Binding request and a real allocation.
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let r = exchange(&client, server, &request(METHOD_BINDING, vec![], None))
        .await
        .expect("binding reply after the flood");
    assert!(r.ok());
    let (user, pass) = credential(&s, "after-flood");
    let (reply, _) = allocate(&client, server, &user, &pass).await;
    assert!(reply.ok(), "{:?}", reply.code());
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retransmitted_allocate_gets_its_success_again_and_a_new_one_a_mismatch() {
    let s = TestServer::start().await;
    let server = turn_addr(&s);
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (user, pass) = credential(&s, "lossy");
    let first = exchange(
        &client,
        server,
        &request(METHOD_ALLOCATE, stun_client::allocate_attrs(), None),
    )
    .await
    .unwrap();
    let auth = stun_client::Auth {
        username: user,
        password: pass,
        realm: first.text(rtc_stun::attributes::ATTR_REALM).unwrap(),
        nonce: first.text(rtc_stun::attributes::ATTR_NONCE).unwrap(),
    };
    // The same request twice, as a client does when the success is lost on a lossy link.
    let req = request(METHOD_ALLOCATE, stun_client::allocate_attrs(), Some(&auth));
    let a = exchange(&client, server, &req).await.unwrap();
    let again = exchange(&client, server, &req).await.unwrap();
    assert!(a.ok() && again.ok(), "{:?} {:?}", a.code(), again.code());
    assert_eq!(a.relayed(), again.relayed(), "the same allocation");
    let other = request(METHOD_ALLOCATE, stun_client::allocate_attrs(), Some(&auth));
    let r = exchange(&client, server, &other).await.unwrap();
    assert_eq!(
        r.code(),
        Some(437),
        "a second allocation on the same 5-tuple"
    );
    assert_eq!(s.server.state.turn.get().unwrap().allocations(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocations_are_bounded_per_source_ip() {
    let s = TestServer::start_with(|c| {
        c.turn.max_allocations_per_ip = 3;
    })
    .await;
    let server = turn_addr(&s);
    let (user, pass) = credential(&s, "many");
    let mut held = Vec::new();
    for i in 0..4 {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (reply, _) = allocate(&sock, server, &user, &pass).await;
        if i < 3 {
            assert!(reply.ok(), "allocation {i}: {:?}", reply.code());
        } else {
            assert_eq!(reply.code(), Some(486), "the fourth from one IP");
        }
        held.push(sock);
    }
}

/// A webrtc-rs client allowed nothing but relay candidates plays a WHEP stream through the
/// TURN server, with the credentials of the `Link` headers of a WHEP answer; a publisher that
/// has the same servers but may use host candidates stays on direct UDP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_only_client_plays_through_turn() {
    let s = TestServer::start().await;
    let teacher = s.token("relay", Role::Teacher, "Ms Li");
    let viewer = s.token("relay", Role::Viewer, "student");

    let direct = WhepViewer::connect(&s.url("/whep/relay"), &viewer, WhepOptions::default())
        .await
        .expect("direct WHEP session");
    let links: Vec<&str> = direct.links().iter().map(String::as_str).collect();
    assert!(
        links
            .iter()
            .any(|l| l.contains("rel=\"ice-server\"") && l.starts_with("<turn:")),
        "{links:?}"
    );
    let servers: Vec<_> = ice_servers_from_links(links)
        .into_iter()
        .filter(|s| s.urls.iter().any(|u| u.ends_with("transport=udp")))
        .collect();
    assert_eq!(servers.len(), 1, "{servers:?}");
    assert!(servers[0].username.contains(':'));

    let started = Instant::now();
    let relayed = WhepViewer::connect(
        &s.url("/whep/relay"),
        &viewer,
        WhepOptions {
            client: ClientOptions {
                ice_servers: servers.clone(),
                relay_only: true,
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .expect("WHEP session through the relay");
    let relayed_in = started.elapsed();
    let options = WhipOptions {
        client: ClientOptions {
            ice_servers: servers,
            ..Default::default()
        },
        video: Some(ketang_loadtest::media::Vp8Config {
            bitrate_bps: 300_000,
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut p = WhipPublisher::connect(&s.url("/whip/relay"), &teacher, options)
        .await
        .expect("WHIP session");
    eprintln!("connected through TURN in {relayed_in:?}");
    assert!(relayed_in < Duration::from_secs(8));
    assert!(s.server.state.turn.get().unwrap().allocations() >= 1);

    let sent = p.run_for(Duration::from_secs(4)).await;
    let total = sent.audio.packets + sent.video.packets;
    let (got, _) = relayed
        .wait_for(Duration::from_secs(2), |st| {
            st.audio.unique_packets + st.video.unique_packets >= total
        })
        .await;
    let received = got.audio.unique_packets + got.video.unique_packets;
    eprintln!("through TURN: sent {total} packets, received {received}");
    assert!(total > 200, "the publisher sent too little: {total}");
    assert!(
        received * 100 >= total * 95,
        "only {received} of {total} packets arrived"
    );
    assert!(got.video.keyframes >= 1);

    // Counted and shown by the leg they use: the relayed player as turn_udp, the publisher
    // (host candidates beat relay ones) and the direct player as udp.
    let room = ketang_sfu::RoomId::new("relay").unwrap();
    let mut shown: Vec<String> = s
        .server
        .state
        .media
        .shard_of(&room)
        .unwrap()
        .snapshot(room.clone())
        .await
        .unwrap()
        .unwrap()
        .transports
        .iter()
        .map(|(_, t)| t.as_str().to_owned())
        .collect();
    shown.sort();
    assert_eq!(shown, vec!["turn_udp", "udp", "udp"]);
    let metrics = metric_by_transport(&s, "turn_udp").await;
    assert_eq!(
        metrics, 1,
        "ketang_peers_by_transport{{transport=\"turn_udp\"}}"
    );
    p.close().await.ok();
    drop(direct);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn welcome_hands_the_browser_a_turn_credential_and_off_means_none() {
    let s = TestServer::start().await;
    let token = s.token("welcome", Role::Classroom, "Room 3");
    let (_ws, welcome) = common::ws::connect(&s, &token).await;
    assert_eq!(welcome["type"], "welcome");
    let servers = welcome["iceServers"].as_array().expect("iceServers");
    assert_eq!(servers.len(), 1, "{welcome}");
    let port = turn_addr(&s).port();
    let urls: Vec<&str> = servers[0]["urls"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u.as_str())
        .collect();
    assert_eq!(
        urls,
        vec![
            format!("turn:127.0.0.1:{port}?transport=udp"),
            format!("turn:127.0.0.1:{port}?transport=tcp"),
        ]
    );
    let username = servers[0]["username"].as_str().unwrap();
    let credential = servers[0]["credential"].as_str().unwrap();
    let peer = welcome["peerId"].as_u64().unwrap();
    assert!(username.ends_with(&format!(":p{peer}")), "{username}");
    // The credential is good for an allocation.
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (reply, _) = allocate(&client, turn_addr(&s), username, credential).await;
    assert!(reply.ok(), "{:?}", reply.code());

    let off = TestServer::start_with(|c| c.turn.enabled = false).await;
    assert!(off.server.state.turn.get().is_none());
    let token = off.token("welcome", Role::Classroom, "Room 3");
    let (_ws, welcome) = common::ws::connect(&off, &token).await;
    assert_eq!(welcome["iceServers"], serde_json::json!([]));
}

/// `ketang_peers_by_transport` for one transport, summed over shards, once it is non-zero.
async fn metric_by_transport(s: &TestServer, transport: &str) -> u64 {
    let label = format!("transport=\"{transport}\"");
    let mut last = 0;
    for _ in 0..30 {
        let text = reqwest::get(s.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        last = text
            .lines()
            .filter(|l| l.starts_with("ketang_peers_by_transport{") && l.contains(&label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64;
        if last > 0 {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    last
}
