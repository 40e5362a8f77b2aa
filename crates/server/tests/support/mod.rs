//! Test support: boots the real `eidportal` binary on 127.0.0.1:0 with its own data folder,
//! waits for readiness (never a fixed sleep), runs officer commands against the same data,
//! and speaks just enough HTTP/1.1 to fetch and post.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A connection to the server: plain TCP or TLS.
pub trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// A TLS client that trusts only the CA certificate (PEM) in `ca`.
pub fn tls_client(ca: &Path) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    Arc::new(config)
}

/// Connects to `addr`, over TLS (server name `localhost`) when `tls` is given.
pub fn connect(
    addr: &str,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> std::io::Result<Box<dyn Stream>> {
    connect_from(addr, None, tls)
}

/// [`connect`] from the loopback address `source` when given (e.g. 127.0.0.2).
pub fn connect_from(
    addr: &str,
    source: Option<std::net::Ipv4Addr>,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> std::io::Result<Box<dyn Stream>> {
    let tcp = tcp_from(addr, source)?;
    tcp.set_read_timeout(Some(Duration::from_secs(60)))?;
    match tls {
        None => Ok(Box::new(tcp)),
        Some(config) => {
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let connection = rustls::ClientConnection::new(config.clone(), name)
                .map_err(std::io::Error::other)?;
            Ok(Box::new(rustls::StreamOwned::new(connection, tcp)))
        }
    }
}

/// How a test server is configured.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Extra environment for the server and the commands.
    pub env: Vec<(String, String)>,
    /// A name for messages.
    pub name: String,
}

impl Setup {
    /// SQLite and software keys: the embedded default.
    pub fn embedded() -> Self {
        Self {
            env: Vec::new(),
            name: "sqlite+software".into(),
        }
    }

    /// The setups a behaviour must hold on: the default, RSA-3072 keys, PostgreSQL, and
    /// SoftHSM2 when configured (required under `EIDPORTAL_TEST_REQUIRE_ALL`).
    pub async fn all() -> Vec<Self> {
        let mut out = vec![
            Self::embedded(),
            Self {
                env: vec![("EIDPORTAL_KEY_ALGORITHM".into(), "rsa-3072".into())],
                name: "sqlite+software+rsa".into(),
            },
        ];
        if let Some(url) = store::test_support::fresh_postgres().await {
            out.push(Self {
                env: vec![("EIDPORTAL_DATABASE_URL".into(), url)],
                name: "postgres+software".into(),
            });
        }
        if let Some(env) = pkcs11_env() {
            out.push(Self {
                env,
                name: "sqlite+pkcs11".into(),
            });
        }
        out
    }
}

/// `EIDPORTAL_PKCS11_*` for the test token, or `None` when not configured.
pub fn pkcs11_env() -> Option<Vec<(String, String)>> {
    let get = |n: &str| std::env::var(format!("EIDPORTAL_TEST_PKCS11_{n}")).ok();
    // This test process's own copy of the token (SOFTHSM2_CONF, inherited by the servers).
    hsm::test_support::private_token().expect("a private copy of the test token");
    match (get("MODULE"), get("TOKEN"), get("PIN")) {
        (Some(module), Some(token), Some(pin)) => Some(vec![
            ("EIDPORTAL_PKCS11_MODULE".into(), module),
            ("EIDPORTAL_PKCS11_TOKEN".into(), token),
            ("EIDPORTAL_PKCS11_PIN".into(), pin),
        ]),
        _ if std::env::var_os("EIDPORTAL_TEST_REQUIRE_ALL").is_some() => {
            panic!("EIDPORTAL_TEST_PKCS11_* are not set but EIDPORTAL_TEST_REQUIRE_ALL is: run scripts/test")
        }
        _ => {
            eprintln!("note: PKCS#11 case skipped (EIDPORTAL_TEST_PKCS11_* not set)");
            None
        }
    }
}

/// The Python with pkilint and cryptography, or `None` (a failure under REQUIRE_ALL).
pub fn python() -> Option<PathBuf> {
    match std::env::var("EIDPORTAL_TEST_PYTHON") {
        Ok(p) => Some(PathBuf::from(p)),
        Err(_) if std::env::var_os("EIDPORTAL_TEST_REQUIRE_ALL").is_some() => {
            panic!("EIDPORTAL_TEST_PYTHON is not set but EIDPORTAL_TEST_REQUIRE_ALL is: run scripts/test")
        }
        Err(_) => {
            eprintln!("note: Python checks skipped (EIDPORTAL_TEST_PYTHON not set)");
            None
        }
    }
}

/// Node, for the relying party built on openid-client (scripts/e2e/openid-client), whose
/// packages scripts/test installs.
pub fn node() -> Option<PathBuf> {
    match std::env::var("EIDPORTAL_TEST_NODE") {
        Ok(p) => Some(PathBuf::from(p)),
        Err(_) if std::env::var_os("EIDPORTAL_TEST_REQUIRE_ALL").is_some() => {
            panic!("EIDPORTAL_TEST_NODE is not set but EIDPORTAL_TEST_REQUIRE_ALL is: run scripts/test")
        }
        Err(_) => {
            eprintln!("note: openid-client checks skipped (EIDPORTAL_TEST_NODE not set)");
            None
        }
    }
}

/// A running server.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// `127.0.0.1:PORT`
    pub addr: String,
    /// The ConsentID web app's origin, `http://127.0.0.1:PORT` (another port).
    pub app_url: String,
    /// The data folder.
    pub data: PathBuf,
    /// The setup it runs with.
    pub setup: Setup,
    public_url: String,
    /// The TLS client when the server speaks HTTPS.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_eidportal")
}

impl Server {
    /// Starts `eidportal serve` on a free port; the public URL is the listen address unless
    /// `public_url` is given.
    pub fn start(data: &Path, setup: &Setup, public_url: Option<&str>) -> Self {
        Self::start_tls(data, setup, public_url, None)
    }

    /// Like [`Server::start`]; with `tls`, the setup's environment names a certificate
    /// (`EIDPORTAL_TLS_*`) and the tests talk to it through this client.
    pub fn start_tls(
        data: &Path,
        setup: &Setup,
        public_url: Option<&str>,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Self {
        let mut command = Command::new(binary());
        command
            .arg("--data")
            .arg(data)
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--app-listen")
            .arg("127.0.0.1:0");
        command.envs(setup.env.iter().map(|(k, v)| (k, v)));
        if let Some(url) = public_url {
            command.env("EIDPORTAL_PUBLIC_URL", url);
        }
        command.stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = command.spawn().expect("start eidportal serve");
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let (mut url, mut app_url) = (None, None);
        let (url, app_url) = loop {
            if let (Some(url), Some(app_url)) = (&url, &app_url) {
                break (String::clone(url), String::clone(app_url));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match receiver.recv_timeout(left) {
                Ok(line) => {
                    if let Some(found) = line.strip_prefix("eidportal listening on ") {
                        url = Some(found.trim().to_owned());
                    }
                    if let Some(found) = line.strip_prefix("eidportal app listening on ") {
                        app_url = Some(found.trim().to_owned());
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "eidportal serve did not report its address ({})",
                        setup.name
                    );
                }
            }
        };
        let addr = url
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .to_owned();
        let server = Self {
            tls,
            child,
            public_url: public_url.map(str::to_owned).unwrap_or_else(|| url.clone()),
            url,
            addr,
            app_url,
            data: data.to_owned(),
            setup: setup.clone(),
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(response) = self.try_request("GET", "/healthz", None, &[]) {
                if response.status == 200 {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("eidportal did not become ready");
    }

    /// Stops the server (SIGKILL).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Runs `eidportal --data <data> ARGS` with the same settings.
    pub fn cli(&self, args: &[&str]) -> Output {
        cli(&self.data, &self.setup, &self.public_url, args)
    }

    /// Like [`Server::cli`], but fails the test unless the command succeeds; returns stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let output = self.cli(args);
        assert!(
            output.status.success(),
            "eidportal {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Like [`Server::cli`], with `stdin` on standard input.
    pub fn cli_input(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = Command::new(binary())
            .arg("--data")
            .arg(&self.data)
            .args(args)
            .envs(self.setup.env.iter().map(|(k, v)| (k, v)))
            .env("EIDPORTAL_PUBLIC_URL", &self.public_url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run eidportal");
        let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
        child.wait_with_output().unwrap()
    }

    /// An HTTP request.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> HttpResponse {
        self.try_request(method, path, content_type, body)
            .expect("HTTP request")
    }

    fn try_request(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> std::io::Result<HttpResponse> {
        let headers: Vec<(&str, &str)> = content_type
            .map(|ct| ("Content-Type", ct))
            .into_iter()
            .collect();
        http_via(&self.addr, self.tls.as_ref(), method, path, &headers, body)
    }

    /// The process id (to send it signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `limit` for the process to end; its exit status.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// GET, expecting 200; returns the body.
    pub fn get(&self, path: &str) -> Vec<u8> {
        let response = self.request("GET", path, None, &[]);
        assert_eq!(response.status, 200, "GET {path}");
        response.body
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs an officer command against a data folder.
pub fn cli(data: &Path, setup: &Setup, public_url: &str, args: &[&str]) -> Output {
    Command::new(binary())
        .arg("--data")
        .arg(data)
        .args(args)
        .envs(setup.env.iter().map(|(k, v)| (k, v)))
        .env("EIDPORTAL_PUBLIC_URL", public_url)
        .output()
        .expect("run eidportal")
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request with `Connection: close`.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> std::io::Result<HttpResponse> {
    let headers: Vec<(&str, &str)> = content_type
        .map(|ct| ("Content-Type", ct))
        .into_iter()
        .collect();
    http_with(addr, method, path, &headers, body)
}

/// A connection to `addr`, from the loopback address `source` when given (e.g. 127.0.0.2, so
/// that the server sees another client address).
pub fn tcp_from(addr: &str, source: Option<std::net::Ipv4Addr>) -> std::io::Result<TcpStream> {
    let Some(source) = source else {
        return TcpStream::connect(addr);
    };
    let target: std::net::SocketAddr =
        addr.parse().map_err(|_| std::io::ErrorKind::InvalidInput)?;
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&std::net::SocketAddr::from((source, 0)).into())?;
    socket.connect(&target.into())?;
    Ok(socket.into())
}

/// One HTTP/1.1 request with `Connection: close` and extra headers.
pub fn http_with(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<HttpResponse> {
    http_via(addr, None, method, path, headers, body)
}

/// [`http_with`] from the loopback address `source`.
pub fn http_from(
    source: Option<std::net::Ipv4Addr>,
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<HttpResponse> {
    http_request(addr, source, None, method, path, headers, body)
}

/// One HTTP/1.1 request with `Connection: close`, over TLS when `tls` is given.
pub fn http_via(
    addr: &str,
    tls: Option<&Arc<rustls::ClientConfig>>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<HttpResponse> {
    http_request(addr, None, tls, method, path, headers, body)
}

fn http_request(
    addr: &str,
    source: Option<std::net::Ipv4Addr>,
    tls: Option<&Arc<rustls::ClientConfig>>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<HttpResponse> {
    let mut stream = connect_from(addr, source, tls)?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    // A TLS peer that closes without close_notify still sent a whole answer.
    if let Err(error) = stream.read_to_end(&mut raw) {
        if raw.is_empty() {
            return Err(error);
        }
    }
    parse_response(&raw).ok_or_else(|| std::io::ErrorKind::InvalidData.into())
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&data[..end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[end + 2 + size + 2..];
    }
}

/// The `consentid` binary next to `eidportal` (the workspace builds both).
pub fn consentid_binary() -> PathBuf {
    let path = Path::new(binary()).with_file_name("consentid");
    assert!(
        path.exists(),
        "{} is missing: build the workspace (cargo build -p consentid)",
        path.display()
    );
    path
}

/// Runs `consentid --home HOME ARGS` with `stdin`; returns (exit code, stdout, stderr).
pub fn consentid(home: &Path, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(consentid_binary())
        .arg("--home")
        .arg(home)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run consentid");
    // The app may exit before reading its input (e.g. a refused activation): a broken pipe here
    // is not the test's concern; the exit status is.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let output = child.wait_with_output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

/// A browser without JavaScript: keeps cookies, reads CSRF tokens, posts forms.
pub struct Browser {
    addr: String,
    cookies: Vec<(String, String)>,
    tls: Option<Arc<rustls::ClientConfig>>,
    source: Option<std::net::Ipv4Addr>,
}

impl Browser {
    /// A browser talking to `server`.
    pub fn new(server: &Server) -> Self {
        Self {
            addr: server.addr.clone(),
            cookies: Vec::new(),
            tls: server.tls.clone(),
            source: None,
        }
    }

    /// A browser talking to `server` from the loopback address `source` (e.g. 127.0.0.2).
    pub fn from_address(server: &Server, source: std::net::Ipv4Addr) -> Self {
        Self {
            addr: server.addr.clone(),
            cookies: Vec::new(),
            tls: server.tls.clone(),
            source: Some(source),
        }
    }

    /// A browser talking to another address.
    pub fn at(addr: &str) -> Self {
        Self {
            addr: addr.to_owned(),
            cookies: Vec::new(),
            tls: None,
            source: None,
        }
    }

    fn request(&mut self, method: &str, path: &str, form: Option<&[(&str, &str)]>) -> HttpResponse {
        let body = form
            .map(|pairs| {
                pairs
                    .iter()
                    .map(|(k, v)| format!("{k}={}", url_encode(v)))
                    .collect::<Vec<_>>()
                    .join("&")
            })
            .unwrap_or_default();
        let content_type = form.map(|_| "application/x-www-form-urlencoded".to_owned());
        self.send(method, path, content_type.as_deref(), body.as_bytes())
    }

    /// The `Cookie` header value this browser sends.
    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The address it talks to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// POST a `multipart/form-data` form: text fields, then files (field, file name, bytes).
    pub fn post_multipart(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
        files: &[(&str, &str, &[u8])],
    ) -> HttpResponse {
        let boundary = "----eidportal-test-boundary-7MA4YWxkTrZu0gW";
        let mut body = Vec::new();
        for (name, value) in fields {
            body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes());
        }
        for (name, filename, content) in files {
            body.extend_from_slice(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: application/pdf\r\n\r\n")
                    .as_bytes(),
            );
            body.extend_from_slice(content);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        self.send(
            "POST",
            path,
            Some(&format!("multipart/form-data; boundary={boundary}")),
            &body,
        )
    }

    fn send(
        &mut self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> HttpResponse {
        let mut stream = connect_from(&self.addr, self.source, self.tls.as_ref()).unwrap();
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0\r\nContent-Length: {}\r\n", self.addr, body.len());
        if !cookie.is_empty() {
            head.push_str(&format!("Cookie: {cookie}\r\n"));
        }
        if let Some(content_type) = content_type {
            head.push_str(&format!("Content-Type: {content_type}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        // A server may answer and close before reading an oversized body: keep its answer.
        let _ = stream.write_all(body);
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw);
        let response = parse_response(&raw).expect("an HTTP response");
        for (name, value) in &response.headers {
            if name == "set-cookie" {
                if let Some((k, v)) = value.split(';').next().and_then(|p| p.split_once('=')) {
                    self.cookies.retain(|(n, _)| n != k);
                    self.cookies.push((k.to_owned(), v.to_owned()));
                }
            }
        }
        response
    }

    /// GET.
    pub fn get(&mut self, path: &str) -> HttpResponse {
        self.request("GET", path, None)
    }

    /// POST a form.
    pub fn post(&mut self, path: &str, form: &[(&str, &str)]) -> HttpResponse {
        self.request("POST", path, Some(form))
    }

    /// The CSRF token in a page.
    pub fn csrf(page: &HttpResponse) -> String {
        extract(
            &String::from_utf8_lossy(&page.body),
            "name=\"csrf\" value=\"",
            "\"",
        )
        .expect("a CSRF field")
    }
}

/// Where a completed login sends the browser: a redirect to the account, or the page that goes
/// on to a service's authorization request by itself (its refresh). Empty for neither.
pub fn onward(completed: &HttpResponse) -> String {
    match completed.header("location") {
        Some(location) => location.to_owned(),
        None => extract(
            &String::from_utf8_lossy(&completed.body),
            "http-equiv=\"refresh\" content=\"0; url=",
            "\"",
        )
        // (A URL has no `<>"'` left; askama writes its `&` as `&#38;`.)
        .map(|url| url.replace("&#38;", "&"))
        .unwrap_or_default(),
    }
}

/// The text between `start` and `end` in `text`.
pub fn extract(text: &str, start: &str, end: &str) -> Option<String> {
    let from = text.find(start)? + start.len();
    let to = text[from..].find(end)? + from;
    Some(text[from..to].to_owned())
}

pub fn url_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn parse_response(raw: &[u8]) -> Option<HttpResponse> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Some(HttpResponse {
        status,
        headers,
        body,
    })
}

/// Runs a command, returning (success, stdout+stderr).
pub fn run(program: &str, args: &[&str], dir: &Path) -> (bool, String) {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    let mut text = String::from_utf8_lossy(&output.stdout).to_string();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// A qualified-CA certificate's OCSP answer from `openssl ocsp`, its signature checked against
/// the root: writes `leaf.pem` (the certificate `serial`), `root.pem` and `qualified.pem` in
/// `dir`, and returns openssl's text (`leaf.pem: good`, `leaf.pem: revoked`, ...).
pub fn qualified_ocsp_status(server: &Server, dir: &Path, serial: &str) -> String {
    std::fs::write(
        dir.join("leaf.pem"),
        server.cli_ok(&["cert", "pem", serial]),
    )
    .unwrap();
    let root = der_to_pem(dir, &server.get("/pki/root.crt"), "root", "x509");
    let ca = der_to_pem(
        dir,
        &server.get("/pki/qualified-ca.crt"),
        "qualified",
        "x509",
    );
    let url = format!("{}/ocsp", server.url);
    let (ok, text) = run(
        "openssl",
        &[
            "ocsp",
            "-issuer",
            ca.to_str().unwrap(),
            "-cert",
            "leaf.pem",
            "-url",
            &url,
            "-CAfile",
            root.to_str().unwrap(),
        ],
        dir,
    );
    assert!(ok, "{text}");
    text
}

/// Writes DER as PEM through openssl.
pub fn der_to_pem(dir: &Path, der: &[u8], name: &str, kind: &str) -> PathBuf {
    let der_path = dir.join(format!("{name}.der"));
    std::fs::write(&der_path, der).unwrap();
    let pem_path = dir.join(format!("{name}.pem"));
    let (ok, text) = run(
        "openssl",
        &[
            kind,
            "-inform",
            "DER",
            "-in",
            der_path.to_str().unwrap(),
            "-out",
            pem_path.to_str().unwrap(),
        ],
        dir,
    );
    assert!(ok, "openssl {kind} conversion: {text}");
    pem_path
}

/// The PIN the tests' ConsentID apps use.
pub const PIN: &str = "246810";

/// Activates the ConsentID command-line app at `home` on `server` with the activation `code`,
/// choosing the PIN [`PIN`].
pub fn activate(server: &Server, home: &Path, code: &str) {
    let (status, out, err) = consentid(
        home,
        &[
            "activate",
            "--server",
            &server.url,
            "--code",
            code,
            "--pin-stdin",
        ],
        &format!("{PIN}\n"),
    );
    assert_eq!(status, 0, "{out}{err}");
}

/// Enrols Петар Петровић as `email` and activates ConsentID for him in `home`.
pub fn enrolled(server: &Server, email: &str, home: &Path) {
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
    let code = serde_json::from_str::<serde_json::Value>(out.trim()).unwrap()["activation_code"]
        .as_str()
        .unwrap()
        .to_owned();
    activate(server, home, &code);
}

/// Enrols, activates ConsentID in `home` and logs a browser in with it.
pub fn logged_in(server: &Server, email: &str, home: &Path) -> Browser {
    enrolled(server, email, home);
    let mut browser = Browser::new(server);
    assert_eq!(log_in(&mut browser, email, home), "/account");
    browser
}

/// Logs `browser` in with the ConsentID app in `home` approving; where the login sends it.
/// Posts a cloud-certificate action from the page `from` and, when the portal asks the phone to
/// approve it (a redirect to its operation page), approves it in the ConsentID app at `home`
/// and follows the operation page to its outcome. Returns (status, body, location) of the
/// outcome; a refusal comes back as the post's own answer.
pub fn approved_action(
    browser: &mut Browser,
    home: &Path,
    from: &str,
    action: &str,
) -> (u16, String, Option<String>) {
    let csrf = Browser::csrf(&browser.get(from));
    let mut response = browser.post(action, &[("csrf", &csrf)]);
    if let Some(operation) = response
        .header("location")
        .filter(|l| l.starts_with("/services/cloud-certificate/operations/"))
        .map(str::to_owned)
    {
        let (status, out, err) = consentid(
            home,
            &["approve", "--next", "--wait", "10", "--pin-stdin"],
            &format!("{PIN}\n"),
        );
        assert_eq!(status, 0, "{out}{err}");
        response = browser.get(&operation);
    }
    (
        response.status,
        String::from_utf8_lossy(&response.body).to_string(),
        response.header("location").map(str::to_owned),
    )
}

pub fn log_in(browser: &mut Browser, email: &str, home: &Path) -> String {
    log_in_seen(browser, email, home).0
}

/// [`log_in`], also giving what the ConsentID app at `home` showed of the request.
pub fn log_in_seen(browser: &mut Browser, email: &str, home: &Path) -> (String, String) {
    let csrf = Browser::csrf(&browser.get("/login/mobile"));
    let started = browser.post("/login/mobile", &[("csrf", &csrf), ("username", email)]);
    let location = started.header("location").unwrap().to_owned();
    let html = String::from_utf8_lossy(&browser.get(&location).body).to_string();
    let vc = extract(&html, "data-testid=\"verification-code\">", "<").unwrap();
    let (status, out, err) = consentid(
        home,
        &[
            "approve",
            "--next",
            "--wait",
            "10",
            "--code",
            &vc,
            "--pin-stdin",
        ],
        &format!("{PIN}\n"),
    );
    assert_eq!(status, 0, "{out}{err}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&browser.get(&format!("{location}/status")).body)
        .contains("approved")
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let csrf = Browser::csrf(&browser.get(&location));
    let completed = browser.post(&format!("{location}/complete"), &[("csrf", &csrf)]);
    (onward(&completed), out)
}
