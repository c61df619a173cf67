//! Operator fault injection by amount threshold (`GET|PUT /admin/faults`, `BANK1_*` env).

use common::faults::{patch, present, Switch};
use common::money::{Amount, Threshold};
use serde::{Deserialize, Serialize};

/// Current thresholds; `None` = fault off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Faults {
    /// Local transaction fails after the debit statement ⇒ rollback ⇒ ROLLBACK.
    pub local_tx_fail_at_least: Option<Threshold>,
    /// Local transaction commits, bank1 answers UNKNOWN ⇒ the broker's check-back decides.
    pub unknown_at_least: Option<Threshold>,
    /// Local transaction commits, the half message is rolled back ⇒ a lost notification.
    pub lose_message_at_least: Option<Threshold>,
}

impl Faults {
    pub fn local_tx_fails(&self, a: Amount) -> bool {
        self.local_tx_fail_at_least.is_some_and(|t| t.hits(a))
    }
    pub fn answers_unknown(&self, a: Amount) -> bool {
        self.unknown_at_least.is_some_and(|t| t.hits(a))
    }
    pub fn loses_message(&self, a: Amount) -> bool {
        self.lose_message_at_least.is_some_and(|t| t.hits(a))
    }
}

/// A `PUT /admin/faults` body: fields present are set (`null` = off), absent ones unchanged,
/// unknown ones rejected (a typo must not silently leave a fault off).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultsPatch {
    #[serde(default, deserialize_with = "present")]
    pub local_tx_fail_at_least: Option<Option<Threshold>>,
    #[serde(default, deserialize_with = "present")]
    pub unknown_at_least: Option<Option<Threshold>>,
    #[serde(default, deserialize_with = "present")]
    pub lose_message_at_least: Option<Option<Threshold>>,
}

impl FaultsPatch {
    pub fn apply_to(self, f: &mut Faults) {
        patch(&mut f.local_tx_fail_at_least, self.local_tx_fail_at_least);
        patch(&mut f.unknown_at_least, self.unknown_at_least);
        patch(&mut f.lose_message_at_least, self.lose_message_at_least);
    }
}

pub type FaultSwitch = Switch<Faults>;

#[cfg(test)]
mod tests {
    use super::*;

    fn put(s: &FaultSwitch, body: &str) -> Faults {
        let p: FaultsPatch = serde_json::from_str(body).unwrap();
        s.update(|f| p.apply_to(f))
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
