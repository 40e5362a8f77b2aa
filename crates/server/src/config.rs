//! Settings of the `eidportal` binary: defaults, then a TOML file (`--config`), then
//! `EIDPORTAL_*` environment variables, then flags (DESIGN §2). A bad setting stops the start
//! with one line naming it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use pki::KeyAlgorithm;

/// Where keys live.
#[derive(Clone, PartialEq, Eq)]
pub enum KeyBackendConfig {
    /// Sealed under `<data>/master.key`.
    Software,
    /// In a PKCS#11 token.
    Pkcs11 {
        /// The module (shared library).
        module: PathBuf,
        /// The token label.
        token: String,
        /// The user PIN.
        pin: zeroize::Zeroizing<String>,
    },
}

impl std::fmt::Debug for KeyBackendConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Software => f.write_str("Software"),
            Self::Pkcs11 { module, token, .. } => {
                write!(
                    f,
                    "Pkcs11 {{ module: {}, token: {token}, pin: [redacted] }}",
                    module.display()
                )
            }
        }
    }
}

/// The resolved settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The data folder.
    pub data: PathBuf,
    /// Listen address of `serve`.
    pub listen: String,
    /// The public base URL; `None` means `http://<listen address>`.
    pub public_url: Option<String>,
    /// Listen address of the ConsentID web app's own origin.
    pub app_listen: String,
    /// The web app's public base URL; `None` means `http://<app listen address>`.
    pub app_public_url: Option<String>,
    /// Database URL.
    pub database_url: String,
    /// How the store holds its database connections.
    pub database_pool: store::PoolSettings,
    /// The SMTP relay (from the URL, login and CA file); `None` writes mail to
    /// `<data>/outbox/`.
    pub smtp: Option<authority::ra::mail::SmtpRelay>,
    /// When failed mail deliveries are tried again.
    pub mail_retry: authority::ra::mail::RetryPolicy,
    /// Key backend.
    pub keys: KeyBackendConfig,
    /// Algorithm of new keys.
    pub key_algorithm: KeyAlgorithm,
    /// Cloud certificate validity in days; `None` is 5 calendar years.
    pub cloud_cert_validity_days: Option<i64>,
    /// Renewal window before expiry, days.
    pub renewal_window_days: i64,
    /// No rate limits (load benchmarks only).
    pub dangerous_disable_rate_limits: bool,
    /// The VAPID `sub` of Web Push (a mailto: or https: URL); `None`: the public URL.
    pub push_subject: Option<String>,
    /// Accepts http:// Web Push endpoints on loopback (tests' local push services only).
    pub dangerous_push_allow_http_loopback: bool,
    /// Pushes also to loopback, private, link-local and unique-local addresses (tests' local
    /// push services only): otherwise an endpoint's host must resolve to public addresses.
    pub dangerous_push_allow_private_endpoints: bool,
    /// PEM certificate chain and key: `serve` speaks HTTPS. `None`: plain HTTP.
    pub tls: Option<crate::transport::TlsFiles>,
    /// Connections open at once.
    pub max_connections: usize,
    /// Seconds for a request's headers to arrive (also the idle keep-alive limit).
    pub header_read_timeout_secs: u64,
    /// Connections one client address (an IPv6 /64) may hold open; trusted proxies are exempt.
    pub max_connections_per_address: usize,
    /// Seconds from a request's first byte to the end of its body.
    pub request_read_timeout_secs: u64,
    /// The least average rate of a request body, bytes per second, after the grace; 0: none.
    pub min_body_bytes_per_sec: u64,
    /// Seconds a request body may come slower than `min_body_bytes_per_sec` at its start.
    pub min_body_rate_grace_secs: u64,
    /// Proxies whose forwarding headers name the client.
    pub trusted_proxies: crate::client_address::TrustedProxies,
    /// The trust service provider (`[provider]`); what is not set keeps the seed's Office.
    pub provider: ProviderConfig,
    /// A MaxMind DB (GeoIP2 or GeoLite2 City or Country) that `serve` reads at start: the
    /// phone's warning about a login from another network then names the browser's city and
    /// country. `None`: the address alone.
    pub geoip_database: Option<PathBuf>,
}

/// The trust service provider as the settings file's `[provider]` table gives it (DESIGN §7:
/// its identity is configuration). `None`: the default, the seed's Office.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderConfig {
    /// Legal name: the agreement's party and the CA certificates' organizationName.
    pub name: Option<String>,
    /// Address, in the agreement.
    pub address: Option<String>,
    /// Tax id (ПИБ): in the agreement, and `VATRS-<tax id>` is the CAs' organizationIdentifier.
    pub tax_id: Option<String>,
    /// Registration number (МБ), in the agreement.
    pub registration_number: Option<String>,
    /// Who signs the agreement for the provider (the default names nobody).
    pub representative: Option<String>,
    /// Policy OID of qualified cloud signing certificates.
    pub qualified_policy_oid: Option<const_oid::ObjectIdentifier>,
    /// Policy OID of ConsentID device certificates.
    pub device_policy_oid: Option<const_oid::ObjectIdentifier>,
    /// Policy OID of time-stamps.
    pub timestamp_policy_oid: Option<const_oid::ObjectIdentifier>,
    /// The CPS URL (certificates' id-qt-cps qualifier).
    pub cps_url: Option<String>,
    /// PKI disclosure statements: (https URL, ISO 639-1 language).
    pub pds: Option<Vec<(String, String)>>,
}

/// `[provider]` in the settings file, every key optional, unknown keys rejected.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderFile {
    name: Option<String>,
    address: Option<String>,
    tax_id: Option<String>,
    registration_number: Option<String>,
    representative: Option<String>,
    qualified_policy_oid: Option<String>,
    device_policy_oid: Option<String>,
    timestamp_policy_oid: Option<String>,
    cps_url: Option<String>,
    pds: Option<Vec<PdsFile>>,
}

/// One PKI disclosure statement of `[provider]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PdsFile {
    url: String,
    language: String,
}

impl ProviderFile {
    fn resolve(self) -> Result<ProviderConfig, String> {
        let text = |key: &str, value: Option<String>| -> Result<Option<String>, String> {
            match value {
                Some(v) if v.trim().is_empty() => Err(format!("[provider] {key}: empty")),
                other => Ok(other.map(|v| v.trim().to_owned())),
            }
        };
        let oid = |key: &str, value: Option<String>| {
            value
                .map(|v| {
                    const_oid::ObjectIdentifier::new(v.trim()).map_err(|_| {
                        format!(
                            "[provider] {key}: `{v}` is not an OID like 1.3.6.1.4.1.55016.1.2.1"
                        )
                    })
                })
                .transpose()
        };
        let https = |key: &str, url: &str| {
            if url.starts_with("https://") && !url.contains(char::is_whitespace) {
                Ok(())
            } else {
                Err(format!("[provider] {key}: `{url}` is not an https URL"))
            }
        };
        if let Some(url) = &self.cps_url {
            if !(url.starts_with("http://") || url.starts_with("https://"))
                || url.contains(char::is_whitespace)
            {
                return Err(format!("[provider] cps_url: `{url}` is not an http(s) URL"));
            }
        }
        let pds = match self.pds {
            None => None,
            Some(list) if list.is_empty() => return Err("[provider] pds: empty".into()),
            Some(list) => {
                let mut pds = Vec::new();
                for PdsFile { url, language } in list {
                    https("pds", &url)?;
                    if language.len() != 2 || !language.chars().all(|c| c.is_ascii_lowercase()) {
                        return Err(format!(
                            "[provider] pds: `{language}` is not an ISO 639-1 code like sr"
                        ));
                    }
                    pds.push((url, language));
                }
                Some(pds)
            }
        };
        if let Some(tax_id) = &self.tax_id {
            if tax_id.trim().is_empty() || !tax_id.trim().chars().all(|c| c.is_ascii_digit()) {
                return Err(format!("[provider] tax_id: `{tax_id}` is not a number"));
            }
        }
        Ok(ProviderConfig {
            name: text("name", self.name)?,
            address: text("address", self.address)?,
            tax_id: text("tax_id", self.tax_id)?,
            registration_number: text("registration_number", self.registration_number)?,
            representative: text("representative", self.representative)?,
            qualified_policy_oid: oid("qualified_policy_oid", self.qualified_policy_oid)?,
            device_policy_oid: oid("device_policy_oid", self.device_policy_oid)?,
            timestamp_policy_oid: oid("timestamp_policy_oid", self.timestamp_policy_oid)?,
            cps_url: self.cps_url,
            pds,
        })
    }
}

/// The settings file, every key optional, unknown keys rejected.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    data: Option<PathBuf>,
    listen: Option<String>,
    public_url: Option<String>,
    app_listen: Option<String>,
    app_public_url: Option<String>,
    database_url: Option<String>,
    smtp_url: Option<String>,
    smtp_user: Option<String>,
    smtp_password: Option<String>,
    smtp_ca_file: Option<PathBuf>,
    smtp_retry_first_secs: Option<u64>,
    smtp_max_attempts: Option<i64>,
    pkcs11_module: Option<PathBuf>,
    pkcs11_token: Option<String>,
    pkcs11_pin: Option<String>,
    key_algorithm: Option<String>,
    cloud_cert_validity_days: Option<i64>,
    renewal_window_days: Option<i64>,
    dangerous_disable_rate_limits: Option<bool>,
    push_subject: Option<String>,
    dangerous_push_allow_http_loopback: Option<bool>,
    dangerous_push_allow_private_endpoints: Option<bool>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    geoip_database: Option<PathBuf>,
    database_pool_size: Option<u64>,
    database_statement_timeout_secs: Option<u64>,
    database_connection_lifetime_secs: Option<u64>,
    max_connections: Option<u64>,
    header_read_timeout_secs: Option<u64>,
    max_connections_per_address: Option<u64>,
    request_read_timeout_secs: Option<u64>,
    min_body_bytes_per_sec: Option<u64>,
    min_body_rate_grace_secs: Option<u64>,
    trusted_proxies: Option<Vec<String>>,
    provider: Option<ProviderFile>,
}

/// Every environment variable we read, and the file key it sets.
const ENVIRONMENT: &[(&str, &str)] = &[
    ("EIDPORTAL_DATA", "data"),
    ("EIDPORTAL_LISTEN", "listen"),
    ("EIDPORTAL_PUBLIC_URL", "public_url"),
    ("EIDPORTAL_APP_LISTEN", "app_listen"),
    ("EIDPORTAL_APP_PUBLIC_URL", "app_public_url"),
    ("EIDPORTAL_DATABASE_URL", "database_url"),
    ("EIDPORTAL_SMTP_URL", "smtp_url"),
    ("EIDPORTAL_SMTP_USER", "smtp_user"),
    ("EIDPORTAL_SMTP_PASSWORD", "smtp_password"),
    ("EIDPORTAL_SMTP_CA_FILE", "smtp_ca_file"),
    ("EIDPORTAL_SMTP_RETRY_FIRST_SECS", "smtp_retry_first_secs"),
    ("EIDPORTAL_SMTP_MAX_ATTEMPTS", "smtp_max_attempts"),
    ("EIDPORTAL_PKCS11_MODULE", "pkcs11_module"),
    ("EIDPORTAL_PKCS11_TOKEN", "pkcs11_token"),
    ("EIDPORTAL_PKCS11_PIN", "pkcs11_pin"),
    ("EIDPORTAL_KEY_ALGORITHM", "key_algorithm"),
    (
        "EIDPORTAL_CLOUD_CERT_VALIDITY_DAYS",
        "cloud_cert_validity_days",
    ),
    ("EIDPORTAL_RENEWAL_WINDOW_DAYS", "renewal_window_days"),
    (
        "EIDPORTAL_DANGEROUS_DISABLE_RATE_LIMITS",
        "dangerous_disable_rate_limits",
    ),
    ("EIDPORTAL_PUSH_SUBJECT", "push_subject"),
    (
        "EIDPORTAL_DANGEROUS_PUSH_ALLOW_HTTP_LOOPBACK",
        "dangerous_push_allow_http_loopback",
    ),
    (
        "EIDPORTAL_DANGEROUS_PUSH_ALLOW_PRIVATE_ENDPOINTS",
        "dangerous_push_allow_private_endpoints",
    ),
    ("EIDPORTAL_TLS_CERT", "tls_cert"),
    ("EIDPORTAL_TLS_KEY", "tls_key"),
    ("EIDPORTAL_MAX_CONNECTIONS", "max_connections"),
    (
        "EIDPORTAL_HEADER_READ_TIMEOUT_SECS",
        "header_read_timeout_secs",
    ),
    (
        "EIDPORTAL_MAX_CONNECTIONS_PER_ADDRESS",
        "max_connections_per_address",
    ),
    (
        "EIDPORTAL_REQUEST_READ_TIMEOUT_SECS",
        "request_read_timeout_secs",
    ),
    ("EIDPORTAL_MIN_BODY_BYTES_PER_SEC", "min_body_bytes_per_sec"),
    (
        "EIDPORTAL_MIN_BODY_RATE_GRACE_SECS",
        "min_body_rate_grace_secs",
    ),
    ("EIDPORTAL_TRUSTED_PROXIES", "trusted_proxies"),
    ("EIDPORTAL_GEOIP_DATABASE", "geoip_database"),
    ("EIDPORTAL_DATABASE_POOL_SIZE", "database_pool_size"),
    (
        "EIDPORTAL_DATABASE_STATEMENT_TIMEOUT_SECS",
        "database_statement_timeout_secs",
    ),
    (
        "EIDPORTAL_DATABASE_CONNECTION_LIFETIME_SECS",
        "database_connection_lifetime_secs",
    ),
];

/// Whether an SMTP relay is this machine (a plain-text login to it never crosses a network).
fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

/// Variables with the prefix that are not settings (logging, and the test suite's own).
fn ignored_variable(name: &str) -> bool {
    name == "EIDPORTAL_LOG" || name == "EIDPORTAL_CONFIG" || name.starts_with("EIDPORTAL_TEST_")
}

/// Overrides given as flags.
#[derive(Debug, Default, Clone)]
pub struct Flags {
    /// `--data`.
    pub data: Option<PathBuf>,
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `serve --listen`.
    pub listen: Option<String>,
    /// `serve --app-listen`.
    pub app_listen: Option<String>,
}

impl Config {
    /// Resolves the settings from the file, the environment and the flags.
    pub fn load(flags: &Flags, environment: &BTreeMap<String, String>) -> Result<Self, String> {
        let mut file = match &flags.config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        for name in environment.keys() {
            if name.starts_with("EIDPORTAL_")
                && !ignored_variable(name)
                && !ENVIRONMENT.iter().any(|(known, _)| known == name)
            {
                return Err(format!(
                    "unknown setting {name} (see the README's table of settings)"
                ));
            }
        }
        let env = |name: &str| environment.get(name).filter(|v| !v.is_empty()).cloned();
        let parse_days = |name: &str| -> Result<Option<i64>, String> {
            env(name)
                .map(|v| {
                    v.parse::<i64>()
                        .map_err(|_| format!("{name}: `{v}` is not a whole number of days"))
                })
                .transpose()
        };
        // Environment over file.
        if let Some(v) = env("EIDPORTAL_DATA") {
            file.data = Some(v.into());
        }
        if let Some(v) = env("EIDPORTAL_LISTEN") {
            file.listen = Some(v);
        }
        if let Some(v) = env("EIDPORTAL_PUBLIC_URL") {
            file.public_url = Some(v);
        }
        if let Some(v) = env("EIDPORTAL_APP_LISTEN") {
            file.app_listen = Some(v);
        }
        if let Some(v) = env("EIDPORTAL_APP_PUBLIC_URL") {
            file.app_public_url = Some(v);
        }
        if let Some(v) = env("EIDPORTAL_DATABASE_URL") {
            file.database_url = Some(v);
        }
        if let Some(v) = env("EIDPORTAL_SMTP_URL") {
            file.smtp_url = Some(v);
        }
        if let Some(v) = env("EIDPORTAL_SMTP_USER") {
            file.smtp_user = Some(v);
        }
        if let Some(v) = env("EIDPORTAL_SMTP_PASSWORD") {
            file.smtp_password = Some(v);
        }
        if let Some(v) = env("EIDPORTAL_SMTP_CA_FILE") {
            file.smtp_ca_file = Some(v.into());
        }
        if let Some(v) = env("EIDPORTAL_SMTP_RETRY_FIRST_SECS") {
            file.smtp_retry_first_secs =
                Some(v.parse().map_err(|_| {
                    format!("EIDPORTAL_SMTP_RETRY_FIRST_SECS: `{v}` is not a number")
                })?);
        }
        if let Some(v) = env("EIDPORTAL_SMTP_MAX_ATTEMPTS") {
            file.smtp_max_attempts = Some(
                v.parse()
                    .map_err(|_| format!("EIDPORTAL_SMTP_MAX_ATTEMPTS: `{v}` is not a number"))?,
            );
        }
        if let Some(v) = env("EIDPORTAL_PKCS11_MODULE") {
            file.pkcs11_module = Some(v.into());
        }
        if let Some(v) = env("EIDPORTAL_PKCS11_TOKEN") {
            file.pkcs11_token = Some(v);
        }
        if let Some(v) = env("EIDPORTAL_PKCS11_PIN") {
            file.pkcs11_pin = Some(v);
        }
        if let Some(v) = env("EIDPORTAL_KEY_ALGORITHM") {
            file.key_algorithm = Some(v);
        }
        if let Some(v) = parse_days("EIDPORTAL_CLOUD_CERT_VALIDITY_DAYS")? {
            file.cloud_cert_validity_days = Some(v);
        }
        if let Some(v) = parse_days("EIDPORTAL_RENEWAL_WINDOW_DAYS")? {
            file.renewal_window_days = Some(v);
        }
        if let Some(v) = env("EIDPORTAL_PUSH_SUBJECT") {
            file.push_subject = Some(v);
        }
        if let Some(v) = env("EIDPORTAL_DANGEROUS_PUSH_ALLOW_HTTP_LOOPBACK") {
            file.dangerous_push_allow_http_loopback = Some(match v.as_str() {
                "1" | "true" => true,
                "0" | "false" => false,
                _ => {
                    return Err(format!(
                        "EIDPORTAL_DANGEROUS_PUSH_ALLOW_HTTP_LOOPBACK: `{v}` is neither 1 nor 0"
                    ))
                }
            });
        }
        if let Some(v) = env("EIDPORTAL_DANGEROUS_PUSH_ALLOW_PRIVATE_ENDPOINTS") {
            file.dangerous_push_allow_private_endpoints = Some(match v.as_str() {
                "1" | "true" => true,
                "0" | "false" => false,
                _ => {
                    return Err(format!(
                        "EIDPORTAL_DANGEROUS_PUSH_ALLOW_PRIVATE_ENDPOINTS: `{v}` is neither 1 nor 0"
                    ))
                }
            });
        }
        if let Some(v) = env("EIDPORTAL_DANGEROUS_DISABLE_RATE_LIMITS") {
            file.dangerous_disable_rate_limits = Some(match v.as_str() {
                "1" | "true" => true,
                "0" | "false" => false,
                _ => {
                    return Err(format!(
                        "EIDPORTAL_DANGEROUS_DISABLE_RATE_LIMITS: `{v}` is neither 1 nor 0"
                    ))
                }
            });
        }
        if let Some(v) = env("EIDPORTAL_TLS_CERT") {
            file.tls_cert = Some(v.into());
        }
        if let Some(v) = env("EIDPORTAL_TLS_KEY") {
            file.tls_key = Some(v.into());
        }
        if let Some(v) = env("EIDPORTAL_GEOIP_DATABASE") {
            file.geoip_database = Some(v.into());
        }
        let parse_count = |name: &str| -> Result<Option<u64>, String> {
            env(name)
                .map(|v| {
                    v.parse::<u64>()
                        .map_err(|_| format!("{name}: `{v}` is not a whole number"))
                })
                .transpose()
        };
        if let Some(v) = parse_count("EIDPORTAL_MAX_CONNECTIONS")? {
            file.max_connections = Some(v);
        }
        if let Some(v) = parse_count("EIDPORTAL_DATABASE_POOL_SIZE")? {
            file.database_pool_size = Some(v);
        }
        if let Some(v) = parse_count("EIDPORTAL_DATABASE_STATEMENT_TIMEOUT_SECS")? {
            file.database_statement_timeout_secs = Some(v);
        }
        if let Some(v) = parse_count("EIDPORTAL_DATABASE_CONNECTION_LIFETIME_SECS")? {
            file.database_connection_lifetime_secs = Some(v);
        }
        if let Some(v) = parse_count("EIDPORTAL_HEADER_READ_TIMEOUT_SECS")? {
            file.header_read_timeout_secs = Some(v);
        }
        if let Some(v) = parse_count("EIDPORTAL_MAX_CONNECTIONS_PER_ADDRESS")? {
            file.max_connections_per_address = Some(v);
        }
        if let Some(v) = parse_count("EIDPORTAL_REQUEST_READ_TIMEOUT_SECS")? {
            file.request_read_timeout_secs = Some(v);
        }
        if let Some(v) = parse_count("EIDPORTAL_MIN_BODY_BYTES_PER_SEC")? {
            file.min_body_bytes_per_sec = Some(v);
        }
        if let Some(v) = parse_count("EIDPORTAL_MIN_BODY_RATE_GRACE_SECS")? {
            file.min_body_rate_grace_secs = Some(v);
        }
        if let Some(v) = env("EIDPORTAL_TRUSTED_PROXIES") {
            file.trusted_proxies = Some(vec![v]);
        }
        // Flags over environment.
        if let Some(v) = &flags.data {
            file.data = Some(v.clone());
        }
        if let Some(v) = &flags.listen {
            file.listen = Some(v.clone());
        }
        if let Some(v) = &flags.app_listen {
            file.app_listen = Some(v.clone());
        }
        Self::resolve(file)
    }

    fn resolve(file: FileSettings) -> Result<Self, String> {
        let data = file.data.unwrap_or_else(|| PathBuf::from("eidportal-data"));
        let listen = file.listen.unwrap_or_else(|| "127.0.0.1:8080".into());
        if listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(format!(
                "EIDPORTAL_LISTEN: `{listen}` is not an address like 127.0.0.1:8080"
            ));
        }
        let app_listen = file.app_listen.unwrap_or_else(|| "127.0.0.1:8081".into());
        if app_listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(format!(
                "EIDPORTAL_APP_LISTEN: `{app_listen}` is not an address like 127.0.0.1:8081"
            ));
        }
        for (name, url) in [
            ("EIDPORTAL_PUBLIC_URL", &file.public_url),
            ("EIDPORTAL_APP_PUBLIC_URL", &file.app_public_url),
        ] {
            if let Some(url) = url {
                if !(url.starts_with("http://") || url.starts_with("https://"))
                    || url.contains(char::is_whitespace)
                {
                    return Err(format!("{name}: `{url}` is not an http(s) URL"));
                }
            }
        }
        let database_url = file
            .database_url
            .unwrap_or_else(|| format!("sqlite:{}", data.join("eidportal.db").display()));
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(
                "EIDPORTAL_DATABASE_URL: use sqlite:PATH or postgres://USER@HOST/DB".into(),
            );
        }
        let smtp = match file.smtp_url.as_deref() {
            None => {
                if file.smtp_user.is_some()
                    || file.smtp_password.is_some()
                    || file.smtp_ca_file.is_some()
                {
                    return Err("EIDPORTAL_SMTP_USER, EIDPORTAL_SMTP_PASSWORD and EIDPORTAL_SMTP_CA_FILE need EIDPORTAL_SMTP_URL".into());
                }
                None
            }
            Some(url) => {
                let mut relay = authority::ra::mail::SmtpRelay::parse(url)
                    .map_err(|e| format!("EIDPORTAL_SMTP_URL: {e}"))?;
                relay.credentials =
                    match (file.smtp_user, file.smtp_password) {
                        (None, None) => None,
                        (Some(user), Some(password)) => Some((user, password.into())),
                        _ => return Err(
                            "EIDPORTAL_SMTP_USER and EIDPORTAL_SMTP_PASSWORD must be set together"
                                .into(),
                        ),
                    };
                if relay.credentials.is_some()
                    && relay.security == authority::ra::mail::SmtpSecurity::Plain
                    && !is_loopback_host(&relay.host)
                {
                    return Err("EIDPORTAL_SMTP_PASSWORD: a login is only sent over TLS (smtp+starttls:// or smtps://)".into());
                }
                if let Some(path) = &file.smtp_ca_file {
                    relay.extra_roots_pem =
                        Some(std::fs::read(path).map_err(|e| {
                            format!("EIDPORTAL_SMTP_CA_FILE: {}: {e}", path.display())
                        })?);
                }
                Some(relay)
            }
        };
        let mut mail_retry = authority::ra::mail::RetryPolicy::default();
        if let Some(secs) = file.smtp_retry_first_secs {
            if !(1..=86_400).contains(&secs) {
                return Err(format!(
                    "EIDPORTAL_SMTP_RETRY_FIRST_SECS: {secs} is outside 1..=86400"
                ));
            }
            mail_retry.first = std::time::Duration::from_secs(secs);
        }
        if let Some(attempts) = file.smtp_max_attempts {
            if !(1..=100).contains(&attempts) {
                return Err(format!(
                    "EIDPORTAL_SMTP_MAX_ATTEMPTS: {attempts} is outside 1..=100"
                ));
            }
            mail_retry.max_attempts = attempts;
        }
        let keys = match (file.pkcs11_module, file.pkcs11_token, file.pkcs11_pin) {
            (None, None, None) => KeyBackendConfig::Software,
            (Some(module), Some(token), Some(pin)) => KeyBackendConfig::Pkcs11 { module, token, pin: pin.into() },
            _ => {
                return Err(
                    "EIDPORTAL_PKCS11_MODULE, EIDPORTAL_PKCS11_TOKEN and EIDPORTAL_PKCS11_PIN must be set together".into()
                )
            }
        };
        let key_algorithm = match file.key_algorithm.as_deref() {
            None => KeyAlgorithm::EcdsaP256,
            Some(name) => KeyAlgorithm::parse(name).ok_or_else(|| {
                format!("EIDPORTAL_KEY_ALGORITHM: `{name}` is neither ecdsa-p256 nor rsa-3072")
            })?,
        };
        if let Some(days) = file.cloud_cert_validity_days {
            if !(1..=3660).contains(&days) {
                return Err(format!(
                    "EIDPORTAL_CLOUD_CERT_VALIDITY_DAYS: {days} is outside 1..=3660"
                ));
            }
        }
        let renewal_window_days = file.renewal_window_days.unwrap_or(30);
        if !(1..=365).contains(&renewal_window_days) {
            return Err(format!(
                "EIDPORTAL_RENEWAL_WINDOW_DAYS: {renewal_window_days} is outside 1..=365"
            ));
        }
        let tls = match (file.tls_cert, file.tls_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(crate::transport::TlsFiles { cert, key }),
            _ => {
                return Err("EIDPORTAL_TLS_CERT and EIDPORTAL_TLS_KEY must be set together".into())
            }
        };
        let max_connections = file.max_connections.unwrap_or(4096);
        if !(1..=1_000_000).contains(&max_connections) {
            return Err(format!(
                "EIDPORTAL_MAX_CONNECTIONS: {max_connections} is outside 1..=1000000"
            ));
        }
        let header_read_timeout_secs = file.header_read_timeout_secs.unwrap_or(10);
        if !(1..=300).contains(&header_read_timeout_secs) {
            return Err(format!(
                "EIDPORTAL_HEADER_READ_TIMEOUT_SECS: {header_read_timeout_secs} is outside 1..=300"
            ));
        }
        let max_connections_per_address = file.max_connections_per_address.unwrap_or(256);
        if !(1..=1_000_000).contains(&max_connections_per_address) {
            return Err(format!(
                "EIDPORTAL_MAX_CONNECTIONS_PER_ADDRESS: {max_connections_per_address} is outside 1..=1000000"
            ));
        }
        let request_read_timeout_secs = file.request_read_timeout_secs.unwrap_or(30);
        if !(1..=3600).contains(&request_read_timeout_secs) {
            return Err(format!(
                "EIDPORTAL_REQUEST_READ_TIMEOUT_SECS: {request_read_timeout_secs} is outside 1..=3600"
            ));
        }
        let min_body_bytes_per_sec = file.min_body_bytes_per_sec.unwrap_or(500);
        if min_body_bytes_per_sec > 1_000_000_000 {
            return Err(format!(
                "EIDPORTAL_MIN_BODY_BYTES_PER_SEC: {min_body_bytes_per_sec} is outside 0..=1000000000"
            ));
        }
        let min_body_rate_grace_secs = file.min_body_rate_grace_secs.unwrap_or(5);
        if min_body_rate_grace_secs > 3600 {
            return Err(format!(
                "EIDPORTAL_MIN_BODY_RATE_GRACE_SECS: {min_body_rate_grace_secs} is outside 0..=3600"
            ));
        }
        let defaults = store::PoolSettings::default();
        let database_pool_size = file
            .database_pool_size
            .unwrap_or(u64::from(defaults.max_connections));
        if !(1..=10_000).contains(&database_pool_size) {
            return Err(format!(
                "EIDPORTAL_DATABASE_POOL_SIZE: {database_pool_size} is outside 1..=10000"
            ));
        }
        let seconds =
            |value: Option<u64>, default: Option<std::time::Duration>, name: &str| match value {
                None => Ok(default),
                Some(0) => Ok(None),
                Some(secs @ 1..=86_400) => Ok(Some(std::time::Duration::from_secs(secs))),
                Some(secs) => Err(format!("{name}: {secs} is outside 0..=86400 (0: none)")),
            };
        let database_pool = store::PoolSettings {
            max_connections: u32::try_from(database_pool_size).unwrap_or(u32::MAX),
            statement_timeout: seconds(
                file.database_statement_timeout_secs,
                defaults.statement_timeout,
                "EIDPORTAL_DATABASE_STATEMENT_TIMEOUT_SECS",
            )?,
            max_lifetime: seconds(
                file.database_connection_lifetime_secs,
                defaults.max_lifetime,
                "EIDPORTAL_DATABASE_CONNECTION_LIFETIME_SECS",
            )?,
        };
        let trusted_proxies = crate::client_address::TrustedProxies::parse(
            &file.trusted_proxies.unwrap_or_default().join(","),
        )
        .map_err(|e| format!("EIDPORTAL_TRUSTED_PROXIES: {e}"))?;
        let provider = file.provider.unwrap_or_default().resolve()?;
        Ok(Self {
            data,
            listen,
            public_url: file.public_url.map(|u| u.trim_end_matches('/').to_owned()),
            app_listen,
            app_public_url: file
                .app_public_url
                .map(|u| u.trim_end_matches('/').to_owned()),
            database_url,
            database_pool,
            smtp,
            mail_retry,
            keys,
            key_algorithm,
            cloud_cert_validity_days: file.cloud_cert_validity_days,
            renewal_window_days,
            dangerous_disable_rate_limits: file.dangerous_disable_rate_limits.unwrap_or(false),
            push_subject: file.push_subject,
            dangerous_push_allow_http_loopback: file
                .dangerous_push_allow_http_loopback
                .unwrap_or(false),
            dangerous_push_allow_private_endpoints: file
                .dangerous_push_allow_private_endpoints
                .unwrap_or(false),
            tls,
            max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
            header_read_timeout_secs,
            max_connections_per_address: usize::try_from(max_connections_per_address)
                .unwrap_or(usize::MAX),
            request_read_timeout_secs,
            min_body_bytes_per_sec,
            min_body_rate_grace_secs,
            trusted_proxies,
            provider,
            geoip_database: file.geoip_database,
        })
    }
}

fn read_file(path: &Path) -> Result<FileSettings, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("--config {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| {
        let message = e.message().to_owned();
        format!("--config {}: {message}", path.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_work_with_nothing_set() {
        let config = Config::load(&Flags::default(), &env(&[])).unwrap();
        assert_eq!(config.listen, "127.0.0.1:8080");
        assert_eq!(config.keys, KeyBackendConfig::Software);
        assert!(config.database_url.starts_with("sqlite:"));
    }

    #[test]
    fn flags_beat_environment_beats_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:1\"\nrenewal_window_days = 10\n",
        )
        .unwrap();
        let flags = Flags {
            config: Some(path.clone()),
            ..Flags::default()
        };
        let config =
            Config::load(&flags, &env(&[("EIDPORTAL_RENEWAL_WINDOW_DAYS", "20")])).unwrap();
        assert_eq!(
            (config.listen.as_str(), config.renewal_window_days),
            ("127.0.0.1:1", 20)
        );
        let flags = Flags {
            config: Some(path),
            listen: Some("127.0.0.1:2".into()),
            ..Flags::default()
        };
        let config = Config::load(&flags, &env(&[("EIDPORTAL_LISTEN", "127.0.0.1:3")])).unwrap();
        assert_eq!(config.listen, "127.0.0.1:2");
    }

    fn load_file(text: &str) -> Result<Config, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(
            &Flags {
                config: Some(path),
                ..Flags::default()
            },
            &env(&[]),
        )
    }

    #[test]
    fn a_provider_table_changes_the_agreement_and_the_certificates_policy() {
        let config = load_file(
            "renewal_window_days = 14\n\
             [provider]\n\
             name = \"Пример д.о.о.\"\n\
             address = \"Нови Сад, Булевар 1\"\n\
             tax_id = \"123456789\"\n\
             registration_number = \"87654321\"\n\
             representative = \"Марко Марковић\"\n\
             qualified_policy_oid = \"1.3.6.1.4.1.99999.1\"\n\
             device_policy_oid = \"1.3.6.1.4.1.99999.2\"\n\
             timestamp_policy_oid = \"1.3.6.1.4.1.99999.3\"\n\
             cps_url = \"https://example.rs/cps\"\n\
             pds = [{ url = \"https://example.rs/pds.pdf\", language = \"sr\" }]\n",
        )
        .unwrap();
        let settings = crate::settings(&config, "http://127.0.0.1:8080");
        let text = authority::ra::agreement::agreement_text(
            &settings.provider,
            "Ана Анић",
            "0101990710008",
            "01.01.2027.",
            None,
            &settings.agreement_words,
        );
        assert!(
            text.contains(
                "1. Пример д.о.о., Нови Сад, Булевар 1, ПИБ 123456789, матични број 87654321, \
                 коју заступа Марко Марковић"
            ),
            "{text}"
        );
        assert!(
            text.contains("у последњих 14 дана његовог важења"),
            "{text}"
        );
        assert!(!text.contains("Немањина"), "{text}");
        assert_eq!(settings.identity.organization, "Пример д.о.о.");
        assert_eq!(settings.identity.organization_identifier, "VATRS-123456789");
        assert_eq!(
            settings.policy.qualified_policy.to_string(),
            "1.3.6.1.4.1.99999.1"
        );
        assert_eq!(
            settings.policy.device_policy.to_string(),
            "1.3.6.1.4.1.99999.2"
        );
        assert_eq!(
            settings.policy.timestamp_policy.to_string(),
            "1.3.6.1.4.1.99999.3"
        );
        assert_eq!(settings.policy.cps_url, "https://example.rs/cps");
        assert_eq!(
            settings.policy.pds,
            vec![("https://example.rs/pds.pdf".to_owned(), "sr".to_owned())]
        );
    }

    #[test]
    fn without_a_provider_table_the_seeds_office_stays() {
        let config = load_file("").unwrap();
        assert_eq!(config.provider, ProviderConfig::default());
        let settings = crate::settings(&config, "http://127.0.0.1:8080");
        let defaults = authority::Settings::new("http://127.0.0.1:8080");
        assert_eq!(settings.provider, defaults.provider);
        assert_eq!(settings.identity, defaults.identity);
        assert_eq!(settings.policy, defaults.policy);
        assert_eq!(settings.agreement_words, defaults.agreement_words);
    }

    #[test]
    fn bad_provider_settings_name_themselves() {
        for (text, needle) in [
            ("[provider]\nnam = \"x\"\n", "nam"),
            (
                "[provider]\nqualified_policy_oid = \"one.two\"\n",
                "qualified_policy_oid",
            ),
            ("[provider]\ntax_id = \"12a\"\n", "tax_id"),
            ("[provider]\nname = \" \"\n", "name"),
            ("[provider]\ncps_url = \"ftp://x\"\n", "cps_url"),
            (
                "[provider]\npds = [{ url = \"http://x\", language = \"sr\" }]\n",
                "pds",
            ),
            (
                "[provider]\npds = [{ url = \"https://x\", language = \"srb\" }]\n",
                "pds",
            ),
        ] {
            let error = load_file(text).unwrap_err();
            assert!(error.contains(needle), "{text}: {error}");
        }
    }

    #[test]
    fn smtp_settings_resolve_and_keep_logins_off_plain_networks() {
        let config = Config::load(
            &Flags::default(),
            &env(&[
                ("EIDPORTAL_SMTP_URL", "smtps://mail.example.rs"),
                ("EIDPORTAL_SMTP_USER", "portal"),
                ("EIDPORTAL_SMTP_PASSWORD", "tajna"),
                ("EIDPORTAL_SMTP_MAX_ATTEMPTS", "3"),
            ]),
        )
        .unwrap();
        let relay = config.smtp.clone().unwrap();
        assert_eq!(relay.port, 465);
        assert_eq!(
            relay.credentials.as_ref().map(|(u, _)| u.as_str()),
            Some("portal")
        );
        assert_eq!(config.mail_retry.max_attempts, 3);
        assert!(!format!("{config:?}").contains("tajna"));
        let refuse =
            |pairs: &[(&str, &str)]| Config::load(&Flags::default(), &env(pairs)).unwrap_err();
        let error = refuse(&[
            ("EIDPORTAL_SMTP_URL", "smtp://mail.example.rs"),
            ("EIDPORTAL_SMTP_USER", "portal"),
            ("EIDPORTAL_SMTP_PASSWORD", "tajna"),
        ]);
        assert!(error.contains("only sent over TLS"), "{error}");
        let error = refuse(&[
            ("EIDPORTAL_SMTP_URL", "smtps://m.example.rs"),
            ("EIDPORTAL_SMTP_USER", "portal"),
        ]);
        assert!(error.contains("set together"), "{error}");
        let error = refuse(&[
            ("EIDPORTAL_SMTP_USER", "portal"),
            ("EIDPORTAL_SMTP_PASSWORD", "x"),
        ]);
        assert!(error.contains("need EIDPORTAL_SMTP_URL"), "{error}");
        let error = refuse(&[
            ("EIDPORTAL_SMTP_URL", "smtps://m.example.rs"),
            ("EIDPORTAL_SMTP_CA_FILE", "/nonexistent/ca.pem"),
        ]);
        assert!(error.starts_with("EIDPORTAL_SMTP_CA_FILE"), "{error}");
    }

    #[test]
    fn bad_settings_name_themselves() {
        let error =
            Config::load(&Flags::default(), &env(&[("EIDPORTAL_LISTEN", "nowhere")])).unwrap_err();
        assert!(error.starts_with("EIDPORTAL_LISTEN"), "{error}");
        let error =
            Config::load(&Flags::default(), &env(&[("EIDPORTAL_PKCS11_TOKEN", "t")])).unwrap_err();
        assert!(error.contains("EIDPORTAL_PKCS11_MODULE"), "{error}");
        let error = Config::load(&Flags::default(), &env(&[("EIDPORTAL_LISTN", "x")])).unwrap_err();
        assert!(error.contains("EIDPORTAL_LISTN"), "{error}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "lisen = 1\n").unwrap();
        let error = Config::load(
            &Flags {
                config: Some(path),
                ..Flags::default()
            },
            &env(&[]),
        )
        .unwrap_err();
        assert!(error.contains("lisen"), "{error}");
    }

    #[test]
    fn the_app_origin_has_its_own_address_and_url() {
        let config = Config::load(&Flags::default(), &env(&[])).unwrap();
        assert_eq!(config.app_listen, "127.0.0.1:8081");
        assert_eq!(config.app_public_url, None);
        let config = Config::load(
            &Flags {
                app_listen: Some("127.0.0.1:9".into()),
                ..Flags::default()
            },
            &env(&[
                ("EIDPORTAL_APP_LISTEN", "127.0.0.1:7"),
                ("EIDPORTAL_APP_PUBLIC_URL", "https://app.example.rs/"),
            ]),
        )
        .unwrap();
        assert_eq!(config.app_listen, "127.0.0.1:9");
        assert_eq!(
            config.app_public_url.as_deref(),
            Some("https://app.example.rs")
        );
        for (name, value) in [
            ("EIDPORTAL_APP_LISTEN", "phone"),
            ("EIDPORTAL_APP_PUBLIC_URL", "app.example.rs"),
        ] {
            let error = Config::load(&Flags::default(), &env(&[(name, value)])).unwrap_err();
            assert!(error.starts_with(name), "{error}");
        }
    }

    #[test]
    fn tls_files_and_connection_limits() {
        let config = Config::load(&Flags::default(), &env(&[])).unwrap();
        assert_eq!(
            (
                config.tls,
                config.max_connections,
                config.header_read_timeout_secs
            ),
            (None, 4096, 10)
        );
        let config = Config::load(
            &Flags::default(),
            &env(&[
                ("EIDPORTAL_TLS_CERT", "c.pem"),
                ("EIDPORTAL_TLS_KEY", "k.pem"),
                ("EIDPORTAL_MAX_CONNECTIONS", "10"),
                ("EIDPORTAL_HEADER_READ_TIMEOUT_SECS", "2"),
            ]),
        )
        .unwrap();
        let tls = config.tls.unwrap();
        assert_eq!((tls.cert, tls.key), ("c.pem".into(), "k.pem".into()));
        assert_eq!(
            (config.max_connections, config.header_read_timeout_secs),
            (10, 2)
        );
        let error =
            Config::load(&Flags::default(), &env(&[("EIDPORTAL_TLS_KEY", "k.pem")])).unwrap_err();
        assert!(error.contains("EIDPORTAL_TLS_CERT"), "{error}");
        let error = Config::load(
            &Flags::default(),
            &env(&[("EIDPORTAL_MAX_CONNECTIONS", "0")]),
        )
        .unwrap_err();
        assert!(error.starts_with("EIDPORTAL_MAX_CONNECTIONS"), "{error}");
    }

    #[test]
    fn per_address_cap_and_request_pace_from_defaults_file_and_environment() {
        let limits = |config: &Config| {
            (
                config.max_connections_per_address,
                config.request_read_timeout_secs,
                config.min_body_bytes_per_sec,
                config.min_body_rate_grace_secs,
            )
        };
        let config = Config::load(&Flags::default(), &env(&[])).unwrap();
        assert_eq!(limits(&config), (256, 30, 500, 5));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "max_connections_per_address = 64\nrequest_read_timeout_secs = 20\n\
             min_body_bytes_per_sec = 1000\nmin_body_rate_grace_secs = 2\n",
        )
        .unwrap();
        let flags = Flags {
            config: Some(path),
            ..Flags::default()
        };
        assert_eq!(
            limits(&Config::load(&flags, &env(&[])).unwrap()),
            (64, 20, 1000, 2)
        );
        // The environment wins over the file; a rate of 0 turns the minimum off.
        let config = Config::load(
            &flags,
            &env(&[
                ("EIDPORTAL_MAX_CONNECTIONS_PER_ADDRESS", "8"),
                ("EIDPORTAL_REQUEST_READ_TIMEOUT_SECS", "3"),
                ("EIDPORTAL_MIN_BODY_BYTES_PER_SEC", "0"),
                ("EIDPORTAL_MIN_BODY_RATE_GRACE_SECS", "0"),
            ]),
        )
        .unwrap();
        assert_eq!(limits(&config), (8, 3, 0, 0));
        for (name, value) in [
            ("EIDPORTAL_MAX_CONNECTIONS_PER_ADDRESS", "0"),
            ("EIDPORTAL_REQUEST_READ_TIMEOUT_SECS", "0"),
            ("EIDPORTAL_REQUEST_READ_TIMEOUT_SECS", "3601"),
            ("EIDPORTAL_MIN_BODY_BYTES_PER_SEC", "fast"),
            ("EIDPORTAL_MIN_BODY_RATE_GRACE_SECS", "3601"),
        ] {
            let error = Config::load(&Flags::default(), &env(&[(name, value)])).unwrap_err();
            assert!(error.starts_with(name), "{name}={value}: {error}");
        }
    }

    #[test]
    fn trusted_proxies_from_the_environment_or_the_file() {
        let config = Config::load(
            &Flags::default(),
            &env(&[("EIDPORTAL_TRUSTED_PROXIES", "10.0.0.0/8, ::1")]),
        )
        .unwrap();
        assert!(config.trusted_proxies.contains("10.9.8.7".parse().unwrap()));
        assert!(config.trusted_proxies.contains("::1".parse().unwrap()));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "trusted_proxies = [\"192.0.2.0/24\"]\n").unwrap();
        let config = Config::load(
            &Flags {
                config: Some(path),
                ..Flags::default()
            },
            &env(&[]),
        )
        .unwrap();
        assert!(config
            .trusted_proxies
            .contains("192.0.2.9".parse().unwrap()));
        let error = Config::load(
            &Flags::default(),
            &env(&[("EIDPORTAL_TRUSTED_PROXIES", "10.0.0.0/40")]),
        )
        .unwrap_err();
        assert!(error.starts_with("EIDPORTAL_TRUSTED_PROXIES"), "{error}");
    }

    #[test]
    fn pin_never_reaches_debug_output() {
        let config = Config::load(
            &Flags::default(),
            &env(&[
                ("EIDPORTAL_PKCS11_MODULE", "/x.so"),
                ("EIDPORTAL_PKCS11_TOKEN", "t"),
                ("EIDPORTAL_PKCS11_PIN", "secret-pin-4711"),
            ]),
        )
        .unwrap();
        assert!(!format!("{config:?}").contains("4711"));
    }
}
