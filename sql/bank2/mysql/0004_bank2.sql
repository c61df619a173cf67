-- bank2 (receiver), MySQL / MariaDB: its own tables, after the shared ones (sql/shared/).

-- One row per APPLIED transfer, the dedup key, written in the same DB transaction as the
-- credit, so a transfer is applied at most once whatever delivers it. outcome CREDITED: the
-- receiver was credited; REJECTED: never applicable, the funds go back to bank1 (reason says
-- why); never both. credited_at is when the row was written, whatever the outcome. feed_pos
-- orders REJECTED rows in the rejection feed bank1 reconciles from.
CREATE TABLE de_duplication (
    tx_no        VARCHAR(36)  NOT NULL PRIMARY KEY,
    from_account VARCHAR(32)  NOT NULL,
    to_account   VARCHAR(32)  NOT NULL,
    amount       BIGINT       NOT NULL,
    source       VARCHAR(16)  NOT NULL,
    credited_at  BIGINT       NOT NULL,
    outcome      VARCHAR(16)  NOT NULL DEFAULT 'CREDITED',
    reason       VARCHAR(255) NULL,
    feed_pos     BIGINT       NULL,
    UNIQUE KEY uk_dedup_feed_pos (feed_pos),
    KEY idx_dedup_unsequenced (outcome, feed_pos)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- Every failed delivery attempt, with the broker's reconsume_times.
CREATE TABLE delivery_attempt (
    id              BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
    tx_no           VARCHAR(64)   NOT NULL,
    reconsume_times INT           NOT NULL,
    msg_id          VARCHAR(128)  NOT NULL,
    error           VARCHAR(1024) NOT NULL,
    at              BIGINT        NOT NULL,
    KEY idx_delivery_attempt_tx_no (tx_no)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- One row per attempt to publish a refund notice (a transactional message whose local
-- transaction is the rejection): SENT when the rejection committed, ROLLED_BACK when the
-- broker's check-back found none. The check-back's tombstone makes a late local transaction
-- fail on the key, so its answer is definitive.
CREATE TABLE refund_notice (
    notice_id VARCHAR(64) NOT NULL PRIMARY KEY,
    tx_no     VARCHAR(36) NOT NULL,
    state     VARCHAR(16) NOT NULL,
    at        BIGINT      NOT NULL,
    KEY idx_refund_notice_tx_no (tx_no)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

INSERT INTO account_info (account_no, account_name, balance) VALUES ('2', '李四', 0);
