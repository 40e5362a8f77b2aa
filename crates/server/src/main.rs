//! The `eidportal` command: `serve`, and the officer commands (DESIGN §2).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

mod oidc_command;

use authority::Authority;
use domain::{Jmbg, RevocationReason, Serial};
use pki::profile::Person;
use server::config::{Config, Flags};
use server::http::app;
use server::state::{AppState, Metrics};

/// jemalloc, not glibc's malloc (issue 24). glibc writes a header beside every block, so each
/// of hyper's 8 KiB connection buffers dirtied pages even where nothing was written into it;
/// jemalloc keeps its bookkeeping apart. `scripts/bench scale`'s memory part, 10,000 apps
/// long-polling, measured 200 and 204 MB of RSS with glibc, 169 and 161 MB with jemalloc.
#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// eID portal and qualified trust service.
#[derive(Debug, Parser)]
#[command(name = "eidportal", version, about)]
struct Cli {
    /// Data folder (database, master key, outbox). Default: ./eidportal-data
    #[arg(long, global = true, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Settings file (TOML).
    #[arg(long, global = true, value_name = "FILE", env = "EIDPORTAL_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (creates the data folder and the CA hierarchy on first start).
    Serve {
        /// Listen address. Default: 127.0.0.1:8080
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// Listen address of the ConsentID web app (its own origin). Default: 127.0.0.1:8081
        #[arg(long, value_name = "ADDR")]
        app_listen: Option<String>,
    },
    /// Accounts (registration officer).
    #[command(subcommand)]
    User(UserCommand),
    /// Certificates (officer).
    #[command(subcommand)]
    Cert(CertCommand),
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// "Log in with eID" for other services: the OpenID provider's clients.
    #[command(subcommand)]
    Oidc(oidc_command::OidcCommand),
}

#[derive(Debug, Subcommand)]
enum CertCommand {
    /// List certificates, oldest first.
    List {
        /// Only certificates of this e-mail address.
        #[arg(long)]
        email: Option<String>,
        /// A JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print a certificate as PEM.
    Pem {
        /// Serial number in hex.
        serial: String,
        /// Also print the issuing CAs up to the root.
        #[arg(long)]
        chain: bool,
    },
    /// Revoke a certificate; its CA's CRL is re-issued at once.
    Revoke {
        /// Serial number in hex.
        serial: String,
        /// RFC 5280 reason: unspecified, keyCompromise, cACompromise, affiliationChanged,
        /// superseded, cessationOfOperation, privilegeWithdrawn (or its number).
        #[arg(long)]
        reason: String,
    },
    /// Issue a qualified cloud signing certificate with a key generated in the key backend.
    Issue {
        /// Profile; only cloud-signing is issued this way.
        #[arg(long, default_value = "cloud-signing")]
        kind: String,
        #[command(flatten)]
        person: PersonArgs,
        /// The holder's e-mail address.
        #[arg(long)]
        email: Option<String>,
        /// How many to issue (load tests); each is reported as it is done.
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// One JSON object per certificate, one per line.
        #[arg(long)]
        json: bool,
    },
}

/// A person's name and JMBG, as officer commands take them.
#[derive(Debug, clap::Args)]
struct PersonArgs {
    /// Given name.
    #[arg(long)]
    given_name: String,
    /// Surname.
    #[arg(long)]
    surname: String,
    /// JMBG (13 digits, checksum validated).
    #[arg(long)]
    jmbg: String,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Enrol a person whose identity was proofed (assurance high); prints an activation code
    /// for ConsentID (valid 10 minutes, single use).
    Add {
        /// E-mail address, the username.
        #[arg(long)]
        email: String,
        #[command(flatten)]
        person: PersonArgs,
        /// Read a password for password login (basic level) from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
        /// One JSON object with `user_id`, `email` and `activation_code`.
        #[arg(long)]
        json: bool,
        /// Also write the activation code as a QR code (PNG) to this file.
        #[arg(long, value_name = "FILE.png")]
        qr: Option<PathBuf>,
    },
    /// Proof an existing (self-registered) account: the name and JMBG become the proofed ones,
    /// the assurance high; its sessions and its password end; prints what changed and an
    /// activation code.
    Proof {
        /// The account's e-mail address.
        #[arg(long)]
        email: String,
        #[command(flatten)]
        person: PersonArgs,
        /// One JSON object with `user_id`, `email`, `changes` and `activation_code`.
        #[arg(long)]
        json: bool,
        /// Also write the activation code as a QR code (PNG) to this file.
        #[arg(long, value_name = "FILE.png")]
        qr: Option<PathBuf>,
    },
    /// A new activation code for an enrolled person (earlier unused codes stop working).
    ActivationCode {
        /// The account's e-mail address.
        #[arg(long)]
        email: String,
        /// One JSON object with `activation_code`.
        #[arg(long)]
        json: bool,
        /// Also write the activation code as a QR code (PNG) to this file.
        #[arg(long, value_name = "FILE.png")]
        qr: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check the audit log's hash chain (and its MACs and checkpoints); exits non-zero if it is broken.
    Verify,
    /// Write a checkpoint of the audit chain's head to `<data>/audit-checkpoints/` now.
    Checkpoint,
}

/// Logs to stderr what `filter` (`tracing` syntax) enables. The store's calls are spans
/// (target `store`, level debug): when enabled, each one's end is logged with its duration.
fn init_logging(filter: &str) {
    use tracing_subscriber::fmt::format::FmtSpan;
    use tracing_subscriber::prelude::*;
    let store_calls = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_span_events(FmtSpan::CLOSE)
        .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
            meta.is_span() && meta.target() == "store"
        }));
    tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new(filter))
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(store_calls)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&std::env::var("EIDPORTAL_LOG").unwrap_or_else(|_| "info".into()));
    let (listen, app_listen) = match &cli.command {
        Command::Serve { listen, app_listen } => (listen.clone(), app_listen.clone()),
        _ => (None, None),
    };
    let flags = Flags {
        data: cli.data.clone(),
        config: cli.config.clone(),
        listen,
        app_listen,
    };
    let environment: BTreeMap<String, String> = std::env::vars().collect();
    let config = match Config::load(&flags, &environment) {
        Ok(config) => config,
        Err(line) => {
            eprintln!("eidportal: {line}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("eidportal: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, config)) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("eidportal: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> Result<ExitCode, String> {
    if let Command::Serve { .. } = command {
        // Caught before anything else `serve` does, so that a SIGTERM while it starts (before
        // the listeners bind, while the CA is made) is kept and stops it cleanly once it
        // serves, rather than killing it (issue 22, finding 5d). The officer commands keep the
        // default: Ctrl-C ends them.
        let stop = StopSignal::catch()?;
        return serve(config, stop).await;
    }
    // Every other command works on the same data as the server, through the same authority.
    let authority = server::open_authority(
        &config,
        &server::public_url(&config, None),
        server::Opening::Command,
    )
    .await
    .map_err(|e| server::error::chain(&e))?;
    match command {
        Command::Serve { .. } => Ok(ExitCode::SUCCESS),
        Command::User(command) => {
            user(command, &authority, &server::app_public_url(&config, None)).await
        }
        Command::Cert(command) => cert(command, &authority).await,
        Command::Oidc(command) => oidc_command::run(command, &authority).await,
        Command::Audit(AuditCommand::Verify) => {
            match authority
                .verify_audit()
                .await
                .map_err(|e| server::error::chain(&e))?
            {
                Ok(count) => {
                    println!("audit log intact: {count} entries");
                    Ok(ExitCode::SUCCESS)
                }
                Err(broken) => {
                    println!("audit log BROKEN: {broken}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Audit(AuditCommand::Checkpoint) => match authority
            .write_audit_checkpoint()
            .await
            .map_err(|e| server::error::chain(&e))?
        {
            Some(path) => {
                println!("audit checkpoint written: {}", path.display());
                Ok(ExitCode::SUCCESS)
            }
            None => Err("no audit key or checkpoint folder: no checkpoint written".into()),
        },
    }
}

async fn serve(config: Config, stop_signal: StopSignal) -> Result<ExitCode, String> {
    // The certificate is read before anything else, so that a bad file stops the start.
    let tls = match &config.tls {
        Some(files) => {
            let certificates = Arc::new(server::transport::CertReloader::new(files.clone())?);
            let tls = Arc::new(server::transport::server_config(certificates.clone())?);
            server::transport::spawn_reloader(certificates);
            Some(tls)
        }
        None => None,
    };
    let listener = server::transport::bind(&config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let bound = listener
        .local_addr()
        .map_err(|e| server::error::chain(&e))?;
    let public_url = server::public_url(&config, Some(bound));
    // The ConsentID web app on its own origin (DESIGN §9).
    let app_listener = server::transport::bind(&config.app_listen)
        .await
        .map_err(|e| format!("cannot listen on {} (the app): {e}", config.app_listen))?;
    let app_bound = app_listener
        .local_addr()
        .map_err(|e| server::error::chain(&e))?;
    let app_public_url = server::app_public_url(&config, Some(app_bound));
    let authority = Arc::new(
        server::open_authority(&config, &public_url, server::Opening::Serve)
            .await
            .map_err(|e| server::error::chain(&e))?,
    );
    let (stop_sender, stopping) = server::transport::Stopping::new();
    // Background upkeep: status changes and key rotations made by other processes as they are
    // announced (on PostgreSQL; looked for every second where they cannot be: SQLite); CRLs,
    // OCSP signers and dead reservations every minute. It ends between two rounds once the server stops.
    let upkeep = authority.clone();
    let upkeep_stopping = stopping.clone();
    let upkeep_task = tokio::spawn(async move {
        let status_changes = upkeep.va.status_changes();
        let key_changes = upkeep.oidc.key_changes();
        let mut next_maintenance = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            // Armed before the status is read, so that no change after the read is missed.
            let changed = status_changes.next();
            let keys_changed = key_changes.next();
            let result = if tokio::time::Instant::now() >= next_maintenance {
                next_maintenance = tokio::time::Instant::now() + Duration::from_secs(60);
                upkeep.maintain().await
            } else {
                // (The OpenID keys: a rotation by `eidportal oidc keys rotate`.)
                match upkeep.va.sync_status().await {
                    Ok(()) => upkeep.oidc.refresh_signing_keys().await,
                    Err(error) => Err(error),
                }
            };
            if let Err(error) = result {
                tracing::error!(%error, "upkeep failed");
            }
            let pause = status_changes.recheck();
            tokio::select! {
                () = changed => {}
                () = keys_changed => {}
                () = tokio::time::sleep_until(next_maintenance.min(tokio::time::Instant::now() + pause)) => {}
                () = upkeep_stopping.wait() => break,
            }
        }
    });
    // Queued mail goes out in the background, retried with backoff (authority::ra::mail).
    let mail = authority.clone();
    let mail_stopping = stopping.clone();
    let mail_task = tokio::spawn(async move { mail.ra.mail_worker(mail_stopping.wait()).await });
    // Back-channel logouts go out the same way (authority::oidc).
    let logouts = authority.clone();
    let logouts_stopping = stopping.clone();
    let logout_task =
        tokio::spawn(async move { logouts.oidc.logout_worker(logouts_stopping.wait()).await });
    // And CIBA's ping-mode notifications (authority::oidc).
    let pings = authority.clone();
    let pings_stopping = stopping.clone();
    let ping_task =
        tokio::spawn(async move { pings.oidc.ciba_ping_worker(pings_stopping.wait()).await });
    let catalog = Arc::new(server::i18n::Catalog::load().map_err(|e| server::error::chain(&e))?);
    let secure_cookies = public_url.starts_with("https://");
    let metrics = Arc::new(Metrics::default());
    let state = AppState {
        authority: authority.clone(),
        metrics: metrics.clone(),
        catalog,
        secure_cookies,
        stopping: stopping.clone(),
        app_public_url: app_public_url.clone(),
    };
    if config.dangerous_disable_rate_limits {
        tracing::warn!(
            "EIDPORTAL_DANGEROUS_DISABLE_RATE_LIMITS is set: no rate limits (benchmarks only)"
        );
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("eidportal listening on {scheme}://{bound}");
    println!("portal: {public_url}/");
    println!("eidportal app listening on {scheme}://{app_bound}");
    println!("ConsentID app: {app_public_url}/");
    tracing::info!(data = %config.data.display(), database = %redact_url(&config.database_url), keys = ?config.keys, "started");
    let (router, app_router) = if tls.is_some() {
        (
            server::transport::with_hsts(app(state)),
            server::transport::with_hsts(server::app_origin::router(&public_url)),
        )
    } else {
        (app(state), server::app_origin::router(&public_url))
    };
    let limits = server::transport::Limits {
        header_read_timeout: Duration::from_secs(config.header_read_timeout_secs),
        max_connections: config.max_connections,
        max_connections_per_address: config.max_connections_per_address,
        request_pace: server::connection_limits::RequestPace {
            read_timeout: Duration::from_secs(config.request_read_timeout_secs),
            min_body_bytes_per_sec: config.min_body_bytes_per_sec,
            min_rate_grace: Duration::from_secs(config.min_body_rate_grace_secs),
        },
        counters: metrics.transport.clone(),
        trusted_proxies: Arc::new(config.trusted_proxies.clone()),
        ..server::transport::Limits::default()
    };
    let stop = async move {
        stop_signal.wait().await;
        tracing::info!("stopping: no new connections; requests in flight may finish");
        let _ = stop_sender.send(true);
    };
    let app_stopping = stopping.clone();
    let app_stop = async move { app_stopping.wait().await };
    tokio::join!(
        server::transport::serve(listener, router, tls.clone(), limits.clone(), stop),
        server::transport::serve(app_listener, app_router, tls, limits, app_stop),
    );
    // The last round of upkeep finishes, then the last group commit, then the database closes
    // (SQLite merges its WAL into the database file).
    let _ = upkeep_task.await;
    let _ = mail_task.await;
    let _ = logout_task.await;
    let _ = ping_task.await;
    // The head as the server leaves it, outside the database.
    if let Err(error) = authority.write_audit_checkpoint().await {
        tracing::error!(%error, "no audit checkpoint at shutdown");
    }
    authority.close().await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM (systemd, `kill`) or SIGINT (Ctrl-C), caught from the moment it is made: a signal
/// that comes before [`StopSignal::wait`] is first polled is kept, not lost.
struct StopSignal {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl StopSignal {
    /// Installs the handlers (inside the runtime). A server that could not be stopped cleanly
    /// does not start.
    fn catch() -> Result<Self, String> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let catch = |kind: SignalKind, name: &str| {
                signal(kind).map_err(|e| format!("cannot catch {name}: {e}"))
            };
            Ok(Self {
                terminate: catch(SignalKind::terminate(), "SIGTERM")?,
                interrupt: catch(SignalKind::interrupt(), "SIGINT")?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Self {})
        }
    }

    /// Resolves at the first of the signals, even one that came before this was called.
    async fn wait(self) {
        #[cfg(unix)]
        {
            let Self {
                mut terminate,
                mut interrupt,
            } = self;
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let Self {} = self;
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// A database URL without its password.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:[redacted]{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

async fn user(
    command: UserCommand,
    authority: &Authority,
    app_public_url: &str,
) -> Result<ExitCode, String> {
    // A `--qr` file that cannot be written stops the command before any code is made.
    if let UserCommand::Add { qr: Some(path), .. }
    | UserCommand::Proof { qr: Some(path), .. }
    | UserCommand::ActivationCode { qr: Some(path), .. } = &command
    {
        let folder = path.parent().filter(|p| !p.as_os_str().is_empty());
        if folder.is_some_and(|folder| !folder.is_dir()) {
            return Err(format!("--qr: no folder {}", path.display()));
        }
    }
    let (code, json, qr, user_id, email) = match command {
        UserCommand::Add {
            email,
            person:
                PersonArgs {
                    given_name,
                    surname,
                    jmbg,
                },
            password_stdin,
            json,
            qr,
        } => {
            let jmbg = Jmbg::parse(&jmbg).map_err(|e| format!("--jmbg: {e}"))?;
            let password = if password_stdin {
                let mut line = String::new();
                std::io::stdin()
                    .read_line(&mut line)
                    .map_err(|e| format!("--password-stdin: {e}"))?;
                Some(zeroize::Zeroizing::new(
                    line.trim_end_matches(['\n', '\r']).to_owned(),
                ))
            } else {
                None
            };
            let new = authority::ra::accounts::NewUser {
                email,
                given_name,
                surname,
                jmbg,
                password,
            };
            let (user, code) = authority.ra.add_user(new, "officer").await.map_err(|error| match error {
                authority::Error::Rejected(authority::Rejection::AlreadyExists) => {
                    "--email: a verified account with this address exists; proof it with `eidportal user proof` instead".to_owned()
                }
                other => officer_error(other),
            })?;
            (code, json, qr, Some(user.id), user.email)
        }
        UserCommand::Proof {
            email,
            person:
                PersonArgs {
                    given_name,
                    surname,
                    jmbg,
                },
            json,
            qr,
        } => {
            let jmbg = Jmbg::parse(&jmbg).map_err(|e| format!("--jmbg: {e}"))?;
            let proof = authority::ra::accounts::Proofing {
                email,
                given_name,
                surname,
                jmbg,
            };
            let (user, changes, code) = authority
                .ra
                .proof_user(proof, "officer")
                .await
                .map_err(officer_error)?;
            if json {
                let changes: Vec<_> = changes
                    .iter()
                    .map(|c| serde_json::json!({ "field": c.field, "old": c.old, "new": c.new }))
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({ "user_id": user.id, "email": user.email, "changes": changes, "activation_code": code.0 })
                );
            } else {
                for change in &changes {
                    println!("{}: {} → {}", change.field, change.old, change.new);
                }
                println!("sessions and password of {} ended", user.email);
                println!(
                    "activation code for {}: {} (valid 10 minutes, single use)",
                    user.email, code.0
                );
            }
            show_qr(app_public_url, &code.0, qr.as_deref(), json)?;
            return Ok(ExitCode::SUCCESS);
        }
        UserCommand::ActivationCode { email, json, qr } => {
            let code = authority
                .ra
                .new_activation_code(&email, "officer")
                .await
                .map_err(officer_error)?;
            (code, json, qr, None, email)
        }
    };
    if json {
        println!(
            "{}",
            serde_json::json!({ "user_id": user_id, "email": email, "activation_code": code.0 })
        );
    } else {
        println!(
            "activation code for {email}: {} (valid 10 minutes, single use)",
            code.0
        );
    }
    show_qr(app_public_url, &code.0, qr.as_deref(), json)?;
    Ok(ExitCode::SUCCESS)
}

/// The activation code as a QR code for the web app: in the terminal (when standard output is
/// one and the output is not JSON), and as a PNG with `--qr FILE.png`.
fn show_qr(
    app_public_url: &str,
    code: &str,
    png: Option<&std::path::Path>,
    json: bool,
) -> Result<(), String> {
    use std::io::IsTerminal as _;
    let link = server::activation_qr::activation_link(app_public_url, code);
    if let Some(path) = png {
        server::activation_qr::write_png(&link, path)?;
        if !json {
            println!("QR code written to {} ({link})", path.display());
        }
    }
    if !json && std::io::stdout().is_terminal() {
        println!("{}", server::activation_qr::terminal(&link)?);
        println!("scan it with ConsentID, or open {link}");
    }
    Ok(())
}

/// An officer command's error, naming the field where one is at fault.
fn officer_error(error: authority::Error) -> String {
    match error {
        authority::Error::Rejected(authority::Rejection::Invalid(field)) => {
            format!("--{}: not valid", field.replace('_', "-"))
        }
        other => server::error::chain(&other),
    }
}

fn parse_serial(text: &str) -> Result<Serial, String> {
    Serial::parse_hex(text).ok_or_else(|| format!("SERIAL: `{text}` is not a 32-digit hex serial"))
}

async fn cert(command: CertCommand, authority: &Authority) -> Result<ExitCode, String> {
    match command {
        CertCommand::List { email, json } => {
            let records = authority
                .ca
                .certificates(email.as_deref())
                .await
                .map_err(|e| server::error::chain(&e))?;
            if json {
                let items: Vec<serde_json::Value> = records
                    .iter()
                    .map(|r| {
                        serde_json::json!({
                            "serial": r.serial.to_hex(),
                            "kind": r.kind.as_str(),
                            "status": r.status.as_str(),
                            "authority": r.authority,
                            "subject": r.subject,
                            "email": r.email,
                            "not_before": r.not_before.rfc3339(),
                            "not_after": r.not_after.rfc3339(),
                            "revoked_at": r.revocation.map(|(at, _)| at.rfc3339()),
                            "revocation_reason": r.revocation.map(|(_, reason)| reason.as_str()),
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(items));
            } else {
                println!(
                    "{:<32}  {:<15}  {:<9}  {:<20}  subject",
                    "serial", "kind", "status", "not_after"
                );
                for r in &records {
                    println!(
                        "{}  {:<15}  {:<9}  {:<20}  {}",
                        r.serial.to_hex(),
                        r.kind.as_str(),
                        r.status.as_str(),
                        r.not_after.rfc3339(),
                        r.subject
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        CertCommand::Pem { serial, chain } => {
            let serial = parse_serial(&serial)?;
            print!(
                "{}",
                authority
                    .ca
                    .certificate_pem(&serial, chain)
                    .await
                    .map_err(|e| server::error::chain(&e))?
            );
            Ok(ExitCode::SUCCESS)
        }
        CertCommand::Revoke { serial, reason } => {
            let serial = parse_serial(&serial)?;
            let reason: RevocationReason = reason.parse().map_err(|_| {
                format!("--reason: `{reason}` is not an RFC 5280 reason (e.g. keyCompromise, superseded)")
            })?;
            authority
                .va
                .revoke(&serial, reason, "officer")
                .await
                .map_err(|e| server::error::chain(&e))?;
            println!("revoked {serial} ({})", reason.as_str());
            Ok(ExitCode::SUCCESS)
        }
        CertCommand::Issue {
            kind,
            person:
                PersonArgs {
                    given_name,
                    surname,
                    jmbg,
                },
            email,
            count,
            json,
        } => {
            if kind.replace('_', "-") != "cloud-signing" {
                return Err(format!(
                    "--kind: `{kind}`: only cloud-signing certificates are issued by this command"
                ));
            }
            let jmbg = Jmbg::parse(&jmbg).map_err(|e| format!("--jmbg: {e}"))?;
            let names_ok = |s: &str| !s.trim().is_empty() && s.chars().count() <= 64;
            if !names_ok(&given_name) || !names_ok(&surname) {
                return Err("--given-name and --surname must be 1 to 64 characters".into());
            }
            let person = Person {
                given_name,
                surname,
                jmbg,
            };
            issue_many(authority, Arc::new(person), email, count, json).await
        }
    }
}

/// Certificates issued at once by `cert issue --count N`: as many as the store's writer puts
/// in one group commit (`store::writer`).
const ISSUED_AT_ONCE: u32 = 16;

/// Issues `count` cloud certificates for `person`, up to [`ISSUED_AT_ONCE`] at a time. Each
/// is its own use case, one transaction with its audit entry (`Ca::issue_cloud_certificate`),
/// and is printed only once that transaction is committed; use cases running together share
/// the writer's group commit and its one fsync, as the server's concurrent requests do. On an
/// error no further issuance starts, those under way finish (and are printed), and the first
/// error is returned.
async fn issue_many(
    authority: &Authority,
    person: Arc<Person>,
    email: Option<String>,
    count: u32,
    json: bool,
) -> Result<ExitCode, String> {
    let email: Arc<Option<String>> = Arc::new(email);
    let mut running = tokio::task::JoinSet::new();
    let mut started = 0;
    let mut failure = None;
    loop {
        while failure.is_none() && started < count && running.len() < ISSUED_AT_ONCE as usize {
            let (ca, person, email) = (authority.ca.clone(), person.clone(), email.clone());
            running.spawn(async move {
                ca.issue_cloud_certificate(&person, email.as_deref(), "officer")
                    .await
            });
            started += 1;
        }
        let Some(done) = running.join_next().await else {
            break;
        };
        let issued = match done {
            Ok(Ok(issued)) => issued,
            Ok(Err(error)) => {
                failure.get_or_insert(server::error::chain(&error));
                continue;
            }
            Err(error) => {
                failure.get_or_insert(format!("an issuance task failed: {error}"));
                continue;
            }
        };
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "serial": issued.serial.to_hex(),
                    "kind": "cloud_signing",
                    "status": "issued",
                    "not_before": issued.not_before.rfc3339(),
                    "not_after": issued.not_after.rfc3339(),
                })
            );
        } else {
            println!("issued {}", issued.serial.to_hex());
        }
    }
    match failure {
        Some(error) => Err(error),
        None => Ok(ExitCode::SUCCESS),
    }
}
