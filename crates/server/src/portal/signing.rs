//! The portal's service **Потписивање документа** (DESIGN §6): upload PDFs and choose the
//! PAdES level, approve the exact documents in ConsentID, download the signed PDFs. The
//! waiting page refreshes itself (no script needed) until the approval arrives.

use askama::Template;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use authority::signing::documents::{
    DocumentRefusal, JobStatus, SignatureLevel, UploadedDocument, MAX_DOCUMENTS, MAX_DOCUMENT_BYTES,
};
use authority::signing::SigningRefusal;
use authority::{Error, Rejection};
use proto::app::RequestContext;

use super::page::{
    csrf_ok, describe_browser, form_expired, internal, message_page, render, MessagePage, Page,
    Visit,
};
use crate::client_address::ClientIp;
use crate::i18n::Language;
use crate::state::AppState;

/// The largest upload, all documents together.
const MAX_TOTAL_BYTES: usize = 2 * MAX_DOCUMENT_BYTES;
/// The largest upload body: the documents and room for the form around them.
const MAX_UPLOAD: usize = MAX_TOTAL_BYTES + 64 * 1024;

/// The signing routes.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/services/sign",
            get(upload_page)
                .post(upload)
                .layer(DefaultBodyLimit::max(MAX_UPLOAD)),
        )
        .route("/services/sign/{job}", get(job_page))
        .route("/services/sign/{job}/{index}", get(download))
}

#[derive(Template)]
#[template(path = "sign.html")]
struct UploadPage {
    page: Page,
    error: Option<String>,
    limits: String,
}

fn upload_form(
    state: &AppState,
    visit: &Visit,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let page = state.page(visit, "sign-heading", "/services/sign");
    let mb = |bytes: usize| (bytes / (1024 * 1024)).to_string();
    let limits = page.t_with(
        "sign-limits",
        &[
            ("max", mb(MAX_DOCUMENT_BYTES)),
            ("total", mb(MAX_TOTAL_BYTES)),
            ("files", MAX_DOCUMENTS.to_string()),
        ],
    );
    let template = UploadPage {
        page,
        error,
        limits,
    };
    let mut response = render(state, visit, &template);
    *response.status_mut() = status;
    response
}

async fn visit_of(state: &AppState, headers: &HeaderMap) -> Result<Visit, Response> {
    match state.visit(headers).await {
        Ok(visit) if visit.session.user.is_some() => Ok(visit),
        Ok(visit) => Err(message_page(
            state,
            &visit,
            StatusCode::UNAUTHORIZED,
            "error-login-required",
            "/login",
        )),
        Err(error) => Err(internal(state, Language::SerbianCyrillic, &error)),
    }
}

/// The refusal of a job's page or documents to a session not logged in with ConsentID: 403,
/// in the user's language, with the way to a ConsentID login.
fn needs_consentid(state: &AppState, visit: &Visit) -> Response {
    let page = state.page(visit, "sign-heading", "/services/sign");
    let template = MessagePage {
        heading: page.t("sign-heading"),
        text: page.t("sign-documents-need-consentid"),
        is_error: true,
        link: "/login/mobile".into(),
        link_text: page.t("cloud-login-again"),
        page,
    };
    let mut response = render(state, visit, &template);
    *response.status_mut() = StatusCode::FORBIDDEN;
    response
}

/// The visit of a route that shows or returns a job's documents: logged in, and with ConsentID.
/// A password (basic) session, which an e-mail and password compromise gives, never sees the
/// documents a ConsentID login signed (as the agreement, `cloud::agreement_download`).
async fn consentid_visit_of(state: &AppState, headers: &HeaderMap) -> Result<Visit, Response> {
    let visit = visit_of(state, headers).await?;
    if visit.session.by_consentid() {
        Ok(visit)
    } else {
        Err(needs_consentid(state, &visit))
    }
}

async fn upload_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match visit_of(&state, &headers).await {
        Ok(visit) => upload_form(&state, &visit, None, StatusCode::OK),
        Err(response) => response,
    }
}

/// The form as read: level and files (the CSRF token was checked first, see [`upload`]).
#[derive(Default)]
struct UploadForm {
    level: String,
    documents: Vec<UploadedDocument>,
}

/// Why reading the form stopped.
enum FormError {
    TooLarge,
    Malformed,
    /// The first part is not the session's CSRF token.
    Forged,
}

/// The largest text field (the CSRF token, the level).
const MAX_TEXT_FIELD: usize = 1024;

fn field_error(error: &axum::extract::multipart::MultipartError) -> FormError {
    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
        FormError::TooLarge
    } else {
        FormError::Malformed
    }
}

/// A small text field, read chunk by chunk up to [`MAX_TEXT_FIELD`].
async fn text_field(mut field: axum::extract::multipart::Field<'_>) -> Result<String, FormError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(|e| field_error(&e))? {
        if bytes.len() + chunk.len() > MAX_TEXT_FIELD {
            return Err(FormError::Malformed);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Reads the form. Its first part must be the CSRF token (the form puts it first, and so does
/// every browser), checked before a byte of the documents is read: a forged post costs us one
/// small field. The documents are streamed to an anonymous temporary file, all of them
/// together at most [`MAX_TOTAL_BYTES`], and read back only once the whole form is in.
async fn read_form(visit: &Visit, mut multipart: Multipart) -> Result<UploadForm, FormError> {
    // 1. The CSRF token, first.
    let first = multipart
        .next_field()
        .await
        .map_err(|e| field_error(&e))?
        .ok_or(FormError::Forged)?;
    if first.name() != Some("csrf") || !csrf_ok(visit, &text_field(first).await?) {
        return Err(FormError::Forged);
    }
    // 2. The rest, the documents into the temporary file.
    let mut form = UploadForm::default();
    let mut spool =
        tokio::fs::File::from_std(tempfile::tempfile().map_err(|_| FormError::Malformed)?);
    let mut spans: Vec<(String, u64, u64)> = Vec::new();
    let mut written: u64 = 0;
    let limit = u64::try_from(MAX_TOTAL_BYTES).unwrap_or(u64::MAX);
    while let Some(mut field) = multipart.next_field().await.map_err(|e| field_error(&e))? {
        let name = field.name().unwrap_or("").to_owned();
        match name.as_str() {
            "level" => form.level = text_field(field).await?,
            "documents" => {
                let filename = field.file_name().map(|f| {
                    f.chars()
                        .filter(|c| !c.is_control())
                        .take(120)
                        .collect::<String>()
                });
                let start = written;
                while let Some(chunk) = field.chunk().await.map_err(|e| field_error(&e))? {
                    written += chunk.len() as u64;
                    if written > limit {
                        return Err(FormError::TooLarge);
                    }
                    tokio::io::AsyncWriteExt::write_all(&mut spool, &chunk)
                        .await
                        .map_err(|_| FormError::Malformed)?;
                }
                // A browser sends an empty part when no file was chosen.
                if written > start {
                    if spans.len() >= MAX_DOCUMENTS {
                        return Err(FormError::Malformed);
                    }
                    let filename = filename
                        .filter(|f| !f.trim().is_empty())
                        .unwrap_or_else(|| "document.pdf".into());
                    spans.push((filename, start, written - start));
                }
            }
            _ => while field.chunk().await.map_err(|e| field_error(&e))?.is_some() {},
        }
    }
    // 3. The documents, back from the file.
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    for (filename, start, length) in spans {
        spool
            .seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(|_| FormError::Malformed)?;
        let mut bytes = vec![0; usize::try_from(length).map_err(|_| FormError::TooLarge)?];
        spool
            .read_exact(&mut bytes)
            .await
            .map_err(|_| FormError::Malformed)?;
        form.documents.push(UploadedDocument { filename, bytes });
    }
    Ok(form)
}

/// The message for a refused upload.
fn upload_refusal(page: &Page, error: &Error) -> Option<String> {
    let with_file = |id: &str, file: &str| page.t_with(id, &[("file", file.to_owned())]);
    Some(match error {
        Error::Document(DocumentRefusal::NoDocuments) => page.t("sign-error-none"),
        Error::Document(DocumentRefusal::TooMany) => {
            page.t_with("sign-error-too-many", &[("max", MAX_DOCUMENTS.to_string())])
        }
        Error::Document(DocumentRefusal::TooLarge(file)) => page.t_with(
            "sign-error-too-large",
            &[
                ("file", file.clone()),
                ("max", (MAX_DOCUMENT_BYTES / (1024 * 1024)).to_string()),
            ],
        ),
        Error::Document(DocumentRefusal::NotPdf(file)) => with_file("sign-error-not-pdf", file),
        Error::Document(DocumentRefusal::Unreadable(file, _)) => {
            with_file("sign-error-corrupt", file)
        }
        Error::Document(DocumentRefusal::NeedsConsentIdLogin) => page.t("sign-error-consentid"),
        Error::Document(DocumentRefusal::NoCertificate) => page.t("sign-error-no-certificate"),
        Error::Signing(SigningRefusal::NoDevice) => page.t("sign-error-no-device"),
        Error::Signing(SigningRefusal::Locked) => page.t("sign-failed-locked"),
        Error::Rejected(Rejection::RateLimited) => page.t("sign-error-rate-limited"),
        _ => return None,
    })
}

async fn upload(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    multipart: Multipart,
) -> Response {
    let visit = match visit_of(&state, &headers).await {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    let page = state.page(&visit, "sign-heading", "/services/sign");
    // Before a byte of the body: a password (basic) session never signs (DESIGN §3), so its
    // upload is not read at all. The CSRF token is the form's first part (`read_form`).
    if !visit.session.by_consentid() {
        return upload_form(
            &state,
            &visit,
            Some(page.t("sign-error-consentid")),
            StatusCode::FORBIDDEN,
        );
    }
    let form = match read_form(&visit, multipart).await {
        Ok(form) => form,
        Err(FormError::TooLarge) => {
            let mb = |bytes: usize| (bytes / (1024 * 1024)).to_string();
            let text = page.t_with(
                "sign-error-upload-too-large",
                &[
                    ("max", mb(MAX_DOCUMENT_BYTES)),
                    ("total", mb(MAX_TOTAL_BYTES)),
                ],
            );
            return upload_form(&state, &visit, Some(text), StatusCode::PAYLOAD_TOO_LARGE);
        }
        Err(FormError::Malformed) => {
            return upload_form(
                &state,
                &visit,
                Some(page.t("sign-error-form")),
                StatusCode::BAD_REQUEST,
            )
        }
        Err(FormError::Forged) => return form_expired(&state, &visit, "/services/sign"),
    };
    let Some(level) = SignatureLevel::parse(&form.level) else {
        return upload_form(
            &state,
            &visit,
            Some(page.t("sign-error-form")),
            StatusCode::BAD_REQUEST,
        );
    };
    let browser = describe_browser(
        headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    );
    let context = RequestContext { browser, ip };
    match state
        .authority
        .signing
        .start_document_signing(&visit.session, form.documents, level, context)
        .await
    {
        Ok(job) => Redirect::to(&format!("/services/sign/{job}")).into_response(),
        Err(error) => match upload_refusal(&page, &error) {
            Some(text) => upload_form(&state, &visit, Some(text), StatusCode::UNPROCESSABLE_ENTITY),
            None => internal(&state, visit.language, &error),
        },
    }
}

/// A document line of the job page.
struct DocumentLine {
    index: usize,
    filename: String,
    fingerprint: String,
    ready: bool,
}

#[derive(Template)]
#[template(path = "sign_job.html")]
struct JobPage {
    page: Page,
    job: String,
    pending: bool,
    done: bool,
    status_line: String,
    level: String,
    time_left: String,
    documents: Vec<DocumentLine>,
}

async fn job_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(job): Path<String>,
) -> Response {
    let visit = match consentid_visit_of(&state, &headers).await {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    let view = match state
        .authority
        .signing
        .document_signing(&visit.session, &job)
        .await
    {
        Ok(view) => view,
        Err(Error::Document(DocumentRefusal::NotFound)) => {
            return message_page(
                &state,
                &visit,
                StatusCode::NOT_FOUND,
                "error-not-found",
                "/services/sign",
            )
        }
        Err(Error::Document(DocumentRefusal::NeedsConsentIdLogin)) => {
            return needs_consentid(&state, &visit)
        }
        Err(error) => return internal(&state, visit.language, &error),
    };
    let page = state.page(&visit, "sign-heading", &format!("/services/sign/{job}"));
    let (pending, done, status_line, seconds_left) = match &view.status {
        JobStatus::Pending { seconds_left } => (true, false, page.t("sign-pending"), *seconds_left),
        JobStatus::Done => (false, true, page.t("sign-done"), 0),
        JobStatus::Failed(hint) => (
            false,
            false,
            page.t(&format!("sign-failed-{}", hint.replace('_', "-"))),
            0,
        ),
    };
    let template = JobPage {
        job: view.id,
        pending,
        done,
        status_line,
        level: page.t(&format!("sign-level-{}", view.level.as_str())),
        time_left: page.t_with("sign-time-left", &[("seconds", seconds_left.to_string())]),
        documents: view
            .documents
            .into_iter()
            .enumerate()
            .map(|(index, d)| DocumentLine {
                index,
                filename: d.filename,
                fingerprint: d.fingerprint,
                ready: d.ready,
            })
            .collect(),
        page,
    };
    render(&state, &visit, &template)
}

/// `report.pdf` → `report-potpisan.pdf`, ASCII only for the header (the name is the user's own).
fn signed_name(filename: &str) -> String {
    let stem = filename
        .strip_suffix(".pdf")
        .or_else(|| filename.strip_suffix(".PDF"))
        .unwrap_or(filename);
    let clean: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    format!("{clean}-potpisan.pdf")
}

async fn download(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((job, index)): Path<(String, usize)>,
) -> Response {
    let visit = match consentid_visit_of(&state, &headers).await {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    match state
        .authority
        .signing
        .signed_document(&visit.session, &job, index)
        .await
    {
        Ok((filename, pdf)) => {
            let mut response = ([(header::CONTENT_TYPE, "application/pdf")], pdf).into_response();
            if let Ok(value) = HeaderValue::from_str(&format!(
                "attachment; filename=\"{}\"",
                signed_name(&filename)
            )) {
                response
                    .headers_mut()
                    .insert(header::CONTENT_DISPOSITION, value);
            }
            response
        }
        Err(Error::Document(DocumentRefusal::NotFound)) => message_page(
            &state,
            &visit,
            StatusCode::NOT_FOUND,
            "error-not-found",
            "/services/sign",
        ),
        Err(Error::Document(DocumentRefusal::NeedsConsentIdLogin)) => {
            needs_consentid(&state, &visit)
        }
        Err(error) => internal(&state, visit.language, &error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_file_names_are_safe_in_a_header() {
        assert_eq!(signed_name("Уговор 1.pdf"), "_______1-potpisan.pdf");
        assert_eq!(signed_name("report.PDF"), "report-potpisan.pdf");
        assert_eq!(signed_name("a\"b"), "a_b-potpisan.pdf");
    }
}
