//! A feed page, as a bank serves it and the other bank's reconciler reads it: the wire shape
//! only, so the HTTP client for the peer (`infra::peer`) and the feeds (`service::feed`) share
//! it without importing each other.

use serde::{Deserialize, Serialize};

/// A feed page: the entries, and the cursor to ask for next. Served signed
/// (`common::service::proofs::signed_json`): `after` and `signed_at_ms` bind the signature to
/// this request and this moment.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The cursor to pass as `after` for the next page (the same one when this page is empty).
    pub next: String,
    /// The cursor this page was read after.
    pub after: String,
    /// When the page was signed (ms since the epoch).
    pub signed_at_ms: i64,
}

impl<T> Page<T> {
    /// A page of `items` read after `after`; `next` is the last item's position (or `after`).
    pub fn after(after: i64, items: Vec<T>, pos: impl Fn(&T) -> Option<i64>) -> Self {
        let next = items.last().and_then(pos).unwrap_or(after);
        Self { items, next: next.to_string(), after: after.to_string(), signed_at_ms: crate::now_ms() }
    }
}
