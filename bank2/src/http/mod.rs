//! bank2's own HTTP resources: credits, the rejection feed, and its own operator endpoints
//! (DLQ, consumer). The routes every bank has (accounts, health, quarantine, metrics,
//! `/admin/faults`, `/admin/reconcile`) come from [`common::service::app::router`].

mod admin;
mod credits;
mod rejections;

use utoipa_axum::router::OpenApiRouter;

use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().merge(credits::routes()).merge(rejections::routes())
}

pub use admin::routes as admin_routes;
