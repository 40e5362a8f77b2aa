//! Logins without a username (issue 10; rules in [`domain::qr`]): the browser shows a QR code
//! that changes every second, or on a phone the link **Отвори ConsentID**. The phone that scans
//! the code, or opens the link, makes an ordinary login transaction for its own account, bound
//! to the browser session that showed the code; from there the login is the mobile login of
//! [`crate::login`]: approved in ConsentID, completed once by that browser.

use serde_json::json;

use domain::qr::{self, QrRefusal, QrSecret, QR_LOGIN_LIFETIME};
use domain::records::QrLoginRecord;
use domain::{RateLimit, TransactionStatus, UnixTime};
use proto::app::{Envelope, LoginFlow, RequestContext, RequestKind};
use store::{AccountStore as _, AuditLog as _, Change, QrLoginStore as _, Transaction as _};

use crate::login::consentid::{envelope_for, AuthenticatedDevice, Caller};
use crate::login::LoginDb;
use crate::login::PORTAL_NAME;
use crate::login::{LoginState, Session, SessionToken};
use crate::{Error, Login, Rejection};

/// A QR login made for a browser.
#[derive(Debug, Clone)]
pub struct QrLoginStarted {
    /// Its id (in the page's address).
    pub id: String,
    /// Until when a phone may take it.
    pub expires_at: UnixTime,
}

/// A phone's request made from a QR code or a link.
#[derive(Debug, Clone)]
pub struct QrLoginTaken {
    /// The request, as the inbox would deliver it.
    pub request: Envelope,
    /// The QR login's id (the browser's page is `/login/qr/<id>`).
    pub qr_id: String,
}

/// Seconds a QR login's row is kept after it can no longer be taken: its browser may still be
/// waiting for the approval of the transaction made from it (at most
/// [`domain::login::TRANSACTION_LIFETIME`], then the completion window).
const KEEP_AFTER_EXPIRY: i64 = 600;

impl<D: LoginDb> Login<D> {
    /// Starts a QR login for this browser session (rate-limited per network, like a mobile
    /// login start).
    pub async fn qr_login_start(
        &self,
        session: &Session,
        ip: &str,
        browser: &str,
    ) -> Result<QrLoginStarted, Error> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        self.rate_limit(
            &mut tx,
            &format!("login:net:{}", domain::network::limit_network(ip)),
            RateLimit::LOGIN_PER_ADDRESS,
        )
        .await?;
        let record = QrLoginRecord {
            id: hex::encode(rand::random::<[u8; 16]>()),
            secret: rand::random::<[u8; 32]>().to_vec(),
            session_binding: session.record.id_hash.clone(),
            browser: domain::text::display_text(browser, 120),
            ip: domain::text::display_text(ip, 64),
            created_at: now,
            expires_at: now.plus_seconds(QR_LOGIN_LIFETIME),
            txn_id: None,
        };
        tx.insert_qr_login(&record).await?;
        tx.audit(
            now,
            "anonymous",
            "login.qr_started",
            json!({ "qr": record.id, "ip": ip }),
        )
        .await?;
        tx.commit().await?;
        Ok(QrLoginStarted {
            id: record.id,
            expires_at: record.expires_at,
        })
    }

    /// This browser session's QR login; another session's does not exist for it.
    async fn own_qr_login(&self, session: &Session, id: &str) -> Result<QrLoginRecord, Error> {
        self.store
            .qr_login(id)
            .await?
            .filter(|login| login.session_binding == session.record.id_hash)
            .ok_or_else(|| Rejection::NotFound.into())
    }

    /// The QR text to show now, for the browser that started the login, while no phone has
    /// taken it and it has not expired.
    pub async fn qr_frame(&self, session: &Session, id: &str) -> Result<String, Error> {
        let login = self.own_qr_login(session, id).await?;
        let now = self.clock.now();
        qr::may_take(login.txn_id.is_some(), login.expires_at, now).map_err(Rejection::QrLogin)?;
        Ok(qr::qr_text(
            &secret_of(&login)?,
            &login.id,
            qr::qr_second(login.created_at, now),
        ))
    }

    /// The token of the login's link **Отвори ConsentID** (the app's `#/link?t=`).
    pub async fn qr_link_token(&self, session: &Session, id: &str) -> Result<String, Error> {
        let login = self.own_qr_login(session, id).await?;
        Ok(qr::link_token(&secret_of(&login)?, &login.id))
    }

    /// How a QR login stands for its browser: waiting for a phone (pending, hint `waiting`),
    /// expired, or the state of the login transaction a phone made from it.
    pub async fn qr_login_state(&self, session: &Session, id: &str) -> Result<LoginState, Error> {
        let login = self.own_qr_login(session, id).await?;
        self.qr_state_of(session, &login).await
    }

    /// [`Self::qr_login_state`], waiting up to `wait` while it stays as it is (the browser's
    /// long poll, as [`Login::login_state_waiting`] for a mobile login):
    /// - while no phone took the login, until a phone takes it (woken by `taken`, from any
    ///   instance) or the code expires;
    /// - once a phone took it, until its request is answered ([`Login::login_state_waiting`]).
    ///
    /// Between wakes it looks again at least every [`store::Watch::recheck`].
    pub async fn qr_login_state_waiting(
        &self,
        session: &Session,
        id: &str,
        wait: std::time::Duration,
    ) -> Result<LoginState, Error> {
        let deadline = tokio::time::Instant::now() + wait;
        let login = self.own_qr_login(session, id).await?;
        if let Some(txn_id) = &login.txn_id {
            return self.login_state_waiting(session, txn_id, wait).await;
        }
        if wait.is_zero() {
            return self.qr_state_of(session, &login).await;
        }
        // 1. Watch before reading, so that a phone taking it after the read still wakes us.
        let watch = self.store.watch(&taken(&login.id));
        loop {
            let changed = watch.next();
            let login = self.own_qr_login(session, id).await?;
            let state = self.qr_state_of(session, &login).await?;
            let now = tokio::time::Instant::now();
            // 2. A phone took it, or it ended: the browser hides the code (and waits again,
            // now on the request).
            if login.txn_id.is_some()
                || state.status != TransactionStatus::Pending
                || now >= deadline
            {
                return Ok(state);
            }
            let expiry = std::time::Duration::from_secs(state.seconds_left.unsigned_abs() + 1);
            tokio::select! {
                () = changed => {}
                () = tokio::time::sleep_until(deadline.min(now + watch.recheck().min(expiry))) => {}
            }
        }
    }

    /// The state of this QR login, read by its own browser.
    async fn qr_state_of(
        &self,
        session: &Session,
        login: &QrLoginRecord,
    ) -> Result<LoginState, Error> {
        match &login.txn_id {
            Some(txn_id) => self.login_state(session, txn_id).await,
            None => {
                let now = self.clock.now();
                let left = login.expires_at.0 - now.0;
                Ok(LoginState {
                    status: if left > 0 {
                        TransactionStatus::Pending
                    } else {
                        TransactionStatus::Expired
                    },
                    hint: "waiting".into(),
                    seconds_left: left.max(0),
                    // No request yet, so no code: the phone's scan makes one.
                    verification_code: String::new(),
                })
            }
        }
    }

    /// Completes a QR login once its transaction was approved, as [`Self::login_complete`].
    pub async fn qr_login_complete(
        &self,
        session: &Session,
        id: &str,
    ) -> Result<(SessionToken, Session), Error> {
        let login = self.own_qr_login(session, id).await?;
        let txn_id = login.txn_id.ok_or(Rejection::NotPending)?;
        self.login_complete(session, &txn_id).await
    }

    /// Cancels a QR login from its browser: its transaction if a phone made one, else the QR
    /// login itself (no phone can take it any more).
    pub async fn qr_login_cancel(&self, session: &Session, id: &str) -> Result<(), Error> {
        let login = self.own_qr_login(session, id).await?;
        if let Some(txn_id) = login.txn_id {
            return self.login_cancel(session, &txn_id).await;
        }
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        tx.end_qr_login(&login.id, now).await?;
        tx.publish(taken(&login.id));
        tx.audit(
            now,
            "anonymous",
            "login.qr_cancelled",
            json!({ "qr": login.id }),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// `POST /api/app/v1/login/qr`: the app scanned `text`. A genuine, fresh frame of a QR
    /// login no phone has taken makes a login request for the device's own account, bound to
    /// the browser that shows the code.
    pub async fn qr_login_take(
        &self,
        device: &AuthenticatedDevice,
        caller: &Caller,
        text: &str,
    ) -> Result<QrLoginTaken, Error> {
        let scanned = qr::parse_qr(text).map_err(Rejection::QrLogin)?;
        let now = self.clock.now();
        self.take(device, caller, &scanned.id, LoginFlow::Qr, |login| {
            qr::check_qr(&scanned, &secret_of(login)?, login.created_at, now)
                .map_err(|r| Rejection::QrLogin(r).into())
        })
        .await
    }

    /// `POST /api/app/v1/login/link`: the app was opened by the link of a QR login on the same
    /// phone; the app calls from `caller`, which must be the browser's address.
    pub async fn link_login_take(
        &self,
        device: &AuthenticatedDevice,
        caller: &Caller,
        token: &str,
    ) -> Result<QrLoginTaken, Error> {
        let opened = qr::parse_link(token).map_err(Rejection::QrLogin)?;
        self.take(device, caller, &opened.id, LoginFlow::Link, |login| {
            qr::check_link(&opened, &secret_of(login)?).map_err(Rejection::QrLogin)?;
            qr::link_from_same_address(&login.ip, &domain::text::display_text(&caller.ip, 64))
                .map_err(|r| Rejection::QrLogin(r).into())
        })
        .await
    }

    /// One transaction: the QR login checked (`check`, then not taken, not expired), the login
    /// request made for the device's account, the QR login marked taken by it.
    async fn take(
        &self,
        device: &AuthenticatedDevice,
        caller: &Caller,
        id: &str,
        flow: LoginFlow,
        check: impl FnOnce(&QrLoginRecord) -> Result<(), Error>,
    ) -> Result<QrLoginTaken, Error> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        // An id nobody has (forged, or forgotten long after it expired) reads as ended.
        let login = tx
            .qr_login_for_update(id)
            .await?
            .ok_or(Rejection::QrLogin(QrRefusal::Closed))?;
        check(&login)?;
        qr::may_take(login.txn_id.is_some(), login.expires_at, now).map_err(Rejection::QrLogin)?;
        let device = &device.0;
        let user = tx
            .user(&device.user_id)
            .await?
            .ok_or_else(|| Error::Inconsistent("a device without its account".into()))?;
        let context = RequestContext {
            browser: login.browser.clone(),
            ip: login.ip.clone(),
        };
        let txn = self
            .create_transaction(
                &mut tx,
                Some((&user.id, format!("{} {}", user.given_name, user.surname))),
                RequestKind::Login,
                PORTAL_NAME,
                &login.session_binding,
                context,
                None,
                Some(flow),
            )
            .await?;
        if !tx.take_qr_login(&login.id, &txn.id).await? {
            return Err(Rejection::QrLogin(QrRefusal::Closed).into());
        }
        // The browser showing the code learns at once that a phone has it.
        tx.publish(taken(&login.id));
        tx.audit(
            now,
            &format!("device:{}", device.id),
            "login.qr_taken",
            json!({
                "qr": login.id,
                "txn": txn.id,
                "user": user.id,
                "flow": match flow {
                    LoginFlow::Qr => "qr",
                    LoginFlow::Link => "link",
                    LoginFlow::Backchannel => "backchannel",
                },
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(QrLoginTaken {
            // The app shows where the browser is, as for any request in its inbox.
            request: envelope_for(&txn, caller, self.settings.geoip.as_deref()),
            qr_id: login.id,
        })
    }

    /// Forgets QR logins long over (upkeep).
    pub(crate) async fn purge_qr_logins(&self) -> Result<(), Error> {
        let before = self.clock.now().plus_seconds(-KEEP_AFTER_EXPIRY);
        self.store.purge_qr_logins(before).await?;
        Ok(())
    }
}

/// The change the browser of a QR login waits for while no phone has taken it: taken, or
/// ended ([`Login::qr_login_state_waiting`]).
fn taken(qr_login_id: &str) -> Change {
    Change::QrLogin(qr_login_id.to_owned())
}

fn secret_of(login: &QrLoginRecord) -> Result<QrSecret, Error> {
    let bytes: [u8; 32] = login
        .secret
        .as_slice()
        .try_into()
        .map_err(|_| Error::Inconsistent(format!("QR login {} has a bad secret", login.id)))?;
    Ok(QrSecret(bytes))
}
