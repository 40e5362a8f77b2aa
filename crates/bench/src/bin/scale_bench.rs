//! `scale_bench seed`: the bulk part of `scripts/bench scale` (issue 24). It makes the rows of
//! COUNT citizens from the rows a real citizen left in the database (the template: an account
//! enrolled with `eidportal user add`, a ConsentID device activated and used for one login by
//! `login_bench`, a cloud signing certificate issued with `eidportal cert issue`), and writes
//! them as PostgreSQL `COPY ... FROM STDIN` text, one file per table, which `scripts/bench`
//! loads in one transaction.
//!
//! What is real and what is derived (the script's header says the same):
//! - every id, serial, e-mail address, JMBG, code and hash of the template's rows is replaced
//!   in every column and in the audit details by a fresh random value of the same shape (hex
//!   stays hex of the same length), so that primary keys and unique columns differ and the
//!   serials are spread over the whole serial space;
//! - byte columns (`BYTEA`) are the template's bytes: every derived device has the template
//!   device's public keys, every derived certificate row the template certificate's DER (with
//!   the template's serial inside). The OCSP responder and the CRL read a certificate's serial,
//!   authority, status and revocation from its row, never its DER; no derived device logs in;
//! - one cloud certificate in `--revoked-every` is revoked (reason superseded, by `officer`),
//!   as `eidportal cert revoke` records it: the row's status, time and reason, and a
//!   `certificate.revoked` entry;
//! - the audit history of each citizen is the template's entries with its values replaced,
//!   chained after the database's head with the chain's own rules: each entry MACed with the
//!   audit key (derived from `<data>/master.key` as the server derives it) through
//!   `store::AuditEntry::expected_mac`, so `eidportal audit verify` checks every one of them.
//!
//! `scale_bench memory`: the server's resident memory (`/proc/<pid>/status`, VmRSS) with
//! PENDING login requests waiting for their app (a browser's `GET` and `POST /login/mobile`
//! for as many seeded citizens, which have active devices), then with as many apps
//! long-polling their inbox at once (`GET /api/app/v1/inbox?wait=25`, signed, each on its own
//! connection, spread over freshly activated real apps).

mod common;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pki::{KeyBackend as _, MasterKey, SoftwareKeyBackend};
use store::AuditQueries as _;

/// The tables a citizen has rows in, in the order they are loaded (foreign keys first).
const TABLES: [&str; 7] = [
    "users",
    "activations",
    "keys",
    "certificates",
    "devices",
    "transactions",
    "sessions",
];

/// Columns whose values identify the template citizen: replaced wherever they appear.
const IDENTIFYING: [(&str, &str); 14] = [
    ("users", "id"),
    ("users", "email"),
    ("users", "jmbg"),
    ("activations", "id"),
    ("activations", "lookup"),
    ("activations", "secret_hash"),
    ("devices", "id"),
    ("devices", "certificate_serial"),
    ("keys", "id"),
    ("certificates", "serial"),
    ("transactions", "id"),
    ("transactions", "challenge"),
    ("transactions", "session_binding"),
    ("sessions", "id_hash"),
];

/// Shorter values are not replaced (a two-digit verification code would match everywhere).
const MIN_TOKEN: usize = 6;
/// Values shorter than this are numbered, not drawn at random (six characters drawn for a
/// million citizens would collide).
const COUNTED_BELOW: usize = 16;

#[derive(Debug, Parser)]
#[command(
    name = "scale_bench",
    about = "Bulk rows for scripts/bench scale (issue 24)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Writes COUNT citizens' rows, derived from the template, as COPY text files.
    Seed(SeedArgs),
    /// The server's RSS with many pending logins, then with many long-polling apps.
    Memory(MemoryArgs),
}

#[derive(Debug, clap::Args)]
struct MemoryArgs {
    /// The server, `http://IPv4:PORT`.
    #[arg(long)]
    server: String,
    /// The server's process id (its RSS is read from `/proc`).
    #[arg(long)]
    server_pid: u32,
    /// The seeded citizens' label (`scale-<label>-<n>@example.rs`).
    #[arg(long)]
    label: String,
    /// Pending logins to start, for citizens 1..=PENDING.
    #[arg(long, default_value_t = 10_000)]
    pending: usize,
    /// Long-polls to hold at once.
    #[arg(long, default_value_t = 10_000)]
    long_polls: usize,
    /// JSON lines from `eidportal user add --json`: the apps to activate for the long-polls.
    #[arg(long)]
    apps: PathBuf,
}

#[derive(Debug, clap::Args)]
struct SeedArgs {
    /// The template: `<table>.cols` (column names, comma-separated) and `<table>.tsv` (its rows
    /// as COPY text) for each table, and `audit.tsv` (the template's audit entries, as COPY
    /// text of `seq, at, actor, event, details, prev_hash, hash`).
    #[arg(long)]
    templates: PathBuf,
    /// Citizens to make.
    #[arg(long)]
    count: u64,
    /// Where the COPY files go (`<table>.tsv`, `audit_log.tsv`, `audit_head.tsv`,
    /// `serials.tsv`: every cloud certificate's serial and status).
    #[arg(long)]
    out: PathBuf,
    /// The server's data folder (its `master.key` gives the audit key).
    #[arg(long)]
    data: PathBuf,
    /// The server's database (the chain's head is read from it).
    #[arg(long)]
    database_url: String,
    /// One cloud certificate in this many is revoked.
    #[arg(long, default_value_t = 20)]
    revoked_every: u64,
    /// A label in the derived e-mail addresses (`scale-<label>-<n>@example.rs`).
    #[arg(long, default_value = "bench")]
    label: String,
}

/// A template row: its cells, each as literal text and references to tokens.
type Cells = Vec<Vec<Piece>>;

#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    Token(usize),
}

/// One table's template.
struct Table {
    name: &'static str,
    columns: Vec<String>,
    rows: Vec<Cells>,
}

/// One template audit entry, its text parts split into pieces.
struct TemplateEntry {
    at: i64,
    actor: Vec<Piece>,
    event: String,
    details: Vec<Piece>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Seed(args) => seed(&args),
        Command::Memory(args) => memory(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("scale_bench: {message}");
            ExitCode::FAILURE
        }
    }
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The fields of a COPY text line (escapes kept: the tokens are plain ASCII).
fn fields(line: &str) -> Vec<&str> {
    line.split('\t').collect()
}

/// Splits `text` into literal text and tokens, the longest token first where they overlap.
fn pieces(text: &str, tokens: &[String]) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    'scan: while !rest.is_empty() {
        for (index, token) in tokens.iter().enumerate() {
            if let Some(after) = rest.strip_prefix(token.as_str()) {
                if !literal.is_empty() {
                    out.push(Piece::Text(std::mem::take(&mut literal)));
                }
                out.push(Piece::Token(index));
                rest = after;
                continue 'scan;
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            literal.push(c);
        }
        rest = chars.as_str();
    }
    if !literal.is_empty() {
        out.push(Piece::Text(literal));
    }
    out
}

fn render(pieces: &[Piece], values: &[String], out: &mut String) {
    for piece in pieces {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Token(index) => out.push_str(values.get(*index).map_or("", String::as_str)),
        }
    }
}

/// A fresh value of the token's shape: hex stays hex (of the same case), other letters and
/// digits stay letters and digits of the same case, anything else is kept; an e-mail address
/// becomes `scale-<label>-<n>@example.rs`. Random where the value is long enough for random
/// values not to collide ([`COUNTED_BELOW`]); below, the citizen's number in the same shape
/// (mixed radix, the last character first), so that a unique column stays unique.
fn fresh(token: &str, label: &str, citizen: u64, rng: &mut impl rand::Rng) -> String {
    if token.contains('@') {
        return format!("scale-{label}-{citizen}@example.rs");
    }
    let hex = token.bytes().all(|b| b.is_ascii_hexdigit());
    let radix = |c: char| -> u64 {
        if hex {
            16
        } else if c.is_ascii_digit() {
            10
        } else if c.is_ascii_alphabetic() {
            26
        } else {
            1
        }
    };
    let digit = |c: char, v: u64| -> char {
        let v = u32::try_from(v).unwrap_or(0);
        if hex {
            let d = char::from_digit(v, 16).unwrap_or('0');
            if c.is_ascii_uppercase() {
                d.to_ascii_uppercase()
            } else {
                d
            }
        } else if c.is_ascii_digit() {
            char::from_digit(v, 10).unwrap_or('0')
        } else if c.is_ascii_lowercase() {
            char::from(b'a' + u8::try_from(v).unwrap_or(0))
        } else if c.is_ascii_uppercase() {
            char::from(b'A' + u8::try_from(v).unwrap_or(0))
        } else {
            c
        }
    };
    if token.len() < COUNTED_BELOW {
        let mut rest = citizen;
        let mut out: Vec<char> = token
            .chars()
            .rev()
            .map(|c| {
                let r = radix(c);
                let v = rest % r;
                rest /= r;
                digit(c, v)
            })
            .collect();
        out.reverse();
        return out.into_iter().collect();
    }
    token
        .chars()
        .map(|c| {
            let r = radix(c);
            digit(c, if r > 1 { rng.gen_range(0..r) } else { 0 })
        })
        .collect()
}

/// Unescapes a COPY text field (`\\`, `\t`, `\n`, `\r`); `\N` is NULL.
fn unescape(field: &str) -> Option<String> {
    if field == "\\N" {
        return None;
    }
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('t') => out.push('\t'),
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

fn escape(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            other => out.push(other),
        }
    }
}

fn seed(args: &SeedArgs) -> Result<(), String> {
    // 1. The template's tables and its identifying values.
    let mut raw_tables = Vec::new();
    for name in TABLES {
        let columns: Vec<String> = read(&args.templates.join(format!("{name}.cols")))?
            .trim()
            .split(',')
            .map(str::to_owned)
            .collect();
        let text = read(&args.templates.join(format!("{name}.tsv")))?;
        let rows: Vec<Vec<String>> = text
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| fields(l).into_iter().map(str::to_owned).collect())
            .collect();
        for row in &rows {
            if row.len() != columns.len() {
                return Err(format!(
                    "{name}.tsv: a row of {} fields for {} columns",
                    row.len(),
                    columns.len()
                ));
            }
        }
        raw_tables.push((name, columns, rows));
    }
    let mut tokens: Vec<String> = Vec::new();
    for (table, column) in IDENTIFYING {
        let Some((_, columns, rows)) = raw_tables.iter().find(|(name, _, _)| *name == table) else {
            continue;
        };
        let Some(index) = columns.iter().position(|c| c == column) else {
            return Err(format!("{table} has no column {column}"));
        };
        for row in rows {
            if let Some(value) = row.get(index).and_then(|v| unescape(v)) {
                if value.len() >= MIN_TOKEN && !tokens.contains(&value) {
                    tokens.push(value);
                }
            }
        }
    }
    // The longest first, so that a token inside another is not split off.
    tokens.sort_by_key(|t| std::cmp::Reverse(t.len()));
    let users = raw_tables
        .iter()
        .find(|(name, _, _)| *name == "users")
        .map_or(0, |(_, _, rows)| rows.len());
    if users != 1 {
        return Err(format!("the template must hold one user, not {users}"));
    }

    let tables: Vec<Table> = raw_tables
        .into_iter()
        .map(|(name, columns, rows)| Table {
            name,
            rows: rows
                .iter()
                .map(|row| {
                    row.iter()
                        .map(|field| {
                            if field.starts_with("\\\\x") {
                                // A byte column: the template's bytes.
                                vec![Piece::Text(field.clone())]
                            } else {
                                pieces(field, &tokens)
                            }
                        })
                        .collect()
                })
                .collect(),
            columns,
        })
        .collect();

    // The cloud certificate (authority qualified) and where its revocation goes.
    let certificates = tables
        .iter()
        .find(|t| t.name == "certificates")
        .ok_or("no certificates template")?;
    let column = |name: &str| {
        certificates
            .columns
            .iter()
            .position(|c| c == name)
            .ok_or_else(|| format!("certificates has no column {name}"))
    };
    let (c_serial, c_authority, c_kind, c_status, c_revoked_at, c_reason) = (
        column("serial")?,
        column("authority")?,
        column("kind")?,
        column("status")?,
        column("revoked_at")?,
        column("revocation_reason")?,
    );
    let text_of = |cells: &Cells, index: usize| -> String {
        let mut out = String::new();
        if let Some(cell) = cells.get(index) {
            render(cell, &tokens, &mut out);
        }
        out
    };
    let cloud_rows: Vec<usize> = certificates
        .rows
        .iter()
        .enumerate()
        .filter(|(_, cells)| {
            text_of(cells, c_authority) == "qualified"
                && text_of(cells, c_kind) == "cloud_signing"
                && text_of(cells, c_status) == "issued"
        })
        .map(|(i, _)| i)
        .collect();
    if cloud_rows.len() != 1 {
        return Err(format!(
            "the template must hold one issued cloud certificate, not {}",
            cloud_rows.len()
        ));
    }
    let cloud_row = cloud_rows.first().copied().unwrap_or(0);
    let cloud_serial_piece = certificates
        .rows
        .get(cloud_row)
        .and_then(|cells| cells.get(c_serial))
        .cloned()
        .unwrap_or_default();

    // 2. The template's audit entries.
    let audit_text = read(&args.templates.join("audit.tsv"))?;
    let mut entries = Vec::new();
    for line in audit_text.lines().filter(|l| !l.is_empty()) {
        let f = fields(line);
        let (Some(at), Some(actor), Some(event), Some(details)) =
            (f.get(1), f.get(2), f.get(3), f.get(4))
        else {
            return Err(format!("audit.tsv: bad line {line}"));
        };
        let at: i64 = at
            .parse()
            .map_err(|_| format!("audit.tsv: bad time {at}"))?;
        let actor = unescape(actor).unwrap_or_default();
        let details = unescape(details).unwrap_or_default();
        entries.push(TemplateEntry {
            at,
            actor: pieces(&actor, &tokens),
            event: unescape(event).unwrap_or_default(),
            details: pieces(&details, &tokens),
        });
    }
    if entries.is_empty() {
        return Err("audit.tsv: the template has no audit entries".into());
    }
    let revoked_at = entries.iter().map(|e| e.at).max().unwrap_or(0);

    // 3. The audit key and the chain's head.
    let master_path = args.data.join("master.key");
    let master_bytes =
        std::fs::read(&master_path).map_err(|e| format!("{}: {e}", master_path.display()))?;
    let master = MasterKey::from_bytes(&master_bytes)
        .ok_or_else(|| format!("{} is not a 32-byte master key", master_path.display()))?;
    let secret = SoftwareKeyBackend::new(master)
        .derive_secret(store::AuditKey::PURPOSE)
        .map_err(|e| format!("audit key: {e}"))?
        .ok_or("the software key backend gave no audit secret")?;
    let key = store::AuditKey::from_secret(secret);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio: {e}"))?;
    let head = runtime.block_on(async {
        let store = store::Store::connect(&args.database_url)
            .await
            .map_err(|e| format!("the server's database: {e}"))?;
        let head = store.audit_head().await;
        let keyed = store.audit_keyed_from().await;
        store.close().await;
        match (head, keyed) {
            (Ok(head), Ok(Some(_))) => Ok(head),
            (Ok(_), Ok(None)) => {
                Err("the audit chain has no keyed part: start the server once first".to_owned())
            }
            (Err(e), _) | (_, Err(e)) => Err(format!("the server's database: {e}")),
        }
    })?;

    // 4. The rows, citizen by citizen.
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let create = |name: &str| -> Result<BufWriter<std::fs::File>, String> {
        let path = args.out.join(name);
        std::fs::File::create(&path)
            .map(|f| BufWriter::with_capacity(1 << 20, f))
            .map_err(|e| format!("{}: {e}", path.display()))
    };
    let mut writers: HashMap<&str, BufWriter<std::fs::File>> = HashMap::new();
    for table in &tables {
        writers.insert(table.name, create(&format!("{}.tsv", table.name))?);
        let path = args.out.join(format!("{}.cols", table.name));
        std::fs::write(&path, table.columns.join(","))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let mut audit_out = create("audit_log.tsv")?;
    let mut serials_out = create("serials.tsv")?;
    let mut rng = rand::thread_rng();
    let (mut seq, mut prev) = head;
    let mut line = String::new();
    let mut values: Vec<String> = Vec::with_capacity(tokens.len());
    let mut revoked = 0u64;
    let write_err = |e: std::io::Error| format!("writing: {e}");
    for citizen in 1..=args.count {
        values.clear();
        for token in &tokens {
            values.push(fresh(token, &args.label, citizen, &mut rng));
        }
        let revoke = args.revoked_every > 0 && citizen % args.revoked_every == 0;
        for table in &tables {
            let writer = writers
                .get_mut(table.name)
                .ok_or_else(|| format!("no writer for {}", table.name))?;
            for (row_index, cells) in table.rows.iter().enumerate() {
                line.clear();
                let cloud = table.name == "certificates" && row_index == cloud_row;
                for (i, cell) in cells.iter().enumerate() {
                    if i > 0 {
                        line.push('\t');
                    }
                    if cloud && revoke && i == c_status {
                        line.push_str("revoked");
                    } else if cloud && revoke && i == c_revoked_at {
                        let _ = write!(line, "{revoked_at}");
                    } else if cloud && revoke && i == c_reason {
                        // RFC 5280 §5.3.1 superseded.
                        line.push('4');
                    } else {
                        render(cell, &values, &mut line);
                    }
                }
                line.push('\n');
                writer.write_all(line.as_bytes()).map_err(write_err)?;
            }
        }
        let mut serial = String::new();
        render(&cloud_serial_piece, &values, &mut serial);
        writeln!(
            serials_out,
            "{serial}\t{}",
            if revoke { "revoked" } else { "good" }
        )
        .map_err(write_err)?;

        // The citizen's audit history, chained.
        let mut history: Vec<(i64, String, String, String)> = entries
            .iter()
            .map(|entry| {
                let mut actor = String::new();
                render(&entry.actor, &values, &mut actor);
                let mut details = String::new();
                render(&entry.details, &values, &mut details);
                (entry.at, actor, entry.event.clone(), details)
            })
            .collect();
        if revoke {
            revoked += 1;
            history.push((
                revoked_at,
                "officer".into(),
                "certificate.revoked".into(),
                serde_json::json!({ "serial": serial, "kind": "cloud_signing", "reason": "superseded" })
                    .to_string(),
            ));
        }
        for (at, actor, event, details) in history {
            seq += 1;
            let mut entry = store::AuditEntry {
                seq,
                at: domain::UnixTime(at),
                actor,
                event,
                details,
                prev_hash: prev,
                hash: String::new(),
            };
            entry.hash = entry.expected_mac(&key);
            line.clear();
            let _ = write!(line, "{}\t{}\t", entry.seq, entry.at.0);
            escape(&entry.actor, &mut line);
            line.push('\t');
            escape(&entry.event, &mut line);
            line.push('\t');
            escape(&entry.details, &mut line);
            let _ = writeln!(line, "\t{}\t{}", entry.prev_hash, entry.hash);
            audit_out.write_all(line.as_bytes()).map_err(write_err)?;
            prev = entry.hash;
        }
    }
    for (_, mut writer) in writers {
        writer.flush().map_err(write_err)?;
    }
    audit_out.flush().map_err(write_err)?;
    serials_out.flush().map_err(write_err)?;
    std::fs::write(args.out.join("audit_head.tsv"), format!("{seq}\t{prev}\n"))
        .map_err(|e| format!("audit_head.tsv: {e}"))?;
    println!(
        "{} citizens: {} template rows each, {} audit entries each (+1 for the {revoked} revoked), head now {seq}",
        args.count,
        tables.iter().map(|t| t.rows.len()).sum::<usize>(),
        entries.len()
    );
    Ok(())
}

/// The resident set of `pid` in MB.
fn rss_mb(pid: u32) -> Result<f64, String> {
    let text = read(Path::new(&format!("/proc/{pid}/status")))?;
    let kb: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or("no VmRSS line")?;
    Ok(kb / 1024.0)
}

fn memory(args: &MemoryArgs) -> Result<(), String> {
    let server: std::net::SocketAddrV4 = args
        .server
        .strip_prefix("http://")
        .unwrap_or(&args.server)
        .parse()
        .map_err(|_| format!("--server {}: not http://IPv4:PORT", args.server))?;
    println!("RSS idle {:.1}", rss_mb(args.server_pid)?);

    // 1. Pending logins: a browser's form and start for seeded citizens 1..=pending.
    let threads = 4usize;
    let started = std::time::Instant::now();
    let results: Vec<Result<usize, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || -> Result<usize, String> {
                    let mut connection = common::Connection::new(server, None);
                    let mut done = 0;
                    for citizen in (1..=args.pending).filter(|c| c % threads == t) {
                        let email = format!("scale-{}-{citizen}@example.rs", args.label);
                        let form = connection.request(
                            "GET",
                            "/login/mobile",
                            &[("User-Agent", common::USER_AGENT)],
                            b"",
                        )?;
                        let sid = form.cookie("sid").ok_or("form: no sid cookie")?.to_owned();
                        let html = form.text();
                        let csrf = common::between(&html, "name=\"csrf\" value=\"", "\"")
                            .ok_or("form: no CSRF field")?
                            .to_owned();
                        let cookie = format!("sid={sid}");
                        let body = format!(
                            "csrf={}&username={}",
                            common::url_encode(&csrf),
                            common::url_encode(&email)
                        );
                        let answer = connection.request(
                            "POST",
                            "/login/mobile",
                            &[
                                ("User-Agent", common::USER_AGENT),
                                ("Cookie", &cookie),
                                ("Content-Type", "application/x-www-form-urlencoded"),
                            ],
                            body.as_bytes(),
                        )?;
                        let to_wait = answer
                            .header("location")
                            .is_some_and(|l| l.starts_with("/login/mobile/"));
                        if answer.status != 303 || !to_wait {
                            return Err(format!("start for {email}: {}", answer.describe()));
                        }
                        done += 1;
                    }
                    Ok(done)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("a thread panicked".into())))
            .collect()
    });
    let mut pending = 0;
    for result in results {
        pending += result?;
    }
    println!(
        "{pending} logins started in {:.1} s, each waiting for its app",
        started.elapsed().as_secs_f64()
    );
    std::thread::sleep(std::time::Duration::from_secs(1));
    println!("RSS pending {:.1}", rss_mb(args.server_pid)?);

    // 2. Long-polls: real apps, activated now, each poll signed and on its own connection.
    let text = read(&args.apps)?;
    let mut connection = common::Connection::new(server, None);
    let mut apps = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let enrolled: common::Enrolled =
            serde_json::from_str(line).map_err(|e| format!("{}: {e}", args.apps.display()))?;
        apps.push(common::activate(&mut connection, &enrolled).map_err(|f| f.kind)?);
    }
    if apps.is_empty() {
        return Err(format!("{}: no apps", args.apps.display()));
    }
    println!("{} apps activated for the long-polls", apps.len());
    let path = "/api/app/v1/inbox?wait=25";
    let started = std::time::Instant::now();
    let mut streams = Vec::with_capacity(args.long_polls);
    for i in 0..args.long_polls {
        let app = apps.get(i % apps.len()).ok_or("no app")?;
        let authorization = app.authorization("GET", path, b"");
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {server}\r\nAuthorization: {authorization}\r\nAccept: application/json\r\n\r\n"
        );
        let mut stream = std::net::TcpStream::connect(server)
            .map_err(|e| format!("long-poll {i}: connect: {e}"))?;
        stream
            .write_all(request.as_bytes())
            .map_err(|e| format!("long-poll {i}: write: {e}"))?;
        streams.push(stream);
    }
    println!(
        "{} long-polls sent in {:.1} s",
        streams.len(),
        started.elapsed().as_secs_f64()
    );
    std::thread::sleep(std::time::Duration::from_secs(2));
    let rss = rss_mb(args.server_pid)?;
    // A poll answered already was refused or had something to deliver: it is not waiting.
    let mut answered = 0;
    let mut peek = [0u8; 16];
    for stream in &streams {
        stream
            .set_nonblocking(true)
            .map_err(|e| format!("nonblocking: {e}"))?;
        if matches!(stream.peek(&mut peek), Ok(n) if n > 0) {
            answered += 1;
        }
    }
    if started.elapsed() > std::time::Duration::from_secs(20) {
        return Err("the long-polls took too long to send: some may have timed out".into());
    }
    println!(
        "{answered} of {} long-polls answered before the measurement (not waiting)",
        streams.len()
    );
    println!("RSS long-polls {rss:.1}");
    if answered * 100 > streams.len() {
        return Err(format!(
            "{answered} long-polls were answered at once: they were not waiting"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_replaced_longest_first_and_keep_their_shape() {
        let tokens = vec!["abcdef0123456789".to_owned(), "abcdef01".to_owned()];
        let split = pieces("x abcdef0123456789 y abcdef01", &tokens);
        let values = vec!["AAAA".to_owned(), "BB".to_owned()];
        let mut out = String::new();
        render(&split, &values, &mut out);
        assert_eq!(out, "x AAAA y BB");
        let mut rng = rand::thread_rng();
        let value = fresh("00ff9A-b_c0123456789", "t", 1, &mut rng);
        assert_eq!(value.len(), 20);
        assert_eq!(value.get(6..7), Some("-"));
        // Short values are the citizen's number in the same shape: unique.
        assert_eq!(fresh("1NG2N8", "t", 0, &mut rng), "0AA0A0");
        assert_eq!(fresh("1NG2N8", "t", 11, &mut rng), "0AA0B1");
        assert_ne!(
            fresh("1NG2N8", "t", 260, &mut rng),
            fresh("1NG2N8", "t", 0, &mut rng)
        );
        let hex = fresh("0123456789abcdef", "t", 1, &mut rng);
        assert!(hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(
            fresh("a@example.rs", "t", 7, &mut rng),
            "scale-t-7@example.rs"
        );
    }

    #[test]
    fn copy_text_escapes_round_trip() {
        let mut out = String::new();
        escape("a\tb\\c\nd", &mut out);
        assert_eq!(unescape(&out).as_deref(), Some("a\tb\\c\nd"));
        assert_eq!(unescape("\\N"), None);
    }
}
