//! Many accounts' balances changed by ONE statement: the set-based path of bank1's group
//! commit and of bank2's batch credit. One `UPDATE … CASE` instead of one per transfer, so a
//! group of debits or a batch of credits costs the same few statements however large it is.

use std::collections::BTreeMap;

use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, AnyConnection};

use crate::domain::money::MAX_BALANCE_MINOR;

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
}

impl<'a> Changes<'a> {
    pub fn new(changes: &[(&'a str, i64)], guard: Guard) -> Self {
        let mut totals: BTreeMap<&'a str, i64> = BTreeMap::new();
        for &(account, delta) in changes {
            *totals.entry(account).or_default() += delta;
        }
        Self { totals, guard }
    }

    /// How many rows the `UPDATE` changes when it refuses none: one per account.
    pub fn accounts(&self) -> u64 {
        self.totals.len() as u64
    }

    /// The `UPDATE … CASE`; [`Changes::bind`] binds its placeholders.
    pub fn sql(&self) -> String {
        statement(self.totals.len(), self.guard)
    }

    /// Binds the `UPDATE`'s values after those `q` holds already (a query of several statements
    /// binds each statement's placeholders in turn).
    pub fn bind<'q>(&'q self, mut q: Query<'q, Any, AnyArguments<'q>>) -> Query<'q, Any, AnyArguments<'q>> {
        // In the order of the placeholders: the SET's CASE, the IN list, the guard's CASE.
        for (account, total) in &self.totals {
            q = q.bind(*account).bind(*total);
        }
        for account in self.totals.keys() {
            q = q.bind(*account);
        }
        for (account, total) in &self.totals {
            q = q.bind(*account).bind(*total);
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
pub async fn change_all(conn: &mut AnyConnection, changes: &[(&str, i64)], guard: Guard) -> sqlx::Result<bool> {
    change_all_of(conn, &Changes::new(changes, guard)).await
}

/// [`change_all`] of changes already totalled.
pub async fn change_all_of(conn: &mut AnyConnection, changes: &Changes<'_>) -> sqlx::Result<bool> {
    let sql = changes.sql();
    let q = changes.bind(sqlx::query(&sql).persistent(false));
    Ok(q.execute(conn).await?.rows_affected() == changes.accounts())
}

/// `UPDATE account_info SET balance = balance + CASE …` for `accounts` accounts.
fn statement(accounts: usize, guard: Guard) -> String {
    let case = format!("CASE account_no {} END", vec!["WHEN ? THEN ?"; accounts].join(" "));
    let guard = match guard {
        Guard::Covers => format!("balance + {case} >= 0"),
        Guard::OpenUnderCeiling => format!("status = 'OPEN' AND balance + {case} <= ?"),
    };
    format!(
        "UPDATE account_info SET balance = balance + {case} WHERE account_no IN ({}) AND {guard}",
        crate::infra::db::placeholders(accounts)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_statement_names_each_account_once() {
        assert_eq!(
            statement(2, Guard::Covers),
            "UPDATE account_info SET balance = balance + CASE account_no WHEN ? THEN ? WHEN ? THEN ? END \
             WHERE account_no IN (?, ?) AND balance + CASE account_no WHEN ? THEN ? WHEN ? THEN ? END >= 0"
        );
        assert!(statement(1, Guard::OpenUnderCeiling)
            .ends_with("AND status = 'OPEN' AND balance + CASE account_no WHEN ? THEN ? END <= ?"));
    }
}
