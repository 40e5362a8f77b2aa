//! The message catalogue of the `consentid` command: every sentence a user reads, Serbian
//! Cyrillic first, then English, on one line separated by " / " (STYLE.md: user-visible text
//! lives in the catalogue, not in the code that decides what to say).

use consentid::{
    DeviceStatus, EnvelopeError, Error, PinRefusal, RequestKind, VerificationCode, VerifiedRequest,
};

/// A string from the server as it may be printed: characters that could draw on the
/// terminal (ANSI escapes, newlines, other control characters, bidirectional overrides) are
/// shown visibly escaped (`\n`, `\u{1b}`), never raw, so that no text can paint a fake line
/// over the request. A backslash is doubled, so that an escape cannot be faked either.
pub fn shown(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if domain::text::is_display_char(c) => out.push(c),
            c => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
        }
    }
    out
}

/// The green button of the guide (seed/README.md step 6).
pub const AUTHORISE: &str = "Ауторизовати";

/// The title of a notification block.
pub const NEW_REQUEST: &str = "ConsentID: нови захтев / new request";
/// Label: who asks.
pub const WHO: &str = "Ко тражи / Who asks";
/// Label: which account.
pub const ACCOUNT: &str = "Налог / Account";
/// Label: what for.
pub const WHAT: &str = "Шта / What";
/// Label: the service's text (a CIBA binding message, to compare with what the service shows;
/// or the transaction a login approves).
pub const MESSAGE: &str = "Порука / Message";
/// Label: from which browser.
pub const BROWSER: &str = "Прегледач / Browser";
/// Label: the browser's address.
pub const ADDRESS: &str = "адреса / address";
/// Label: time left.
pub const TIME_LEFT: &str = "Преостало / Time left";
/// Label: transaction id.
pub const TRANSACTION: &str = "Трансакција / Transaction";
/// Label: the signing certificate.
pub const SIGNING_CERTIFICATE: &str = "Сертификат за потпис / Signing certificate";
/// A request whose browser is on another network than the phone (issue 22).
pub fn another_network(location: &str) -> String {
    format!(
        "⚠ Пажња: прегледач који је послао захтев није на мрежи са које се јавља овај телефон. Место прегледача: {location}. Одобрите само ако сте ви за тим рачунаром. / Warning: the browser that sent this request is not on the network this phone calls from. The browser's location: {location}. Approve only if you are at that computer.",
        location = shown(location)
    )
}
/// The question before approving a request from another network.
pub const AT_COMPUTER_PROMPT: &str =
    "Да ли сте ви за тим рачунаром? (да/не) / Are you at that computer? (yes/no): ";
/// Approving a request from another network without confirming.
pub const AT_COMPUTER_NEEDED: &str = "Захтев није одобрен: прегледач је на другој мрежи, а нисте потврдили да сте за тим рачунаром (--at-computer). / Not approved: the browser is on another network and you did not confirm being at that computer (--at-computer).";
/// The agreement a certificate operation accepts.
pub const AGREEMENT: &str = "Уговор / Agreement";
/// The certificate a certificate operation acts on.
pub const CERTIFICATE: &str = "Сертификат / Certificate";

/// First PIN prompt at activation.
pub const NEW_PIN: &str = "Изаберите ПИН од 6 цифара / Choose a 6-digit PIN: ";
/// Second PIN prompt at activation.
pub const REPEAT_PIN: &str = "Поновите ПИН / Repeat the PIN: ";
/// The approval PIN prompt.
pub fn approve_pin_prompt() -> String {
    format!("Унесите ПИН и {AUTHORISE} / Enter the PIN to authorise ({AUTHORISE}): ")
}
/// The question in `watch`.
pub fn action_prompt() -> String {
    format!(
        "[a] {AUTHORISE} / Authorise   [d] Одбиј / Deny   [n] Нисам ја покренуо/ла / I didn't start this   [s] Прескочи / Skip > "
    )
}
/// An answer `watch` did not understand.
pub const ACTION_AGAIN: &str = "Откуцајте a, d, n или s. / Type a, d, n or s.";
/// Skipped in `watch`.
pub const SKIPPED: &str =
    "Прескочено; захтев остаје на чекању. / Skipped; the request stays pending.";
/// `watch` is waiting.
pub const WATCHING: &str =
    "Чекам захтеве… (Ctrl-D за крај) / Waiting for requests… (Ctrl-D to quit)";
/// `watch` ends.
pub const BYE: &str = "Крај. / Bye.";

/// The verification-code question with its three choices.
pub fn code_prompt(codes: &[VerificationCode; 3]) -> String {
    let [a, b, c] = codes;
    format!("Који код приказује прегледач? / Which code does the browser show?   1) {a}   2) {b}   3) {c}  [1-3] > ")
}
/// An answer to the code question that is not 1, 2 or 3.
pub const CODE_AGAIN: &str = "Откуцајте 1, 2 или 3. / Type 1, 2 or 3.";

/// Activation succeeded.
pub const ACTIVATED: &str = "ConsentID је активиран. / ConsentID is activated.";
/// Label: device id.
pub const DEVICE: &str = "Уређај / Device";
/// Label: certificate serial.
pub const CERTIFICATE_SERIAL: &str = "Серијски број сертификата / Certificate serial";
/// Label: server.
pub const SERVER: &str = "Сервер / Server";
/// Certificate validity line.
pub fn validity(not_before: &str, not_after: &str) -> String {
    format!("Важи од / Valid from: {not_before}  до / until: {not_after}")
}

/// No request is pending.
pub const NO_REQUESTS: &str = "Нема захтева на чекању. / No pending requests.";
/// `--next` found nothing in time.
pub fn nothing_arrived(wait: u32) -> String {
    format!("Ниједан захтев није стигао за {wait} s. / No request arrived within {wait} s.")
}
/// The transaction asked for is not in the inbox.
pub fn request_not_found(txn_id: &str) -> String {
    format!("Захтев {txn_id} није пронађен или је истекао. / Request {txn_id} was not found or has expired.")
}
/// A delivered request failed verification.
pub fn rejected(error: &EnvelopeError) -> String {
    format!("Упозорење: одбачен је захтев који није исправно потписан од сервера. / Warning: dropped a request not properly signed by the server: {}", shown(&error.to_string()))
}
/// A request was cancelled while shown.
pub fn cancelled(txn_id: &str) -> String {
    format!("Захтев {txn_id} је отказан или је истекао. / Request {txn_id} was cancelled or has expired.")
}

/// Approved.
pub const APPROVED: &str = "✓ Одобрено. / Approved.";
/// Denied.
pub const DENIED: &str = "Захтев је одбијен. / The request was denied.";
/// The picked code was wrong.
pub const WRONG_CODE: &str = "Изабрани код није код из прегледача; захтев је одбијен. / The chosen code is not the one in the browser; the request was denied.";
/// Wrong PIN, with the attempts left.
pub fn wrong_pin(attempts_left: Option<u8>) -> String {
    match attempts_left {
        Some(n) => {
            format!("Погрешан ПИН; преостало покушаја: {n}. / Wrong PIN; attempts left: {n}.")
        }
        None => "Погрешан ПИН. / Wrong PIN.".to_owned(),
    }
}
/// The PIN is locked.
pub const PIN_LOCKED: &str =
    "ПИН је закључан после 5 погрешних покушаја; потребна је поновна активација. / PIN locked after 5 wrong attempts; re-activation needed.";
/// The keys are wiped.
pub const WIPED: &str = "Уређај је деактивиран и кључеви су обрисани; за поновно коришћење потребна је нова активација. / The device is deactivated and its keys were wiped; a new activation is needed to use ConsentID again.";
/// The server answered an approval with "denied".
pub const UNEXPECTED_DENY: &str =
    "Сервер је захтев забележио као одбијен. / The server recorded the request as denied.";
/// The status comes from the local file.
pub const STATUS_LOCAL: &str = "Упозорење: сервер није доступан, приказано је локално стање. / Warning: the server is unreachable; showing the local state.";
/// No terminal to ask for a PIN.
pub const NO_TERMINAL: &str =
    "Нема терминала за унос ПИН-а; користите --pin-stdin. / No terminal to ask for the PIN; use --pin-stdin.";
/// Standard input ended before an answer.
pub const NO_INPUT: &str = "Унос је завршен пре одговора. / Input ended before an answer.";

/// The state line of `status`.
pub fn state(status: DeviceStatus) -> &'static str {
    match status {
        DeviceStatus::Active => "Стање: активан / State: active",
        DeviceStatus::PinLocked => "Стање: ПИН закључан / State: PIN locked",
        DeviceStatus::Deactivated => "Стање: деактивиран / State: deactivated",
    }
}

/// The wire name of a state (JSON output).
pub fn state_name(status: DeviceStatus) -> &'static str {
    match status {
        DeviceStatus::Active => "active",
        DeviceStatus::PinLocked => "pin_locked",
        DeviceStatus::Deactivated => "deactivated",
    }
}

/// What a request is for, in one line.
pub fn purpose(request: &VerifiedRequest) -> String {
    match (request.kind(), &request.payload().sign) {
        (RequestKind::Login, _) => "пријава на портал / log in to the portal".to_owned(),
        (RequestKind::Sign, Some(sign)) => {
            let n = sign.documents.len();
            format!(
                "квалификовани електронски потпис, докумената: {n} / qualified electronic signature, documents: {n}"
            )
        }
        (RequestKind::Sign, None) => {
            "квалификовани електронски потпис / qualified electronic signature".to_owned()
        }
        (RequestKind::Certificate, _) => {
            "радња са квалификованим сертификатом / an operation on your qualified certificate"
                .to_owned()
        }
    }
}

/// The kind in a table row.
pub fn kind_short(kind: RequestKind) -> &'static str {
    match kind {
        RequestKind::Login => "пријава/login",
        RequestKind::Sign => "потпис/sign",
        RequestKind::Certificate => "сертификат/certificate",
    }
}

/// Time left.
pub fn seconds(left: i64) -> String {
    format!("{left} s")
}

fn refusal(refusal: PinRefusal) -> (&'static str, &'static str) {
    match refusal {
        PinRefusal::Length => (
            "ПИН мора имати тачно 6 цифара",
            "the PIN must have exactly 6 digits",
        ),
        PinRefusal::NotDigits => (
            "ПИН сме садржати само цифре",
            "the PIN may contain digits only",
        ),
        PinRefusal::SameDigit => (
            "ПИН не сме бити једна поновљена цифра",
            "the PIN must not repeat one digit",
        ),
        PinRefusal::Sequence => (
            "ПИН не сме бити низ узастопних цифара (нпр. 123456)",
            "the PIN must not be a run of consecutive digits (e.g. 123456)",
        ),
        PinRefusal::Mismatch => ("два уноса ПИН-а се разликују", "the two PIN entries differ"),
    }
}

/// A core error as a sentence for the user.
pub fn error(error: &Error) -> String {
    match error {
        Error::PinPolicy(r) => {
            let (sr, en) = refusal(*r);
            format!("ПИН није прихваћен: {sr}. / PIN refused: {en}.")
        }
        Error::PinRequired => "За одобрење је потребан ПИН. / An approval needs the PIN.".to_owned(),
        Error::InvalidVerificationCode => {
            "Верификациони код (--code) има тачно 4 цифре. / A verification code (--code) has exactly 4 digits.".to_owned()
        }
        Error::EmptyActivationCode => "Активациони код (--code) је празан. / The activation code (--code) is empty.".to_owned(),
        Error::NoHome => {
            "Није познат кућни директоријум: поставите CONSENTID_HOME или HOME, или --home. / No home folder: set CONSENTID_HOME or HOME, or use --home.".to_owned()
        }
        Error::NotActivated { home } => format!(
            "ConsentID није активиран у {0}; покрените `consentid activate`. / ConsentID is not activated in {0}; run `consentid activate`.",
            home.display()
        ),
        Error::AlreadyActive { home } => format!(
            "ConsentID је већ активан у {0}. Изаберите други --home или уклоните директоријум. / ConsentID is already active in {0}. Choose another --home or remove the folder.",
            home.display()
        ),
        Error::Deactivated | Error::DeviceRevoked => WIPED.to_owned(),
        Error::PinLocked => PIN_LOCKED.to_owned(),
        Error::Io { path, source } => {
            format!("Не могу да приступим {0} / Cannot access {0}: {source}", path.display())
        }
        Error::CorruptKeystore { path, detail } => {
            format!("Датотека {0} је оштећена / The file {0} is damaged: {detail}", path.display())
        }
        Error::InvalidServerUrl { url, reason } => {
            format!("Неисправна адреса сервера (--server) {url:?} / Invalid server address (--server) {url:?}: {reason}")
        }
        Error::PlainHttpHome { url } => format!(
            "ConsentID је активиран са незаштићеном адресом {url:?} (http://). Затражите нови активациони код и активирајте поново преко https://. / ConsentID was activated with the unprotected address {url:?} (http://). Ask for a new activation code and activate again over https://."
        ),
        Error::CaFile { path, detail } => format!(
            "Сертификат CA сервера (--ca-file) {} није употребљив / The server's CA certificate (--ca-file) {} cannot be used: {detail}",
            path.display(),
            path.display()
        ),
        Error::Unreachable { source, .. } => format!("Сервер није доступан / Cannot reach the server: {source}"),
        Error::Server { code, .. } if code == "invalid_code" => {
            "Активациони код није исправан, искоришћен је или је истекао. / The activation code is wrong, used or expired.".to_owned()
        }
        Error::Server { code, .. } if code == "rate_limited" => {
            "Превише покушаја; покушајте поново касније. / Too many attempts; try again later.".to_owned()
        }
        Error::Server { status, code, message } => {
            format!("Сервер је одбио захтев ({status} {code}) / The server refused ({status} {code}): {message}")
        }
        Error::RequestUnavailable { txn_id, code } => format!("{} ({code})", request_not_found(txn_id)),
        Error::BadAnswer { what, detail } => {
            format!("Неочекиван одговор сервера / Unexpected answer from the server ({what}): {detail}")
        }
        Error::Certificate(detail) => {
            format!("Сертификат уређаја није прихватљив / The device certificate is not acceptable: {detail}")
        }
        Error::Envelope(e) => rejected(e),
        Error::Crypto(e) => format!("Криптографска грешка / Cryptographic failure: {e}"),
        Error::KeyDerivation(detail) => {
            format!("Извођење кључа из ПИН-а није успело / PIN key derivation failed: {detail}")
        }
    }
}
