-- bank1's side of each transfer's timeline (README "Transfer timeline"). The local
-- transaction's steps are columns of the transfer row, written by the INSERT that writes the
-- row itself (the debit's transaction, or the tombstone's): no extra row on the hot path.
--   msg_id          the half message's id (its UNIQ_KEY), when a local transaction ran;
--   half_at         when the local transaction began: the broker had stored the half message;
--   answer          what the local transaction answered the broker (COMMIT, ROLLBACK,
--                   UNKNOWN), decided inside its transaction; NULL when it never answered;
--   rolled_back_at  when a ROLLED_BACK row was written (the local transaction's refusal, or a
--                   check-back's tombstone).
ALTER TABLE transfer ADD COLUMN msg_id TEXT;
ALTER TABLE transfer ADD COLUMN half_at INTEGER;
ALTER TABLE transfer ADD COLUMN answer TEXT CHECK (answer IN ('COMMIT', 'ROLLBACK', 'UNKNOWN'));
ALTER TABLE transfer ADD COLUMN rolled_back_at INTEGER;

-- Each check-back of a half message and bank1's answer. Rare (an UNKNOWN answer, a crash
-- before the answer): one row each, in the transaction of the tombstone when the check-back
-- writes one.
CREATE TABLE check_back (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    tx_no  TEXT    NOT NULL,
    msg_id TEXT,
    at     INTEGER NOT NULL,
    answer TEXT    NOT NULL CHECK (answer IN ('COMMIT', 'ROLLBACK', 'UNKNOWN'))
);
CREATE INDEX idx_check_back_tx_no ON check_back (tx_no, id);
