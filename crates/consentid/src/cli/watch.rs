//! `consentid watch`: the interactive app. Shows each request as it arrives (a "local
//! notification"), asks approve / deny / not me / skip, the code and the PIN. Ends on end of
//! input (Ctrl-D).
//!
//! Three threads, so that a new request and Ctrl-D are both noticed at once:
//! - a poller with its own [`Client`] long-polls the inbox and sends what it gets;
//! - a reader reads one line of standard input each time it is asked to (only when asked, so
//!   that it never competes with the no-echo PIN prompt for the terminal);
//! - the main thread keeps the conversation and answers requests with a second [`Client`] on
//!   the same keystore (a wipe by either is seen by the other through the server).

use std::collections::{HashSet, VecDeque};
use std::io::BufRead as _;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::Duration;

use consentid::{
    three_codes, Client, Decision, DenyReason, DeviceStatus, Error, Inbox, Outcome, Pin,
    RequestKind, Settings, VerificationCode, VerifiedRequest,
};
use zeroize::Zeroizing;

use super::{
    console, notification, outcome_report, text, Failure, EXIT_FAILURE, EXIT_OK, EXIT_PIN_LOCKED,
};

/// Long-poll length of the poller.
const POLL_SECS: u32 = 20;
/// Pause between polls while requests are pending (the server answers those at once).
const PENDING_PAUSE: Duration = Duration::from_secs(2);
/// Pause after a failed poll.
const ERROR_PAUSE: Duration = Duration::from_secs(5);

enum Event {
    Inbox(Result<Inbox, Error>),
    Line(Option<Zeroizing<String>>),
}

/// Where the conversation about the shown request stands.
enum Stage {
    /// Waiting for a/d/n/s.
    Action,
    /// The browser is on another network: waiting for "yes, I am at that computer".
    AtComputer,
    /// Waiting for 1/2/3.
    Code([VerificationCode; 3]),
    /// Waiting for the PIN on standard input (when it is not a terminal).
    Pin(VerificationCode),
}

struct Watch {
    client: Client,
    lines: Sender<()>,
    line_requested: bool,
    seen: HashSet<String>,
    queue: VecDeque<VerifiedRequest>,
    current: Option<(VerifiedRequest, Stage)>,
}

/// Runs the loop; returns the exit code.
pub fn watch_command(home: &Path) -> Result<u8, Failure> {
    let client = Client::open(home, Settings::default())?;
    let poller = Client::open(home, Settings::default())?;
    let (events, receiver) = mpsc::channel();
    spawn_poller(poller, events.clone());
    let lines = spawn_reader(events);
    let mut watch = Watch {
        client,
        lines,
        line_requested: false,
        seen: HashSet::new(),
        queue: VecDeque::new(),
        current: None,
    };
    eprintln!("{}", text::WATCHING);
    watch.run(&receiver)
}

fn spawn_poller(mut client: Client, events: Sender<Event>) {
    std::thread::spawn(move || loop {
        let result = client.inbox(POLL_SECS);
        let pause = match &result {
            Ok(inbox) if inbox.device_status != DeviceStatus::Active => None,
            Ok(inbox) if !inbox.requests.is_empty() => Some(PENDING_PAUSE),
            Ok(_) => Some(Duration::ZERO),
            Err(Error::Unreachable { .. } | Error::Server { .. } | Error::BadAnswer { .. }) => {
                Some(ERROR_PAUSE)
            }
            Err(_) => None,
        };
        if events.send(Event::Inbox(result)).is_err() {
            return;
        }
        match pause {
            Some(pause) => std::thread::sleep(pause),
            None => return,
        }
    });
}

fn spawn_reader(events: Sender<Event>) -> Sender<()> {
    let (requests, asked) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        for () in asked {
            let mut line = Zeroizing::new(String::new());
            let event = match std::io::stdin().lock().read_line(&mut line) {
                Ok(0) | Err(_) => Event::Line(None),
                Ok(_) => Event::Line(Some(Zeroizing::new(
                    line.trim_end_matches(['\r', '\n']).to_owned(),
                ))),
            };
            let ended = matches!(event, Event::Line(None));
            if events.send(event).is_err() || ended {
                return;
            }
        }
    });
    requests
}

impl Watch {
    fn run(&mut self, receiver: &Receiver<Event>) -> Result<u8, Failure> {
        loop {
            self.ask_for_line();
            let Ok(event) = receiver.recv() else {
                return Ok(EXIT_OK);
            };
            match event {
                Event::Line(None) => {
                    eprintln!("{}", text::BYE);
                    return Ok(EXIT_OK);
                }
                Event::Line(Some(line)) => {
                    self.line_requested = false;
                    if let Some(code) = self.answer(&line)? {
                        return Ok(code);
                    }
                }
                Event::Inbox(Ok(inbox)) => {
                    if let Some(code) = self.arrived(inbox) {
                        return Ok(code);
                    }
                }
                Event::Inbox(Err(error)) => match error {
                    Error::Unreachable { .. } | Error::Server { .. } | Error::BadAnswer { .. } => {
                        eprintln!("{}", text::error(&error));
                    }
                    other => return Err(other.into()),
                },
            }
        }
    }

    fn ask_for_line(&mut self) {
        if !self.line_requested {
            self.line_requested = self.lines.send(()).is_ok();
        }
    }

    /// New inbox contents; returns an exit code when the device can no longer be used.
    fn arrived(&mut self, inbox: Inbox) -> Option<u8> {
        for rejected in &inbox.rejected {
            eprintln!("{}", text::rejected(rejected));
        }
        match inbox.device_status {
            DeviceStatus::Active => {}
            DeviceStatus::PinLocked => {
                eprintln!("{}", text::PIN_LOCKED);
                return Some(EXIT_PIN_LOCKED);
            }
            DeviceStatus::Deactivated => {
                eprintln!("{}", text::WIPED);
                return Some(EXIT_FAILURE);
            }
        }
        let cancelled: HashSet<&str> = inbox.cancelled.iter().map(String::as_str).collect();
        self.queue.retain(|r| !cancelled.contains(r.txn_id()));
        if self
            .current
            .as_ref()
            .is_some_and(|(r, _)| cancelled.contains(r.txn_id()))
        {
            if let Some((request, _)) = self.current.take() {
                println!("{}", text::cancelled(request.txn_id()));
            }
        }
        for request in inbox.requests {
            if self.seen.insert(request.txn_id().to_owned()) {
                self.queue.push_back(request);
            }
        }
        if self.current.is_none() {
            self.present_next();
        }
        None
    }

    /// Shows the next queued request that has not expired.
    fn present_next(&mut self) {
        let now = self.client.now();
        while let Some(request) = self.queue.pop_front() {
            if request.seconds_left(now) > 0 {
                println!("\n{}", notification(&request, now));
                console::prompt(&text::action_prompt());
                self.current = Some((request, Stage::Action));
                return;
            }
        }
    }

    /// A line typed by the user; returns an exit code to stop.
    fn answer(&mut self, line: &str) -> Result<Option<u8>, Failure> {
        let Some((request, stage)) = self.current.take() else {
            return Ok(None);
        };
        match stage {
            Stage::Action => match line.trim() {
                "a" | "A" | "а" | "А"
                    if request.from_another_network().is_some() && !request.at_computer() =>
                {
                    console::prompt(text::AT_COMPUTER_PROMPT);
                    self.current = Some((request, Stage::AtComputer));
                }
                "a" | "A" | "а" | "А" if request.kind() != RequestKind::Login => {
                    // A signature or a certificate operation is matched by what is shown
                    // above: no browser code.
                    let code = request.verification_code().clone();
                    return self.ask_pin(request, code);
                }
                "a" | "A" | "а" | "А" => {
                    let codes = three_codes(request.verification_code());
                    console::prompt(&text::code_prompt(&codes));
                    self.current = Some((request, Stage::Code(codes)));
                }
                "d" | "D" => {
                    return self.respond(&request, Decision::Deny, None, Some(DenyReason::UserDeny))
                }
                "n" | "N" => {
                    return self.respond(&request, Decision::Deny, None, Some(DenyReason::NotMe))
                }
                "s" | "S" => {
                    println!("{}", text::SKIPPED);
                    self.present_next();
                }
                _ => {
                    eprintln!("{}", text::ACTION_AGAIN);
                    console::prompt(&text::action_prompt());
                    self.current = Some((request, Stage::Action));
                }
            },
            Stage::AtComputer => {
                if !console::is_yes(line) {
                    eprintln!("{}", text::AT_COMPUTER_NEEDED);
                    return self.respond(&request, Decision::Deny, None, Some(DenyReason::NotMe));
                }
                let mut request = request;
                request.confirm_at_computer();
                // As if "a" was typed again, now confirmed.
                self.current = Some((request, Stage::Action));
                return self.answer("a");
            }
            Stage::Code(codes) => {
                let picked = match line.trim() {
                    "1" => codes.first(),
                    "2" => codes.get(1),
                    "3" => codes.get(2),
                    _ => None,
                };
                let Some(picked) = picked.cloned() else {
                    eprintln!("{}", text::CODE_AGAIN);
                    console::prompt(&text::code_prompt(&codes));
                    self.current = Some((request, Stage::Code(codes)));
                    return Ok(None);
                };
                if &picked != request.verification_code() {
                    return self.respond(&request, Decision::Approve, Some(picked), None);
                }
                return self.ask_pin(request, picked);
            }
            Stage::Pin(picked) => return self.approve(request, picked, line),
        }
        Ok(None)
    }

    /// Asks for the PIN that approves `request` with the code `picked`.
    fn ask_pin(
        &mut self,
        request: VerifiedRequest,
        picked: VerificationCode,
    ) -> Result<Option<u8>, Failure> {
        if console::stdin_is_terminal() {
            // No line is being read now, so the no-echo prompt has the terminal alone.
            let pin = console::secret(&text::approve_pin_prompt())?;
            return self.approve(request, picked, &pin);
        }
        console::prompt(&text::approve_pin_prompt());
        self.current = Some((request, Stage::Pin(picked)));
        Ok(None)
    }

    fn approve(
        &mut self,
        request: VerifiedRequest,
        picked: VerificationCode,
        pin: &str,
    ) -> Result<Option<u8>, Failure> {
        match Pin::enter(pin) {
            Ok(pin) => self.respond_with(&request, &picked, &pin),
            Err(refusal) => {
                eprintln!("{}", text::error(&Error::PinPolicy(refusal)));
                self.retry(request);
                Ok(None)
            }
        }
    }

    fn respond_with(
        &mut self,
        request: &VerifiedRequest,
        picked: &VerificationCode,
        pin: &Pin,
    ) -> Result<Option<u8>, Failure> {
        let result = self
            .client
            .respond(request, Decision::Approve, picked, Some(pin), None);
        self.after(request, result, Decision::Approve)
    }

    /// A deny, or an approval with a wrong code (which the core turns into a deny).
    fn respond(
        &mut self,
        request: &VerifiedRequest,
        decision: Decision,
        picked: Option<VerificationCode>,
        reason: Option<DenyReason>,
    ) -> Result<Option<u8>, Failure> {
        let picked = picked.unwrap_or_else(|| request.verification_code().clone());
        let result = self
            .client
            .respond(request, decision, &picked, None, reason);
        self.after(request, result, decision)
    }

    fn after(
        &mut self,
        request: &VerifiedRequest,
        result: Result<Outcome, Error>,
        wanted: Decision,
    ) -> Result<Option<u8>, Failure> {
        match result {
            Ok(Outcome::WrongPin { attempts_left }) => {
                println!("{}", text::wrong_pin(attempts_left));
                self.retry(request.clone());
            }
            Ok(Outcome::PinLocked) => {
                println!("{}", text::PIN_LOCKED);
                return Ok(Some(EXIT_PIN_LOCKED));
            }
            Ok(outcome) => {
                println!("{}", outcome_report(outcome, wanted).1);
                self.present_next();
            }
            Err(error @ Error::RequestUnavailable { .. }) => {
                println!("{}", text::error(&error));
                self.present_next();
            }
            Err(error) => return Err(error.into()),
        }
        Ok(None)
    }

    /// Shows the same request again (after a wrong or malformed PIN).
    fn retry(&mut self, request: VerifiedRequest) {
        self.queue.push_front(request);
        self.present_next();
    }
}
