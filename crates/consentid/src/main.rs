//! The `consentid` command: the ConsentID authenticator on a computer (DESIGN §2
//! "Authenticator"). Activation, the pending requests, approve / deny, an interactive watch
//! loop and the device status, on top of the `consentid` core library.
//!
//! Exit codes: 0 success (`approve`: only when the server answered `approved`), 1 other
//! errors, 2 usage errors, 3 wrong PIN, 4 PIN locked, 5 wrong verification code (the request
//! was denied), 6 request not found or expired.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cli::Target;

/// How long `approve --next` waits for a request by default, in seconds.
const DEFAULT_NEXT_WAIT: u32 = 30;

/// ConsentID: approve logins and signatures of the eID portal / ConsentID: одобравање пријава и потписа.
#[derive(Debug, Parser)]
#[command(name = "consentid", version)]
struct Command {
    /// The app's data folder (default: $CONSENTID_HOME, else $HOME/.consentid).
    #[arg(long, global = true, value_name = "DIR")]
    home: Option<PathBuf>,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Activate this device with the activation code from the registration officer.
    Activate {
        /// The portal's address, e.g. https://eid.example (http:// only to this computer).
        #[arg(long, value_name = "URL")]
        server: String,
        /// Trust only this CA certificate (PEM) for the server, now and afterwards, instead of
        /// the public roots.
        #[arg(long, value_name = "FILE")]
        ca_file: Option<std::path::PathBuf>,
        /// The activation code.
        #[arg(long, value_name = "CODE")]
        code: String,
        /// Read the new PIN from the first line of standard input instead of the terminal.
        #[arg(long)]
        pin_stdin: bool,
        /// A name for the portal's device list (default: "consentid-cli on HOST").
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// Print the result as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// List the pending requests.
    Pending {
        /// Wait up to this many seconds for a request to arrive.
        #[arg(long, value_name = "SECS", default_value_t = 0)]
        wait: u32,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Approve a request ("Ауторизовати"): match the code, enter the PIN.
    Approve {
        /// The transaction to approve.
        #[arg(
            value_name = "TXN",
            required_unless_present = "next",
            conflicts_with = "next"
        )]
        txn: Option<String>,
        /// Take the first pending request.
        #[arg(long)]
        next: bool,
        /// With --next: wait up to this many seconds for a request to arrive [default: 30].
        #[arg(long, value_name = "SECS", conflicts_with = "txn")]
        wait: Option<u32>,
        /// The verification code shown in the browser (else choose among three).
        #[arg(long, value_name = "VC")]
        code: Option<String>,
        /// Read the PIN from standard input instead of the terminal.
        #[arg(long)]
        pin_stdin: bool,
        /// Confirm "I am at that computer" for a request whose browser is on another network
        /// than this phone (else the app asks, or with --pin-stdin refuses: exit 7).
        #[arg(long)]
        at_computer: bool,
    },
    /// Deny a request ("Одбиј"); no PIN needed.
    Deny {
        /// The transaction to deny.
        #[arg(value_name = "TXN")]
        txn: String,
        /// Deny as "I didn't start this" (the portal alerts the account holder).
        #[arg(long)]
        not_me: bool,
    },
    /// Wait for requests and answer them interactively; Ctrl-D ends.
    Watch,
    /// Show the device's state and certificate.
    Status {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

fn run(command: Command) -> Result<u8, cli::Failure> {
    let home = cli::home(command.home)?;
    match command.action {
        Action::Activate {
            server,
            ca_file,
            code,
            pin_stdin,
            name,
            json,
        } => cli::activate_command(&home, &server, ca_file, &code, pin_stdin, name, json),
        Action::Pending { wait, json } => cli::pending_command(&home, wait, json),
        Action::Approve {
            txn,
            next: _,
            wait,
            code,
            pin_stdin,
            at_computer,
        } => {
            let target = match txn {
                Some(txn) => Target::Transaction(txn),
                None => Target::Next(wait.unwrap_or(DEFAULT_NEXT_WAIT)),
            };
            cli::approve_command(&home, &target, code.as_deref(), pin_stdin, at_computer)
        }
        Action::Deny { txn, not_me } => cli::deny_command(&home, &txn, not_me),
        Action::Watch => cli::watch::watch_command(&home),
        Action::Status { json } => cli::status_command(&home, json),
    }
}

fn main() -> ExitCode {
    let command = Command::parse();
    match run(command) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("{}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_consistent() {
        Command::command().debug_assert();
    }

    #[test]
    fn approve_takes_a_transaction_or_next_but_not_both() {
        assert!(
            Command::try_parse_from(["consentid", "approve", "txn-1", "--code", "1234"]).is_ok()
        );
        assert!(Command::try_parse_from([
            "consentid",
            "approve",
            "--next",
            "--wait",
            "5",
            "--pin-stdin"
        ])
        .is_ok());
        assert!(Command::try_parse_from(["consentid", "approve"]).is_err());
        assert!(Command::try_parse_from(["consentid", "approve", "txn-1", "--next"]).is_err());
        assert!(Command::try_parse_from(["consentid", "approve", "txn-1", "--wait", "5"]).is_err());
        assert!(
            Command::try_parse_from(["consentid", "--home", "/tmp/x", "status", "--json"]).is_ok()
        );
        assert!(Command::try_parse_from(["consentid", "status", "--home", "/tmp/x"]).is_ok());
    }
}
