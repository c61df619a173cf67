-- bank2, round 2 (SQLite): rejections (return of funds), the rejection feed, the refund
-- notice barrier, non-stalling reconciliation, quarantine codes, a balance ceiling and
-- closable accounts.
--   * de_duplication holds every APPLIED transfer under its tx_no: outcome CREDITED (the
--     receiver was credited) or REJECTED (never applicable: the funds go back to bank1), never
--     both. credited_at is when the row was written, whatever the outcome. feed_pos orders
--     REJECTED rows in the rejection feed bank1 reconciles from.
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

CREATE TABLE de_duplication_v2 (
    tx_no        TEXT    PRIMARY KEY,
    from_account TEXT    NOT NULL,
    to_account   TEXT    NOT NULL,
    amount       INTEGER NOT NULL,
    source       TEXT    NOT NULL CHECK (source IN ('MQ', 'RECONCILE', 'DLQ_REDRIVE', 'DLQ_REFUND')),
    credited_at  INTEGER NOT NULL,
    outcome      TEXT    NOT NULL DEFAULT 'CREDITED' CHECK (outcome IN ('CREDITED', 'REJECTED')),
    reason       TEXT,
    feed_pos     INTEGER UNIQUE
);
INSERT INTO de_duplication_v2 (tx_no, from_account, to_account, amount, source, credited_at)
    SELECT tx_no, from_account, to_account, amount, source, credited_at FROM de_duplication;
DROP TABLE de_duplication;
ALTER TABLE de_duplication_v2 RENAME TO de_duplication;
CREATE INDEX idx_dedup_unsequenced ON de_duplication (outcome, feed_pos);

ALTER TABLE quarantine ADD COLUMN code TEXT NOT NULL DEFAULT 'malformed';

-- The rejection feed's sequencer (see bank1's feed_sequencer).
CREATE TABLE feed_sequencer (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    last_pos INTEGER NOT NULL
);
INSERT INTO feed_sequencer (id, last_pos) VALUES (1, 0);

-- One row per attempt to publish a refund notice (a transactional message whose local
-- transaction is the rejection): SENT when the rejection committed, ROLLED_BACK when the
-- broker's check-back found none. The check-back's tombstone makes a late local transaction
-- fail on the key, so its answer is definitive.
CREATE TABLE refund_notice (
    notice_id TEXT    PRIMARY KEY,
    tx_no     TEXT    NOT NULL,
    state     TEXT    NOT NULL CHECK (state IN ('SENT', 'ROLLED_BACK')),
    at        INTEGER NOT NULL
);
CREATE INDEX idx_refund_notice_tx_no ON refund_notice (tx_no);

-- Feed entries that could not be applied yet: retried with backoff, never blocking the cursor.
CREATE TABLE reconcile_pending (
    tx_no           TEXT    PRIMARY KEY,
    item            TEXT    NOT NULL,
    error           TEXT    NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    first_failed_at INTEGER NOT NULL
);
