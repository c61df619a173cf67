//! The services' one error type and how each variant answers over HTTP (5xx bodies are
//! opaque; the detail is logged once, here).

use crate::api_error::ApiError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A refusal or invalid input: 4xx with a code naming the problem.
    #[error("{0:?}")]
    Client(ApiError),
    /// The broker or the database cannot be reached right now: 503, nothing changed.
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<ApiError> for Error {
    fn from(e: ApiError) -> Self {
        Self::Client(e)
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match self {
            Error::Client(e) => e.into_response(),
            Error::Unavailable(msg) => {
                tracing::warn!(%msg, "service unavailable");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", msg).into_response()
            }
            Error::Sqlx(e) => {
                tracing::error!(error = %e, "database error");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database_unavailable",
                    "the database is unavailable; nothing was changed",
                )
                .into_response()
            }
            Error::Other(e) => {
                tracing::error!(error = ?e, "internal error");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error").into_response()
            }
        }
    }
}
