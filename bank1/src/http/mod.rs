//! bank1's HTTP API: one module per resource, merged here.

mod accounts;
mod admin;
mod health;
mod transfers;

use axum::Router;
use tower_http::trace::TraceLayer;

use crate::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(transfers::routes())
        .merge(accounts::routes())
        .merge(admin::routes())
        .merge(health::routes())
        .fallback(|| async { common::api_error::ApiError::not_found("not_found", "no such endpoint") })
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
