//! The README's "Try it" section stays true: scripts/e2e/try_it.py runs its shell blocks as
//! written (the server block in the background on free ports, the enrolment, the phone's three
//! approvals) and its browser steps in headless Chromium by their visible Serbian words, against
//! the `eidportal` and `consentid` binaries of this build, in a fresh working folder; the signed
//! PDF it downloads must validate with pyHanko.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::{Path, PathBuf};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_readme_try_it_section_runs_as_written() {
    let Some(python) = support::python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    let output = std::process::Command::new(&python)
        .arg(repository().join("scripts/e2e/try_it.py"))
        .arg("--readme")
        .arg(repository().join("README.md"))
        .args(["--eidportal", env!("CARGO_BIN_EXE_eidportal")])
        .arg("--consentid")
        .arg(support::consentid_binary())
        .arg("--work")
        .arg(&work)
        .arg("--screenshots")
        .arg(dir.path().join("screenshots"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && text.contains("PASS"),
        "the README's Try it section failed:\n{text}"
    );
    println!("{text}");

    // The section's commands made their files where a newcomer runs them: the data folder, the
    // command-line phone's home, the activation QR code.
    for name in ["eidportal-data/eidportal.db", "phone", "activate.png"] {
        assert!(work.join(name).exists(), "{name} was not made");
    }
}
