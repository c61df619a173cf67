-- The tables every bank has, SQLite (sql/README.md: how the schema is laid out). Money is
-- INTEGER minor units (cents).

-- Accounts: balance within [0, 10^15] minor units (the Amount bound), status OPEN | CLOSED.
CREATE TABLE account_info (
    account_no   TEXT    PRIMARY KEY,
    account_name TEXT    NOT NULL,
    balance      INTEGER NOT NULL CHECK (balance >= 0 AND balance <= 1000000000000000),
    status       TEXT    NOT NULL DEFAULT 'OPEN' CHECK (status IN ('OPEN', 'CLOSED'))
);

-- The bank's feed sequencer: the last position given (one row, locked while positions are
-- given). bank1's feed lists committed transfers, bank2's lists rejections.
CREATE TABLE feed_sequencer (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    last_pos INTEGER NOT NULL
);
INSERT INTO feed_sequencer (id, last_pos) VALUES (1, 0);

-- Inbound messages that must never move money (malformed, bad signature, unmatched,
-- conflicting): kept with a code and the reason, and acked.
CREATE TABLE quarantine (
    msg_key TEXT    PRIMARY KEY,
    msg_id  TEXT    NOT NULL,
    tx_no   TEXT,
    body    TEXT    NOT NULL,
    code    TEXT    NOT NULL,
    reason  TEXT    NOT NULL,
    at      INTEGER NOT NULL
);

-- The reconciler's position in the other bank's feed (survives restarts).
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
