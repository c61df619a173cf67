-- bank1, round 2 (SQLite): return of funds, refund reconciliation, quarantine, a balance
-- ceiling and closable accounts.
--   * transfer: a COMMITTED transfer that bank2 can never apply ends REFUNDED (the sender is
--     credited back in the same DB transaction); refunded_at / refund_source say when and how
--     the return arrived.
--   * account_info: balance <= 10^15 minor units (the Amount bound), status OPEN | CLOSED.
-- SQLite cannot change a CHECK constraint in place, so both tables are rebuilt.

CREATE TABLE account_info_v2 (
    account_no   TEXT    PRIMARY KEY,
    account_name TEXT    NOT NULL,
    balance      INTEGER NOT NULL CHECK (balance >= 0 AND balance <= 1000000000000000),
    status       TEXT    NOT NULL DEFAULT 'OPEN' CHECK (status IN ('OPEN', 'CLOSED'))
);
INSERT INTO account_info_v2 (account_no, account_name, balance)
    SELECT account_no, account_name, balance FROM account_info;
DROP TABLE account_info;
ALTER TABLE account_info_v2 RENAME TO account_info;

CREATE TABLE transfer_v2 (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    feed_pos      INTEGER UNIQUE,
    tx_no         TEXT    NOT NULL UNIQUE,
    from_account  TEXT    NOT NULL,
    to_account    TEXT    NOT NULL,
    amount        INTEGER NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('COMMITTED', 'ROLLED_BACK', 'REFUNDED')),
    -- ROLLED_BACK: why nothing was debited; REFUNDED: why bank2 returned the funds
    reason        TEXT,
    created_at    INTEGER NOT NULL,
    committed_at  INTEGER,
    refunded_at   INTEGER,
    refund_source TEXT CHECK (refund_source IN ('MQ', 'RECONCILE'))
);
INSERT INTO transfer_v2 (seq, feed_pos, tx_no, from_account, to_account, amount, status, reason, created_at, committed_at)
    SELECT seq, feed_pos, tx_no, from_account, to_account, amount, status, reason, created_at, committed_at FROM transfer;
DROP TABLE transfer;
ALTER TABLE transfer_v2 RENAME TO transfer;
CREATE INDEX idx_transfer_unsequenced ON transfer (status, feed_pos);

-- Refund notices that must never move money (bad signature, unmatched, conflicting), acked.
CREATE TABLE quarantine (
    msg_key TEXT    PRIMARY KEY,
    msg_id  TEXT    NOT NULL,
    tx_no   TEXT,
    body    TEXT    NOT NULL,
    code    TEXT    NOT NULL,
    reason  TEXT    NOT NULL,
    at      INTEGER NOT NULL
);

-- The refund reconciler's position in bank2's rejection feed.
CREATE TABLE reconcile_cursor (
    name       TEXT    PRIMARY KEY,
    position   INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Feed entries that could not be applied yet: retried with backoff, never blocking the cursor.
CREATE TABLE reconcile_pending (
    tx_no           TEXT    PRIMARY KEY,
    item            TEXT    NOT NULL,
    error           TEXT    NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    first_failed_at INTEGER NOT NULL
);
