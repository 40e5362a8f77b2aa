//! Embeds the ConsentID web app (`app/dist/`, built by `scripts/build-app` and committed) in
//! the binary, so that `eidportal serve` needs no Node and no files at run time. Writes
//! `$OUT_DIR/app_files.rs`: a sorted table of (path, bytes) that `app_origin` serves.

use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let dist = manifest.join("../../app/dist");
    // A folder: cargo re-runs this script when any file under it changes.
    println!("cargo:rerun-if-changed={}", dist.display());
    let mut files = Vec::new();
    collect(&dist, &dist, &mut files);
    files.sort();
    let mut table = String::from("/// The web app's files: path under `app/dist/`, contents.\n");
    table.push_str("pub static APP_FILES: &[(&str, &[u8])] = &[\n");
    for (name, path) in &files {
        table.push_str(&format!(
            "    ({name:?}, include_bytes!({:?})),\n",
            path.display().to_string()
        ));
    }
    table.push_str("];\n");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default()).join("app_files.rs");
    if let Err(error) = std::fs::write(&out, table) {
        eprintln!("cannot write {}: {error}", out.display());
        std::process::exit(1);
    }
}

fn collect(root: &Path, folder: &Path, files: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(folder) else {
        println!("cargo:warning=app/dist is missing: the app origin serves nothing (run scripts/build-app)");
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, files);
        } else if let Ok(relative) = path.strip_prefix(root) {
            let name = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            let absolute = std::fs::canonicalize(&path).unwrap_or(path);
            files.push((name, absolute));
        }
    }
}
