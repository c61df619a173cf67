//! Quarantine: a delivered message that must never move money (a bad signature, a body that
//! contradicts what was already applied, one that does not parse) is stored with its reason
//! and acknowledged, so it never blocks a queue. Both banks keep the same `quarantine` table.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use sqlx::AnyPool;
use utoipa_axum::router::OpenApiRouter;

use crate::infra::mq::{self, MessageExt};

/// Why a message was quarantined (the `code` column; `reason` adds the detail).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    /// Missing, malformed or wrong signature: not from the peer bank.
    BadSignature,
    /// A tx_no already applied, with other facts (amount, accounts).
    ConflictingDuplicate,
    /// Does not parse, wrong version, KEYS not naming its tx_no.
    Malformed,
    /// Names a transfer the receiving bank cannot match (a refund of something never debited).
    Unmatched,
    /// A transfer message whose transfer bank1 did not commit (rolled back, or unknown past
    /// the proof horizon): a replayed half message.
    NotCommitted,
    /// A refund notice whose transfer bank2 did not reject (credited, or unknown past the
    /// proof horizon): a replayed notice.
    NotRejected,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::BadSignature => "bad_signature",
            Code::ConflictingDuplicate => "conflicting_duplicate",
            Code::Malformed => "malformed",
            Code::Unmatched => "unmatched",
            Code::NotCommitted => "not_committed",
            Code::NotRejected => "not_rejected",
        }
    }
}

/// Longest stored key and tx_no text (VARCHAR(128) / VARCHAR(64) on MySQL); longer values are
/// replaced by their SHA-512 prefix or cut, so a hostile KEYS header cannot make the insert fail.
const KEY_CHARS: usize = 128;
const TX_NO_CHARS: usize = 64;
/// How much of a body is kept (VARCHAR(8000) on MySQL).
pub const BODY_CHARS: usize = 8000;
const REASON_CHARS: usize = 1000;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Quarantined {
    pub msg_key: String,
    pub msg_id: String,
    pub tx_no: Option<String>,
    pub body: String,
    pub code: String,
    pub reason: String,
    pub at: i64,
}

impl Quarantined {
    /// The row for a delivered message; `reason` reads `<code>: <detail>`.
    pub fn of(msg: &MessageExt, code: Code, detail: &str) -> Self {
        let body = msg_body(msg);
        let keys = mq::keys(msg);
        Self {
            msg_key: bounded_key(&mq::message_key(msg)),
            msg_id: bounded_key(msg.msg_id().as_ref()),
            tx_no: (!keys.is_empty()).then(|| keys.chars().take(TX_NO_CHARS).collect()),
            body: String::from_utf8_lossy(&body).chars().take(BODY_CHARS).collect(),
            code: code.as_str().to_owned(),
            reason: format!("{}: {detail}", code.as_str()).chars().take(REASON_CHARS).collect(),
            at: crate::now_ms(),
        }
    }
}

fn msg_body(msg: &MessageExt) -> Vec<u8> {
    msg.body().map(|b| b.to_vec()).unwrap_or_default()
}

/// A key that fits its column: as is when short, else `sha512:<hex prefix>`.
fn bounded_key(key: &str) -> String {
    if key.len() <= KEY_CHARS {
        return key.to_owned();
    }
    use sha2::{Digest, Sha512};
    let digest = Sha512::digest(key.as_bytes());
    let hex: String = digest[..32].iter().map(|b| format!("{b:02x}")).collect();
    format!("sha512:{hex}")
}

/// Stores a message once (keyed by its stable UNIQ_KEY / msg id); repeats are ignored.
pub async fn put(pool: &AnyPool, q: &Quarantined) -> sqlx::Result<()> {
    let r = sqlx::query(
        "INSERT INTO quarantine (msg_key, msg_id, tx_no, body, code, reason, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&q.msg_key)
    .bind(&q.msg_id)
    .bind(&q.tx_no)
    .bind(&q.body)
    .bind(&q.code)
    .bind(&q.reason)
    .bind(q.at)
    .execute(pool)
    .await;
    match r {
        Ok(_) => Ok(()),
        Err(e) if crate::infra::db::is_unique_violation(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The newest `limit` quarantined messages.
pub async fn list(pool: &AnyPool, limit: i64) -> sqlx::Result<Vec<Quarantined>> {
    sqlx::query_as::<_, Quarantined>(
        "SELECT msg_key, msg_id, tx_no, body, code, reason, at FROM quarantine ORDER BY at DESC LIMIT ?",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// `GET /api/quarantine`: the newest 500, with code and reason.
pub fn routes<S: crate::service::app::Service>() -> OpenApiRouter<S> {
    OpenApiRouter::new().routes(crate::service::api::generic::<__path_list_handler, _, _, _>(list_handler::<S>))
}

/// A quarantined message as `GET /api/quarantine` shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QuarantineItem {
    /// The message's KEYS (bounded: a long one is replaced by its hash).
    pub msg_key: String,
    pub msg_id: String,
    pub tx_no: Option<String>,
    /// The body as delivered (lossy UTF-8).
    pub body: String,
    /// `bad_signature`, `conflicting_duplicate`, `malformed` or `unmatched`.
    pub code: String,
    pub reason: String,
    /// When it was quarantined (RFC 3339, UTC).
    pub at: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QuarantineList {
    /// Newest first.
    pub items: Vec<QuarantineItem>,
}

/// The newest 500 quarantined messages: delivered, never applied, acknowledged.
#[utoipa::path(get, path = "/api/quarantine", tag = "operations",
    responses((status = 200, description = "Newest first", body = QuarantineList)))]
async fn list_handler<S: crate::service::app::Service>(
    State(state): State<S>,
) -> crate::service::error::Result<Json<QuarantineList>> {
    let rows = list(&state.shared().db.pool, 500).await?;
    let items = rows
        .into_iter()
        .map(|q| QuarantineItem {
            at: crate::format_ms(q.at),
            msg_key: q.msg_key,
            msg_id: q.msg_id,
            tx_no: q.tx_no,
            body: q.body,
            code: q.code,
            reason: q.reason,
        })
        .collect();
    Ok(Json(QuarantineList { items }))
}

#[cfg(test)]
mod tests {
    use super::bounded_key;

    #[test]
    fn long_keys_are_hashed_to_fit() {
        assert_eq!(bounded_key("short"), "short");
        let long = "k".repeat(500);
        let b = bounded_key(&long);
        assert!(b.starts_with("sha512:") && b.len() <= 128, "{b}");
        assert_eq!(b, bounded_key(&long), "stable");
    }
}
