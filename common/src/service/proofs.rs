//! Proofs, both sides (docs/ARCHITECTURE.md, "Trust"; the rule itself is
//! [`crate::domain::proof`]):
//! - answering: a bank's query interface takes a [`Question`] (the feed token, a nonce, up to
//!   1000 tx_nos) and answers with its rows, signed ([`signed_json`]);
//! - asking: a receiving bank's [`Prover`] asks the other bank about the messages it is about
//!   to apply. The questions of consume threads that wait at the same moment are merged into
//!   one HTTP call ([`crate::service::group_commit::Groups`]), so a credit group costs one
//!   question, not one per message.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderName;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::domain::ids::TxNo;
use crate::domain::message::Body;
use crate::domain::proof::{self, ProofAnswer, ProofEntry, ProofRequest, Rule, Verdict, MAX_TX_NOS, SIGNATURE_HEADER};
use crate::domain::signing::Signer;
use crate::infra::peer::Peer;
use crate::service::app::Service;
use crate::service::error::{AppJson, Code, Error, Result};
use crate::service::group_commit::Groups;

/// A JSON answer signed with `signer` over its exact bytes, in [`SIGNATURE_HEADER`].
pub fn signed_json<T: Serialize>(signer: &Signer, value: &T) -> Response {
    let body = serde_json::to_vec(value).expect("an answer always serialises");
    let signature = signer.sign(&body);
    let headers =
        [(CONTENT_TYPE, "application/json".to_owned()), (HeaderName::from_static(SIGNATURE_HEADER), signature)];
    (headers, body).into_response()
}

/// A question to this bank's query interface that passed its checks: the feed token, a nonce
/// of 8-64 visible ASCII characters, 1 to [`MAX_TX_NOS`] tx_nos. An extractor.
#[derive(Debug, Clone)]
pub struct Question(pub ProofRequest);

impl<S: Service> FromRequest<S> for Question {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self> {
        state.shared().feed_guard.check(req.headers())?;
        let AppJson(q) = AppJson::<ProofRequest>::from_request(req, state).await?;
        let nonce_ok = (8..=64).contains(&q.nonce.len()) && q.nonce.bytes().all(|b| b.is_ascii_graphic());
        if !nonce_ok {
            return Err(Error::bad_request(Code::InvalidRequest, "nonce must be 8-64 visible ASCII characters"));
        }
        if q.tx_nos.is_empty() || q.tx_nos.len() > MAX_TX_NOS {
            return Err(Error::bad_request(
                Code::InvalidRequest,
                format!("tx_nos must name 1 to {MAX_TX_NOS} transfers"),
            ));
        }
        Ok(Self(q))
    }
}

/// The signed answer to `question`: `entries` are the bank's rows for the tx_nos it has.
pub fn answer<S: Service>(state: &S, question: &ProofRequest, entries: Vec<ProofEntry>) -> Response {
    let answer = ProofAnswer {
        bank: state.shared().names.bank.to_owned(),
        nonce: question.nonce.clone(),
        signed_at_ms: crate::now_ms(),
        entries,
    };
    signed_json(&state.shared().signer, &answer)
}

/// Questions merged per HTTP call: at most this many consume batches (each at most a pull).
const JOBS_PER_CALL: usize = 16;
/// HTTP calls in flight at once.
const CALLS: usize = 2;

type Entries = Arc<HashMap<TxNo, ProofEntry>>;
type Job = (Vec<TxNo>, oneshot::Sender<std::result::Result<Entries, String>>);

/// Asks the other bank's query interface, questions merged; cheap to clone.
#[derive(Clone)]
pub struct Prover {
    rule: Rule,
    calls: Groups<Job>,
}

impl Prover {
    /// On the current Tokio runtime: asks `peer` at `path`, and judges its answers by `rule`.
    pub fn start(peer: Peer, path: &'static str, rule: Rule) -> Self {
        let calls = Groups::with_writers(CALLS, JOBS_PER_CALL, move |jobs: Vec<Job>, _| {
            let peer = peer.clone();
            async move { call(&peer, path, jobs).await }
        });
        Self { rule, calls }
    }

    /// The verdict on each of `bodies`, in order, from one answer of the other bank.
    pub async fn check<B: Body>(&self, bodies: &[&B]) -> Vec<Verdict> {
        let (tx, rx) = oneshot::channel();
        let asked = bodies.iter().map(|b| b.tx_no().clone()).collect();
        let entries = match self.calls.send((asked, tx)) {
            Ok(()) => rx.await.unwrap_or_else(|_| Err("the proof task stopped".into())),
            Err(_) => Err("the proof task stopped".into()),
        };
        let now = crate::now_ms();
        bodies
            .iter()
            .map(|b| match &entries {
                Ok(e) => proof::verdict(&self.rule, *b, e.get(b.tx_no()), now),
                Err(e) => Verdict::Unconfirmed(e.clone()),
            })
            .collect()
    }
}

/// One HTTP call for the questions of `jobs`; each gets the whole answer.
async fn call(peer: &Peer, path: &str, jobs: Vec<Job>) {
    let mut tx_nos: Vec<TxNo> = jobs.iter().flat_map(|(asked, _)| asked.iter().cloned()).collect();
    tx_nos.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    tx_nos.dedup();
    let mut entries = HashMap::with_capacity(tx_nos.len());
    let mut failure = None;
    for chunk in tx_nos.chunks(MAX_TX_NOS) {
        let question = ProofRequest { nonce: TxNo::new_random().to_string(), tx_nos: chunk.to_vec() };
        match peer.ask(path, &question).await {
            Ok(answer) => entries.extend(answer.entries.into_iter().map(|e| (e.tx_no.clone(), e))),
            Err(e) => {
                failure = Some(e.to_string());
                break;
            }
        }
    }
    let result = match failure {
        None => Ok(Arc::new(entries)),
        Some(e) => Err(e),
    };
    for (_, reply) in jobs {
        // A consume thread that stopped waiting (shutdown) needs no answer.
        reply.send(result.clone()).ok();
    }
}
