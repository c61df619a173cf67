-- bank2 (receiver), SQLite: its own tables, after the shared ones (sql/shared/).

-- One row per APPLIED transfer, the dedup key, written in the same DB transaction as the
-- credit, so a transfer is applied at most once whatever delivers it. outcome CREDITED: the
-- receiver was credited; REJECTED: never applicable, the funds go back to bank1 (reason says
-- why); never both. credited_at is when the row was written, whatever the outcome. feed_pos
-- orders REJECTED rows in the rejection feed bank1 reconciles from.
CREATE TABLE de_duplication (
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
CREATE INDEX idx_dedup_unsequenced ON de_duplication (outcome, feed_pos);

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

INSERT INTO account_info (account_no, account_name, balance) VALUES ('2', '李四', 0);
