//! Login benchmark (issue 3): complete mobile logins per second, server side, with many
//! simulated ConsentID apps at once. `scripts/bench login` enrols the users, starts the server
//! and runs this; `scripts/README.md` says how.
//!
//! ```text
//! login_bench --server http://127.0.0.1:PORT --users users.jsonl [--concurrency 50]
//!             [--seconds 15] [--warmup-seconds 3] [--addresses 1] [--browser full|minimal]
//!             [--label sqlite] [--json-out FILE]
//! ```
//!
//! `users.jsonl` holds one `eidportal user add --json` answer per line (`email`,
//! `activation_code`). Every app is activated first (not measured), then `--concurrency`
//! worker threads run logins for `--warmup-seconds` (not counted) and `--seconds` (counted).
//!
//! One login, as a browser and a phone do it; each step is timed on its own:
//! 1. `form`: the browser, without a cookie, opens `GET /login/mobile`: a new session (`sid`)
//!    and its CSRF token;
//! 2. `start`: `POST /login/mobile` (csrf, username) → 303 to `/login/mobile/{txn}`;
//! 3. `wait_page` (browser `full` only): `GET /login/mobile/{txn}`, the code it shows;
//! 4. `inbox`: the app's signed `GET /api/app/v1/inbox?wait=5`; the envelopes are verified
//!    against the server key pinned at activation, and one must be `txn`;
//! 5. `approve`: the app's signed `POST /api/app/v1/requests/{txn}/response`: the approval
//!    message (proto `approval_message`) signed by the device key, the PIN proof signed by the
//!    PIN key and sealed to the server's encryption key (aad = txn) → `approved`;
//! 6. `status` (browser `full` only): `GET /login/mobile/{txn}/status` → `approved`, as the
//!    waiting page's script polls it;
//! 7. `complete`: `POST /login/mobile/{txn}/complete` with the CSRF token of the session of
//!    step 1 (the start keeps the session, so the form's token is the waiting page's) → 303 to
//!    `/account` with a new `sid`. Only logins that get this far count.
//!
//! The order is the protocol's: the app can fetch only once the start has committed, and the
//! browser can complete only once the approval has. A worker runs its users' logins one after
//! the other, so a user never has two requests at once (a second one would supersede the
//! first). Each user has its own keep-alive connection for the browser and one for the app.
//!
//! The simulated app speaks `proto` itself and uses the `consentid` library where it offers
//! the piece (`DeviceKey`, `verify_envelope`, `DeviceCertificate`, `SystemClock`). Its PIN
//! key is a random P-256 key made once per app: it stands in for a cached
//! `consentid::PinKey::derive` (Argon2id, 64 MiB), whose cost is the phone's; the server
//! checks it exactly as it checks a derived one. Signing and sealing happen before a step's
//! clock starts: a step's time is its HTTP exchange.
//!
//! Rate limits. The server allows 5 login starts per user and 20 per address in 10 minutes,
//! and 10 activation calls per address (`domain::RateLimit`). Each app is activated from its
//! own loopback address (127.1.x.y, four apps per address; setup, not measured). Logins come
//! from 127.0.0.1 unless `--addresses K` spreads the users over 127.0.0.1..: a login start
//! refused with 429 is counted as such, its user is parked for the rest of the run, and the
//! report says that the numbers are not the server's capacity.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use consentid::{verify_envelope, Clock, DeviceCertificate, DeviceKey, SystemClock, VerifiedRequest};
use p256::{PublicKey, SecretKey};
use proto::app::{
    ActivationChallenge, ActivationComplete, ActivationResult, ActivationStart, Decision, ErrorBody, Inbox,
    Response as AppResponse, ResponseOutcome, ResponseResult,
};
use proto::{b64, crypto, unb64};
use serde::Deserialize;

/// Longest wait for a connection, a write or an answer.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest answer body read.
const MAX_BODY: usize = 4 * 1024 * 1024;
/// Apps activated from one loopback address (the server allows 10 activation calls, that is
/// 5 activations, per address in 10 minutes).
const ACTIVATIONS_PER_ADDRESS: usize = 4;
/// What the browser sends as its User-Agent (the app shows "Chrome / Linux").
const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0 eidportal-login-bench";

#[derive(Debug, Parser)]
#[command(about = "Complete mobile logins per second against a running eidportal (issue 3)")]
struct Args {
    /// The server, `http://IPv4:PORT`.
    #[arg(long)]
    server: String,
    /// JSON lines from `eidportal user add --json` (`email`, `activation_code`).
    #[arg(long)]
    users: PathBuf,
    /// Worker threads, each running logins for its share of the users.
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// Seconds of logins before the measured ones (not counted).
    #[arg(long, default_value_t = 3)]
    warmup_seconds: u64,
    /// Threads activating the apps (setup, not measured).
    #[arg(long, default_value_t = 2)]
    activation_threads: usize,
    /// Loopback source addresses the users' browsers and apps are spread over (127.0.0.1 and
    /// on); 1 = every login from 127.0.0.1.
    #[arg(long, default_value_t = 1)]
    addresses: usize,
    /// `full`: the browser also loads the waiting page and polls the status once, as the page's
    /// script does; `minimal`: form, start, complete only.
    #[arg(long, value_enum, default_value_t = BrowserMode::Full)]
    browser: BrowserMode,
    /// The server's process id, to report its CPU time per login (Linux `/proc`).
    #[arg(long)]
    server_pid: Option<u32>,
    /// A name for the report (e.g. the database).
    #[arg(long, default_value = "eidportal")]
    label: String,
    /// Also write the results as JSON here.
    #[arg(long)]
    json_out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BrowserMode {
    Full,
    Minimal,
}

impl BrowserMode {
    fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Minimal => "minimal",
        }
    }
}

/// A timed step of a login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Form,
    Start,
    WaitPage,
    Inbox,
    Approve,
    Status,
    Complete,
    /// The whole login, form to complete, client work included.
    Login,
}

impl Step {
    const ALL: [Step; 8] =
        [Self::Form, Self::Start, Self::WaitPage, Self::Inbox, Self::Approve, Self::Status, Self::Complete, Self::Login];

    fn as_str(self) -> &'static str {
        match self {
            Self::Form => "form",
            Self::Start => "start",
            Self::WaitPage => "wait_page",
            Self::Inbox => "inbox",
            Self::Approve => "approve",
            Self::Status => "status",
            Self::Complete => "complete",
            Self::Login => "login",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Self::Form => "GET /login/mobile (new session)",
            Self::Start => "POST /login/mobile -> 303",
            Self::WaitPage => "GET /login/mobile/{txn}",
            Self::Inbox => "app GET /api/app/v1/inbox?wait=5",
            Self::Approve => "app POST .../requests/{txn}/response",
            Self::Status => "GET /login/mobile/{txn}/status",
            Self::Complete => "POST .../complete -> 303 /account",
            Self::Login => "whole login, form to complete",
        }
    }
}

/// Why a login (or an activation) failed: a short kind for the error table.
#[derive(Debug)]
struct Failure {
    kind: String,
    rate_limited: bool,
}

impl Failure {
    fn new(step: &str, what: impl std::fmt::Display) -> Self {
        Self { kind: format!("{step}: {what}"), rate_limited: false }
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 with keep-alive, from a chosen loopback address.

/// A parsed answer.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The value a `Set-Cookie` gives to `name`.
    fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == "set-cookie")
            .filter_map(|(_, v)| v.split(';').next()?.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// "HTTP 409 not_pending" (the API's error code when there is one).
    fn describe(&self) -> String {
        match serde_json::from_slice::<ErrorBody>(&self.body) {
            Ok(body) => format!("HTTP {} {}", self.status, body.error),
            Err(_) => format!("HTTP {}", self.status),
        }
    }
}

/// One keep-alive connection to the server.
struct Connection {
    server: SocketAddrV4,
    source: Option<Ipv4Addr>,
    stream: Option<BufReader<TcpStream>>,
}

impl Connection {
    fn new(server: SocketAddrV4, source: Option<Ipv4Addr>) -> Self {
        Self { server, source, stream: None }
    }

    fn connect(&self) -> std::io::Result<TcpStream> {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
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
    fn request(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<Answer, String> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n", self.server, body.len());
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
                None => BufReader::new(self.connect().map_err(|e| format!("transport: connect: {}", e.kind()))?),
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
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    // The connection is in an unknown state: it is dropped.
                    return Err(format!("transport: no answer within {} s", IO_TIMEOUT.as_secs()));
                }
                Err(e) => return Err(format!("transport: read: {}", e.kind())),
            }
        }
        Err("transport: closed without an answer".into())
    }
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

/// Reads one answer; `None` when the connection was closed before its first byte. The flag
/// says whether the connection may be used again.
fn read_answer(stream: &mut BufReader<TcpStream>) -> std::io::Result<Option<(Answer, bool)>> {
    let mut line = String::new();
    match stream.read_line(&mut line) {
        Ok(0) => return Ok(None),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(None),
        Err(e) => return Err(e),
    }
    let status: u16 = line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| invalid("status line"))?;
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
    let find = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.to_ascii_lowercase());
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
    Ok(Some((Answer { status, headers, body }, keep)))
}

fn url_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => char::from(b).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// The text between `start` and `end`.
fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let rest = text.get(from..)?;
    rest.get(..rest.find(end)?)
}

/// `127.RANGE.x.y`, the `index`-th address of a range (254 per /24, no .0 or .255).
fn loopback(range: u8, index: usize) -> Ipv4Addr {
    let high = u8::try_from(index / 254).unwrap_or(u8::MAX);
    let low = u8::try_from(index % 254 + 1).unwrap_or(1);
    Ipv4Addr::new(127, range, high, low)
}

// ---------------------------------------------------------------------------------------------
// The simulated app.

/// A line of `eidportal user add --json`.
#[derive(Debug, Deserialize)]
struct Enrolled {
    email: String,
    activation_code: String,
}

/// An activated ConsentID app.
struct App {
    email: String,
    device_id: String,
    device_key: DeviceKey,
    /// Stands in for the cached `PinKey::derive` result (see the file's doc).
    pin_key: SecretKey,
    server_signing_key: Vec<u8>,
    server_encryption_key: PublicKey,
}

impl App {
    /// `Authorization: CID-Device ...` for one request (`proto::crypto::request_message`).
    fn authorization(&self, method: &str, path_and_query: &str, body: &[u8]) -> String {
        let now = SystemClock.now();
        let nonce = b64(&rand::random::<[u8; 16]>());
        let message = crypto::request_message(method, path_and_query, now, &nonce, body);
        let signature = self.device_key.sign(message.as_bytes());
        crypto::authorization_header(&self.device_id, now, &nonce, &signature)
    }
}

fn json_post<T: serde::de::DeserializeOwned>(
    connection: &mut Connection,
    step: &str,
    path: &str,
    body: &impl serde::Serialize,
) -> Result<T, Failure> {
    let body = serde_json::to_vec(body).map_err(|e| Failure::new(step, e))?;
    let answer = connection
        .request("POST", path, &[("Content-Type", "application/json"), ("Accept", "application/json")], &body)
        .map_err(|e| Failure::new(step, e))?;
    if answer.status != 200 {
        return Err(Failure { kind: format!("{step}: {}", answer.describe()), rate_limited: answer.status == 429 });
    }
    serde_json::from_slice(&answer.body).map_err(|e| Failure::new(step, format!("bad JSON: {e}")))
}

/// Activates one app (reference/mobile-auth.md §7.3, as `consentid::activate` does it, with a
/// PIN key that is not derived).
fn activate(connection: &mut Connection, user: &Enrolled) -> Result<App, Failure> {
    let step = "activation";
    let challenge: ActivationChallenge = json_post(
        connection,
        "activation start",
        "/api/app/v1/activation/start",
        &ActivationStart { code: user.activation_code.clone() },
    )?;
    let bad = |what: &str| Failure::new(step, what);
    let server_signing_key = unb64(&challenge.server_signing_key).map_err(|_| bad("server signing key"))?;
    crypto::public_key(&server_signing_key).map_err(|_| bad("server signing key"))?;
    let server_encryption_key = crypto::unb64(&challenge.server_encryption_key)
        .ok()
        .and_then(|der| crypto::public_key(&der).ok())
        .ok_or_else(|| bad("server encryption key"))?;

    let device_key = DeviceKey::generate();
    let device_public_key = device_key.public_key_der();
    let pin_key = SecretKey::random(&mut rand::rngs::OsRng);
    let aad = challenge.activation_id.as_bytes();
    let sealed_pin_key = crypto::seal(&server_encryption_key, &crypto::public_key_der(&pin_key.public_key()), aad)
        .map_err(|_| bad("sealing"))?;
    let message = crypto::activation_message(&challenge.activation_id, &challenge.nonce, &device_public_key, &sealed_pin_key);
    let device_signature = device_key.sign(message.as_bytes());
    let sealed_pin_signature = crypto::seal(&server_encryption_key, &crypto::sign(&pin_key, message.as_bytes()), aad)
        .map_err(|_| bad("sealing"))?;
    let complete = ActivationComplete {
        activation_id: challenge.activation_id.clone(),
        device_public_key: b64(&device_public_key),
        device_name: "login-bench".into(),
        encrypted_pin_public_key: b64(&sealed_pin_key),
        device_signature: b64(&device_signature),
        encrypted_pin_signature: b64(&sealed_pin_signature),
    };
    let result: ActivationResult =
        json_post(connection, "activation complete", "/api/app/v1/activation/complete", &complete)?;
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

/// A user as a worker drives it: the app, the browser's and the app's connections.
struct User {
    app: App,
    browser: Connection,
    phone: Connection,
    parked: bool,
}

/// Times one HTTP exchange into `times`.
fn timed(
    times: &mut Vec<(Step, u32)>,
    step: Step,
    connection: &mut Connection,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Answer, Failure> {
    let started = Instant::now();
    let answer = connection.request(method, path, headers, body).map_err(|e| Failure::new(step.as_str(), e))?;
    times.push((step, micros(started.elapsed())));
    Ok(answer)
}

fn micros(duration: Duration) -> u32 {
    u32::try_from(duration.as_micros()).unwrap_or(u32::MAX)
}

/// Runs one login; the steps' times go to `times`. `Ok` carries the new session's cookie.
fn login(user: &mut User, mode: BrowserMode, times: &mut Vec<(Step, u32)>) -> Result<String, Failure> {
    let User { app, browser, phone, .. } = user;

    // 1. The form: a new session and its CSRF token.
    let form = timed(times, Step::Form, browser, "GET", "/login/mobile", &[("User-Agent", USER_AGENT)], b"")?;
    if form.status != 200 {
        return Err(Failure::new("form", form.describe()));
    }
    let sid = form.cookie("sid").ok_or_else(|| Failure::new("form", "no sid cookie"))?.to_owned();
    let html = form.text();
    let csrf = between(&html, "name=\"csrf\" value=\"", "\"").ok_or_else(|| Failure::new("form", "no CSRF field"))?.to_owned();
    let cookie = format!("sid={sid}");
    let page_headers = [("User-Agent", USER_AGENT), ("Cookie", cookie.as_str())];
    let form_headers =
        [("User-Agent", USER_AGENT), ("Cookie", cookie.as_str()), ("Content-Type", "application/x-www-form-urlencoded")];

    // 2. The start.
    let body = format!("csrf={}&username={}", url_encode(&csrf), url_encode(&app.email));
    let started = timed(times, Step::Start, browser, "POST", "/login/mobile", &form_headers, body.as_bytes())?;
    if started.status == 429 {
        return Err(Failure { kind: "start: HTTP 429 (rate limited)".into(), rate_limited: true });
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
        let page = timed(times, Step::WaitPage, browser, "GET", &location, &page_headers, b"")?;
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
    let path = "/api/app/v1/inbox?wait=5";
    let authorization = app.authorization("GET", path, b"");
    let inbox = timed(
        times,
        Step::Inbox,
        phone,
        "GET",
        path,
        &[("Authorization", &authorization), ("Accept", "application/json")],
        b"",
    )?;
    if inbox.status != 200 {
        return Err(Failure::new("inbox", inbox.describe()));
    }
    let inbox: Inbox = serde_json::from_slice(&inbox.body).map_err(|e| Failure::new("inbox", format!("bad JSON: {e}")))?;
    let request: VerifiedRequest = inbox
        .items
        .iter()
        .filter_map(|envelope| verify_envelope(&app.server_signing_key, envelope).ok())
        .find(|request| request.txn_id() == txn)
        .ok_or_else(|| Failure::new("inbox", "the request is not in the inbox (or does not verify)"))?;
    let code = request.verification_code().as_str().to_owned();
    if shown_code.as_ref().is_some_and(|shown| *shown != code) {
        return Err(Failure::new("wait_page", "the browser's code is not the app's"));
    }

    // 5. The approval: device signature and sealed PIN proof over the approval message.
    let payload = request.payload();
    let issued_at = SystemClock.now();
    let message = crypto::approval_message(
        &payload.txn_id,
        payload.kind,
        Decision::Approve,
        &payload.rp.id,
        &payload.challenge,
        request.payload_bytes(),
        &code,
        &app.device_id,
        issued_at,
    );
    let proof = crypto::sign(&app.pin_key, message.as_bytes());
    let sealed = crypto::seal(&app.server_encryption_key, &proof, payload.txn_id.as_bytes())
        .map_err(|_| Failure::new("approve", "sealing"))?;
    let answer = AppResponse {
        decision: Decision::Approve,
        reason: None,
        verification_code: code,
        issued_at,
        device_signature: b64(&app.device_key.sign(message.as_bytes())),
        pin_proof: Some(b64(&sealed)),
    };
    let body = serde_json::to_vec(&answer).map_err(|e| Failure::new("approve", e))?;
    let path = format!("/api/app/v1/requests/{txn}/response");
    let authorization = app.authorization("POST", &path, &body);
    let approved = timed(
        times,
        Step::Approve,
        phone,
        "POST",
        &path,
        &[("Authorization", &authorization), ("Content-Type", "application/json"), ("Accept", "application/json")],
        &body,
    )?;
    if approved.status != 200 {
        return Err(Failure::new("approve", approved.describe()));
    }
    let result: ResponseResult =
        serde_json::from_slice(&approved.body).map_err(|e| Failure::new("approve", format!("bad JSON: {e}")))?;
    if result.result != ResponseOutcome::Approved {
        return Err(Failure::new("approve", format!("answered {:?}", result.result)));
    }

    // 6. The waiting page's poll sees the approval.
    if mode == BrowserMode::Full {
        let status_path = format!("{location}/status");
        let status = timed(times, Step::Status, browser, "GET", &status_path, &page_headers, b"")?;
        let value: serde_json::Value = serde_json::from_slice(&status.body).unwrap_or_default();
        if status.status != 200 || value.get("status").and_then(|s| s.as_str()) != Some("approved") {
            return Err(Failure::new("status", format!("HTTP {} {}", status.status, value.get("status").unwrap_or(&value))));
        }
    }

    // 7. The browser completes: 303 to /account with a new session.
    let body = format!("csrf={}", url_encode(&csrf));
    let done = timed(times, Step::Complete, browser, "POST", &format!("{location}/complete"), &form_headers, body.as_bytes())?;
    if done.status != 303 || done.header("location") != Some("/account") {
        return Err(Failure::new(
            "complete",
            format!("HTTP {} to {}", done.status, done.header("location").map(|l| if l == "/account" { l } else { "elsewhere" }).unwrap_or("nowhere")),
        ));
    }
    match done.cookie("sid") {
        Some(new) if new != sid => Ok(new.to_owned()),
        _ => Err(Failure::new("complete", "no new sid cookie")),
    }
}

/// The logged-in session shows the account (checked once per worker, not timed).
fn check_account(user: &mut User, sid: &str) -> Result<(), Failure> {
    let cookie = format!("sid={sid}");
    let page = user
        .browser
        .request("GET", "/account", &[("User-Agent", USER_AGENT), ("Cookie", &cookie)], b"")
        .map_err(|e| Failure::new("account check", e))?;
    if page.status != 200 || !page.text().contains(&user.app.email) {
        return Err(Failure::new("account check", format!("HTTP {}, the account page does not name the user", page.status)));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Workers and the tally.

/// When the run counts.
#[derive(Clone, Copy)]
struct Window {
    from: Instant,
    to: Instant,
}

/// What a worker counted.
#[derive(Default)]
struct Tally {
    logins: u64,
    samples: BTreeMap<Step, Vec<u32>>,
    /// Failures by kind, over the whole run (warm-up included).
    errors: BTreeMap<String, u64>,
    /// Logins completed in each measured second.
    per_second: Vec<u64>,
    /// Logins completed during the warm-up.
    warmup_logins: u64,
    /// Users parked after a 429 at login start.
    parked: u64,
    /// When the last user of the worker was parked, seconds after the start.
    all_parked_at: Option<f64>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.logins += other.logins;
        self.warmup_logins += other.warmup_logins;
        self.parked += other.parked;
        for (step, mut values) in other.samples {
            self.samples.entry(step).or_default().append(&mut values);
        }
        for (kind, n) in other.errors {
            *self.errors.entry(kind).or_default() += n;
        }
        if self.per_second.len() < other.per_second.len() {
            self.per_second.resize(other.per_second.len(), 0);
        }
        for (mine, theirs) in self.per_second.iter_mut().zip(other.per_second) {
            *mine += theirs;
        }
        self.all_parked_at = match (self.all_parked_at, other.all_parked_at) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}

fn worker(mut users: Vec<User>, mode: BrowserMode, start: Instant, window: Window, progress: &AtomicU64) -> Tally {
    let seconds = usize::try_from((window.to - window.from).as_secs()).unwrap_or(0);
    let mut tally = Tally { per_second: vec![0; seconds.max(1)], ..Tally::default() };
    let mut times = Vec::with_capacity(8);
    let mut checked = false;
    let mut next = 0usize;
    while Instant::now() < window.to {
        let Some(index) = (0..users.len()).map(|k| (next + k) % users.len()).find(|&i| users.get(i).is_some_and(|u| !u.parked))
        else {
            tally.all_parked_at = Some(start.elapsed().as_secs_f64());
            break;
        };
        next = index + 1;
        let Some(user) = users.get_mut(index) else { break };
        times.clear();
        let began = Instant::now();
        let outcome = login(user, mode, &mut times);
        let finished = Instant::now();
        let counted = finished >= window.from && finished <= window.to;
        match outcome {
            Ok(sid) => {
                if !checked {
                    checked = true;
                    if let Err(failure) = check_account(user, &sid) {
                        *tally.errors.entry(failure.kind).or_default() += 1;
                        continue;
                    }
                }
                progress.fetch_add(1, Ordering::Relaxed);
                if counted {
                    tally.logins += 1;
                    for &(step, micros) in &times {
                        tally.samples.entry(step).or_default().push(micros);
                    }
                    tally.samples.entry(Step::Login).or_default().push(self::micros(finished - began));
                    let second = usize::try_from((finished - window.from).as_secs()).unwrap_or(usize::MAX);
                    if let Some(bucket) = tally.per_second.get_mut(second) {
                        *bucket += 1;
                    }
                } else if finished < window.from {
                    tally.warmup_logins += 1;
                }
            }
            Err(failure) => {
                *tally.errors.entry(failure.kind).or_default() += 1;
                if failure.rate_limited {
                    user.parked = true;
                    tally.parked += 1;
                } else {
                    // No hot loop on a persistent failure.
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }
    tally
}

// ---------------------------------------------------------------------------------------------
// CPU use during the measured seconds (Linux `/proc`; absent elsewhere).

/// Clock ticks per second of `/proc` times (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU ticks so far: of the server, of this process, and the machine's busy and total ones.
#[derive(Debug, Clone, Copy)]
struct CpuSample {
    at: Instant,
    server: Option<u64>,
    client: Option<u64>,
    machine: Option<(u64, u64)>,
}

impl CpuSample {
    fn take(server_pid: Option<u32>) -> Self {
        Self {
            at: Instant::now(),
            server: server_pid.and_then(|pid| process_ticks(&pid.to_string())),
            client: process_ticks("self"),
            machine: machine_ticks(),
        }
    }
}

/// utime + stime of a process, all its threads (proc(5): fields 14 and 15 of `stat`).
fn process_ticks(pid: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = text.get(text.rfind(')')? + 1..)?;
    let mut fields = after_name.split_whitespace();
    let user: u64 = fields.nth(11)?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

/// (busy, total) ticks of all CPUs (the `cpu` line of `/proc/stat`; idle and iowait are not busy).
fn machine_ticks() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?.strip_prefix("cpu ")?;
    let values: Vec<u64> = line.split_whitespace().take(8).filter_map(|v| v.parse().ok()).collect();
    let total: u64 = values.iter().sum();
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// CPU use between two samples: (server cores, client cores, machine busy cores).
fn cpu_use(from: &CpuSample, to: &CpuSample) -> (Option<f64>, Option<f64>, Option<f64>) {
    let seconds = (to.at - from.at).as_secs_f64().max(0.001);
    let cores = |a: Option<u64>, b: Option<u64>| Some((b?.saturating_sub(a?)) as f64 / TICKS_PER_SECOND / seconds);
    let machine = match (from.machine, to.machine) {
        (Some((busy_a, total_a)), Some((busy_b, total_b))) if total_b > total_a => {
            let all = std::thread::available_parallelism().map(|n| n.get() as f64).unwrap_or(1.0);
            Some((busy_b - busy_a) as f64 / (total_b - total_a) as f64 * all)
        }
        _ => None,
    };
    (cores(from.server, to.server), cores(from.client, to.client), machine)
}

// ---------------------------------------------------------------------------------------------
// Report.

/// What the report says besides the tally.
struct Setup {
    users: usize,
    workers: usize,
    activation_seconds: f64,
    activation_errors: BTreeMap<String, u64>,
    cpu: Option<(CpuSample, CpuSample)>,
}

fn percentile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    f64::from(sorted.get(rank - 1).copied().unwrap_or(0)) / 1000.0
}

fn run(args: &Args) -> Result<(), String> {
    let address = args.server.trim().trim_end_matches('/');
    let server: SocketAddrV4 = address
        .strip_prefix("http://")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("--server: `{}` is not http://IPv4:PORT", args.server))?;
    let local = server.ip().is_loopback();
    if args.addresses > 1 && !local {
        return Err("--addresses > 1 needs a server on a loopback address".into());
    }
    if args.concurrency == 0 || args.seconds == 0 {
        return Err("--concurrency and --seconds must be at least 1".into());
    }
    let text = std::fs::read_to_string(&args.users).map_err(|e| format!("{}: {e}", args.users.display()))?;
    let enrolled: Vec<Enrolled> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", args.users.display()))?;
    if enrolled.is_empty() {
        return Err(format!("{}: no users", args.users.display()));
    }

    // Activation, in parallel; each app from its own loopback address (see the file's doc).
    println!(
        "activating {} simulated apps ({} threads{})",
        enrolled.len(),
        args.activation_threads.clamp(1, enrolled.len()),
        if local { ", 4 per loopback address 127.1.x.y" } else { "" }
    );
    let activation_started = Instant::now();
    let queue = Arc::new(Mutex::new(enrolled.into_iter().enumerate().collect::<Vec<_>>()));
    let activation_errors = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
    let apps = Arc::new(Mutex::new(Vec::<(usize, App)>::new()));
    let handles: Vec<_> = (0..args.activation_threads.clamp(1, queue.lock().map(|q| q.len()).unwrap_or(1)))
        .map(|_| {
            let (queue, errors, apps) = (queue.clone(), activation_errors.clone(), apps.clone());
            std::thread::spawn(move || {
                // The guard drops when the closure returns: the queue is not held while working.
                let next = || queue.lock().ok().and_then(|mut q| q.pop());
                while let Some((index, user)) = next() {
                    let source = local.then(|| loopback(1, index / ACTIVATIONS_PER_ADDRESS));
                    let mut connection = Connection::new(server, source);
                    match activate(&mut connection, &user) {
                        Ok(app) => {
                            if let Ok(mut apps) = apps.lock() {
                                apps.push((index, app));
                            }
                        }
                        Err(failure) => {
                            if let Ok(mut errors) = errors.lock() {
                                *errors.entry(failure.kind).or_default() += 1;
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().map_err(|_| "an activation thread failed")?;
    }
    let mut apps = std::mem::take(&mut *apps.lock().map_err(|_| "activation results")?);
    apps.sort_by_key(|(index, _)| *index);
    let activation_errors = std::mem::take(&mut *activation_errors.lock().map_err(|_| "activation results")?);
    let activation_seconds = activation_started.elapsed().as_secs_f64();
    println!("activated {} apps in {activation_seconds:.1} s", apps.len());
    for (kind, n) in &activation_errors {
        println!("  activation failed {n}x: {kind}");
    }
    if activation_errors.keys().any(|k| k.contains("429")) {
        println!("  (429: the server's activation limit, 10 calls per address in 10 minutes)");
    }
    if apps.is_empty() {
        return Err("no app could be activated".into());
    }

    // The workers, each with its share of the users.
    let users_count = apps.len();
    let workers = args.concurrency.min(users_count);
    let mut shares: Vec<Vec<User>> = (0..workers).map(|_| Vec::new()).collect();
    for (position, (_, app)) in apps.into_iter().enumerate() {
        let source = (args.addresses > 1).then(|| loopback(0, position % args.addresses));
        let user = User { app, browser: Connection::new(server, source), phone: Connection::new(server, source), parked: false };
        if let Some(share) = shares.get_mut(position % workers) {
            share.push(user);
        }
    }
    println!(
        "running {workers} workers over {users_count} users for {} s warm-up + {} s measured (browser {}, logins from {})",
        args.warmup_seconds,
        args.seconds,
        args.browser.as_str(),
        if args.addresses > 1 { format!("{} loopback addresses", args.addresses) } else { "127.0.0.1".into() }
    );
    let barrier = Arc::new(Barrier::new(workers + 1));
    let progress = Arc::new(AtomicU64::new(0));
    let epoch = Arc::new(Mutex::new(None::<(Instant, Window)>));
    let handles: Vec<_> = shares
        .into_iter()
        .map(|share| {
            let (barrier, progress, epoch, mode) = (barrier.clone(), progress.clone(), epoch.clone(), args.browser);
            std::thread::spawn(move || {
                barrier.wait();
                let Some((start, window)) = epoch.lock().ok().and_then(|e| *e) else { return Tally::default() };
                worker(share, mode, start, window, &progress)
            })
        })
        .collect();
    let start = Instant::now();
    let window = Window {
        from: start + Duration::from_secs(args.warmup_seconds),
        to: start + Duration::from_secs(args.warmup_seconds + args.seconds),
    };
    *epoch.lock().map_err(|_| "start")? = Some((start, window));
    barrier.wait();
    let mut next_note = start + Duration::from_secs(5);
    let mut cpu_from = (args.warmup_seconds == 0).then(|| CpuSample::take(args.server_pid));
    while Instant::now() < window.to && handles.iter().any(|h| !h.is_finished()) {
        std::thread::sleep(Duration::from_millis(100));
        if cpu_from.is_none() && Instant::now() >= window.from {
            cpu_from = Some(CpuSample::take(args.server_pid));
        }
        if Instant::now() >= next_note {
            next_note += Duration::from_secs(5);
            eprintln!("  {:>3} s: {} logins completed", start.elapsed().as_secs(), progress.load(Ordering::Relaxed));
        }
    }
    let cpu = cpu_from.map(|from| (from, CpuSample::take(args.server_pid)));
    let mut tally = Tally::default();
    for handle in handles {
        tally.merge(handle.join().map_err(|_| "a worker thread failed")?);
    }
    let setup = Setup { users: users_count, workers, activation_seconds, activation_errors, cpu };
    report(args, &tally, &setup)
}

fn report(args: &Args, tally: &Tally, setup: &Setup) -> Result<(), String> {
    let users = setup.users;
    let rate = tally.logins as f64 / args.seconds as f64;
    let mut per_second = tally.per_second.clone();
    per_second.sort_unstable();
    let median_second = per_second.get(per_second.len() / 2).copied().unwrap_or(0);
    println!();
    println!("== {}: {} logins completed in {} s: {rate:.1} logins/s", args.label, tally.logins, args.seconds);
    println!(
        "   per second: min {}, median {median_second}, max {}; {} more during the warm-up",
        per_second.first().copied().unwrap_or(0),
        per_second.last().copied().unwrap_or(0),
        tally.warmup_logins
    );
    println!("   {:<10} {:>7} {:>9} {:>9} {:>9} {:>9}  what", "step", "count", "p50 ms", "p90 ms", "p99 ms", "max ms");
    let mut steps = serde_json::Map::new();
    for step in Step::ALL {
        let Some(values) = tally.samples.get(&step) else { continue };
        let mut sorted = values.clone();
        sorted.sort_unstable();
        let (p50, p90, p99, max) =
            (percentile(&sorted, 0.5), percentile(&sorted, 0.9), percentile(&sorted, 0.99), percentile(&sorted, 1.0));
        println!("   {:<10} {:>7} {p50:>9.2} {p90:>9.2} {p99:>9.2} {max:>9.2}  {}", step.as_str(), sorted.len(), step.what());
        steps.insert(
            step.as_str().into(),
            serde_json::json!({ "count": sorted.len(), "p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "max_ms": max }),
        );
    }
    let failed: u64 = tally.errors.values().sum();
    if tally.errors.is_empty() {
        println!("   errors: none");
    } else {
        println!("   errors ({failed}, warm-up included):");
        for (kind, n) in &tally.errors {
            println!("     {n:>7}  {kind}");
        }
    }
    let (server_cores, client_cores, machine_cores) = match &setup.cpu {
        Some((from, to)) => cpu_use(from, to),
        None => (None, None, None),
    };
    let per_login = |cores: Option<f64>| cores.filter(|_| rate > 0.0).map(|c| c * 1000.0 / rate);
    let all_cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let describe = |cores: Option<f64>| match (cores, per_login(cores)) {
        (Some(c), Some(ms)) => format!("{c:.2} cores = {ms:.2} ms CPU per login"),
        (Some(c), None) => format!("{c:.2} cores"),
        _ => "unknown".to_owned(),
    };
    println!(
        "   CPU over the measured seconds ({all_cores} cores): server {}; login_bench {}; whole machine {} cores busy",
        describe(server_cores),
        describe(client_cores),
        machine_cores.map(|c| format!("{c:.2}")).unwrap_or_else(|| "?".into())
    );
    let rate_limited: u64 = tally.errors.iter().filter(|(k, _)| k.contains("429")).map(|(_, n)| n).sum();
    if rate_limited > 0 {
        println!();
        println!("   RATE LIMITED: {rate_limited} login starts were refused with 429; {} of {users} users were parked", tally.parked);
        if let Some(at) = tally.all_parked_at {
            println!("   (every user of some worker was parked by {at:.1} s: the run stopped measuring early)");
        }
        println!("   The server allows 5 login starts per user and 20 per address in 10 minutes");
        println!("   (domain::RateLimit): the logins/s above are those limits, not the server's capacity.");
        println!("   Run against a server with the benchmark-only setting that lifts them, or stay within");
        println!("   them: for R logins/s over T s (warm-up included) use --addresses >= R*T/20 and");
        println!("   at least R*T/5 users.");
    }
    let result = serde_json::json!({
        "label": args.label,
        "logins": tally.logins,
        "seconds": args.seconds,
        "warmup_seconds": args.warmup_seconds,
        "logins_per_second": rate,
        "per_second": { "min": per_second.first(), "median": median_second, "max": per_second.last() },
        "warmup_logins": tally.warmup_logins,
        "steps": steps,
        "errors": tally.errors,
        "rate_limited": rate_limited,
        "parked_users": tally.parked,
        "users": users,
        "workers": setup.workers,
        "addresses": args.addresses,
        "browser": args.browser.as_str(),
        "activation_seconds": setup.activation_seconds,
        "activation_errors": setup.activation_errors,
        "cpu": {
            "cores": all_cores,
            "server_cores": server_cores,
            "server_ms_per_login": per_login(server_cores),
            "client_cores": client_cores,
            "client_ms_per_login": per_login(client_cores),
            "machine_busy_cores": machine_cores,
        },
    });
    if let Some(path) = &args.json_out {
        let text = serde_json::to_string_pretty(&result).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("login_bench: {message}");
            ExitCode::FAILURE
        }
    }
}
