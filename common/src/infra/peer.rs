//! A bank's HTTP client for the other bank: its feed and its query interface (proofs), both
//! with the service token. Whoever answers at the peer URL is not trusted for it: every answer
//! must carry the peer bank's signature over its exact bytes ([`SIGNATURE_HEADER`]) and echo
//! what was asked (the feed's cursor, the proof's nonce), else it is refused, counted
//! (`peer_answers_refused_total`) and nothing is done with it. `https://` URLs work (rustls),
//! with a private CA when one is given (docs/ARCHITECTURE.md, "Trust").

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde::de::DeserializeOwned;

use crate::domain::page::Page;
use crate::domain::proof::{ProofAnswer, ProofRequest, SIGNATURE_HEADER};
use crate::domain::signing::PeerKeys;
use crate::infra::metrics::Metrics;
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
    /// The answer is not the peer bank's word: unsigned, badly signed, unreadable, or not an
    /// answer to this question.
    #[error("refused an answer from the {peer} URL: {detail}")]
    Refused { peer: &'static str, detail: String },
}

impl From<PeerError> for crate::service::error::Error {
    fn from(e: PeerError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

/// How to reach the other bank.
#[derive(Debug, Clone)]
pub struct PeerConfig<'a> {
    /// `bank1`, `bank2`: who the peer is, in texts and metrics.
    pub name: &'static str,
    pub base: &'a str,
    /// Presented to the peer's feed and query interface.
    pub feed_token: Option<Token>,
    /// The peer's public keys: only answers they sign are read.
    pub keys: PeerKeys,
    /// A PEM file of CA certificates to trust for an `https://` URL, beside the system's.
    pub ca_file: Option<&'a Path>,
}

#[derive(Clone)]
pub struct Peer {
    http: reqwest::Client,
    base: String,
    feed_token: Option<Token>,
    name: &'static str,
    keys: PeerKeys,
    metrics: Metrics,
}

impl Peer {
    pub fn new(config: PeerConfig<'_>, metrics: Metrics) -> anyhow::Result<Self> {
        let mut http = reqwest::Client::builder().timeout(Duration::from_secs(10));
        if let Some(path) = config.ca_file {
            let pem = std::fs::read(path).with_context(|| format!("reading the CA file {}", path.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("the CA file {} holds no PEM certificate", path.display()))?;
            anyhow::ensure!(!certs.is_empty(), "the CA file {} holds no PEM certificate", path.display());
            http = http.tls_certs_merge(certs);
        }
        Ok(Self {
            http: http.build().context("an HTTP client")?,
            base: config.base.trim_end_matches('/').to_owned(),
            feed_token: config.feed_token,
            name: config.name,
            keys: config.keys,
            metrics,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `GET <path>?after=<after>&limit=<limit>`: a signed feed page that answers this cursor.
    pub async fn feed<T: DeserializeOwned>(&self, path: &str, after: i64, limit: u32) -> Result<Page<T>, PeerError> {
        let req = self.http.get(format!("{}{path}?after={after}&limit={limit}", self.base));
        let page: Page<T> = self.signed(req).await?;
        if page.after != after.to_string() {
            return Err(self.refused(format!("a page after {} where {after} was asked", page.after)));
        }
        Ok(page)
    }

    /// `POST <path>` with `question`: the signed answer to it.
    pub async fn ask(&self, path: &str, question: &ProofRequest) -> Result<ProofAnswer, PeerError> {
        let answer: ProofAnswer = self.signed(self.http.post(format!("{}{path}", self.base)).json(question)).await?;
        if answer.nonce != question.nonce || answer.bank != self.name {
            return Err(self.refused(format!("an answer of {} to another question", answer.bank)));
        }
        Ok(answer)
    }

    /// Sends `req` with the feed token; the body, once its signature is the peer's.
    async fn signed<T: DeserializeOwned>(&self, mut req: reqwest::RequestBuilder) -> Result<T, PeerError> {
        if let Some(t) = &self.feed_token {
            req = req.bearer_auth(t.expose());
        }
        let r = req.send().await.map_err(|e| PeerError::Unreachable { peer: self.name, source: e })?;
        if !r.status().is_success() {
            return Err(PeerError::Status { peer: self.name, status: r.status() });
        }
        let signature = r.headers().get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = r.bytes().await.map_err(|e| PeerError::Reply { peer: self.name, source: e })?;
        if let Err(e) = self.keys.verify(&body, signature.as_deref()) {
            return Err(self.refused(e.to_string()));
        }
        serde_json::from_slice(&body).map_err(|e| self.refused(format!("signed, but not an answer: {e}")))
    }

    fn refused(&self, detail: String) -> PeerError {
        let peer = self.name;
        tracing::warn!(peer, %detail, "refused an answer from the peer URL: it moves nothing");
        self.metrics.record(|| metrics::counter!("peer_answers_refused_total", "peer" => peer).increment(1));
        PeerError::Refused { peer, detail }
    }
}
