//! A small HTTP client for the banks' APIs, as their users see them: what the tests, the bench
//! and the chaos runner call. Replies come back as (status, JSON); operator calls carry the
//! bank's admin token.

use anyhow::Context;
use common::infra::token::Token;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// One bank's API.
#[derive(Clone, Debug)]
pub struct BankApi {
    http: reqwest::Client,
    url: String,
    admin: Option<Token>,
}

impl BankApi {
    pub fn new(http: reqwest::Client, url: &str, admin: Option<Token>) -> Self {
        Self { http, url: url.trim_end_matches('/').to_owned(), admin }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// A request to `path`; `admin` adds the operator token.
    pub fn request(&self, method: Method, path: &str, admin: bool) -> reqwest::RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.url));
        match (&self.admin, admin) {
            (Some(t), true) => req.bearer_auth(t.expose()),
            _ => req,
        }
    }

    /// Sends and reads the reply as JSON (`null` when it is not JSON).
    pub async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<(StatusCode, Value)> {
        let r = req.send().await.context("sending a request")?;
        let status = r.status();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<(StatusCode, Value)> {
        self.send(self.request(Method::GET, path, false)).await
    }

    /// An operator call (`/admin/*`) with an optional JSON body.
    pub async fn admin(&self, method: Method, path: &str, body: Option<&Value>) -> anyhow::Result<(StatusCode, Value)> {
        let mut req = self.request(method, path, true);
        if let Some(b) = body {
            req = req.json(b);
        }
        self.send(req).await
    }

    /// `POST /api/transfers` (bank1), with an Idempotency-Key if given.
    pub async fn transfer(&self, body: &Value, idempotency_key: Option<&str>) -> anyhow::Result<(StatusCode, Value)> {
        let mut req = self.request(Method::POST, "/api/transfers", false).json(body);
        if let Some(k) = idempotency_key {
            req = req.header("Idempotency-Key", k);
        }
        self.send(req).await
    }

    /// An account's balance in minor units.
    pub async fn balance(&self, account: &str) -> anyhow::Result<i64> {
        let (status, body) = self.get(&format!("/api/accounts/{account}")).await?;
        anyhow::ensure!(status.is_success(), "GET /api/accounts/{account}: {status} {body}");
        let b = body["balance"].as_str().context("balance")?;
        common::domain::money::parse_minor(b).map_err(|e| anyhow::anyhow!("balance {b:?}: {e}"))
    }

    /// A value of `GET /metrics` ([`sample`]).
    pub async fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let text = self.request(Method::GET, "/metrics", false).send().await?.text().await?;
        Ok(sample(&text, name))
    }
}

/// A value in a Prometheus text exposition: the sample named with its labels as rendered
/// (`bank2_credits_total{source="MQ"}`), or, for a bare name, the sum over all its label sets
/// (`bank2_credits_total`); 0 when absent.
pub fn sample(text: &str, name: &str) -> f64 {
    let matches = |series: &str| series == name || (!name.contains('{') && series.split('{').next() == Some(name));
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| matches(series))
        .filter_map(|(_, v)| v.parse::<f64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::sample;

    #[test]
    fn samples_by_series_or_summed_by_name() {
        let text = "# TYPE c counter\nc{source=\"MQ\"} 2\nc{source=\"RECONCILE\"} 3\nc_other 7\nh_bucket{le=\"1\"} 4\n";
        assert_eq!(sample(text, "c{source=\"MQ\"}"), 2.0);
        assert_eq!(sample(text, "c"), 5.0);
        assert_eq!(sample(text, "c{source=\"DLQ_REFUND\"}"), 0.0);
        assert_eq!(sample(text, "h"), 0.0);
    }
}
