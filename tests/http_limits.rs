//! The HTTP front's bounds, against the real `ketang` binary (its open file descriptors are
//! counted in /proc): 200 half-sent requests are closed after `http.header_read_timeout` or
//! refused at once beyond `http.max_connections`, and the server's descriptors come back to
//! where they were; stalled TLS handshakes are closed the same way; a dripping request body is
//! answered 408 at `http.body_read_timeout`; every response carries the security headers.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

const MAX_CONNECTIONS: usize = 64;
/// Refused connections that may linger (up to 1 s, to read their 503) besides those.
const REFUSING_AT_MOST: usize = 64;
const HEADER_TIMEOUT: Duration = Duration::from_secs(1);

struct Served {
    child: Child,
    addr: String,
    config: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Served {
    fn open_fds(&self) -> usize {
        let pid = self.child.id().expect("running");
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

/// `ketang serve` with small limits on ephemeral ports; waits for its "serving" line.
async fn serve(extra: &str, tls: bool) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut http = format!(
        "[http]\nlisten = \"127.0.0.1:0\"\nheader_read_timeout = \"1s\"\n\
         body_read_timeout = \"1s\"\nmax_connections = {MAX_CONNECTIONS}\n{extra}\n"
    );
    if tls {
        let certs = dir.path().join("certs");
        ketang::cert::write(&certs, &["127.0.0.1".to_owned()], 2, false).unwrap();
        http.push_str(&format!(
            "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
            certs.join("cert.pem").display(),
            certs.join("key.pem").display()
        ));
    }
    let config = dir.path().join("ketang.toml");
    std::fs::write(
        &config,
        format!(
            "{http}[media]\nlisten = \"127.0.0.1:0\"\nshards = 1\n[storage]\ndata_dir = \"{}\"\n",
            data.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ketang"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(at) = line.split("http=").nth(1) {
                return at.trim().to_owned();
            }
        }
        panic!("the server stopped before serving");
    })
    .await
    .expect("serving within 20 s");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Served {
        child,
        addr,
        config,
        _dir: dir,
    }
}

/// Reads until the server closes the connection or `within` passes: `Some((when, what it
/// sent))` when it closed (or reset) the connection in time.
async fn closed_within(mut s: TcpStream, within: Duration) -> Option<(Instant, Vec<u8>)> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some((Instant::now(), got)),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

async fn get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut resp = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut resp))
        .await
        .expect("an answer within 5 s")
        .unwrap();
    resp
}

#[tokio::test]
async fn half_sent_requests_are_closed_or_refused_with_bounded_descriptors() {
    let server = serve("", false).await;
    assert!(
        get(&server.addr, "/healthz")
            .await
            .starts_with("HTTP/1.1 200")
    );
    let baseline = server.open_fds();

    // 200 connections that send a request head without its final empty line, and wait.
    let mut conns = Vec::new();
    for _ in 0..200 {
        let mut s = TcpStream::connect(&server.addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: ")
            .await
            .unwrap();
        conns.push(s);
    }
    let opened = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let held = server.open_fds();
    eprintln!("descriptors: baseline {baseline}, with 200 half-sent requests {held}");
    assert!(
        held <= baseline + MAX_CONNECTIONS + REFUSING_AT_MOST + 4,
        "the server holds {held} descriptors with 200 half-sent requests (baseline {baseline}, cap {MAX_CONNECTIONS})"
    );

    let outcomes = futures_util::future::join_all(
        conns
            .into_iter()
            .map(|s| closed_within(s, HEADER_TIMEOUT + Duration::from_secs(4))),
    )
    .await;
    let still_open = outcomes.iter().filter(|o| o.is_none()).count();
    assert_eq!(
        still_open, 0,
        "every half-sent request is closed or refused"
    );
    // Beyond the cap, refused at once (a 503 while few refusals are in progress, else
    // closed), long before the header timeout closes the others.
    let at_once = outcomes
        .iter()
        .flatten()
        .filter(|(when, _)| when.duration_since(opened) < HEADER_TIMEOUT * 8 / 10)
        .count();
    let answered_503 = outcomes
        .iter()
        .flatten()
        .filter(|(_, got)| got.starts_with(b"HTTP/1.1 503"))
        .count();
    eprintln!("refused at once: {at_once}, with a 503: {answered_503}");
    assert!(
        at_once >= 200 - MAX_CONNECTIONS,
        "{at_once} of 200 refused at once"
    );
    assert!(answered_503 >= 1, "refusals say why (503)");
    assert!(opened.elapsed() < HEADER_TIMEOUT + Duration::from_secs(5));

    // The server is free again: it answers, and its descriptors are back.
    assert!(
        get(&server.addr, "/healthz")
            .await
            .starts_with("HTTP/1.1 200")
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.open_fds() > baseline + 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        server.open_fds() <= baseline + 2,
        "descriptors back to the baseline"
    );
}

#[tokio::test]
async fn stalled_tls_handshakes_are_closed_after_the_header_timeout() {
    let server = serve("", true).await;
    let baseline = server.open_fds();
    let mut conns = Vec::new();
    for i in 0..20 {
        let mut s = TcpStream::connect(&server.addr).await.unwrap();
        if i % 2 == 0 {
            // The first bytes of a ClientHello record, then nothing.
            s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
                .await
                .unwrap();
        }
        conns.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        server.open_fds() >= baseline + 20,
        "the handshakes are held at first"
    );
    let outcomes = futures_util::future::join_all(
        conns
            .into_iter()
            .map(|s| closed_within(s, HEADER_TIMEOUT + Duration::from_secs(4))),
    )
    .await;
    assert!(
        outcomes.iter().all(Option::is_some),
        "every stalled handshake is closed"
    );
}

#[tokio::test]
async fn a_dripping_body_gets_408_at_the_body_timeout_and_headers_are_on_every_response() {
    let server = serve("frame_ancestors = [\"https://portal.school.cn\"]", false).await;
    let key = admin_key(&server.config).await;

    let s = TcpStream::connect(&server.addr).await.unwrap();
    let (mut reader, mut writer) = s.into_split();
    let head = format!(
        "POST /api/v1/schools HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\n\
         content-type: application/json\r\ncontent-length: 200\r\n\r\n{{"
    );
    writer.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    // A byte every 300 ms: never idle for long, never done.
    let dripping = tokio::spawn(async move {
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if writer.write_all(b" ").await.is_err() {
                break;
            }
        }
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(6), reader.read(&mut buf)).await
    {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        if answer.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let took = started.elapsed();
    dripping.abort();
    let text = String::from_utf8_lossy(&answer).to_lowercase();
    assert!(text.starts_with("http/1.1 408"), "{text}");
    assert!(text.contains("connection: close"), "{text}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "answered after {took:?}"
    );

    // The security headers, on a page, an API answer and a 404.
    for path in ["/", "/api/v1/docs", "/api/v1/nothing", "/static/js/room.js"] {
        let resp = get(&server.addr, path).await.to_lowercase();
        assert!(
            resp.contains("content-security-policy: default-src 'self'; script-src 'self'"),
            "{path}: {resp}"
        );
        assert!(
            resp.contains("frame-ancestors https://portal.school.cn"),
            "{path}"
        );
        assert!(resp.contains("x-content-type-options: nosniff"), "{path}");
        assert!(resp.contains("referrer-policy: no-referrer"), "{path}");
        // Framing by the portal is allowed, so no X-Frame-Options: DENY.
        assert!(!resp.contains("x-frame-options"), "{path}");
    }
    // The API reference loads nothing from elsewhere.
    let docs = get(&server.addr, "/api/v1/docs").await;
    let body = docs.split("\r\n\r\n").nth(1).unwrap_or_default();
    assert!(body.contains("/static/js/api-docs/main.js"), "{docs}");
    assert!(!body.contains("//"), "nothing from another origin: {body}");
}

async fn admin_key(config: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ketang"))
        .args(["admin", "create-key", "limits-test", "--config"])
        .arg(config)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}
