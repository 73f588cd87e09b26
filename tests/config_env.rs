//! `KETANG_*` environment variables override the config file, and unknown ones are refused by
//! name: checked through the real binary (`ketang config`), each run with its own environment.

use std::process::Command;

fn ketang_config(file: &std::path::Path, vars: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ketang"));
    cmd.args(["config", "--config"]).arg(file);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("KETANG_")) {
        cmd.env_remove(k);
    }
    cmd.envs(vars.iter().copied());
    let out = cmd.output().expect("run ketang config");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn environment_variables_override_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ketang.toml");
    std::fs::write(
        &file,
        "[media]\nshards = 2\n[http]\nlisten = \"127.0.0.1:9000\"\n[auth]\nsecret = \"0123456789abcdef0123456789abcdef!\"\n",
    )
    .unwrap();

    let (ok, out, err) = ketang_config(
        &file,
        &[
            ("KETANG_MEDIA__SHARDS", "3"),
            ("KETANG_MEDIA__LISTEN", "0.0.0.0:11000"),
            ("KETANG_MEDIA__ADVERTISE", "[203.0.113.7]"),
            ("KETANG_HTTP__PUBLIC_URL", "https://ketang.example.org/"),
            // Not config (no section): scripts use such variables; they are ignored.
            ("KETANG_BIN", "/usr/local/bin/ketang"),
        ],
    );
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["media"]["shards"], 3);
    assert_eq!(v["media"]["listen"], "0.0.0.0:11000");
    assert_eq!(v["media"]["advertise"][0], "203.0.113.7");
    assert_eq!(v["http"]["public_url"], "https://ketang.example.org");
    // Keys the environment does not set still come from the file.
    assert_eq!(v["http"]["listen"], "127.0.0.1:9000");
    // The secret is never printed.
    assert_eq!(v["auth"]["secret"], "<redacted>");
    assert!(!out.contains("0123456789abcdef"));

    let (ok, _, err) = ketang_config(&file, &[("KETANG_MEDIA__SHARDZ", "3")]);
    assert!(!ok);
    assert!(
        err.contains("media.shardz") && err.contains("KETANG_MEDIA__SHARDZ"),
        "{err}"
    );

    let (ok, _, err) = ketang_config(&file, &[("KETANG_MEDIA__LISTEN", "0.0.0.0:11000")]);
    assert!(!ok);
    assert!(err.contains("media.advertise"), "{err}");
}
