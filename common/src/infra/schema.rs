//! Taking over a database that ran the schema's first migrations.
//!
//! Each bank's migration folder (`sql/bank{1,2}/{sqlite,mysql}/`) holds `0003_shared.sql`, a
//! link to the tables every bank has (`sql/shared/`), and `0004_bank{1,2}.sql`, the bank's own
//! tables. Together they are the schema that migrations 0001 (init) and 0002 (refunds / trust)
//! built before they were squashed (sql/README.md). A database that ran 0001 and 0002 already
//! has that schema, so [`take_over`] records 0003 and 0004 as applied in place of them,
//! without running them, and sqlx's migrator then sees a history it knows. It checks the
//! recorded checksums first: a history it does not know is refused, never guessed at.

use anyhow::Context;
use sqlx::migrate::Migrator;
use sqlx::AnyPool;

use crate::infra::db::Engine;

/// The versions of the squashed migrations.
const SQUASHED: [i64; 2] = [1, 2];
/// The newest version that stands for them (0003_shared, 0004_bank).
const SQUASHED_INTO: i64 = 4;

/// SHA-384 checksums (sqlx's) of every squashed migration as it landed: bank1's and bank2's,
/// SQLite's and MySQL's. The files are kept in `tests/fixtures/legacy_schema/`, and
/// `tests/schema.rs` checks these against them.
const SQUASHED_CHECKSUMS: [(i64, &str); 8] = [
    (1, "9812dcb6d96885ef693e20185a379f97f02f8379c61eb50cad77c9536333a26a930fa365dae8e647847c70af03807f86"),
    (2, "0b64913fd12a29765276d9ff715e8201861e9d454a1cb368738173449940761305ed431f60831a9f3b678a7185372d92"),
    (1, "ca503eb7bd8c8345adb5661ed6f52d3a1541736b636773fbe8007a010ca526f8c0cf26c6936739f1b3a41e07c5e5ef6f"),
    (2, "649dc7fdfc4f4a936ee768c9f2c9d8106e4510bacb2bae3300ed4d47033be02f1297cfcfec17e6f9cd2ce4bf7ea986ba"),
    (1, "404ce3c4c81c7c157a1c466b3065d885b5c5a63c8d3a51ddb7c19e0b254033eccf4507a0bf23c6389a2752b97ff554a2"),
    (2, "50ca4f985e978fdb324c36cde559ab89b016da3165c202e60860deb93fe89ff2bc39ddfa453f65b49bde4b6f67a7b451"),
    (1, "10f4a61f1d866cb9d117aafc1ab561b2e31bf86bff7912db523f15131911c27a057becfe9473f645668644f88e551b41"),
    (2, "7cca769dbd1cb9f8774beec6ce2094a4cda7b9f6ef2dbe84822e3ae954637ecd172a0eb7a794c3485bfb2699ea99f276"),
];

/// When the database ran the squashed migrations, records the migrations that replace them
/// as applied (in one transaction). True when it did. Runs before the migrator.
pub async fn take_over(pool: &AnyPool, engine: Engine, migrator: &Migrator) -> anyhow::Result<bool> {
    if !has_history(pool, engine).await? {
        return Ok(false);
    }
    let applied: Vec<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT version, checksum FROM _sqlx_migrations ORDER BY version")
            .fetch_all(pool)
            .await
            .context("reading the migration history")?;
    if !applied.iter().any(|(v, _)| SQUASHED.contains(v)) {
        return Ok(false);
    }
    let known = applied.len() == SQUASHED.len()
        && applied.iter().all(|(v, sum)| SQUASHED_CHECKSUMS.contains(&(*v, hex(sum).as_str())));
    if !known {
        let versions: Vec<String> = applied.iter().map(|(v, _)| v.to_string()).collect();
        anyhow::bail!(
            "this database ran migrations {} with checksums this version does not know; it can take over a \
             database that ran exactly migrations 1 and 2 as they landed (sql/README.md)",
            versions.join(", ")
        );
    }
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version IN (?, ?)")
        .bind(SQUASHED[0])
        .bind(SQUASHED[1])
        .execute(&mut *tx)
        .await?;
    for m in migrator.iter().filter(|m| m.version <= SQUASHED_INTO) {
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (?, ?, ?, ?, 0)",
        )
        .bind(m.version)
        .bind(m.description.as_ref())
        .bind(true)
        .bind(m.checksum.to_vec())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await.context("recording the squashed migrations' replacements")?;
    tracing::info!("took over a database that ran migrations 1 and 2: recorded 3 and 4 as applied");
    Ok(true)
}

/// True when the database has sqlx's migration table.
async fn has_history(pool: &AnyPool, engine: Engine) -> anyhow::Result<bool> {
    let sql = match engine {
        Engine::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        Engine::MySql => {
            "SELECT COUNT(*) FROM information_schema.tables \
             WHERE table_schema = DATABASE() AND table_name = '_sqlx_migrations'"
        }
    };
    let n: i64 = sqlx::query_scalar(sql).fetch_one(pool).await.context("looking for the migration history")?;
    Ok(n > 0)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::hex;

    #[test]
    fn hex_is_lower_case_two_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xab, 0xff]), "000fabff");
    }
}
