//! The services' one error type, and the one error body every HTTP API here answers with:
//! `{"error":{"code","message"}}`, with the code from a closed set ([`Code`]). 5xx bodies are
//! opaque; their detail is logged once, here. [`AppJson`] and [`AppQuery`] route extractor
//! rejections (bad syntax, wrong types, wrong content type) into the same shape instead of
//! axum's plain-text replies.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every error code the APIs answer with (the JSON form is snake_case: `invalid_amount`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    // The request itself.
    MalformedJson,
    InvalidRequest,
    UnsupportedMediaType,
    BadRequest,
    NotFound,
    // A value in it.
    InvalidAmount,
    InvalidAccount,
    InvalidTxNo,
    InvalidCursor,
    InvalidLimit,
    InvalidGrace,
    InvalidIdempotencyKey,
    // Business refusals.
    UnknownAccount,
    InsufficientFunds,
    UnknownTransfer,
    IdempotencyKeyReused,
    RequestInProgress,
    // Operator endpoints.
    Unauthorized,
    NotDeadLettered,
    AlreadyCredited,
    NotCommittedAtBank1,
    Conflicting,
    // The service's side.
    Unavailable,
    DatabaseUnavailable,
    Internal,
}

impl Code {
    /// The code as the JSON body spells it (`insufficient_funds`).
    pub fn name(self) -> String {
        serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
    }
}

/// What a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A refusal or invalid input: 4xx with a code naming the problem; nothing changed.
    #[error("{code:?}: {message}")]
    Client { status: StatusCode, code: Code, message: String },
    /// The broker or the database cannot be reached right now: 503, nothing changed.
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl Error {
    pub fn new(status: StatusCode, code: Code, message: impl Into<String>) -> Self {
        Self::Client { status, code, message: message.into() }
    }

    pub fn bad_request(code: Code, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unprocessable(code: Code, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    pub fn not_found(code: Code, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn conflict(code: Code, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, Code::Unauthorized, message)
    }

    /// The code the error answers with.
    pub fn code(&self) -> Code {
        match self {
            Error::Client { code, .. } => *code,
            Error::Unavailable(_) => Code::Unavailable,
            Error::Sqlx(_) => Code::DatabaseUnavailable,
            Error::Other(_) => Code::Internal,
        }
    }
}

/// The body of every error answer: `{"error":{"code","message"}}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// What went wrong, from a closed set.
    pub code: Code,
    /// The problem in words (5xx: opaque).
    pub message: String,
}

fn body(status: StatusCode, code: Code, message: &str) -> Response {
    let error = ErrorBody { error: ErrorDetail { code, message: message.to_owned() } };
    let mut response = (status, Json(error)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        // RFC 9110: a 401 names the scheme it wants.
        response.headers_mut().insert(axum::http::header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match self {
            Error::Client { status, code, message } => body(status, code, &message),
            Error::Unavailable(msg) => {
                tracing::warn!(%msg, "service unavailable");
                body(StatusCode::SERVICE_UNAVAILABLE, Code::Unavailable, &msg)
            }
            Error::Sqlx(e) => {
                tracing::error!(error = %e, "database error");
                body(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Code::DatabaseUnavailable,
                    "the database is unavailable; nothing was changed",
                )
            }
            Error::Other(e) => {
                tracing::error!(error = ?e, "internal error");
                body(StatusCode::INTERNAL_SERVER_ERROR, Code::Internal, "internal error")
            }
        }
    }
}

/// `Json<T>` whose rejections answer in the [`Error`] shape.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppJson<T>(pub T);

impl<S, T> FromRequest<S> for AppJson<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// `Query<T>` whose rejections answer in the [`Error`] shape (400 `bad_request`).
#[derive(Debug, Clone, Copy, Default)]
pub struct AppQuery<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for AppQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Self(v)),
            Err(rejection) => Err(Error::bad_request(Code::BadRequest, rejection.body_text())),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> Error {
    match rejection {
        JsonRejection::JsonDataError(e) => {
            Error::unprocessable(Code::InvalidRequest, format!("invalid request body: {}", e.body_text()))
        }
        JsonRejection::JsonSyntaxError(e) => {
            Error::bad_request(Code::MalformedJson, format!("request body is not valid JSON: {}", e.body_text()))
        }
        JsonRejection::MissingJsonContentType(_) => Error::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::UnsupportedMediaType,
            "expected Content-Type: application/json",
        ),
        other => Error::bad_request(Code::BadRequest, other.body_text()),
    }
}

impl<T: Serialize> IntoResponse for AppJson<T> {
    fn into_response(self) -> Response {
        Json(self.0).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::Code;

    #[test]
    fn codes_are_snake_case_strings() {
        let json = |c: Code| serde_json::to_value(c).unwrap();
        assert_eq!(json(Code::InvalidTxNo), "invalid_tx_no");
        assert_eq!(json(Code::NotCommittedAtBank1), "not_committed_at_bank1");
        assert_eq!(json(Code::IdempotencyKeyReused), "idempotency_key_reused");
    }
}
