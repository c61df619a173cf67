//! The whole-system tests, on a real broker and real databases (docs/ARCHITECTURE.md, "Test
//! matrix"), as ONE test binary: each file beside this one is a module of it, so the suite is
//! compiled and linked once, not once per file. Run one file's tests by its module name, e.g.
//! `cargo test --release --test system transfers::`.
#![recursion_limit = "512"]

mod helpers;

mod api;
mod console;
mod proofs;
mod reconcile;
mod refunds;
mod schema;
mod transfers;
mod trust;
