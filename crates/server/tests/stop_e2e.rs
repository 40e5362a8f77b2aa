//! SIGTERM at any moment of the start (issue 22, finding 5d): the handler used to be installed
//! only when the serve loop first polled it, after "listening" was printed, so an early
//! SIGTERM killed the process (status 143 in a shell). Now a SIGTERM sent as soon as the
//! process catches it, before it listens, or right after it says it listens, ends in the
//! graceful stop and exit status 0.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fs::File;
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// A server process, killed if a failed test leaves it running.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `eidportal serve` on free ports, its standard output and error in files under `dir`.
fn spawn(dir: &Path) -> Running {
    let child = Command::new(env!("CARGO_BIN_EXE_eidportal"))
        .arg("--data")
        .arg(dir.join("data"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--app-listen",
            "127.0.0.1:0",
        ])
        .stdout(File::create(dir.join("stdout")).unwrap())
        .stderr(File::create(dir.join("stderr")).unwrap())
        .spawn()
        .expect("start eidportal serve");
    Running(child)
}

/// Whether the process catches SIGTERM (`SigCgt` in /proc, bit 15 - 1).
fn catches_sigterm(pid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (15 - 1)) != 0)
}

fn sigterm(pid: u32) {
    assert!(Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success());
}

/// Waits for `child` to exit (a minute at most: the start finishes first).
fn exit_of(Running(child): &mut Running) -> ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server did not stop after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The exit was the graceful stop: status 0, not death by the signal, and the log says so.
fn assert_graceful(status: ExitStatus, dir: &Path) {
    let log = std::fs::read_to_string(dir.join("stderr")).unwrap();
    assert_eq!(
        (status.code(), status.signal()),
        (Some(0), None),
        "{status:?}\n{log}"
    );
    assert!(log.contains("stopping: no new connections"), "{log}");
    assert!(log.contains("stopped"), "{log}");
}

#[test]
fn sigterm_before_the_server_listens_stops_it_gracefully_with_status_zero() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut child = spawn(d);
    let pid = child.0.id();
    // As soon as the handler exists (the process may not be killed by the signal from here on).
    let deadline = Instant::now() + Duration::from_secs(60);
    while !catches_sigterm(pid) {
        assert!(
            child.0.try_wait().unwrap().is_none(),
            "the server exited while starting"
        );
        assert!(Instant::now() < deadline, "the server never caught SIGTERM");
        std::thread::sleep(Duration::from_millis(1));
    }
    // Nothing printed yet: the handler came before "listening" (the old server caught the
    // signal only after printing it).
    let printed = std::fs::read_to_string(d.join("stdout")).unwrap();
    assert_eq!(
        printed, "",
        "SIGTERM was caught only after the server printed"
    );
    sigterm(pid);
    assert_graceful(exit_of(&mut child), d);
}

#[test]
fn sigterm_right_after_the_server_says_it_listens_stops_it_gracefully_with_status_zero() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut child = spawn(d);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(d.join("stdout"))
        .unwrap()
        .contains("eidportal listening on")
    {
        assert!(
            child.0.try_wait().unwrap().is_none(),
            "the server exited while starting"
        );
        assert!(Instant::now() < deadline, "the server never listened");
        std::thread::sleep(Duration::from_millis(1));
    }
    sigterm(child.0.id());
    assert_graceful(exit_of(&mut child), d);
}
