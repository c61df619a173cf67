//! The banks' databases for a stack: SQLite files in its directory, fresh scratch databases on
//! a MariaDB/MySQL server (created at start, dropped at stop unless kept), or URLs given as is.

use std::path::Path;

use anyhow::Context;
use sqlx::Connection;

/// Where a stack's two databases come from.
#[derive(Debug, Clone, Default)]
pub enum DbChoice {
    /// `bank1.db` and `bank2.db` in the stack's directory.
    #[default]
    Sqlite,
    /// Two fresh databases on this MySQL-protocol server (`mysql://user:pass@host:port`).
    MysqlScratch { server_url: String },
    /// These URLs, as they are (e.g. the local stack's `--bank1-database-url`).
    Urls { bank1: String, bank2: String },
}

/// The databases in use, and what to drop at the end.
#[derive(Debug)]
pub struct Databases {
    pub bank1_url: String,
    pub bank2_url: String,
    /// Server URL and database names created for this stack.
    scratch: Option<(String, Vec<String>)>,
}

/// A SQLite URL for a file in `dir`.
pub fn sqlite_url(dir: &Path, file: &str) -> String {
    format!("sqlite://{}", dir.join(file).display())
}

/// `mysql://u:p@h:port/db?x` → `mysql://u:p@h:port`.
pub fn server_url(url: &str) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    match url[scheme_end..].find('/') {
        Some(i) => url[..scheme_end + i].to_owned(),
        None => url.trim_end_matches('/').to_owned(),
    }
}

impl Databases {
    /// Prepares the databases of `choice` (`dir`: the stack's directory; `tag` names scratch
    /// databases).
    pub async fn prepare(choice: &DbChoice, dir: &Path, tag: &str) -> anyhow::Result<Self> {
        Ok(match choice {
            DbChoice::Sqlite => {
                Self { bank1_url: sqlite_url(dir, "bank1.db"), bank2_url: sqlite_url(dir, "bank2.db"), scratch: None }
            }
            DbChoice::Urls { bank1, bank2 } => {
                Self { bank1_url: bank1.clone(), bank2_url: bank2.clone(), scratch: None }
            }
            DbChoice::MysqlScratch { server_url: url } => {
                let base = server_url(url);
                let names = vec![format!("bt_{tag}_bank1"), format!("bt_{tag}_bank2")];
                let mut conn = sqlx::mysql::MySqlConnection::connect(&base)
                    .await
                    .with_context(|| format!("connecting to {}", common::infra::db::redact(&base)))?;
                for n in &names {
                    sqlx::query(&format!("CREATE DATABASE `{n}` CHARACTER SET utf8mb4"))
                        .execute(&mut conn)
                        .await
                        .with_context(|| format!("creating database {n}"))?;
                }
                let _ = conn.close().await;
                Self {
                    bank1_url: format!("{base}/{}", names[0]),
                    bank2_url: format!("{base}/{}", names[1]),
                    scratch: Some((base, names)),
                }
            }
        })
    }

    pub fn is_mysql(&self) -> bool {
        self.bank1_url.starts_with("mysql:") || self.bank1_url.starts_with("mariadb:")
    }

    /// Drops the scratch databases (unless `keep`, then says where they are).
    pub async fn drop_scratch(&mut self, keep: bool) {
        let Some((base, names)) = self.scratch.take() else { return };
        if keep {
            eprintln!("kept databases {} on {}", names.join(", "), common::infra::db::redact(&base));
            return;
        }
        if let Ok(mut conn) = sqlx::mysql::MySqlConnection::connect(&base).await {
            for n in names {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS `{n}`")).execute(&mut conn).await;
            }
            let _ = conn.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::server_url;

    #[test]
    fn server_urls_drop_the_database() {
        assert_eq!(server_url("mysql://u:p@h:3306/db?x=1"), "mysql://u:p@h:3306");
        assert_eq!(server_url("mysql://u:p@h:3306"), "mysql://u:p@h:3306");
        assert_eq!(server_url("mysql://u:p@h:3306/"), "mysql://u:p@h:3306");
    }
}
