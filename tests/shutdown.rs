//! SIGTERM during a lesson, against the real `ketang` binary: a WHIP teacher publishes, a
//! second teacher on signaling has the lesson recorded, a viewer watches over WHEP. After the
//! signal the signaling client is told (`bye` with `shutdown`), the process exits with status 0
//! well within 10 s, and the recording is a finalized `.webm` (no `.part` left).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use ketang::auth::{MintRequest, TokenAuthority, load_or_create_secret};
use ketang_loadtest::ws::{WsClient, WsOptions, ws_url};
use ketang_loadtest::{WhepOptions, WhepViewer, WhipOptions, WhipPublisher};
use ketang_sfu::{Role, RoomId};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The bound on the whole exit, from the signal (the requirement).
const EXIT_LIMIT: Duration = Duration::from_secs(10);

struct Served {
    child: Child,
    base: String,
    data: PathBuf,
    log: tokio::sync::mpsc::UnboundedReceiver<String>,
    _dir: tempfile::TempDir,
}

/// Starts `ketang serve` on ephemeral ports and waits (bounded) for its "serving" line, which
/// names the HTTP address.
async fn serve() -> Served {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let config = dir.path().join("ketang.toml");
    std::fs::write(
        &config,
        format!(
            "[http]\nlisten = \"127.0.0.1:0\"\n[media]\nlisten = \"127.0.0.1:0\"\nshards = 1\n\
             [storage]\ndata_dir = \"{}\"\n[log]\nfilter = \"info\"\n",
            data.display()
        ),
    )
    .expect("config written");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ketang"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("ketang starts");
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, mut log) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("[ketang] {line}");
            let _ = tx.send(line);
        }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let base = loop {
        let line = tokio::time::timeout_at(deadline, log.recv())
            .await
            .expect("the server said it is serving within 60 s")
            .expect("the server's log ended before it served");
        if line.contains("Ketang is serving")
            && let Some(addr) = line.split("http=").nth(1)
        {
            let addr = addr.split_whitespace().next().unwrap_or_default();
            break format!("http://{addr}");
        }
    };
    Served {
        child,
        base,
        data,
        log,
        _dir: dir,
    }
}

fn token(data: &Path, room: &str, role: Role, name: &str) -> String {
    let secret = load_or_create_secret(None, data).expect("the server's secret");
    let tokens = TokenAuthority::new(&secret, Duration::from_secs(30));
    let req = MintRequest {
        room: RoomId::new(room).expect("room id"),
        role,
        name: name.into(),
        classroom: None,
        mode: None,
        not_before: None,
        ttl: Duration::from_secs(3600),
    };
    tokens.mint(&req, SystemTime::now()).expect("token")
}

/// Files under `dir` (any depth) whose name ends with `suffix`.
fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    // Bounded by the directory tree a test server makes (a few levels, a few files).
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(suffix) {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_tells_clients_finalizes_recordings_and_exits_in_time() {
    let mut s = serve().await;
    let room = "term-1";
    let whip = format!("{}/whip/{room}", s.base);
    let whep = format!("{}/whep/{room}", s.base);
    let mut teacher = WhipPublisher::connect(
        &whip,
        &token(&s.data, room, Role::Teacher, "encoder"),
        WhipOptions::default(),
    )
    .await
    .expect("WHIP teacher");
    let viewer = WhepViewer::connect(
        &whep,
        &token(&s.data, room, Role::Viewer, "parent"),
        WhepOptions::default(),
    )
    .await
    .expect("WHEP viewer");
    let url = ws_url(&s.base, &token(&s.data, room, Role::Teacher, "Ms Li")).expect("ws url");
    let ws = WsClient::connect(&url, WsOptions::default(), None)
        .await
        .expect("signaling teacher joined");
    assert!(ws.send(serde_json::json!({"type": "startRecording"})).await);
    // A few seconds of lesson, recorded.
    let sent = teacher.run_for(Duration::from_secs(4)).await;
    assert!(sent.video.packets > 50, "the teacher published");
    assert!(
        viewer.stats().video.unique_packets > 0,
        "the viewer watched"
    );
    let recording = files_ending(&s.data, ".part");
    assert!(!recording.is_empty(), "a recording is being written");

    let pid = s.child.id().expect("running") as libc::pid_t;
    // SAFETY: kill(2) with a pid of our own child and a valid signal number.
    let sent_signal = unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(sent_signal, 0);
    let signalled = Instant::now();
    let status = tokio::time::timeout(EXIT_LIMIT, s.child.wait())
        .await
        .expect("the server exited within 10 s of SIGTERM")
        .expect("exit status");
    let took = signalled.elapsed();
    eprintln!("exited with {status} {took:?} after SIGTERM");
    assert!(status.success(), "{status}");

    // The signaling client was told why.
    let deadline = Instant::now() + Duration::from_secs(2);
    while ws.stats().bye.is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ws.stats().bye.as_deref(), Some("shutdown"));

    // The recording in progress was finalized: a `.webm`, no `.part` left.
    assert!(files_ending(&s.data, ".part").is_empty(), "{recording:?}");
    let finished = files_ending(&s.data, ".webm");
    assert!(!finished.is_empty(), "a finalized recording");
    assert!(
        finished
            .iter()
            .all(|f| f.metadata().is_ok_and(|m| m.len() > 1000))
    );

    // The log says what happened, in order.
    let mut lines = Vec::new();
    while let Ok(line) = s.log.try_recv() {
        lines.push(line);
    }
    assert!(
        lines.iter().any(|l| l.contains("shutting down")),
        "{lines:#?}"
    );
    drop(viewer);
}
