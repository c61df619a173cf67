//! Operator fault injection by amount threshold (`GET|PUT /admin/faults`, `BANK1_*` env).

common::fault_set! {
    /// bank1's thresholds; `None` = fault off.
    pub struct Faults / FaultsPatch {
        /// Fault: the local transaction fails after the debit statement for amounts >= this
        /// ⇒ rollback ⇒ ROLLBACK.
        local_tx_fail_at_least = "BANK1_LOCAL_TX_FAIL_AT_LEAST",
        /// Fault: the local transaction commits, bank1 answers UNKNOWN ⇒ the broker's
        /// check-back decides.
        unknown_at_least = "BANK1_UNKNOWN_AT_LEAST",
        /// Fault: the local transaction commits, the half message is rolled back ⇒ a lost
        /// notification.
        lose_message_at_least = "BANK1_LOSE_MESSAGE_AT_LEAST",
    }
}

pub type FaultSwitch = common::service::faults::Switch<Faults>;

#[cfg(test)]
mod tests {
    use super::*;
    use common::domain::money::Threshold;
    use common::service::faults::FaultSet;

    fn put(s: &FaultSwitch, body: &str) -> Faults {
        let p: FaultsPatch = serde_json::from_str(body).unwrap();
        s.update(|f| f.apply(p))
    }

    #[test]
    fn patch_sets_clears_and_keeps() {
        let s = FaultSwitch::default();
        let f = put(&s, r#"{"unknown_at_least":"50.00","local_tx_fail_at_least":"7"}"#);
        assert_eq!(f.unknown_at_least, Some(Threshold(5000)));
        let f = put(&s, r#"{"unknown_at_least":null}"#);
        assert_eq!(f.unknown_at_least, None);
        assert_eq!(f.local_tx_fail_at_least, Some(Threshold(700)));
        assert!(serde_json::from_str::<FaultsPatch>(r#"{"unknown_at_leest":"1"}"#).is_err());
        assert!(serde_json::from_str::<FaultsPatch>(r#"{"unknown_at_least":"-1"}"#).is_err());
    }
}
