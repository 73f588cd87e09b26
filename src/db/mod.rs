//! The schedule database: one `sqlx::AnyPool` over either an embedded SQLite file (the default,
//! `{storage.data_dir}/ketang.db`) or PostgreSQL (`database.url = "postgres://..."`).
//!
//! Both engines run the same migrations (`migrations/`, embedded in the binary) and the same
//! runtime queries with `$1` placeholders. The schema keeps to what both understand: TEXT ids
//! made here ([`ids`]), BIGINT Unix milliseconds, SMALLINT flags, INTEGER kbit/s.

pub mod ids;

use std::path::Path;
use std::time::Duration;

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

use crate::config::Config;

/// Why the database could not be opened or migrated.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Connecting failed (bad URL, server down, wrong password, unwritable file...).
    #[error("cannot open the database {url}: {source}")]
    Connect {
        /// The URL with any password hidden.
        url: String,
        source: sqlx::Error,
    },
    /// Creating the SQLite file's directory failed.
    #[error("cannot create {path}: {source}")]
    Dir {
        path: String,
        source: std::io::Error,
    },
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// SQL assembled at run time from constant fragments and `$n` placeholders (column lists, `IN`
/// lists of the right length), never from input: values always go through `bind`.
pub fn assembled(sql: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(sql)
}

/// `$first, $first+1, ...`: `n` placeholders for an `IN (...)` list.
pub fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Which engine a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// The database handle: cheap to clone.
#[derive(Debug, Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub engine: Engine,
}

/// The migrations, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Name of the SQLite file inside `storage.data_dir` when `database.url` is empty.
pub const SQLITE_FILE: &str = "ketang.db";

/// The engine of a `database.url` value, or `None` for an unsupported scheme.
pub fn engine_of(url: &str) -> Option<Engine> {
    if url.starts_with("sqlite:") {
        Some(Engine::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Some(Engine::Postgres)
    } else {
        None
    }
}

/// The URL to connect to: `database.url`, or the SQLite file in the data directory. A SQLite
/// file is created when missing (`mode=rwc`) unless the URL says otherwise.
pub fn effective_url(config: &Config) -> String {
    let url = &config.database.url;
    if url.is_empty() {
        sqlite_file_url(&config.storage.data_dir.join(SQLITE_FILE))
    } else if engine_of(url) == Some(Engine::Sqlite) && !url.contains("mode=") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}mode=rwc")
    } else {
        url.clone()
    }
}

/// `sqlite://PATH?mode=rwc`, with the characters that would end the path escaped.
pub fn sqlite_file_url(path: &Path) -> String {
    let mut encoded = String::new();
    for c in path.to_string_lossy().chars() {
        match c {
            '%' | '?' | '#' | ' ' | '"' | '<' | '>' | '`' | '{' | '}' => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    encoded.push_str(&format!("%{b:02X}"));
                }
            }
            c => encoded.push(c),
        }
    }
    format!("sqlite://{encoded}?mode=rwc")
}

/// The URL with its password replaced, for logs and error messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:<redacted>@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

impl Db {
    /// Opens the configured database and brings its schema up to date.
    pub async fn open(config: &Config) -> Result<Db, DbError> {
        let url = effective_url(config);
        if config.database.url.is_empty() {
            // The default file's directory is ours to make; a configured URL's is not.
            let dir = &config.storage.data_dir;
            std::fs::create_dir_all(dir).map_err(|source| DbError::Dir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let db = Db::connect(&url).await?;
        db.migrate().await?;
        Ok(db)
    }

    /// Connects without migrating.
    pub async fn connect(url: &str) -> Result<Db, DbError> {
        sqlx::any::install_default_drivers();
        // Config validation already refused other schemes; Postgres is the safe guess for
        // anything that got here otherwise, and its connect error names the URL.
        let engine = engine_of(url).unwrap_or(Engine::Postgres);
        let connect_err = |source| DbError::Connect {
            url: redact_url(url),
            source,
        };
        let pool = AnyPoolOptions::new()
            // SQLite serialises writers anyway; a few connections serve concurrent reads.
            .max_connections(match engine {
                Engine::Sqlite => 4,
                Engine::Postgres => 10,
            })
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(connect_err)?;
        if engine == Engine::Sqlite && !url.contains("mode=memory") {
            // WAL lets readers (admissions, the scheduler) proceed while an admin writes. It is
            // a property of the file, so setting it once per start is enough; a failure only
            // costs concurrency.
            if let Err(e) = sqlx::query("PRAGMA journal_mode=WAL")
                .fetch_optional(&pool)
                .await
            {
                tracing::warn!(error = %e, "could not switch SQLite to WAL mode");
            }
        }
        Ok(Db { pool, engine })
    }

    /// Begins a transaction that will write. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`): a transaction that read first and then wrote could otherwise fail
    /// with "database is locked" without waiting, when another writer got in between.
    pub async fn write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.engine {
            Engine::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Engine::Postgres => self.pool.begin().await,
        }
    }

    /// Runs the migrations that have not run yet.
    pub async fn migrate(&self) -> Result<(), DbError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_their_engine() {
        assert_eq!(engine_of("sqlite://data/k.db"), Some(Engine::Sqlite));
        assert_eq!(engine_of("sqlite::memory:"), Some(Engine::Sqlite));
        assert_eq!(engine_of("postgres://u:p@h/db"), Some(Engine::Postgres));
        assert_eq!(engine_of("postgresql://h/db"), Some(Engine::Postgres));
        assert_eq!(engine_of("mysql://h/db"), None);
        assert_eq!(engine_of(""), None);
    }

    #[test]
    fn the_default_is_a_sqlite_file_in_the_data_dir() {
        let mut config = Config::default();
        config.storage.data_dir = "/var/lib/ketang data".into();
        assert_eq!(
            effective_url(&config),
            "sqlite:///var/lib/ketang%20data/ketang.db?mode=rwc"
        );
        config.database.url = "postgres://k@db/ketang".into();
        assert_eq!(effective_url(&config), "postgres://k@db/ketang");
        config.database.url = "sqlite:///srv/k.db".into();
        assert_eq!(effective_url(&config), "sqlite:///srv/k.db?mode=rwc");
        config.database.url = "sqlite:///srv/k.db?mode=ro".into();
        assert_eq!(effective_url(&config), "sqlite:///srv/k.db?mode=ro");
    }

    #[test]
    fn placeholder_lists_number_on() {
        assert_eq!(placeholders(3, 3), "$3, $4, $5");
        assert_eq!(placeholders(1, 0), "");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://ketang:s3cret@db.local:5432/ketang?sslmode=disable"),
            "postgres://ketang:<redacted>@db.local:5432/ketang?sslmode=disable"
        );
        assert_eq!(
            redact_url("postgres://db.local/ketang"),
            "postgres://db.local/ketang"
        );
        assert_eq!(
            redact_url("sqlite://data/ketang.db"),
            "sqlite://data/ketang.db"
        );
    }
}
