//! TURN over TCP and TLS against the real server on loopback. webrtc-rs speaks TURN over UDP
//! only, so a small test bridge carries its TURN datagrams over a TCP (or TLS) connection to
//! the server, frame for frame (RFC 8656 §12.5 padding added and removed): the server sees a
//! TCP/TLS client, relays its media, and counts it as `turn_tcp` / `turn_tls`. Also: the stream
//! listeners' bounds.

mod common;
#[path = "turn/stun_client.rs"]
mod stun_client;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestServer;
use ketang_loadtest::{ClientOptions, WhepOptions, WhepViewer, WhipOptions, WhipPublisher};
use ketang_sfu::Role;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Frames one datagram for a stream: ChannelData padded to four bytes.
fn to_stream(d: &[u8]) -> Vec<u8> {
    let mut v = d.to_vec();
    if matches!(d.first(), Some(0x40..=0x7F)) {
        while !v.len().is_multiple_of(4) {
            v.push(0);
        }
    }
    v
}

/// (frame length on the stream, datagram length) of the frame at the start of `buf`.
fn frame(buf: &[u8]) -> Option<(usize, usize)> {
    if buf.len() < 4 {
        return None;
    }
    let len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
    if buf[0] < 0x40 {
        Some((20 + len, 20 + len))
    } else {
        Some(((4 + len + 3) & !3, 4 + len))
    }
}

/// A UDP port that webrtc-rs takes for a TURN server; each datagram goes over `stream`.
async fn bridge<S>(stream: S) -> SocketAddr
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let udp = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let at = udp.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut rd, mut wr) = tokio::io::split(stream);
        let mut buf = vec![0u8; 4096];
        let Ok((n, client)) = udp.recv_from(&mut buf).await else {
            return;
        };
        if wr.write_all(&to_stream(&buf[..n])).await.is_err() {
            return;
        }
        let back = udp.clone();
        tokio::spawn(async move {
            let mut acc: Vec<u8> = Vec::new();
            let mut chunk = vec![0u8; 4096];
            loop {
                let n = match rd.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                acc.extend_from_slice(&chunk[..n]);
                while let Some((on_stream, datagram)) = frame(&acc) {
                    if acc.len() < on_stream {
                        break;
                    }
                    let _ = back.send_to(&acc[..datagram], client).await;
                    acc.drain(..on_stream);
                }
            }
        });
        loop {
            let Ok((n, _)) = udp.recv_from(&mut buf).await else {
                return;
            };
            if wr.write_all(&to_stream(&buf[..n])).await.is_err() {
                return;
            }
        }
    });
    at
}

fn tls_connector(cert: &std::path::Path) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(cert).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_media_flows_over_turn_tcp_and_tls() {
    let certs = tempfile::tempdir().unwrap();
    let written = ketang::cert::write(
        &certs.path().join("turn"),
        &["127.0.0.1".to_owned()],
        30,
        false,
    )
    .unwrap();
    let (cert, key) = (written.cert.clone(), written.key.clone());
    let s = TestServer::start_with(move |c| {
        c.turn.tls_listen = Some("127.0.0.1:0".parse().unwrap());
        c.turn.tls_cert = Some(cert);
        c.turn.tls_key = Some(key);
    })
    .await;
    let turn = s.server.state.turn.get().expect("TURN on");
    let tls_addr = turn.tls_addr.expect("TLS listener");
    let servers = turn.ice_servers("test");
    assert!(
        servers[0].urls.contains(&format!(
            "turns:127.0.0.1:{}?transport=tcp",
            tls_addr.port()
        )),
        "{servers:?}"
    );
    let (username, credential) = (servers[0].username.clone(), servers[0].credential.clone());

    let teacher = s.token("streams", Role::Teacher, "Ms Li");
    let viewer = s.token("streams", Role::Viewer, "student");
    let options = WhipOptions {
        video: Some(ketang_loadtest::media::Vp8Config {
            bitrate_bps: 300_000,
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut p = WhipPublisher::connect(&s.url("/whip/streams"), &teacher, options)
        .await
        .expect("WHIP session");

    let tcp = TcpStream::connect(turn.tcp_addr).await.unwrap();
    let over_tcp = bridge(tcp).await;
    let tls_tcp = TcpStream::connect(tls_addr).await.unwrap();
    let tls = tls_connector(&written.cert)
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tls_tcp)
        .await
        .expect("TLS handshake with the TURN listener");
    let over_tls = bridge(tls).await;

    let mut viewers = Vec::new();
    for at in [over_tcp, over_tls] {
        let server = webrtc::peer_connection::RTCIceServer {
            urls: vec![format!("turn:{at}?transport=udp")],
            username: username.clone(),
            credential: credential.clone(),
        };
        let started = Instant::now();
        let v = WhepViewer::connect(
            &s.url("/whep/streams"),
            &viewer,
            WhepOptions {
                client: ClientOptions {
                    ice_servers: vec![server],
                    relay_only: true,
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .expect("WHEP session through TURN over a stream");
        eprintln!(
            "connected through the {at} bridge in {:?}",
            started.elapsed()
        );
        viewers.push(v);
    }
    let sent = p.run_for(Duration::from_secs(4)).await;
    let total = sent.audio.packets + sent.video.packets;
    for v in &viewers {
        let (got, _) = v
            .wait_for(Duration::from_secs(2), |st| {
                st.audio.unique_packets + st.video.unique_packets >= total
            })
            .await;
        let received = got.audio.unique_packets + got.video.unique_packets;
        eprintln!("sent {total}, received {received}");
        assert!(total > 200);
        assert!(
            received * 100 >= total * 95,
            "{received} of {total} arrived"
        );
    }
    let room = ketang_sfu::RoomId::new("streams").unwrap();
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
    assert_eq!(shown, vec!["turn_tcp", "turn_tls", "udp"]);
    p.close().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_connections_are_bounded() {
    let s = TestServer::start_with(|c| c.turn.max_pending_per_ip = 2).await;
    let at = s.server.state.turn.get().unwrap().tcp_addr;
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(TcpStream::connect(at).await.unwrap());
    }
    // The third from the same IP is closed at once.
    let mut third = TcpStream::connect(at).await.unwrap();
    let mut b = [0u8; 16];
    let r = tokio::time::timeout(Duration::from_secs(2), third.read(&mut b)).await;
    assert!(matches!(r, Ok(Ok(0)) | Ok(Err(_))), "{r:?}");
    // The first two stay open...
    let r = tokio::time::timeout(Duration::from_millis(300), held[0].read(&mut b)).await;
    assert!(
        r.is_err(),
        "a pending connection within the bound was closed"
    );
    // ... until one sends a frame larger than any TURN message may be.
    let mut big = vec![0u8; 8];
    big[0] = 0x40;
    big[2..4].copy_from_slice(&60_000u16.to_be_bytes());
    held[0].write_all(&big).await.unwrap();
    let r = tokio::time::timeout(Duration::from_secs(2), held[0].read(&mut b)).await;
    assert!(matches!(r, Ok(Ok(0)) | Ok(Err(_))), "{r:?}");
    // A real client still allocates over TCP from another connection.
    drop(held);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut c = TcpStream::connect(at).await.unwrap();
    let req = stun_client::request(
        rtc_stun::message::METHOD_ALLOCATE,
        stun_client::allocate_attrs(),
        None,
    );
    c.write_all(&req).await.unwrap();
    let mut buf = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(2), c.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let reply = stun_client::parse(&buf[..n]).expect("a STUN reply over TCP");
    assert_eq!(reply.code(), Some(401));
    let refused = s
        .server
        .state
        .turn
        .get()
        .unwrap()
        .stats()
        .connections_refused
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(refused, 1);
}
