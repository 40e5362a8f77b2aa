//! The Web Push routes of the app API (authority::login::push): the VAPID public key, and a device's
//! subscription, registered and removed by device-signed calls.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::app_api::{device, error_response};
use crate::state::AppState;

/// The Web Push routes (under the app API's CORS, as the rest of `/api/app/v1/`).
pub fn routes() -> Router<AppState> {
    Router::new().route("/api/app/v1/push/key", get(key)).route(
        "/api/app/v1/push/subscription",
        post(subscribe).delete(unsubscribe),
    )
}

/// `GET /api/app/v1/push/key`: `{"vapid_public_key"}`, base64url of the uncompressed point.
async fn key(State(state): State<AppState>) -> Response {
    match state.authority.login.push_public_key() {
        Ok(key) => Json(json!({ "vapid_public_key": key })).into_response(),
        Err(error) => error_response(error),
    }
}

/// `POST /api/app/v1/push/subscription`: the body is `PushSubscription.toJSON()`.
async fn subscribe(
    State(state): State<AppState>,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let device = match device(&state.authority, &headers, &method, &uri, &body).await {
        Ok(d) => d,
        Err(response) => return response,
    };
    match state.authority.login.register_push(&device, &body).await {
        Ok(()) => Json(json!({ "status": "subscribed" })).into_response(),
        Err(error) => error_response(error),
    }
}

/// `DELETE /api/app/v1/push/subscription`: 404 when the device had none.
async fn unsubscribe(
    State(state): State<AppState>,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
) -> Response {
    let device = match device(&state.authority, &headers, &method, &uri, b"").await {
        Ok(d) => d,
        Err(response) => return response,
    };
    match state.authority.login.unregister_push(&device).await {
        Ok(true) => Json(json!({ "status": "unsubscribed" })).into_response(),
        Ok(false) => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "not_found", "message": "no subscription" })),
        )
            .into_response(),
        Err(error) => error_response(error),
    }
}
