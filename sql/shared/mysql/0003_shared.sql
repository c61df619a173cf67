-- The tables every bank has, MySQL / MariaDB (sql/README.md: how the schema is laid out).
-- Money is BIGINT minor units (cents). Long texts are VARCHAR, not TEXT: sqlx's Any driver
-- reads MySQL TEXT columns as bytes, not strings.

-- Accounts: balance within [0, 10^15] minor units (the Amount bound), status OPEN | CLOSED.
CREATE TABLE account_info (
    account_no   VARCHAR(32)  NOT NULL PRIMARY KEY,
    account_name VARCHAR(128) NOT NULL,
    balance      BIGINT       NOT NULL,
    status       VARCHAR(8)   NOT NULL DEFAULT 'OPEN',
    CONSTRAINT balance_not_negative CHECK (balance >= 0),
    CONSTRAINT balance_ceiling CHECK (balance <= 1000000000000000),
    CONSTRAINT account_status CHECK (status IN ('OPEN', 'CLOSED'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- The bank's feed sequencer: the last position given (one row, locked while positions are
-- given). bank1's feed lists committed transfers, bank2's lists rejections.
CREATE TABLE feed_sequencer (
    id       INT    NOT NULL PRIMARY KEY,
    last_pos BIGINT NOT NULL
) ENGINE = InnoDB;
INSERT INTO feed_sequencer (id, last_pos) VALUES (1, 0);

-- Inbound messages that must never move money (malformed, bad signature, unmatched,
-- conflicting): kept with a code and the reason, and acked.
CREATE TABLE quarantine (
    msg_key VARCHAR(128)  NOT NULL PRIMARY KEY,
    msg_id  VARCHAR(128)  NOT NULL,
    tx_no   VARCHAR(64)   NULL,
    body    VARCHAR(8000) NOT NULL,
    code    VARCHAR(32)   NOT NULL,
    reason  VARCHAR(1024) NOT NULL,
    at      BIGINT        NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- The reconciler's position in the other bank's feed (survives restarts).
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
