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
