//! Login benchmark (issue 3): complete mobile logins per second, server side, with many
//! simulated ConsentID apps at once. `scripts/bench login` enrols the users, starts the server
//! and runs this; `scripts/README.md` says how.
//!
//! ```text
//! login_bench --server http://127.0.0.1:PORT --users users.jsonl [--concurrency 50]
//!             [--seconds 15] [--warmup-seconds 3] [--addresses 1] [--browser full|minimal]
//!             [--paced-rate 300] [--label sqlite] [--json-out FILE] [--oidc DIR]
//! login_bench --oidc-keygen DIR
//! ```
//!
//! `users.jsonl` holds one `eidportal user add --json` answer per line (`email`,
//! `activation_code`). Every app is activated first (not measured), then `--concurrency`
//! worker threads run logins for `--warmup-seconds` (not counted) and `--seconds` (counted).
//!
//! Two phases, on the same server and apps:
//! 1. **Capacity** (closed loop): each worker starts its next login as soon as the last one
//!    ends. The rate is the most the server does; its latencies are those of a saturated
//!    server (every step waits its turn behind the other workers' requests), so they say
//!    little about a server running at a given rate.
//! 2. **Paced** (open loop, with `--paced-rate R`): logins start on a schedule, R per second
//!    spread evenly over the workers (worker w of W starts its k-th login at (k·W + w)/R s),
//!    whatever the server does; a worker whose last login ran past the next start begins at
//!    once, and that lateness is reported. Its latencies are those of a server receiving R
//!    logins per second.
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
//! With `--oidc DIR` (issue 23, `scripts/bench oidc`) the users also log in to a FAPI 2.0
//! service through the OpenID provider: the service's PAR, the browser's authorization request,
//! the mobile login above, the code, the token and userinfo (`common::oidc::login` lists the
//! steps). The capacity phase runs for each flow in turn, twice, and the last line compares
//! the two: `oidc code-flow logins/s: N (mobile logins/s in the same run: M, ratio R)`.
//!
//! The simulated app, the HTTP client and the login itself are in `common` (shared with
//! `sign_bench`). Signing and sealing happen before a step's clock starts: a step's time is its
//! HTTP exchange.
//!
//! Rate limits. The server allows 5 login starts per user and 20 per address in 10 minutes,
//! and 10 activation calls per address (`domain::RateLimit`). Each app is activated from its
//! own loopback address (127.1.x.y, four apps per address; setup, not measured). Logins come
//! from 127.0.0.1 unless `--addresses K` spreads the users over 127.0.0.1..: a login start
//! refused with 429 is counted as such, its user is parked for the rest of the run, and the
//! report says that the numbers are not the server's capacity.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use common::{
    activate, cpu_use, login, loopback, micros, percentile, App, BrowserMode, Connection,
    CpuSample, Enrolled, Failure, Step, USER_AGENT,
};

/// Apps activated from one loopback address (the server allows 10 activation calls, that is
/// 5 activations, per address in 10 minutes).
const ACTIVATIONS_PER_ADDRESS: usize = 4;

#[derive(Debug, Parser)]
#[command(about = "Complete mobile logins per second against a running eidportal (issue 3)")]
struct Args {
    /// The server, `http://IPv4:PORT`.
    #[arg(long, required_unless_present = "oidc_keygen")]
    server: Option<String>,
    /// JSON lines from `eidportal user add --json` (`email`, `activation_code`).
    #[arg(long, required_unless_present = "oidc_keygen")]
    users: Option<PathBuf>,
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
    /// Then also run the paced phase at this many logins per second (0: capacity phase only).
    #[arg(long, default_value_t = 0.0)]
    paced_rate: f64,
    /// A name for the report (e.g. the database).
    #[arg(long, default_value = "eidportal")]
    label: String,
    /// Also write the results as JSON here.
    #[arg(long)]
    json_out: Option<PathBuf>,
    /// Also measure logins to a FAPI 2.0 service through the OpenID provider: DIR holds the
    /// service's key (`--oidc-keygen`) and its registration (`client.json`, the answer of
    /// `eidportal oidc client add --json`). The capacity phase then runs twice for each flow,
    /// alternating (mobile, oidc, mobile, oidc), and the last line compares them.
    #[arg(long, value_name = "DIR")]
    oidc: Option<PathBuf>,
    /// Write a new service key into DIR (`key.der`, and `jwks.json` to register) and exit.
    #[arg(long, value_name = "DIR")]
    oidc_keygen: Option<PathBuf>,
}

/// What a login is.
enum Flow {
    /// The portal's own mobile login.
    Mobile,
    /// A service's login through the OpenID provider, around the mobile login.
    Oidc(common::oidc::Service),
}

impl Flow {
    fn name(&self) -> &'static str {
        match self {
            Self::Mobile => "mobile",
            Self::Oidc(_) => "oidc",
        }
    }
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

/// The logged-in session shows the account (checked once per worker, not timed).
fn check_account(user: &mut User, sid: &str) -> Result<(), Failure> {
    let cookie = format!("sid={sid}");
    let page = user
        .browser
        .request(
            "GET",
            "/account",
            &[("User-Agent", USER_AGENT), ("Cookie", &cookie)],
            b"",
        )
        .map_err(|e| Failure::new("account check", e))?;
    if page.status != 200 || !page.text().contains(&user.app.email) {
        return Err(Failure::new(
            "account check",
            format!(
                "HTTP {}, the account page does not name the user",
                page.status
            ),
        ));
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
    /// Paced phase: how late each counted login started against its schedule (µs).
    lateness: Vec<u32>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.logins += other.logins;
        self.warmup_logins += other.warmup_logins;
        self.parked += other.parked;
        self.lateness.extend(other.lateness);
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

/// When a paced worker starts its logins: worker `index` of `workers`, `rate` logins per
/// second in all.
#[derive(Clone, Copy)]
struct Schedule {
    index: usize,
    workers: usize,
    rate: f64,
}

impl Schedule {
    /// When the `k`-th login of this worker is due, after `start`.
    fn due(&self, start: Instant, k: u64) -> Instant {
        let slot = k as f64 * self.workers as f64 + self.index as f64;
        start + Duration::from_secs_f64(slot / self.rate)
    }
}

fn worker(
    users: &mut [User],
    flow: &Flow,
    mode: BrowserMode,
    start: Instant,
    window: Window,
    schedule: Option<Schedule>,
    progress: &AtomicU64,
) -> Tally {
    let seconds = usize::try_from((window.to - window.from).as_secs()).unwrap_or(0);
    let mut tally = Tally {
        per_second: vec![0; seconds.max(1)],
        ..Tally::default()
    };
    let mut times = Vec::with_capacity(16);
    let mut checked = false;
    let mut nonce = String::new();
    let mut next = 0usize;
    let mut started: u64 = 0;
    while Instant::now() < window.to {
        let late = match schedule {
            Some(schedule) => {
                let due = schedule.due(start, started);
                started += 1;
                let now = Instant::now();
                if due >= window.to {
                    break;
                }
                if due > now {
                    std::thread::sleep(due - now);
                }
                Some(Instant::now().saturating_duration_since(due))
            }
            None => None,
        };
        let Some(index) = (0..users.len())
            .map(|k| (next + k) % users.len())
            .find(|&i| users.get(i).is_some_and(|u| !u.parked))
        else {
            tally.all_parked_at = Some(start.elapsed().as_secs_f64());
            break;
        };
        next = index + 1;
        let Some(user) = users.get_mut(index) else {
            break;
        };
        times.clear();
        let began = Instant::now();
        let outcome = match flow {
            Flow::Mobile => login(
                &user.app,
                &mut user.browser,
                &mut user.phone,
                mode,
                &mut times,
            )
            .map(Some),
            // The service checked the user's e-mail at userinfo.
            Flow::Oidc(service) => common::oidc::login(
                service,
                &user.app,
                &mut user.browser,
                &mut user.phone,
                mode,
                &mut times,
                &mut nonce,
            )
            .map(|()| None),
        };
        let finished = Instant::now();
        let counted = finished >= window.from && finished <= window.to;
        match outcome {
            Ok(sid) => {
                if let Some(sid) = sid.filter(|_| !checked) {
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
                    tally
                        .samples
                        .entry(Step::Login)
                        .or_default()
                        .push(self::micros(finished - began));
                    if let Some(late) = late {
                        tally.lateness.push(self::micros(late));
                    }
                    let second =
                        usize::try_from((finished - window.from).as_secs()).unwrap_or(usize::MAX);
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
// Report.

/// What the report says besides the tally.
struct Setup {
    users: usize,
    workers: usize,
    activation_seconds: f64,
    activation_errors: BTreeMap<String, u64>,
    cpu: Option<(CpuSample, CpuSample)>,
}

fn run(args: &Args) -> Result<(), String> {
    let (Some(server_arg), Some(users_path)) = (&args.server, &args.users) else {
        return Err("--server and --users are required".into());
    };
    let address = server_arg.trim().trim_end_matches('/');
    let server: SocketAddrV4 = address
        .strip_prefix("http://")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("--server: `{server_arg}` is not http://IPv4:PORT"))?;
    let local = server.ip().is_loopback();
    if args.addresses > 1 && !local {
        return Err("--addresses > 1 needs a server on a loopback address".into());
    }
    if args.concurrency == 0 || args.seconds == 0 {
        return Err("--concurrency and --seconds must be at least 1".into());
    }
    let text = std::fs::read_to_string(users_path)
        .map_err(|e| format!("{}: {e}", users_path.display()))?;
    let enrolled: Vec<Enrolled> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", users_path.display()))?;
    if enrolled.is_empty() {
        return Err(format!("{}: no users", users_path.display()));
    }

    // Activation, in parallel; each app from its own loopback address (see the file's doc).
    println!(
        "activating {} simulated apps ({} threads{})",
        enrolled.len(),
        args.activation_threads.clamp(1, enrolled.len()),
        if local {
            ", 4 per loopback address 127.1.x.y"
        } else {
            ""
        }
    );
    let activation_started = Instant::now();
    let queue = Arc::new(Mutex::new(
        enrolled.into_iter().enumerate().collect::<Vec<_>>(),
    ));
    let activation_errors = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
    let apps = Arc::new(Mutex::new(Vec::<(usize, App)>::new()));
    let handles: Vec<_> = (0..args
        .activation_threads
        .clamp(1, queue.lock().map(|q| q.len()).unwrap_or(1)))
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
    let activation_errors =
        std::mem::take(&mut *activation_errors.lock().map_err(|_| "activation results")?);
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
        let user = User {
            app,
            browser: Connection::new(server, source),
            phone: Connection::new(server, source),
            parked: false,
        };
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
    let mobile = Arc::new(Flow::Mobile);
    let mut flows = vec![mobile.clone()];
    if let Some(dir) = &args.oidc {
        flows.push(Arc::new(Flow::Oidc(common::oidc::Service::load(
            dir, address,
        )?)));
    }
    let mut setup = Setup {
        users: users_count,
        workers,
        activation_seconds,
        activation_errors,
        cpu: None,
    };
    // One capacity phase, or two rounds of both flows in turn (the machine's drift is shared).
    let rounds = if flows.len() > 1 { 2 } else { 1 };
    let mut result = serde_json::Value::Null;
    let mut rates = BTreeMap::<&str, Vec<(f64, Option<f64>)>>::new();
    let mut shares = shares;
    for round in 1..=rounds {
        for flow in &flows {
            if flows.len() > 1 {
                println!();
                println!("{} logins, round {round} of {rounds}", flow.name());
            }
            let (tally, cpu, back) = phase(args, flow, shares, None)?;
            shares = back;
            setup.cpu = cpu;
            let name = if flows.len() > 1 {
                format!("capacity, {}, round {round}", flow.name())
            } else {
                "capacity".to_owned()
            };
            let report = report(args, &name, &tally, &setup);
            rates.entry(flow.name()).or_default().push((
                report
                    .pointer("/logins_per_second")
                    .and_then(serde_json::Value::as_f64)
                    .unwrap_or(0.0),
                report
                    .pointer("/cpu/server_ms_per_login")
                    .and_then(serde_json::Value::as_f64),
            ));
            match result.as_object_mut() {
                None => result = report,
                Some(fields) => {
                    let phases = fields
                        .entry("phases")
                        .or_insert_with(|| serde_json::json!([]));
                    if let Some(list) = phases.as_array_mut() {
                        list.push(report);
                    }
                }
            }
        }
    }
    if let (Some(oidc), Some(mobile)) = (rates.get("oidc"), rates.get("mobile")) {
        let mean = |values: &[(f64, Option<f64>)]| {
            values.iter().map(|(rate, _)| rate).sum::<f64>() / values.len().max(1) as f64
        };
        let cpu = |values: &[(f64, Option<f64>)]| {
            let known: Vec<f64> = values.iter().filter_map(|(_, cpu)| *cpu).collect();
            (!known.is_empty()).then(|| known.iter().sum::<f64>() / known.len() as f64)
        };
        let (oidc_rate, mobile_rate) = (mean(oidc), mean(mobile));
        let ratio = if mobile_rate > 0.0 {
            oidc_rate / mobile_rate
        } else {
            0.0
        };
        println!();
        if let (Some(o), Some(m)) = (cpu(oidc), cpu(mobile)) {
            println!("server CPU per login: oidc {o:.2} ms, mobile {m:.2} ms");
        }
        println!(
            "oidc code-flow logins/s: {oidc_rate:.1} (mobile logins/s in the same run: {mobile_rate:.1}, ratio {ratio:.2})"
        );
        if let Some(fields) = result.as_object_mut() {
            fields.insert(
                "oidc_ratio".into(),
                serde_json::json!({ "oidc": oidc_rate, "mobile": mobile_rate, "ratio": ratio }),
            );
        }
    }
    if args.paced_rate > 0.0 {
        println!();
        println!("paced: {} logins/s on a schedule over the same {workers} workers ({} s warm-up + {} s measured)", args.paced_rate, args.warmup_seconds, args.seconds);
        let (tally, cpu, _) = phase(args, &mobile, shares, Some(args.paced_rate))?;
        let setup = Setup { cpu, ..setup };
        let mut paced = report(args, "paced", &tally, &setup);
        let mut lateness = tally.lateness.clone();
        lateness.sort_unstable();
        let (late_p50, late_p99) = (percentile(&lateness, 0.5), percentile(&lateness, 0.99));
        println!("   schedule: starts late by p50 {late_p50:.2} ms, p99 {late_p99:.2} ms (a worker still busy with its last login)");
        if let Some(fields) = paced.as_object_mut() {
            fields.insert("target_rate".into(), serde_json::json!(args.paced_rate));
            fields.insert(
                "late_start_ms".into(),
                serde_json::json!({ "p50": late_p50, "p99": late_p99 }),
            );
        }
        if let Some(fields) = result.as_object_mut() {
            fields.insert("paced".into(), paced);
        }
    }
    if let Some(path) = &args.json_out {
        let text = serde_json::to_string_pretty(&result).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// One phase: the workers run logins (paced at `rate`, or back to back) for the warm-up and
/// the measured seconds; their tallies merged, the CPU used, and the users back.
#[allow(clippy::type_complexity)] // the three results of a phase
fn phase(
    args: &Args,
    flow: &Arc<Flow>,
    shares: Vec<Vec<User>>,
    rate: Option<f64>,
) -> Result<(Tally, Option<(CpuSample, CpuSample)>, Vec<Vec<User>>), String> {
    let workers = shares.len();
    let barrier = Arc::new(Barrier::new(workers + 1));
    let progress = Arc::new(AtomicU64::new(0));
    let epoch = Arc::new(Mutex::new(None::<(Instant, Window)>));
    let handles: Vec<_> = shares
        .into_iter()
        .enumerate()
        .map(|(index, mut share)| {
            let (barrier, progress, epoch, flow, mode) = (
                barrier.clone(),
                progress.clone(),
                epoch.clone(),
                flow.clone(),
                args.browser,
            );
            let schedule = rate.map(|rate| Schedule {
                index,
                workers,
                rate,
            });
            std::thread::spawn(move || {
                barrier.wait();
                let Some((start, window)) = epoch.lock().ok().and_then(|e| *e) else {
                    return (Tally::default(), share);
                };
                let tally = worker(&mut share, &flow, mode, start, window, schedule, &progress);
                (tally, share)
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
            eprintln!(
                "  {:>3} s: {} logins completed",
                start.elapsed().as_secs(),
                progress.load(Ordering::Relaxed)
            );
        }
    }
    let cpu = cpu_from.map(|from| (from, CpuSample::take(args.server_pid)));
    let mut tally = Tally::default();
    let mut shares = Vec::with_capacity(workers);
    for handle in handles {
        let (worker_tally, share) = handle.join().map_err(|_| "a worker thread failed")?;
        tally.merge(worker_tally);
        shares.push(share);
    }
    Ok((tally, cpu, shares))
}

/// Prints a phase's results and returns them as JSON.
fn report(args: &Args, phase: &str, tally: &Tally, setup: &Setup) -> serde_json::Value {
    let users = setup.users;
    let rate = tally.logins as f64 / args.seconds as f64;
    let mut per_second = tally.per_second.clone();
    per_second.sort_unstable();
    let median_second = per_second.get(per_second.len() / 2).copied().unwrap_or(0);
    println!();
    println!(
        "== {} ({phase}): {} logins completed in {} s: {rate:.1} logins/s",
        args.label, tally.logins, args.seconds
    );
    println!(
        "   per second: min {}, median {median_second}, max {}; {} more during the warm-up",
        per_second.first().copied().unwrap_or(0),
        per_second.last().copied().unwrap_or(0),
        tally.warmup_logins
    );
    println!(
        "   {:<10} {:>7} {:>9} {:>9} {:>9} {:>9}  what",
        "step", "count", "p50 ms", "p90 ms", "p99 ms", "max ms"
    );
    let mut steps = serde_json::Map::new();
    for step in Step::ALL {
        let Some(values) = tally.samples.get(&step) else {
            continue;
        };
        let mut sorted = values.clone();
        sorted.sort_unstable();
        let (p50, p90, p99, max) = (
            percentile(&sorted, 0.5),
            percentile(&sorted, 0.9),
            percentile(&sorted, 0.99),
            percentile(&sorted, 1.0),
        );
        println!(
            "   {:<10} {:>7} {p50:>9.2} {p90:>9.2} {p99:>9.2} {max:>9.2}  {}",
            step.as_str(),
            sorted.len(),
            step.what()
        );
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
    let all_cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
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
    let rate_limited: u64 = tally
        .errors
        .iter()
        .filter(|(k, _)| k.contains("429"))
        .map(|(_, n)| n)
        .sum();
    if rate_limited > 0 {
        println!();
        println!("   RATE LIMITED: {rate_limited} login starts were refused with 429; {} of {users} users were parked", tally.parked);
        if let Some(at) = tally.all_parked_at {
            println!("   (every user of some worker was parked by {at:.1} s: the run stopped measuring early)");
        }
        println!("   The server allows 5 login starts per user and 20 per address in 10 minutes");
        println!("   (domain::RateLimit): the logins/s above are those limits, not the server's capacity.");
        println!("   Run against a server with the benchmark-only setting that lifts them, or stay within");
        println!(
            "   them: for R logins/s over T s (warm-up included) use --addresses >= R*T/20 and"
        );
        println!("   at least R*T/5 users.");
    }
    serde_json::json!({
        "label": args.label,
        "phase": phase,
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
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    let outcome = match &args.oidc_keygen {
        Some(dir) => common::oidc::keygen(dir),
        None => run(&args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("login_bench: {message}");
            ExitCode::FAILURE
        }
    }
}
