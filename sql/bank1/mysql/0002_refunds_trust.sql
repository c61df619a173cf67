-- bank1, round 2 (MySQL / MariaDB): return of funds, refund reconciliation, quarantine, a
-- balance ceiling and closable accounts.
--   * transfer: a COMMITTED transfer that bank2 can never apply ends REFUNDED (the sender is
--     credited back in the same DB transaction); refunded_at / refund_source say when and how
--     the return arrived.
--   * account_info: balance <= 10^15 minor units (the Amount bound), status OPEN | CLOSED.
ALTER TABLE account_info
    ADD COLUMN status VARCHAR(8) NOT NULL DEFAULT 'OPEN',
    ADD CONSTRAINT balance_ceiling CHECK (balance <= 1000000000000000),
    ADD CONSTRAINT account_status CHECK (status IN ('OPEN', 'CLOSED'));

ALTER TABLE transfer
    ADD COLUMN refunded_at BIGINT NULL,
    ADD COLUMN refund_source VARCHAR(16) NULL;

-- Refund notices that must never move money (bad signature, unmatched, conflicting), acked.
CREATE TABLE quarantine (
    msg_key VARCHAR(128)  NOT NULL PRIMARY KEY,
    msg_id  VARCHAR(128)  NOT NULL,
    tx_no   VARCHAR(64)   NULL,
    -- VARCHAR, not TEXT: sqlx's Any driver reads MySQL TEXT columns as bytes, not strings.
    body    VARCHAR(8000) NOT NULL,
    code    VARCHAR(32)   NOT NULL,
    reason  VARCHAR(1024) NOT NULL,
    at      BIGINT        NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- The refund reconciler's position in bank2's rejection feed.
CREATE TABLE reconcile_cursor (
    name       VARCHAR(64) NOT NULL PRIMARY KEY,
    position   BIGINT      NOT NULL,
    updated_at BIGINT      NOT NULL
) ENGINE = InnoDB;

-- Feed entries that could not be applied yet: retried with backoff, never blocking the cursor.
CREATE TABLE reconcile_pending (
    tx_no           VARCHAR(64)   NOT NULL PRIMARY KEY,
    item            VARCHAR(4000) NOT NULL,
    error           VARCHAR(1024) NOT NULL,
    attempts        BIGINT        NOT NULL,
    next_attempt_at BIGINT        NOT NULL,
    first_failed_at BIGINT        NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
