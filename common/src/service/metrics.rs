//! `GET /metrics` for every bank, and what every bank counts there ([`describe`]):
//! - `http_requests_total{route,method,status}` and `http_request_duration_seconds{route,method}`,
//!   by the route's pattern (`/api/transfers/{tx_no}`), so ids never become labels;
//! - `reconcile_runs_total{result}`, and, read when scraped, `reconcile_pending` (entries
//!   parked for a retry) and `reconcile_cursor_lag_seconds` (since the reconciler last read the
//!   other bank's feed up to its grace window: at most about the interval when healthy).
//!
//! A bank adds its own counters (`bank1_*`, `bank2_*`), and its own scrape-time gauges with
//! [`Service::gauges`].

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit};
use utoipa_axum::router::OpenApiRouter;

use crate::infra::metrics::Metrics;
use crate::service::app::Service;

/// Describes the metrics every bank has.
pub fn describe() {
    describe_counter!("http_requests_total", "HTTP requests answered, by route pattern, method and status.");
    describe_histogram!(
        "http_request_duration_seconds",
        Unit::Seconds,
        "Time to answer an HTTP request, by route pattern and method."
    );
    describe_counter!("reconcile_runs_total", "Reconciliation passes over the other bank's feed, by result.");
    describe_gauge!("reconcile_pending", "Feed entries parked for a retry (GET /admin/reconcile lists them).");
    describe_gauge!(
        "reconcile_cursor_lag_seconds",
        Unit::Seconds,
        "Seconds since the reconciler last read the other bank's feed up to its grace window."
    );
    describe_counter!(
        "peer_answers_refused_total",
        "Answers from the other bank's URL refused (unsigned, badly signed, or not an answer to the question): they move nothing."
    );
}

/// `GET /metrics` (Prometheus text format).
pub fn routes<S: Service>() -> OpenApiRouter<S> {
    OpenApiRouter::new().routes(crate::service::api::generic::<__path_render, _, _, _>(render::<S>))
}

/// The bank's metrics in the Prometheus text format (the README lists each one).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition 0.0.4", body = String,
        content_type = "text/plain; version=0.0.4")))]
async fn render<S: Service>(State(state): State<S>) -> Response {
    let shared = state.shared();
    // On the read pool: a scrape never waits for (or takes) a bank's writer.
    let pending = crate::service::reconcile::pending_count(&shared.db.read).await;
    let lag = shared.reconcile_runs.lag();
    shared.metrics.record(|| {
        if let Ok(n) = pending {
            gauge!("reconcile_pending").set(n as f64);
        }
        gauge!("reconcile_cursor_lag_seconds").set(lag.as_secs_f64());
    });
    state.gauges().await;
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], shared.metrics.render()).into_response()
}

/// Middleware: counts and times every request by its route's pattern (`unmatched` for
/// requests no route took).
pub async fn track(State(metrics): State<Metrics>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_owned();
    let method = req.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics.record(|| {
        histogram!("http_request_duration_seconds", "route" => route.clone(), "method" => method.clone())
            .record(started.elapsed());
        counter!("http_requests_total", "route" => route, "method" => method, "status" => status).increment(1);
    });
    response
}
