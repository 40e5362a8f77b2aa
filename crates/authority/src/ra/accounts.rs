//! Accounts and ConsentID activation codes (DESIGN §3-§4). An officer enrols a proofed person
//! (assurance high) and hands out an activation code: about 110 bits in Crockford base32, of
//! which 30 bits find the activation and 80 bits are the secret; only a hash of the secret is
//! stored, and five wrong secrets kill the activation.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde_json::json;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use domain::login::{ACTIVATION_LIFETIME, ACTIVATION_TRIES};
use domain::records::{ActivationRecord, UserRecord};
use domain::{AssuranceLevel, Jmbg, UnixTime, UserId};
use store::{AccountStore, AuditLog, LoginStore as _, SigningStore as _, Transaction as _};

use crate::ra::RaDb;
use crate::{Account, Error, Ra, Rejection};

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Characters of the lookup part.
const LOOKUP_LENGTH: usize = 6;
/// Characters of the secret part (80 bits).
const SECRET_LENGTH: usize = 16;

/// An activation code as the officer hands it out, grouped by dashes. Its `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct ActivationCode(pub String);

impl std::fmt::Debug for ActivationCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ActivationCode([redacted])")
    }
}

/// A person to enrol.
#[derive(Clone)]
pub struct NewUser {
    /// E-mail, the username.
    pub email: String,
    /// Given name.
    pub given_name: String,
    /// Surname.
    pub surname: String,
    /// JMBG.
    pub jmbg: Jmbg,
    /// An optional password for password login.
    pub password: Option<Zeroizing<String>>,
}

/// An officer's identity proofing of an existing account.
#[derive(Clone)]
pub struct Proofing {
    /// The account's e-mail.
    pub email: String,
    /// Given name as proofed.
    pub given_name: String,
    /// Surname as proofed.
    pub surname: String,
    /// JMBG as proofed.
    pub jmbg: Jmbg,
}

/// One field a proofing changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The field's name.
    pub field: &'static str,
    /// Its value before.
    pub old: String,
    /// Its value after.
    pub new: String,
}

fn random_code(length: usize) -> String {
    (0..length)
        .map(|_| {
            char::from(
                CROCKFORD
                    .get(usize::from(rand::random::<u8>() & 31))
                    .copied()
                    .unwrap_or(b'0'),
            )
        })
        .collect()
}

/// Upper-case, without dashes and spaces, with Crockford's look-alikes mapped (O→0, I/L→1).
pub fn normalise_code(code: &str) -> String {
    code.chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            other => other,
        })
        .collect()
}

fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A lower-case e-mail address, or a refusal naming the field.
pub fn normalise_email(email: &str) -> Result<String, Rejection> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, host)| {
            !local.is_empty()
                && host.contains('.')
                && !host.starts_with('.')
                && !host.ends_with('.')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(email)
    } else {
        Err(Rejection::Invalid("email"))
    }
}

fn valid_name(name: &str) -> bool {
    let count = name.trim().chars().count();
    (1..=64).contains(&count) && !name.chars().any(char::is_control)
}

/// Hashes a password with Argon2id (PHC string), on the calling thread: use cases call
/// [`hash_password_in_pool`].
fn hash_password(password: &str) -> Result<String, Error> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Inconsistent(format!("password hashing: {e}")))
}

/// Checks a password against a PHC string, on the calling thread: use cases call
/// [`password_matches_in_pool`].
fn password_matches(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

static PASSWORD_HASHES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many Argon2 hashes this process has made: tests compare the work of two paths that
/// must take the same time (registration of a known and of a new address).
#[doc(hidden)]
pub fn password_hashes_made() -> u64 {
    PASSWORD_HASHES.load(std::sync::atomic::Ordering::Relaxed)
}

/// Hashes a password with Argon2id on the blocking pool. Argon2 takes tens of milliseconds of
/// CPU and 19 MiB: on the runtime's threads it would stall every other request, and inside a
/// transaction it would hold SQLite's one writer (store `writer`) for all that time. Call it
/// before `begin`, never while holding a transaction.
pub async fn hash_password_in_pool(password: &str) -> Result<String, Error> {
    PASSWORD_HASHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let password = Zeroizing::new(password.to_owned());
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| Error::Inconsistent(format!("password hashing task: {e}")))?
}

/// Checks a password against a PHC string on the blocking pool (see [`hash_password_in_pool`]).
pub async fn password_matches_in_pool(password: &str, hash: &str) -> Result<bool, Error> {
    let password = Zeroizing::new(password.to_owned());
    let hash = hash.to_owned();
    tokio::task::spawn_blocking(move || password_matches(&password, &hash))
        .await
        .map_err(|e| Error::Inconsistent(format!("password check task: {e}")))
}

/// A self-service registration (DESIGN §3: a basic account once the e-mail is verified).
#[derive(Clone)]
pub struct Registration {
    /// E-mail, the username.
    pub email: String,
    /// Password (at least 10 characters).
    pub password: Zeroizing<String>,
    /// Given name.
    pub given_name: String,
    /// Surname.
    pub surname: String,
    /// JMBG as typed.
    pub jmbg: String,
}

/// Hours an e-mail verification link is valid.
const VERIFICATION_HOURS: i64 = 24;

impl<D: RaDb> Ra<D> {
    /// Registers a basic account and e-mails a verification link. An address that already has
    /// an account gets the same answer (no enumeration) and a notice by e-mail instead. Both
    /// paths do the same work, in the same order, so that the time does not tell them apart:
    /// 1. the Argon2 hash of the password (on the blocking pool, before the transaction);
    /// 2. the rate limit, the look-up, and one audit entry;
    /// 3. one e-mail, then the commit.
    ///
    /// A registration whose address was never verified is replaced (the mailbox's owner is the
    /// one who can finish it), and one older than 24 hours counts as gone.
    pub async fn register(&self, form: Registration, ip: &str) -> Result<(), Error> {
        let email = normalise_email(&form.email)?;
        if form.password.chars().count() < 10 {
            return Err(Rejection::Invalid("password").into());
        }
        if !valid_name(&form.given_name) {
            return Err(Rejection::Invalid("given_name").into());
        }
        if !valid_name(&form.surname) {
            return Err(Rejection::Invalid("surname").into());
        }
        let jmbg = Jmbg::parse(form.jmbg.trim()).map_err(|_| Rejection::Invalid("jmbg"))?;
        // 1. Hashed whether or not the address is known.
        let password_hash = hash_password_in_pool(&form.password).await?;
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        // 2.
        crate::rate_limit(
            &mut tx,
            &self.settings,
            now,
            &format!("register:ip:{ip}"),
            domain::RateLimit::REGISTER_PER_ADDRESS,
        )
        .await?;
        let base = &self.settings.public_url;
        let existing = match tx.user_by_email(&email).await? {
            Some(user) if !user.email_verified && user.assurance == AssuranceLevel::Basic => {
                tx.discard_unverified_user(&user.id).await?;
                None
            }
            other => other,
        };
        // Whose account page shows the message if it cannot be delivered.
        let mut mail_user = existing.as_ref().map(|user| user.id.clone());
        let mail = if existing.is_some() {
            tx.audit(
                now,
                "anonymous",
                "registration.existing_address",
                json!({ "ip": ip }),
            )
            .await?;
            let texts = &self.settings.registration_mails;
            crate::ra::mail::Mail {
                to: email,
                subject: texts.existing_subject.clone(),
                body: texts
                    .existing_body
                    .replace("{login}", &format!("{base}/login")),
                attachments: Vec::new(),
            }
        } else {
            let user = UserRecord {
                id: UserId::from(hex::encode(rand::random::<[u8; 16]>())),
                email: email.clone(),
                given_name: form.given_name.trim().to_owned(),
                surname: form.surname.trim().to_owned(),
                jmbg: jmbg.as_str().to_owned(),
                password_hash: Some(password_hash),
                email_verified: false,
                assurance: AssuranceLevel::Basic,
                created_at: now,
            };
            tx.insert_user(&user).await?;
            mail_user = Some(user.id.clone());
            let token = proto::b64(&rand::random::<[u8; 32]>());
            tx.insert_email_verification(
                &secret_hash(&token),
                &user.id,
                now.plus_seconds(VERIFICATION_HOURS * 3600),
            )
            .await?;
            tx.audit(
                now,
                "anonymous",
                "user.registered",
                json!({ "user": user.id, "assurance": "basic", "ip": ip }),
            )
            .await?;
            let texts = &self.settings.registration_mails;
            crate::ra::mail::Mail {
                to: email,
                subject: texts.verify_subject.clone(),
                body: texts
                    .verify_body
                    .replace("{name}", &format!("{} {}", user.given_name, user.surname))
                    .replace("{link}", &format!("{base}/verify-email?token={token}"))
                    .replace("{hours}", &VERIFICATION_HOURS.to_string()),
                attachments: Vec::new(),
            }
        };
        // 3. Queued in the same transaction (or, without a relay, written before the commit: if
        // the commit fails, a link to nothing is harmless; the other order could lose the link
        // of an account that exists).
        self.settings
            .mailer
            .enqueue(&mut tx, &mail, mail_user.as_ref(), now)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Discards unverified self-registrations older than 24 hours (upkeep), so that nobody
    /// holds an address they cannot read; their links had expired already.
    pub(crate) async fn purge_unverified_registrations(&self) -> Result<u64, Error> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let purged = tx
            .purge_unverified_users(now.plus_seconds(-VERIFICATION_HOURS * 3600))
            .await?;
        tx.commit().await?;
        Ok(purged)
    }

    /// Confirms an e-mail address from its link.
    pub async fn verify_email(&self, token: &str) -> Result<(), Error> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let user = tx
            .use_email_verification(&secret_hash(token.trim()), now)
            .await?
            .ok_or(Rejection::NotFound)?;
        tx.audit(
            now,
            &format!("user:{user}"),
            "user.email_verified",
            json!({}),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// An officer enrols a person whose identity was proofed (assurance high) and gets the
    /// first activation code.
    pub async fn add_user(
        &self,
        new: NewUser,
        actor: &str,
    ) -> Result<(Account, ActivationCode), Error> {
        let email = normalise_email(&new.email)?;
        if !valid_name(&new.given_name) {
            return Err(Rejection::Invalid("given_name").into());
        }
        if !valid_name(&new.surname) {
            return Err(Rejection::Invalid("surname").into());
        }
        if new
            .password
            .as_ref()
            .is_some_and(|p| p.chars().count() < 10)
        {
            return Err(Rejection::Invalid("password").into());
        }
        let now = self.clock.now();
        let password_hash = match new.password.as_deref() {
            Some(password) => Some(hash_password_in_pool(password).await?),
            None => None,
        };
        let mut tx = self.store.begin().await?;
        // An address held only by an unverified self-registration is taken over: whoever
        // registered it first cannot read its mail, and must not block the officer. A verified
        // account is the officer's `user proof`, never a second account.
        match tx.user_by_email(&email).await? {
            Some(existing)
                if !existing.email_verified && existing.assurance == AssuranceLevel::Basic =>
            {
                tx.discard_unverified_user(&existing.id).await?;
                tx.audit(
                    now,
                    actor,
                    "registration.discarded",
                    json!({ "user": existing.id }),
                )
                .await?;
            }
            Some(_) => return Err(Rejection::AlreadyExists.into()),
            None => {}
        }
        let user = UserRecord {
            id: UserId::from(hex::encode(rand::random::<[u8; 16]>())),
            email,
            given_name: new.given_name.trim().to_owned(),
            surname: new.surname.trim().to_owned(),
            jmbg: new.jmbg.as_str().to_owned(),
            password_hash,
            email_verified: true,
            assurance: AssuranceLevel::High,
            created_at: now,
        };
        tx.insert_user(&user).await?;
        tx.audit(
            now,
            actor,
            "user.enrolled",
            json!({ "user": user.id, "assurance": "high" }),
        )
        .await?;
        let code = self.create_activation(&mut tx, &user.id, actor).await?;
        tx.commit().await?;
        Ok((Account::from(user), code))
    }

    /// An officer proofs an existing account (DESIGN §3): the proofed name and JMBG replace the
    /// registered ones, the assurance becomes high, every session and API token ends, the
    /// password is removed (a later password login needs a new one: an e-mail or password
    /// compromise never reaches signing), and a first activation code is made. One transaction,
    /// audited; returns what changed, old → new.
    pub async fn proof_user(
        &self,
        proof: Proofing,
        actor: &str,
    ) -> Result<(Account, Vec<Change>, ActivationCode), Error> {
        let email = normalise_email(&proof.email)?;
        if !valid_name(&proof.given_name) {
            return Err(Rejection::Invalid("given_name").into());
        }
        if !valid_name(&proof.surname) {
            return Err(Rejection::Invalid("surname").into());
        }
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let before = tx
            .user_by_email(&email)
            .await?
            .ok_or(Rejection::UnknownUser)?;
        let given_name = proof.given_name.trim().to_owned();
        let surname = proof.surname.trim().to_owned();
        let jmbg = proof.jmbg.as_str().to_owned();
        let mut changes = Vec::new();
        for (field, old, new) in [
            ("given_name", before.given_name.clone(), given_name.clone()),
            ("surname", before.surname.clone(), surname.clone()),
            ("jmbg", before.jmbg.clone(), jmbg.clone()),
            (
                "assurance",
                before.assurance.as_str().to_owned(),
                AssuranceLevel::High.as_str().to_owned(),
            ),
            (
                "email_verified",
                before.email_verified.to_string(),
                true.to_string(),
            ),
            (
                "password",
                if before.password_hash.is_some() {
                    "set"
                } else {
                    "none"
                }
                .to_owned(),
                "none".to_owned(),
            ),
        ] {
            if old != new {
                changes.push(Change { field, old, new });
            }
        }
        tx.proof_user(&before.id, &given_name, &surname, &jmbg)
            .await?;
        // A new identity: every way in that the old one held ends here.
        let ended = tx.end_sessions_of_user(&before.id, now).await?
            + tx.revoke_api_tokens_of_user(&before.id, now).await?;
        let fields: Vec<&str> = changes.iter().map(|c| c.field).collect();
        tx.audit(now, actor, "user.proofed", json!({ "user": before.id, "assurance": "high", "changed": fields, "sessions_ended": ended }))
            .await?;
        let code = self.create_activation(&mut tx, &before.id, actor).await?;
        let user = tx
            .user(&before.id)
            .await?
            .ok_or_else(|| Error::Inconsistent("the proofed account vanished".into()))?;
        tx.commit().await?;
        Ok((Account::from(user), changes, code))
    }

    /// A new activation code for an enrolled person (earlier unused codes stop working).
    pub async fn new_activation_code(
        &self,
        email: &str,
        actor: &str,
    ) -> Result<ActivationCode, Error> {
        let email = normalise_email(email)?;
        let mut tx = self.store.begin().await?;
        let user = tx
            .user_by_email(&email)
            .await?
            .ok_or(Rejection::UnknownUser)?;
        if user.assurance != AssuranceLevel::High {
            return Err(Rejection::NotProofed.into());
        }
        let code = self.create_activation(&mut tx, &user.id, actor).await?;
        tx.commit().await?;
        Ok(code)
    }

    async fn create_activation(
        &self,
        tx: &mut D::Tx,
        user_id: &UserId,
        actor: &str,
    ) -> Result<ActivationCode, Error> {
        let now = self.clock.now();
        let lookup = random_code(LOOKUP_LENGTH);
        let secret = random_code(SECRET_LENGTH);
        let record = ActivationRecord {
            id: hex::encode(rand::random::<[u8; 16]>()),
            lookup: lookup.clone(),
            secret_hash: secret_hash(&secret),
            user_id: user_id.clone(),
            expires_at: now.plus_seconds(ACTIVATION_LIFETIME),
            tries_left: i64::from(ACTIVATION_TRIES),
            nonce: None,
            used_at: None,
        };
        tx.insert_activation(&record, now).await?;
        tx.audit(
            now,
            actor,
            "activation.created",
            json!({ "user": user_id, "activation": record.id }),
        )
        .await?;
        let full = format!("{lookup}{secret}");
        let grouped: Vec<String> = full
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        Ok(ActivationCode(grouped.join("-")))
    }
}

/// Checks a typed activation code inside `tx`: finds the activation by its lookup part,
/// counts a wrong secret, and refuses used, expired or exhausted codes alike. A free function:
/// `login` spends the code at activation, `ra` makes it.
pub(crate) async fn check_activation_code(
    tx: &mut (impl AccountStore + AuditLog),
    code: &str,
    now: UnixTime,
) -> Result<Result<ActivationRecord, Rejection>, Error> {
    let code = normalise_code(code);
    if code.len() != LOOKUP_LENGTH + SECRET_LENGTH || !code.bytes().all(|b| CROCKFORD.contains(&b))
    {
        return Ok(Err(Rejection::InvalidCode));
    }
    let (lookup, secret) = code.split_at(LOOKUP_LENGTH);
    let Some(activation) = tx.activation(lookup).await? else {
        return Ok(Err(Rejection::InvalidCode));
    };
    if activation.used_at.is_some() || activation.tries_left <= 0 || now >= activation.expires_at {
        return Ok(Err(Rejection::InvalidCode));
    }
    let given = secret_hash(secret);
    // Compare hashes in constant time: both are 64 hex characters.
    let same = given
        .bytes()
        .zip(activation.secret_hash.bytes())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0;
    if !same {
        tx.update_activation(
            &activation.id,
            activation.tries_left - 1,
            activation.nonce.as_deref(),
            None,
        )
        .await?;
        tx.audit(
            now,
            "app",
            "activation.wrong_code",
            json!({ "activation": activation.id, "tries_left": activation.tries_left - 1 }),
        )
        .await?;
        return Ok(Err(Rejection::InvalidCode));
    }
    Ok(Ok(activation))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_normalise_look_alikes_and_groups() {
        assert_eq!(normalise_code("abcd-efgh ijkl-mnop"), "ABCDEFGH1JK1MN0P");
    }

    #[test]
    fn emails_are_checked_and_lower_cased() {
        assert_eq!(
            normalise_email(" Petar@Example.RS "),
            Ok("petar@example.rs".into())
        );
        assert!(normalise_email("petar").is_err());
        assert!(normalise_email("petar@localhost").is_err());
        assert!(normalise_email("a b@example.rs").is_err());
    }

    #[test]
    fn passwords_verify_only_themselves() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(password_matches("correct horse battery", &hash));
        assert!(!password_matches("correct horse batterY", &hash));
        assert!(!password_matches("x", "not a hash"));
    }
}
