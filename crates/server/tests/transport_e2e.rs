//! The server's transport as a client or an attacker meets it: HTTPS with a certificate from a
//! throw-away CA (reloaded without dropping connections, HSTS, no old protocol or CBC suite),
//! half-open connections closed by the header-read timeout, the connection cap, and a clean
//! stop on SIGTERM.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{consentid, run, Server, Setup, PIN};

fn openssl(dir: &Path, args: &[&str]) {
    let (ok, text) = run("openssl", args, dir);
    assert!(ok, "openssl {args:?}: {text}");
}

/// A throw-away CA in `dir` (`ca.pem`, `ca.key`).
fn make_ca(dir: &Path) -> PathBuf {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=eidportal test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    dir.join("ca.pem")
}

/// A server certificate for `localhost` and 127.0.0.1 from the CA in `dir`: `NAME.pem`,
/// `NAME.key`.
fn issue(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let key = format!("{name}.key");
    let csr = format!("{name}.csr");
    let pem = format!("{name}.pem");
    let ext = format!("{name}.ext");
    std::fs::write(
        dir.join(&ext),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={name}"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &pem,
        ],
    );
    (dir.join(pem), dir.join(key))
}

/// The subject CN of the certificate a new TLS connection to `addr` is served.
fn served_name(addr: &str, tls: &Arc<rustls::ClientConfig>) -> String {
    let tcp = TcpStream::connect(addr).unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut connection = rustls::ClientConnection::new(tls.clone(), name).unwrap();
    let mut tcp = tcp;
    while connection.is_handshaking() {
        connection.complete_io(&mut tcp).unwrap();
    }
    let der = connection.peer_certificates().unwrap()[0].to_vec();
    let text = String::from_utf8_lossy(&der).to_string();
    ["first", "second", "third"]
        .into_iter()
        .find(|n| text.contains(n))
        .unwrap_or("?")
        .to_owned()
}

/// A TLS setup: the server's certificate files in the environment.
fn tls_setup(cert: &Path, key: &Path) -> Setup {
    let mut setup = Setup::embedded();
    setup
        .env
        .push(("EIDPORTAL_TLS_CERT".into(), cert.display().to_string()));
    setup
        .env
        .push(("EIDPORTAL_TLS_KEY".into(), key.display().to_string()));
    setup.name = "sqlite+software+tls".into();
    setup
}

/// Finding 1: the server speaks HTTPS itself, says so, sends HSTS, refuses TLS 1.1, CBC suites
/// and plain HTTP on its port, and a new certificate is taken up on SIGHUP while an open
/// connection goes on.
#[test]
fn https_with_hsts_refuses_old_protocols_and_reloads_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = make_ca(d);
    let (cert, key) = issue(d, "first");
    let tls = support::tls_client(&ca);
    let server = Server::start_tls(
        &d.join("data"),
        &tls_setup(&cert, &key),
        None,
        Some(tls.clone()),
    );
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    let response = server.request("GET", "/healthz", None, &[]);
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("strict-transport-security"),
        Some("max-age=31536000")
    );
    // The portal's links and cookies say https.
    let page = server.request("GET", "/login/mobile", None, &[]);
    let cookies: Vec<&str> = page
        .headers
        .iter()
        .filter(|(n, _)| n == "set-cookie")
        .map(|(_, v)| v.as_str())
        .collect();
    assert!(
        !cookies.is_empty() && cookies.iter().all(|c| c.contains("Secure")),
        "{cookies:?}"
    );
    // Plain HTTP on the TLS port gets no HTTP answer.
    assert!(support::http(&server.addr, "GET", "/healthz", None, &[]).is_err());
    // The ConsentID app's origin speaks HTTPS with the same certificate, and HSTS.
    assert!(
        server.app_url.starts_with("https://127.0.0.1:"),
        "{}",
        server.app_url
    );
    let app_addr = server.app_url.trim_start_matches("https://");
    let app = support::http_via(app_addr, Some(&tls), "GET", "/", &[], &[]).unwrap();
    assert_eq!(app.status, 200);
    assert_eq!(
        app.header("strict-transport-security"),
        Some("max-age=31536000")
    );
    assert!(support::http(app_addr, "GET", "/", None, &[]).is_err());
    // TLS 1.1 and 1.0, and TLS 1.2 CBC suites, are refused; a TLS 1.2 AEAD suite works.
    let connect = format!("127.0.0.1:{}", server.addr.rsplit(':').next().unwrap());
    for args in [
        vec!["-tls1_1"],
        vec!["-tls1"],
        vec![
            "-tls1_2",
            "-cipher",
            "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384",
        ],
    ] {
        let mut command = vec![
            "s_client",
            "-connect",
            connect.as_str(),
            "-CAfile",
            "ca.pem",
        ];
        command.extend(args.iter().copied());
        let output = Command::new("openssl")
            .args(&command)
            .current_dir(d)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).to_string()
            + &String::from_utf8_lossy(&output.stderr);
        assert!(
            text.contains("Cipher is (NONE)") || !output.status.success(),
            "{args:?} was accepted: {text}"
        );
    }
    let output = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &connect,
            "-CAfile",
            "ca.pem",
            "-tls1_2",
            "-cipher",
            "ECDHE-ECDSA-AES128-GCM-SHA256",
        ])
        .current_dir(d)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        text.contains("Cipher is ECDHE-ECDSA-AES128-GCM-SHA256"),
        "{text}"
    );
    assert!(text.contains("Verify return code: 0 (ok)"), "{text}");

    // A keep-alive connection opened on the first certificate.
    let mut open = support::connect(&server.addr, Some(&tls)).unwrap();
    let ask = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr);
    open.write_all(ask.as_bytes()).unwrap();
    let mut buffer = [0u8; 4096];
    let n = open.read(&mut buffer).unwrap();
    assert!(
        buffer[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buffer[..n])
    );
    assert_eq!(served_name(&server.addr, &tls), "first");
    // A renewed certificate replaces the files; SIGHUP makes the server take it up.
    let (second_cert, second_key) = issue(d, "second");
    std::fs::copy(&second_key, &key).unwrap();
    std::fs::copy(&second_cert, &cert).unwrap();
    assert!(Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while served_name(&server.addr, &tls) != "second" {
        assert!(
            Instant::now() < deadline,
            "the new certificate was not taken up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The connection opened before goes on.
    open.write_all(ask.as_bytes()).unwrap();
    let n = open.read(&mut buffer).unwrap();
    assert!(
        buffer[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buffer[..n])
    );
    // Without a signal, a change of the files is noticed within the 5-second check.
    let (third_cert, third_key) = issue(d, "third");
    std::fs::copy(&third_key, &key).unwrap();
    std::fs::copy(&third_cert, &cert).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while served_name(&server.addr, &tls) != "third" {
        assert!(
            Instant::now() < deadline,
            "the changed files were not taken up"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Finding 4 (slowloris): 3,000 connections that each sent half a request line are closed by
/// the header-read timeout, while `/healthz` answers all along. The server's descriptor limit is
/// the test process's (20,000 here, inherited); 3,000 stays under the default cap of 4,096.
#[test]
fn half_open_connections_are_closed_by_the_header_timeout_while_healthz_answers() {
    const CONNECTIONS: usize = 3000;
    let dir = tempfile::tempdir().unwrap();
    let mut setup = Setup::embedded();
    setup
        .env
        .push(("EIDPORTAL_HEADER_READ_TIMEOUT_SECS".into(), "3".into()));
    // All from 127.0.0.1: lift the per-address cap, so that the header timeout closes them.
    setup.env.push((
        "EIDPORTAL_MAX_CONNECTIONS_PER_ADDRESS".into(),
        "4096".into(),
    ));
    let server = Server::start(dir.path(), &setup, None);
    let mut streams = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        let mut stream = TcpStream::connect(&server.addr).unwrap();
        stream.write_all(b"GET /healthz HT").unwrap();
        streams.push(stream);
    }
    let opened = Instant::now();
    // The server still answers others.
    let started = Instant::now();
    assert_eq!(server.request("GET", "/healthz", None, &[]).status, 200);
    let healthz = started.elapsed();
    assert!(
        healthz < Duration::from_secs(2),
        "/healthz took {healthz:?}"
    );
    // Every half-open connection is closed by the server within the timeout (and a margin).
    let deadline = opened + Duration::from_secs(3 + 7);
    let mut closed = 0;
    for stream in &mut streams {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        stream.set_read_timeout(Some(left)).unwrap();
        let mut byte = [0u8; 512];
        match stream.read(&mut byte) {
            // EOF, or an error answer followed by EOF, or a reset: closed either way.
            Ok(_) => closed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => closed += 1,
            Err(_) => {}
        }
    }
    assert_eq!(
        closed,
        CONNECTIONS,
        "half-open connections still open after {:?}",
        opened.elapsed()
    );
    eprintln!("{CONNECTIONS} half-open connections: /healthz answered in {healthz:?}, all closed {:?} after opening", opened.elapsed());
    assert_eq!(server.request("GET", "/healthz", None, &[]).status, 200);
}

/// Finding 4: with the cap reached, a further connection waits until the timeout frees a place.
#[test]
fn the_connection_cap_holds_further_connections_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut setup = Setup::embedded();
    setup
        .env
        .push(("EIDPORTAL_HEADER_READ_TIMEOUT_SECS".into(), "2".into()));
    setup
        .env
        .push(("EIDPORTAL_MAX_CONNECTIONS".into(), "20".into()));
    let server = Server::start(dir.path(), &setup, None);
    let held: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut stream = TcpStream::connect(&server.addr).unwrap();
            stream.write_all(b"GET / HT").unwrap();
            stream
        })
        .collect();
    let started = Instant::now();
    assert_eq!(server.request("GET", "/healthz", None, &[]).status, 200);
    let waited = started.elapsed();
    assert!(
        waited > Duration::from_millis(1000),
        "the 21st connection was served at once ({waited:?})"
    );
    drop(held);
}

/// Stopping cleanly: SIGTERM while a time-stamp request (a signature) is half sent and the app
/// is long-polling its inbox. The signature completes, the long poll answers at once with
/// "nothing yet", the process exits 0 and SQLite's WAL is merged.
#[test]
fn sigterm_lets_a_signature_finish_ends_the_long_poll_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut server = Server::start(&d.join("data"), &Setup::embedded(), None);
    let out = server.cli_ok(&[
        "user",
        "add",
        "--email",
        "stop@example.rs",
        "--given-name",
        "Петар",
        "--surname",
        "Петровић",
        "--jmbg",
        "0101990710008",
        "--json",
    ]);
    let code = serde_json::from_str::<serde_json::Value>(out.trim()).unwrap()["activation_code"]
        .as_str()
        .unwrap()
        .to_owned();
    let home = d.join("home");
    support::activate(&server, &home, &code);
    // The app's long poll (25 s, the server's longest), through the app's own client.
    let mut client = consentid::Client::open(&home, consentid::Settings::default()).unwrap();
    let long_poll = std::thread::spawn(move || {
        let started = Instant::now();
        let result = client.inbox(25);
        (result, started.elapsed())
    });
    // A time-stamp request, its body half sent.
    std::fs::write(d.join("data.txt"), b"signed at the stop").unwrap();
    openssl(
        d,
        &[
            "ts", "-query", "-data", "data.txt", "-sha256", "-cert", "-out", "q.tsq",
        ],
    );
    let query = std::fs::read(d.join("q.tsq")).unwrap();
    let mut tsa = TcpStream::connect(&server.addr).unwrap();
    tsa.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "POST /tsa HTTP/1.1\r\nHost: {}\r\nContent-Type: application/timestamp-query\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        server.addr,
        query.len()
    );
    tsa.write_all(head.as_bytes()).unwrap();
    let (first, rest) = query.split_at(query.len() / 2);
    tsa.write_all(first).unwrap();
    // Both are in flight (the long poll had time to reach the server).
    std::thread::sleep(Duration::from_millis(1500));
    assert!(Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .unwrap()
        .success());
    std::thread::sleep(Duration::from_millis(500));
    tsa.write_all(rest).unwrap();
    let mut raw = Vec::new();
    let _ = tsa.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).to_string();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let body_at = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    std::fs::write(d.join("r.tsr"), &raw[body_at..]).unwrap();
    let (ok, reply) = run("openssl", &["ts", "-reply", "-in", "r.tsr", "-text"], d);
    assert!(ok && reply.contains("Status: Granted."), "{reply}");
    // The long poll was answered well before its 40 s, with nothing pending.
    let (inbox, took) = long_poll.join().unwrap();
    let inbox = inbox.unwrap();
    assert!(inbox.requests.is_empty());
    assert!(
        took < Duration::from_secs(15),
        "the long poll took {took:?}"
    );
    let exit = server
        .wait_exit(Duration::from_secs(15))
        .expect("the server did not stop");
    assert_eq!(exit.code(), Some(0), "{exit:?}");
    let wal = d.join("data").join("eidportal.db-wal");
    assert!(
        !wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0,
        "the WAL was not merged"
    );
    // Nothing was lost: a new server on the same data answers.
    let again = Server::start(&d.join("data"), &Setup::embedded(), None);
    assert_eq!(again.request("GET", "/healthz", None, &[]).status, 200);
}

/// One activation start (a wrong code) as if from `client` (an `X-Forwarded-For` value); its
/// status: 400 for the wrong code, 429 once the address's limit (10 per 10 minutes) is spent.
fn activation_try(server: &Server, forwarded_for: &str) -> u16 {
    let headers = [
        ("Content-Type", "application/json"),
        ("X-Forwarded-For", forwarded_for),
    ];
    let body = br#"{"code":"AAAA-AAAA-AAAA-AAAA"}"#;
    support::http_with(
        &server.addr,
        "POST",
        "/api/app/v1/activation/start",
        &headers,
        body,
    )
    .unwrap()
    .status
}

/// Finding 6: rate limits key the client, not the TCP peer. A spoofed `X-Forwarded-For` from an
/// untrusted peer is ignored (everyone from that peer shares its bucket); from a trusted proxy it
/// names the client (the right-most untrusted entry, so a prepended lie does not help); IPv6
/// clients in one /64 share a bucket, another /64 has its own.
#[test]
fn rate_limits_key_the_forwarded_client_only_behind_trusted_proxies_and_ipv6_per_64() {
    // Untrusted peer: every spoofed address lands in 127.0.0.1's bucket.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &Setup::embedded(), None);
    for i in 0..10 {
        assert_eq!(activation_try(&server, &format!("198.51.100.{i}")), 400);
    }
    assert_eq!(
        activation_try(&server, "198.51.100.200"),
        429,
        "a spoofed X-Forwarded-For bought a fresh bucket"
    );
    drop(server);

    // Behind a trusted proxy (the test itself, on 127.0.0.1).
    let dir = tempfile::tempdir().unwrap();
    let mut setup = Setup::embedded();
    setup.env.push((
        "EIDPORTAL_TRUSTED_PROXIES".into(),
        "127.0.0.0/8, ::1".into(),
    ));
    let server = Server::start(dir.path(), &setup, None);
    for _ in 0..10 {
        assert_eq!(activation_try(&server, "198.51.100.1"), 400);
    }
    assert_eq!(activation_try(&server, "198.51.100.1"), 429);
    // A client that prepends another address is still itself.
    assert_eq!(activation_try(&server, "203.0.113.9, 198.51.100.1"), 429);
    // Another client behind the same proxy is not held back.
    assert_eq!(
        activation_try(&server, "198.51.100.2"),
        400,
        "the proxy's clients share one bucket"
    );
    // IPv6: ten addresses of one /64 spend its bucket; the eleventh is refused, another /64 is not.
    for i in 1..=10 {
        assert_eq!(
            activation_try(&server, &format!("2001:db8:1:2::{i:x}")),
            400
        );
    }
    assert_eq!(
        activation_try(&server, "2001:db8:1:2:ffff:ffff:ffff:fffe"),
        429,
        "a new IPv6 address bought a fresh bucket"
    );
    assert_eq!(activation_try(&server, "2001:db8:1:3::1"), 400);
}

/// Finding 1 end to end: `consentid activate --server https://… --ca-file` against a server
/// with a certificate from a throw-away CA, then a whole mobile login over https (the portal
/// driven from Rust through its HTML forms; the app approving over https with the CA it kept).
/// Without the CA, the app refuses the server's certificate.
#[test]
fn consentid_activates_with_a_ca_file_and_a_mobile_login_completes_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = make_ca(d);
    let (cert, key) = issue(d, "first");
    let server = Server::start_tls(
        &d.join("data"),
        &tls_setup(&cert, &key),
        None,
        Some(support::tls_client(&ca)),
    );
    let add = |email: &str| {
        let out = server.cli_ok(&[
            "user",
            "add",
            "--email",
            email,
            "--given-name",
            "Петар",
            "--surname",
            "Петровић",
            "--jmbg",
            "0101990710008",
            "--json",
        ]);
        serde_json::from_str::<serde_json::Value>(out.trim()).unwrap()["activation_code"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // The public roots do not know the throw-away CA.
    let code = add("tls@example.rs");
    let stranger = d.join("stranger");
    let (status, out, err) = consentid(
        &stranger,
        &[
            "activate",
            "--server",
            &server.url,
            "--code",
            &code,
            "--pin-stdin",
        ],
        &format!("{PIN}\n"),
    );
    assert_ne!(status, 0, "activated against an unknown CA: {out}");
    assert!(
        err.contains("Cannot reach the server") && err.to_lowercase().contains("certificate"),
        "{err}"
    );
    // With the CA: activated, the CA kept in the home, and a login approved over https.
    let home = d.join("home");
    let ca_arg = ca.display().to_string();
    let args = [
        "activate",
        "--server",
        &server.url,
        "--ca-file",
        &ca_arg,
        "--code",
        &code,
        "--pin-stdin",
    ];
    let (status, out, err) = consentid(&home, &args, &format!("{PIN}\n"));
    assert_eq!(status, 0, "{out}{err}");
    assert_eq!(
        std::fs::read(home.join("server-ca.pem")).unwrap(),
        std::fs::read(&ca).unwrap()
    );
    let mut browser = support::Browser::new(&server);
    assert_eq!(
        support::log_in(&mut browser, "tls@example.rs", &home),
        "/account"
    );
    let account = browser.get("/account");
    assert_eq!(account.status, 200);
    assert_eq!(
        account.header("strict-transport-security"),
        Some("max-age=31536000")
    );
}

/// `consentid activate --server http://192.0.2.1:…` is refused before any connection attempt.
/// It runs in an empty network namespace, so that nothing could leave the machine even if the
/// refusal were missing; the message is the refusal, not a failed connection.
#[test]
fn consentid_refuses_plain_http_to_another_computer_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let isolated = Command::new("unshare")
        .args(["--net", "true"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !isolated {
        assert!(
            std::env::var_os("EIDPORTAL_TEST_REQUIRE_ALL").is_none(),
            "`unshare --net` is unavailable but EIDPORTAL_TEST_REQUIRE_ALL is set"
        );
        eprintln!("note: skipped: `unshare --net` is unavailable (needs root or user namespaces)");
        return;
    }
    let output = Command::new("unshare")
        .arg("--net")
        .arg(support::consentid_binary())
        .arg("--home")
        .arg(dir.path().join("home"))
        .args([
            "activate",
            "--server",
            "http://192.0.2.1:8080",
            "--code",
            "AAAA-AAAA",
            "--pin-stdin",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        err.contains("Invalid server address") && err.contains("https://"),
        "{err}"
    );
    assert!(!err.contains("Cannot reach"), "{err}");
    // Nothing was prepared either.
    assert!(!dir.path().join("home").exists());
}

/// sslyze (PyPI, `scripts/requirements-sslyze.txt`) against the HTTPS port: no SSL 2/3 or
/// TLS 1.0/1.1, every accepted suite an AEAD one (no CBC, RC4, 3DES, NULL or export), secure
/// renegotiation, no client-initiated renegotiation, no compression.
#[test]
fn sslyze_finds_only_tls_1_2_and_1_3_aead_suites_secure_renegotiation_and_no_compression() {
    let Some(sslyze) = std::env::var_os("EIDPORTAL_TEST_SSLYZE") else {
        assert!(
            std::env::var_os("EIDPORTAL_TEST_REQUIRE_ALL").is_none(),
            "EIDPORTAL_TEST_SSLYZE is not set but EIDPORTAL_TEST_REQUIRE_ALL is: run scripts/test"
        );
        eprintln!("note: sslyze scan skipped (EIDPORTAL_TEST_SSLYZE not set)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = make_ca(d);
    let (cert, key) = issue(d, "first");
    let server = Server::start_tls(
        &d.join("data"),
        &tls_setup(&cert, &key),
        None,
        Some(support::tls_client(&ca)),
    );
    let output = Command::new(sslyze)
        .args([
            "-m",
            "sslyze",
            &server.addr,
            "--json_out=scan.json",
            "--quiet",
        ])
        .args([
            "--sslv2",
            "--sslv3",
            "--tlsv1",
            "--tlsv1_1",
            "--tlsv1_2",
            "--tlsv1_3",
            "--reneg",
            "--compression",
        ])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let scan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("scan.json")).unwrap()).unwrap();
    let result = &scan["server_scan_results"][0];
    assert_eq!(result["scan_status"], "COMPLETED", "{result}");
    let commands = &result["scan_result"];
    let accepted = |command: &str| -> Vec<String> {
        let entry = &commands[command];
        assert_eq!(entry["status"], "COMPLETED", "{command}: {entry}");
        entry["result"]["accepted_cipher_suites"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["cipher_suite"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    for old in [
        "ssl_2_0_cipher_suites",
        "ssl_3_0_cipher_suites",
        "tls_1_0_cipher_suites",
        "tls_1_1_cipher_suites",
    ] {
        assert_eq!(accepted(old), Vec::<String>::new(), "{old}");
    }
    let tls12 = accepted("tls_1_2_cipher_suites");
    let tls13 = accepted("tls_1_3_cipher_suites");
    assert!(
        !tls12.is_empty() && !tls13.is_empty(),
        "{tls12:?} {tls13:?}"
    );
    for suite in tls12.iter().chain(&tls13) {
        let aead = suite.contains("_GCM_") || suite.contains("CHACHA20_POLY1305");
        let weak = ["CBC", "RC4", "3DES", "DES", "NULL", "EXPORT", "anon", "MD5"]
            .iter()
            .any(|w| suite.contains(w));
        assert!(aead && !weak, "weak suite accepted: {suite}");
    }
    let reneg = &commands["session_renegotiation"]["result"];
    assert_eq!(reneg["supports_secure_renegotiation"], true, "{reneg}");
    assert_eq!(
        reneg["is_vulnerable_to_client_renegotiation_dos"], false,
        "{reneg}"
    );
    assert_eq!(
        commands["tls_compression"]["result"]["supports_compression"],
        false
    );
}

/// The whole mobile login through Chromium over https (scripts/e2e/login.py), with the app
/// activated by `--ca-file`. Chromium is told to accept the server's one certificate by its
/// SubjectPublicKeyInfo hash (`--ignore-certificate-errors-spki-list`), as the throw-away CA is
/// not in its store.
#[test]
fn chromium_logs_in_over_https_with_consentid_approving() {
    let Some(python) = support::python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = make_ca(d);
    let (cert, key) = issue(d, "first");
    let server = Server::start_tls(
        &d.join("data"),
        &tls_setup(&cert, &key),
        None,
        Some(support::tls_client(&ca)),
    );
    let out = server.cli_ok(&[
        "user",
        "add",
        "--email",
        "petar@example.rs",
        "--given-name",
        "Петар",
        "--surname",
        "Петровић",
        "--jmbg",
        "0101990710008",
        "--json",
    ]);
    let code = serde_json::from_str::<serde_json::Value>(out.trim()).unwrap()["activation_code"]
        .as_str()
        .unwrap()
        .to_owned();
    let home = d.join("phone");
    let ca_arg = ca.display().to_string();
    let (status, out, err) = consentid(
        &home,
        &[
            "activate",
            "--server",
            &server.url,
            "--ca-file",
            &ca_arg,
            "--code",
            &code,
            "--pin-stdin",
        ],
        &format!("{PIN}\n"),
    );
    assert_eq!(status, 0, "{out}{err}");
    std::fs::write(d.join("pin"), format!("{PIN}\n")).unwrap();
    let spki = Command::new("sh")
        .arg("-c")
        .arg("openssl x509 -in first.pem -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64")
        .current_dir(d)
        .output()
        .unwrap();
    assert!(spki.status.success());
    let spki = String::from_utf8_lossy(&spki.stdout).trim().to_owned();
    let repository = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let output = Command::new(&python)
        .arg(repository.join("scripts/e2e/login.py"))
        .args([
            "--url",
            &server.url,
            "--email",
            "petar@example.rs",
            "--trust-spki",
            &spki,
        ])
        .arg("--consentid")
        .arg(support::consentid_binary())
        .arg("--consentid-home")
        .arg(&home)
        .arg("--pin-file")
        .arg(d.join("pin"))
        .arg("--screenshots")
        .arg(d.join("screenshots"))
        .args(["--expect-name", "Петар Петровић"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && text.contains("PASS"),
        "the browser test over https failed:\n{text}"
    );
}
