-- bank2, round 2 (MySQL / MariaDB): rejections (return of funds), the rejection feed, the
-- refund notice barrier, non-stalling reconciliation, quarantine codes, a balance ceiling and
-- closable accounts.
--   * de_duplication holds every APPLIED transfer under its tx_no: outcome CREDITED (the
--     receiver was credited) or REJECTED (never applicable: the funds go back to bank1), never
--     both. credited_at is when the row was written, whatever the outcome. feed_pos orders
--     REJECTED rows in the rejection feed bank1 reconciles from.
--   * account_info: balance <= 10^15 minor units (the Amount bound), status OPEN | CLOSED.
ALTER TABLE account_info
    ADD COLUMN status VARCHAR(8) NOT NULL DEFAULT 'OPEN',
    ADD CONSTRAINT balance_ceiling CHECK (balance <= 1000000000000000),
    ADD CONSTRAINT account_status CHECK (status IN ('OPEN', 'CLOSED'));

ALTER TABLE de_duplication
    ADD COLUMN outcome VARCHAR(16) NOT NULL DEFAULT 'CREDITED',
    ADD COLUMN reason VARCHAR(255) NULL,
    ADD COLUMN feed_pos BIGINT NULL,
    ADD UNIQUE KEY uk_dedup_feed_pos (feed_pos),
    ADD KEY idx_dedup_unsequenced (outcome, feed_pos);

ALTER TABLE quarantine ADD COLUMN code VARCHAR(32) NOT NULL DEFAULT 'malformed';

-- The rejection feed's sequencer (see bank1's feed_sequencer).
CREATE TABLE feed_sequencer (
    id       INT    NOT NULL PRIMARY KEY,
    last_pos BIGINT NOT NULL
) ENGINE = InnoDB;
INSERT INTO feed_sequencer (id, last_pos) VALUES (1, 0);

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

-- Feed entries that could not be applied yet: retried with backoff, never blocking the cursor.
CREATE TABLE reconcile_pending (
    tx_no           VARCHAR(64)   NOT NULL PRIMARY KEY,
    item            VARCHAR(4000) NOT NULL,
    error           VARCHAR(1024) NOT NULL,
    attempts        BIGINT        NOT NULL,
    next_attempt_at BIGINT        NOT NULL,
    first_failed_at BIGINT        NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
