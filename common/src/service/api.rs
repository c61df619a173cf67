//! The API contract of a bank: an OpenAPI 3.1 document derived from the handlers themselves
//! (`#[utoipa::path]` on each, collected by [`OpenApiRouter`]), so a route cannot exist without
//! its entry in the spec, nor the other way round. Served at `GET /api-docs/openapi.json`, with
//! Swagger UI (vendored: no download at build time or at run time) at `/docs`.
//!
//! What every operation shares is added once, by [`finish`], instead of on each handler: the
//! `500`/`503` error answers, the `401` of the guarded ones, and the two bearer schemes
//! ([`ADMIN_TOKEN`], [`FEED_TOKEN`]).

use axum::handler::Handler;
use axum::routing::MethodRouter;
use utoipa::openapi::path::{Operation, Paths};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ComponentsBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Ref, Response, ResponseBuilder};
use utoipa::openapi::{ContentBuilder, RefOr};
use utoipa::{PartialSchema, ToSchema};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::PathItemExt;
use utoipa_swagger_ui::SwaggerUi;

use crate::service::error::ErrorBody;

/// The bearer scheme of `/admin/*` (`BANK1_ADMIN_TOKEN`, `BANK2_ADMIN_TOKEN`).
pub const ADMIN_TOKEN: &str = "admin_token";
/// The bearer scheme of the reconciliation feeds (`BANK1_FEED_TOKEN`, `BANK2_FEED_TOKEN`).
pub const FEED_TOKEN: &str = "feed_token";

/// Where the spec is served.
pub const SPEC_PATH: &str = "/api-docs/openapi.json";
/// Where Swagger UI is served.
pub const DOCS_PATH: &str = "/docs";

/// A documented route whose handler is generic over the bank (`handler::<S>`), which
/// `utoipa_axum::routes!` cannot name. `P` is the `__path_<handler>` type `#[utoipa::path]`
/// generates; the methods come from it, as `routes!` does.
pub fn generic<P, H, T, S>(handler: H) -> UtoipaMethodRouter<S>
where
    P: utoipa::Path + utoipa::__dev::SchemaReferences,
    H: Handler<T, S> + Clone,
    T: 'static,
    S: Clone + Send + Sync + 'static,
{
    let mut schemas = Vec::new();
    P::schemas(&mut schemas);
    let methods = P::methods();
    let router = methods.iter().fold(MethodRouter::new(), |r, m| r.on(m.to_method_filter(), handler.clone()));
    let mut paths = Paths::new();
    paths.add_path_operation(P::path(), methods, P::operation());
    (schemas, paths, router)
}

/// The empty spec a bank's routes are collected into.
pub fn base(bank: &str) -> OpenApi {
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title(format!("{bank} API"))
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(format!(
                    "{bank} of the bank-transfer example (reliable messages over RocketMQ). Amounts are decimal \
                     strings in major units (\"100.00\"); every error is {{\"error\":{{\"code\",\"message\"}}}}. \
                     See docs/ARCHITECTURE.md in the repository."
                )))
                .build(),
        )
        .build()
}

/// Completes a collected spec: the bearer schemes, and the answers every operation can give.
pub fn finish(mut spec: OpenApi) -> OpenApi {
    let components = spec.components.get_or_insert_with(|| ComponentsBuilder::new().build());
    let bearer = |what: &str| {
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.description = Some(what.to_owned());
        SecurityScheme::Http(http)
    };
    components.add_security_scheme(ADMIN_TOKEN, bearer("The bank's operator token (BANKn_ADMIN_TOKEN)."));
    components.add_security_scheme(
        FEED_TOKEN,
        bearer("The bank's feed token (BANKn_FEED_TOKEN), for the other bank's reconciler."),
    );
    let mut schemas = vec![(ErrorBody::name().into_owned(), ErrorBody::schema())];
    ErrorBody::schemas(&mut schemas);
    for (name, schema) in schemas {
        components.schemas.entry(name).or_insert(schema);
    }
    for item in spec.paths.paths.values_mut() {
        for op in [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch] {
            if let Some(op) = op.as_mut() {
                add_common_answers(op);
            }
        }
    }
    spec
}

fn add_common_answers(op: &mut Operation) {
    let guarded = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let answers = &mut op.responses.responses;
    let mut add = |status: &str, what: &str| {
        answers.entry(status.to_owned()).or_insert_with(|| error_response(what));
    };
    if guarded {
        add("401", "No bearer token, or not the right one (or the endpoint's token is not configured).");
    }
    add("500", "Internal error (opaque; logged by the service). Nothing was changed.");
    add("503", "The database or the broker is unavailable. Nothing was changed.");
}

/// An answer with the error body.
pub fn error_response(what: &str) -> RefOr<Response> {
    let content = ContentBuilder::new().schema(Some(Ref::from_schema_name(ErrorBody::name()))).build();
    RefOr::T(ResponseBuilder::new().description(what).content("application/json", content).build())
}

/// The spec's route and Swagger UI.
pub fn docs<S: Clone + Send + Sync + 'static>(spec: OpenApi) -> axum::Router<S> {
    SwaggerUi::new(DOCS_PATH).url(SPEC_PATH, spec).into()
}

/// Collects `routes` into a finished spec and a plain router.
pub fn split<S: Clone + Send + Sync + 'static>(bank: &str, routes: OpenApiRouter<S>) -> (axum::Router<S>, OpenApi) {
    let (router, spec) = OpenApiRouter::with_openapi(base(bank)).merge(routes).split_for_parts();
    (router, finish(spec))
}
