//! The console's pages, server-rendered: the overview (`/`: conservation, accounts, the
//! transfer form and list), one transfer's timeline (`/transfers/{tx_no}`) and the operations
//! page (`/operations`: faults, consumer, reconciliation, DLQ, quarantine). The parts marked
//! `data-live` are re-fetched from `/live/...` every two seconds ([`crate::assets`]).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use common::domain::money::format_minor;
use futures::future::join_all;
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;

use crate::banks::{Consumer, Credit, DeadLetters, Ledger, Quarantine, Timeline, Transfer, TransferList};
use crate::timeline::{self, Entry};
use crate::Console;

/// Transfers on one page of the list.
const PAGE: usize = 25;
/// The statuses bank1's list filters on.
const STATUSES: [&str; 3] = ["COMMITTED", "ROLLED_BACK", "REFUNDED"];

fn layout(title: &str, active: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · bank-transfer console" }
                link rel="stylesheet" href="/assets/console.css";
                script src="/assets/console.js" defer {}
            }
            body {
                header {
                    strong { "bank-transfer" }
                    span.sub { "bank1 → RocketMQ → bank2, reliable messages" }
                    span #updated.sub {}
                    nav {
                        a href="/" class=[(active == "overview").then_some("on")] { "Overview" }
                        a href="/operations" class=[(active == "operations").then_some("on")] { "Operations" }
                    }
                }
                main { (body) }
            }
        }
    }
}

fn time(ms: i64) -> String {
    common::format_ms(ms)
}

fn problem(what: &str, e: &anyhow::Error) -> Markup {
    html! { p.error { (what) ": " (format!("{e:#}")) } }
}

fn notice(note: &Option<String>, error: &Option<String>) -> Markup {
    html! {
        @if let Some(n) = note { p.note #note { (n) } }
        @if let Some(e) = error { p.error #error { (e) } }
    }
}

/// Query of `/` and `/live/transfers`.
#[derive(Debug, Default, Deserialize)]
pub struct OverviewQuery {
    /// Filter on bank1's status.
    pub status: Option<String>,
    /// The list page: transfers older than this seq.
    pub before: Option<i64>,
    /// What the last action did (shown once).
    pub note: Option<String>,
    pub error: Option<String>,
}

impl OverviewQuery {
    fn status(&self) -> Option<&'static str> {
        STATUSES.into_iter().find(|s| self.status.as_deref() == Some(*s))
    }

    fn live_url(&self) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        if let Some(s) = self.status() {
            q.append_pair("status", s);
        }
        if let Some(b) = self.before {
            q.append_pair("before", &b.to_string());
        }
        format!("/live/transfers?{}", q.finish())
    }
}

pub async fn overview(State(c): State<Console>, Query(q): Query<OverviewQuery>) -> Markup {
    let (money, list) = tokio::join!(money_parts(&c), list_parts(&c, &q));
    let key = uuid::Uuid::new_v4();
    layout(
        "Overview",
        "overview",
        html! {
            (notice(&q.note, &q.error))
            section.money {
                h2 { "Money" }
                div #money data-live="/live/money" { (money) }
            }
            section.send {
                h2 { "Send a transfer" }
                form #transfer-form method="post" action="/transfers" {
                    label { "From (bank1) " input name="from_account" value="1" required size="6"; }
                    label { "To (bank2) " input name="to_account" value="2" required size="6"; }
                    label { "Amount " input name="amount" placeholder="100.00" required size="10" inputmode="decimal"; }
                    label.key { "Idempotency-Key " input name="idempotency_key" value=(key) size="38"; }
                    button type="submit" { "Send" }
                }
                p.hint { "bank1 debits the sender and publishes the transfer as one transactional message; \
                    the same Idempotency-Key sent again answers the first result and never debits twice." }
            }
            section.transfers {
                h2 { "Transfers" span.sub { "newest first" } }
                form.filter method="get" action="/" {
                    label { "Status at bank1 "
                        select name="status" onchange="this.form.submit()" {
                            option value="" selected[q.status().is_none()] { "all" }
                            @for s in STATUSES { option value=(s) selected[q.status() == Some(s)] { (s) } }
                        }
                    }
                    noscript { button { "Filter" } }
                }
                div #transfers data-live=(q.live_url()) { (list) }
            }
        },
    )
}

/// `/live/money`: the conservation sum and both banks' accounts.
pub async fn money_live(State(c): State<Console>) -> Markup {
    money_parts(&c).await
}

/// `/live/transfers`: the transfer list.
pub async fn transfers_live(State(c): State<Console>, Query(q): Query<OverviewQuery>) -> Markup {
    list_parts(&c, &q).await
}

async fn money_parts(c: &Console) -> Markup {
    let (l1, l2) = tokio::join!(
        c.bank1.get::<Ledger>("/admin/accounts?limit=20"),
        c.bank2.get::<Ledger>("/admin/accounts?limit=20")
    );
    html! {
        (conservation(&l1, &l2))
        div.banks {
            (accounts("bank1", &l1))
            (accounts("bank2", &l2))
        }
    }
}

async fn list_parts(c: &Console, q: &OverviewQuery) -> Markup {
    let mut path = format!("/admin/transfers?limit={PAGE}");
    if let Some(s) = q.status() {
        path.push_str(&format!("&status={s}"));
    }
    if let Some(b) = q.before {
        path.push_str(&format!("&before={b}"));
    }
    let list = c.bank1.get::<TransferList>(&path).await;
    let credits = match &list {
        Ok(l) => join_all(l.items.iter().map(|t| credit_of(c, t))).await,
        Err(_) => Vec::new(),
    };
    html! {
        @match &list {
            Err(e) => (problem("bank1's transfer list", e)),
            Ok(l) if l.items.is_empty() => p.empty { "No transfers yet." },
            Ok(l) => {
                table #transfer-list {
                    thead { tr { th { "Accepted" } th { "tx_no" } th { "From → to" } th.num { "Amount" }
                        th { "bank1" } th { "bank2" } th.num { "Debit → credit" } } }
                    tbody {
                        @for (t, cr) in l.items.iter().zip(&credits) { (transfer_row(t, cr)) }
                    }
                }
                @if let Some(b) = l.next_before {
                    p { a href=(format!("/?before={b}{}", q.status().map(|s| format!("&status={s}")).unwrap_or_default())) { "Older →" } }
                }
            }
        }
    }
}

/// bank2's side of a transfer in the list; none for transfers that never left bank1.
async fn credit_of(c: &Console, t: &Transfer) -> Option<anyhow::Result<Credit>> {
    if t.status == "ROLLED_BACK" {
        return None;
    }
    Some(c.bank2.get::<Credit>(&format!("/api/credits/{}", t.tx_no)).await)
}

fn transfer_row(t: &Transfer, credit: &Option<anyhow::Result<Credit>>) -> Markup {
    let (outcome, latency) = match credit {
        None => ("—".to_owned(), None),
        Some(Err(_)) => ("unavailable".to_owned(), None),
        Some(Ok(c)) => {
            let tries = if c.attempts.is_empty() { String::new() } else { format!(" ({} failed)", c.attempts.len()) };
            let latency = match (t.committed_at_ms, c.credited_at_ms) {
                (Some(d), Some(cr)) => Some(format!("{} ms", cr - d)),
                _ => None,
            };
            (format!("{}{tries}", c.outcome), latency)
        }
    };
    let bank2 = credit.as_ref().and_then(|c| c.as_ref().ok()).map_or("", |c| c.outcome.as_str());
    html! {
        tr data-tx=(t.tx_no) data-status=(t.status) data-outcome=(bank2) {
            td { (time(t.created_at_ms)) }
            td.mono { a href=(format!("/transfers/{}", t.tx_no)) { (t.tx_no) } }
            td { (t.from_account) " → " (t.to_account) }
            td.num { (t.amount) }
            td { span class=(format!("tag {}", t.status.to_lowercase())) { (t.status) }
                @if let Some(r) = &t.reason { br; small { (r) } } }
            td { span class=(format!("tag {}", bank2.to_lowercase())) { (outcome) } }
            td.num { (latency.unwrap_or_default()) }
        }
    }
}

fn conservation(l1: &anyhow::Result<Ledger>, l2: &anyhow::Result<Ledger>) -> Markup {
    let (Ok(a), Ok(b)) = (l1, l2) else {
        return html! { p.error #conservation { "The conservation total needs both banks: one does not answer." } };
    };
    let in_flight = a.flow.total_minor - b.flow.total_minor;
    let total = a.balance_total_minor + b.balance_total_minor + in_flight;
    html! {
        table #conservation.sum {
            tr { td { "bank1 balances (accounts: " (a.account_count) ")" } td.num { (format_minor(a.balance_total_minor)) } }
            tr { td { "bank2 balances (accounts: " (b.account_count) ")" } td.num { (format_minor(b.balance_total_minor)) } }
            tr { td { "in flight: debited at bank1, not yet credited or returned "
                    small { "(bank1 " (a.flow.name) " " (format_minor(a.flow.total_minor)) " − bank2 " (b.flow.name) " "
                        (format_minor(b.flow.total_minor)) ")" } }
                td.num #in-flight { (format_minor(in_flight)) } }
            tr.total { td { "Total (never changes)" } td.num #total { (format_minor(total)) } }
        }
    }
}

fn accounts(bank: &str, l: &anyhow::Result<Ledger>) -> Markup {
    html! {
        div.bank {
            h3 { (bank) }
            @match l {
                Err(e) => (problem(bank, e)),
                Ok(l) => table.accounts data-bank=(bank) {
                    thead { tr { th { "Account" } th { "Name" } th.num { "Balance" } th { "" } } }
                    tbody {
                        @for a in &l.accounts {
                            tr data-account=(a.account_no) { td { (a.account_no) } td { (a.account_name) }
                                td.num.balance { (a.balance) } td { @if a.status != "OPEN" { span.tag { (a.status) } } } }
                        }
                        @if l.account_count > l.accounts.len() as i64 {
                            tr { td colspan="4" { small { "… and " (l.account_count - l.accounts.len() as i64) " more" } } }
                        }
                    }
                }
            }
        }
    }
}

pub async fn transfer(State(c): State<Console>, Path(tx_no): Path<String>, Query(q): Query<OverviewQuery>) -> Response {
    let (status, live) = transfer_parts(&c, &tx_no).await;
    let page = layout(
        &format!("Transfer {tx_no}"),
        "overview",
        html! {
            (notice(&q.note, &q.error))
            h2 { "Transfer " span.mono { (tx_no) } }
            div #live data-live=(format!("/live/transfers/{tx_no}")) { (live) }
            p { a href="/" { "← all transfers" } }
        },
    );
    (status, page).into_response()
}

pub async fn transfer_live(State(c): State<Console>, Path(tx_no): Path<String>) -> Response {
    let (status, live) = transfer_parts(&c, &tx_no).await;
    (status, live).into_response()
}

async fn transfer_parts(c: &Console, tx_no: &str) -> (StatusCode, Markup) {
    if uuid::Uuid::try_parse(tx_no).is_err() {
        return (StatusCode::BAD_REQUEST, html! { p.error { "Not a transfer number." } });
    }
    let (status, steps, credit) = (
        format!("/api/transfers/{tx_no}"),
        format!("/api/transfers/{tx_no}/timeline"),
        format!("/api/credits/{tx_no}"),
    );
    let (t, b1, b2) = tokio::join!(
        c.bank1.find::<Transfer>(&status),
        c.bank1.find::<Timeline>(&steps),
        c.bank2.get::<Credit>(&credit)
    );
    let (t, b1) = match (t, b1) {
        (Ok(Some(t)), Ok(Some(b1))) => (t, b1),
        (Ok(None), _) | (_, Ok(None)) => {
            return (StatusCode::NOT_FOUND, html! { p.error { "bank1 has no transfer " (tx_no) "." } })
        }
        (Err(e), _) | (_, Err(e)) => return (StatusCode::BAD_GATEWAY, problem("bank1", &e)),
    };
    let entries = timeline::merge(&b1, b2.as_ref().ok());
    let start = entries.first().map_or(0, |e| e.at_ms);
    let html = html! {
        table.facts {
            tr { th { "From → to" } td { (t.from_account) " (bank1) → " (t.to_account) " (bank2)" } }
            tr { th { "Amount" } td { (t.amount) } }
            tr { th { "At bank1" } td { span class=(format!("tag {}", b1.status.to_lowercase())) #bank1-status { (b1.status) }
                @if let Some(r) = &t.reason { " " small { (r) } } } }
            tr { th { "At bank2" } td {
                @match &b2 {
                    Ok(c) => span class=(format!("tag {}", c.outcome.to_lowercase())) #bank2-outcome { (c.outcome) },
                    Err(e) => (problem("bank2", e)),
                }
            } }
        }
        h3 { "Timeline" }
        ol #timeline.timeline {
            @for e in &entries { (step(e, start)) }
        }
    };
    (StatusCode::OK, html)
}

fn step(e: &Entry, start: i64) -> Markup {
    html! {
        li data-step=(e.step) class=(e.side.name()) {
            span.when { (time(e.at_ms)) " " small { "+" (e.at_ms - start) " ms" } }
            span.side { (e.side.name()) }
            span.what { (e.title) }
            @if let Some(d) = &e.detail { span.detail { (d) } }
        }
    }
}

/// Query of `/operations`.
#[derive(Debug, Default, Deserialize)]
pub struct NoteQuery {
    pub note: Option<String>,
    pub error: Option<String>,
}

pub async fn operations(State(c): State<Console>, Query(q): Query<NoteQuery>) -> Markup {
    let (f1, f2, consumer, dlq, q1, q2) = tokio::join!(
        c.bank1.get::<serde_json::Map<String, serde_json::Value>>("/admin/faults"),
        c.bank2.get::<serde_json::Map<String, serde_json::Value>>("/admin/faults"),
        c.bank2.get::<Consumer>("/admin/consumer"),
        c.bank2.get::<DeadLetters>("/admin/dlq?limit=200"),
        c.bank1.get::<Quarantine>("/api/quarantine"),
        c.bank2.get::<Quarantine>("/api/quarantine"),
    );
    layout(
        "Operations",
        "operations",
        html! {
            (notice(&q.note, &q.error))
            section {
                h2 { "Fault switches" }
                p.hint { "Each fault fires for amounts at or above its threshold; off when empty." }
                div.banks { (faults("bank1", &f1)) (faults("bank2", &f2)) }
            }
            section {
                h2 { "bank2's consumer and reconciliation" }
                @match &consumer {
                    Ok(s) => p #consumer { "Consumer: " strong { (if s.paused { "paused (messages wait at the broker)" } else { "pulling" }) } " "
                        form.inline method="post" action=(if s.paused { "/consumer/resume" } else { "/consumer/pause" }) {
                            button { (if s.paused { "Resume" } else { "Pause" }) } } },
                    Err(e) => (problem("bank2's consumer", e)),
                }
                p { "Reconcile now: "
                    form.inline method="post" action="/reconcile/bank2" { button { "bank2 from bank1's feed" } }
                    " "
                    form.inline method="post" action="/reconcile/bank1" { button { "bank1 from bank2's rejections" } } }
            }
            section #dlq {
                h2 { "Dead-letter queue" }
                @match &dlq {
                    Err(e) => (problem("bank2's DLQ", e)),
                    Ok(d) => {
                        p { span.mono { (d.dlq) } ": " (d.total) " dead letters, " strong #dlq-pending { (d.pending) } " neither credited nor returned. "
                            form.inline method="post" action="/dlq/redrive" { button { "Redrive all" } }
                            @if let Some(t) = &d.truncated { " " span.error { "(read incomplete: " (t) ")" } } }
                        @if !d.items.is_empty() {
                            table {
                                thead { tr { th { "Dead since" } th { "tx_no" } th { "From → to" } th.num { "Amount" }
                                    th.num { "Deliveries" } th { "Now" } th { "" } } }
                                tbody { @for m in &d.items {
                                    tr data-tx=[m.tx_no.as_deref()] {
                                        td { (m.dead_at) }
                                        td.mono { @match &m.tx_no { Some(t) => a href=(format!("/transfers/{t}")) { (t) }, None => { "unparseable " (m.msg_id) } } }
                                        td { (m.from_account.as_deref().unwrap_or("")) " → " (m.to_account.as_deref().unwrap_or("")) }
                                        td.num { (m.amount.as_deref().unwrap_or("")) }
                                        td.num { (m.reconsume_times) }
                                        td { (m.applied.as_deref().unwrap_or("quarantined")) }
                                        td { @if let (Some(t), Some("PENDING")) = (&m.tx_no, m.applied.as_deref()) {
                                            form.inline method="post" action="/dlq/refund" {
                                                input type="hidden" name="tx_no" value=(t);
                                                button { "Refund to sender" } } } }
                                    }
                                } }
                            }
                        }
                    }
                }
            }
            section {
                h2 { "Quarantine" }
                p.hint { "Delivered messages that must never move money (bad signature, malformed, conflicting): acknowledged and kept here." }
                div.banks { (quarantine("bank1", &q1)) (quarantine("bank2", &q2)) }
            }
        },
    )
}

fn faults(bank: &str, f: &anyhow::Result<serde_json::Map<String, serde_json::Value>>) -> Markup {
    html! {
        div.bank {
            h3 { (bank) }
            @match f {
                Err(e) => (problem(bank, e)),
                Ok(f) => table.faults data-bank=(bank) { tbody { @for (name, v) in f {
                    tr data-fault=(name) {
                        td.mono { (name) }
                        td { @match v.as_str() { Some(t) => span.tag.on { "on ≥ " (t) }, None => span.tag { "off" } } }
                        td { form.inline method="post" action=(format!("/faults/{bank}")) {
                            input type="hidden" name="fault" value=(name);
                            input name="threshold" size="8" placeholder="amount" value=(v.as_str().unwrap_or(""));
                            button name="switch" value="on" { "On" }
                            button name="switch" value="off" { "Off" }
                        } }
                    }
                } } },
            }
        }
    }
}

fn quarantine(bank: &str, q: &anyhow::Result<Quarantine>) -> Markup {
    html! {
        div.bank {
            h3 { (bank) }
            @match q {
                Err(e) => (problem(bank, e)),
                Ok(q) if q.items.is_empty() => p.empty { "Nothing quarantined." },
                Ok(q) => table { thead { tr { th { "At" } th { "Code" } th { "tx_no" } th { "Reason" } } }
                    tbody { @for i in q.items.iter().take(100) {
                        tr { td { (i.at) } td { span.tag { (i.code) } } td.mono { (i.tx_no.as_deref().unwrap_or("")) }
                            td { (i.reason) br; small.mono { (i.msg_id) } } }
                    } } },
            }
        }
    }
}

pub async fn not_found() -> (StatusCode, Html<String>) {
    let page = layout("Not found", "", html! { p.error { "No such page." } p { a href="/" { "Overview" } } });
    (StatusCode::NOT_FOUND, Html(page.into_string()))
}
