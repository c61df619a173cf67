//! Operator fault injection by amount threshold (`GET|PUT /admin/faults`, `BANK2_*` env).
//! Faults apply to every credit path (consumer, and later reconcile / redrive).

use common::faults::{patch, present, Switch};
use common::money::{Amount, Threshold};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Faults {
    /// Crediting fails for amounts >= this (the message goes down the retry ladder).
    pub consume_fail_at_least: Option<Threshold>,
}

impl Faults {
    pub fn credit_fails(&self, a: Amount) -> bool {
        self.consume_fail_at_least.is_some_and(|t| t.hits(a))
    }
}

/// A `PUT /admin/faults` body: present fields set (`null` = off), unknown fields rejected.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultsPatch {
    #[serde(default, deserialize_with = "present")]
    pub consume_fail_at_least: Option<Option<Threshold>>,
}

impl FaultsPatch {
    pub fn apply_to(self, f: &mut Faults) {
        patch(&mut f.consume_fail_at_least, self.consume_fail_at_least);
    }
}

pub type FaultSwitch = Switch<Faults>;
