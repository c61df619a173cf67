//! Operator fault injection by amount threshold (`GET|PUT /admin/faults`, `BANK2_*` env).
//! Faults apply to every credit path (consumer, reconcile, redrive).

common::fault_set! {
    /// bank2's thresholds; `None` = fault off.
    pub struct Faults / FaultsPatch {
        /// Fault: crediting fails for amounts >= this (the message goes down the retry ladder,
        /// then to the DLQ).
        consume_fail_at_least = "BANK2_CONSUME_FAIL_AT_LEAST",
        /// Fault: a rejection commits, but its refund notice is rolled back: a lost
        /// return-of-funds message, for bank1's reconciliation to recover.
        lose_refund_at_least = "BANK2_LOSE_REFUND_AT_LEAST",
    }
}

pub type FaultSwitch = common::service::faults::Switch<Faults>;
