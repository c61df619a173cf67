//! A bank's HTTP client for the other bank: its status endpoint (public) and its feed (with
//! the service token). A 404 on a status read is "no such transfer", not an error.

use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::infra::token::Token;

/// Why the other bank did not answer usefully.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("{peer} unreachable: {source}")]
    Unreachable { peer: &'static str, source: reqwest::Error },
    #[error("{peer} answered {status}")]
    Status { peer: &'static str, status: reqwest::StatusCode },
    #[error("{peer} reply: {source}")]
    Reply { peer: &'static str, source: reqwest::Error },
}

impl From<PeerError> for crate::service::error::Error {
    fn from(e: PeerError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

#[derive(Clone)]
pub struct Peer {
    http: reqwest::Client,
    base: String,
    /// Presented to the peer's feed.
    feed_token: Option<Token>,
    name: &'static str,
}

impl Peer {
    /// `name` says who the peer is in error texts (`bank1`, `bank2`).
    pub fn new(name: &'static str, base: &str, feed_token: Option<Token>) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("an HTTP client");
        Self { http, base: base.trim_end_matches('/').to_owned(), feed_token, name }
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `GET <path>`: `Ok(None)` on 404.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>, PeerError> {
        let r = self.http.get(format!("{}{path}", self.base)).send().await.map_err(|e| self.unreachable(e))?;
        match r.status() {
            reqwest::StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => r.json().await.map(Some).map_err(|e| self.reply(e)),
            status => Err(PeerError::Status { peer: self.name, status }),
        }
    }

    /// `GET <path>?after=<after>&limit=<limit>` with the feed token.
    pub async fn feed<T: DeserializeOwned>(&self, path: &str, after: i64, limit: u32) -> Result<T, PeerError> {
        let mut req = self.http.get(format!("{}{path}?after={after}&limit={limit}", self.base));
        if let Some(t) = &self.feed_token {
            req = req.bearer_auth(t.expose());
        }
        let r = req.send().await.map_err(|e| self.unreachable(e))?;
        if !r.status().is_success() {
            return Err(PeerError::Status { peer: self.name, status: r.status() });
        }
        r.json().await.map_err(|e| self.reply(e))
    }

    fn unreachable(&self, source: reqwest::Error) -> PeerError {
        PeerError::Unreachable { peer: self.name, source }
    }

    fn reply(&self, source: reqwest::Error) -> PeerError {
        PeerError::Reply { peer: self.name, source }
    }
}
