//! Bearer tokens: operators on `/admin/*`, and the service token each bank's reconciler
//! presents to the other bank's feed. A request without the right `Authorization: Bearer
//! <token>` gets 401 with the usual JSON error and changes nothing. Browsers never attach such
//! a header on their own, so a cross-site page cannot drive these endpoints either.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub use crate::infra::token::Token;

use crate::service::error::Error;

/// What a group of routes requires: a token, or (none configured) nothing gets in.
#[derive(Debug, Clone)]
pub struct Guard {
    pub token: Option<Token>,
    /// Names the setting that configures it, for the 401's message (e.g. `BANK1_ADMIN_TOKEN`).
    pub setting: String,
}

impl Guard {
    /// `Ok` only for `Authorization: Bearer <the token>`; otherwise the 401 to answer.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), Error> {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let message = match (&self.token, presented) {
            (Some(t), Some(p)) if t.matches(p) => return Ok(()),
            (None, _) => format!("this endpoint is disabled: no {} is configured", self.setting),
            (Some(_), None) => "this endpoint needs Authorization: Bearer <token>".to_owned(),
            (Some(_), Some(_)) => "the bearer token is not valid for this endpoint".to_owned(),
        };
        Err(Error::unauthorized(message))
    }
}

/// Middleware: lets a request through only with `Authorization: Bearer <the token>`.
pub async fn require_bearer(State(guard): State<Guard>, req: Request, next: Next) -> Response {
    match guard.check(req.headers()) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}
