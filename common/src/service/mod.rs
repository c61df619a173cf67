//! What makes a bank service, shared by both banks.
//!
//! - [`app`]: the skeleton (`Service`, `Shared`, `App`, the router, `main`): bind, serve,
//!   drain, stop.
//! - [`api`]: the OpenAPI contract derived from the handlers, `/api-docs/openapi.json`, `/docs`.
//! - [`settings`]: the settings every bank has, under each bank's environment names.
//! - [`error`]: the one error type, its codes and the `{"error":{"code","message"}}` body.
//! - [`auth`]: bearer tokens for `/admin/*` and the feeds.
//! - [`faults`]: live fault switches and `GET|PUT /admin/faults`.
//! - [`routes`]: `/api/accounts/{no}` and `/health`.
//! - [`balances`]: many accounts' balances changed by one statement (group commit, batch credit).
//! - [`group_commit`]: the queue and writers that gather jobs waiting together into one group.
//! - [`ledger`]: `GET /admin/accounts`, a bank's accounts and its side of the conservation sum.
//! - [`feed`]: the feed sequencer (a cursor that never skips a row) and feed pages.
//! - [`reconcile`]: the reconciliation driver (never stalls: parks what fails, moves on) and
//!   `GET|POST /admin/reconcile`.
//! - [`metrics`]: `GET /metrics`, HTTP and reconciliation metrics (each bank adds its own).
//! - [`proofs`]: the query interface's signed answers, and asking the other bank's
//!   (questions merged) before a message moves money.
//! - [`inbox`]: opening a delivered message (signature, parse, KEYS) and quarantining what
//!   must never move money ([`quarantine`]).

pub mod api;
pub mod app;
pub mod auth;
pub mod balances;
pub mod error;
pub mod faults;
pub mod feed;
pub mod group_commit;
pub mod inbox;
pub mod ledger;
pub mod metrics;
pub mod proofs;
pub mod quarantine;
pub mod reconcile;
pub mod routes;
pub mod settings;
