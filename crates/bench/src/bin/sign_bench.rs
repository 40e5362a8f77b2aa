//! signHash benchmark (issue 5): signatures per second through the CSC API v2 (batches of 100
//! hashes) against in-process signing with the same key in the same run, and the end-to-end
//! time of a portal signature without the human's approval. `scripts/bench sign` prepares the
//! server (user, ConsentID activation code, cloud certificate) and runs this;
//! `scripts/README.md` says how.
//!
//! ```text
//! sign_bench raw [SECONDS]    (raw in-process P-256 signing only, one thread)
//! sign_bench --server http://127.0.0.1:PORT --user user.json --password-file FILE
//!            --credential SERIAL --data DIR [--clients 1,2] [--calls 200] [--warmup-calls 10]
//!            [--rounds 5] [--baseline-seconds 10] [--probe-calls 100] [--levels b-b,b-t,b-lt]
//!            [--portal-runs 5] [--portal-warmup 1] [--pdf-kib 100] [--scratch DIR]
//!            [--server-pid PID] [--label software] [--json-out FILE]
//! ```
//!
//! `user.json` is the user's `eidportal user add --json` answer (`email`, `activation_code`);
//! the credential is the serial `eidportal cert issue --json` printed. The key backend and the
//! database are taken from the environment as the server takes them (`EIDPORTAL_PKCS11_MODULE`,
//! `EIDPORTAL_PKCS11_TOKEN`, `EIDPORTAL_PKCS11_PIN`; `EIDPORTAL_DATABASE_URL`, by default
//! `sqlite:<data>/eidportal.db`): run it with the server's environment.
//!
//! 1. Setup, not measured: the simulated ConsentID app (`common`) is activated, an API token
//!    fetched (`auth/login`, HTTP Basic), and the credential must be in `credentials/list`; its
//!    certificate's public key verifies every signature the bench gets.
//! 2. The baseline's key: the certificate's key record is read from the server's database
//!    (`CertificateQueries::certificate` and `key`) and opened with the backend code the server
//!    uses (`SoftwareKeyBackend` under `<data>/master.key`, or `hsm::Pkcs11Backend`). Its public key
//!    must be the certificate's: the baseline signs with the very key the API uses.
//! 3. For each client count C (`--clients`):
//!    - SADs, not measured: `credentials/authorize` with 100 random SHA-256 hashes → the app
//!      fetches the request (it must show exactly these hashes, for this credential) and
//!      approves → `credentials/authorizeCheck` → the SAD. One after the other: a new request
//!      of the same user would supersede a pending one. A SAD lives 5 minutes, so they are
//!      collected right before the client count that spends them;
//!    - `--warmup-calls` signHash calls (before the first client count only, not counted);
//!    - `--rounds` rounds of signHash calls (together `--calls`), each between two slices of
//!      the baseline, `--rounds` + 1 slices in all (together `--baseline-seconds`), so that
//!      both see the same load of a shared machine. A round: C clients, each on its own
//!      keep-alive connection, each call spending one SAD on its 100 hashes; the body is
//!      built before the call's clock starts. A slice: C threads sign 100-digest batches with
//!      `KeySigner::sign_digest`, as the server's `sign_in` does (the key opened once). The
//!      ratio is all the rounds' throughput over all the slices'; each round's own ratio
//!      (over the mean of the slices around it) shows the spread;
//!    - every signature is verified against the certificate's key (not timed).
//! 4. Where a call's time goes, measured, not guessed: the key's `open` in-process (the server
//!    does it on a key's first call only, then keeps it opened); `--probe-calls` signHash calls with the same body but a
//!    random SAD, which the server refuses after HTTP, JSON, base64, token, credential,
//!    `BEGIN IMMEDIATE` and the SAD lookup, before spending, signing and committing; and, on
//!    SQLite, a commit probe: transactions on a scratch database in `--scratch` (same file
//!    system, same `Store` settings: WAL, `synchronous = FULL`) that append the audit row
//!    signHash appends (`signature.created` with 100 hashes) and commit. Server CPU per call
//!    comes from `/proc`.
//! 5. The portal (`--portal-runs` per level, 0 skips it): a ConsentID mobile login (as
//!    `login_bench` does it) for a session, `--portal-warmup` signatures not counted, then per
//!    signature: the upload form, the upload `POST /services/sign` (prepare + authorisation
//!    request; must be 303 to the job), the job page once (pending), the app's approval (timed
//!    apart and excluded), then from the approval's acceptance: the job page polled (the
//!    server signs and finishes on the first poll after the approval) until it offers the
//!    download, and the download. The signed PDF must be an incremental update of the uploaded
//!    one (B-LT: with a DSS).
//!
//! Exit status 0 when everything ran (whatever the ratios), 1 when something failed.

mod common;

use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use clap::Parser;
use common::{
    activate, between, cpu_use, login, micros, percentile, Answer, App, BrowserMode, Connection,
    CpuSample, Enrolled, Step, USER_AGENT,
};
use consentid::{Clock as _, RequestKind, SystemClock, VerifiedRequest};
use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey as _;
use pki::{
    Digest, KeyAlgorithm, KeyBackend, KeyReference, KeySigner, MasterKey, RsaPadding,
    SoftwareKeyBackend,
};
use serde_json::{json, Value};
use store::{AuditLog as _, CertificateQueries as _};
use x509_cert::der::{Decode as _, Encode as _};

/// Hashes per authorisation and per signHash call: the most one SAD may cover.
const BATCH: usize = domain::signing::MAX_SIGNATURES;
/// SHA-256 (NIST CSOR).
const SHA256_OID: &str = "2.16.840.1.101.3.4.2.1";
/// ecdsa-with-SHA256 (RFC 5758 §3.2).
const ECDSA_SHA256_OID: &str = "1.2.840.10045.4.3.2";
/// A SAD's lifetime (`domain::signing::SAD_LIFETIME`); the bench warns when a run gets close.
const SAD_LIFETIME: Duration = Duration::from_secs(300);
/// The target: API throughput at least this share of in-process signing (issue 11; issue 5
/// asked for 0.7).
const TARGET_RATIO: f64 = 0.8;
/// Longest wait for a portal job to finish after the approval.
const FINISH_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Parser)]
#[command(
    about = "signHash throughput against in-process signing, and portal signatures end to end (issue 5)"
)]
struct Args {
    /// The server, `http://IPv4:PORT`.
    #[arg(long)]
    server: String,
    /// The user's `eidportal user add --json` answer (`email`, `activation_code`).
    #[arg(long)]
    user: PathBuf,
    /// A file whose first line is the user's password (for `auth/login`).
    #[arg(long)]
    password_file: PathBuf,
    /// The credential: the cloud certificate's serial, hex, as `eidportal cert issue --json` prints it.
    #[arg(long)]
    credential: String,
    /// The server's data folder (`master.key`, and the SQLite database unless EIDPORTAL_DATABASE_URL).
    #[arg(long)]
    data: PathBuf,
    /// Concurrent API clients, one measured run per value; the baseline of a run uses as many threads.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    clients: Vec<usize>,
    /// Measured signHash calls per run (each spends one SAD on 100 hashes).
    #[arg(long, default_value_t = 200)]
    calls: usize,
    /// signHash calls before the first run (not counted).
    #[arg(long, default_value_t = 10)]
    warmup_calls: usize,
    /// Seconds of in-process signing per client count, in --rounds + 1 slices around the rounds of calls.
    #[arg(long, default_value_t = 10.0)]
    baseline_seconds: f64,
    /// Rounds the measured calls of a client count are split into, each between two baseline slices.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Refused signHash calls (random SAD) and commit-probe transactions, for the breakdown.
    #[arg(long, default_value_t = 100)]
    probe_calls: usize,
    /// Portal signature levels.
    #[arg(long, value_delimiter = ',', default_value = "b-b,b-t,b-lt")]
    levels: Vec<String>,
    /// Portal signatures per level (0: no portal part).
    #[arg(long, default_value_t = 5)]
    portal_runs: usize,
    /// Portal signatures before the measured ones (first level, not counted).
    #[arg(long, default_value_t = 1)]
    portal_warmup: usize,
    /// Size of the uploaded PDF, KiB.
    #[arg(long, default_value_t = 100)]
    pdf_kib: usize,
    /// A folder on the data folder's file system for the commit probe's scratch database
    /// (default: none, no commit probe).
    #[arg(long)]
    scratch: Option<PathBuf>,
    /// The server's process id, for its CPU time per call (Linux `/proc`).
    #[arg(long)]
    server_pid: Option<u32>,
    /// A name for the report (e.g. the key backend).
    #[arg(long, default_value = "software")]
    label: String,
    /// Also write the results as JSON here.
    #[arg(long)]
    json_out: Option<PathBuf>,
}

// ---------------------------------------------------------------------------------------------
// Small helpers.

/// Milliseconds of a list of microsecond samples: p50, p90, p99, max, mean.
#[derive(Debug, Clone, Copy, Default)]
struct Summary {
    count: usize,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    mean: f64,
}

impl Summary {
    fn of(samples: &[u32]) -> Self {
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let mean = if sorted.is_empty() {
            0.0
        } else {
            sorted.iter().map(|&v| f64::from(v)).sum::<f64>() / sorted.len() as f64 / 1000.0
        };
        Self {
            count: sorted.len(),
            p50: percentile(&sorted, 0.5),
            p90: percentile(&sorted, 0.9),
            p99: percentile(&sorted, 0.99),
            max: percentile(&sorted, 1.0),
            mean,
        }
    }

    fn json(&self) -> Value {
        json!({ "count": self.count, "p50_ms": self.p50, "p90_ms": self.p90, "p99_ms": self.p99, "max_ms": self.max, "mean_ms": self.mean })
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|window| window == needle)
}

fn random_hashes() -> Vec<[u8; 32]> {
    (0..BATCH).map(|_| rand::random::<[u8; 32]>()).collect()
}

/// One CSC call: a JSON POST with the bearer token.
fn csc_post(
    connection: &mut Connection,
    token: &str,
    method: &str,
    body: &[u8],
) -> Result<Answer, String> {
    let authorization = format!("Bearer {token}");
    connection.request(
        "POST",
        &format!("/csc/v2/{method}"),
        &[
            ("Authorization", &authorization),
            ("Content-Type", "application/json"),
            ("Accept", "application/json"),
            ("User-Agent", "eidportal-sign-bench"),
        ],
        body,
    )
}

fn json_of(answer: &Answer, what: &str) -> Result<Value, String> {
    serde_json::from_slice(&answer.body)
        .map_err(|e| format!("{what}: HTTP {}: not JSON: {e}", answer.status))
}

/// "HTTP 400 invalid_request: Invalid parameter SAD".
fn describe(answer: &Answer) -> String {
    let body: Value = serde_json::from_slice(&answer.body).unwrap_or_default();
    let text = |key: &str| {
        body.get(key)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    format!(
        "HTTP {} {}: {}",
        answer.status,
        text("error"),
        text("error_description")
    )
}

// ---------------------------------------------------------------------------------------------
// Setup: the app, the API token, the credential.

/// The API side: the bearer token, the credential and its public key.
struct Api {
    server: SocketAddrV4,
    token: String,
    credential: String,
    verifying_key: VerifyingKey,
    /// SubjectPublicKeyInfo DER of the certificate.
    public_key: Vec<u8>,
}

fn api_login(
    server: SocketAddrV4,
    email: &str,
    password: &str,
    credential: &str,
) -> Result<Api, String> {
    let mut connection = Connection::new(server, None);
    let basic = format!("Basic {}", STANDARD.encode(format!("{email}:{password}")));
    let answer = connection.request(
        "POST",
        "/csc/v2/auth/login",
        &[
            ("Authorization", &basic),
            ("Content-Type", "application/json"),
        ],
        b"{}",
    )?;
    if answer.status != 200 {
        return Err(format!("auth/login: {}", describe(&answer)));
    }
    let token = json_of(&answer, "auth/login")?
        .get("access_token")
        .and_then(Value::as_str)
        .ok_or("auth/login: no access_token")?
        .to_owned();
    let body = serde_json::to_vec(
        &json!({ "credentialInfo": true, "certificates": "single", "onlyValid": true }),
    )
    .map_err(|e| e.to_string())?;
    let answer = csc_post(&mut connection, &token, "credentials/list", &body)?;
    if answer.status != 200 {
        return Err(format!("credentials/list: {}", describe(&answer)));
    }
    let list = json_of(&answer, "credentials/list")?;
    let info = list
        .get("credentialInfos")
        .and_then(Value::as_array)
        .and_then(|infos| {
            infos.iter().find(|i| {
                i.get("credentialID")
                    .and_then(Value::as_str)
                    .is_some_and(|id| id.eq_ignore_ascii_case(credential))
            })
        })
        .ok_or_else(|| {
            format!("credentials/list: {credential} is not among the user's valid credentials")
        })?;
    let id = info
        .get("credentialID")
        .and_then(Value::as_str)
        .unwrap_or(credential)
        .to_owned();
    let certificate = info
        .pointer("/cert/certificates/0")
        .and_then(Value::as_str)
        .and_then(|b| STANDARD.decode(b).ok())
        .ok_or("credentials/list: no certificate")?;
    let certificate = x509_cert::Certificate::from_der(&certificate)
        .map_err(|e| format!("the credential's certificate: {e}"))?;
    let public_key = certificate
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| format!("the credential's public key: {e}"))?;
    let verifying_key = VerifyingKey::from_public_key_der(&public_key)
        .map_err(|_| "the credential's key is not a P-256 key: this bench signs with ECDSA P-256 (ecdsa-with-SHA256)")?;
    Ok(Api {
        server,
        token,
        credential: id,
        verifying_key,
        public_key,
    })
}

// ---------------------------------------------------------------------------------------------
// The baseline's key: the same key, opened with the server's backend code.

/// The key as the server opens it.
struct ServerKey {
    backend: Arc<dyn KeyBackend>,
    reference: KeyReference,
    signer: Arc<dyn KeySigner>,
    /// "software (master.key)" or "pkcs11 (module, token)".
    description: String,
    /// The database the server uses.
    database_url: String,
}

fn environment(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Reads the certificate's key record from the server's database and opens the key with the
/// backend the server's configuration names (`server::key_backend`: PKCS#11 when the three
/// `EIDPORTAL_PKCS11_*` settings are there, else software keys under `<data>/master.key`).
fn open_server_key(
    args: &Args,
    runtime: &tokio::runtime::Runtime,
    api: &Api,
) -> Result<ServerKey, String> {
    let database_url = environment("EIDPORTAL_DATABASE_URL")
        .unwrap_or_else(|| format!("sqlite:{}", args.data.join("eidportal.db").display()));
    let serial = domain::Serial::parse_hex(&api.credential)
        .ok_or_else(|| format!("{}: not a hex serial", api.credential))?;
    let record = runtime.block_on(async {
        let store = store::Store::connect(&database_url)
            .await
            .map_err(|e| format!("the server's database: {e}"))?;
        let result = async {
            let certificate = store.certificate(&serial).await?;
            match certificate.and_then(|c| c.key_id) {
                Some(key_id) => Ok(Some(store.key(&key_id).await?)),
                None => Ok(None),
            }
        }
        .await
        .map_err(|e: store::Error| format!("the server's database: {e}"));
        store.close().await;
        result?.ok_or_else(|| format!("certificate {} has no key record", api.credential))
    })?;
    let (backend, description): (Arc<dyn KeyBackend>, String) = match (
        environment("EIDPORTAL_PKCS11_MODULE"),
        environment("EIDPORTAL_PKCS11_TOKEN"),
        environment("EIDPORTAL_PKCS11_PIN"),
    ) {
        (None, None, None) => {
            let path = args.data.join("master.key");
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let master = MasterKey::from_bytes(&bytes).ok_or_else(|| format!("{} is not a 32-byte master key", path.display()))?;
            (Arc::new(SoftwareKeyBackend::new(master)), format!("software, sealed under {}", path.display()))
        }
        (Some(module), Some(token), Some(pin)) => {
            let backend = hsm::Pkcs11Backend::open(Path::new(&module), &token, hsm::Pin::new(pin)).map_err(|e| format!("PKCS#11: {e}"))?;
            (Arc::new(backend), format!("pkcs11, token {token} in {module}"))
        }
        _ => return Err("EIDPORTAL_PKCS11_MODULE, EIDPORTAL_PKCS11_TOKEN and EIDPORTAL_PKCS11_PIN must be set together".into()),
    };
    if record.backend != backend.name() {
        return Err(format!(
            "the key of {} is in the `{}` backend, this environment names `{}`",
            api.credential,
            record.backend,
            backend.name()
        ));
    }
    let reference = KeyReference(record.reference);
    let signer = backend
        .open(&reference)
        .map_err(|e| format!("opening the key: {e}"))?;
    if signer.algorithm() != KeyAlgorithm::EcdsaP256 || signer.public_key().0 != api.public_key {
        return Err("the key opened in-process is not the certificate's P-256 key".into());
    }
    // One signature through the same path, verified with the certificate's key.
    let digest = rand::random::<[u8; 32]>();
    let signature = signer
        .sign_digest(&Digest::Sha256(digest), RsaPadding::Pkcs1v15)
        .map_err(|e| format!("signing in-process: {e}"))?;
    verify(&api.verifying_key, &digest, &signature)
        .map_err(|e| format!("the in-process signature: {e}"))?;
    Ok(ServerKey {
        backend,
        reference,
        signer,
        description,
        database_url,
    })
}

fn verify(key: &VerifyingKey, digest: &[u8; 32], der: &[u8]) -> Result<(), String> {
    let signature = Signature::from_der(der).map_err(|_| "not a DER ECDSA signature".to_owned())?;
    key.verify_prehash(digest, &signature)
        .map_err(|_| "does not verify with the certificate's key".to_owned())
}

// ---------------------------------------------------------------------------------------------
// The baseline.

/// In-process signing for a while: one slice, or the slices of a run merged.
#[derive(Debug, Clone, Default)]
struct Baseline {
    signatures: u64,
    seconds: f64,
    /// This process's CPU over the slices, milliseconds.
    cpu_ms: Option<f64>,
    /// Each 100-digest batch's time, microseconds.
    batches: Vec<u32>,
}

impl Baseline {
    fn signatures_per_second(&self) -> f64 {
        self.signatures as f64 / self.seconds.max(1e-9)
    }

    fn cpu_ms_per_batch(&self) -> Option<f64> {
        self.cpu_ms
            .filter(|_| !self.batches.is_empty())
            .map(|cpu| cpu / self.batches.len() as f64)
    }

    fn merge(&mut self, other: &Baseline) {
        self.cpu_ms = if self.seconds == 0.0 {
            other.cpu_ms
        } else {
            self.cpu_ms.zip(other.cpu_ms).map(|(a, b)| a + b)
        };
        self.signatures += other.signatures;
        self.seconds += other.seconds;
        self.batches.extend_from_slice(&other.batches);
    }
}

/// `threads` threads sign 100-digest batches with the key for `seconds`, exactly as the
/// server's `sign_in` does: `sign_digest` on each digest, collected, with the padding the
/// server picks for an ECDSA key (which ignores it).
fn baseline(signer: &Arc<dyn KeySigner>, threads: usize, seconds: f64) -> Result<Baseline, String> {
    let batches: Arc<Vec<Vec<Digest>>> = Arc::new(
        (0..8)
            .map(|_| random_hashes().into_iter().map(Digest::Sha256).collect())
            .collect(),
    );
    let barrier = Arc::new(Barrier::new(threads + 1));
    let length = Duration::from_secs_f64(seconds.max(0.1));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (signer, batches, barrier) = (
                Arc::clone(signer),
                Arc::clone(&batches),
                Arc::clone(&barrier),
            );
            std::thread::spawn(move || -> Result<(u64, Vec<u32>, Instant), String> {
                barrier.wait();
                let started = Instant::now();
                let mut times = Vec::new();
                let mut count = 0u64;
                while started.elapsed() < length {
                    let Some(batch) = batches.get(times.len() % batches.len()) else {
                        break;
                    };
                    let t0 = Instant::now();
                    let signatures = batch
                        .iter()
                        .map(|d| signer.sign_digest(d, RsaPadding::Pkcs1v15))
                        .collect::<Result<Vec<_>, _>>();
                    times.push(micros(t0.elapsed()));
                    let signatures = signatures.map_err(|e| format!("in-process signing: {e}"))?;
                    count += signatures.len() as u64;
                }
                Ok((count, times, Instant::now()))
            })
        })
        .collect();
    let cpu_from = common::process_ticks("self");
    barrier.wait();
    let started = Instant::now();
    let mut signatures = 0u64;
    let mut times = Vec::new();
    let mut finished = started;
    for handle in handles {
        let (count, mut batch_times, end) =
            handle.join().map_err(|_| "a baseline thread failed")??;
        signatures += count;
        times.append(&mut batch_times);
        finished = finished.max(end);
    }
    let cpu_ms = cpu_from
        .zip(common::process_ticks("self"))
        .map(|(a, b)| b.saturating_sub(a) as f64 * 1000.0 / common::TICKS_PER_SECOND);
    Ok(Baseline {
        signatures,
        seconds: (finished - started).as_secs_f64(),
        cpu_ms,
        batches: times,
    })
}

/// The time of `KeyBackend::open`, which the server does on a key's first signHash call.
fn open_cost(key: &ServerKey, count: usize) -> Result<Summary, String> {
    let mut times = Vec::with_capacity(count);
    for _ in 0..count.max(1) {
        let t0 = Instant::now();
        let signer = key
            .backend
            .open(&key.reference)
            .map_err(|e| format!("opening the key: {e}"))?;
        times.push(micros(t0.elapsed()));
        drop(signer);
    }
    Ok(Summary::of(&times))
}

// ---------------------------------------------------------------------------------------------
// SADs.

/// An approved authorisation: its hashes and the signHash body that spends its SAD.
struct Authorized {
    hashes: Vec<[u8; 32]>,
    body: Vec<u8>,
    /// When the SAD was handed out.
    at: Instant,
}

/// What collecting SADs took.
#[derive(Default)]
struct Collection {
    authorize: Vec<u32>,
    inbox: Vec<u32>,
    approve: Vec<u32>,
    check: Vec<u32>,
    seconds: f64,
}

/// Collects `count` SADs, one after the other (see the file's doc, step 3a).
fn collect_sads(
    api: &Api,
    app: &App,
    phone: &mut Connection,
    count: usize,
    into: &mut Collection,
) -> Result<Vec<Authorized>, String> {
    let started = Instant::now();
    let mut connection = Connection::new(api.server, None);
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let hashes = random_hashes();
        let encoded: Vec<String> = hashes.iter().map(|h| STANDARD.encode(h)).collect();
        let body = serde_json::to_vec(&json!({
            "credentialID": api.credential,
            "numSignatures": BATCH,
            "hashes": encoded,
            "hashAlgorithmOID": SHA256_OID,
            "description": "sign_bench",
        }))
        .map_err(|e| e.to_string())?;
        let t0 = Instant::now();
        let answer = csc_post(&mut connection, &api.token, "credentials/authorize", &body)?;
        into.authorize.push(micros(t0.elapsed()));
        if answer.status != 202 {
            return Err(format!("credentials/authorize: {}", describe(&answer)));
        }
        let handle = json_of(&answer, "credentials/authorize")?
            .get("handle")
            .and_then(Value::as_str)
            .ok_or("credentials/authorize: no handle")?
            .to_owned();

        // The app sees exactly these hashes, for this credential, and approves.
        let shown: Vec<String> = hashes.iter().map(|h| proto::b64(h)).collect();
        let wanted = |request: &VerifiedRequest| {
            request.kind() == RequestKind::Sign
                && request.payload().sign.as_ref().is_some_and(|sign| {
                    sign.certificate_serial
                        .eq_ignore_ascii_case(&api.credential)
                        && sign.documents.len() == shown.len()
                        && sign
                            .documents
                            .iter()
                            .zip(&shown)
                            .all(|(document, hash)| document.hash == *hash)
                })
        };
        let mut times = Vec::with_capacity(2);
        let request = app.fetch(phone, &mut times, wanted).map_err(|f| f.kind)?;
        app.approve(phone, &mut times, &request)
            .map_err(|f| f.kind)?;
        for (step, value) in times {
            match step {
                Step::Inbox => into.inbox.push(value),
                _ => into.approve.push(value),
            }
        }

        let check = serde_json::to_vec(&json!({ "handle": handle })).map_err(|e| e.to_string())?;
        let mut sad = None;
        for _ in 0..100 {
            let t0 = Instant::now();
            let answer = csc_post(
                &mut connection,
                &api.token,
                "credentials/authorizeCheck",
                &check,
            )?;
            into.check.push(micros(t0.elapsed()));
            match answer.status {
                200 => {
                    sad = json_of(&answer, "credentials/authorizeCheck")?
                        .get("SAD")
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                    break;
                }
                202 => std::thread::sleep(Duration::from_millis(10)),
                _ => return Err(format!("credentials/authorizeCheck: {}", describe(&answer))),
            }
        }
        let sad = sad.ok_or("credentials/authorizeCheck: no SAD after the approval")?;
        let body = serde_json::to_vec(&json!({
            "credentialID": api.credential,
            "SAD": sad,
            "hashes": encoded,
            "hashAlgorithmOID": SHA256_OID,
            "signAlgo": ECDSA_SHA256_OID,
        }))
        .map_err(|e| e.to_string())?;
        out.push(Authorized {
            hashes,
            body,
            at: Instant::now(),
        });
    }
    into.seconds += started.elapsed().as_secs_f64();
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// The API run.

/// signHash calls: one round, or the rounds of a run merged.
#[derive(Debug, Clone, Default)]
struct ApiRun {
    calls: usize,
    seconds: f64,
    /// Each call's time, microseconds.
    times: Vec<u32>,
    /// The server's CPU, milliseconds.
    server_cpu_ms: Option<f64>,
    /// This process's CPU, milliseconds.
    client_cpu_ms: Option<f64>,
    /// Busy core-seconds of the whole machine.
    machine_busy: Option<f64>,
    /// The seconds the CPU samples spanned.
    sampled_seconds: f64,
    /// The largest gap, in a round, between the first and the last client to finish (seconds).
    client_spread: f64,
}

impl ApiRun {
    fn signatures_per_second(&self) -> f64 {
        (self.calls * BATCH) as f64 / self.seconds.max(1e-9)
    }

    fn server_cpu_ms_per_call(&self) -> Option<f64> {
        self.server_cpu_ms
            .filter(|_| self.calls > 0)
            .map(|cpu| cpu / self.calls as f64)
    }

    /// Average cores busy: (server, sign_bench, machine).
    fn cores(&self) -> (Option<f64>, Option<f64>, Option<f64>) {
        let per_second = |ms: Option<f64>| ms.map(|v| v / 1000.0 / self.sampled_seconds.max(1e-9));
        (
            per_second(self.server_cpu_ms),
            per_second(self.client_cpu_ms),
            self.machine_busy
                .map(|v| v / self.sampled_seconds.max(1e-9)),
        )
    }

    fn merge(&mut self, other: &ApiRun) {
        let first = self.calls == 0;
        let add = |a: Option<f64>, b: Option<f64>| {
            if first {
                b
            } else {
                a.zip(b).map(|(a, b)| a + b)
            }
        };
        self.server_cpu_ms = add(self.server_cpu_ms, other.server_cpu_ms);
        self.client_cpu_ms = add(self.client_cpu_ms, other.client_cpu_ms);
        self.machine_busy = add(self.machine_busy, other.machine_busy);
        self.calls += other.calls;
        self.seconds += other.seconds;
        self.sampled_seconds += other.sampled_seconds;
        self.times.extend_from_slice(&other.times);
        self.client_spread = self.client_spread.max(other.client_spread);
    }
}

/// What an API client thread brings back: the answers to its calls, their times, when it ended.
type ClientOutcome = Result<(Vec<(Authorized, Vec<u8>)>, Vec<u32>, Instant), String>;

/// One round: `clients` threads spend the SADs with signHash, each on its own keep-alive
/// connection; every answer is checked, and its signatures verified after the clock stopped.
fn api_round(
    api: &Api,
    sads: Vec<Authorized>,
    clients: usize,
    server_pid: Option<u32>,
) -> Result<ApiRun, String> {
    let calls = sads.len();
    let mut shares: Vec<Vec<Authorized>> = (0..clients).map(|_| Vec::new()).collect();
    for (i, sad) in sads.into_iter().enumerate() {
        if let Some(share) = shares.get_mut(i % clients) {
            share.push(sad);
        }
    }
    let barrier = Arc::new(Barrier::new(clients + 1));
    let handles: Vec<_> = shares
        .into_iter()
        .map(|share| {
            let barrier = Arc::clone(&barrier);
            let (server, token) = (api.server, api.token.clone());
            std::thread::spawn(move || -> ClientOutcome {
                let mut connection = Connection::new(server, None);
                // Connect before the clock starts (not a keep-alive cost).
                let _ = connection.request("GET", "/healthz", &[], b"");
                barrier.wait();
                let mut times = Vec::with_capacity(share.len());
                let mut answers = Vec::with_capacity(share.len());
                for sad in share {
                    let t0 = Instant::now();
                    let answer =
                        csc_post(&mut connection, &token, "signatures/signHash", &sad.body)?;
                    times.push(micros(t0.elapsed()));
                    if answer.status != 200 {
                        return Err(format!("signatures/signHash: {}", describe(&answer)));
                    }
                    answers.push((sad, answer.body));
                }
                Ok((answers, times, Instant::now()))
            })
        })
        .collect();
    let cpu_from = CpuSample::take(server_pid);
    barrier.wait();
    let started = Instant::now();
    let mut ends = Vec::with_capacity(clients);
    let mut times = Vec::with_capacity(calls);
    let mut answers = Vec::with_capacity(calls);
    let mut failure = None;
    for handle in handles {
        match handle
            .join()
            .map_err(|_| "an API client thread failed".to_owned())
            .and_then(|r| r)
        {
            Ok((mut client_answers, mut client_times, end)) => {
                answers.append(&mut client_answers);
                times.append(&mut client_times);
                ends.push(end);
            }
            Err(message) => failure = Some(message),
        }
    }
    let cpu_to = CpuSample::take(server_pid);
    if let Some(message) = failure {
        return Err(message);
    }
    let last = ends.iter().copied().max().unwrap_or(started);
    let first = ends.iter().copied().min().unwrap_or(started);
    for (sad, body) in &answers {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| format!("signatures/signHash: not JSON: {e}"))?;
        let signatures = value
            .get("signatures")
            .and_then(Value::as_array)
            .ok_or("signatures/signHash: no signatures")?;
        if signatures.len() != sad.hashes.len() {
            return Err(format!(
                "signatures/signHash: {} signatures for {} hashes",
                signatures.len(),
                sad.hashes.len()
            ));
        }
        for (hash, signature) in sad.hashes.iter().zip(signatures) {
            let der = signature
                .as_str()
                .and_then(|s| STANDARD.decode(s).ok())
                .ok_or("signatures/signHash: a signature is not base64")?;
            verify(&api.verifying_key, hash, &der)
                .map_err(|e| format!("a signature from signHash {e}"))?;
        }
    }
    let ticks_ms = |a: Option<u64>, b: Option<u64>| {
        a.zip(b)
            .map(|(a, b)| b.saturating_sub(a) as f64 * 1000.0 / common::TICKS_PER_SECOND)
    };
    let sampled_seconds = (cpu_to.at - cpu_from.at).as_secs_f64();
    let machine_busy = cpu_use(&cpu_from, &cpu_to)
        .2
        .map(|cores| cores * sampled_seconds);
    Ok(ApiRun {
        calls,
        seconds: (last - started).as_secs_f64(),
        times,
        server_cpu_ms: ticks_ms(cpu_from.server, cpu_to.server),
        client_cpu_ms: ticks_ms(cpu_from.client, cpu_to.client),
        machine_busy,
        sampled_seconds,
        client_spread: (last - first).as_secs_f64(),
    })
}

/// signHash calls with a random SAD (same size of body): the server refuses each after the
/// SAD lookup, before spending, signing and committing.
fn refused_probe(api: &Api, count: usize) -> Result<Summary, String> {
    let mut connection = Connection::new(api.server, None);
    let mut times = Vec::with_capacity(count);
    for _ in 0..count {
        let hashes: Vec<String> = random_hashes().iter().map(|h| STANDARD.encode(h)).collect();
        let body = serde_json::to_vec(&json!({
            "credentialID": api.credential,
            "SAD": proto::b64(&rand::random::<[u8; 32]>()),
            "hashes": hashes,
            "hashAlgorithmOID": SHA256_OID,
            "signAlgo": ECDSA_SHA256_OID,
        }))
        .map_err(|e| e.to_string())?;
        let t0 = Instant::now();
        let answer = csc_post(&mut connection, &api.token, "signatures/signHash", &body)?;
        times.push(micros(t0.elapsed()));
        if answer.status != 400 || !answer.text().contains("Invalid parameter SAD") {
            return Err(format!(
                "signHash with a random SAD: expected 400 Invalid parameter SAD, got {}",
                describe(&answer)
            ));
        }
    }
    Ok(Summary::of(&times))
}

/// Transactions on a scratch SQLite database with the server's `Store` settings, each
/// appending the audit row signHash appends and committing (see the file's doc, step 4).
fn commit_probe(
    runtime: &tokio::runtime::Runtime,
    scratch: &Path,
    count: usize,
) -> Result<Summary, String> {
    std::fs::create_dir_all(scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let url = format!("sqlite:{}", scratch.join("commit-probe.db").display());
    runtime.block_on(async {
        let store = store::Store::connect(&url)
            .await
            .map_err(|e| format!("the probe database: {e}"))?;
        let mut times = Vec::with_capacity(count);
        let mut outcome = Ok(());
        for _ in 0..count {
            let details = json!({
                "authorization": hex_of(&rand::random::<[u8; 16]>()),
                "credential": "0123456789abcdef0123456789abcdef",
                "hash_algorithm": SHA256_OID,
                "hashes": random_hashes().iter().map(|h| hex_of(h)).collect::<Vec<_>>(),
            });
            let at = domain::UnixTime(SystemClock.now());
            let t0 = Instant::now();
            let step = async {
                let mut tx = store.begin().await?;
                tx.audit(at, "user:sign-bench", "signature.created", details)
                    .await?;
                tx.commit().await
            }
            .await;
            times.push(micros(t0.elapsed()));
            if let Err(error) = step {
                outcome = Err(format!("the probe database: {error}"));
                break;
            }
        }
        store.close().await;
        outcome.map(|()| Summary::of(&times))
    })
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------------
// The portal.

/// A PDF of about `size` bytes: one page whose content stream is lines of text in a standard
/// font, so that the size follows the knob (the portal's own agreement PDFs embed a 390 KB font).
fn test_pdf(size: usize, title: &str) -> Vec<u8> {
    let mut content = String::new();
    let mut line = 0usize;
    while content.len() < size.saturating_sub(600) {
        let y = 800 - (line % 95) * 8;
        content.push_str(&format!(
            "BT /F1 7 Tf 36 {y} Td ({title} line {line}: eidportal sign_bench, the quick brown fox jumps over the lazy dog) Tj ET\n"
        ));
        line += 1;
    }
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_owned(),
        format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
    ];
    let mut out = b"%PDF-1.7\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for offset in offsets {
        out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// One portal signature's times, microseconds.
#[derive(Default)]
struct PortalTimes {
    form: Vec<u32>,
    upload: Vec<u32>,
    pending_page: Vec<u32>,
    approval: Vec<u32>,
    first_poll: Vec<u32>,
    download: Vec<u32>,
    finish: Vec<u32>,
    total: Vec<u32>,
    polls: Vec<u32>,
    signed_bytes: Vec<u32>,
}

/// A browser with a logged-in session.
struct Browser {
    connection: Connection,
    cookie: String,
}

impl Browser {
    fn get(&mut self, path: &str) -> Result<Answer, String> {
        self.connection.request(
            "GET",
            path,
            &[("User-Agent", USER_AGENT), ("Cookie", &self.cookie)],
            b"",
        )
    }
}

/// A multipart/form-data body (RFC 7578) with the fields and one PDF.
fn multipart(boundary: &str, fields: &[(&str, &str)], filename: &str, pdf: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(pdf.len() + 1024);
    for (name, value) in fields {
        body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes());
    }
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"documents\"; filename=\"{filename}\"\r\nContent-Type: application/pdf\r\n\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(pdf);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

/// One portal signature at `level` (see the file's doc, step 5).
fn portal_signature(
    browser: &mut Browser,
    app: &App,
    phone: &mut Connection,
    level: &str,
    run: usize,
    size: usize,
    times: &mut PortalTimes,
) -> Result<(), String> {
    let filename = format!("sign-bench-{level}-{run}.pdf");
    let pdf = test_pdf(size, &filename);
    let t0 = Instant::now();
    let form = browser.get("/services/sign")?;
    times.form.push(micros(t0.elapsed()));
    let html = form.text();
    let csrf = between(&html, "name=\"csrf\" value=\"", "\"")
        .filter(|_| form.status == 200)
        .ok_or_else(|| format!("GET /services/sign: HTTP {}, no upload form", form.status))?
        .to_owned();
    let boundary = format!("----sign-bench-{}", hex_of(&rand::random::<[u8; 12]>()));
    let body = multipart(
        &boundary,
        &[("csrf", &csrf), ("level", level)],
        &filename,
        &pdf,
    );
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let headers = [
        ("User-Agent", USER_AGENT),
        ("Cookie", browser.cookie.as_str()),
        ("Content-Type", content_type.as_str()),
    ];

    // The upload: prepare + authorisation request, answered with the job's page.
    let t0 = Instant::now();
    let uploaded = browser
        .connection
        .request("POST", "/services/sign", &headers, &body)?;
    let upload = micros(t0.elapsed());
    let job = uploaded.header("location").unwrap_or_default().to_owned();
    if uploaded.status != 303 || !job.starts_with("/services/sign/") {
        let text = uploaded.text();
        let message = between(&text, "class=\"error\"", "</")
            .unwrap_or("")
            .trim_start_matches(['>', ' ']);
        return Err(format!(
            "{level}: upload: HTTP {} (not 303 to the job){}",
            uploaded.status,
            if message.is_empty() {
                String::new()
            } else {
                format!(": {message}")
            }
        ));
    }
    times.upload.push(upload);
    let t0 = Instant::now();
    let page = browser.get(&job)?;
    times.pending_page.push(micros(t0.elapsed()));
    if page.status != 200 || !page.text().contains(&filename) {
        return Err(format!("{level}: the job page: HTTP {}", page.status));
    }

    // The phone: the request names this document; approved (timed apart, excluded).
    let mut app_times = Vec::with_capacity(2);
    let wanted = |request: &VerifiedRequest| {
        request.kind() == RequestKind::Sign
            && request.payload().sign.as_ref().is_some_and(|s| {
                s.documents.len() == 1 && s.documents.first().is_some_and(|d| d.title == filename)
            })
    };
    let request = app
        .fetch(phone, &mut app_times, wanted)
        .map_err(|f| format!("{level}: {}", f.kind))?;
    app.approve(phone, &mut app_times, &request)
        .map_err(|f| format!("{level}: {}", f.kind))?;
    times.approval.push(app_times.iter().map(|(_, v)| *v).sum());

    // From the approval's acceptance: the job page until it offers the download, the download.
    let accepted = Instant::now();
    let mut polls = 0u32;
    loop {
        polls += 1;
        let t0 = Instant::now();
        let page = browser.get(&job)?;
        if polls == 1 {
            times.first_poll.push(micros(t0.elapsed()));
        }
        let html = page.text();
        if page.status != 200 {
            return Err(format!(
                "{level}: the job page after the approval: HTTP {}",
                page.status
            ));
        }
        if html.contains("data-testid=\"download\"") {
            break;
        }
        if html.contains("class=\"error\" role=\"status\"") {
            let status = between(&html, "data-testid=\"sign-status\">", "<").unwrap_or("?");
            return Err(format!("{level}: the job failed: {status}"));
        }
        if accepted.elapsed() > FINISH_TIMEOUT {
            return Err(format!(
                "{level}: not finished {} s after the approval",
                FINISH_TIMEOUT.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let t0 = Instant::now();
    let download = browser.get(&format!("{job}/0"))?;
    times.download.push(micros(t0.elapsed()));
    let finish = micros(accepted.elapsed());
    if download.status != 200 || download.header("content-type") != Some("application/pdf") {
        return Err(format!("{level}: the download: HTTP {}", download.status));
    }
    let signed = download.body;
    if signed.len() <= pdf.len() || !signed.starts_with(&pdf) || !contains(&signed, b"/ByteRange") {
        return Err(format!("{level}: the download is not an incremental update of the uploaded PDF with a signature"));
    }
    if level == "b-lt" && !contains(&signed, b"/DSS") {
        return Err(format!("{level}: the signed PDF has no DSS"));
    }
    times.finish.push(finish);
    times.total.push(upload.saturating_add(finish));
    times.polls.push(polls);
    times
        .signed_bytes
        .push(u32::try_from(signed.len()).unwrap_or(u32::MAX));
    Ok(())
}

/// Logs in with ConsentID and signs `runs` PDFs per level.
fn portal(
    args: &Args,
    server: SocketAddrV4,
    app: &App,
    phone: &mut Connection,
) -> Result<(Vec<(String, PortalTimes)>, usize), String> {
    let mut connection = Connection::new(server, None);
    let mut login_times = Vec::new();
    let sid = login(
        app,
        &mut connection,
        phone,
        BrowserMode::Minimal,
        &mut login_times,
    )
    .map_err(|f| format!("portal login: {}", f.kind))?;
    let mut browser = Browser {
        connection,
        cookie: format!("sid={sid}"),
    };
    let size = args.pdf_kib * 1024;
    if let Some(level) = args.levels.first() {
        let mut ignored = PortalTimes::default();
        for run in 0..args.portal_warmup {
            portal_signature(
                &mut browser,
                app,
                phone,
                level,
                1000 + run,
                size,
                &mut ignored,
            )?;
        }
    }
    let mut out = Vec::new();
    for level in &args.levels {
        let mut times = PortalTimes::default();
        for run in 0..args.portal_runs {
            portal_signature(&mut browser, app, phone, level, run, size, &mut times)?;
        }
        out.push((level.clone(), times));
    }
    Ok((out, test_pdf(size, "sign-bench-b-b-0.pdf").len()))
}

// ---------------------------------------------------------------------------------------------
// The run and the report.

/// A measured client count: its rounds of API calls and baseline slices, merged.
struct Measured {
    clients: usize,
    api: ApiRun,
    baseline: Baseline,
    /// Each round's ratio: the round's API throughput over the mean of the slices around it.
    round_ratios: Vec<f64>,
    /// The age of the oldest SAD when it was spent, seconds.
    oldest_sad_seconds: f64,
}

impl Measured {
    fn ratio(&self) -> f64 {
        self.api.signatures_per_second() / self.baseline.signatures_per_second().max(1e-9)
    }

    /// The ratio of CPU time: in-process per batch over the server's per call (what the
    /// throughput ratio would be if both had the same cores to themselves).
    fn cpu_ratio(&self) -> Option<f64> {
        self.baseline
            .cpu_ms_per_batch()
            .zip(self.api.server_cpu_ms_per_call())
            .map(|(base, server)| base / server.max(1e-9))
    }

    /// Calls that took at least 100 ms.
    fn slow_calls(&self) -> usize {
        self.api.times.iter().filter(|&&t| t >= 100_000).count()
    }
}

fn optional(value: Option<f64>, unit: &str) -> String {
    value
        .map(|v| format!("{v:.2}{unit}"))
        .unwrap_or_else(|| "?".into())
}

/// One client count (see the file's doc, step 3): SADs, then baseline slices and rounds of
/// signHash calls in turn, `rounds` of each and a last slice, so that both see the same load
/// of a shared machine.
/// What every client count uses: the options, the API side, the app and the key.
struct Bench<'a> {
    args: &'a Args,
    api: &'a Api,
    app: &'a App,
    key: &'a ServerKey,
}

fn measure(
    bench: &Bench<'_>,
    phone: &mut Connection,
    clients: usize,
    warmup: usize,
    collection: &mut Collection,
) -> Result<Measured, String> {
    let Bench {
        args,
        api,
        app,
        key,
    } = *bench;
    let rounds = args.rounds.clamp(1, args.calls);
    println!("   {clients} client(s): collecting {} SADs (authorize, approve in the app, authorizeCheck)", args.calls + warmup);
    let mut sads = collect_sads(api, app, phone, args.calls + warmup, collection)?;
    if warmup > 0 {
        let rest = sads.split_off(warmup.min(sads.len()));
        api_round(api, sads, 1, None)?;
        sads = rest;
    }
    println!(
        "   {clients} client(s): {rounds} rounds of {} signHash calls, each between two {:.1} s slices of in-process signing on {clients} thread(s)",
        args.calls / rounds,
        args.baseline_seconds / (rounds + 1) as f64
    );
    let slice = args.baseline_seconds / (rounds + 1) as f64;
    let mut previous = baseline(&key.signer, clients, slice)?;
    let mut merged = Baseline::default();
    merged.merge(&previous);
    let mut api_total = ApiRun::default();
    let mut round_ratios = Vec::with_capacity(rounds);
    let mut oldest = 0.0f64;
    for round in 0..rounds {
        let count = args.calls * (round + 1) / rounds - args.calls * round / rounds;
        let batch: Vec<Authorized> = sads.drain(..count.min(sads.len())).collect();
        let age = batch
            .first()
            .map(|s| s.at.elapsed().as_secs_f64())
            .unwrap_or(0.0);
        let result = api_round(api, batch, clients, args.server_pid)?;
        oldest = oldest.max(age + result.seconds);
        let next = baseline(&key.signer, clients, slice)?;
        let around = (previous.signatures_per_second() + next.signatures_per_second()) / 2.0;
        round_ratios.push(result.signatures_per_second() / around.max(1e-9));
        api_total.merge(&result);
        merged.merge(&next);
        previous = next;
    }
    if oldest > SAD_LIFETIME.as_secs_f64() * 0.8 {
        println!("   warning: the oldest SAD was {oldest:.0} s old when spent (they live {} s): lower --calls", SAD_LIFETIME.as_secs());
    }
    Ok(Measured {
        clients,
        api: api_total,
        baseline: merged,
        round_ratios,
        oldest_sad_seconds: oldest,
    })
}

fn run(args: &Args) -> Result<(), String> {
    let server: SocketAddrV4 = args
        .server
        .trim()
        .trim_end_matches('/')
        .strip_prefix("http://")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("--server: `{}` is not http://IPv4:PORT", args.server))?;
    if args.calls == 0 || args.clients.is_empty() || args.clients.contains(&0) {
        return Err("--calls and every --clients value must be at least 1".into());
    }
    if let Some(level) = args
        .levels
        .iter()
        .find(|l| !matches!(l.as_str(), "b-b" | "b-t" | "b-lt"))
    {
        return Err(format!("--levels: `{level}` is not b-b, b-t or b-lt"));
    }
    let enrolled: Enrolled = serde_json::from_str(
        std::fs::read_to_string(&args.user)
            .map_err(|e| format!("{}: {e}", args.user.display()))?
            .lines()
            .next()
            .unwrap_or(""),
    )
    .map_err(|e| format!("{}: {e}", args.user.display()))?;
    let password = std::fs::read_to_string(&args.password_file)
        .map_err(|e| format!("{}: {e}", args.password_file.display()))?;
    let password = password.lines().next().unwrap_or("").to_owned();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio: {e}"))?;

    // 1. Setup.
    println!("== {}: setup (not measured)", args.label);
    let mut phone = Connection::new(server, None);
    let app = activate(&mut phone, &enrolled).map_err(|f| f.kind)?;
    println!(
        "   ConsentID app activated for {} (device {})",
        app.email, app.device_id
    );
    let api = api_login(server, &app.email, &password, &args.credential)?;
    println!(
        "   API token from auth/login; credential {} listed, P-256",
        api.credential
    );
    // 2. The same key, in-process.
    let key = open_server_key(args, &runtime, &api)?;
    println!(
        "   the credential's key opened in-process ({}); its public key is the certificate's",
        key.description
    );

    // 3. The runs.
    let mut collection = Collection::default();
    let mut measured = Vec::new();
    let bench = Bench {
        args,
        api: &api,
        app: &app,
        key: &key,
    };
    for (index, &clients) in args.clients.iter().enumerate() {
        let warmup = if index == 0 { args.warmup_calls } else { 0 };
        measured.push(measure(
            &bench,
            &mut phone,
            clients,
            warmup,
            &mut collection,
        )?);
    }

    // 4. The breakdown.
    let open = open_cost(&key, args.probe_calls)?;
    let refused = refused_probe(&api, args.probe_calls)?;
    let commit = match (&args.scratch, key.database_url.starts_with("sqlite:")) {
        (Some(scratch), true) => Some(commit_probe(&runtime, scratch, args.probe_calls)?),
        _ => None,
    };

    // 5. The portal.
    let portal_result = if args.portal_runs > 0 && !args.levels.is_empty() {
        println!(
            "   portal: ConsentID login, {} warm-up signature(s), then {} per level ({})",
            args.portal_warmup,
            args.portal_runs,
            args.levels.join(", ")
        );
        Some(portal(args, server, &app, &mut phone)?)
    } else {
        None
    };

    report(
        args,
        &key,
        &collection,
        &measured,
        &Probes {
            open,
            refused,
            commit,
        },
        portal_result.as_ref(),
    )
}

/// The breakdown's measurements (see the file's doc, step 4).
struct Probes {
    open: Summary,
    refused: Summary,
    commit: Option<Summary>,
}

fn report(
    args: &Args,
    key: &ServerKey,
    collection: &Collection,
    measured: &[Measured],
    probes: &Probes,
    portal: Option<&(Vec<(String, PortalTimes)>, usize)>,
) -> Result<(), String> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let database = if key.database_url.starts_with("sqlite:") {
        "SQLite"
    } else {
        "PostgreSQL"
    };
    println!();
    println!("== {}: signHash, {BATCH} SHA-256 hashes per call, P-256 key ({}), {database}, {cores} cores shared", args.label, key.description);
    println!(
        "   SADs collected: {} in {:.1} s; per SAD: authorize p50 {:.2} ms, app inbox p50 {:.2} ms, approval p50 {:.2} ms, authorizeCheck p50 {:.2} ms",
        collection.authorize.len(),
        collection.seconds,
        Summary::of(&collection.authorize).p50,
        Summary::of(&collection.inbox).p50,
        Summary::of(&collection.approve).p50,
        Summary::of(&collection.check).p50
    );
    println!(
        "   {:>7} {:>6} {:>10} {:>10} {:>6} {:>11} {:>8} {:>8} {:>8} {:>7} {:>9} {:>9} {:>6}",
        "clients",
        "calls",
        "API sig/s",
        "base sig/s",
        "ratio",
        "rounds",
        "p50 ms",
        "p99 ms",
        "max ms",
        ">=100ms",
        "srv CPU",
        "base CPU",
        "CPU r."
    );
    for m in measured {
        let low = m.round_ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let high = m.round_ratios.iter().copied().fold(0.0f64, f64::max);
        let latency = Summary::of(&m.api.times);
        println!(
            "   {:>7} {:>6} {:>10.0} {:>10.0} {:>6.2} {:>11} {:>8.2} {:>8.2} {:>8.2} {:>7} {:>9} {:>9} {:>6}",
            m.clients,
            m.api.calls,
            m.api.signatures_per_second(),
            m.baseline.signatures_per_second(),
            m.ratio(),
            format!("{low:.2}-{high:.2}"),
            latency.p50,
            latency.p99,
            latency.max,
            m.slow_calls(),
            optional(m.api.server_cpu_ms_per_call(), " ms"),
            optional(m.baseline.cpu_ms_per_batch(), " ms"),
            optional(m.cpu_ratio(), ""),
        );
    }
    println!("   sig/s: signatures per second; ratio: API / baseline (in-process, as many threads as clients, in slices");
    println!("   between the rounds of calls); rounds: the lowest and highest ratio of a round; srv CPU: the server's CPU");
    println!(
        "   per call; base CPU: in-process CPU per 100 signatures; CPU r.: base CPU / srv CPU"
    );
    if measured
        .iter()
        .any(|m| m.cpu_ratio().is_some_and(|r| r > 1.25))
    {
        println!("   WARNING: the server spends much less CPU per call than this process per 100 signatures: were");
        println!("   eidportal and sign_bench built from the same sources? (The baseline signs with sign_bench's own pki.)");
    }
    for m in measured {
        let (server, client, machine) = m.api.cores();
        println!(
            "   {} client(s): machine busy {} of {cores} cores during the calls (server {}, sign_bench {}); clients finished up to {:.2} s apart in a round; the oldest SAD was {:.0} s old",
            m.clients,
            optional(machine, ""),
            optional(server, ""),
            optional(client, ""),
            m.api.client_spread,
            m.oldest_sad_seconds
        );
    }

    // Where the time of one call goes (the 1-client run if there is one; means, which add up).
    let reference = measured
        .iter()
        .find(|m| m.clients == 1)
        .or(measured.first());
    let mut breakdown = serde_json::Map::new();
    if let Some(m) = reference {
        let call = Summary::of(&m.api.times).mean;
        let sign = Summary::of(&m.baseline.batches).mean;
        let commit_ms = probes.commit.map(|c| c.mean).unwrap_or(0.0);
        // The server keeps a key opened after its first call, and signs while the commit waits
        // for the disk: a call is the refused path, then the longer of the two, then the rest.
        let rest = call - probes.refused.mean - sign.max(commit_ms);
        println!(
            "   where a signHash call's time goes ({} client(s), means):",
            m.clients
        );
        println!("     {call:>8.2} ms  the whole call (client side: request sent to answer read)");
        println!("     {sign:>8.2} ms  sign {BATCH} digests in-process (a baseline batch)");
        println!(
            "     {:>8.2} ms  KeyBackend::open in-process (not in a call: the server keeps a key opened after its first call)",
            probes.open.mean
        );
        println!(
            "     {:>8.2} ms  a refused call, same body, random SAD (HTTP, JSON, base64, token, credential, BEGIN IMMEDIATE, SAD lookup)",
            probes.refused.mean
        );
        match probes.commit {
            Some(c) => println!(
                "     {:>8.2} ms  commit probe: BEGIN IMMEDIATE + the audit row of {BATCH} hashes + COMMIT (fsync), scratch SQLite (p50 {:.2}, max {:.2})",
                c.mean, c.p50, c.max
            ),
            None => println!("            -  commit probe: not run (PostgreSQL, or no --scratch)"),
        }
        println!("     {rest:>8.2} ms  the rest = call - refused call - the longer of signing and the commit probe (they overlap):");
        println!("                  SAD checks, device, spend, key row, response (measured apart on a shared machine: may be < 0)");
        breakdown.insert("clients".into(), json!(m.clients));
        breakdown.insert("call_mean_ms".into(), json!(call));
        breakdown.insert("sign_batch_mean_ms".into(), json!(sign));
        breakdown.insert("key_open".into(), probes.open.json());
        breakdown.insert("refused_call".into(), probes.refused.json());
        breakdown.insert(
            "commit_probe".into(),
            probes.commit.map(|c| c.json()).unwrap_or(Value::Null),
        );
        breakdown.insert("rest_mean_ms".into(), json!(rest));
    }

    let mut portal_json = Value::Null;
    if let Some((levels, pdf_bytes)) = portal {
        println!();
        println!(
            "== {}: portal signatures end to end, PDF {} KiB, {} per level (the app's approval timed apart, excluded)",
            args.label,
            pdf_bytes / 1024,
            args.portal_runs
        );
        println!(
            "   {:<6} {:>11} {:>11} {:>11} {:>11} {:>11} {:>12} {:>12} {:>10}",
            "level",
            "upload p50",
            "finish p50",
            "total p50",
            "total max",
            "1st poll",
            "download",
            "(approval)",
            "signed KiB"
        );
        let mut map = serde_json::Map::new();
        for (level, t) in levels {
            let (upload, finish, total) = (
                Summary::of(&t.upload),
                Summary::of(&t.finish),
                Summary::of(&t.total),
            );
            let size = t.signed_bytes.iter().copied().max().unwrap_or(0) / 1024;
            println!(
                "   {:<6} {:>8.1} ms {:>8.1} ms {:>8.1} ms {:>8.1} ms {:>8.1} ms {:>9.1} ms {:>9.1} ms {:>10}",
                level,
                upload.p50,
                finish.p50,
                total.p50,
                total.max,
                Summary::of(&t.first_poll).p50,
                Summary::of(&t.download).p50,
                Summary::of(&t.approval).p50,
                size
            );
            map.insert(
                level.clone(),
                json!({
                    "upload": upload.json(),
                    "finish": finish.json(),
                    "total": total.json(),
                    "form": Summary::of(&t.form).json(),
                    "pending_page": Summary::of(&t.pending_page).json(),
                    "first_poll": Summary::of(&t.first_poll).json(),
                    "download": Summary::of(&t.download).json(),
                    "approval_excluded": Summary::of(&t.approval).json(),
                    "polls": t.polls,
                    "signed_bytes": t.signed_bytes,
                }),
            );
        }
        println!("   upload: POST /services/sign (prepare + authorisation request) → 303; finish: from the approval's acceptance");
        println!("   to the signed PDF downloaded (job page polls, the first of which signs and finishes, + the download);");
        println!("   total: upload + finish. A real browser adds up to 2 s: the waiting page refreshes every 2 s.");
        portal_json =
            json!({ "pdf_bytes": pdf_bytes, "runs_per_level": args.portal_runs, "levels": map });
    }

    let runs: Vec<Value> = measured
        .iter()
        .map(|m| {
            let (server, client, machine) = m.api.cores();
            json!({
                "clients": m.clients,
                "calls": m.api.calls,
                "rounds": m.round_ratios.len(),
                "seconds": m.api.seconds,
                "api_signatures_per_second": m.api.signatures_per_second(),
                "baseline_signatures_per_second": m.baseline.signatures_per_second(),
                "baseline_seconds": m.baseline.seconds,
                "ratio": m.ratio(),
                "round_ratios": m.round_ratios,
                "latency": Summary::of(&m.api.times).json(),
                "calls_over_100ms": m.slow_calls(),
                "client_spread_seconds": m.api.client_spread,
                "server_cpu_ms_per_call": m.api.server_cpu_ms_per_call(),
                "baseline_cpu_ms_per_batch": m.baseline.cpu_ms_per_batch(),
                "cpu_ratio": m.cpu_ratio(),
                "baseline_batch": Summary::of(&m.baseline.batches).json(),
                "server_cores": server,
                "client_cores": client,
                "machine_busy_cores": machine,
                "oldest_sad_seconds": m.oldest_sad_seconds,
            })
        })
        .collect();
    let result = json!({
        "label": args.label,
        "key": key.description,
        "database": database,
        "batch": BATCH,
        "cores": cores,
        "target_ratio": TARGET_RATIO,
        "sads": {
            "count": collection.authorize.len(),
            "seconds": collection.seconds,
            "authorize": Summary::of(&collection.authorize).json(),
            "inbox": Summary::of(&collection.inbox).json(),
            "approve": Summary::of(&collection.approve).json(),
            "authorize_check": Summary::of(&collection.check).json(),
        },
        "runs": runs,
        "breakdown": breakdown,
        "portal": portal_json,
    });
    if let Some(path) = &args.json_out {
        let text = serde_json::to_string_pretty(&result).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// `sign_bench raw [SECONDS]`: raw in-process P-256 signing on one thread with a fresh
/// software key, no server: `sign_digest` (the signHash path: aws-lc-rs `sign_digest`)
/// and `sign` over a 100-byte message (certificates, OCSP, tokens: aws-lc-rs). Prints
/// `RAW_SIGN {json}`; `scripts/bench sign` sets it against `openssl speed ecdsap256`.
fn raw_signing(seconds: f64) -> Result<(), String> {
    let backend = SoftwareKeyBackend::new(MasterKey::generate());
    let key = backend
        .generate("raw", KeyAlgorithm::EcdsaP256)
        .map_err(|e| format!("key generation: {e}"))?;
    let signer = backend
        .open(&key.reference)
        .map_err(|e| format!("opening the key: {e}"))?;
    let length = Duration::from_secs_f64(seconds.max(0.1));
    let digests: Vec<Digest> = random_hashes().into_iter().map(Digest::Sha256).collect();
    let message = [0x5a_u8; 100];
    let mut rates = Vec::new();
    for path in ["digest", "message"] {
        let started = Instant::now();
        let mut count = 0u64;
        while started.elapsed() < length {
            for digest in &digests {
                let signature = if path == "digest" {
                    signer.sign_digest(digest, RsaPadding::Pkcs1v15)
                } else {
                    signer.sign(&message)
                };
                signature.map_err(|e| format!("signing: {e}"))?;
            }
            count += digests.len() as u64;
        }
        rates.push(count as f64 / started.elapsed().as_secs_f64());
    }
    let (digest, message) = (
        rates.first().copied().unwrap_or(0.0),
        rates.get(1).copied().unwrap_or(0.0),
    );
    println!(
        "RAW_SIGN {}",
        json!({ "digest_per_second": digest, "message_per_second": message, "seconds": seconds })
    );
    Ok(())
}

fn main() -> ExitCode {
    let mut raw = std::env::args().skip(1);
    if raw.next().as_deref() == Some("raw") {
        let seconds = raw
            .next()
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(3.0);
        return match raw_signing(seconds) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("sign_bench raw: {message}");
                ExitCode::FAILURE
            }
        };
    }
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("sign_bench: {message}");
            ExitCode::FAILURE
        }
    }
}
