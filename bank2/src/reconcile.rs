//! bank2's reconciliation ("定期校对"): bank1's feed of committed transfers, applied through
//! the one credit path with the same fault checks, once older than the grace period (younger
//! ones are left to the message path). An entry bank2 can never credit is rejected (its funds
//! go back); one that fails for now is parked with backoff; the cursor never stops at either
//! (see [`common::reconcile`]).

use common::domain::transfer::Status;
use common::service::error::{Error, Result};
use common::service::reconcile::{Applied, FeedEntry, Labels, Reconciler};

use crate::bank1_client::Bank1Transfer;
use crate::credit::Outcome;
use crate::store::Source;
use crate::AppState;

impl Reconciler for AppState {
    type Item = Bank1Transfer;
    const CURSOR: &'static str = "bank1_feed";
    const LABELS: Labels = Labels { now: &["credited", "rejected"], before: &["already_credited", "already_rejected"] };

    async fn page(&self, after: i64, limit: u32) -> Result<Vec<FeedEntry<Bank1Transfer>>> {
        let page = self.bank1.feed(after, limit).await?;
        page.items
            .into_iter()
            .map(|t| match t.feed_pos {
                Some(pos) => Ok(FeedEntry { pos, tx_no: t.tx_no.clone(), created_at_ms: t.created_at_ms, item: t }),
                None => Err(Error::Unavailable(format!("bank1's feed entry {} has no position", t.tx_no))),
            })
            .collect()
    }

    async fn apply(&self, t: &Bank1Transfer) -> Applied {
        if !t.is_committed() {
            // REFUNDED: bank2 rejected it (that is the only way back). Anything else never moved.
            return if t.status == Status::Refunded {
                Applied::Before("already_rejected")
            } else {
                Applied::Settled("not_committed", format!("bank1 status {}", t.status.as_str()))
            };
        }
        let msg = match t.to_message() {
            Ok(m) => m,
            Err(e) => return Applied::Transient(format!("unusable feed entry: {e}")),
        };
        match self.credits.apply(&msg, Source::Reconcile).await {
            Outcome::Credited => {
                tracing::info!(tx_no = %msg.tx_no, amount = %msg.amount, "reconciled: credited a transfer the messages missed");
                Applied::Now("credited")
            }
            Outcome::Rejected(_) => Applied::Now("rejected"),
            Outcome::AlreadyCredited => Applied::Before("already_credited"),
            Outcome::AlreadyRejected => Applied::Before("already_rejected"),
            Outcome::Conflicting(detail) => {
                tracing::error!(tx_no = %msg.tx_no, %detail, "bank1's record contradicts what bank2 applied");
                Applied::Settled("conflicting", detail)
            }
            Outcome::Failed(error) => Applied::Transient(error),
        }
    }
}
