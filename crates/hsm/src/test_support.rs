//! For tests only: a private copy of the SoftHSM2 test token for each test process.
//!
//! SoftHSM2's file object store does not support several processes changing one token at once
//! (a process reading the token while another writes a key fails with `CKR_GENERAL_ERROR`), and
//! `cargo nextest` runs every test in a process of its own, several at a time. `scripts/test`
//! therefore makes a pristine token once and names its folder in
//! `EIDPORTAL_TEST_SOFTHSM2_TEMPLATE` (with `softhsm2.conf` and `tokens/`); each test process
//! copies it into `copies/<pid>/` next to it and points `SOFTHSM2_CONF` there, for itself and
//! for the servers and tools it starts. Without the variable (a real HSM, or a token set up by
//! hand) nothing is copied and the token is used as configured.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Makes this process use its own copy of the template token (once; later calls do nothing)
/// and returns the `SOFTHSM2_CONF` it now uses, if a template is configured; the error says
/// why the copy could not be made.
pub fn private_token() -> Result<Option<PathBuf>, String> {
    static CONF: OnceLock<Result<Option<PathBuf>, String>> = OnceLock::new();
    CONF.get_or_init(|| {
        let Some(template) = std::env::var_os("EIDPORTAL_TEST_SOFTHSM2_TEMPLATE").map(PathBuf::from) else { return Ok(None) };
        let copy = template.join("copies").join(std::process::id().to_string());
        let result = (|| -> std::io::Result<PathBuf> {
            if copy.exists() {
                std::fs::remove_dir_all(&copy)?;
            }
            copy_dir(&template.join("tokens"), &copy.join("tokens"))?;
            let conf = copy.join("softhsm2.conf");
            std::fs::write(
                &conf,
                format!("directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", copy.join("tokens").display()),
            )?;
            Ok(conf)
        })();
        match result {
            Ok(conf) => {
                // Before any PKCS#11 module is initialised in this process: the test calls this
                // first thing, and the servers and tools it starts inherit the variable.
                std::env::set_var("SOFTHSM2_CONF", &conf);
                Ok(Some(conf))
            }
            Err(error) => Err(format!("copying the SoftHSM2 template token from {}: {error}", template.display())),
        }
    })
    .clone()
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
