//! The portal's pages, one module per page group over a small page framework (`page`): home
//! and the language switch, logging in (by username, by QR code or on the same phone, by
//! password), registration, the account, the cloud certificate and document signing. Every
//! form carries the session's CSRF token; every page is rendered in the language of the `lang`
//! cookie (Cyrillic by default).

use axum::Router;

use crate::state::AppState;

mod account;
mod cloud;
mod home;
mod login;
mod page;
mod qr;
mod register;
mod signing;

pub(crate) use page::{
    csrf_ok, internal, message_page, render, with_cookie, MessagePage, Page, Visit,
};

/// The portal routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(home::routes())
        .merge(login::routes())
        .merge(qr::routes())
        .merge(register::routes())
        .merge(account::routes())
        .merge(cloud::routes())
        .merge(signing::routes())
}
