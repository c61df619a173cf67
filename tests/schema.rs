//! The squashed migrations (sql/README.md): a database that ran a bank's migrations 1 and 2
//! as they landed (kept in `tests/fixtures/legacy_schema/`) is taken over at start. It keeps
//! its rows, its history then names the migrations that replace them, and it has the same
//! tables, columns and indexes as a new database. A history the bank does not know is refused.
//! On SQLite files, or on fresh MariaDB/MySQL databases when `TEST_MYSQL_URL` is set.
use crate::helpers;

use std::collections::BTreeSet;

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Row};
use stack::databases::Databases;

/// The squashed migrations as they landed, bank by bank: SQLite's, MySQL's.
static LEGACY: [(&str, [Migrator; 2]); 2] = [
    (
        "bank1",
        [
            sqlx::migrate!("tests/fixtures/legacy_schema/bank1/sqlite"),
            sqlx::migrate!("tests/fixtures/legacy_schema/bank1/mysql"),
        ],
    ),
    (
        "bank2",
        [
            sqlx::migrate!("tests/fixtures/legacy_schema/bank2/sqlite"),
            sqlx::migrate!("tests/fixtures/legacy_schema/bank2/mysql"),
        ],
    ),
];

fn current(bank: &str) -> &'static [Migrator; 2] {
    match bank {
        "bank1" => &bank1::store::MIGRATORS,
        _ => &bank2::store::MIGRATORS,
    }
}

/// Two fresh, empty databases (SQLite files in `dir`, or scratch MySQL databases).
async fn two_databases(dir: &std::path::Path, tag: &str) -> Databases {
    Databases::prepare(&helpers::db_choice(), dir, &format!("{tag}_{}", std::process::id())).await.unwrap()
}

/// A plain pool on `url`, no migrations (SQLite files are created).
async fn raw_pool(url: &str) -> AnyPool {
    sqlx::any::install_default_drivers();
    let url = if url.starts_with("sqlite:") { format!("{url}?mode=rwc") } else { url.to_owned() };
    AnyPoolOptions::new().max_connections(1).connect(&url).await.unwrap()
}

/// `url`'s database as the squashed migrations left it, with one account of the test's own.
async fn legacy_database(url: &str, legacy: &[Migrator; 2]) {
    let pool = raw_pool(url).await;
    let migrator = if url.starts_with("sqlite:") { &legacy[0] } else { &legacy[1] };
    migrator.run(&pool).await.unwrap();
    sqlx::query("INSERT INTO account_info (account_no, account_name, balance) VALUES ('9', 'kept', 4242)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

async fn connect(url: &str, bank: &str) -> anyhow::Result<common::infra::db::Db> {
    let [sqlite, mysql] = current(bank);
    let options = common::infra::db::Options { max_connections: 2, sqlite_sync: Default::default() };
    common::infra::db::connect(url, sqlite, mysql, options).await
}

async fn versions(pool: &AnyPool) -> Vec<i64> {
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version").fetch_all(pool).await.unwrap()
}

/// The tables, columns (name, type, nullability) and indexes (columns, uniqueness) of the
/// database, as comparable lines. Column defaults are left out (sql/README.md names the one
/// that differs); so are index names, which SQLite makes up for inline UNIQUE columns.
async fn shape(url: &str) -> BTreeSet<String> {
    if url.starts_with("sqlite:") {
        sqlite_shape(url).await
    } else {
        mysql_shape(url).await
    }
}

async fn sqlite_shape(url: &str) -> BTreeSet<String> {
    use sqlx::sqlite::SqlitePool;
    let pool = SqlitePool::connect(url).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name != '_sqlx_migrations'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut lines = BTreeSet::new();
    for t in tables {
        for c in sqlx::query(&format!("PRAGMA table_info('{t}')")).fetch_all(&pool).await.unwrap() {
            let (name, ty, not_null, pk): (String, String, i64, i64) =
                (c.get("name"), c.get("type"), c.get("notnull"), c.get("pk"));
            lines.insert(format!("column {t}.{name} {ty} not_null={not_null} pk={pk}"));
        }
        for i in sqlx::query(&format!("PRAGMA index_list('{t}')")).fetch_all(&pool).await.unwrap() {
            let (index, unique): (String, i64) = (i.get("name"), i.get("unique"));
            let columns: Vec<String> = sqlx::query_scalar(&format!("SELECT name FROM pragma_index_info('{index}')"))
                .fetch_all(&pool)
                .await
                .unwrap();
            lines.insert(format!("index {t}({}) unique={unique}", columns.join(", ")));
        }
    }
    pool.close().await;
    lines
}

async fn mysql_shape(url: &str) -> BTreeSet<String> {
    use sqlx::mysql::MySqlPool;
    let pool = MySqlPool::connect(url).await.unwrap();
    let columns: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT CAST(TABLE_NAME AS CHAR), CAST(COLUMN_NAME AS CHAR), CAST(COLUMN_TYPE AS CHAR), \
         CAST(IS_NULLABLE AS CHAR) FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME != '_sqlx_migrations'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let indexes: Vec<(String, String, i64, String)> = sqlx::query_as(
        "SELECT CAST(TABLE_NAME AS CHAR), CAST(INDEX_NAME AS CHAR), CAST(MAX(NON_UNIQUE) AS SIGNED), \
         CAST(GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX SEPARATOR ', ') AS CHAR) \
         FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME != '_sqlx_migrations' \
         GROUP BY TABLE_NAME, INDEX_NAME",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let checks: Vec<(String, String)> = sqlx::query_as(
        "SELECT CAST(tc.TABLE_NAME AS CHAR), CAST(cc.CHECK_CLAUSE AS CHAR) FROM information_schema.CHECK_CONSTRAINTS cc \
         JOIN information_schema.TABLE_CONSTRAINTS tc ON tc.CONSTRAINT_SCHEMA = cc.CONSTRAINT_SCHEMA \
         AND tc.CONSTRAINT_NAME = cc.CONSTRAINT_NAME AND tc.CONSTRAINT_TYPE = 'CHECK' \
         WHERE cc.CONSTRAINT_SCHEMA = DATABASE()",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    let mut lines = BTreeSet::new();
    lines.extend(columns.into_iter().map(|(t, c, ty, null)| format!("column {t}.{c} {ty} nullable={null}")));
    lines.extend(
        indexes.into_iter().map(|(t, _, non_unique, cols)| format!("index {t}({cols}) unique={}", 1 - non_unique)),
    );
    lines.extend(checks.into_iter().map(|(t, clause)| format!("check {t}: {clause}")));
    lines
}

#[tokio::test]
async fn a_database_from_the_squashed_migrations_is_taken_over() {
    for (bank, legacy) in &LEGACY {
        let dir = tempfile::tempdir().unwrap();
        let mut dbs = two_databases(dir.path(), &format!("schema_{bank}")).await;
        let (old, new) = (dbs.bank1_url.clone(), dbs.bank2_url.clone());
        legacy_database(&old, legacy).await;

        // 3 and 4 replace 1 and 2; later migrations run as on any database.
        let history: Vec<i64> = current(bank)[0].iter().map(|m| m.version).collect();
        assert_eq!(history[..2], [3, 4]);
        let db = connect(&old, bank).await.unwrap();
        assert_eq!(versions(&db.pool).await, history, "{bank}: the history names the replacements");
        let kept: i64 = sqlx::query_scalar("SELECT balance FROM account_info WHERE account_no = '9'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(kept, 4242, "{bank}: rows are kept");
        db.pool.close().await;
        // The next start finds nothing to take over and nothing to run.
        let db = connect(&old, bank).await.unwrap();
        assert_eq!(versions(&db.pool).await, history);
        db.pool.close().await;

        let fresh = connect(&new, bank).await.unwrap();
        assert_eq!(versions(&fresh.pool).await, history);
        fresh.pool.close().await;
        let (taken_over, built) = (shape(&old).await, shape(&new).await);
        assert!(!built.is_empty());
        assert_eq!(taken_over, built, "{bank}: a taken-over database has the schema of a new one");
        dbs.drop_scratch(false).await;
    }
}

#[tokio::test]
async fn an_unknown_migration_history_is_refused() {
    let (bank, legacy) = &LEGACY[1];
    let dir = tempfile::tempdir().unwrap();
    let mut dbs = two_databases(dir.path(), "schema_unknown").await;
    let (only_first, altered) = (dbs.bank1_url.clone(), dbs.bank2_url.clone());
    for url in [&only_first, &altered] {
        legacy_database(url, legacy).await;
    }
    let pool = raw_pool(&only_first).await;
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 2").execute(&pool).await.unwrap();
    pool.close().await;
    let pool = raw_pool(&altered).await;
    sqlx::query("UPDATE _sqlx_migrations SET checksum = X'00' WHERE version = 2").execute(&pool).await.unwrap();
    pool.close().await;

    for url in [&only_first, &altered] {
        let err = connect(url, bank).await.expect_err("an unknown history must be refused").to_string();
        assert!(err.contains("does not know"), "{err}");
        let pool = raw_pool(url).await;
        assert_eq!(versions(&pool).await.first(), Some(&1), "nothing was changed");
        pool.close().await;
    }
    dbs.drop_scratch(false).await;
}
