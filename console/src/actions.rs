//! The console's forms: each posts here, the console calls the bank's API with its token, and
//! redirects back (303) with what the bank answered, shown once at the top of the page.

use axum::extract::{Path, State};
use axum::response::Redirect;
use axum::Form;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::banks::{Answer, Bank};
use crate::Console;

/// Back to `page`, with the outcome to show.
fn back(page: &str, outcome: Result<String, String>) -> Redirect {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    match outcome {
        Ok(note) => q.append_pair("note", &note),
        Err(error) => q.append_pair("error", &error),
    };
    Redirect::to(&format!("{page}?{}", q.finish()))
}

/// The bank's answer as a note (2xx) or an error naming its status and reason.
fn outcome(
    bank: &Bank,
    what: &str,
    a: anyhow::Result<Answer>,
    ok: impl FnOnce(&Value) -> String,
) -> Result<String, String> {
    match a {
        Ok(a) if a.status.is_success() => Ok(format!("{what}: {}", ok(&a.body))),
        Ok(a) => Err(format!("{what}: {} answered {}: {}", bank.name, a.status, a.message())),
        Err(e) => Err(format!("{what}: {e:#}")),
    }
}

#[derive(Debug, Deserialize)]
pub struct TransferForm {
    from_account: String,
    to_account: String,
    amount: String,
    #[serde(default)]
    idempotency_key: String,
}

/// `POST /transfers`: `POST /api/transfers` at bank1, with the form's Idempotency-Key.
pub async fn send_transfer(State(c): State<Console>, Form(f): Form<TransferForm>) -> Redirect {
    let body =
        json!({"from_account": f.from_account.trim(), "to_account": f.to_account.trim(), "amount": f.amount.trim()});
    let key = Some(f.idempotency_key.trim()).filter(|k| !k.is_empty());
    let a = c.bank1.send(Method::POST, "/api/transfers", Some(&body), key).await;
    let replayed = a.as_ref().is_ok_and(|a| a.replayed);
    let with_key = key.map(|k| format!(" with Idempotency-Key {k}")).unwrap_or_default();
    let what =
        format!("transfer of {} from {} to {}{with_key}", f.amount.trim(), f.from_account.trim(), f.to_account.trim());
    back(
        "/",
        outcome(&c.bank1, &what, a, |b| {
            let again = if replayed { " (a replay: the first request's answer)" } else { "" };
            format!("{} {}{again}", b["tx_no"].as_str().unwrap_or("?"), b["status"].as_str().unwrap_or("?"))
        }),
    )
}

fn bank<'a>(c: &'a Console, name: &str) -> Option<&'a Bank> {
    match name {
        "bank1" => Some(&c.bank1),
        "bank2" => Some(&c.bank2),
        _ => None,
    }
}

#[derive(Debug, Deserialize)]
pub struct FaultForm {
    fault: String,
    #[serde(default)]
    threshold: String,
    switch: String,
}

/// `POST /faults/{bank}`: sets one threshold (`switch=on`) or clears it (`off`).
pub async fn set_fault(State(c): State<Console>, Path(name): Path<String>, Form(f): Form<FaultForm>) -> Redirect {
    let Some(b) = bank(&c, &name) else { return back("/operations", Err(format!("no bank {name}"))) };
    let value = match f.switch.as_str() {
        "on" if f.threshold.trim().is_empty() => {
            return back("/operations", Err(format!("{}: give a threshold", f.fault)))
        }
        "on" => Value::String(f.threshold.trim().to_owned()),
        _ => Value::Null,
    };
    let body = json!({ f.fault.clone(): value });
    let a = b.send(Method::PUT, "/admin/faults", Some(&body), None).await;
    let what = format!("{name} {}", f.fault);
    back(
        "/operations",
        outcome(b, &what, a, |v| v[&f.fault].as_str().map_or("off".to_owned(), |t| format!("on at ≥ {t}"))),
    )
}

/// `POST /consumer/{pause|resume}`: bank2's transfer consumer.
pub async fn consumer(State(c): State<Console>, Path(action): Path<String>) -> Redirect {
    if action != "pause" && action != "resume" {
        return back("/operations", Err(format!("no consumer action {action}")));
    }
    let a = c.bank2.send(Method::POST, &format!("/admin/consumer/{action}"), None, None).await;
    back(
        "/operations",
        outcome(&c.bank2, "bank2's consumer", a, |v| {
            (if v["paused"] == true { "paused" } else { "pulling" }).to_owned()
        }),
    )
}

/// `POST /reconcile/{bank}`: one reconciliation pass now.
pub async fn reconcile(State(c): State<Console>, Path(name): Path<String>) -> Redirect {
    let Some(b) = bank(&c, &name) else { return back("/operations", Err(format!("no bank {name}"))) };
    let a = b.send(Method::POST, "/admin/reconcile", None, None).await;
    back("/operations", outcome(b, &format!("{name} reconciliation"), a, Value::to_string))
}

/// `POST /dlq/redrive`: every dead letter that can be applied now.
pub async fn redrive(State(c): State<Console>) -> Redirect {
    let a = c.bank2.send(Method::POST, "/admin/dlq/redrive", None, None).await;
    back(
        "/operations",
        outcome(&c.bank2, "DLQ redrive", a, |v| {
            format!("{} read, {} credited (each one's outcome is in bank2's log)", v["scanned"], v["credited"])
        }),
    )
}

#[derive(Debug, Deserialize)]
pub struct RefundForm {
    tx_no: String,
}

/// `POST /dlq/refund`: returns one dead letter's funds to bank1.
pub async fn refund(State(c): State<Console>, Form(f): Form<RefundForm>) -> Redirect {
    let a = c.bank2.send(Method::POST, "/admin/dlq/refund", Some(&json!({"tx_no": f.tx_no})), None).await;
    back(
        "/operations",
        outcome(&c.bank2, &format!("refund of {}", f.tx_no), a, |v| {
            format!("{} {}", v["outcome"].as_str().unwrap_or("?"), v["amount"].as_str().unwrap_or(""))
        }),
    )
}
