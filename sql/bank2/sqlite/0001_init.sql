-- bank2 (receiver) schema, SQLite. Money is INTEGER minor units (cents).
CREATE TABLE account_info (
    account_no   TEXT    PRIMARY KEY,
    account_name TEXT    NOT NULL,
    balance      INTEGER NOT NULL CHECK (balance >= 0)
);

-- One row per applied transfer: the dedup key. Inserted in the same DB transaction as the
-- credit, so a transfer is credited at most once whatever delivers it.
CREATE TABLE de_duplication (
    tx_no        TEXT    PRIMARY KEY,
    from_account TEXT    NOT NULL,
    to_account   TEXT    NOT NULL,
    amount       INTEGER NOT NULL,
    source       TEXT    NOT NULL CHECK (source IN ('MQ', 'RECONCILE', 'DLQ_REDRIVE')),
    credited_at  INTEGER NOT NULL
);

-- Every failed delivery attempt, with the broker's reconsume_times.
CREATE TABLE delivery_attempt (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    tx_no           TEXT    NOT NULL,
    reconsume_times INTEGER NOT NULL,
    msg_id          TEXT    NOT NULL,
    error           TEXT    NOT NULL,
    at              INTEGER NOT NULL
);
CREATE INDEX idx_delivery_attempt_tx_no ON delivery_attempt (tx_no);

-- Messages that can never be applied (malformed, invalid): kept with the reason, acked.
CREATE TABLE quarantine (
    msg_key TEXT    PRIMARY KEY,
    msg_id  TEXT    NOT NULL,
    tx_no   TEXT,
    body    TEXT    NOT NULL,
    reason  TEXT    NOT NULL,
    at      INTEGER NOT NULL
);

-- The reconciler's position in bank1's feed (survives restarts).
CREATE TABLE reconcile_cursor (
    name       TEXT    PRIMARY KEY,
    position   INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

INSERT INTO account_info (account_no, account_name, balance) VALUES ('2', '李四', 0);
