//! Many accounts' balances changed by ONE statement: the set-based path of bank1's group
//! commit and of bank2's batch credit. One `UPDATE` instead of one per transfer, so a group of
//! debits or a batch of credits costs the same few statements however large it is.
//!
//! The statement has a form per engine (docs/ARCHITECTURE.md, "One UPDATE for many accounts"):
//! - SQLite: `UPDATE … FROM (VALUES (account, total), …)`, one lookup by key per account;
//! - MySQL: `UPDATE … CASE account_no WHEN … END WHERE account_no IN (…)`, which locks the rows
//!   in key order, so two groups never wait for each other's rows in a cycle. Its CASE is a
//!   list that each row walks: quadratic in the accounts, which SQLite's form avoids.

use std::collections::BTreeMap;

use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, AnyConnection};

use crate::domain::money::MAX_BALANCE_MINOR;
use crate::infra::db::{placeholders, value_rows, Engine};

/// Which accounts may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// The balance covers the change: never below zero (bank1's debits).
    Covers,
    /// The account is OPEN and the change keeps it at or under the ceiling (bank2's credits).
    OpenUnderCeiling,
}

/// Each account's total of a set of balance changes, and the one `UPDATE` that applies them.
pub struct Changes<'a> {
    totals: BTreeMap<&'a str, i64>,
    guard: Guard,
    engine: Engine,
}

impl<'a> Changes<'a> {
    pub fn new(changes: &[(&'a str, i64)], guard: Guard, engine: Engine) -> Self {
        let mut totals: BTreeMap<&'a str, i64> = BTreeMap::new();
        for &(account, delta) in changes {
            *totals.entry(account).or_default() += delta;
        }
        Self { totals, guard, engine }
    }

    /// How many rows the `UPDATE` changes when it refuses none: one per account.
    pub fn accounts(&self) -> u64 {
        self.totals.len() as u64
    }

    /// The `UPDATE`; [`Changes::bind`] binds its placeholders.
    pub fn sql(&self) -> String {
        statement(self.totals.len(), self.guard, self.engine)
    }

    /// Binds the `UPDATE`'s values after those `q` holds already (a query of several statements
    /// binds each statement's placeholders in turn).
    pub fn bind<'q>(&'q self, mut q: Query<'q, Any, AnyArguments<'q>>) -> Query<'q, Any, AnyArguments<'q>> {
        // In the order of the placeholders. SQLite: the VALUES rows. MySQL: the SET's CASE, the
        // IN list, the guard's CASE.
        for (account, total) in &self.totals {
            q = q.bind(*account).bind(*total);
        }
        if self.engine == Engine::MySql {
            for account in self.totals.keys() {
                q = q.bind(*account);
            }
            for (account, total) in &self.totals {
                q = q.bind(*account).bind(*total);
            }
        }
        if self.guard == Guard::OpenUnderCeiling {
            q = q.bind(MAX_BALANCE_MINOR);
        }
        q
    }
}

/// Adds each account's total of `changes` to its balance, in one `UPDATE`, only where `guard`
/// holds. True when every account named was changed; false when one was not (unknown, short
/// of funds, closed, at the ceiling), and then the caller must roll back, as the others were.
pub async fn change_all(
    conn: &mut AnyConnection,
    changes: &[(&str, i64)],
    guard: Guard,
    engine: Engine,
) -> sqlx::Result<bool> {
    change_all_of(conn, &Changes::new(changes, guard, engine)).await
}

/// [`change_all`] of changes already totalled.
pub async fn change_all_of(conn: &mut AnyConnection, changes: &Changes<'_>) -> sqlx::Result<bool> {
    let sql = changes.sql();
    let q = changes.bind(sqlx::query(&sql).persistent(false));
    Ok(q.execute(conn).await?.rows_affected() == changes.accounts())
}

/// The `UPDATE` of `accounts` accounts' balances, in `engine`'s form (see the module's header).
fn statement(accounts: usize, guard: Guard, engine: Engine) -> String {
    match engine {
        Engine::Sqlite => {
            let guard = match guard {
                Guard::Covers => "account_info.balance + c.column2 >= 0",
                Guard::OpenUnderCeiling => "account_info.status = 'OPEN' AND account_info.balance + c.column2 <= ?",
            };
            format!(
                "UPDATE account_info SET balance = balance + c.column2 FROM (VALUES {}) AS c \
                 WHERE account_info.account_no = c.column1 AND {guard}",
                value_rows(2, accounts)
            )
        }
        Engine::MySql => {
            let case = format!("CASE account_no {} END", vec!["WHEN ? THEN ?"; accounts].join(" "));
            let guard = match guard {
                Guard::Covers => format!("balance + {case} >= 0"),
                Guard::OpenUnderCeiling => format!("status = 'OPEN' AND balance + {case} <= ?"),
            };
            format!(
                "UPDATE account_info SET balance = balance + {case} WHERE account_no IN ({}) AND {guard}",
                placeholders(accounts)
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_mysql_one_case_names_each_account_once_in_key_order() {
        assert_eq!(
            statement(2, Guard::Covers, Engine::MySql),
            "UPDATE account_info SET balance = balance + CASE account_no WHEN ? THEN ? WHEN ? THEN ? END \
             WHERE account_no IN (?, ?) AND balance + CASE account_no WHEN ? THEN ? WHEN ? THEN ? END >= 0"
        );
        assert!(statement(1, Guard::OpenUnderCeiling, Engine::MySql)
            .ends_with("AND status = 'OPEN' AND balance + CASE account_no WHEN ? THEN ? END <= ?"));
    }

    #[test]
    fn on_sqlite_each_account_is_one_row_of_values() {
        assert_eq!(
            statement(2, Guard::Covers, Engine::Sqlite),
            "UPDATE account_info SET balance = balance + c.column2 FROM (VALUES (?, ?), (?, ?)) AS c \
             WHERE account_info.account_no = c.column1 AND account_info.balance + c.column2 >= 0"
        );
        assert!(statement(1, Guard::OpenUnderCeiling, Engine::Sqlite)
            .ends_with("AND account_info.status = 'OPEN' AND account_info.balance + c.column2 <= ?"));
    }

    /// The binds match the placeholders, in both forms.
    #[test]
    fn binds_one_value_per_placeholder() {
        for engine in [Engine::Sqlite, Engine::MySql] {
            for guard in [Guard::Covers, Guard::OpenUnderCeiling] {
                let changes = Changes::new(&[("b", 5), ("a", 1), ("b", 2)], guard, engine);
                let sql = changes.sql();
                let mut q = changes.bind(sqlx::query(&sql));
                let args = sqlx::Execute::take_arguments(&mut q).ok().flatten().expect("arguments");
                assert_eq!(sqlx::Arguments::len(&args), sql.matches('?').count(), "{engine:?} {guard:?}");
            }
        }
    }
}
