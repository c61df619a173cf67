-- bank2 (receiver) schema, MySQL / MariaDB. Money is BIGINT minor units (cents).
CREATE TABLE account_info (
    account_no   VARCHAR(32)  NOT NULL PRIMARY KEY,
    account_name VARCHAR(128) NOT NULL,
    balance      BIGINT       NOT NULL,
    CONSTRAINT balance_not_negative CHECK (balance >= 0)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- One row per applied transfer: the dedup key. Inserted in the same DB transaction as the
-- credit, so a transfer is credited at most once whatever delivers it.
CREATE TABLE de_duplication (
    tx_no        VARCHAR(36) NOT NULL PRIMARY KEY,
    from_account VARCHAR(32) NOT NULL,
    to_account   VARCHAR(32) NOT NULL,
    amount       BIGINT      NOT NULL,
    source       VARCHAR(16) NOT NULL,
    credited_at  BIGINT      NOT NULL
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

-- Messages that can never be applied (malformed, invalid): kept with the reason, acked.
CREATE TABLE quarantine (
    msg_key VARCHAR(128)  NOT NULL PRIMARY KEY,
    msg_id  VARCHAR(128)  NOT NULL,
    tx_no   VARCHAR(64)   NULL,
    -- VARCHAR, not TEXT: sqlx's Any driver reads MySQL TEXT columns as bytes, not strings.
    body    VARCHAR(8000) NOT NULL,
    reason  VARCHAR(1024) NOT NULL,
    at      BIGINT        NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- The reconciler's position in bank1's feed (survives restarts).
CREATE TABLE reconcile_cursor (
    name       VARCHAR(64) NOT NULL PRIMARY KEY,
    position   BIGINT      NOT NULL,
    updated_at BIGINT      NOT NULL
) ENGINE = InnoDB;

INSERT INTO account_info (account_no, account_name, balance) VALUES ('2', '李四', 0);
