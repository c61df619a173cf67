//! Live-editable fault settings shared by request handlers and MQ listeners, and the
//! "present / null / absent" field helper used by `PUT /admin/faults` bodies.

use std::sync::{Arc, RwLock};

use serde::{Deserialize, Deserializer};

use crate::money::Threshold;

/// A shared `T` read by copy; the lock is never held across an await.
#[derive(Debug, Clone, Default)]
pub struct Switch<T>(Arc<RwLock<T>>);

impl<T: Copy> Switch<T> {
    pub fn new(v: T) -> Self {
        Self(Arc::new(RwLock::new(v)))
    }

    pub fn get(&self) -> T {
        *self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies `f` and returns the new value.
    pub fn update(&self, f: impl FnOnce(&mut T)) -> T {
        let mut g = self.0.write().unwrap_or_else(|e| e.into_inner());
        f(&mut g);
        *g
    }
}

/// For `#[serde(default, deserialize_with = "present")]` on an `Option<Option<Threshold>>`:
/// absent ⇒ `None` (keep), `null` ⇒ `Some(None)` (turn off), a value ⇒ `Some(Some(v))`.
pub fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<Threshold>>, D::Error> {
    Option::<Threshold>::deserialize(d).map(Some)
}

/// Sets `slot` when the patch carried the field.
pub fn patch(slot: &mut Option<Threshold>, v: Option<Option<Threshold>>) {
    if let Some(v) = v {
        *slot = v;
    }
}
