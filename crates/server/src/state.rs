//! What every handler gets: the engine, the counters, the messages and the few settings the
//! handlers read. Every module of the server may use it; it uses none of them.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use authority::Authority;

/// Counters for `/metrics`.
#[derive(Default)]
pub struct Metrics {
    pub(crate) ocsp_successful: AtomicU64,
    pub(crate) ocsp_cached: AtomicU64,
    pub(crate) ocsp_malformed: AtomicU64,
    pub(crate) ocsp_unauthorized: AtomicU64,
    pub(crate) ocsp_other_errors: AtomicU64,
    pub(crate) pki_downloads: AtomicU64,
    /// The OpenID provider's answers by endpoint and outcome (`ok` or the OAuth error code).
    pub(crate) oidc:
        std::sync::Mutex<std::collections::BTreeMap<(&'static str, &'static str), u64>>,
    /// Connections refused and requests cut short by the transport; the listeners count into
    /// the same counters (`transport::Limits::counters`).
    pub transport: Arc<crate::connection_limits::TransportCounters>,
}

impl Metrics {
    /// Counts one answer of the OpenID provider.
    pub(crate) fn count_oidc(&self, endpoint: &'static str, outcome: &'static str) {
        let mut counts = self
            .oidc
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *counts.entry((endpoint, outcome)).or_default() += 1;
    }
}

/// What every handler gets.
#[derive(Clone)]
pub struct AppState {
    /// The engine.
    pub authority: Arc<Authority>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// The portal's messages.
    pub catalog: Arc<crate::i18n::Catalog>,
    /// Whether cookies get `Secure` (the public URL is https).
    pub secure_cookies: bool,
    /// Raised when the server begins to stop: long polls answer at once.
    pub stopping: crate::transport::Stopping,
    /// The ConsentID web app's public URL (its own origin): the app API answers its
    /// cross-origin calls, and portal pages link to it.
    pub app_public_url: String,
}
