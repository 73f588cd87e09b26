//! The `ketang` command line: `serve` runs the server, `token` mints room links, `admin
//! create-key` makes an admin API key, `admin create-user` an admin account, `cert` writes a
//! self-signed HTTPS certificate.
//!
//! The logic lives here rather than in `main.rs` so that it is testable and `main` stays a
//! one-liner. Exit codes: 0 success, 1 runtime or configuration failure, 2 bad arguments.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{Args, Parser, Subcommand};
use ketang_sfu::{ClassroomId, Role, RoomId};

use crate::auth::{self, MintRequest, TokenAuthority};
use crate::config::{self, Config};

/// Live classroom server (WebRTC SFU).
#[derive(Debug, Parser)]
#[command(name = "ketang", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Mint a room link (or just its token) signed with the server's secret.
    Token(TokenArgs),
    /// Check the configuration and print the effective values (file + environment) as JSON.
    Config(ServeArgs),
    /// Administration of the schedule database.
    Admin(AdminArgs),
    /// Write a self-signed HTTPS certificate for trials on a LAN, and say how to trust it.
    Cert(CertArgs),
}

/// `ketang cert`
#[derive(Debug, Args)]
pub struct CertArgs {
    /// A name or IP address classrooms use to reach the server (repeat for several).
    #[arg(long = "host", value_name = "NAME_OR_IP", required = true)]
    pub hosts: Vec<String>,
    /// Directory to write cert.pem and key.pem into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Days of validity.
    #[arg(long, default_value_t = 365)]
    pub days: u32,
    /// Replace cert.pem and key.pem if they exist.
    #[arg(long)]
    pub force: bool,
}

/// `ketang admin`
#[derive(Debug, Args)]
pub struct AdminArgs {
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// `ketang admin ...`
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an admin API key and print it (once: only its hash is stored).
    CreateKey {
        /// A unique name for the key (who or what uses it), 1-64 characters.
        name: String,
        /// What the key may do: system, security, audit, or all (everything, as keys did
        /// before roles existed).
        #[arg(long, default_value = "all", value_parser = parse_admin_role)]
        role: crate::accounts::AdminRole,
        /// TOML config file, the same one the server uses (for its database).
        #[arg(long, short, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Create an admin account and print its one-time password (sign in at /admin with it,
    /// enrol an authenticator app, choose a password).
    CreateUser {
        /// A unique account name, 1-64 characters.
        name: String,
        /// system (schools, lessons, links, rooms), security (accounts, keys) or audit (reads
        /// the audit log).
        #[arg(long, value_parser = parse_admin_role)]
        role: crate::accounts::AdminRole,
        /// TOML config file, the same one the server uses (for its database).
        #[arg(long, short, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

fn parse_admin_role(s: &str) -> Result<crate::accounts::AdminRole, String> {
    s.parse()
}

/// `ketang serve`
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML config file; KETANG_* environment variables override it.
    #[arg(long, short, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// `ketang token`
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Room id ([A-Za-z0-9_-], 1-64 characters).
    #[arg(long)]
    pub room: RoomId,
    /// teacher, classroom, observer or viewer.
    #[arg(long)]
    pub role: Role,
    /// Display name shown to others (1-64 characters).
    #[arg(long, value_parser = parse_name)]
    pub name: String,
    /// Classroom id, for attendance.
    #[arg(long)]
    pub classroom: Option<ClassroomId>,
    /// Lesson mode of the room: dedicated, master or broadcast (default: an open room).
    #[arg(long, value_parser = parse_mode)]
    pub mode: Option<ketang_sfu::LessonMode>,
    /// How long the link stays valid, from --not-before (e.g. 90m, 2h, 7days).
    #[arg(long, default_value = "2h", value_parser = parse_ttl)]
    pub ttl: Duration,
    /// Start of validity: RFC 3339 such as 2026-03-02T08:00:00+08:00 (default: now).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub not_before: Option<SystemTime>,
    /// Base URL of the link (default: http.public_url, else http://{http.listen}).
    #[arg(long, value_name = "URL", value_parser = parse_base_url)]
    pub base_url: Option<String>,
    /// Print only the token, not the link.
    #[arg(long)]
    pub token_only: bool,
    /// TOML config file, the same one the server uses (for its secret and URLs).
    #[arg(long, short, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Parses the process arguments and runs the command.
pub fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints usage errors to stderr (exit 2) and --help/--version to stdout (0).
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    match cli.command {
        Command::Serve(args) => serve(&args),
        Command::Cert(args) => {
            match crate::cert::write(&args.out, &args.hosts, args.days, args.force) {
                Ok(w) => {
                    println!("{}", crate::cert::instructions(&w, &args.hosts));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(match e {
                        crate::cert::CertError::Io { .. } | crate::cert::CertError::Rcgen(_) => 1,
                        _ => 2,
                    })
                }
            }
        }
        Command::Admin(AdminArgs {
            command: AdminCommand::CreateUser { name, role, config },
        }) => match crate::accounts::create_user_command(&name, role, config.as_deref()) {
            Ok(out) => {
                println!("{}", out.password);
                eprintln!("{}", out.summary);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(e.exit_code())
            }
        },
        Command::Admin(AdminArgs {
            command: AdminCommand::CreateKey { name, role, config },
        }) => match crate::api::keys::create_key_command(&name, role, config.as_deref()) {
            Ok(out) => {
                println!("{}", out.key);
                eprintln!("{}", out.summary);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(e.exit_code())
            }
        },
        Command::Config(args) => match Config::load(args.config.as_deref()) {
            Ok(c) => {
                println!("{}", c.to_redacted_json());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Token(args) => match token(&args, SystemTime::now()) {
            Ok(out) => {
                println!("{}", out.line);
                if !args.token_only {
                    eprintln!("{}", out.summary);
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(e.exit_code())
            }
        },
    }
}

fn serve(args: &ServeArgs) -> ExitCode {
    let config = match Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    crate::telemetry::init(&config.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(crate::server::run(config));
    // Blocking tasks a bounded shutdown step gave up on must not hold the exit (dropping the
    // runtime would wait for them without limit).
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What `ketang token` prints: the link or token on stdout, a summary on stderr.
#[derive(Debug)]
pub struct TokenOutput {
    /// The room link, or the bare token with `--token-only`.
    pub line: String,
    /// Who the link is for and when it is valid, for the person who ran the command.
    pub summary: String,
}

/// Why `ketang token` failed after its arguments were accepted.
#[derive(Debug, thiserror::Error)]
pub enum TokenCommandError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The secret could not be read or created.
    #[error(transparent)]
    Secret(#[from] auth::SecretError),
    /// Minting failed.
    #[error(transparent)]
    Mint(#[from] auth::MintError),
    /// `--not-before` plus `--ttl` is already past: the link would be dead on arrival.
    #[error("the link would already have expired at {}; check --not-before and --ttl", auth::utc(*.expired_at))]
    AlreadyExpired {
        /// The would-be `exp`.
        expired_at: u64,
    },
}

impl TokenCommandError {
    /// 2 for problems with the arguments, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            TokenCommandError::Mint(_) | TokenCommandError::AlreadyExpired { .. } => 2,
            TokenCommandError::Config(_) | TokenCommandError::Secret(_) => 1,
        }
    }
}

/// Mints the link for `args` at `now`, loading config and secret exactly as `serve` does.
pub fn token(args: &TokenArgs, now: SystemTime) -> Result<TokenOutput, TokenCommandError> {
    let config = Config::load(args.config.as_deref())?;
    token_with_config(args, &config, now)
}

fn parse_mode(s: &str) -> Result<ketang_sfu::LessonMode, String> {
    use ketang_sfu::LessonMode::*;
    match s {
        "open" => Ok(Open),
        "dedicated" => Ok(Dedicated),
        "master" => Ok(Master),
        "broadcast" => Ok(Broadcast),
        other => Err(format!(
            "unknown mode {other:?}: expected dedicated, master, broadcast or open"
        )),
    }
}

fn token_with_config(
    args: &TokenArgs,
    config: &Config,
    now: SystemTime,
) -> Result<TokenOutput, TokenCommandError> {
    // Checked before the secret is touched, so a mistyped command has no side effects.
    let from = secs(args.not_before.unwrap_or(now));
    let until = from.saturating_add(args.ttl.as_secs());
    if until <= secs(now) {
        return Err(TokenCommandError::AlreadyExpired { expired_at: until });
    }
    let data_dir = &config.storage.data_dir;
    let existed = auth::secret_path(data_dir).exists();
    let secret = auth::load_or_create_secret(config.auth.secret.as_deref(), data_dir)?;
    let authority = TokenAuthority::new(&secret, config.auth.clock_skew);
    let req = MintRequest {
        room: args.room.clone(),
        role: args.role,
        name: args.name.clone(),
        classroom: args.classroom.clone(),
        mode: args.mode,
        not_before: args.not_before,
        ttl: args.ttl,
    };
    let token = authority.mint(&req, now)?;
    let base = args
        .base_url
        .as_deref()
        .map(|u| u.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| config.public_base_url());
    let line = if args.token_only {
        token
    } else {
        format!("{base}/r/{}?t={token}", args.room)
    };
    let mut summary = format!(
        "{} {:?} in room {}, valid {} to {}",
        args.role,
        args.name,
        args.room,
        auth::utc(from),
        auth::utc(until)
    );
    if config.auth.secret.is_none() && !existed {
        summary.push_str(&format!(
            "\nnote: created a new signing secret in {}; the server must use the same storage.data_dir",
            auth::secret_path(data_dir).display()
        ));
    }
    Ok(TokenOutput { line, summary })
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn parse_name(s: &str) -> Result<String, String> {
    auth::validate_name(s).map(|()| s.to_owned())
}

fn parse_ttl(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err("must be longer than zero".to_owned());
    }
    Ok(d)
}

fn parse_base_url(s: &str) -> Result<String, String> {
    config::check_base_url(s).map(|()| s.to_owned())
}

/// RFC 3339 with `Z` or a numeric offset (humantime alone only knows UTC), or a plain
/// `YYYY-MM-DD HH:MM:SS` taken as UTC.
fn parse_time(s: &str) -> Result<SystemTime, String> {
    let s = s.trim();
    let bad = |why: String| format!("{s:?} is not a time like 2026-03-02T08:00:00+08:00 ({why})");
    let Some((local, offset)) = split_offset(s) else {
        return humantime::parse_rfc3339_weak(s).map_err(|e| bad(e.to_string()));
    };
    let local = humantime::parse_rfc3339_weak(local).map_err(|e| bad(e.to_string()))?;
    // Local time = UTC + offset, so UTC = local - offset.
    let utc = if offset >= 0 {
        local.checked_sub(Duration::from_secs(offset.unsigned_abs()))
    } else {
        local.checked_add(Duration::from_secs(offset.unsigned_abs()))
    };
    utc.ok_or_else(|| bad("out of range".to_owned()))
}

/// Splits `...T..+HH:MM` into the local part and the offset in seconds.
fn split_offset(s: &str) -> Option<(&str, i64)> {
    let i = s.len().checked_sub(6)?;
    let (local, tail) = (s.get(..i)?, s.get(i..)?.as_bytes());
    let sign = match tail[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits = |a: u8, b: u8| {
        (a.is_ascii_digit() && b.is_ascii_digit()).then(|| i64::from((a - b'0') * 10 + (b - b'0')))
    };
    let hours = digits(tail[1], tail[2]).filter(|h| *h < 24)?;
    let minutes = digits(tail[4], tail[5]).filter(|m| *m < 60)?;
    (tail[3] == b':' && local.contains(['T', 't', ' ']))
        .then_some((local, sign * (hours * 3600 + minutes * 60)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("ketang").chain(args.iter().copied()))
    }

    fn token_args(extra: &[&str]) -> TokenArgs {
        let mut args = vec![
            "token", "--room", "math-101", "--role", "teacher", "--name", "Ms Li",
        ];
        args.extend_from_slice(extra);
        match parse(&args).expect("valid arguments").command {
            Command::Token(t) => t,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn bad_arguments_exit_with_code_2_and_say_why() {
        for (args, needle) in [
            (
                vec!["token", "--room", "a b", "--role", "teacher", "--name", "x"],
                "room id",
            ),
            (
                vec!["token", "--room", "r", "--role", "admin", "--name", "x"],
                "unknown role",
            ),
            (
                vec!["token", "--room", "r", "--role", "viewer", "--name", ""],
                "name",
            ),
            (
                vec![
                    "token", "--room", "r", "--role", "viewer", "--name", "x", "--ttl", "0s",
                ],
                "zero",
            ),
            (
                vec![
                    "token",
                    "--room",
                    "r",
                    "--role",
                    "viewer",
                    "--name",
                    "x",
                    "--base-url",
                    "example.org",
                ],
                "http://",
            ),
            (
                vec![
                    "token",
                    "--room",
                    "r",
                    "--role",
                    "viewer",
                    "--name",
                    "x",
                    "--not-before",
                    "tomorrow",
                ],
                "tomorrow",
            ),
        ] {
            let err = parse(&args).expect_err(&args.join(" "));
            assert_eq!(err.exit_code(), 2, "{args:?}");
            assert!(err.to_string().contains(needle), "{args:?}: {err}");
        }
    }

    #[test]
    fn not_before_accepts_utc_and_offsets() {
        let utc = parse_time("2026-03-02T00:00:00Z").expect("utc");
        assert_eq!(parse_time("2026-03-02T08:00:00+08:00").expect("+08"), utc);
        assert_eq!(parse_time("2026-03-01T19:00:00-05:00").expect("-05"), utc);
        assert_eq!(parse_time("2026-03-02 00:00:00").expect("plain"), utc);
        assert!(parse_time("2026-03-02T08:00:00+25:00").is_err());
    }

    #[test]
    fn token_prints_a_link_that_the_server_secret_verifies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::default();
        config.storage.data_dir = dir.path().join("data");
        config.http.public_url = Some("https://ketang.example.org/".to_owned());
        let now = SystemTime::now();

        let out = token_with_config(&token_args(&["--ttl", "90m"]), &config, now).expect("mint");
        let token = out
            .line
            .strip_prefix("https://ketang.example.org/r/math-101?t=")
            .unwrap_or_else(|| panic!("unexpected link {}", out.line));
        assert!(
            out.summary.contains("created a new signing secret"),
            "{}",
            out.summary
        );

        // The server side: same loader, same data dir.
        let secret = auth::load_or_create_secret(None, &config.storage.data_dir).expect("secret");
        let claims = TokenAuthority::new(&secret, config.auth.clock_skew)
            .verify(token, RoomId::new("math-101").ok().as_ref(), now)
            .expect("the server accepts the link");
        assert_eq!(claims.exp - claims.nbf, 90 * 60);
        assert_eq!(claims.role, Role::Teacher);

        let out = token_with_config(&token_args(&["--token-only"]), &config, now).expect("mint");
        assert!(
            !out.line.contains('/') && out.line.split('.').count() == 3,
            "{}",
            out.line
        );
        let base = ["--base-url", "http://10.0.0.5:8080"];
        let out = token_with_config(&token_args(&base), &config, now).expect("mint");
        assert!(
            out.line.starts_with("http://10.0.0.5:8080/r/math-101?t="),
            "{}",
            out.line
        );
        assert!(
            !out.summary.contains("created"),
            "the secret is reused: {}",
            out.summary
        );

        let past = ["--not-before", "2020-01-01T00:00:00Z", "--ttl", "1h"];
        let err = token_with_config(&token_args(&past), &config, now).unwrap_err();
        assert!(
            matches!(err, TokenCommandError::AlreadyExpired { .. }),
            "{err}"
        );
        assert_eq!(err.exit_code(), 2);
    }
}
