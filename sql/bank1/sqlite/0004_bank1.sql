-- bank1 (sender), SQLite: its own tables, after the shared ones (sql/shared/).

-- One row per transfer number:
--   * COMMITTED: debited; the message is committed or about to be;
--   * ROLLED_BACK: nothing debited (also the tombstone a check-back writes for "no such
--     transfer"); reason says why;
--   * REFUNDED: bank2 could never apply it, and the sender was credited back in the same DB
--     transaction; reason says why, refunded_at / refund_source when and how the return came.
-- seq is taken when the row is inserted, before commit, so seq order is not commit order.
-- feed_pos is the reconciliation feed's order: given by the feed sequencer to COMMITTED rows
-- after they commit, in one serialized step, so a reader never sees position p+1 before p.
CREATE TABLE transfer (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    feed_pos      INTEGER UNIQUE,
    tx_no         TEXT    NOT NULL UNIQUE,
    from_account  TEXT    NOT NULL,
    to_account    TEXT    NOT NULL,
    amount        INTEGER NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('COMMITTED', 'ROLLED_BACK', 'REFUNDED')),
    reason        TEXT,
    created_at    INTEGER NOT NULL,
    -- when the local transaction wrote the COMMITTED row (ms); NULL for ROLLED_BACK rows
    committed_at  INTEGER,
    refunded_at   INTEGER,
    refund_source TEXT CHECK (refund_source IN ('MQ', 'RECONCILE'))
);
CREATE INDEX idx_transfer_unsequenced ON transfer (status, feed_pos);

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
