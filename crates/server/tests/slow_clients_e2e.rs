//! One host against everyone else (issue 22, finding 1): 4,096 connections from one address,
//! each the headers of an OCSP POST announcing 8,000 bytes and then no body. The address holds
//! its share (256) and no more, the rest are closed as soon as they are accepted, OCSP, a CRL
//! and `/healthz` answer another address within a second, and the held connections are closed
//! by the request deadline. A body that trickles is cut by the minimum rate while a slow but
//! steady one is answered; a trusted proxy is not capped per address.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

use base64::Engine as _;
use support::{der_to_pem, run, Server, Setup};

/// Another client, on another loopback address (all of 127.0.0.0/8 is loopback on Linux).
const OTHER: Ipv4Addr = Ipv4Addr::new(127, 0, 1, 2);

/// Raises this process's soft descriptor limit to `wanted` (the server, started after, inherits
/// it).
fn raise_descriptor_limit(wanted: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the one struct it is given, which outlives the call.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
        0
    );
    if limit.rlim_cur >= wanted {
        return;
    }
    assert!(
        limit.rlim_max >= wanted,
        "the hard descriptor limit ({}) is below the {wanted} this test needs",
        limit.rlim_max
    );
    limit.rlim_cur = wanted;
    // SAFETY: setrlimit reads the one struct it is given, which outlives the call.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
}

/// A GET from `source` with `Connection: close`: its status, its content type and how long the
/// answer took. Gives up after 5 s (the old server never answered).
fn timed_get(server: &Server, source: Ipv4Addr, path: &str) -> (u16, String, Duration) {
    let started = Instant::now();
    let mut stream = support::tcp_from(&server.addr, Some(source)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let ask = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        server.addr
    );
    stream.write_all(ask.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let read = stream.read_to_end(&mut raw);
    let took = started.elapsed();
    assert!(
        read.is_ok() || !raw.is_empty(),
        "GET {path} from {source}: no answer after {took:?} ({read:?})"
    );
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let content_type = text
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type:")
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_default();
    (status, content_type, took)
}

/// A counter of `/metrics` (asked from `source`), by its name and labels.
fn metric(server: &Server, source: Ipv4Addr, series: &str) -> u64 {
    let response =
        support::http_from(Some(source), &server.addr, "GET", "/metrics", &[], &[]).unwrap();
    let text = String::from_utf8_lossy(&response.body).to_string();
    text.lines()
        .find_map(|line| line.strip_prefix(series))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in /metrics:\n{text}"))
}

const REFUSED: &str = "eidportal_connections_refused_total{reason=\"per_address_cap\"}";
const CUT_DEADLINE: &str = "eidportal_requests_cut_total{reason=\"deadline\"}";
const CUT_SLOW: &str = "eidportal_requests_cut_total{reason=\"min_body_rate\"}";

/// Whether the server has closed `stream` (or answered on it, which it only does when it cuts
/// a request), without waiting.
fn closed_by_server(stream: &mut TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let closed = match stream.read(&mut byte) {
        Ok(_) => true,
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(_) => true,
    };
    stream.set_nonblocking(false).unwrap();
    closed
}

/// Waits until `limit` for the server to close `stream` (an answer, EOF or a reset); whether it
/// did.
fn closes_before(stream: &mut TcpStream, limit: Instant) -> bool {
    let mut buffer = [0u8; 1024];
    loop {
        let left = limit.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            // The cut request's answer; its connection closes after it.
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// The headers of an OCSP POST that announces 8,000 bytes.
fn ocsp_post_head(server: &Server) -> String {
    format!(
        "POST /ocsp HTTP/1.1\r\nHost: {}\r\nContent-Type: application/ocsp-request\r\nContent-Length: 8000\r\nConnection: close\r\n\r\n",
        server.addr
    )
}

#[test]
fn one_address_with_4096_slow_bodies_holds_only_its_share_and_others_get_ocsp_and_healthz() {
    const CONNECTIONS: usize = 4096;
    const SHARE: usize = 256;
    const DEADLINE_SECS: u64 = 5;
    raise_descriptor_limit(3 * CONNECTIONS as u64);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut setup = Setup::embedded();
    // The deadline alone closes the held connections here (the minimum rate has its own test);
    // the caps are the defaults: 4,096 in all, 256 per address.
    setup.env.extend([
        (
            "EIDPORTAL_REQUEST_READ_TIMEOUT_SECS".to_owned(),
            DEADLINE_SECS.to_string(),
        ),
        (
            "EIDPORTAL_MIN_BODY_BYTES_PER_SEC".to_owned(),
            "0".to_owned(),
        ),
    ]);
    let server = Server::start(&d.join("data"), &setup, None);
    // A genuine OCSP request, for a GET from the other client.
    let issuer = der_to_pem(d, &server.get("/pki/qualified-ca.crt"), "q", "x509");
    let (ok, text) = run(
        "openssl",
        &[
            "ocsp",
            "-issuer",
            issuer.to_str().unwrap(),
            "-serial",
            "0x01",
            "-no_nonce",
            "-reqout",
            "req.der",
        ],
        d,
    );
    assert!(ok, "{text}");
    let request = std::fs::read(d.join("req.der")).unwrap();
    let ocsp_get = format!(
        "/ocsp/{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(request)
    );

    // 1. The flood, from 127.0.0.1.
    let head = ocsp_post_head(&server);
    let flood_started = Instant::now();
    // From 32 threads: on a busy machine a full listen backlog costs a connect a 1-second SYN
    // retry, and the threads wait out those retries side by side.
    let mut streams: Vec<TcpStream> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..32)
            .map(|_| {
                scope.spawn(|| {
                    (0..CONNECTIONS / 32)
                        .map(|_| {
                            let mut stream = TcpStream::connect(&server.addr).unwrap();
                            // One over the share may be closed before this: not the test's concern.
                            let _ = stream.write_all(head.as_bytes());
                            stream
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|thread| thread.join().unwrap())
            .collect()
    });
    let flood = flood_started.elapsed();

    // 2. Another address is served at once: OCSP, a CRL, `/healthz`.
    for (path, content_type) in [
        ("/healthz", "text/plain"),
        (ocsp_get.as_str(), "application/ocsp-response"),
        ("/pki/qualified-ca.crl", "application/pkix-crl"),
    ] {
        let (status, got, took) = timed_get(&server, OTHER, path);
        assert_eq!(status, 200, "GET {path}");
        assert!(got.starts_with(content_type), "GET {path}: {got}");
        assert!(
            took < Duration::from_secs(1),
            "GET {path} from {OTHER} took {took:?} while 127.0.0.1 held its share"
        );
    }

    // 3. The flooding address holds its share and not one connection more: the rest were
    // closed as soon as they were accepted.
    let settled = Instant::now() + Duration::from_secs(5);
    while metric(&server, OTHER, REFUSED) < (CONNECTIONS - SHARE) as u64 && Instant::now() < settled
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let refused = metric(&server, OTHER, REFUSED);
    let held: Vec<usize> = (0..CONNECTIONS)
        .filter(|&i| !closed_by_server(&mut streams[i]))
        .collect();
    let checked = flood_started.elapsed();
    assert!(
        checked < Duration::from_secs(DEADLINE_SECS),
        "the checks ran past the deadline ({checked:?}; the flood took {flood:?}): too slow a machine for this test"
    );
    assert_eq!(
        (held.len(), refused),
        (SHARE, (CONNECTIONS - SHARE) as u64),
        "(held, refused) after a flood of {flood:?}"
    );

    // 4. The held connections are closed by the deadline (counted from their first byte), and
    // the server counts them.
    let limit = flood_started + flood + Duration::from_secs(DEADLINE_SECS + 4);
    let still_open = held
        .iter()
        .filter(|&&i| !closes_before(&mut streams[i], limit))
        .count();
    assert_eq!(
        still_open,
        0,
        "connections still open {:?} after the flood began",
        flood_started.elapsed()
    );
    assert_eq!(metric(&server, OTHER, CUT_DEADLINE), SHARE as u64);
    eprintln!(
        "{CONNECTIONS} slow bodies from one address (flood {flood:?}): {refused} closed at once, {SHARE} held and cut by the deadline {:?} after the flood began",
        flood_started.elapsed()
    );
    // And the flooding address is served again.
    assert_eq!(timed_get(&server, Ipv4Addr::LOCALHOST, "/healthz").0, 200);
}

#[test]
fn a_trickling_body_is_cut_by_the_minimum_rate_and_a_slow_steady_one_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let mut setup = Setup::embedded();
    setup.env.extend([
        (
            "EIDPORTAL_MIN_BODY_BYTES_PER_SEC".to_owned(),
            "100".to_owned(),
        ),
        (
            "EIDPORTAL_MIN_BODY_RATE_GRACE_SECS".to_owned(),
            "1".to_owned(),
        ),
    ]);
    let server = Server::start(dir.path(), &setup, None);
    let head = ocsp_post_head(&server);
    // Sends `chunk` bytes every `every` until the body is complete or the server closes.
    let sender = |chunk: usize, every: Duration| {
        let mut stream = TcpStream::connect(&server.addr).unwrap();
        stream.write_all(head.as_bytes()).unwrap();
        let mut writer = stream.try_clone().unwrap();
        let thread = std::thread::spawn(move || {
            let mut sent = 0;
            while sent < 8000 {
                std::thread::sleep(every);
                let n = chunk.min(8000 - sent);
                if writer.write_all(&vec![0x30; n]).is_err() {
                    return sent;
                }
                sent += n;
            }
            sent
        });
        (stream, thread)
    };
    // 10 bytes a second, far below 100: cut once the 1-second grace is spent.
    let started = Instant::now();
    let (mut trickle, trickle_thread) = sender(1, Duration::from_millis(100));
    // 4,000 bytes a second, two seconds in all: past the grace, above the rate.
    let (mut steady, steady_thread) = sender(400, Duration::from_millis(100));
    assert!(closes_before(
        &mut trickle,
        started + Duration::from_secs(6)
    ));
    let cut_after = started.elapsed();
    assert!(
        cut_after >= Duration::from_millis(900),
        "cut before its grace: {cut_after:?}"
    );
    assert!(trickle_thread.join().unwrap() < 8000);
    steady
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut raw = Vec::new();
    let _ = steady.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).to_string();
    assert_eq!(steady_thread.join().unwrap(), 8000);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("content-type: application/ocsp-response"),
        "{text}"
    );
    assert_eq!(
        (
            metric(&server, OTHER, CUT_SLOW),
            metric(&server, OTHER, CUT_DEADLINE)
        ),
        (1, 0)
    );
    eprintln!("a body of 10 bytes/s was cut {cut_after:?} after it began");
}

#[test]
fn a_trusted_proxy_is_not_capped_per_address_and_others_are() {
    let dir = tempfile::tempdir().unwrap();
    let mut setup = Setup::embedded();
    setup.env.extend([
        (
            "EIDPORTAL_TRUSTED_PROXIES".to_owned(),
            "127.0.0.1".to_owned(),
        ),
        (
            "EIDPORTAL_MAX_CONNECTIONS_PER_ADDRESS".to_owned(),
            "2".to_owned(),
        ),
    ]);
    let server = Server::start(dir.path(), &setup, None);
    let half_request = |source: Option<Ipv4Addr>| {
        let mut stream = support::tcp_from(&server.addr, source).unwrap();
        stream.write_all(b"GET /healthz HT").unwrap();
        stream
    };
    let mut proxy: Vec<TcpStream> = (0..5).map(|_| half_request(None)).collect();
    let mut other: Vec<TcpStream> = (0..3).map(|_| half_request(Some(OTHER))).collect();
    // The third connection of 127.0.1.2 is closed at once (asked from a third address).
    let third = Ipv4Addr::new(127, 0, 1, 3);
    let settled = Instant::now() + Duration::from_secs(5);
    while metric(&server, third, REFUSED) < 1 && Instant::now() < settled {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(metric(&server, third, REFUSED), 1);
    let open = |streams: &mut Vec<TcpStream>| {
        streams
            .iter_mut()
            .map(closed_by_server)
            .filter(|closed| !closed)
            .count()
    };
    assert_eq!(open(&mut other), 2, "127.0.1.2 holds more than its cap");
    assert_eq!(open(&mut proxy), 5, "the trusted proxy was capped");
}
