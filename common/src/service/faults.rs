//! Operator fault injection by amount threshold, for either bank: a live [`Switch`] read by
//! request handlers and MQ listeners, `GET|PUT /admin/faults` ([`routes`]), and
//! [`fault_set!`](crate::fault_set) to declare a bank's set of thresholds with its patch type.

use std::sync::{Arc, RwLock};

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use crate::domain::money::{Amount, Threshold};
use crate::service::app::{FaultsOf, Service};
use crate::service::error::AppJson;

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

/// Whether a fault threshold fires: `Some(t)` for amounts `>= t`, never when off (`None`).
pub trait Trips {
    fn trips(&self, amount: Amount) -> bool;
}

impl Trips for Option<Threshold> {
    fn trips(&self, amount: Amount) -> bool {
        self.is_some_and(|t| t.hits(amount))
    }
}

/// A bank's thresholds and the `PUT /admin/faults` body that changes them.
pub trait FaultSet: Copy + Default + Serialize + Send + Sync + 'static {
    type Patch: DeserializeOwned + Send;
    fn apply(&mut self, patch: Self::Patch);
}

/// `GET|PUT /admin/faults` of a bank.
pub fn routes<S: Service>() -> Router<S> {
    Router::new().route("/admin/faults", get(get_faults::<S>).put(put_faults::<S>))
}

async fn get_faults<S: Service>(State(state): State<S>) -> AppJson<FaultsOf<S>> {
    AppJson(state.faults().get())
}

async fn put_faults<S: Service>(
    State(state): State<S>,
    AppJson(patch): AppJson<<FaultsOf<S> as FaultSet>::Patch>,
) -> AppJson<FaultsOf<S>> {
    let f = state.faults().update(|f| f.apply(patch));
    tracing::warn!(faults = %serde_json::to_string(&f).unwrap_or_default(), "faults changed");
    AppJson(f)
}

/// For `#[serde(default, deserialize_with = "present")]` on an `Option<Option<Threshold>>`:
/// absent ⇒ `None` (keep), `null` ⇒ `Some(None)` (turn off), a value ⇒ `Some(Some(v))`.
pub fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<Threshold>>, D::Error> {
    Option::<Threshold>::deserialize(d).map(Some)
}

/// Declares a bank's fault thresholds (`Option<Threshold>` each, `None` = off) — each also a
/// start-up flag with its environment variable, so the set flattens into the bank's settings —
/// and the patch `PUT /admin/faults` takes: fields present are set (`null` = off), absent ones
/// unchanged, unknown ones rejected (a typo must not silently leave a fault off).
#[macro_export]
macro_rules! fault_set {
    ($(#[$meta:meta])* pub struct $name:ident / $patch:ident {
        $($(#[$fmeta:meta])* $field:ident = $env:literal,)*
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, clap::Args)]
        pub struct $name {
            $($(#[$fmeta])*
            #[arg(long, env = $env, value_parser = $crate::domain::money::Threshold::parse_arg)]
            pub $field: Option<$crate::domain::money::Threshold>,)*
        }

        /// A `PUT /admin/faults` body.
        #[derive(Debug, Default, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $patch {
            $(#[serde(default, deserialize_with = "common::service::faults::present")]
            pub $field: Option<Option<$crate::domain::money::Threshold>>,)*
        }

        impl $crate::service::faults::FaultSet for $name {
            type Patch = $patch;
            fn apply(&mut self, patch: $patch) {
                $(if let Some(v) = patch.$field {
                    self.$field = v;
                })*
            }
        }
    };
}
