//! Remote signing through the CSC API v2 with the real server and the `consentid` binary as the
//! phone: unmodified pyHanko signs a PDF (its signature validated by pyHanko with revocation
//! checking and by poppler's pdfsig), and every refusal carries the specification's error.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cloned_ref_to_slice_refs
)]

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};

use support::{
    consentid, der_to_pem, extract, http_from, http_with, run, Browser, Server, Setup, PIN,
};

const PASSWORD: &str = "Lozinka za test 2026";

/// An enrolled user with ConsentID, a cloud certificate and an API token.
struct Party {
    email: String,
    home: PathBuf,
    credential: String,
    token: String,
}

fn enrol(server: &Server, dir: &Path, email: &str, jmbg: &str) -> Party {
    let out = server.cli_input(
        &[
            "user",
            "add",
            "--email",
            email,
            "--given-name",
            "Петар",
            "--surname",
            "Петровић",
            "--jmbg",
            jmbg,
            "--password-stdin",
            "--json",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let code = serde_json::from_slice::<Value>(&out.stdout).unwrap()["activation_code"]
        .as_str()
        .unwrap()
        .to_owned();
    let home = dir.join(email);
    support::activate(server, &home, &code);
    let issued = server.cli_ok(&[
        "cert",
        "issue",
        "--email",
        email,
        "--given-name",
        "Петар",
        "--surname",
        "Петровић",
        "--jmbg",
        jmbg,
        "--json",
    ]);
    let credential = serde_json::from_str::<Value>(issued.trim()).unwrap()["serial"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = login(server, email, PASSWORD).1["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    Party {
        email: email.to_owned(),
        home,
        credential,
        token,
    }
}

/// The same party with nothing but its identity (for another token of the same user).
fn enrolled_again(party: &Party) -> Party {
    Party {
        email: party.email.clone(),
        home: party.home.clone(),
        credential: party.credential.clone(),
        token: String::new(),
    }
}

fn login(server: &Server, email: &str, password: &str) -> (u16, Value) {
    let basic = format!("Basic {}", STANDARD.encode(format!("{email}:{password}")));
    let response = http_with(
        &server.addr,
        "POST",
        "/csc/v2/auth/login",
        &[("Authorization", &basic)],
        b"{}",
    )
    .unwrap();
    (
        response.status,
        serde_json::from_slice(&response.body).unwrap_or(Value::Null),
    )
}

/// POSTs a CSC method with a bearer token; (status, JSON body).
fn csc(server: &Server, token: &str, method: &str, body: &Value) -> (u16, Value) {
    let bearer = format!("Bearer {token}");
    let body = serde_json::to_vec(body).unwrap();
    let response = http_with(
        &server.addr,
        "POST",
        &format!("/csc/v2/{method}"),
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/json"),
            ("User-Agent", "csc-e2e-test/1.0"),
        ],
        &body,
    )
    .unwrap();
    (
        response.status,
        serde_json::from_slice(&response.body).unwrap_or(Value::Null),
    )
}

fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// `credentials/authorize` for `hashes`; the handle.
fn authorize(server: &Server, party: &Party, hashes: &[Vec<u8>]) -> String {
    let (status, body) = csc(
        server,
        &party.token,
        "credentials/authorize",
        &json!({
            "credentialID": party.credential,
            "numSignatures": hashes.len(),
            "hashes": hashes.iter().map(|h| b64(h)).collect::<Vec<_>>(),
            "hashAlgorithmOID": "2.16.840.1.101.3.4.2.1",
            "description": "Уговор о закупу.pdf",
        }),
    );
    assert_eq!(status, 202, "{body}");
    body["handle"].as_str().unwrap().to_owned()
}

/// Polls `authorizeCheck` until it is no longer 202.
fn check(server: &Server, party: &Party, handle: &str) -> (u16, Value) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = csc(
            server,
            &party.token,
            "credentials/authorizeCheck",
            &json!({ "handle": handle }),
        );
        if status != 202 || Instant::now() > deadline {
            return (status, body);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Authorises `hashes` and approves on the phone; the SAD.
fn sad(server: &Server, party: &Party, hashes: &[Vec<u8>]) -> String {
    let handle = authorize(server, party, hashes);
    let (status, out, err) = consentid(
        &party.home,
        &["approve", "--next", "--wait", "10", "--pin-stdin"],
        &format!("{PIN}\n"),
    );
    assert_eq!(status, 0, "{out}{err}");
    // The phone was shown who asks, the document and a fingerprint of its hash.
    assert!(
        out.contains("csc-e2e-test/1.0")
            && out.contains("Уговор о закупу.pdf")
            && out.contains("SHA-256"),
        "{out}"
    );
    // "Who asks" is the authenticated party (the account behind the Basic-auth token), never
    // the User-Agent header the caller chose.
    let who = out
        .lines()
        .find(|l| l.starts_with("Ко тражи / Who asks"))
        .unwrap_or_default();
    assert!(
        who.contains(&format!("CSC API: {}", party.email)) && !who.contains("csc-e2e-test"),
        "{out}"
    );
    let (status, body) = check(server, party, &handle);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["expiresIn"], 300);
    body["SAD"].as_str().unwrap().to_owned()
}

fn sign_hash(server: &Server, party: &Party, sad: &str, hashes: &[Vec<u8>]) -> (u16, Value) {
    let hashes: Vec<String> = hashes.iter().map(|h| b64(h)).collect();
    let body = json!({ "credentialID": party.credential, "SAD": sad, "hashes": hashes, "signAlgo": "1.2.840.10045.4.3.2" });
    csc(server, &party.token, "signatures/signHash", &body)
}

fn assert_error(answer: (u16, Value), status: u16, error: &str, description: &str) {
    let (got_status, body) = answer;
    assert_eq!(got_status, status, "{body}");
    assert_eq!(body["error"], error, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap_or("")
            .contains(description),
        "expected “{description}” in {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmodified_pyhanko_signs_through_the_csc_api_and_validates_with_revocation_checks() {
    let Some(python) = support::python() else {
        return;
    };
    let pyhanko = python.with_file_name("pyhanko");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/e2e/csc_sign.py");
    for setup in Setup::all().await {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(&dir.path().join("data"), &setup, None);
        let party = enrol(&server, dir.path(), "petar@example.rs", "0101990710008");
        std::fs::write(dir.path().join("password"), PASSWORD).unwrap();
        let mut signer = Command::new(&python)
            .arg(&script)
            .args([
                "--url",
                &server.url,
                "--email",
                &party.email,
                "--password-file",
            ])
            .arg(dir.path().join("password"))
            .args([
                "--in",
                "in.pdf",
                "--out",
                "signed.pdf",
                "--make-input",
                "--description",
                "Уговор о закупу.pdf",
            ])
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(signer.stdout.take().unwrap()).lines();
        let first = lines.next().map(Result::unwrap).unwrap_or_default();
        assert!(
            first.starts_with("handle "),
            "{}: pyHanko did not ask for authorisation: {first}",
            setup.name
        );
        // The phone approves (PIN, Ауторизовати) while pyHanko polls authorizeCheck.
        let (status, out, err) = consentid(
            &party.home,
            &["approve", "--next", "--wait", "10", "--pin-stdin"],
            &format!("{PIN}\n"),
        );
        assert_eq!(status, 0, "{}: {out}{err}", setup.name);
        let rest: Vec<String> = lines.map(Result::unwrap).collect();
        let output = signer.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}: {rest:?} {}",
            setup.name,
            String::from_utf8_lossy(&output.stderr)
        );

        // pyHanko validates it, fetching OCSP/CRLs from the running server (--force-revinfo).
        let root = der_to_pem(dir.path(), &server.get("/pki/root.crt"), "root", "x509");
        let (ok, text) = run(
            pyhanko.to_str().unwrap(),
            &[
                "sign",
                "validate",
                "--trust",
                root.to_str().unwrap(),
                "--trust-replace",
                "--force-revinfo",
                "signed.pdf",
            ],
            dir.path(),
        );
        assert!(
            ok && text.contains("INTACT:TRUSTED"),
            "{}: pyhanko sign validate: {text}",
            setup.name
        );
        // So does poppler's pdfsig, trusting the root in an NSS database.
        let nss = format!("sql:{}", dir.path().join("nss").display());
        std::fs::create_dir_all(dir.path().join("nss")).unwrap();
        assert!(
            run(
                "certutil",
                &["-N", "-d", &nss, "--empty-password"],
                dir.path()
            )
            .0
        );
        assert!(
            run(
                "certutil",
                &[
                    "-A",
                    "-d",
                    &nss,
                    "-n",
                    "root",
                    "-t",
                    "CT,C,C",
                    "-i",
                    root.to_str().unwrap()
                ],
                dir.path()
            )
            .0
        );
        let (_, text) = run("pdfsig", &["-nssdir", &nss, "signed.pdf"], dir.path());
        assert!(
            text.contains("Signature is Valid") && text.contains("Certificate is Trusted"),
            "{}: pdfsig: {text}",
            setup.name
        );
        if setup.name.contains("rsa") {
            rsa_pss_and_pkcs1_signatures_verify(&server, &party, &python, dir.path());
        }
    }
}

/// On an RSA credential, signHash makes RSASSA-PSS (with the parameters of RFC 8017 for
/// SHA-256) and PKCS#1 v1.5 signatures that Python's `cryptography` verifies over the hash.
fn rsa_pss_and_pkcs1_signatures_verify(server: &Server, party: &Party, python: &Path, dir: &Path) {
    // RSASSA-PSS-params: SHA-256, MGF1 with SHA-256, salt length 32.
    const PSS_SHA256: &str =
        "MDSgDzANBglghkgBZQMEAgEFAKEcMBoGCSqGSIb3DQEBCDANBglghkgBZQMEAgEFAKIDAgEg";
    let hash = vec![0x5au8; 32];
    let (_, info) = csc(
        server,
        &party.token,
        "credentials/info",
        &json!({ "credentialID": party.credential }),
    );
    let certificate = STANDARD
        .decode(info["cert"]["certificates"][0].as_str().unwrap())
        .unwrap();
    std::fs::write(dir.join("signer.der"), certificate).unwrap();
    for (algo, params, padding) in [
        (
            "1.2.840.113549.1.1.10",
            Some(PSS_SHA256),
            "padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)",
        ),
        ("1.2.840.113549.1.1.1", None, "padding.PKCS1v15()"),
    ] {
        let sad = sad(server, party, std::slice::from_ref(&hash));
        let mut body = json!({ "credentialID": party.credential, "SAD": sad, "hashes": [b64(&hash)], "signAlgo": algo,
                               "hashAlgorithmOID": "2.16.840.1.101.3.4.2.1" });
        if let Some(params) = params {
            body["signAlgoParams"] = json!(params);
        }
        let (status, signed) = csc(server, &party.token, "signatures/signHash", &body);
        assert_eq!(status, 200, "{algo}: {signed}");
        std::fs::write(
            dir.join("signature.bin"),
            STANDARD
                .decode(signed["signatures"][0].as_str().unwrap())
                .unwrap(),
        )
        .unwrap();
        let script = format!(
            "from cryptography import x509\nfrom cryptography.hazmat.primitives import hashes\n\
             from cryptography.hazmat.primitives.asymmetric import padding, utils\n\
             key = x509.load_der_x509_certificate(open('signer.der','rb').read()).public_key()\n\
             key.verify(open('signature.bin','rb').read(), bytes([0x5a]*32), {padding}, utils.Prehashed(hashes.SHA256()))\nprint('verified')"
        );
        let (ok, out) = run(python.to_str().unwrap(), &["-c", &script], dir);
        assert!(ok && out.contains("verified"), "{algo}: {out}");
    }
}

#[test]
fn every_refusal_carries_the_specifications_error() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &Setup::embedded(), None);
    let petar = enrol(&server, dir.path(), "petar@example.rs", "0101990710008");
    let jovana = enrol(&server, dir.path(), "jovana@example.rs", "0101990716006");
    let (h1, h2) = (vec![1u8; 32], vec![2u8; 32]);

    // info is public and lists what we implement; everything else needs a token.
    let info = serde_json::from_slice::<Value>(
        &server
            .request("POST", "/csc/v2/info", Some("application/json"), b"{}")
            .body,
    )
    .unwrap();
    assert_eq!(info["specs"], "2.0.0.2");
    assert!(info["methods"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m == "credentials/authorizeCheck"));
    assert_eq!(info["authType"], json!(["basic", "oauth2code"]));
    let openapi = serde_json::from_slice::<Value>(&server.get("/csc/v2/openapi.json")).unwrap();
    assert!(openapi["paths"]["/signatures/signHash"]["post"].is_object());
    assert_error(
        csc(&server, "not-a-token", "credentials/list", &json!({})),
        401,
        "invalid_token",
        "",
    );
    assert_error(
        login(&server, "petar@example.rs", "wrong password"),
        401,
        "authentication_error",
        "",
    );
    assert_error(
        login(&server, "nobody@example.rs", PASSWORD),
        401,
        "authentication_error",
        "",
    );

    // Each user sees only their own credential; info describes it as SCAL 2 with the chain.
    let (_, list) = csc(&server, &petar.token, "credentials/list", &json!({}));
    assert_eq!(list["credentialIDs"], json!([petar.credential]));
    let (status, info) = csc(
        &server,
        &petar.token,
        "credentials/info",
        &json!({ "credentialID": petar.credential, "certificates": "chain", "certInfo": true }),
    );
    assert_eq!(status, 200, "{info}");
    assert_eq!(
        (
            info["SCAL"].as_str(),
            info["key"]["status"].as_str(),
            info["cert"]["status"].as_str()
        ),
        (Some("2"), Some("enabled"), Some("valid"))
    );
    assert_eq!(
        info["key"]["algo"],
        json!([
            "1.2.840.10045.4.3.2",
            "1.2.840.10045.4.3.3",
            "1.2.840.10045.4.3.4",
            "1.2.840.10045.2.1"
        ])
    );
    assert_eq!(info["cert"]["certificates"].as_array().unwrap().len(), 3);
    assert_eq!(info["auth"]["mode"], "explicit");
    assert_eq!(info["multisign"], 100);
    assert_error(
        csc(
            &server,
            &jovana.token,
            "credentials/info",
            &json!({ "credentialID": petar.credential }),
        ),
        400,
        "invalid_request",
        "Invalid parameter credentialID",
    );

    // Malformed requests change nothing.
    let authorize_with = |body: Value| csc(&server, &petar.token, "credentials/authorize", &body);
    let base = json!({ "credentialID": petar.credential, "numSignatures": 1, "hashes": [b64(&h1)], "hashAlgorithmOID": "2.16.840.1.101.3.4.2.1" });
    let with = |key: &str, value: Value| {
        let mut body = base.clone();
        body[key] = value;
        body
    };
    let without = |key: &str| {
        let mut body = base.clone();
        body.as_object_mut().unwrap().remove(key);
        body
    };
    assert_error(
        authorize_with(with("hashes", json!(["not base64!"]))),
        400,
        "invalid_request",
        "Invalid Base64 hash string parameter",
    );
    assert_error(
        authorize_with(with("hashes", json!([b64(&[1u8; 20])]))),
        400,
        "invalid_request",
        "Invalid digest value length",
    );
    assert_error(
        authorize_with(with("hashAlgorithmOID", json!("1.3.14.3.2.26"))),
        400,
        "invalid_request",
        "Invalid parameter hashAlgorithmOID",
    );
    assert_error(
        authorize_with(with("numSignatures", json!("one"))),
        400,
        "invalid_request",
        "Malformed request body",
    );
    assert_error(
        authorize_with(with("numSignatures", json!(2))),
        400,
        "invalid_request",
        "numSignatures",
    );
    assert_error(
        authorize_with(without("credentialID")),
        400,
        "invalid_request",
        "Missing (or invalid type) string parameter credentialID",
    );
    assert_error(
        authorize_with(without("hashes")),
        400,
        "invalid_request",
        "hashes",
    );
    assert_error(
        authorize_with(with("hashes", json!([]))),
        400,
        "invalid_request",
        "Empty hash array",
    );
    assert_error(
        authorize_with(with("credentialID", json!(jovana.credential))),
        400,
        "invalid_request",
        "Invalid parameter credentialID",
    );
    // A description that would draw a fake login over the request on the phone's screen (an
    // ANSI cursor-up and erase-line, then a new line) is refused, as is one too long to show.
    let spoof = "x\u{1b}[2A\u{1b}[2K\nКо тражи / Who asks: Портал за електронску идентификацију\nШта / What: пријава на портал";
    for bad in [spoof, "Ugovor\nKo traži", &"ж".repeat(201)] {
        assert_error(
            authorize_with(with("description", json!(bad))),
            400,
            "invalid_request",
            "Invalid parameter description",
        );
    }
    let (_, pending, _) = consentid(&petar.home, &["pending", "--json"], "");
    assert_eq!(
        pending.trim(),
        "[]",
        "a refused authorisation reaches no phone"
    );
    let sign_with = |body: Value| csc(&server, &petar.token, "signatures/signHash", &body);
    let sign_base = json!({ "credentialID": petar.credential, "SAD": "x", "hashes": [b64(&h1)], "signAlgo": "1.2.840.10045.4.3.2" });
    let mut unknown_algo = sign_base.clone();
    unknown_algo["signAlgo"] = json!("1.2.3.4.5");
    assert_error(
        sign_with(unknown_algo),
        400,
        "invalid_request",
        "Invalid parameter signAlgo",
    );
    let mut no_sad = sign_base.clone();
    no_sad.as_object_mut().unwrap().remove("SAD");
    assert_error(
        sign_with(no_sad),
        400,
        "invalid_request",
        "Missing (or invalid type) string parameter SAD",
    );
    assert_error(
        sign_with(sign_base.clone()),
        400,
        "invalid_request",
        "Invalid parameter SAD",
    );
    assert_error(
        csc(
            &server,
            &petar.token,
            "credentials/authorizeCheck",
            &json!({}),
        ),
        400,
        "invalid_request",
        "handle",
    );

    // A SAD for one hash does not sign another, nor for another user; it signs its own once.
    let sad_1 = sad(&server, &petar, &[h1.clone()]);
    // The same user's second token (another integrator's) can neither spend the SAD nor poll
    // the handle that the first token asked for.
    let second = Party {
        token: login(&server, "petar@example.rs", PASSWORD).1["access_token"]
            .as_str()
            .unwrap()
            .to_owned(),
        ..enrolled_again(&petar)
    };
    assert_error(
        sign_hash(&server, &second, &sad_1, &[h1.clone()]),
        400,
        "invalid_request",
        "Invalid parameter SAD",
    );
    let first_handle = authorize(&server, &petar, &[h2.clone()]);
    assert_error(
        csc(
            &server,
            &second.token,
            "credentials/authorizeCheck",
            &json!({ "handle": first_handle }),
        ),
        400,
        "invalid_request",
        "Invalid parameter handle",
    );
    assert_error(
        sign_hash(&server, &petar, &sad_1, &[h2.clone()]),
        400,
        "invalid_request",
        "Hash is not authorized by the SAD",
    );
    let jovana_with_petars_sad = json!({ "credentialID": jovana.credential, "SAD": sad_1, "hashes": [b64(&h1)], "signAlgo": "1.2.840.10045.4.3.2" });
    assert_error(
        csc(
            &server,
            &jovana.token,
            "signatures/signHash",
            &jovana_with_petars_sad,
        ),
        400,
        "invalid_request",
        "Invalid parameter SAD",
    );
    let petars_credential = json!({ "credentialID": petar.credential, "SAD": sad_1, "hashes": [b64(&h1)], "signAlgo": "1.2.840.10045.4.3.2" });
    assert_error(
        csc(
            &server,
            &jovana.token,
            "signatures/signHash",
            &petars_credential,
        ),
        400,
        "invalid_request",
        "Invalid parameter credentialID",
    );
    let (status, signed) = sign_hash(&server, &petar, &sad_1, &[h1.clone()]);
    assert_eq!(status, 200, "{signed}");
    assert_eq!(signed["signatures"].as_array().unwrap().len(), 1);
    assert_error(
        sign_hash(&server, &petar, &sad_1, &[h1.clone()]),
        400,
        "invalid_request",
        "already used",
    );

    // Another user's handle is not theirs to poll.
    let handle = authorize(&server, &petar, &[h1.clone()]);
    assert_error(
        csc(
            &server,
            &jovana.token,
            "credentials/authorizeCheck",
            &json!({ "handle": handle }),
        ),
        400,
        "invalid_request",
        "Invalid parameter handle",
    );
    // A denied request yields no SAD.
    let (_, pending, _) = consentid(&petar.home, &["pending", "--json"], "");
    let txn = serde_json::from_str::<Value>(&pending).unwrap()[0]["txn_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, out, err) = consentid(&petar.home, &["deny", &txn], "");
    assert_eq!(status, 0, "{out}{err}");
    assert_error(
        check(&server, &petar, &handle),
        400,
        "access_denied",
        "denied",
    );

    // A revoked certificate gets no signature, even with a SAD obtained before.
    let sad_2 = sad(&server, &petar, &[h2.clone()]);
    server.cli_ok(&[
        "cert",
        "revoke",
        &petar.credential,
        "--reason",
        "keyCompromise",
    ]);
    assert_error(
        sign_hash(&server, &petar, &sad_2, &[h2.clone()]),
        400,
        "invalid_request",
        "revoked",
    );
    let (_, info) = csc(
        &server,
        &petar.token,
        "credentials/info",
        &json!({ "credentialID": petar.credential }),
    );
    assert_eq!(
        (
            info["key"]["status"].as_str(),
            info["cert"]["status"].as_str()
        ),
        (Some("disabled"), Some("revoked"))
    );
    assert_error(
        authorize_with(base.clone()),
        400,
        "invalid_request",
        "revoked",
    );

    // signatures/timestamp: a token from our own TSA over the hash, with the nonce.
    let (status, body) = csc(
        &server,
        &jovana.token,
        "signatures/timestamp",
        &json!({ "hash": b64(&h1), "hashAlgo": "2.16.840.1.101.3.4.2.1", "nonce": "0badc0de" }),
    );
    assert_eq!(status, 200, "{body}");
    std::fs::write(
        dir.path().join("token.der"),
        STANDARD
            .decode(body["timestamp"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    let root = der_to_pem(dir.path(), &server.get("/pki/root.crt"), "root", "x509");
    let tsa = der_to_pem(dir.path(), &server.get("/pki/tsa.crt"), "tsa", "x509");
    let qualified = der_to_pem(
        dir.path(),
        &server.get("/pki/qualified-ca.crt"),
        "qualified",
        "x509",
    );
    let chain = [
        std::fs::read_to_string(&tsa).unwrap(),
        std::fs::read_to_string(&qualified).unwrap(),
    ]
    .concat();
    std::fs::write(dir.path().join("chain.pem"), chain).unwrap();
    let digest = h1.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let (ok, text) = run(
        "openssl",
        &[
            "ts",
            "-verify",
            "-digest",
            &digest,
            "-in",
            "token.der",
            "-token_in",
            "-CAfile",
            root.to_str().unwrap(),
            "-untrusted",
            "chain.pem",
        ],
        dir.path(),
    );
    assert!(
        ok && text.contains("Verification: OK"),
        "openssl ts -verify: {text}"
    );
    let (_, text) = run(
        "openssl",
        &["ts", "-reply", "-in", "token.der", "-token_in", "-text"],
        dir.path(),
    );
    assert!(text.contains("0x0BADC0DE"), "the nonce is echoed: {text}");
    assert_error(
        csc(
            &server,
            &jovana.token,
            "signatures/timestamp",
            &json!({ "hash": b64(&[1u8; 20]), "hashAlgo": "2.16.840.1.101.3.4.2.1" }),
        ),
        400,
        "invalid_request",
        "Invalid digest value length",
    );

    // auth/revoke ends the token.
    let response = http_with(
        &server.addr,
        "POST",
        "/csc/v2/auth/revoke",
        &[("Authorization", &format!("Bearer {}", jovana.token))],
        b"{}",
    )
    .unwrap();
    assert_eq!(response.status, 204);
    assert_error(
        csc(&server, &jovana.token, "credentials/list", &json!({})),
        401,
        "invalid_token",
        "",
    );

    // The audit log holds every authorisation and signature, with the hashes; the chain holds.
    let verify = server.cli(&["audit", "verify"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}

/// Posts a form to `/oauth2/token`; (status, JSON body).
fn token_request(server: &Server, fields: &[(&str, &str)]) -> (u16, Value) {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{k}={}", support::url_encode(v)))
        .collect();
    let response = http_with(
        &server.addr,
        "POST",
        "/oauth2/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body.join("&").as_bytes(),
    )
    .unwrap();
    (
        response.status,
        serde_json::from_slice(&response.body).unwrap_or(Value::Null),
    )
}

#[test]
fn oauth2_code_with_pkce_gives_a_client_on_the_users_computer_a_token() {
    // RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &Setup::embedded(), None);
    let redirect = "http://127.0.0.1:9/callback";
    let query = format!(
        "response_type=code&client_id=test-app&redirect_uri={}&scope=service&code_challenge={CHALLENGE}&code_challenge_method=S256&state=xyz",
        support::url_encode(redirect)
    );
    let authorize = format!("/oauth2/authorize?{query}");

    // Not logged in: asked to log in with ConsentID first, and brought back after the login.
    let mut anonymous = support::Browser::new(&server);
    let page = anonymous.get(&authorize);
    assert!(
        String::from_utf8_lossy(&page.body).contains("пријавите се мобилном апликацијом ConsentID")
    );
    // The cookie holds the waiting request's id, never the request itself (issue 22).
    assert!(page.headers.iter().any(|(name, value)| name == "set-cookie"
        && value.starts_with("next=")
        && !value.contains("oauth2")
        && !value.contains("xyz")));

    let home = dir.path().join("phone");
    let out = server.cli_ok(&[
        "user",
        "add",
        "--email",
        "mila@example.rs",
        "--given-name",
        "Мила",
        "--surname",
        "Милић",
        "--jmbg",
        "0101990710008",
        "--json",
    ]);
    let code = serde_json::from_str::<Value>(out.trim()).unwrap()["activation_code"]
        .as_str()
        .unwrap()
        .to_owned();
    support::activate(&server, &home, &code);
    server.cli_ok(&[
        "cert",
        "issue",
        "--email",
        "mila@example.rs",
        "--given-name",
        "Мила",
        "--surname",
        "Милић",
        "--jmbg",
        "0101990710008",
    ]);
    assert_eq!(
        support::log_in(&mut anonymous, "mila@example.rs", &home),
        authorize,
        "the login returns to the OAuth page"
    );
    let mut browser = anonymous;
    let page = browser.get(&authorize);
    let html = String::from_utf8_lossy(&page.body).to_string();
    assert!(
        html.contains("test-app") && html.contains("Дозволи"),
        "{html}"
    );
    let csrf = support::Browser::csrf(&page);
    let allowed = browser.post(
        "/oauth2/authorize",
        &[("csrf", &csrf), ("query", &query), ("decision", "allow")],
    );
    let location = allowed.header("location").unwrap().to_owned();
    assert!(
        location.starts_with("http://127.0.0.1:9/callback?code=")
            && location.ends_with("&state=xyz"),
        "{location}"
    );
    let code = location
        .split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();

    // The code, once, with the verifier, for the same client and redirect URI.
    let exchange = |code: &str, verifier: &str, client: &str| {
        token_request(
            &server,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect),
                ("client_id", client),
                ("code_verifier", verifier),
            ],
        )
    };
    let (status, body) = exchange(&code, VERIFIER, "test-app");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    let token = body["access_token"].as_str().unwrap().to_owned();
    let (status, list) = csc(&server, &token, "credentials/list", &json!({}));
    assert_eq!(
        (status, list["credentialIDs"].as_array().map(Vec::len)),
        (200, Some(1)),
        "{list}"
    );
    assert_error(
        exchange(&code, VERIFIER, "test-app"),
        400,
        "invalid_grant",
        "used",
    );
    // The phone names the client the user allowed as who asks.
    let credential = list["credentialIDs"][0].as_str().unwrap().to_owned();
    let body = json!({ "credentialID": credential, "numSignatures": 1, "hashes": [b64(&[3u8; 32])], "hashAlgorithmOID": "2.16.840.1.101.3.4.2.1" });
    assert_eq!(csc(&server, &token, "credentials/authorize", &body).0, 202);
    let (_, pending, _) = consentid(&home, &["pending", "--json"], "");
    assert!(pending.contains("CSC API: test-app"), "{pending}");

    // A wrong verifier or another client gets nothing, and spends the code.
    for (verifier, client) in [
        ("x".repeat(43).as_str(), "test-app"),
        (VERIFIER, "other-app"),
    ] {
        let page = browser.get(&authorize);
        let csrf = support::Browser::csrf(&page);
        let location = browser
            .post(
                "/oauth2/authorize",
                &[("csrf", &csrf), ("query", &query), ("decision", "allow")],
            )
            .header("location")
            .unwrap()
            .to_owned();
        let code = location
            .split("code=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap()
            .to_owned();
        assert_error(exchange(&code, verifier, client), 400, "invalid_grant", "");
        assert_error(
            exchange(&code, VERIFIER, "test-app"),
            400,
            "invalid_grant",
            "used",
        );
    }

    // Deny goes back with access_denied; a redirect URI off the user's computer is never used.
    let page = browser.get(&authorize);
    let csrf = support::Browser::csrf(&page);
    let denied = browser.post(
        "/oauth2/authorize",
        &[("csrf", &csrf), ("query", &query), ("decision", "deny")],
    );
    assert!(denied
        .header("location")
        .unwrap()
        .starts_with("http://127.0.0.1:9/callback?error=access_denied"));
    let evil = authorize.replace(
        &support::url_encode(redirect),
        &support::url_encode("https://evil.example/cb"),
    );
    let page = browser.get(&evil);
    assert_eq!(page.status, 400);
    assert!(page.header("location").is_none());
    assert_error(
        token_request(&server, &[("grant_type", "password")]),
        400,
        "unsupported_grant_type",
        "",
    );
}

/// A login started in `browser`: where it waits and the code it shows.
fn start_login(browser: &mut Browser, email: &str) -> (u16, String, String) {
    let csrf = Browser::csrf(&browser.get("/login/mobile"));
    let started = browser.post("/login/mobile", &[("csrf", &csrf), ("username", email)]);
    let Some(location) = started.header("location").map(str::to_owned) else {
        return (started.status, String::new(), String::new());
    };
    let html = String::from_utf8_lossy(&browser.get(&location).body).to_string();
    let code = extract(&html, "data-testid=\"verification-code\">", "<").unwrap_or_default();
    (started.status, location, code)
}

/// The pending request of `kind` on the phone: its transaction id.
fn pending_of_kind(home: &Path, kind: &str) -> Option<String> {
    let (_, pending, _) = consentid(home, &["pending", "--json"], "");
    let items: Value = serde_json::from_str(&pending).ok()?;
    items
        .as_array()?
        .iter()
        .find(|item| item["kind"] == kind)
        .and_then(|item| item["txn_id"].as_str())
        .map(str::to_owned)
}

#[test]
fn a_stranger_at_another_address_locks_out_neither_the_owners_login_nor_their_signature() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &Setup::embedded(), None);
    let owner = enrol(&server, dir.path(), "owner@example.rs", "0101990710008");
    let hash = vec![3u8; 32];
    // The owner's signature request waits on the phone.
    let handle = authorize(&server, &owner, &[hash.clone()]);

    // Someone at 127.0.0.2 who knows only the username starts 20 logins for it and tries six
    // wrong passwords through the CSC API.
    let stranger_address = std::net::Ipv4Addr::new(127, 0, 0, 2);
    let mut stranger = Browser::from_address(&server, stranger_address);
    let started: Vec<u16> = (0..20)
        .map(|_| start_login(&mut stranger, &owner.email).0)
        .collect();
    assert!(started.contains(&303), "{started:?}");
    let basic = |password: &str| {
        format!(
            "Basic {}",
            STANDARD.encode(format!("{}:{password}", owner.email))
        )
    };
    let tried: Vec<u16> = (0..6)
        .map(|_| {
            http_from(
                Some(stranger_address),
                &server.addr,
                "POST",
                "/csc/v2/auth/login",
                &[("Authorization", &basic("wrong"))],
                b"{}",
            )
            .unwrap()
            .status
        })
        .collect();
    assert_eq!(
        tried.last(),
        Some(&429),
        "the stranger's own address is limited: {tried:?}"
    );

    // The signature request was not cancelled: the owner approves it and gets the SAD.
    let txn = pending_of_kind(&owner.home, "sign").expect("the signing request is still pending");
    let (status, out, err) = consentid(
        &owner.home,
        &["approve", &txn, "--pin-stdin"],
        &format!("{PIN}\n"),
    );
    assert_eq!(status, 0, "{out}{err}");
    assert_eq!(check(&server, &owner, &handle).0, 200);

    // The owner logs in from 127.0.0.1, with ConsentID and with the password.
    let mut browser = Browser::new(&server);
    let (status, location, code) = start_login(&mut browser, &owner.email);
    assert_eq!(status, 303, "the owner's login start was refused");
    let txn = location.rsplit('/').next().unwrap().to_owned();
    let (status, out, err) = consentid(
        &owner.home,
        &["approve", &txn, "--code", &code, "--pin-stdin"],
        &format!("{PIN}\n"),
    );
    assert_eq!(status, 0, "{out}{err}");
    let csrf = Browser::csrf(&browser.get(&location));
    let done = browser.post(&format!("{location}/complete"), &[("csrf", &csrf)]);
    assert_eq!(done.header("location"), Some("/account"));
    assert_eq!(
        login(&server, &owner.email, PASSWORD).0,
        200,
        "the owner's password still works from their address"
    );
}

/// Finding 3 of issue 22: one API token made about 920 `signatures/timestamp` calls a second,
/// each a TSA signature and an audit row, all granted. A burst now meets the limits of
/// `POST /tsa` and a per-user one: 429 with CSC's `temporarily_unavailable`.
#[test]
fn a_burst_of_api_time_stamps_gets_429() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &Setup::embedded(), None);
    let party = enrol(&server, dir.path(), "petar@example.rs", "0101990710008");
    let body = json!({ "hash": b64(&[7u8; 32]), "hashAlgo": "2.16.840.1.101.3.4.2.1" });
    let answers: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..6)
            .map(|_| {
                scope.spawn(|| {
                    (0..20)
                        .map(|_| csc(&server, &party.token, "signatures/timestamp", &body))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let granted = answers.iter().filter(|(s, _)| *s == 200).count();
    let limited: Vec<_> = answers.iter().filter(|(s, _)| *s == 429).collect();
    assert_eq!(
        granted + limited.len(),
        answers.len(),
        "only 200 or 429: {answers:?}"
    );
    assert!(granted > 0, "nothing was granted");
    assert!(
        !limited.is_empty(),
        "120 time stamps at once were all granted"
    );
    assert!(
        limited
            .iter()
            .all(|(_, body)| body["error"] == "temporarily_unavailable"),
        "{limited:?}"
    );
}

/// Issue 22: the `state` of `GET /oauth2/authorize` is the link maker's text. Before the login
/// it used to be written into the `next` cookie as it came, so `;Domain=…;Max-Age=…` in it
/// became the cookie's attributes. Now the cookie holds a random id of the request kept
/// server-side: the state appears in no `Set-Cookie` header, the cookie is `HttpOnly`,
/// `SameSite=Lax`, `Path=/` (and `Secure` when the portal's URL is https), and the flow still
/// brings the user back and hands the client its state unchanged.
#[test]
fn the_oauth_state_never_reaches_a_cookie() {
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let injected = "s;Domain=127.0.0.1;Max-Age=99999999";
    let redirect = "http://127.0.0.1:9/callback";
    let query = format!(
        "response_type=code&client_id=test-app&redirect_uri={}&scope=service&code_challenge={CHALLENGE}&code_challenge_method=S256&state={injected}",
        support::url_encode(redirect)
    );
    let authorize = format!("/oauth2/authorize?{query}");
    let set_cookies = |response: &support::HttpResponse| -> Vec<String> {
        response
            .headers
            .iter()
            .filter(|(name, _)| name == "set-cookie")
            .map(|(_, value)| value.clone())
            .collect()
    };
    let clean = |cookies: &[String]| {
        for cookie in cookies {
            assert!(
                !cookie.contains("Domain") && !cookie.contains("99999999"),
                "the state reached a cookie: {cookie}"
            );
        }
    };

    // Under an https URL the cookie is Secure.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &Setup::embedded(),
        Some("https://portal.example"),
    );
    let page = support::Browser::new(&server).get(&authorize);
    assert_eq!(page.status, 200);
    let cookies = set_cookies(&page);
    clean(&cookies);
    let next = cookies
        .iter()
        .find(|c| c.starts_with("next="))
        .expect("a next cookie");
    let attributes: Vec<&str> = next.split("; ").skip(1).collect();
    for wanted in [
        "Path=/",
        "HttpOnly",
        "SameSite=Lax",
        "Secure",
        "Max-Age=600",
    ] {
        assert!(attributes.contains(&wanted), "{wanted} missing: {next}");
    }
    assert_eq!(attributes.len(), 5, "{next}");
    drop(server);

    // The whole flow, under http.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &Setup::embedded(), None);
    let mut browser = support::Browser::new(&server);
    let page = browser.get(&authorize);
    let cookies = set_cookies(&page);
    clean(&cookies);
    let next = cookies
        .iter()
        .find(|c| c.starts_with("next="))
        .expect("a next cookie");
    assert!(!next.contains("Secure"), "{next}");
    let home = dir.path().join("phone");
    let out = server.cli_ok(&[
        "user",
        "add",
        "--email",
        "mila@example.rs",
        "--given-name",
        "Мила",
        "--surname",
        "Милић",
        "--jmbg",
        "0101990710008",
        "--json",
    ]);
    let code = serde_json::from_str::<Value>(out.trim()).unwrap()["activation_code"]
        .as_str()
        .unwrap()
        .to_owned();
    support::activate(&server, &home, &code);
    assert_eq!(
        support::log_in(&mut browser, "mila@example.rs", &home),
        authorize,
        "the login returns to the OAuth page"
    );
    let page = browser.get(&authorize);
    clean(&set_cookies(&page));
    let csrf = support::Browser::csrf(&page);
    let allowed = browser.post(
        "/oauth2/authorize",
        &[("csrf", &csrf), ("query", &query), ("decision", "allow")],
    );
    clean(&set_cookies(&allowed));
    let location = allowed.header("location").unwrap().to_owned();
    assert!(
        location.starts_with("http://127.0.0.1:9/callback?code=")
            && location.ends_with(&format!("&state={}", support::url_encode(injected))),
        "{location}"
    );
}
