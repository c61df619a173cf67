//! The return of funds, bank1's side: bank2's signed refund notices (consumer group
//! `consumer_group_txmsg_bank1` on `topic_txmsg_refund`), and the reconciler over bank2's
//! rejection feed that recovers lost ones. Both apply a refund the same way
//! ([`store::refund`]): COMMITTED → REFUNDED and the sender credited back, in ONE database
//! transaction, only when the notice's facts match bank1's own row; a duplicate changes
//! nothing, and anything else is quarantined — a refund never mints money.
//!
//! A notice is applied only once bank2's signed answer at [`PROOFS`] says the transfer is
//! `REJECTED` with the notice's facts: bank2 signs a notice before its rejection commits, so a
//! signed notice alone proves nothing ([`common::domain::proof`]). The rejection feed is signed
//! too, every entry covered.

use common::domain::message::RefundNotice;
use common::infra::mq::consumer::Ack;
use common::infra::mq::MessageExt;
use common::service::app::Service;
use common::service::error::Result;
use common::service::feed::{Page, RejectionEntry};
use common::service::inbox::{self, Inbound, Inbox};
use common::service::quarantine::Code;
use common::service::reconcile::{Applied, FeedEntry, Labels, Reconciler};
use sqlx::AnyPool;

use crate::metrics::Metrics;
use crate::store::{self, Facts, Refund, RefundRequest};
use crate::AppState;

/// bank2's query interface: where do these transfers stand?
pub const PROOFS: &str = "/api/rejections/proofs";

/// The refund consumer's handler.
pub struct Refunds {
    /// bank2's public keys and bank1's database.
    pub inbox: Inbox,
    pub metrics: Metrics,
}

impl Inbound for Refunds {
    type Body = RefundNotice;

    fn inbox(&self) -> &Inbox {
        &self.inbox
    }

    async fn apply(&self, msg: &MessageExt, notice: RefundNotice) -> Ack {
        let transfer = Facts {
            tx_no: notice.tx_no.as_str(),
            from_account: notice.from_account.as_str(),
            to_account: notice.to_account.as_str(),
            amount: notice.amount.minor(),
        };
        match apply(&self.inbox.pool, &self.metrics, &RefundRequest { transfer, reason: &notice.reason, source: "MQ" })
            .await
        {
            Ok(Refund::Refunded | Refund::AlreadyRefunded) => Ack::Done,
            Ok(Refund::Conflicting(d)) => inbox::keep(self, msg, Code::ConflictingDuplicate, &d).await,
            Ok(Refund::Unmatched(d)) => inbox::keep(self, msg, Code::Unmatched, &d).await,
            Err(e) => {
                tracing::warn!(tx_no = %notice.tx_no, error = %e, "refund failed; asking for redelivery");
                Ack::Retry
            }
        }
    }
}

/// Applies a refund and logs what it did (WARN: a returned transfer is worth an alert).
async fn apply(pool: &AnyPool, metrics: &Metrics, req: &RefundRequest<'_>) -> sqlx::Result<Refund> {
    let r = store::refund(pool, req).await?;
    metrics.refund(req.source, &r);
    let f = &req.transfer;
    match &r {
        Refund::Refunded => tracing::warn!(
            tx_no = %f.tx_no, amount = %common::domain::money::format_minor(f.amount), from = %f.from_account, reason = %req.reason,
            source = req.source, "transfer REFUNDED: bank2 returned the funds; the sender is credited back"
        ),
        Refund::AlreadyRefunded => {
            tracing::info!(tx_no = %f.tx_no, source = req.source, "duplicate refund: already refunded")
        }
        Refund::Conflicting(d) | Refund::Unmatched(d) => {
            tracing::error!(tx_no = %f.tx_no, detail = %d, "refund not applicable")
        }
    }
    Ok(r)
}

/// bank1's reconciliation of returns: bank2's rejection feed.
impl Reconciler for AppState {
    type Item = RejectionEntry;
    const CURSOR: &'static str = "bank2_rejections";
    const LABELS: Labels = Labels { now: &["refunded"], before: &["already_refunded"] };

    async fn page(&self, after: i64, limit: u32) -> Result<Vec<FeedEntry<RejectionEntry>>> {
        let page: Page<RejectionEntry> = self.shared.peer.feed("/api/rejections", after, limit).await?;
        Ok(page
            .items
            .into_iter()
            .map(|r| FeedEntry { pos: r.feed_pos, tx_no: r.tx_no.clone(), created_at_ms: r.rejected_at_ms, item: r })
            .collect())
    }

    async fn apply(&self, r: &RejectionEntry) -> Applied {
        let amount = match common::domain::money::Amount::parse(&r.amount) {
            Ok(a) => a.minor(),
            Err(e) => return Applied::Settled("unusable", format!("amount {:?}: {e}", r.amount)),
        };
        let transfer = Facts { tx_no: &r.tx_no, from_account: &r.from_account, to_account: &r.to_account, amount };
        match apply(self.pool(), &self.metrics, &RefundRequest { transfer, reason: &r.reason, source: "RECONCILE" })
            .await
        {
            Ok(Refund::Refunded) => Applied::Now("refunded"),
            Ok(Refund::AlreadyRefunded) => Applied::Before("already_refunded"),
            Ok(Refund::Conflicting(d)) => Applied::Settled("conflicting", d),
            Ok(Refund::Unmatched(d)) => Applied::Settled("unmatched", d),
            Err(e) => Applied::Transient(format!("database error: {e}")),
        }
    }
}
