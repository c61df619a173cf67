//! Opening a delivered message, for either bank's consumer: the signature must be the peer
//! bank's, the body must parse and its KEYS name its tx_no. What fails any of these — or,
//! later, contradicts what was applied — is quarantined and acked: it never blocks a queue and
//! never moves money. A bank's consumer is an [`Inbound`]: it only applies what opened.

use std::future::Future;

use crate::domain::message::Body;
use crate::domain::signing::{PeerKeys, SIGNATURE_PROPERTY};
use crate::infra::mq::consumer::{Ack, Handler};
use crate::infra::mq::{self, MessageExt};
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

/// What a consumer opens and quarantines messages with.
#[derive(Clone)]
pub struct Inbox {
    /// The other bank's public keys: only what they sign opens.
    pub peers: PeerKeys,
    /// This bank's database, where the quarantine is.
    pub pool: AnyPool,
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
}

impl<T: Inbound> Handler for T {
    async fn handle(&self, msg: &MessageExt) -> Ack {
        match open::<T::Body>(msg, &self.inbox().peers) {
            Ok(body) => self.apply(msg, body).await,
            Err((code, detail)) => keep(self, msg, code, &detail).await,
        }
    }

    /// Opens every message; tries the ones that opened together ([`Inbound::apply_all`]), and
    /// otherwise one by one. What did not open is quarantined, each on its own.
    async fn handle_batch(&self, msgs: &[&MessageExt]) -> Vec<Ack> {
        let opened: Vec<_> = msgs.iter().map(|m| open::<T::Body>(m, &self.inbox().peers)).collect();
        let batch: Vec<(&MessageExt, &T::Body)> =
            msgs.iter().zip(&opened).filter_map(|(m, o)| o.as_ref().ok().map(|b| (*m, b))).collect();
        let all_applied = !batch.is_empty() && self.apply_all(&batch).await;
        let mut acks = Vec::with_capacity(msgs.len());
        for (msg, opened) in msgs.iter().zip(opened) {
            acks.push(match opened {
                Ok(_) if all_applied => Ack::Done,
                Ok(body) => self.apply(msg, body).await,
                Err((code, detail)) => keep(self, msg, code, &detail).await,
            });
        }
        acks
    }
}

/// Quarantines `msg` for `inbound` (and tells it when the row is written).
pub async fn keep<T: Inbound>(inbound: &T, msg: &MessageExt, code: Code, detail: &str) -> Ack {
    let ack = quarantine(&inbound.inbox().pool, msg, code, detail).await;
    if ack == Ack::Done {
        inbound.quarantined(code);
    }
    ack
}
