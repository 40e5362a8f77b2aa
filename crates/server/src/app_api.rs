//! The ConsentID app API under `/api/app/v1/` (DESIGN §4): activation, the inbox, answers and
//! status. Every call but activation is signed by the device key; errors are
//! `{"error", "message"}` with a 4xx status.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use authority::login::consentid::{AuthenticatedDevice, Caller};
use authority::{Authority, Error};
use domain::TxnId;
use proto::app::{ActivationComplete, ActivationStart, ErrorBody, Response as AppResponse};

use crate::client_address::ClientIp;
use crate::error::AppError;
use crate::state::AppState;

/// The longest long-poll.
const MAX_WAIT: u64 = 25;

/// The app API routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/app/v1/activation/start", post(activation_start))
        .route("/api/app/v1/activation/complete", post(activation_complete))
        .route("/api/app/v1/inbox", get(inbox))
        .route("/api/app/v1/status", get(status))
        .route("/api/app/v1/requests/{txn}/response", post(respond))
        .route("/api/app/v1/login/qr", post(login_qr))
        .route("/api/app/v1/login/link", post(login_link))
}

/// Maps a use-case error to an API answer: a refusal's status and code, else an internal
/// error with the request id (crate::error).
pub fn error_response(error: Error) -> Response {
    AppError::app_api(error).into_response()
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(|e| {
        let body = ErrorBody {
            error: "invalid_request".into(),
            message: format!("the JSON body is not valid: {e}"),
        };
        (StatusCode::BAD_REQUEST, Json(body)).into_response()
    })
}

async fn activation_start(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    body: Bytes,
) -> Response {
    let request: ActivationStart = match parse(&body) {
        Ok(r) => r,
        Err(response) => return response,
    };
    match state
        .authority
        .login
        .activation_start(&request.code, &Caller { ip })
        .await
    {
        Ok(challenge) => Json(challenge).into_response(),
        Err(error) => error_response(error),
    }
}

async fn activation_complete(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    body: Bytes,
) -> Response {
    let request: ActivationComplete = match parse(&body) {
        Ok(r) => r,
        Err(response) => return response,
    };
    match state
        .authority
        .login
        .activation_complete(&request, &Caller { ip })
        .await
    {
        Ok(result) => Json(result).into_response(),
        Err(error) => error_response(error),
    }
}

pub(crate) async fn device(
    authority: &Authority,
    headers: &HeaderMap,
    method: &Method,
    uri: &Uri,
    body: &[u8],
) -> Result<AuthenticatedDevice, Response> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    authority
        .login
        .authenticate_device(authorization, method.as_str(), path, body)
        .await
        .map_err(error_response)
}

#[derive(Deserialize)]
struct WaitQuery {
    wait: Option<u64>,
}

async fn inbox(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
    Query(query): Query<WaitQuery>,
) -> Response {
    // Boxed, as the inbox's reads are: a future's size is that of its largest step, and the
    // waiting poll should not carry the signature check's and the queries' state for 25 s
    // (issue 24: memory with 10,000 waiting apps).
    let device = match Box::pin(device(&state.authority, &headers, &method, &uri, b"")).await {
        Ok(d) => d,
        Err(response) => return response,
    };
    // Nor the request's head.
    drop((headers, uri));
    let wait = Duration::from_secs(query.wait.unwrap_or(0).min(MAX_WAIT));
    // A stopping server answers a long poll at once with what there is (the app comes back).
    let caller = Caller { ip };
    let inbox = tokio::select! {
        inbox = state.authority.login.inbox(&device, &caller, wait) => inbox,
        () = state.stopping.wait() => {
            state.authority.login.inbox(&device, &caller, Duration::ZERO).await
        }
    };
    match inbox {
        Ok(inbox) => Json(inbox).into_response(),
        Err(error) => error_response(error),
    }
}

async fn status(
    State(state): State<AppState>,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
) -> Response {
    let device = match device(&state.authority, &headers, &method, &uri, b"").await {
        Ok(d) => d,
        Err(response) => return response,
    };
    match state.authority.login.device_state(&device).await {
        Ok(device_state) => Json(device_state).into_response(),
        Err(error) => error_response(error),
    }
}

async fn respond(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(txn): Path<TxnId>,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    // The nonce is spent in the answer's own transaction (one write instead of two), or on its
    // own when the body does not parse.
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let request = match state
        .authority
        .login
        .verify_device_request(authorization, method.as_str(), path, &body)
        .await
    {
        Ok(request) => request,
        Err(error) => return error_response(error),
    };
    let answer: AppResponse = match parse(&body) {
        Ok(r) => r,
        Err(response) => {
            return match state.authority.login.spend_device_request(request).await {
                Ok(_) => response,
                Err(error) => error_response(error),
            };
        }
    };
    match state
        .authority
        .login
        .respond_to(request, &Caller { ip }, &txn, &answer)
        .await
    {
        Ok(result) => Json(result).into_response(),
        Err(error) => error_response(error),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QrBody {
    qr: String,
}

/// `POST /login/qr {"qr"}`: the text the app's camera read off the browser's screen. Answers
/// `{"request": Envelope}`; `invalid_qr` (400), `stale_qr` (410), `expired` (404).
async fn login_qr(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let device = match device(&state.authority, &headers, &method, &uri, &body).await {
        Ok(d) => d,
        Err(response) => return response,
    };
    let request: QrBody = match parse(&body) {
        Ok(r) => r,
        Err(response) => return response,
    };
    match state
        .authority
        .login
        .qr_login_take(&device, &Caller { ip }, &request.qr)
        .await
    {
        Ok(taken) => Json(serde_json::json!({ "request": taken.request })).into_response(),
        Err(error) => error_response(error),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkBody {
    link: String,
}

/// `POST /login/link {"link"}`: the token of the link **Отвори ConsentID** the app was opened
/// by. Answers `{"request": Envelope, "return_url"}`, the portal page that completes the login
/// after the approval; as `/login/qr`, and `other_address` (403) from another address than the
/// browser's.
async fn login_link(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let device = match device(&state.authority, &headers, &method, &uri, &body).await {
        Ok(d) => d,
        Err(response) => return response,
    };
    let request: LinkBody = match parse(&body) {
        Ok(r) => r,
        Err(response) => return response,
    };
    match state
        .authority
        .login
        .link_login_take(&device, &Caller { ip }, &request.link)
        .await
    {
        Ok(taken) => {
            let portal = state.authority.settings().public_url.trim_end_matches('/');
            Json(serde_json::json!({
                "request": taken.request,
                "return_url": format!("{portal}/login/qr/{}", taken.qr_id),
            }))
            .into_response()
        }
        Err(error) => error_response(error),
    }
}
