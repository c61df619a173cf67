//! Proofs (消息校对): a bank moves money on a message only once the *other* bank, asked through
//! its query interface (校对接口), has said in a signed answer that the transfer stands as the
//! message claims. A signature on a message says who wrote it, not that its transfer committed:
//! bank1 signs a half message before its local transaction runs, and the broker keeps that half
//! message readable. So bank2 credits only what bank1's answer calls `COMMITTED` (or since
//! `REFUNDED`) with the message's facts, and bank1 refunds only what bank2's answer calls
//! `REJECTED` with them (docs/ARCHITECTURE.md, "Trust").
//!
//! An answer is one JSON document signed as a whole with the answering bank's Ed25519 key, its
//! signature in the [`SIGNATURE_HEADER`] of the HTTP answer, over the exact body bytes. It
//! echoes the asker's nonce (so an old answer cannot stand in for a new one) and says when it
//! was signed. The feeds are signed the same way.
//!
//! What an answer proves is decided here ([`verdict`]), pure, for both directions.

use serde::{Deserialize, Serialize};

use crate::domain::ids::{AccountNo, TxNo};
use crate::domain::message::Body;
use crate::domain::money::Amount;

/// The HTTP header that carries a bank's signature over an answer's body
/// (`v1:<key id>:<base64>`, as a message's `SIGNATURE` property).
pub const SIGNATURE_HEADER: &str = "bank-signature";
/// Most tx_nos one question may name.
pub const MAX_TX_NOS: usize = 1000;

/// A question to the other bank: where do these transfers stand?
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProofRequest {
    /// Chosen by the asker and echoed in the signed answer (8-64 visible ASCII characters).
    pub nonce: String,
    /// The transfers asked about (1 to 1000).
    #[schema(value_type = Vec<String>)]
    pub tx_nos: Vec<TxNo>,
}

/// Where one transfer stands at the answering bank, with its facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProofEntry {
    #[schema(value_type = String)]
    pub tx_no: TxNo,
    /// bank1: `COMMITTED`, `ROLLED_BACK` or `REFUNDED`; bank2: `CREDITED` or `REJECTED`.
    pub status: String,
    #[schema(value_type = String)]
    pub from_account: AccountNo,
    #[schema(value_type = String)]
    pub to_account: AccountNo,
    #[schema(value_type = String)]
    pub amount: Amount,
}

impl ProofEntry {
    /// An entry from a bank's stored row (`None` if the row does not parse, which a bank's own
    /// rows always do).
    pub fn of_row(tx_no: &str, status: &str, from: &str, to: &str, amount_minor: i64) -> Option<Self> {
        Some(Self {
            tx_no: TxNo::parse(tx_no).ok()?,
            status: status.to_owned(),
            from_account: AccountNo::parse(from).ok()?,
            to_account: AccountNo::parse(to).ok()?,
            amount: Amount::from_minor(amount_minor)?,
        })
    }
}

/// The signed answer: an entry for each tx_no the bank has (none for one it never saw).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProofAnswer {
    /// `bank1` or `bank2`: who answers.
    pub bank: String,
    /// The question's nonce.
    pub nonce: String,
    /// When the answer was signed (ms since the epoch).
    pub signed_at_ms: i64,
    pub entries: Vec<ProofEntry>,
}

/// What a message is worth once the other bank has answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The other bank's answer stands behind the message: apply it.
    Proven,
    /// The other bank's answer contradicts the message: it never moves money.
    Refuted(Refutation, String),
    /// No answer that settles it yet (the bank is down, or does not know the transfer yet):
    /// wait, and ask again.
    Unconfirmed(String),
}

/// How an answer contradicts a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refutation {
    /// The transfer is not in the state the message needs (rolled back, credited, or unknown
    /// past the horizon).
    NotInState,
    /// The transfer exists with other facts (accounts, amount).
    OtherFacts,
}

/// What a receiving bank needs of the other bank's answer.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// Who answers (`bank1`), for the texts.
    pub peer: &'static str,
    /// The statuses that stand behind a message.
    pub proven: &'static [&'static str],
    /// A transfer the peer does not know is settled as not there once its message is this old
    /// (ms): a genuine message is published only after its transaction committed, so only a
    /// replayed half message can name a transfer the peer does not have, and by then its fate
    /// is decided (the check-back's tombstone).
    pub horizon_ms: i64,
}

/// The verdict on `body` given the peer's entry for its tx_no (`None`: none in the answer).
pub fn verdict<B: Body>(rule: &Rule, body: &B, entry: Option<&ProofEntry>, now_ms: i64) -> Verdict {
    let Some(e) = entry else {
        let age = now_ms - body.written_at_ms();
        return if age >= rule.horizon_ms {
            Verdict::Refuted(Refutation::NotInState, format!("{} has no transfer {}", rule.peer, body.tx_no()))
        } else {
            Verdict::Unconfirmed(format!("{} does not know transfer {} yet", rule.peer, body.tx_no()))
        };
    };
    let (tx_no, from, to, amount) = body.facts();
    if &e.tx_no != tx_no || &e.from_account != from || &e.to_account != to || e.amount != amount {
        return Verdict::Refuted(
            Refutation::OtherFacts,
            format!(
                "{} has transfer {} as {} -> {}, {}; the message says {from} -> {to}, {amount}",
                rule.peer, e.tx_no, e.from_account, e.to_account, e.amount
            ),
        );
    }
    if rule.proven.contains(&e.status.as_str()) {
        Verdict::Proven
    } else {
        Verdict::Refuted(Refutation::NotInState, format!("{} says transfer {} is {}", rule.peer, e.tx_no, e.status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::message::{TransferMessage, MESSAGE_VERSION};

    const RULE: Rule = Rule { peer: "bank1", proven: &["COMMITTED", "REFUNDED"], horizon_ms: 60_000 };

    fn message(amount: &str) -> TransferMessage {
        TransferMessage {
            version: MESSAGE_VERSION,
            tx_no: TxNo::parse("6f1c2c1e-8a39-4c55-9d6c-3a1f3f0e2b11").unwrap(),
            from_account: AccountNo::parse("1").unwrap(),
            to_account: AccountNo::parse("2").unwrap(),
            amount: Amount::parse(amount).unwrap(),
            created_at_ms: 1_000,
        }
    }

    fn entry(status: &str, amount: &str) -> ProofEntry {
        let m = message(amount);
        ProofEntry {
            tx_no: m.tx_no,
            status: status.into(),
            from_account: m.from_account,
            to_account: m.to_account,
            amount: m.amount,
        }
    }

    #[test]
    fn a_committed_entry_with_the_same_facts_proves() {
        assert_eq!(verdict(&RULE, &message("5.00"), Some(&entry("COMMITTED", "5.00")), 2_000), Verdict::Proven);
        assert_eq!(verdict(&RULE, &message("5.00"), Some(&entry("REFUNDED", "5.00")), 2_000), Verdict::Proven);
    }

    #[test]
    fn a_rolled_back_entry_or_other_facts_refute() {
        let v = verdict(&RULE, &message("5.00"), Some(&entry("ROLLED_BACK", "5.00")), 2_000);
        assert!(matches!(v, Verdict::Refuted(Refutation::NotInState, ref d) if d.contains("ROLLED_BACK")), "{v:?}");
        let v = verdict(&RULE, &message("500.00"), Some(&entry("COMMITTED", "5.00")), 2_000);
        assert!(matches!(v, Verdict::Refuted(Refutation::OtherFacts, ref d) if d.contains("500.00")), "{v:?}");
    }

    #[test]
    fn an_unknown_transfer_waits_until_the_horizon_then_is_refuted() {
        let m = message("5.00");
        assert!(matches!(verdict(&RULE, &m, None, 1_000 + 59_999), Verdict::Unconfirmed(_)));
        assert!(matches!(verdict(&RULE, &m, None, 1_000 + 60_000), Verdict::Refuted(Refutation::NotInState, _)));
    }
}
