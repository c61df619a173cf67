-- bank1's side of each transfer's timeline: what happened, in order, each step written in the
-- same database transaction as the state change it records (never a side channel that can
-- disagree with the transfer row). kind:
--   ACCEPTED           the request was accepted (at = the transfer's created_at);
--   HALF_SENT          the broker stored the half message (detail = its msg id);
--   LOCAL_COMMITTED    the local transaction debited the sender;
--   LOCAL_ROLLED_BACK  nothing was debited (detail = why);
--   ANSWERED           what bank1 answered the broker after its local transaction
--                      (detail = COMMIT, ROLLBACK or UNKNOWN);
--   CHECK_BACK         the broker checked back; detail = the answer (COMMIT or ROLLBACK);
--   REFUNDED           the funds came back (detail = MQ or RECONCILE).
CREATE TABLE transfer_event (
    id     BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    tx_no  VARCHAR(36)  NOT NULL,
    kind   VARCHAR(24)  NOT NULL,
    detail VARCHAR(255) NULL,
    at     BIGINT       NOT NULL,
    KEY idx_transfer_event_tx_no (tx_no, id),
    CONSTRAINT ck_transfer_event_kind CHECK (kind IN ('ACCEPTED', 'HALF_SENT', 'LOCAL_COMMITTED',
        'LOCAL_ROLLED_BACK', 'ANSWERED', 'CHECK_BACK', 'REFUNDED'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
