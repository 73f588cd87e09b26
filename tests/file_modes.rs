//! What the server writes is private (issue 13 item 9): files 600, directories 700.

#![cfg(unix)]

mod common;

use std::os::unix::fs::PermissionsExt;

use common::TestServer;

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_recordings_and_library_are_private() {
    let s = TestServer::start().await;
    let data = s.server.state.config.storage.data_dir.clone();
    let rec = &s.server.state.config.recording;
    assert_eq!(mode(&data.join("ketang.db")), 0o600);
    assert_eq!(mode(&data.join("auth.secret")), 0o600);
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&rec.recordings_dir(&data)), 0o700);
    assert_eq!(mode(&rec.library_dir(&data)), 0o700);
}
