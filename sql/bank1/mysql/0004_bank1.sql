-- bank1 (sender), MySQL / MariaDB: its own tables, after the shared ones (sql/shared/).

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
    seq           BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    feed_pos      BIGINT       NULL,
    tx_no         VARCHAR(36)  NOT NULL,
    from_account  VARCHAR(32)  NOT NULL,
    to_account    VARCHAR(32)  NOT NULL,
    amount        BIGINT       NOT NULL,
    status        VARCHAR(16)  NOT NULL,
    reason        VARCHAR(255) NULL,
    created_at    BIGINT       NOT NULL,
    -- when the local transaction wrote the COMMITTED row (ms); NULL for ROLLED_BACK rows
    committed_at  BIGINT       NULL,
    refunded_at   BIGINT       NULL,
    refund_source VARCHAR(16)  NULL,
    UNIQUE KEY uk_transfer_tx_no (tx_no),
    UNIQUE KEY uk_transfer_feed_pos (feed_pos),
    KEY idx_transfer_unsequenced (status, feed_pos)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- Idempotency-Key header: the first result of a POST, replayed for retries.
CREATE TABLE idempotency_key (
    idem_key        VARCHAR(255)  NOT NULL PRIMARY KEY,
    request_hash    VARCHAR(255)  NOT NULL,
    tx_no           VARCHAR(36)   NOT NULL,
    response_status INT           NULL,
    response_body   VARCHAR(4000) NULL,
    created_at      BIGINT        NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

INSERT INTO account_info (account_no, account_name, balance) VALUES ('1', '张三', 100000);
