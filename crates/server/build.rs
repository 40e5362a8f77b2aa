//! Embeds the ConsentID web app (`app/dist/`, built by `scripts/build-app` and committed) in
//! the binary, so that `eidportal serve` needs no Node and no files at run time. Writes
//! `$OUT_DIR/app_files.rs`: a sorted table of `AppFile`s (path, bytes, gzipped bytes) that
//! `app_origin` serves. Text files are also gzipped here (flate2, best compression), so that a phone on a
//! slow network downloads a third of the bytes.

use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let dist = manifest.join("../../app/dist");
    // A folder: cargo re-runs this script when any file under it changes.
    println!("cargo:rerun-if-changed={}", dist.display());
    let mut files = Vec::new();
    collect(&dist, &dist, &mut files);
    files.sort();
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let mut table = String::from("/// The web app's files under `app/dist/`, sorted by path.\n");
    table.push_str("static APP_FILES: &[AppFile] = &[\n");
    for (index, (name, path)) in files.iter().enumerate() {
        let gzipped = if compressible(name) {
            let target = out_dir.join(format!("app-file-{index}.gz"));
            gzip(path, &target);
            format!("Some(include_bytes!({:?}))", target.display().to_string())
        } else {
            "None".to_owned()
        };
        table.push_str(&format!(
            "    AppFile {{ path: {name:?}, bytes: include_bytes!({:?}), gzipped: {gzipped} }},\n",
            path.display().to_string()
        ));
    }
    table.push_str("];\n");
    let out = out_dir.join("app_files.rs");
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

fn compressible(name: &str) -> bool {
    [
        ".js",
        ".css",
        ".html",
        ".json",
        ".webmanifest",
        ".txt",
        ".svg",
    ]
    .iter()
    .any(|ext| name.ends_with(ext))
}

fn gzip(source: &Path, target: &Path) {
    use std::io::Write as _;
    let result = std::fs::read(source).and_then(|bytes| {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(&bytes)?;
        std::fs::write(target, encoder.finish()?)
    });
    if let Err(error) = result {
        eprintln!("cannot gzip {}: {error}", source.display());
        std::process::exit(1);
    }
}
