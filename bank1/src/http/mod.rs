//! bank1's own HTTP resources: transfers, and the operators' transfer list
//! (`/admin/transfers`). The routes every bank has (accounts, health, quarantine,
//! `/admin/accounts`, `/admin/faults`, `/admin/reconcile`) come from
//! [`common::service::app::router`].

mod admin;
mod transfers;

pub use admin::routes as admin_routes;
pub use transfers::routes;
