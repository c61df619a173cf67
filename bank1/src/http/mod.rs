//! bank1's own HTTP resource: transfers. The routes every bank has (accounts, health,
//! quarantine, `/admin/faults`, `/admin/reconcile`) come from [`common::service::app::router`].

mod transfers;

pub use transfers::routes;
