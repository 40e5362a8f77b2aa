//! What the benchmark examples share (`login_bench`, `sign_bench`): a small HTTP/1.1 client
//! with keep-alive, the simulated ConsentID app (activation, signed inbox fetch, approval with
//! device signature and sealed PIN proof), the mobile login as a browser and a phone do it, CPU
//! use from `/proc`, and percentiles. Each example includes it with `mod common;`.
//!
//! The simulated app speaks `proto` itself and uses the `consentid` library where it offers
//! the piece (`DeviceKey`, `verify_envelope`, `DeviceCertificate`, `SystemClock`). Its PIN
//! key is a random P-256 key made once per app: it stands in for a cached
//! `consentid::PinKey::derive` (Argon2id, 64 MiB), whose cost is the phone's; the server
//! checks it exactly as it checks a derived one.

// Each example uses part of this module.
#![allow(dead_code)]

pub mod oidc;

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::time::{Duration, Instant};

use clap::ValueEnum;
use consentid::{
    verify_envelope, Clock, DeviceCertificate, DeviceKey, SystemClock, VerifiedRequest,
};
use p256::{PublicKey, SecretKey};
use proto::app::{
    ActivationChallenge, ActivationComplete, ActivationResult, ActivationStart, Decision,
    ErrorBody, Inbox, Response as AppResponse, ResponseOutcome, ResponseResult,
};
use proto::{b64, crypto, unb64};
use serde::Deserialize;

/// Longest wait for a connection, a write or an answer.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest answer body read.
pub const MAX_BODY: usize = 4 * 1024 * 1024;
/// What the browser sends as its User-Agent (the app shows "Chrome / Linux").
pub const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0 eidportal-bench";

/// How much of the page a simulated browser loads during a login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BrowserMode {
    Full,
    Minimal,
}

impl BrowserMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Minimal => "minimal",
        }
    }
}

/// A timed step of a login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    Form,
    Start,
    WaitPage,
    Inbox,
    Approve,
    Status,
    Complete,
    /// A service's pushed authorization request (`login_bench --oidc`).
    Par,
    /// The service's authorization URL in the browser, before and after the login.
    Authorize,
    /// The consent page allowed (a user's first login to the service only).
    Consent,
    /// The service exchanges the code.
    Token,
    /// The service asks for the user's claims.
    UserInfo,
    /// The whole login, form to complete, client work included.
    Login,
}

impl Step {
    pub const ALL: [Step; 13] = [
        Self::Par,
        Self::Authorize,
        Self::Form,
        Self::Start,
        Self::WaitPage,
        Self::Inbox,
        Self::Approve,
        Self::Status,
        Self::Complete,
        Self::Consent,
        Self::Token,
        Self::UserInfo,
        Self::Login,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Form => "form",
            Self::Start => "start",
            Self::WaitPage => "wait_page",
            Self::Inbox => "inbox",
            Self::Approve => "approve",
            Self::Status => "status",
            Self::Complete => "complete",
            Self::Par => "par",
            Self::Authorize => "authorize",
            Self::Consent => "consent",
            Self::Token => "token",
            Self::UserInfo => "userinfo",
            Self::Login => "login",
        }
    }

    pub fn what(self) -> &'static str {
        match self {
            Self::Form => "GET /login/mobile (new session)",
            Self::Start => "POST /login/mobile -> 303",
            Self::WaitPage => "GET /login/mobile/{txn}",
            Self::Inbox => "app GET /api/app/v1/inbox?wait=5",
            Self::Approve => "app POST .../requests/{txn}/response",
            Self::Status => "GET /login/mobile/{txn}/status",
            Self::Complete => "POST .../complete -> 303 /account",
            Self::Par => "service POST /oidc/par (assertion, DPoP)",
            Self::Authorize => "GET /oidc/authorize (before and after)",
            Self::Consent => "POST /oidc/authorize allow (first time)",
            Self::Token => "service POST /oidc/token (assertion, DPoP)",
            Self::UserInfo => "service GET /oidc/userinfo (DPoP)",
            Self::Login => "whole login, first request to last",
        }
    }
}

/// Why a login (or an activation) failed: a short kind for the error table.
#[derive(Debug)]
pub struct Failure {
    pub kind: String,
    pub rate_limited: bool,
}

impl Failure {
    pub fn new(step: &str, what: impl std::fmt::Display) -> Self {
        Self {
            kind: format!("{step}: {what}"),
            rate_limited: false,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 with keep-alive, from a chosen loopback address.

/// A parsed answer.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value a `Set-Cookie` gives to `name`.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == "set-cookie")
            .filter_map(|(_, v)| v.split(';').next()?.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// "HTTP 409 not_pending" (the API's error code when there is one).
    pub fn describe(&self) -> String {
        match serde_json::from_slice::<ErrorBody>(&self.body) {
            Ok(body) => format!("HTTP {} {}", self.status, body.error),
            Err(_) => format!("HTTP {}", self.status),
        }
    }
}

/// One keep-alive connection to the server.
pub struct Connection {
    server: SocketAddrV4,
    source: Option<Ipv4Addr>,
    stream: Option<BufReader<TcpStream>>,
}

impl Connection {
    pub fn new(server: SocketAddrV4, source: Option<Ipv4Addr>) -> Self {
        Self {
            server,
            source,
            stream: None,
        }
    }

    fn connect(&self) -> std::io::Result<TcpStream> {
        let socket = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        if let Some(source) = self.source {
            socket.bind(&SocketAddr::from((source, 0)).into())?;
        }
        socket.connect_timeout(&SocketAddr::V4(self.server).into(), IO_TIMEOUT)?;
        let stream: TcpStream = socket.into();
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(stream)
    }

    /// One request. A kept-alive connection the server closed meanwhile is replaced and the
    /// request sent again, but only when not one byte of an answer came back.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Answer, String> {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
            self.server,
            body.len()
        );
        for (name, value) in headers {
            let _ = write!(head, "{name}: {value}\r\n");
        }
        head.push_str("\r\n");
        let mut raw = head.into_bytes();
        raw.extend_from_slice(body);
        for attempt in 0..2 {
            let reused = self.stream.is_some();
            let mut stream = match self.stream.take() {
                Some(stream) => stream,
                None => BufReader::new(
                    self.connect()
                        .map_err(|e| format!("transport: connect: {}", e.kind()))?,
                ),
            };
            if let Err(e) = stream.get_mut().write_all(&raw) {
                if reused && attempt == 0 {
                    continue;
                }
                return Err(format!("transport: write: {}", e.kind()));
            }
            match read_answer(&mut stream) {
                Ok(Some((answer, keep))) => {
                    if keep {
                        self.stream = Some(stream);
                    }
                    return Ok(answer);
                }
                Ok(None) if reused && attempt == 0 => continue,
                Ok(None) => return Err("transport: closed without an answer".into()),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    // The connection is in an unknown state: it is dropped.
                    return Err(format!(
                        "transport: no answer within {} s",
                        IO_TIMEOUT.as_secs()
                    ));
                }
                Err(e) => return Err(format!("transport: read: {}", e.kind())),
            }
        }
        Err("transport: closed without an answer".into())
    }
}

pub fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

/// Reads one answer; `None` when the connection was closed before its first byte. The flag
/// says whether the connection may be used again.
pub fn read_answer(stream: &mut BufReader<TcpStream>) -> std::io::Result<Option<(Answer, bool)>> {
    let mut line = String::new();
    match stream.read_line(&mut line) {
        Ok(0) => return Ok(None),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(None),
        Err(e) => return Err(e),
    }
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid("status line"))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if stream.read_line(&mut line)? == 0 {
            return Err(invalid("headers cut short"));
        }
        let trimmed = line.trim_end_matches(['\r', '\n']);
        if trimmed.is_empty() {
            break;
        }
        if let Some((name, value)) = trimmed.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.to_ascii_lowercase())
    };
    let mut keep = !find("connection").is_some_and(|v| v.contains("close"));
    let mut body = Vec::new();
    if status == 204 || status == 304 || (100..200).contains(&status) {
    } else if find("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            line.clear();
            stream.read_line(&mut line)?;
            let size_text = line.trim().split(';').next().unwrap_or_default();
            let size = usize::from_str_radix(size_text, 16).map_err(|_| invalid("chunk size"))?;
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    line.clear();
                    if stream.read_line(&mut line)? == 0 || line.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            if body.len() + size > MAX_BODY {
                return Err(invalid("body too large"));
            }
            let start = body.len();
            body.resize(start + size, 0);
            stream.read_exact(body.get_mut(start..).ok_or_else(|| invalid("chunk"))?)?;
            line.clear();
            stream.read_line(&mut line)?;
        }
    } else if let Some(length) = find("content-length") {
        let length: usize = length.parse().map_err(|_| invalid("content-length"))?;
        if length > MAX_BODY {
            return Err(invalid("body too large"));
        }
        body.resize(length, 0);
        stream.read_exact(&mut body)?;
    } else {
        stream.take(MAX_BODY as u64).read_to_end(&mut body)?;
        keep = false;
    }
    Ok(Some((
        Answer {
            status,
            headers,
            body,
        },
        keep,
    )))
}

pub fn url_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// The text between `start` and `end`.
pub fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let rest = text.get(from..)?;
    rest.get(..rest.find(end)?)
}

/// `127.RANGE.x.y`, the `index`-th address of a range (254 per /24, no .0 or .255).
pub fn loopback(range: u8, index: usize) -> Ipv4Addr {
    let high = u8::try_from(index / 254).unwrap_or(u8::MAX);
    let low = u8::try_from(index % 254 + 1).unwrap_or(1);
    Ipv4Addr::new(127, range, high, low)
}

// ---------------------------------------------------------------------------------------------
// The simulated app.

/// A line of `eidportal user add --json`.
#[derive(Debug, Deserialize)]
pub struct Enrolled {
    pub email: String,
    pub activation_code: String,
}

/// An activated ConsentID app.
pub struct App {
    pub email: String,
    pub device_id: String,
    pub device_key: DeviceKey,
    /// Stands in for the cached `PinKey::derive` result (see the file's doc).
    pub pin_key: SecretKey,
    pub server_signing_key: Vec<u8>,
    pub server_encryption_key: PublicKey,
}

impl App {
    /// `Authorization: CID-Device ...` for one request (`proto::crypto::request_message`).
    pub fn authorization(&self, method: &str, path_and_query: &str, body: &[u8]) -> String {
        let now = SystemClock.now();
        let nonce = b64(&rand::random::<[u8; 16]>());
        let message = crypto::request_message(method, path_and_query, now, &nonce, body);
        let signature = self.device_key.sign(message.as_bytes());
        crypto::authorization_header(&self.device_id, now, &nonce, &signature)
    }

    /// Fetches the inbox (`GET /api/app/v1/inbox?wait=5`, signed, timed as [`Step::Inbox`]) and
    /// returns the first request that verifies against the server key pinned at activation and
    /// that `wanted` picks.
    pub fn fetch(
        &self,
        phone: &mut Connection,
        times: &mut Vec<(Step, u32)>,
        wanted: impl Fn(&VerifiedRequest) -> bool,
    ) -> Result<VerifiedRequest, Failure> {
        let path = "/api/app/v1/inbox?wait=5";
        let authorization = self.authorization("GET", path, b"");
        let inbox = timed(
            times,
            Step::Inbox,
            phone,
            "GET",
            path,
            &[
                ("Authorization", &authorization),
                ("Accept", "application/json"),
            ],
            b"",
        )?;
        if inbox.status != 200 {
            return Err(Failure::new("inbox", inbox.describe()));
        }
        let inbox: Inbox = serde_json::from_slice(&inbox.body)
            .map_err(|e| Failure::new("inbox", format!("bad JSON: {e}")))?;
        inbox
            .items
            .iter()
            .filter_map(|envelope| verify_envelope(&self.server_signing_key, envelope).ok())
            .find(|request| wanted(request))
            .ok_or_else(|| {
                Failure::new(
                    "inbox",
                    "the request is not in the inbox (or does not verify)",
                )
            })
    }

    /// Approves `request` as the user does with the right code and PIN: the approval message
    /// (proto `approval_message`) signed by the device key, the PIN proof signed by the PIN key
    /// and sealed to the server's encryption key (aad = txn), sent signed to `POST
    /// /api/app/v1/requests/{txn}/response` (timed as [`Step::Approve`]), which must answer
    /// `approved`. The signing and sealing happen before the step's clock starts.
    pub fn approve(
        &self,
        phone: &mut Connection,
        times: &mut Vec<(Step, u32)>,
        request: &VerifiedRequest,
    ) -> Result<(), Failure> {
        let payload = request.payload();
        let code = request.verification_code().as_str().to_owned();
        let issued_at = SystemClock.now();
        let message = crypto::approval_message(
            &payload.txn_id,
            payload.kind,
            Decision::Approve,
            &payload.rp.id,
            &payload.challenge,
            request.payload_bytes(),
            &code,
            &self.device_id,
            issued_at,
        );
        let proof = crypto::sign(&self.pin_key, message.as_bytes());
        let sealed = crypto::seal(
            &self.server_encryption_key,
            &proof,
            payload.txn_id.as_bytes(),
        )
        .map_err(|_| Failure::new("approve", "sealing"))?;
        let answer = AppResponse {
            decision: Decision::Approve,
            reason: None,
            verification_code: code,
            issued_at,
            device_signature: b64(&self.device_key.sign(message.as_bytes())),
            pin_proof: Some(b64(&sealed)),
            at_computer: false,
        };
        let body = serde_json::to_vec(&answer).map_err(|e| Failure::new("approve", e))?;
        let path = format!("/api/app/v1/requests/{}/response", payload.txn_id);
        let authorization = self.authorization("POST", &path, &body);
        let approved = timed(
            times,
            Step::Approve,
            phone,
            "POST",
            &path,
            &[
                ("Authorization", &authorization),
                ("Content-Type", "application/json"),
                ("Accept", "application/json"),
            ],
            &body,
        )?;
        if approved.status != 200 {
            return Err(Failure::new("approve", approved.describe()));
        }
        let result: ResponseResult = serde_json::from_slice(&approved.body)
            .map_err(|e| Failure::new("approve", format!("bad JSON: {e}")))?;
        if result.result != ResponseOutcome::Approved {
            return Err(Failure::new(
                "approve",
                format!("answered {:?}", result.result),
            ));
        }
        Ok(())
    }
}

pub fn json_post<T: serde::de::DeserializeOwned>(
    connection: &mut Connection,
    step: &str,
    path: &str,
    body: &impl serde::Serialize,
) -> Result<T, Failure> {
    let body = serde_json::to_vec(body).map_err(|e| Failure::new(step, e))?;
    let answer = connection
        .request(
            "POST",
            path,
            &[
                ("Content-Type", "application/json"),
                ("Accept", "application/json"),
            ],
            &body,
        )
        .map_err(|e| Failure::new(step, e))?;
    if answer.status != 200 {
        return Err(Failure {
            kind: format!("{step}: {}", answer.describe()),
            rate_limited: answer.status == 429,
        });
    }
    serde_json::from_slice(&answer.body).map_err(|e| Failure::new(step, format!("bad JSON: {e}")))
}

/// Activates one app (reference/mobile-auth.md §7.3, as `consentid::activate` does it, with a
/// PIN key that is not derived).
pub fn activate(connection: &mut Connection, user: &Enrolled) -> Result<App, Failure> {
    let step = "activation";
    let challenge: ActivationChallenge = json_post(
        connection,
        "activation start",
        "/api/app/v1/activation/start",
        &ActivationStart {
            code: user.activation_code.clone(),
        },
    )?;
    let bad = |what: &str| Failure::new(step, what);
    let server_signing_key =
        unb64(&challenge.server_signing_key).map_err(|_| bad("server signing key"))?;
    crypto::public_key(&server_signing_key).map_err(|_| bad("server signing key"))?;
    let server_encryption_key = crypto::unb64(&challenge.server_encryption_key)
        .ok()
        .and_then(|der| crypto::public_key(&der).ok())
        .ok_or_else(|| bad("server encryption key"))?;

    let device_key = DeviceKey::generate();
    let device_public_key = device_key.public_key_der();
    let pin_key = SecretKey::random(&mut rand::rngs::OsRng);
    let aad = challenge.activation_id.as_bytes();
    let sealed_pin_key = crypto::seal(
        &server_encryption_key,
        &crypto::public_key_der(&pin_key.public_key()),
        aad,
    )
    .map_err(|_| bad("sealing"))?;
    let message = crypto::activation_message(
        &challenge.activation_id,
        &challenge.nonce,
        &device_public_key,
        &sealed_pin_key,
    );
    let device_signature = device_key.sign(message.as_bytes());
    let sealed_pin_signature = crypto::seal(
        &server_encryption_key,
        &crypto::sign(&pin_key, message.as_bytes()),
        aad,
    )
    .map_err(|_| bad("sealing"))?;
    let complete = ActivationComplete {
        activation_id: challenge.activation_id.clone(),
        device_public_key: b64(&device_public_key),
        device_name: "login-bench".into(),
        encrypted_pin_public_key: b64(&sealed_pin_key),
        device_signature: b64(&device_signature),
        encrypted_pin_signature: b64(&sealed_pin_signature),
    };
    let result: ActivationResult = json_post(
        connection,
        "activation complete",
        "/api/app/v1/activation/complete",
        &complete,
    )?;
    let certificate = unb64(&result.certificate).map_err(|_| bad("certificate"))?;
    DeviceCertificate::for_device(certificate, &result.certificate_serial, &device_public_key)
        .map_err(|e| Failure::new(step, format!("device certificate: {e}")))?;
    Ok(App {
        email: user.email.clone(),
        device_id: result.device_id,
        device_key,
        pin_key,
        server_signing_key,
        server_encryption_key,
    })
}

// ---------------------------------------------------------------------------------------------
// One login.

/// Times one HTTP exchange into `times`.
pub fn timed(
    times: &mut Vec<(Step, u32)>,
    step: Step,
    connection: &mut Connection,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Answer, Failure> {
    let started = Instant::now();
    let answer = connection
        .request(method, path, headers, body)
        .map_err(|e| Failure::new(step.as_str(), e))?;
    times.push((step, micros(started.elapsed())));
    Ok(answer)
}

pub fn micros(duration: Duration) -> u32 {
    u32::try_from(duration.as_micros()).unwrap_or(u32::MAX)
}

/// Runs one login of `app`'s user, the browser on `browser` and the phone on `phone`; the steps'
/// times go to `times`. `Ok` carries the new session's cookie. The steps, in the protocol's
/// order (the app can fetch only once the start has committed, the browser can complete only
/// once the approval has):
/// 1. `form`: `GET /login/mobile` without a cookie: a new session and its CSRF token;
/// 2. `start`: `POST /login/mobile` (csrf, username) → 303 to `/login/mobile/{txn}`;
/// 3. `wait_page` (browser `full` only): the waiting page and the code it shows;
/// 4. `inbox`: [`App::fetch`], the request of `txn`; its code must be the page's;
/// 5. `approve`: [`App::approve`];
/// 6. `status` (browser `full` only): the page's poll → `approved`;
/// 7. `complete`: `POST /login/mobile/{txn}/complete` with the form's CSRF token → 303 to
///    `/account` with a new `sid`.
pub fn login(
    app: &App,
    browser: &mut Connection,
    phone: &mut Connection,
    mode: BrowserMode,
    times: &mut Vec<(Step, u32)>,
) -> Result<String, Failure> {
    login_to(app, browser, phone, mode, times, None, "/account")
}

/// [`login`] in a browser that also carries the cookie `extra` (`name=value`: the `next` cookie
/// of a service's authorization request), completing with a 303 to `landing`.
pub fn login_to(
    app: &App,
    browser: &mut Connection,
    phone: &mut Connection,
    mode: BrowserMode,
    times: &mut Vec<(Step, u32)>,
    extra: Option<&str>,
    landing: &str,
) -> Result<String, Failure> {
    // 1. The form: a new session and its CSRF token.
    let mut first = vec![("User-Agent", USER_AGENT)];
    first.extend(extra.map(|cookie| ("Cookie", cookie)));
    let form = timed(
        times,
        Step::Form,
        browser,
        "GET",
        "/login/mobile",
        &first,
        b"",
    )?;
    if form.status != 200 {
        return Err(Failure::new("form", form.describe()));
    }
    let sid = form
        .cookie("sid")
        .ok_or_else(|| Failure::new("form", "no sid cookie"))?
        .to_owned();
    let html = form.text();
    let csrf = between(&html, "name=\"csrf\" value=\"", "\"")
        .ok_or_else(|| Failure::new("form", "no CSRF field"))?
        .to_owned();
    let cookie = match extra {
        Some(extra) => format!("sid={sid}; {extra}"),
        None => format!("sid={sid}"),
    };
    let page_headers = [("User-Agent", USER_AGENT), ("Cookie", cookie.as_str())];
    let form_headers = [
        ("User-Agent", USER_AGENT),
        ("Cookie", cookie.as_str()),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];

    // 2. The start.
    let body = format!(
        "csrf={}&username={}",
        url_encode(&csrf),
        url_encode(&app.email)
    );
    let started = timed(
        times,
        Step::Start,
        browser,
        "POST",
        "/login/mobile",
        &form_headers,
        body.as_bytes(),
    )?;
    if started.status == 429 {
        return Err(Failure {
            kind: "start: HTTP 429 (rate limited)".into(),
            rate_limited: true,
        });
    }
    if started.status != 303 {
        return Err(Failure::new("start", started.describe()));
    }
    let location = started.header("location").unwrap_or_default().to_owned();
    let txn = location
        .strip_prefix("/login/mobile/")
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric()))
        .ok_or_else(|| Failure::new("start", "303 not to /login/mobile/{txn}"))?
        .to_owned();

    // 3. The waiting page and its code.
    let shown_code = if mode == BrowserMode::Full {
        let page = timed(
            times,
            Step::WaitPage,
            browser,
            "GET",
            &location,
            &page_headers,
            b"",
        )?;
        if page.status != 200 {
            return Err(Failure::new("wait_page", page.describe()));
        }
        let html = page.text();
        let code = between(&html, "data-testid=\"verification-code\">", "<")
            .ok_or_else(|| Failure::new("wait_page", "no verification code"))?;
        Some(code.trim().to_owned())
    } else {
        None
    };

    // 4. The app fetches and verifies its requests.
    let request = app.fetch(phone, times, |request| request.txn_id() == txn)?;
    if shown_code
        .as_ref()
        .is_some_and(|shown| shown != request.verification_code().as_str())
    {
        return Err(Failure::new(
            "wait_page",
            "the browser's code is not the app's",
        ));
    }

    // 5. The approval: device signature and sealed PIN proof over the approval message.
    app.approve(phone, times, &request)?;

    // 6. The waiting page's poll sees the approval.
    if mode == BrowserMode::Full {
        let status_path = format!("{location}/status");
        let status = timed(
            times,
            Step::Status,
            browser,
            "GET",
            &status_path,
            &page_headers,
            b"",
        )?;
        let value: serde_json::Value = serde_json::from_slice(&status.body).unwrap_or_default();
        if status.status != 200 || value.get("status").and_then(|s| s.as_str()) != Some("approved")
        {
            return Err(Failure::new(
                "status",
                format!(
                    "HTTP {} {}",
                    status.status,
                    value.get("status").unwrap_or(&value)
                ),
            ));
        }
    }

    // 7. The browser completes: 303 to /account with a new session.
    let body = format!("csrf={}", url_encode(&csrf));
    let done = timed(
        times,
        Step::Complete,
        browser,
        "POST",
        &format!("{location}/complete"),
        &form_headers,
        body.as_bytes(),
    )?;
    // A redirect to the account; on to a service's request, a page that goes there by itself
    // (its refresh; the page writes the URL's `&` as `&#38;`).
    let landed = match done.status {
        303 => done.header("location").map(str::to_owned),
        200 => between(
            &done.text(),
            "http-equiv=\"refresh\" content=\"0; url=",
            "\"",
        )
        .map(|url| url.replace("&#38;", "&")),
        _ => None,
    };
    if landed.as_deref() != Some(landing) {
        return Err(Failure::new(
            "complete",
            format!(
                "HTTP {} to {}",
                done.status,
                if landed.is_some() {
                    "elsewhere"
                } else {
                    "nowhere"
                }
            ),
        ));
    }
    match done.cookie("sid") {
        Some(new) if new != sid => Ok(new.to_owned()),
        _ => Err(Failure::new("complete", "no new sid cookie")),
    }
}

// ---------------------------------------------------------------------------------------------
// CPU use during the measured seconds (Linux `/proc`; absent elsewhere).

/// Clock ticks per second of `/proc` times (USER_HZ, 100 on Linux).
pub const TICKS_PER_SECOND: f64 = 100.0;

/// CPU ticks so far: of the server, of this process, and the machine's busy and total ones.
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    pub at: Instant,
    pub server: Option<u64>,
    pub client: Option<u64>,
    pub machine: Option<(u64, u64)>,
}

impl CpuSample {
    pub fn take(server_pid: Option<u32>) -> Self {
        Self {
            at: Instant::now(),
            server: server_pid.and_then(|pid| process_ticks(&pid.to_string())),
            client: process_ticks("self"),
            machine: machine_ticks(),
        }
    }
}

/// utime + stime of a process, all its threads (proc(5): fields 14 and 15 of `stat`).
pub fn process_ticks(pid: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = text.get(text.rfind(')')? + 1..)?;
    let mut fields = after_name.split_whitespace();
    let user: u64 = fields.nth(11)?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

/// (busy, total) ticks of all CPUs (the `cpu` line of `/proc/stat`; idle and iowait are not busy).
pub fn machine_ticks() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?.strip_prefix("cpu ")?;
    let values: Vec<u64> = line
        .split_whitespace()
        .take(8)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = values.iter().sum();
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// CPU use between two samples: (server cores, client cores, machine busy cores).
pub fn cpu_use(from: &CpuSample, to: &CpuSample) -> (Option<f64>, Option<f64>, Option<f64>) {
    let seconds = (to.at - from.at).as_secs_f64().max(0.001);
    let cores = |a: Option<u64>, b: Option<u64>| {
        Some((b?.saturating_sub(a?)) as f64 / TICKS_PER_SECOND / seconds)
    };
    let machine = match (from.machine, to.machine) {
        (Some((busy_a, total_a)), Some((busy_b, total_b))) if total_b > total_a => {
            let all = std::thread::available_parallelism()
                .map(|n| n.get() as f64)
                .unwrap_or(1.0);
            Some((busy_b - busy_a) as f64 / (total_b - total_a) as f64 * all)
        }
        _ => None,
    };
    (
        cores(from.server, to.server),
        cores(from.client, to.client),
        machine,
    )
}
pub fn percentile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    f64::from(sorted.get(rank - 1).copied().unwrap_or(0)) / 1000.0
}
