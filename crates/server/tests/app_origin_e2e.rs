//! The ConsentID web app's own origin (DESIGN §9): the second listener serves the embedded app
//! with its CSP, names the portal in `/config.json`, and nothing of the portal; the portal
//! serves nothing of the app; the app API answers cross-origin calls from the app's origin only.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use support::{http_with, HttpResponse, Server, Setup};

fn app_get(server: &Server, path: &str) -> HttpResponse {
    http_with(
        server.app_url.trim_start_matches("http://"),
        "GET",
        path,
        &[],
        &[],
    )
    .unwrap()
}

#[test]
fn the_app_origin_serves_the_embedded_app_with_its_csp_and_nothing_of_the_portal() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &Setup::embedded(), None);
    assert_ne!(server.app_url, server.url);

    let index = app_get(&server, "/");
    assert_eq!(index.status, 200);
    assert_eq!(
        index.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let html = String::from_utf8(index.body.clone()).unwrap();
    assert!(html.contains("manifest.webmanifest"), "{html}");
    let csp = index.header("content-security-policy").unwrap();
    for part in [
        "default-src 'self'",
        "script-src 'self' 'wasm-unsafe-eval'",
        "object-src 'none'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    // The app may call the portal's API and nothing else.
    assert!(
        csp.contains(&format!("connect-src 'self' {}", server.url)),
        "{csp}"
    );
    assert!(
        !csp.contains("'unsafe-inline'") && !csp.contains("'unsafe-eval'"),
        "{csp}"
    );
    assert_eq!(index.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(index.header("referrer-policy"), Some("no-referrer"));

    let config = app_get(&server, "/config.json");
    assert_eq!(config.status, 200);
    let config: serde_json::Value = serde_json::from_slice(&config.body).unwrap();
    assert_eq!(config["server"], server.url.as_str());

    let manifest = app_get(&server, "/manifest.webmanifest");
    assert_eq!(manifest.status, 200);
    assert_eq!(
        manifest.header("content-type"),
        Some("application/manifest+json")
    );
    let manifest: serde_json::Value = serde_json::from_slice(&manifest.body).unwrap();
    assert_eq!(manifest["name"], "ConsentID");
    assert_eq!(manifest["display"], "standalone");
    let worker = app_get(&server, "/sw.js");
    assert_eq!(worker.status, 200);
    assert_eq!(worker.header("cache-control"), Some("no-cache"));
    let script = app_get(&server, "/app.js");
    assert_eq!(
        script.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(script.header("content-encoding"), None);
    // Gzipped for a browser that accepts it: the same file in fewer bytes.
    let gzipped = http_with(
        server.app_url.trim_start_matches("http://"),
        "GET",
        "/app.js",
        &[("Accept-Encoding", "gzip, deflate, br")],
        &[],
    )
    .unwrap();
    assert_eq!(gzipped.header("content-encoding"), Some("gzip"));
    assert_eq!(gzipped.header("vary"), Some("accept-encoding"));
    assert_eq!(gzipped.body.get(..2), Some(&[0x1f, 0x8b][..]));
    assert!(gzipped.body.len() * 2 < script.body.len());

    // Nothing of the portal on the app origin, nothing of the app on the portal.
    assert_eq!(app_get(&server, "/login").status, 404);
    assert_eq!(app_get(&server, "/api/app/v1/status").status, 404);
    assert_eq!(app_get(&server, "/../Cargo.toml").status, 404);
    assert_eq!(server.request("GET", "/app.js", None, &[]).status, 404);
    assert_eq!(server.request("GET", "/sw.js", None, &[]).status, 404);
}

#[test]
fn the_app_api_answers_cross_origin_calls_from_the_app_origin_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &Setup::embedded(), None);
    let preflight = |origin: &str| {
        http_with(
            &server.addr,
            "OPTIONS",
            "/api/app/v1/activation/start",
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", "POST"),
                ("Access-Control-Request-Headers", "content-type"),
            ],
            &[],
        )
        .unwrap()
    };
    let allowed = preflight(&server.app_url);
    assert_eq!(allowed.status, 204);
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some(server.app_url.as_str())
    );
    assert!(allowed
        .header("access-control-allow-headers")
        .unwrap()
        .contains("authorization"));
    // The portal's own origin and any other get no CORS answer.
    for origin in [server.url.as_str(), "https://evil.example", "null"] {
        let refused = preflight(origin);
        assert_eq!(
            refused.header("access-control-allow-origin"),
            None,
            "{origin}"
        );
    }
    // A real call from the app origin carries ACAO; the answer itself is unchanged.
    let call = http_with(
        &server.addr,
        "POST",
        "/api/app/v1/activation/start",
        &[
            ("Origin", &server.app_url),
            ("Content-Type", "application/json"),
        ],
        br#"{"code":"0000-0000-0000-0000"}"#,
    )
    .unwrap();
    assert_eq!(call.status, 400, "{}", String::from_utf8_lossy(&call.body));
    assert_eq!(
        call.header("access-control-allow-origin"),
        Some(server.app_url.as_str())
    );
    // Portal pages never answer cross-origin.
    let page = http_with(
        &server.addr,
        "GET",
        "/login",
        &[("Origin", &server.app_url)],
        &[],
    )
    .unwrap();
    assert_eq!(page.header("access-control-allow-origin"), None);
}

/// Reads the one QR code in a PNG with an independent decoder (rqrr).
fn decode_qr(path: &std::path::Path) -> String {
    let image = image::open(path).unwrap().to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(image);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in {}", path.display());
    grids[0].decode().unwrap().1
}

#[test]
fn activation_codes_come_as_qr_codes_that_open_the_app_with_the_code() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &Setup::embedded(), None);
    let png = dir.path().join("code.png");
    let out = server.cli_ok(&[
        "user",
        "add",
        "--email",
        "qr@example.rs",
        "--given-name",
        "Петар",
        "--surname",
        "Петровић",
        "--jmbg",
        "0101990710008",
        "--json",
        "--qr",
        png.to_str().unwrap(),
    ]);
    // --json stays one JSON object; the QR code goes to the file only.
    let value: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let code = value["activation_code"].as_str().unwrap();
    // The officer command's app URL is the configured one (here the default listen address).
    assert_eq!(
        decode_qr(&png),
        format!("http://127.0.0.1:8081/#/activate?code={code}")
    );
    // A new code, a new QR code; the old one is no longer what it says.
    let again = dir.path().join("again.png");
    let out = server.cli_ok(&[
        "user",
        "activation-code",
        "--email",
        "qr@example.rs",
        "--qr",
        again.to_str().unwrap(),
    ]);
    let text = decode_qr(&again);
    let new_code = text.rsplit('=').next().unwrap();
    assert_ne!(new_code, code);
    assert!(out.contains(new_code), "{out}");
    // An unwritable path is a clear error.
    let bad = server.cli(&[
        "user",
        "activation-code",
        "--email",
        "qr@example.rs",
        "--qr",
        "/nonexistent-folder/x.png",
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--qr"));
}
