//! HTTPS built in (`[http] tls_cert`, `tls_key`): the server answers over TLS with a
//! certificate from `ketang cert`, on HTTP/1.1 and HTTP/2; TLS 1.0 and 1.1 handshakes fail
//! while the same hello as TLS 1.2 succeeds; a certificate replaced on disk is served from the
//! next handshake on, without a restart.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ketang::config::Config;
use ketang::server::{RunningServer, start};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const HOSTS: [&str; 2] = ["ketang.test", "127.0.0.1"];

fn hosts() -> Vec<String> {
    HOSTS.map(String::from).to_vec()
}

async fn tls_server(certs: &Path, data: &Path) -> RunningServer {
    let mut config = Config::default();
    config.http.listen = "127.0.0.1:0".parse().unwrap();
    config.media.listen = "127.0.0.1:0".parse().unwrap();
    config.media.shards = 1;
    config.storage.data_dir = data.to_path_buf();
    config.http.tls_cert = Some(certs.join("cert.pem"));
    config.http.tls_key = Some(certs.join("key.pem"));
    start(config).await.expect("server starts with TLS")
}

fn pem_cert(path: &Path) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(path).expect("a PEM certificate")
}

/// A rustls client trusting `trusted`, offering `alpn`.
fn connector(trusted: &[CertificateDer<'static>], alpn: &[&[u8]]) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in trusted {
        roots.add(c.clone()).expect("trust anchor");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}

async fn handshake(
    server: &RunningServer,
    connector: &TlsConnector,
    name: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(server.http_addr).await?;
    let name = ServerName::try_from(name.to_owned()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
        .await
        .map_err(|_| std::io::Error::other("handshake timed out"))?
}

#[tokio::test]
async fn https_answers_on_http1_and_http2_with_a_ketang_cert_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let written = ketang::cert::write(&dir.path().join("certs"), &hosts(), 30, false).unwrap();
    let server = tls_server(&dir.path().join("certs"), dir.path()).await;
    let cert = pem_cert(&written.cert);
    assert!(
        server
            .state
            .config
            .public_base_url()
            .starts_with("https://"),
        "links name https"
    );

    // HTTP/1.1, by name and by address (both in the certificate).
    for name in HOSTS {
        let mut tls = handshake(
            &server,
            &connector(std::slice::from_ref(&cert), &[b"http/1.1"]),
            name,
        )
        .await
        .unwrap_or_else(|e| panic!("handshake as {name}: {e}"));
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
        let req = format!("GET /healthz HTTP/1.1\r\nhost: {name}\r\nconnection: close\r\n\r\n");
        tls.write_all(req.as_bytes()).await.unwrap();
        let mut resp = String::new();
        tls.read_to_string(&mut resp).await.unwrap();
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        assert!(resp.contains("\"status\":\"ok\""), "{resp}");
    }

    // HTTP/2, chosen by ALPN.
    let tls = handshake(
        &server,
        &connector(std::slice::from_ref(&cert), &[b"h2", b"http/1.1"]),
        "ketang.test",
    )
    .await
    .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(conn);
    let req = hyper::Request::get("https://ketang.test/healthz")
        .body(http_body_util_empty())
        .unwrap();
    let resp = send.send_request(req).await.expect("h2 request");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), hyper::Version::HTTP_2);

    // A client that does not trust the certificate fails the handshake.
    let other = ketang::cert::generate(&hosts(), 30).unwrap();
    let stranger = CertificateDer::from_pem_slice(other.cert_pem.as_bytes()).unwrap();
    assert!(
        handshake(&server, &connector(&[stranger], &[]), "ketang.test")
            .await
            .is_err()
    );
    server.shutdown().await.unwrap();
}

/// An empty request body for hyper's client (no extra crate for one type).
fn http_body_util_empty() -> axum::body::Body {
    axum::body::Body::empty()
}

/// A ClientHello as a client of `version` sends it (`0x0301` TLS 1.0, `0x0302` 1.1, `0x0303`
/// 1.2), with cipher suites that version has and the usual extensions.
fn client_hello(version: u16) -> Vec<u8> {
    let ext = |kind: u16, data: &[u8]| {
        let mut e = kind.to_be_bytes().to_vec();
        e.extend((data.len() as u16).to_be_bytes());
        e.extend(data);
        e
    };
    let name = b"ketang.test";
    let mut sni = ((name.len() + 3) as u16).to_be_bytes().to_vec();
    sni.push(0);
    sni.extend((name.len() as u16).to_be_bytes());
    sni.extend(name);
    let mut exts = ext(0x0000, &sni);
    exts.extend(ext(0x000a, &[0, 4, 0x00, 0x1d, 0x00, 0x17])); // x25519, secp256r1
    exts.extend(ext(0x000b, &[1, 0])); // uncompressed points
    let suites: &[u16] = if version >= 0x0303 {
        // ECDSA signatures with SHA-256, and an AEAD suite.
        exts.extend(ext(0x000d, &[0, 4, 0x04, 0x03, 0x08, 0x04]));
        &[0xc02b, 0xc02f, 0xc009, 0xc013]
    } else {
        // ECDHE with AES-CBC and SHA-1: what TLS 1.0/1.1 clients offer.
        &[0xc009, 0xc013, 0xc00a, 0xc014, 0x002f, 0x0035]
    };
    let mut body = version.to_be_bytes().to_vec();
    body.extend([7u8; 32]); // random
    body.push(0); // no session id
    body.extend(((suites.len() * 2) as u16).to_be_bytes());
    for s in suites {
        body.extend(s.to_be_bytes());
    }
    body.extend([1, 0]); // null compression
    body.extend((exts.len() as u16).to_be_bytes());
    body.extend(exts);
    let mut hs = vec![0x01];
    hs.extend(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend(body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend((hs.len() as u16).to_be_bytes());
    record.extend(hs);
    record
}

/// What the server answers to a raw hello: `Ok(server_version)` for a ServerHello, `Err(what)`
/// for an alert or a closed connection.
async fn answer_to(server: &RunningServer, hello: &[u8]) -> Result<u16, String> {
    let mut tcp = TcpStream::connect(server.http_addr).await.unwrap();
    tcp.write_all(hello).await.unwrap();
    let mut head = [0u8; 5];
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read_exact(&mut head)).await;
    match read {
        Err(_) => panic!("no answer within 5 s"),
        Ok(Err(e)) => return Err(format!("closed: {e}")),
        Ok(Ok(_)) => {}
    }
    match head[0] {
        0x15 => {
            let mut alert = [0u8; 2];
            let _ = tcp.read_exact(&mut alert).await;
            Err(format!("alert {}", alert[1]))
        }
        0x16 => {
            let mut hs = [0u8; 6];
            tcp.read_exact(&mut hs).await.unwrap();
            assert_eq!(hs[0], 0x02, "a ServerHello");
            Ok(u16::from_be_bytes([hs[4], hs[5]]))
        }
        other => Err(format!("record type {other}")),
    }
}

#[tokio::test]
async fn tls_1_0_and_1_1_handshakes_fail_where_the_same_hello_as_1_2_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    ketang::cert::write(&dir.path().join("certs"), &hosts(), 30, false).unwrap();
    let server = tls_server(&dir.path().join("certs"), dir.path()).await;

    // The control: the hand-made hello is one a TLS 1.2 server accepts.
    assert_eq!(answer_to(&server, &client_hello(0x0303)).await, Ok(0x0303));
    for (version, label) in [(0x0301, "TLS 1.0"), (0x0302, "TLS 1.1")] {
        let answer = answer_to(&server, &client_hello(version)).await;
        assert!(
            answer.is_err(),
            "{label} hello got a ServerHello: {answer:?}"
        );
        // 70 protocol_version or 40 handshake_failure: either way, no session.
        if let Err(what) = &answer {
            assert!(
                what.starts_with("alert") || what.starts_with("closed"),
                "{label}: {what}"
            );
        }
    }
    // Plain HTTP on the TLS port gets no HTTP answer.
    let mut tcp = TcpStream::connect(server.http_addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
    assert!(
        !buf.starts_with(b"HTTP/"),
        "{:?}",
        String::from_utf8_lossy(&buf)
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_certificate_replaced_on_disk_is_served_from_the_next_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let first = ketang::cert::write(&certs, &hosts(), 30, false).unwrap();
    let server = tls_server(&certs, dir.path()).await;
    let old = pem_cert(&first.cert);

    // A broken key file: the server keeps serving the current certificate.
    std::fs::write(&first.key, "-----BEGIN PRIVATE KEY-----\nbroken\n").unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;

    let second = ketang::cert::write(&certs, &hosts(), 30, true).unwrap();
    let new = pem_cert(&second.cert);
    assert_ne!(old, new);
    let both = connector(&[old.clone(), new.clone()], &[]);
    let served = |tls: &tokio_rustls::client::TlsStream<TcpStream>| {
        tls.get_ref().1.peer_certificates().unwrap()[0].clone()
    };
    let tls = handshake(&server, &both, "ketang.test").await.unwrap();
    let mut seen = served(&tls);
    assert!(seen == old || seen == new);
    let deadline = Instant::now() + Duration::from_secs(15);
    while seen != new && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        seen = served(&handshake(&server, &both, "ketang.test").await.unwrap());
    }
    assert_eq!(seen, new, "the renewed certificate is served within 15 s");
    // A connection made before the renewal goes on working.
    let mut tls = tls;
    tls.write_all(b"GET /healthz HTTP/1.1\r\nhost: ketang.test\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut resp = String::new();
    tls.read_to_string(&mut resp).await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    server.shutdown().await.unwrap();
}
