//! The `eidportal` server: configuration, wiring (the only place that picks the database and
//! the key backend), the HTTP router and the officer commands.

pub mod activation_qr;
pub mod app_api;
pub mod app_origin;
pub mod client_address;
pub mod config;
pub mod connection_limits;
pub mod csc;
pub mod error;
pub mod headers;
pub mod http;
pub mod i18n;
pub mod oauth;
pub mod oidc;
pub mod portal;
pub mod push;
pub mod redirect;
pub mod state;
pub mod transport;

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;

use authority::{Authority, CloudValidity, Settings, SystemClock};
use pki::{KeyBackend, MasterKey, SoftwareKeyBackend};
use store::Store;

use crate::config::{Config, KeyBackendConfig};

/// Errors while starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data folder or a file in it.
    #[error("{0}")]
    Files(String),
    /// The database.
    #[error("database: {0}")]
    Store(#[from] store::Error),
    /// The key backend.
    #[error("key backend: {0}")]
    Keys(#[from] pki::Error),
    /// The authority refused to start (e.g. a CA key does not match its certificate).
    #[error("{0}")]
    Authority(#[from] authority::Error),
}

/// Creates the data folder (mode 0700) if needed.
pub fn prepare_data_folder(data: &Path) -> Result<(), StartError> {
    std::fs::create_dir_all(data)
        .map_err(|e| StartError::Files(format!("cannot create {}: {e}", data.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(data, std::fs::Permissions::from_mode(0o700));
    }
    Ok(())
}

/// Reads `<data>/master.key`, creating it (mode 0600) on first use.
pub fn master_key(data: &Path) -> Result<MasterKey, StartError> {
    let path = data.join("master.key");
    match std::fs::read(&path) {
        Ok(bytes) => MasterKey::from_bytes(&bytes).ok_or_else(|| {
            StartError::Files(format!("{} is not a 32-byte master key", path.display()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = MasterKey::generate();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options
                .open(&path)
                .map_err(|e| StartError::Files(format!("cannot create {}: {e}", path.display())))?;
            file.write_all(key.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| StartError::Files(format!("cannot write {}: {e}", path.display())))?;
            Ok(key)
        }
        Err(e) => Err(StartError::Files(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// The key backend the configuration names.
pub fn key_backend(config: &Config) -> Result<Arc<dyn KeyBackend>, StartError> {
    Ok(match &config.keys {
        KeyBackendConfig::Software => Arc::new(SoftwareKeyBackend::new(master_key(&config.data)?)),
        KeyBackendConfig::Pkcs11 { module, token, pin } => Arc::new(hsm::Pkcs11Backend::open(
            module,
            token,
            hsm::Pin::new(pin.as_str()),
        )?),
    })
}

/// The authority's settings from the configuration.
pub fn settings(config: &Config, public_url: &str) -> Settings {
    let mut settings = Settings::new(public_url);
    settings.key_algorithm = config.key_algorithm;
    settings.mailer.outbox = config.data.join("outbox");
    settings.mailer.smtp = config.smtp.clone();
    settings.mailer.retry = config.mail_retry;
    settings.dangerous_disable_rate_limits = config.dangerous_disable_rate_limits;
    settings.renewal_window_days = config.renewal_window_days;
    settings.push.subject = config.push_subject.clone();
    settings.push.dangerous_allow_http_loopback = config.dangerous_push_allow_http_loopback;
    settings.push.dangerous_allow_private_endpoints = config.dangerous_push_allow_private_endpoints;
    settings.audit_checkpoints = Some(config.data.join("audit-checkpoints"));
    if let Some(days) = config.cloud_cert_validity_days {
        settings.cloud_validity = CloudValidity::Days(days);
    }
    // Parsed once: it is the largest part of the start-up after the keys.
    if let Ok(catalog) = i18n::Catalog::load() {
        settings.registration_mails = i18n::registration_mails(&catalog);
        settings.agreement_words = i18n::agreement_words(
            &catalog,
            settings.cloud_validity,
            settings.renewal_window_days,
        );
        settings.cloud_mails = i18n::cloud_mails(&catalog);
    }
    apply_provider(&mut settings, &config.provider);
    settings
}

/// The `[provider]` settings over the defaults (the seed's Office).
fn apply_provider(settings: &mut Settings, provider: &config::ProviderConfig) {
    let set = |target: &mut String, value: &Option<String>| {
        if let Some(value) = value {
            target.clone_from(value);
        }
    };
    set(&mut settings.provider.name, &provider.name);
    set(&mut settings.identity.organization, &provider.name);
    set(&mut settings.provider.address, &provider.address);
    set(&mut settings.provider.tax_id, &provider.tax_id);
    if let Some(tax_id) = &provider.tax_id {
        // EN 319 412-1 §5.1.4: VAT, the country, a hyphen, the number.
        settings.identity.organization_identifier =
            format!("VAT{}-{tax_id}", settings.identity.country);
    }
    set(
        &mut settings.provider.registration_number,
        &provider.registration_number,
    );
    if provider.representative.is_some() {
        settings
            .provider
            .representative
            .clone_from(&provider.representative);
    }
    let policy = &mut settings.policy;
    if let Some(oid) = provider.qualified_policy_oid {
        policy.qualified_policy = oid;
    }
    if let Some(oid) = provider.device_policy_oid {
        policy.device_policy = oid;
    }
    if let Some(oid) = provider.timestamp_policy_oid {
        policy.timestamp_policy = oid;
    }
    set(&mut policy.cps_url, &provider.cps_url);
    if let Some(pds) = &provider.pds {
        policy.pds.clone_from(pds);
    }
}

/// What the authority is opened for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    /// `serve`: also reads what only requests need (the GeoIP database).
    Serve,
    /// An officer's command.
    Command,
}

/// Opens the data folder, the database and the keys, and the authority on them.
pub async fn open_authority(
    config: &Config,
    public_url: &str,
    opening: Opening,
) -> Result<Authority, StartError> {
    // Read first: a database that cannot be used stops the start before anything is made.
    let mut settings = settings(config, public_url);
    if let (Opening::Serve, Some(path)) = (opening, &config.geoip_database) {
        let geoip = authority::login::geoip::GeoIp::open(path)
            .map_err(|e| StartError::Files(format!("EIDPORTAL_GEOIP_DATABASE: {e}")))?;
        settings.geoip = Some(Arc::new(geoip));
    }
    prepare_data_folder(&config.data)?;
    let keys = key_backend(config)?;
    let clock = Arc::new(SystemClock);
    let now = authority::Clock::now(clock.as_ref());
    let store = Store::connect_with(&config.database_url, config.database_pool).await?;
    // The audit chain's MAC key (finding 9), set before anything is appended: from the master
    // key, or in a PKCS#11 deployment from ECDH with the ConsentID encryption key in the
    // token, which the first start creates (its entries until then are plain, the marker
    // follows them).
    let secret = match keys.derive_secret(store::AuditKey::PURPOSE)? {
        Some(secret) => Some(secret),
        None => {
            authority::login::consentid::audit_secret_from_service_key(&store, keys.as_ref())
                .await?
        }
    };
    let first_start = secret.is_none();
    if let Some(secret) = &secret {
        store
            .enable_audit_key(store::AuditKey::from_secret(secret.clone()), now)
            .await?;
    }
    let authority = Authority::open(store.clone(), keys.clone(), clock, settings).await?;
    let secret = match secret {
        Some(secret) => secret,
        None => authority::login::consentid::audit_secret_from_service_key(&store, keys.as_ref())
            .await?
            .ok_or_else(|| {
                StartError::Files("the ConsentID encryption key is missing: no audit key".into())
            })?,
    };
    if first_start {
        store
            .enable_audit_key(store::AuditKey::from_secret(secret.clone()), now)
            .await?;
    }
    // Anonymous session tokens made by one instance are good on every other (and after a restart).
    let authority = authority.with_deployment_secret(&secret);
    Ok(authority)
}

/// The app's public URL: configured, or `http(s)://<app listen address>`.
pub fn app_public_url(config: &Config, bound: Option<std::net::SocketAddr>) -> String {
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    match (&config.app_public_url, bound) {
        (Some(url), _) => url.clone(),
        (None, Some(addr)) => format!("{scheme}://{addr}"),
        (None, None) => format!("{scheme}://{}", config.app_listen),
    }
}

/// The public URL: configured, or `http(s)://<listen address>` (https when the server has a
/// certificate).
pub fn public_url(config: &Config, bound: Option<std::net::SocketAddr>) -> String {
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    match (&config.public_url, bound) {
        (Some(url), _) => url.clone(),
        (None, Some(addr)) => format!("{scheme}://{addr}"),
        (None, None) => format!("{scheme}://{}", config.listen),
    }
}
