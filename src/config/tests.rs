//! Tests of configuration loading and validation.

use super::*;
use figment::providers::{Format, Toml};

fn from_toml(toml: &str) -> Result<Config, ConfigError> {
    Config::from_figment(&Figment::new().merge(Toml::string(toml)))
}

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/ketang.example.toml")
}

#[test]
fn defaults_validate_and_derive_sensible_values() {
    let c = from_toml("").expect("empty config must load");
    assert_eq!(c, Config::default());
    c.validate().expect("defaults must validate");
    assert_eq!(c.public_base_url(), "http://127.0.0.1:8080");
    assert_eq!(c.advertised_ips(), vec![IpAddr::from([127, 0, 0, 1])]);
    assert!(c.media_shard_count() >= 1);
    assert_eq!(c.media.connect_timeout, Duration::from_secs(30));
    assert_eq!(c.signaling.hard_max_message_bytes, 2 * 1024 * 1024);
}

#[test]
fn toml_values_override_defaults() {
    let c = from_toml(
        r#"
        [http]
        public_url = "https://ketang.example.org/"
        [media]
        listen = "0.0.0.0:20000"
        shards = 4
        advertise = ["203.0.113.7", "2001:db8::7"]
        connect_timeout = "1m 30s"
        [log]
        format = "json"
        "#,
    )
    .expect("valid config");
    assert_eq!(c.public_base_url(), "https://ketang.example.org");
    assert_eq!(
        c.http.public_url.as_deref(),
        Some("https://ketang.example.org")
    );
    assert_eq!(c.media_shard_count(), 4);
    assert_eq!(c.media.connect_timeout, Duration::from_secs(90));
    assert_eq!(c.advertised_ips().len(), 2);
    assert_eq!(c.log.format, LogFormat::Json);
}

#[test]
fn durations_serialise_as_humantime_strings() {
    let v = serde_json::to_value(Config::default()).expect("serialise");
    assert_eq!(v["media"]["connect_timeout"], "30s");
    assert_eq!(v["auth"]["clock_skew"], "30s");
    let err = from_toml("[auth]\nclock_skew = \"soon\"").unwrap_err();
    assert_eq!(err.key(), Some("auth.clock_skew"), "{err}");
}

#[test]
fn unknown_keys_are_refused_by_name() {
    let err = from_toml("[media]\nshardz = 2").unwrap_err();
    assert_eq!(err.key(), Some("media.shardz"), "{err}");
    assert!(err.to_string().contains("unknown key"), "{err}");
    let err = from_toml("[medai]\nshards = 2").unwrap_err();
    assert_eq!(err.key(), Some("medai"), "{err}");
    let err = from_toml("debug = true").unwrap_err();
    assert_eq!(err.key(), Some("debug"), "{err}");
}

#[test]
fn each_validation_error_names_its_key() {
    let cases = [
        (
            "[http]\npublic_url = \"ketang.example.org\"",
            "http.public_url",
        ),
        ("[http]\npublic_url = \"https://\"", "http.public_url"),
        ("[http]\nlisten = \"not an address\"", "http.listen"),
        ("[http]\ntls_cert = \"c.pem\"", "http.tls_key"),
        ("[http]\ntls_key = \"k.pem\"", "http.tls_cert"),
        (
            "[http]\nheader_read_timeout = \"0s\"",
            "http.header_read_timeout",
        ),
        (
            "[http]\nbody_read_timeout = \"1h\"",
            "http.body_read_timeout",
        ),
        ("[http]\nmax_connections = 3", "http.max_connections"),
        (
            "[http]\nframe_ancestors = [\"https://a.cn; script-src *\"]",
            "http.frame_ancestors",
        ),
        (
            "[http]\nframe_ancestors = [\"portal.cn\"]",
            "http.frame_ancestors",
        ),
        (
            "[media]\nlisten = \"127.0.0.1:65535\"\nshards = 2",
            "media.listen",
        ),
        ("[media]\nlisten = \"0.0.0.0:10000\"", "media.advertise"),
        ("[media]\nadvertise = [\"::\"]", "media.advertise"),
        ("[media]\nconnect_timeout = \"0s\"", "media.connect_timeout"),
        ("[media]\nshards = -1", "media.shards"),
        (
            "[media]\ntcp_max_pending_per_ip = 0",
            "media.tcp_max_pending_per_ip",
        ),
        ("[media]\ntcp_listen = \"0.0.0.0:443\"", "media.tcp_listen"),
        (
            "[media]\ntcp_listen = \"127.0.0.1:65535\"\nshards = 2",
            "media.tcp_listen",
        ),
        ("[auth]\nsecret = \"too short\"", "auth.secret"),
        ("[storage]\ndata_dir = \"\"", "storage.data_dir"),
        (
            "[signaling]\nmax_message_bytes = 0",
            "signaling.max_message_bytes",
        ),
        (
            "[signaling]\nhard_max_message_bytes = 1000",
            "signaling.hard_max_message_bytes",
        ),
        (
            "[signaling]\nmax_sdp_bytes = 70000",
            "signaling.max_sdp_bytes",
        ),
        (
            "[signaling]\nmessages_per_second = 0",
            "signaling.messages_per_second",
        ),
        ("[signaling]\nburst = 10", "signaling.burst"),
        ("[log]\nformat = \"xml\"", "log.format"),
        ("[log]\nfilter = \"info,[\"", "log.filter"),
        ("[database]\nurl = \"mysql://db/ketang\"", "database.url"),
        ("[database]\nurl = 5", "database.url"),
        (
            "[schedule]\ntimezone = \"Mars/Olympus\"",
            "schedule.timezone",
        ),
        ("[schedule]\nlink_lead = \"2days\"", "schedule.link_lead"),
        ("[schedule]\nlink_grace = \"soon\"", "schedule.link_grace"),
        ("[schedule]\nwarn_before = \"0s\"", "schedule.warn_before"),
        ("[schedule]\ntick = \"0s\"", "schedule.tick"),
        ("[schedule]\ntick = \"5m\"", "schedule.tick"),
        ("[schedule]\ntimezon = \"UTC\"", "schedule.timezon"),
    ];
    for (toml, key) in cases {
        let err = from_toml(toml).expect_err(toml);
        assert_eq!(err.key(), Some(key), "{toml:?} gave: {err}");
        assert!(err.to_string().starts_with(&format!("{key}: ")), "{err}");
    }
    // The boundary itself is fine: the last shard gets port 65535.
    from_toml("[media]\nlisten = \"127.0.0.1:65534\"\nshards = 2").expect("fits");
}

#[test]
fn a_missing_config_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nope.toml");
    let err = Config::load(Some(&path)).unwrap_err();
    assert!(matches!(err, ConfigError::File { .. }), "{err:?}");
    assert!(err.to_string().contains("nope.toml"), "{err}");
}

#[test]
fn the_example_file_documents_every_key_with_its_default() {
    let loaded = Config::from_figment(&Figment::new().merge(Toml::file_exact(example_path())))
        .expect("example must load and validate");
    assert_eq!(loaded, Config::default());
    let text = std::fs::read_to_string(example_path()).expect("read example");
    let v = serde_json::to_value(Config::default()).expect("serialise");
    for (section, keys) in v.as_object().into_iter().flatten() {
        assert!(
            text.contains(&format!("[{section}]")),
            "[{section}] undocumented"
        );
        for key in keys.as_object().into_iter().flatten().map(|(k, _)| k) {
            assert!(
                text.contains(&format!("{key} =")),
                "{section}.{key} undocumented"
            );
        }
    }
}

#[test]
fn schedule_and_database_defaults_and_overrides() {
    let c = Config::default();
    assert_eq!(c.database.url, "");
    assert_eq!(c.schedule.link_lead, Duration::from_secs(900));
    assert_eq!(c.schedule.link_grace, Duration::from_secs(900));
    assert_eq!(c.schedule.warn_before, Duration::from_secs(300));
    assert_eq!(c.schedule.timezone, "Asia/Shanghai");
    assert_eq!(c.schedule.tick, Duration::from_secs(5));
    let c = from_toml(
        r#"
        [database]
        url = "postgres://ketang:pw@db.local/ketang"
        [schedule]
        link_lead = "30m"
        link_grace = "0s"
        warn_before = "2m"
        timezone = "Europe/Berlin"
        tick = "500ms"
        "#,
    )
    .expect("valid");
    assert_eq!(c.schedule.link_lead, Duration::from_secs(1800));
    assert_eq!(c.schedule.link_grace, Duration::ZERO);
    assert_eq!(c.schedule.timezone, "Europe/Berlin");
    assert_eq!(c.schedule.tick, Duration::from_millis(500));
    from_toml("[database]\nurl = \"sqlite:///var/lib/ketang/k.db\"").expect("sqlite url");
    from_toml("[database]\nurl = \"postgresql://db/k\"").expect("postgresql url");
}

#[test]
fn the_database_password_is_not_printed() {
    let c = from_toml("[database]\nurl = \"postgres://ketang:hunter2@db/ketang\"").expect("valid");
    let shown = c.to_redacted_json();
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(
        shown.contains("postgres://ketang:<redacted>@db/ketang"),
        "{shown}"
    );
    let err = from_toml("[database]\nurl = \"mysql://ketang:hunter2@db/ketang\"").unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn plain_http_beyond_loopback_is_flagged_for_cameras() {
    let http = |toml: &str| from_toml(toml).expect("valid").http;
    assert!(!http("").cameras_refused(), "loopback is fine");
    assert!(http("[http]\nlisten = \"0.0.0.0:8080\"").cameras_refused());
    assert!(
        http("[http]\nlisten = \"192.168.1.20:8080\"\npublic_url = \"http://192.168.1.20:8080\"")
            .cameras_refused()
    );
    let proxied = "[http]\nlisten = \"0.0.0.0:8080\"\npublic_url = \"https://ketang.school.cn\"";
    assert!(!http(proxied).cameras_refused());
    let tls = "[http]\nlisten = \"0.0.0.0:8443\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"";
    assert!(!http(tls).cameras_refused());
    assert!(http(tls).tls());
}
