-- bank1 (sender) schema, SQLite. Money is INTEGER minor units (cents).
CREATE TABLE account_info (
    account_no   TEXT    PRIMARY KEY,
    account_name TEXT    NOT NULL,
    balance      INTEGER NOT NULL CHECK (balance >= 0)
);

-- One row per transfer number: COMMITTED (debited, message committed or to be committed) or
-- ROLLED_BACK (nothing debited; also the tombstone a check-back writes for "no such transfer").
-- seq is taken when the row is inserted, before commit, so seq order is not commit order.
-- feed_pos is the reconciliation feed's order: given by the feed sequencer to COMMITTED rows
-- after they commit, in one serialized step, so a reader never sees position p+1 before p.
CREATE TABLE transfer (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    feed_pos     INTEGER UNIQUE,
    tx_no        TEXT    NOT NULL UNIQUE,
    from_account TEXT    NOT NULL,
    to_account   TEXT    NOT NULL,
    amount       INTEGER NOT NULL,
    status       TEXT    NOT NULL CHECK (status IN ('COMMITTED', 'ROLLED_BACK')),
    reason       TEXT,
    created_at   INTEGER NOT NULL,
    -- when the local transaction wrote the COMMITTED row (ms); NULL for ROLLED_BACK rows
    committed_at INTEGER
);

CREATE INDEX idx_transfer_unsequenced ON transfer (status, feed_pos);

-- The feed sequencer's last given position (one row, locked while positions are given).
CREATE TABLE feed_sequencer (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    last_pos INTEGER NOT NULL
);
INSERT INTO feed_sequencer (id, last_pos) VALUES (1, 0);

-- Idempotency-Key header: the first result of a POST, replayed for retries.
CREATE TABLE idempotency_key (
    idem_key        TEXT    PRIMARY KEY,
    request_hash    TEXT    NOT NULL,
    tx_no           TEXT    NOT NULL,
    response_status INTEGER,
    response_body   TEXT,
    created_at      INTEGER NOT NULL
);

INSERT INTO account_info (account_no, account_name, balance) VALUES ('1', '张三', 100000);
