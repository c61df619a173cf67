//! `GET|PUT /admin/faults`: live fault injection.

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use common::api_error::AppJson;

use crate::faults::{Faults, FaultsPatch};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/admin/faults", get(get_faults).put(put_faults))
}

async fn get_faults(State(state): State<AppState>) -> AppJson<Faults> {
    AppJson(state.faults.get())
}

async fn put_faults(State(state): State<AppState>, AppJson(patch): AppJson<FaultsPatch>) -> AppJson<Faults> {
    let f = state.faults.update(|f| patch.apply_to(f));
    tracing::warn!(faults = ?f, "faults changed");
    AppJson(f)
}
