//! One database handle type for both engines: an `AnyPool` over SQLite (embedded default)
//! or a MySQL-protocol server (MariaDB, MySQL). Queries here use only SQL both accept.

use std::time::Duration;

use anyhow::Context;
use sqlx::any::AnyPoolOptions;
pub use sqlx::migrate::Migrator;
use sqlx::AnyPool;

/// Which engine a URL points at; a few statements differ (see each bank's store).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    MySql,
}

impl Engine {
    pub fn of_url(url: &str) -> anyhow::Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("mysql:") || url.starts_with("mariadb:") {
            Ok(Self::MySql)
        } else {
            anyhow::bail!("database URL must start with sqlite: or mysql:")
        }
    }
}

/// A connected, migrated database.
#[derive(Clone, Debug)]
pub struct Db {
    /// Every write, and reads that belong to a write.
    pub pool: AnyPool,
    /// Reads that stand alone (pre-checks, status, feeds). On SQLite a separate read-only pool:
    /// in WAL mode its readers never wait for the one writer, and the writer's single
    /// connection is kept for writes. On MySQL the same pool as `pool`.
    pub read: AnyPool,
    pub engine: Engine,
}

/// SQLite's `synchronous` setting (docs/PERFORMANCE.md, "Durability").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SqliteSync {
    /// Every commit is on disk before it returns: it survives a power cut. The default.
    #[default]
    Full,
    /// In WAL mode a commit survives a crash of the process, but the last commits before a
    /// power cut or an operating-system crash may be lost (the database stays consistent).
    Normal,
}

impl SqliteSync {
    fn pragma(self) -> &'static str {
        match self {
            Self::Full => "PRAGMA synchronous = FULL",
            Self::Normal => "PRAGMA synchronous = NORMAL",
        }
    }
}

/// How to connect.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Pool size for MySQL (SQLite: one writer connection).
    pub max_connections: u32,
    pub sqlite_sync: SqliteSync,
}

/// Read-only SQLite connections per bank.
const SQLITE_READERS: u32 = 4;
/// How long a query waits for a pooled connection (writer and reader pools alike).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long SQLite waits for a lock before `SQLITE_BUSY` (writer and readers alike).
const SQLITE_BUSY_TIMEOUT: &str = "PRAGMA busy_timeout = 10000";
/// The writer's statement journals (the undo of one statement within a transaction) stay in
/// memory. By default one spills to a temporary file past 64 KiB: a group's multi-row INSERT or
/// UPDATE passes that, and each of its pages was then written to a file created and deleted for
/// that statement. They only ever undo a statement of an open transaction; a crash needs none.
const SQLITE_TEMP_IN_MEMORY: &str = "PRAGMA temp_store = MEMORY";

/// Connects (creating a SQLite file if needed) and runs the bank's migrations, after taking
/// over a database that ran the squashed ones ([`crate::infra::schema`]).
///
/// SQLite runs in WAL mode with FULL sync by default (durable commits) and a single pooled writer
/// connection: SQLite has one writer anyway, and one connection rules out `SQLITE_BUSY` on
/// lock upgrades. Its statement journals stay in memory. Stand-alone reads get a read-only pool
/// of their own ([`Db::read`]).
pub async fn connect(url: &str, sqlite: &Migrator, mysql: &Migrator, options: Options) -> anyhow::Result<Db> {
    sqlx::any::install_default_drivers();
    let engine = Engine::of_url(url)?;
    let url = url.replacen("mariadb:", "mysql:", 1);
    let (url, max) = match engine {
        Engine::Sqlite => {
            let url = if url.contains('?') { url } else { format!("{url}?mode=rwc") };
            (url, 1)
        }
        Engine::MySql => (url, options.max_connections.max(1)),
    };
    let pool = AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        // The test is a ping round trip on every acquire: worth it for a MySQL connection that a
        // server or network can drop, not for a SQLite file (sqlx still pings on release).
        .test_before_acquire(engine == Engine::MySql)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if engine == Engine::Sqlite {
                    sqlx::query("PRAGMA journal_mode = WAL").execute(&mut *conn).await?;
                    sqlx::query(options.sqlite_sync.pragma()).execute(&mut *conn).await?;
                    sqlx::query(SQLITE_BUSY_TIMEOUT).execute(&mut *conn).await?;
                    sqlx::query("PRAGMA foreign_keys = ON").execute(&mut *conn).await?;
                    sqlx::query(SQLITE_TEMP_IN_MEMORY).execute(&mut *conn).await?;
                }
                Ok(())
            })
        })
        .connect(&url)
        .await
        .with_context(|| format!("connecting to {}", redact(&url)))?;
    let migrator = match engine {
        Engine::Sqlite => sqlite,
        Engine::MySql => mysql,
    };
    crate::infra::schema::take_over(&pool, engine, migrator).await?;
    migrator.run(&pool).await.context("running database migrations")?;
    let read = match engine {
        Engine::Sqlite if !url.contains(":memory:") && !url.contains("mode=memory") => sqlite_reader(&url).await?,
        _ => pool.clone(),
    };
    Ok(Db { pool, read, engine })
}

/// The read-only pool beside a SQLite file's writer (after the writer made the file and set
/// WAL mode, which the file keeps).
async fn sqlite_reader(url: &str) -> anyhow::Result<AnyPool> {
    let file = url.split('?').next().unwrap_or(url);
    AnyPoolOptions::new()
        .max_connections(SQLITE_READERS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(false)
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::query(SQLITE_BUSY_TIMEOUT).execute(&mut *conn).await?;
                Ok(())
            })
        })
        .connect(&format!("{file}?mode=ro"))
        .await
        .with_context(|| format!("opening {file} for reading"))
}

/// A URL with any password replaced by `***`, for logs and errors.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// True when a database error is a unique/primary-key violation, as the driver classifies it
/// (SQLite: `SQLITE_CONSTRAINT_UNIQUE` / `_PRIMARYKEY`; MySQL: `ER_DUP_ENTRY` and kin). Not
/// SQLSTATE 23000 as such: MySQL uses it for NOT NULL and CHECK violations too.
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// `?, ?, ?` (`n` of them).
pub fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// `(?, ?), (?, ?)`: `rows` rows of `columns` placeholders, for a multi-row `INSERT … VALUES`.
pub fn value_rows(columns: usize, rows: usize) -> String {
    vec![format!("({})", placeholders(columns)); rows].join(", ")
}

#[cfg(test)]
mod tests {
    use super::{redact, value_rows};

    #[test]
    fn value_rows_repeats_one_row_of_placeholders() {
        assert_eq!(value_rows(2, 3), "(?, ?), (?, ?), (?, ?)");
    }

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(redact("mysql://root:secret@127.0.0.1/bank1"), "mysql://root:***@127.0.0.1/bank1");
        assert_eq!(redact("mysql://root@127.0.0.1/bank1"), "mysql://root@127.0.0.1/bank1");
        assert_eq!(redact("sqlite://data/bank1.db"), "sqlite://data/bank1.db");
    }
}
