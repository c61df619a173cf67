-- bank1's side of each transfer's timeline (README "Transfer timeline"). The local
-- transaction's steps are columns of the transfer row, written by the INSERT that writes the
-- row itself (the debit's transaction, or the tombstone's): no extra row on the hot path.
--   msg_id          the half message's id (its UNIQ_KEY), when a local transaction ran;
--   half_at         when the local transaction began: the broker had stored the half message;
--   answer          what the local transaction answered the broker (COMMIT, ROLLBACK,
--                   UNKNOWN), decided inside its transaction; NULL when it never answered;
--   rolled_back_at  when a ROLLED_BACK row was written (the local transaction's refusal, or a
--                   check-back's tombstone).
ALTER TABLE transfer
    ADD COLUMN msg_id         VARCHAR(64) NULL,
    ADD COLUMN half_at        BIGINT      NULL,
    ADD COLUMN answer         VARCHAR(8)  NULL,
    ADD COLUMN rolled_back_at BIGINT      NULL,
    ADD CONSTRAINT ck_transfer_answer CHECK (answer IN ('COMMIT', 'ROLLBACK', 'UNKNOWN'));

-- Each check-back of a half message and bank1's answer. Rare (an UNKNOWN answer, a crash
-- before the answer): one row each, in the transaction of the tombstone when the check-back
-- writes one.
CREATE TABLE check_back (
    id     BIGINT      NOT NULL AUTO_INCREMENT PRIMARY KEY,
    tx_no  VARCHAR(36) NOT NULL,
    msg_id VARCHAR(64) NULL,
    at     BIGINT      NOT NULL,
    answer VARCHAR(8)  NOT NULL,
    KEY idx_check_back_tx_no (tx_no, id),
    CONSTRAINT ck_check_back_answer CHECK (answer IN ('COMMIT', 'ROLLBACK', 'UNKNOWN'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
