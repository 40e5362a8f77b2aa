//! The subcommands of `consentid`, on top of the core library: they read the user's input,
//! print results and choose the exit code. Protocol behaviour (wiping a revoked device,
//! recording a PIN lock) stays in the core.

pub mod console;
pub mod text;
pub mod watch;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use consentid::{
    activate, three_codes, Client, Decision, DenyReason, DeviceStatus, Error, Inbox, Keystore,
    Outcome, Pin, PinRefusal, RequestKind, ServerUrl, Settings, VerificationCode, VerifiedRequest,
};
use serde_json::json;

/// Exit code: success (for `approve`, only when the server answered `approved`).
pub const EXIT_OK: u8 = 0;
/// Exit code: any other error.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code: wrong PIN.
pub const EXIT_WRONG_PIN: u8 = 3;
/// Exit code: the PIN is locked.
pub const EXIT_PIN_LOCKED: u8 = 4;
/// Exit code: the chosen verification code was wrong (the request was denied).
pub const EXIT_WRONG_CODE: u8 = 5;
/// Exit code: the request was not found or has expired.
pub const EXIT_NOT_FOUND: u8 = 6;
/// The browser is on another network and the user did not confirm being at that computer
/// (`--at-computer`): nothing was sent.
pub const EXIT_NOT_AT_COMPUTER: u8 = 7;

/// Longest single long-poll; longer waits are made of several.
const MAX_POLL_SECS: u32 = 25;

/// A command that did not succeed: what to tell the user and the exit code.
#[derive(Debug)]
pub struct Failure {
    /// The sentence for standard error.
    pub message: String,
    /// The exit code.
    pub code: u8,
}

impl Failure {
    /// A failure with exit code 1.
    pub fn message(message: String) -> Self {
        Self {
            message,
            code: EXIT_FAILURE,
        }
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        let code = match error {
            Error::PinLocked => EXIT_PIN_LOCKED,
            Error::RequestUnavailable { .. } => EXIT_NOT_FOUND,
            _ => EXIT_FAILURE,
        };
        Self {
            message: text::error(&error),
            code,
        }
    }
}

impl From<PinRefusal> for Failure {
    fn from(refusal: PinRefusal) -> Self {
        Error::PinPolicy(refusal).into()
    }
}

/// The home folder: `--home`, else `$CONSENTID_HOME`, else `$HOME/.consentid`.
pub fn home(flag: Option<PathBuf>) -> Result<PathBuf, Failure> {
    match flag {
        Some(home) => Ok(home),
        None => Ok(Keystore::default_home()?),
    }
}

fn open_client(home: &Path) -> Result<Client, Failure> {
    Ok(Client::open(home, Settings::default())?)
}

/// `consentid activate`.
pub fn activate_command(
    home: &Path,
    server: &str,
    ca_file: Option<std::path::PathBuf>,
    code: &str,
    pin_stdin: bool,
    name: Option<String>,
    json: bool,
) -> Result<u8, Failure> {
    // Before anything else: a plain-http address to another computer is refused here, before
    // any connection is tried.
    let server = ServerUrl::parse(server)?;
    let pin = if pin_stdin {
        Pin::choose(&console::require_line()?)?
    } else {
        let first = Pin::choose(&console::secret(text::NEW_PIN)?)?;
        let second = Pin::choose(&console::secret(text::REPEAT_PIN)?)?;
        if first != second {
            return Err(PinRefusal::Mismatch.into());
        }
        first
    };
    let name = name.unwrap_or_else(default_device_name);
    let settings = Settings {
        ca_file,
        ..Settings::default()
    };
    let keystore = activate(home, &server, code, &pin, &name, &settings)?;
    let certificate = keystore.certificate();
    let serial = certificate.map(|c| c.serial()).unwrap_or_default();
    let (not_before, not_after) = certificate
        .map(|c| (c.not_before(), c.not_after()))
        .unwrap_or_default();
    if json {
        let value = json!({
            "state": text::state_name(keystore.state()),
            "device_id": keystore.device_id(),
            "certificate_serial": serial,
            "not_before": not_before,
            "not_after": not_after,
            "server": keystore.server().as_str(),
        });
        println!("{value}");
    } else {
        println!("{}", text::ACTIVATED);
        println!("{}: {}", text::DEVICE, keystore.device_id());
        println!("{}: {serial}", text::CERTIFICATE_SERIAL);
        println!("{}", text::validity(not_before, not_after));
    }
    Ok(EXIT_OK)
}

fn default_device_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown host".to_owned());
    format!("consentid-cli on {host}")
}

/// Fetches the inbox, long-polling up to `wait_secs` in total until a request is pending.
fn fetch(client: &mut Client, wait_secs: u32) -> Result<Inbox, Failure> {
    let deadline = Instant::now() + Duration::from_secs(u64::from(wait_secs));
    loop {
        let remaining = u32::try_from(deadline.saturating_duration_since(Instant::now()).as_secs())
            .unwrap_or(u32::MAX);
        let asked = Instant::now();
        let inbox = client.inbox(remaining.min(MAX_POLL_SECS))?;
        for rejected in &inbox.rejected {
            eprintln!("{}", text::rejected(rejected));
        }
        if inbox.device_status == DeviceStatus::PinLocked {
            return Err(Error::PinLocked.into());
        }
        if !inbox.requests.is_empty() || Instant::now() >= deadline {
            return Ok(inbox);
        }
        if asked.elapsed() < Duration::from_secs(1) {
            // The server answered at once although nothing is pending: do not hammer it.
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

/// A short fingerprint of a base64url hash: the first 8 bytes in hex, in groups of two.
fn fingerprint(hash_b64: &str) -> String {
    match proto::unb64(hash_b64) {
        Ok(bytes) => proto::crypto::fingerprint(&bytes),
        Err(_) => hash_b64.chars().take(16).collect(),
    }
}

/// The "local notification": who asks, what for, from where, and the time left.
pub fn notification(request: &VerifiedRequest, now: i64) -> String {
    let payload = request.payload();
    let mut lines = vec![
        format!("=== {} ===", text::NEW_REQUEST),
        format!(
            "{}: {} ({})",
            text::WHO,
            text::shown(&payload.rp.name),
            text::shown(&payload.rp.id)
        ),
        format!("{}: {}", text::ACCOUNT, text::shown(&payload.user)),
        format!("{}: {}", text::WHAT, text::purpose(request)),
    ];
    if let Some(message) = &payload.message {
        lines.push(format!("{}: {}", text::MESSAGE, text::shown(message)));
    }
    if let Some(sign) = &payload.sign {
        for (index, document) in sign.documents.iter().enumerate() {
            lines.push(format!(
                "  {}. {}  [SHA-256 {}…]",
                index + 1,
                text::shown(&document.title),
                text::shown(&fingerprint(&document.hash))
            ));
        }
        lines.push(format!(
            "{}: {}",
            text::SIGNING_CERTIFICATE,
            text::shown(&sign.certificate_serial)
        ));
    }
    if let Some(operation) = &payload.certificate {
        lines.push(format!("  {}", text::shown(&operation.title)));
        if let (Some(number), Some(hash)) = (&operation.agreement_number, &operation.agreement_hash)
        {
            lines.push(format!(
                "{}: {}  [SHA-256 {}…]",
                text::AGREEMENT,
                text::shown(number),
                text::shown(&fingerprint(hash))
            ));
        }
        if let Some(serial) = &operation.certificate_serial {
            lines.push(format!("{}: {}", text::CERTIFICATE, text::shown(serial)));
        }
    }
    lines.push(format!(
        "{}: {}, {} {}",
        text::BROWSER,
        text::shown(&payload.context.browser),
        text::ADDRESS,
        text::shown(&payload.context.ip)
    ));
    if let Some(location) = request.from_another_network() {
        lines.push(text::another_network(location));
    }
    lines.push(format!(
        "{}: {}",
        text::TIME_LEFT,
        text::seconds(request.seconds_left(now))
    ));
    lines.push(format!(
        "{}: {}",
        text::TRANSACTION,
        text::shown(&payload.txn_id)
    ));
    lines.join("\n")
}

/// One row of `consentid pending`: every string from the server escaped.
fn pending_line(request: &VerifiedRequest, now: i64) -> String {
    let payload = request.payload();
    format!(
        "{}  {}  {}  {}  {} ({})  {}",
        text::shown(&payload.txn_id),
        text::kind_short(payload.kind),
        text::shown(&payload.rp.name),
        text::shown(&payload.user),
        text::shown(&payload.context.browser),
        text::shown(&payload.context.ip),
        text::seconds(request.seconds_left(now)),
    )
}

/// `consentid pending`.
pub fn pending_command(home: &Path, wait: u32, json: bool) -> Result<u8, Failure> {
    let mut client = open_client(home)?;
    let inbox = fetch(&mut client, wait)?;
    let now = client.now();
    if json {
        let items: Vec<_> = inbox
            .requests
            .iter()
            .map(|request| {
                let payload = request.payload();
                let mut item = json!({
                    "txn_id": payload.txn_id,
                    "kind": payload.kind,
                    "rp": payload.rp,
                    "user": payload.user,
                    "browser": payload.context.browser,
                    "ip": payload.context.ip,
                    "created_at": payload.created_at,
                    "expires_at": payload.expires_at,
                    "seconds_left": request.seconds_left(now),
                });
                if let Some(object) = item.as_object_mut() {
                    if let Some(message) = &payload.message {
                        object.insert("message".into(), json!(message));
                    }
                    if let Some(sign) = &payload.sign {
                        object.insert("documents".into(), json!(sign.documents));
                        object.insert("certificate_serial".into(), json!(sign.certificate_serial));
                    }
                    if let Some(operation) = &payload.certificate {
                        object.insert("certificate_operation".into(), json!(operation));
                    }
                    if let Some(location) = request.from_another_network() {
                        object.insert("another_network".into(), json!(location));
                    }
                }
                item
            })
            .collect();
        println!("{}", serde_json::Value::Array(items));
    } else if inbox.requests.is_empty() {
        println!("{}", text::NO_REQUESTS);
    } else {
        for request in &inbox.requests {
            println!("{}", pending_line(request, now));
        }
    }
    Ok(EXIT_OK)
}

/// Which request `approve` answers.
#[derive(Debug, Clone)]
pub enum Target {
    /// This transaction.
    Transaction(String),
    /// The first pending one, waiting up to this many seconds for one to arrive.
    Next(u32),
}

fn find(client: &mut Client, target: &Target) -> Result<VerifiedRequest, Failure> {
    let not_found = |message| Failure {
        message,
        code: EXIT_NOT_FOUND,
    };
    match target {
        Target::Transaction(txn_id) => fetch(client, 0)?
            .requests
            .into_iter()
            .find(|r| r.txn_id() == txn_id)
            .ok_or_else(|| not_found(text::request_not_found(txn_id))),
        Target::Next(wait) => fetch(client, *wait)?
            .requests
            .into_iter()
            .next()
            .ok_or_else(|| not_found(text::nothing_arrived(*wait))),
    }
}

/// Asks which of three codes the browser shows (1/2/3) on standard input.
fn choose_code(request: &VerifiedRequest) -> Result<VerificationCode, Failure> {
    let codes = three_codes(request.verification_code());
    loop {
        console::prompt(&text::code_prompt(&codes));
        let line = console::require_line()?;
        let index = match line.trim() {
            "1" => 0,
            "2" => 1,
            "3" => 2,
            _ => {
                eprintln!("{}", text::CODE_AGAIN);
                continue;
            }
        };
        if let Some(code) = codes.get(index) {
            return Ok(code.clone());
        }
    }
}

/// What an outcome means for the user and the exit code.
pub fn outcome_report(outcome: Outcome, wanted: Decision) -> (u8, String) {
    match outcome {
        Outcome::Approved => (EXIT_OK, text::APPROVED.to_owned()),
        Outcome::Denied if wanted == Decision::Deny => (EXIT_OK, text::DENIED.to_owned()),
        Outcome::Denied => (EXIT_FAILURE, text::UNEXPECTED_DENY.to_owned()),
        Outcome::WrongPin { attempts_left } => (EXIT_WRONG_PIN, text::wrong_pin(attempts_left)),
        Outcome::PinLocked => (EXIT_PIN_LOCKED, text::PIN_LOCKED.to_owned()),
        Outcome::WrongCode => (EXIT_WRONG_CODE, text::WRONG_CODE.to_owned()),
    }
}

fn finish(outcome: Outcome, wanted: Decision) -> Result<u8, Failure> {
    match outcome_report(outcome, wanted) {
        (EXIT_OK, message) => {
            println!("{message}");
            Ok(EXIT_OK)
        }
        (code, message) => Err(Failure { message, code }),
    }
}

/// `consentid approve`.
pub fn approve_command(
    home: &Path,
    target: &Target,
    code: Option<&str>,
    pin_stdin: bool,
    at_computer: bool,
) -> Result<u8, Failure> {
    // A malformed --code is refused before anything is fetched or sent.
    let given = code.map(VerificationCode::parse).transpose()?;
    let mut client = open_client(home)?;
    let mut request = find(&mut client, target)?;
    println!("{}", notification(&request, client.now()));
    if request.from_another_network().is_some() {
        // The browser is elsewhere: approving needs the user's word that they sit at it.
        let confirmed = at_computer || (!pin_stdin && console::confirm(text::AT_COMPUTER_PROMPT)?);
        if !confirmed {
            return Err(Failure {
                message: text::AT_COMPUTER_NEEDED.to_owned(),
                code: EXIT_NOT_AT_COMPUTER,
            });
        }
        request.confirm_at_computer();
    }
    let picked = match given {
        Some(code) => code,
        // A signature is matched by its documents, a certificate operation by its agreement and
        // certificate, shown above: no browser shows a code.
        // A login the phone did not get by username (a QR code, a link, a service's own
        // server) has no browser showing a code either.
        None if request.kind() != RequestKind::Login || request.payload().flow.is_some() => {
            request.verification_code().clone()
        }
        None => choose_code(&request)?,
    };
    if &picked != request.verification_code() {
        // No PIN for a deny: the core sends `wrong_vc` and the server ends the request.
        let outcome = client.respond(&request, Decision::Approve, &picked, None, None)?;
        return finish(outcome, Decision::Approve);
    }
    let pin = if pin_stdin {
        console::require_line()?
    } else {
        console::secret(&text::approve_pin_prompt())?
    };
    let pin = Pin::enter(&pin)?;
    let outcome = client.respond(&request, Decision::Approve, &picked, Some(&pin), None)?;
    finish(outcome, Decision::Approve)
}

/// `consentid deny`.
pub fn deny_command(home: &Path, txn_id: &str, not_me: bool) -> Result<u8, Failure> {
    let mut client = open_client(home)?;
    let request = find(&mut client, &Target::Transaction(txn_id.to_owned()))?;
    let reason = if not_me {
        DenyReason::NotMe
    } else {
        DenyReason::UserDeny
    };
    let code = request.verification_code().clone();
    let outcome = client.respond(&request, Decision::Deny, &code, None, Some(reason))?;
    finish(outcome, Decision::Deny)
}

/// `consentid status`.
pub fn status_command(home: &Path, json: bool) -> Result<u8, Failure> {
    let keystore = Keystore::open(home)?;
    let local_only = keystore.state() == DeviceStatus::Deactivated;
    let mut client = Client::new(keystore, Settings::default());
    let mut from_server = None;
    if !local_only {
        match client.status() {
            Ok(state) => from_server = Some(state),
            Err(Error::DeviceRevoked | Error::Deactivated | Error::PinLocked) => {}
            Err(e @ Error::Unreachable { .. }) => {
                eprintln!("{}\n{}", text::STATUS_LOCAL, text::error(&e))
            }
            Err(e) => eprintln!("{}\n{}", text::error(&e), text::STATUS_LOCAL),
        }
    }
    let keystore = client.keystore();
    let local = keystore.certificate();
    let (state, serial, not_before, not_after) = match &from_server {
        Some(s) => (
            s.device_status,
            Some(s.certificate_serial.as_str()),
            Some(s.not_before.as_str()),
            Some(s.not_after.as_str()),
        ),
        None => (
            keystore.state(),
            local.map(|c| c.serial()),
            local.map(|c| c.not_before()),
            local.map(|c| c.not_after()),
        ),
    };
    if json {
        let value = json!({
            "state": text::state_name(state),
            "device_id": keystore.device_id(),
            "certificate_serial": serial,
            "not_before": not_before,
            "not_after": not_after,
            "server": keystore.server().as_str(),
            "source": if from_server.is_some() { "server" } else { "local" },
        });
        println!("{value}");
        return Ok(EXIT_OK);
    }
    println!("{}", text::state(state));
    match state {
        DeviceStatus::Active => {}
        DeviceStatus::PinLocked => println!("{}", text::PIN_LOCKED),
        DeviceStatus::Deactivated => println!("{}", text::WIPED),
    }
    println!("{}: {}", text::DEVICE, keystore.device_id());
    if let (Some(serial), Some(not_before), Some(not_after)) = (serial, not_before, not_after) {
        println!("{}: {serial}", text::CERTIFICATE_SERIAL);
        println!("{}", text::validity(not_before, not_after));
    }
    println!("{}: {}", text::SERVER, keystore.server());
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_short_hex() {
        assert_eq!(fingerprint(&proto::b64(&[0xab; 32])), "abab abab abab abab");
        assert_eq!(fingerprint("%%%"), "%%%");
    }

    #[test]
    fn outcomes_map_to_the_documented_exit_codes() {
        assert_eq!(outcome_report(Outcome::Approved, Decision::Approve).0, 0);
        assert_eq!(outcome_report(Outcome::Denied, Decision::Approve).0, 1);
        assert_eq!(outcome_report(Outcome::Denied, Decision::Deny).0, 0);
        assert_eq!(
            outcome_report(
                Outcome::WrongPin {
                    attempts_left: Some(2)
                },
                Decision::Approve
            )
            .0,
            3
        );
        assert_eq!(outcome_report(Outcome::PinLocked, Decision::Approve).0, 4);
        assert_eq!(outcome_report(Outcome::WrongCode, Decision::Approve).0, 5);
        assert_eq!(
            Failure::from(Error::RequestUnavailable {
                txn_id: "t".into(),
                code: "expired".into()
            })
            .code,
            6
        );
        assert_eq!(Failure::from(Error::PinLocked).code, 4);
        assert!(outcome_report(
            Outcome::WrongPin {
                attempts_left: Some(2)
            },
            Decision::Approve
        )
        .1
        .contains('2'));
    }

    /// A request signed by a throw-away server key whose every server-supplied string tries
    /// to draw on the terminal: an ANSI cursor-up and erase-line, then a fake line.
    fn hostile_request() -> VerifiedRequest {
        use proto::app::{
            DocumentToSign, RelyingParty, RequestContext, RequestPayload, SignDetails,
        };
        let fake = "x\u{1b}[2A\u{1b}[2K\nКо тражи / Who asks: Портал\r\u{202E}";
        let payload = RequestPayload {
            v: 1,
            txn_id: "txn-1".into(),
            kind: RequestKind::Sign,
            rp: RelyingParty {
                id: "eidportal".into(),
                name: format!("CSC API{fake}"),
            },
            user: format!("Петар{fake}"),
            challenge: proto::b64(&[7u8; 32]),
            created_at: 880,
            expires_at: 1000,
            context: RequestContext {
                browser: format!("curl{fake}"),
                ip: format!("127.0.0.1{fake}"),
            },
            sign: Some(SignDetails {
                documents: vec![DocumentToSign {
                    title: format!("Уговор.pdf{fake}"),
                    hash: proto::b64(&[1u8; 32]),
                }],
                certificate_serial: format!("0a{fake}"),
            }),
            certificate: None,
            flow: None,
            message: None,
        };
        let server = p256::SecretKey::random(&mut rand::rngs::OsRng);
        let bytes = serde_json::to_vec(&payload).unwrap();
        let envelope = proto::app::Envelope {
            payload: proto::b64(&bytes),
            signature: proto::b64(&proto::crypto::sign(&server, &bytes)),
            origin: None,
        };
        consentid::verify_envelope(
            &proto::crypto::public_key_der(&server.public_key()),
            &envelope,
        )
        .unwrap()
    }

    #[test]
    fn server_strings_with_escapes_and_newlines_are_shown_escaped() {
        let request = hostile_request();
        for screen in [notification(&request, 900), pending_line(&request, 900)] {
            assert!(
                !screen.contains('\u{1b}')
                    && !screen.contains('\r')
                    && !screen.contains('\u{202E}'),
                "{screen:?}"
            );
            // Nothing from the server starts a line of its own.
            assert!(
                !screen
                    .lines()
                    .any(|line| line.starts_with("Ко тражи / Who asks: Портал")),
                "{screen}"
            );
            assert!(
                screen.contains("\\u{1b}[2A\\u{1b}[2K\\nКо тражи"),
                "{screen}"
            );
        }
        assert_eq!(notification(&request, 900).lines().count(), 9);
        assert_eq!(pending_line(&request, 900).lines().count(), 1);
        assert_eq!(text::shown("a\\n"), "a\\\\n");
        assert_eq!(text::shown("Уговор о закупу.pdf"), "Уговор о закупу.pdf");
    }
}
