//! The store's behavioural suite: every method of the store's traits (`…Store` inside a
//! transaction, `…Queries` on the store, `AuditLog`) and the audit chain's checks, tested
//! through the public API only, on every database `store::test_support::databases` gives
//! (SQLite always; PostgreSQL when `EIDPORTAL_TEST_POSTGRES_URL` is set, required under
//! `EIDPORTAL_TEST_REQUIRE_ALL`). Each test gets fresh databases and names the database in
//! every failure.
//!
//! It tests what a caller can observe: what a method returns, what a later read sees, what it
//! refuses, what a rolled-back transaction leaves (nothing), the order and limits a method
//! promises, records round-tripping exactly (times, bytes, optional fields, non-ASCII text),
//! and what two use cases at once see of each other. It never looks at tables or SQL, so that
//! another implementation of the traits (a native PostgreSQL store, issue 24) is held to the
//! same behaviour by running it unchanged.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "behaviour/accounts.rs"]
mod accounts;
#[path = "behaviour/audit.rs"]
mod audit;
#[path = "behaviour/authorities.rs"]
mod authorities;
#[path = "behaviour/certificates.rs"]
mod certificates;
#[path = "behaviour/changes.rs"]
mod changes;
#[path = "behaviour/devices_sessions.rs"]
mod devices_sessions;
#[path = "behaviour/keys.rs"]
mod keys;
#[path = "behaviour/login.rs"]
mod login;
#[path = "behaviour/mail.rs"]
mod mail;
#[path = "behaviour/oidc.rs"]
mod oidc;
#[path = "behaviour/oidc_grants.rs"]
mod oidc_grants;
#[path = "behaviour/oidc_logouts.rs"]
mod oidc_logouts;
#[path = "behaviour/oidc_pings.rs"]
mod oidc_pings;
#[path = "behaviour/operations.rs"]
mod operations;
#[path = "behaviour/qr_push.rs"]
mod qr_push;
#[path = "behaviour/signing.rs"]
mod signing;
#[path = "behaviour/spend_once.rs"]
mod spend_once;
#[path = "behaviour/support.rs"]
mod support;
#[path = "behaviour/transactions.rs"]
mod transactions;
