//! Operator fault injection by amount threshold, for either bank: a live [`Switch`] read by
//! request handlers and MQ listeners, `GET|PUT /admin/faults` ([`routes`]), and
//! [`fault_set!`](crate::fault_set) to declare a bank's set of thresholds with its patch type.

use std::sync::{Arc, RwLock};

use axum::extract::State;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use crate::domain::money::{Amount, Threshold};
use utoipa::openapi::path::Operation;
use utoipa::openapi::{ContentBuilder, Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};

use crate::service::api::generic;
use crate::service::app::{FaultsOf, Service};
use crate::service::error::{AppJson, ErrorBody};

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
pub trait FaultSet: Copy + Default + Serialize + ToSchema + Send + Sync + 'static {
    type Patch: DeserializeOwned + ToSchema + Send;
    fn apply(&mut self, patch: Self::Patch);
}

/// `GET|PUT /admin/faults` of a bank. The bodies are the bank's own types, filled in here: the
/// documented handlers are generic over the bank.
pub fn routes<S: Service>() -> OpenApiRouter<S> {
    let get = generic::<__path_get_faults, _, _, _>(get_faults::<S>);
    let put = generic::<__path_put_faults, _, _, _>(put_faults::<S>);
    OpenApiRouter::new().routes(with_bodies::<S>(get)).routes(with_bodies::<S>(put))
}

fn with_bodies<S: Service>(mut route: UtoipaMethodRouter<S>) -> UtoipaMethodRouter<S> {
    let json = |name: &str| ContentBuilder::new().schema(Some(Ref::from_schema_name(name))).build();
    let (faults, patch) = (FaultsOf::<S>::name(), <FaultsOf<S> as FaultSet>::Patch::name());
    for item in route.1.paths.values_mut() {
        for op in [item.get.as_mut(), item.put.as_mut()].into_iter().flatten() {
            let op: &mut Operation = op;
            if let Some(RefOr::T(ok)) = op.responses.responses.get_mut("200") {
                ok.content.insert("application/json".to_owned(), RefOr::T(json(&faults)));
            }
            if let Some(RefOr::T(body)) = op.request_body.as_mut() {
                body.content.insert("application/json".to_owned(), RefOr::T(json(&patch)));
            }
        }
    }
    route.0.push((faults.into_owned(), FaultsOf::<S>::schema()));
    route.0.push((patch.into_owned(), <FaultsOf<S> as FaultSet>::Patch::schema()));
    route
}

/// The bank's fault thresholds now.
#[utoipa::path(get, path = "/admin/faults", tag = "faults", security(("admin_token" = [])),
    responses((status = 200, description = "The thresholds; `null` = off")))]
async fn get_faults<S: Service>(State(state): State<S>) -> AppJson<FaultsOf<S>> {
    AppJson(state.faults().get())
}

/// Sets fault thresholds: fields present are set (`null` turns one off), absent ones are kept.
#[utoipa::path(put, path = "/admin/faults", tag = "faults", security(("admin_token" = [])),
    request_body(description = "The thresholds to change", content_type = "application/json"),
    responses(
        (status = 200, description = "The thresholds after the change"),
        (status = 400, description = "Not JSON (`malformed_json`)", body = ErrorBody),
        (status = 415, description = "Not `Content-Type: application/json`", body = ErrorBody),
        (status = 422, description = "An unknown field or a bad amount (`invalid_request`)", body = ErrorBody),
    ))]
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
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, clap::Args, utoipa::ToSchema)]
        pub struct $name {
            $($(#[$fmeta])*
            #[arg(long, env = $env, value_parser = $crate::domain::money::Threshold::parse_arg)]
            #[schema(value_type = Option<String>, required, example = "100.00", pattern = "^[0-9]{1,15}(\\.[0-9]{1,2})?$")]
            pub $field: Option<$crate::domain::money::Threshold>,)*
        }

        /// A `PUT /admin/faults` body: an amount turns a fault on at that threshold, `null`
        /// turns it off, an absent field is kept.
        #[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $patch {
            $($(#[$fmeta])*
            #[serde(default, deserialize_with = "common::service::faults::present")]
            #[schema(value_type = Option<String>, example = "100.00", pattern = "^[0-9]{1,15}(\\.[0-9]{1,2})?$")]
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
