//! Waking whoever waits for a change, instead of polling (DESIGN §1). A use case publishes a
//! [`Change`] in its transaction ([`crate::Transaction::publish`]); once the transaction
//! commits, every [`Watch`] of that change wakes: in this process at once, and on PostgreSQL
//! in every other instance too, through `NOTIFY` (sent inside the transaction, so a rolled-back
//! use case wakes nobody) and one `LISTEN` connection per process. A waiter re-reads what it
//! waits for when woken; a wake says only "look again".
//!
//! Nothing depends on a wake arriving: notifications are not stored, and a listener that lost
//! its connection misses those sent meanwhile (it wakes every waiter when it is back). So a
//! waiter also looks again after [`Watch::recheck`], which is short where changes made by
//! other processes cannot reach it (SQLite; PostgreSQL while the listener is down).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::Notify;

use domain::UserId;

/// The PostgreSQL channel the changes are sent on.
pub(crate) const CHANNEL: &str = "eidportal_changes";

/// How long a waiter goes without looking again when changes from other processes reach
/// this one (PostgreSQL, listener connected): only a safety net.
const RECHECK_LISTENING: Duration = Duration::from_secs(30);

/// How long a waiter goes without looking again when changes from other processes cannot
/// reach this one: as often as the upkeep polled before.
const RECHECK_ALONE: Duration = Duration::from_secs(1);

/// A change someone may wait for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Change {
    /// A ConsentID request of this account was made or ended, or one of its devices changed:
    /// the app's inbox and the browser waiting for the answer look again.
    Requests(UserId),
    /// A certificate's status changed: OCSP answers are re-read.
    CertificateStatus,
    /// Mail was queued: the mail worker looks at the outbox.
    Mail,
    /// Back-channel logouts were queued: the OpenID provider's worker delivers them.
    Logouts,
    /// A CIBA request in ping mode was answered: the OpenID provider's worker notifies its
    /// client.
    CibaPings,
    /// The OpenID provider's signing keys rolled over: every instance reopens them.
    SigningKeys,
    /// A QR login (by id) was taken by a phone or ended: its browser looks again.
    QrLogin(String),
}

impl Change {
    /// The change as sent on [`CHANNEL`] (one line per change).
    pub(crate) fn key(&self) -> String {
        match self {
            Self::Requests(user) => format!("requests:{user}"),
            Self::CertificateStatus => "status".to_owned(),
            Self::Mail => "mail".to_owned(),
            Self::Logouts => "logouts".to_owned(),
            Self::CibaPings => "ciba_pings".to_owned(),
            Self::SigningKeys => "keys".to_owned(),
            Self::QrLogin(id) => format!("qr:{id}"),
        }
    }
}

/// The waiters of this process, by change.
#[derive(Debug, Default)]
pub(crate) struct Hub {
    waiters: Mutex<HashMap<String, Arc<Notify>>>,
    /// PostgreSQL: the URL the listener connects to; `None` on SQLite.
    listen_url: Option<String>,
    /// Set once the listener task is started (by the first watch).
    listener_started: OnceLock<()>,
    /// True while the listener is connected and listening.
    listening: AtomicBool,
    /// Raised (once, with a permit) when the store is closed: the listener ends.
    closed: Notify,
}

impl Hub {
    pub(crate) fn new(listen_url: Option<String>) -> Self {
        Self {
            listen_url,
            ..Self::default()
        }
    }

    /// Wakes the waiters of the change with this key.
    pub(crate) fn wake(&self, key: &str) {
        let waiters = self
            .waiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(notify) = waiters.get(key) {
            notify.notify_waiters();
        }
    }

    /// Ends the listener, if any.
    pub(crate) fn close(&self) {
        self.closed.notify_one();
    }

    /// Wakes every waiter (the listener was reconnected: it may have missed changes).
    fn wake_all(&self) {
        let waiters = self
            .waiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for notify in waiters.values() {
            notify.notify_waiters();
        }
    }

    /// Starts watching `change`; on PostgreSQL the first watch starts the listener.
    pub(crate) fn watch(self: &Arc<Self>, change: &Change) -> Watch {
        if self.listen_url.is_some() && self.listener_started.set(()).is_ok() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(listen(self.clone()));
            }
        }
        let key = change.key();
        let notify = self
            .waiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(key.clone())
            .or_default()
            .clone();
        Watch {
            hub: self.clone(),
            key,
            notify,
        }
    }
}

/// Watching one [`Change`]: made by [`crate::Database::watch`], before the waiter reads the
/// state it waits on, so that no change after that read is missed.
#[derive(Debug)]
pub struct Watch {
    hub: Arc<Hub>,
    key: String,
    notify: Arc<Notify>,
}

impl Watch {
    /// Completes at the first change published after this call (or when the listener came
    /// back and every waiter must look again). Call it before reading the state, then await
    /// it with a timeout of [`Watch::recheck`].
    pub fn next(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let mut notified = Box::pin(self.notify.notified());
        notified.as_mut().enable();
        notified
    }

    /// The longest a waiter should wait before it looks again even without a wake: long
    /// where every process's changes reach this one (PostgreSQL, listener connected), short
    /// where they cannot.
    pub fn recheck(&self) -> Duration {
        if self.hub.listening.load(Ordering::Relaxed) {
            RECHECK_LISTENING
        } else {
            RECHECK_ALONE
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut waiters = self
            .hub
            .waiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // The map's reference and this one: the last watcher of the change is leaving.
        if Arc::strong_count(&self.notify) <= 2 {
            waiters.remove(&self.key);
        }
    }
}

/// The listener: one connection that `LISTEN`s on [`CHANNEL`] and wakes this process's
/// waiters of each change it hears. It reconnects after a lost connection (waking every
/// waiter, since it may have missed changes) and ends when the store is closed.
async fn listen(hub: Arc<Hub>) {
    let Some(url) = hub.listen_url.clone() else {
        return;
    };
    let mut delay = Duration::from_millis(100);
    loop {
        let connected = async {
            let mut listener = sqlx::postgres::PgListener::connect(&url).await?;
            listener.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let connected = tokio::select! {
            connected = connected => connected,
            () = hub.closed.notified() => return,
        };
        match connected {
            Ok(mut listener) => {
                delay = Duration::from_millis(100);
                if !hear(&hub, &mut listener).await {
                    return;
                }
            }
            Err(error) => tracing::warn!(%error, "cannot LISTEN for changes; retrying"),
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = hub.closed.notified() => return,
        }
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

/// Wakes waiters for each notification until the connection is lost (true) or the store is
/// closed (false).
async fn hear(hub: &Hub, listener: &mut sqlx::postgres::PgListener) -> bool {
    hub.listening.store(true, Ordering::Relaxed);
    // Changes made while it was not listening were missed.
    hub.wake_all();
    loop {
        let next = tokio::select! {
            next = listener.try_recv() => next,
            () = hub.closed.notified() => return false,
        };
        match next {
            Ok(Some(notification)) => {
                for key in notification.payload().lines() {
                    hub.wake(key);
                }
            }
            Ok(None) | Err(_) => {
                hub.listening.store(false, Ordering::Relaxed);
                tracing::warn!("the LISTEN connection was lost; reconnecting");
                return true;
            }
        }
    }
}
