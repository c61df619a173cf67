//! Opening a delivered message, for either bank's consumer: the signature must be the peer
//! bank's, the body must parse and its KEYS name its tx_no. Then the peer bank is asked, in one
//! question for the whole batch, where each transfer stands (消息校对,
//! [`crate::service::proofs`]): only what its signed answer proves is applied. What fails any
//! of these, or later contradicts what was applied, is quarantined and acked: it never blocks a
//! queue and never moves money. What the peer cannot confirm yet waits on the retry ladder. A
//! bank's consumer is an [`Inbound`]: it only applies what opened and was proven.

use std::future::Future;

use crate::domain::message::Body;
use crate::domain::proof::{Refutation, Verdict};
use crate::domain::signing::{PeerKeys, SIGNATURE_PROPERTY};
use crate::infra::mq::consumer::{Ack, Handler};
use crate::infra::mq::{self, MessageExt};
use crate::service::proofs::Prover;
use crate::service::quarantine::{self, Code, Quarantined};
use sqlx::AnyPool;

/// The message's body of type `T`, if signed by one of `peers` and well-formed; else the
/// quarantine code and why.
pub fn open<T: Body>(msg: &MessageExt, peers: &PeerKeys) -> Result<T, (Code, String)> {
    let body = msg.body().map(|b| b.to_vec()).unwrap_or_default();
    peers
        .verify(&body, mq::property(msg, SIGNATURE_PROPERTY).as_deref())
        .map_err(|e| (Code::BadSignature, e.to_string()))?;
    T::parse_keyed(&body, &mq::keys(msg)).map_err(|e| (Code::Malformed, e.to_string()))
}

/// Quarantines `msg` (once) and acks it; asks for redelivery only when the row cannot be
/// written.
pub async fn quarantine(pool: &AnyPool, msg: &MessageExt, code: Code, detail: &str) -> Ack {
    let q = Quarantined::of(msg, code, detail);
    tracing::warn!(msg_id = %q.msg_id, keys = ?q.tx_no, reason = %q.reason, "quarantined: this message never moves money");
    match quarantine::put(pool, &q).await {
        Ok(()) => Ack::Done,
        Err(e) => {
            tracing::error!(error = %e, "could not quarantine; the broker will redeliver");
            Ack::Retry
        }
    }
}

/// What a consumer opens, proves and quarantines messages with.
#[derive(Clone)]
pub struct Inbox {
    /// The other bank's public keys: only what they sign opens.
    pub peers: PeerKeys,
    /// This bank's database, where the quarantine is.
    pub pool: AnyPool,
    /// Asks the other bank where the transfers stand.
    pub prover: Prover,
    /// The quarantine code of a message the other bank's answer refutes.
    pub refuted: Code,
}

/// What becomes of one delivered message.
enum Step<B> {
    Apply(B),
    Keep(Code, String),
    Wait(B, String),
}

/// A bank's consumer of the other bank's messages.
pub trait Inbound: Send + Sync + 'static {
    type Body: Body + Send + Sync;
    fn inbox(&self) -> &Inbox;
    /// Applies a message that opened (signed by the peer, well-formed).
    fn apply(&self, msg: &MessageExt, body: Self::Body) -> impl Future<Output = Ack> + Send;
    /// Applies several opened messages at once, all or none: true when every one was applied
    /// as [`Inbound::apply`] would have applied it alone; false when none was, and each then
    /// goes through `apply`. The default applies none.
    fn apply_all(&self, _batch: &[(&MessageExt, &Self::Body)]) -> impl Future<Output = bool> + Send {
        async { false }
    }
    /// Told of every message quarantined (for metrics).
    fn quarantined(&self, _code: Code) {}
    /// A message the peer bank cannot confirm yet: by default, logged and redelivered later.
    fn unconfirmed(&self, msg: &MessageExt, body: &Self::Body, detail: &str) -> impl Future<Output = Ack> + Send {
        let (tx_no, reconsume_times) = (body.tx_no().to_string(), msg.reconsume_times());
        let detail = detail.to_owned();
        async move {
            tracing::warn!(%tx_no, reconsume_times, %detail, "not proven yet: asking for redelivery");
            Ack::Retry
        }
    }
}

impl<T: Inbound> Handler for T {
    async fn handle(&self, msg: &MessageExt) -> Ack {
        self.handle_batch(&[msg]).await.pop().unwrap_or(Ack::Retry)
    }

    /// Opens every message and proves the ones that opened, with one question; tries the
    /// proven ones together ([`Inbound::apply_all`]), and otherwise one by one. What did not
    /// open, or was refuted, is quarantined; what is unconfirmed waits.
    async fn handle_batch(&self, msgs: &[&MessageExt]) -> Vec<Ack> {
        let steps = steps(self.inbox(), msgs).await;
        let batch: Vec<(&MessageExt, &T::Body)> = msgs
            .iter()
            .zip(&steps)
            .filter_map(|(m, s)| match s {
                Step::Apply(b) => Some((*m, b)),
                _ => None,
            })
            .collect();
        let all_applied = !batch.is_empty() && self.apply_all(&batch).await;
        let mut acks = Vec::with_capacity(msgs.len());
        for (msg, step) in msgs.iter().zip(steps) {
            acks.push(match step {
                Step::Apply(_) if all_applied => Ack::Done,
                Step::Apply(body) => self.apply(msg, body).await,
                Step::Keep(code, detail) => keep(self, msg, code, &detail).await,
                Step::Wait(body, detail) => self.unconfirmed(msg, &body, &detail).await,
            });
        }
        acks
    }
}

/// Opens each message, then asks the peer about those that opened (one question).
async fn steps<B: Body + Send + Sync>(inbox: &Inbox, msgs: &[&MessageExt]) -> Vec<Step<B>> {
    let opened: Vec<Result<B, (Code, String)>> = msgs.iter().map(|m| open::<B>(m, &inbox.peers)).collect();
    let bodies: Vec<&B> = opened.iter().filter_map(|o| o.as_ref().ok()).collect();
    let verdicts = if bodies.is_empty() { Vec::new() } else { inbox.prover.check(&bodies).await };
    let mut verdicts = verdicts.into_iter();
    opened
        .into_iter()
        .map(|o| match o {
            Err((code, detail)) => Step::Keep(code, detail),
            Ok(body) => match verdicts.next() {
                Some(Verdict::Proven) => Step::Apply(body),
                Some(Verdict::Refuted(Refutation::OtherFacts, d)) => Step::Keep(Code::ConflictingDuplicate, d),
                Some(Verdict::Refuted(Refutation::NotInState, d)) => Step::Keep(inbox.refuted, d),
                Some(Verdict::Unconfirmed(d)) => Step::Wait(body, d),
                None => Step::Wait(body, "no verdict".into()),
            },
        })
        .collect()
}

/// Quarantines `msg` for `inbound` (and tells it when the row is written).
pub async fn keep<T: Inbound>(inbound: &T, msg: &MessageExt, code: Code, detail: &str) -> Ack {
    let ack = quarantine(&inbound.inbox().pool, msg, code, detail).await;
    if ack == Ack::Done {
        inbound.quarantined(code);
    }
    ack
}
