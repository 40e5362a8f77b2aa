//! The app's data: one JSON file, `device.json`, in the app's home folder.
//!
//! It holds the server address, the device id, the device key (on a phone this would be a
//! non-exportable keystore key), the PIN salt, the server keys pinned at activation, the
//! device certificate and the local state. Nothing derived from the PIN is stored, so a stolen
//! file gives no way to test PINs offline: there is no verifier (DESIGN §4).
//!
//! The file is replaced atomically (temporary file, fsync, rename, fsync of the folder) with
//! mode 0600 in a folder of mode 0700.

use std::fmt;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use p256::{PublicKey, SecretKey};
use proto::app::DeviceStatus;
use serde::{Deserialize, Serialize};
use x509_cert::der::{Decode, Encode};
use zeroize::{Zeroize, Zeroizing};

use crate::error::Error;
use crate::pin::PinSalt;
use crate::server::ServerUrl;

/// The keystore's file name inside the home folder.
pub const FILE_NAME: &str = "device.json";

/// The device key `D` (P-256): signs every API request and every approval.
pub struct DeviceKey(SecretKey);

impl DeviceKey {
    /// A fresh random device key.
    pub fn generate() -> Self {
        Self(SecretKey::random(&mut rand::rngs::OsRng))
    }

    /// The public key, SubjectPublicKeyInfo DER.
    pub fn public_key_der(&self) -> Vec<u8> {
        proto::crypto::public_key_der(&self.0.public_key())
    }

    /// ECDSA-SHA256 signature, DER.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        proto::crypto::sign(&self.0, message)
    }
}

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeviceKey([redacted])")
    }
}

/// The device certificate issued by the ConsentID CA at activation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCertificate {
    der: Vec<u8>,
    serial: String,
    not_before: String,
    not_after: String,
}

impl DeviceCertificate {
    /// Reads a certificate from the server and checks that it certifies `device_public_key`
    /// (SPKI DER): a certificate for another key would make every later signature useless.
    pub fn for_device(der: Vec<u8>, serial: &str, device_public_key: &[u8]) -> Result<Self, Error> {
        let certificate = x509_cert::Certificate::from_der(&der)
            .map_err(|e| Error::Certificate(format!("not X.509 DER: {e}")))?;
        let tbs = &certificate.tbs_certificate;
        let spki = tbs
            .subject_public_key_info
            .to_der()
            .map_err(|e| Error::Certificate(format!("unreadable public key: {e}")))?;
        if spki != device_public_key {
            return Err(Error::Certificate(
                "it certifies another key than this device's".to_owned(),
            ));
        }
        if serial.is_empty() || !serial.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::Certificate(format!(
                "the serial {serial:?} is not hex"
            )));
        }
        Ok(Self {
            serial: serial.to_owned(),
            not_before: tbs.validity.not_before.to_date_time().to_string(),
            not_after: tbs.validity.not_after.to_date_time().to_string(),
            der,
        })
    }

    /// The certificate, DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Its serial number in hex, as the server gave it.
    pub fn serial(&self) -> &str {
        &self.serial
    }

    /// Start of validity, RFC 3339 (UTC).
    pub fn not_before(&self) -> &str {
        &self.not_before
    }

    /// End of validity, RFC 3339 (UTC).
    pub fn not_after(&self) -> &str {
        &self.not_after
    }
}

/// The secrets and pinned keys of an activated device; absent once wiped.
#[derive(Debug)]
pub(crate) struct Credentials {
    pub(crate) device_key: DeviceKey,
    pub(crate) pin_salt: PinSalt,
    /// SPKI DER of the server's envelope-signing key, pinned at activation.
    pub(crate) server_signing_key: Vec<u8>,
    /// The server's key for sealed PIN material, pinned at activation.
    pub(crate) server_encryption_key: PublicKey,
    pub(crate) certificate: DeviceCertificate,
}

/// The app's stored data (see the module documentation).
#[derive(Debug)]
pub struct Keystore {
    home: PathBuf,
    state: DeviceStatus,
    server: ServerUrl,
    device_id: String,
    credentials: Option<Credentials>,
}

/// `device.json` as written. Secret fields are wiped when the value is dropped.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    state: DeviceStatus,
    server: String,
    device_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pin_salt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    server_signing_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    server_encryption_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    certificate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    certificate_serial: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    not_before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    not_after: Option<String>,
}

impl Drop for Record {
    fn drop(&mut self) {
        self.device_key.zeroize();
        self.pin_salt.zeroize();
    }
}

impl Keystore {
    /// The default home folder: `$CONSENTID_HOME`, else `$HOME/.consentid`.
    pub fn default_home() -> Result<PathBuf, Error> {
        if let Some(home) = std::env::var_os("CONSENTID_HOME").filter(|v| !v.is_empty()) {
            return Ok(PathBuf::from(home));
        }
        match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => Ok(PathBuf::from(home).join(".consentid")),
            None => Err(Error::NoHome),
        }
    }

    /// Whether `home` holds a keystore file (in any state).
    pub fn exists(home: &Path) -> bool {
        home.join(FILE_NAME).exists()
    }

    /// Reads the keystore in `home`.
    pub fn open(home: &Path) -> Result<Self, Error> {
        let path = home.join(FILE_NAME);
        let bytes = match fs::read(&path) {
            Ok(bytes) => Zeroizing::new(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotActivated {
                    home: home.to_owned(),
                })
            }
            Err(source) => return Err(Error::Io { path, source }),
        };
        let corrupt = |detail: String| Error::CorruptKeystore {
            path: path.clone(),
            detail,
        };
        let record: Record = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        let server = ServerUrl::parse(&record.server).map_err(|e| match e {
            // An earlier release allowed plain http:// to any host: say so, not "damaged".
            Error::InvalidServerUrl { .. } if record.server.trim_start().starts_with("http://") => {
                Error::PlainHttpHome {
                    url: record.server.clone(),
                }
            }
            e => corrupt(e.to_string()),
        })?;
        let credentials = match record.state {
            DeviceStatus::Deactivated => None,
            DeviceStatus::Active | DeviceStatus::PinLocked => {
                Some(read_credentials(&record).map_err(corrupt)?)
            }
        };
        Ok(Self {
            home: home.to_owned(),
            state: record.state,
            server,
            device_id: record.device_id.clone(),
            credentials,
        })
    }

    /// Makes sure `home` exists with mode 0700 and does not hold an active device, before an
    /// activation spends its single-use code.
    pub(crate) fn prepare_home(home: &Path) -> Result<(), Error> {
        if Self::exists(home) {
            match Self::open(home) {
                Ok(existing) if existing.state == DeviceStatus::Active => {
                    return Err(Error::AlreadyActive {
                        home: home.to_owned(),
                    })
                }
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        create_private_dir(home)
    }

    /// A new keystore for a freshly activated device, saved at once.
    pub(crate) fn create(
        home: &Path,
        server: ServerUrl,
        device_id: String,
        credentials: Credentials,
    ) -> Result<Self, Error> {
        let keystore = Self {
            home: home.to_owned(),
            state: DeviceStatus::Active,
            server,
            device_id,
            credentials: Some(credentials),
        };
        keystore.save()?;
        Ok(keystore)
    }

    /// The home folder.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The local state: `active`, `pin_locked` or `deactivated`.
    pub fn state(&self) -> DeviceStatus {
        self.state
    }

    /// The server this device belongs to.
    pub fn server(&self) -> &ServerUrl {
        &self.server
    }

    /// The device id the server gave.
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// The device certificate (none once wiped).
    pub fn certificate(&self) -> Option<&DeviceCertificate> {
        self.credentials.as_ref().map(|c| &c.certificate)
    }

    /// The keys, or [`Error::Deactivated`] once wiped.
    pub(crate) fn credentials(&self) -> Result<&Credentials, Error> {
        self.credentials.as_ref().ok_or(Error::Deactivated)
    }

    /// Records a state the server reported; `deactivated` wipes the keys.
    pub fn set_state(&mut self, state: DeviceStatus) -> Result<(), Error> {
        match state {
            DeviceStatus::Deactivated => self.wipe(),
            _ if state == self.state => Ok(()),
            _ => {
                self.state = state;
                self.save()
            }
        }
    }

    /// Deletes the keys, the salt and the certificate, keeping only the state
    /// (`deactivated`), the server and the device id so that the app can still say so.
    pub fn wipe(&mut self) -> Result<(), Error> {
        self.credentials = None;
        self.state = DeviceStatus::Deactivated;
        self.save()
    }

    /// Writes the file atomically.
    fn save(&self) -> Result<(), Error> {
        let credentials = self.credentials.as_ref();
        let der_b64 = |key: &PublicKey| proto::b64(&proto::crypto::public_key_der(key));
        let device_key = match credentials {
            Some(c) => Some(
                pkcs8_b64(&c.device_key).map_err(|detail| Error::CorruptKeystore {
                    path: self.home.join(FILE_NAME),
                    detail,
                })?,
            ),
            None => None,
        };
        let record = Record {
            state: self.state,
            server: self.server.as_str().to_owned(),
            device_id: self.device_id.clone(),
            device_key,
            pin_salt: credentials.map(|c| proto::b64(c.pin_salt.as_bytes())),
            server_signing_key: credentials.map(|c| proto::b64(&c.server_signing_key)),
            server_encryption_key: credentials.map(|c| der_b64(&c.server_encryption_key)),
            certificate: credentials.map(|c| proto::b64(c.certificate.der())),
            certificate_serial: credentials.map(|c| c.certificate.serial().to_owned()),
            not_before: credentials.map(|c| c.certificate.not_before().to_owned()),
            not_after: credentials.map(|c| c.certificate.not_after().to_owned()),
        };
        let mut bytes = Zeroizing::new(serde_json::to_vec_pretty(&record).map_err(|e| {
            Error::CorruptKeystore {
                path: self.home.join(FILE_NAME),
                detail: e.to_string(),
            }
        })?);
        bytes.push(b'\n');
        create_private_dir(&self.home)?;
        write_atomically(&self.home, FILE_NAME, &bytes)
    }
}

fn pkcs8_b64(key: &DeviceKey) -> Result<String, String> {
    let document = key.0.to_pkcs8_der().map_err(|e| e.to_string())?;
    Ok(proto::b64(document.as_bytes()))
}

fn read_credentials(record: &Record) -> Result<Credentials, String> {
    fn field<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, String> {
        value
            .as_deref()
            .ok_or_else(|| format!("`{name}` is missing"))
    }
    fn bytes(value: &Option<String>, name: &str) -> Result<Vec<u8>, String> {
        proto::unb64(field(value, name)?).map_err(|_| format!("`{name}` is not base64url"))
    }
    let key_der = Zeroizing::new(bytes(&record.device_key, "device_key")?);
    let device_key = DeviceKey(
        SecretKey::from_pkcs8_der(&key_der)
            .map_err(|_| "`device_key` is not a P-256 PKCS#8 key")?,
    );
    let salt = Zeroizing::new(bytes(&record.pin_salt, "pin_salt")?);
    let pin_salt = PinSalt::from_bytes(&salt).ok_or("`pin_salt` is not 32 bytes")?;
    let server_signing_key = bytes(&record.server_signing_key, "server_signing_key")?;
    proto::crypto::public_key(&server_signing_key)
        .map_err(|_| "`server_signing_key` is not a P-256 key")?;
    let server_encryption_key = proto::crypto::public_key(&bytes(
        &record.server_encryption_key,
        "server_encryption_key",
    )?)
    .map_err(|_| "`server_encryption_key` is not a P-256 key")?;
    let certificate = DeviceCertificate {
        der: bytes(&record.certificate, "certificate")?,
        serial: field(&record.certificate_serial, "certificate_serial")?.to_owned(),
        not_before: field(&record.not_before, "not_before")?.to_owned(),
        not_after: field(&record.not_after, "not_after")?.to_owned(),
    };
    Ok(Credentials {
        device_key,
        pin_salt,
        server_signing_key,
        server_encryption_key,
        certificate,
    })
}

/// Creates `dir` (and missing parents) and sets its mode to 0700.
fn create_private_dir(dir: &Path) -> Result<(), Error> {
    let io = |source| Error::Io {
        path: dir.to_owned(),
        source,
    };
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
        builder.mode(0o700);
        builder.create(dir).map_err(io)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io)?;
    }
    #[cfg(not(unix))]
    builder.create(dir).map_err(io)?;
    Ok(())
}

/// Replaces `dir/name` with `bytes` so that a crash leaves either the old or the new file:
/// 1. write a temporary file (mode 0600) beside it and fsync it;
/// 2. rename it over the old file (atomic on POSIX);
/// 3. fsync the folder so that the rename itself survives a power loss.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), Error> {
    let suffix: u64 = rand::Rng::gen(&mut rand::rngs::OsRng);
    let temporary = dir.join(format!(".{name}.{suffix:016x}.tmp"));
    let target = dir.join(name);
    let write = || -> std::io::Result<()> {
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temporary, &target)
    };
    if let Err(source) = write() {
        let _ = fs::remove_file(&temporary);
        return Err(Error::Io {
            path: target,
            source,
        });
    }
    #[cfg(unix)]
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| Error::Io {
            path: dir.to_owned(),
            source,
        })?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A keystore with real keys and a placeholder certificate; the server's secret keys are
    /// returned so that tests can play the server.
    pub(crate) fn active_keystore(home: &Path, server: &str) -> (Keystore, SecretKey, SecretKey) {
        let signing = SecretKey::random(&mut rand::rngs::OsRng);
        let encryption = SecretKey::random(&mut rand::rngs::OsRng);
        let credentials = Credentials {
            device_key: DeviceKey::generate(),
            pin_salt: PinSalt::random(),
            server_signing_key: proto::crypto::public_key_der(&signing.public_key()),
            server_encryption_key: encryption.public_key(),
            certificate: DeviceCertificate {
                der: vec![0x30, 0x00],
                serial: "0a1b2c".into(),
                not_before: "2026-01-01T00:00:00Z".into(),
                not_after: "2028-01-01T00:00:00Z".into(),
            },
        };
        let server = ServerUrl::parse(server).unwrap();
        let keystore = Keystore::create(home, server, "dev-1".into(), credentials).unwrap();
        (keystore, signing, encryption)
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt as _;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_saved_keystore_reads_back_with_private_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("nested").join("consentid");
        let (keystore, _, _) = active_keystore(&home, "http://127.0.0.1:8080/");
        let reopened = Keystore::open(&home).unwrap();
        assert_eq!(reopened.state(), DeviceStatus::Active);
        assert_eq!(reopened.device_id(), "dev-1");
        assert_eq!(reopened.server().as_str(), "http://127.0.0.1:8080");
        assert_eq!(reopened.certificate(), keystore.certificate());
        let (a, b) = (
            keystore.credentials().unwrap(),
            reopened.credentials().unwrap(),
        );
        assert_eq!(a.device_key.public_key_der(), b.device_key.public_key_der());
        assert_eq!(a.pin_salt.as_bytes(), b.pin_salt.as_bytes());
        assert_eq!(a.server_signing_key, b.server_signing_key);
        #[cfg(unix)]
        {
            assert_eq!(mode(&home.join(FILE_NAME)), 0o600);
            assert_eq!(mode(&home), 0o700);
        }
        let leftovers: Vec<_> = fs::read_dir(&home)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            leftovers,
            vec![std::ffi::OsString::from(FILE_NAME)],
            "no temporary file is left behind"
        );
        assert!(!format!("{reopened:?}").contains(&proto::b64(b.pin_salt.as_bytes())));
    }

    #[test]
    fn saving_replaces_the_file_and_keeps_it_private() {
        let dir = tempfile::tempdir().unwrap();
        let (mut keystore, _, _) = active_keystore(dir.path(), "http://localhost:8080");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            fs::set_permissions(
                dir.path().join(FILE_NAME),
                fs::Permissions::from_mode(0o644),
            )
            .unwrap();
        }
        keystore.set_state(DeviceStatus::PinLocked).unwrap();
        assert_eq!(
            Keystore::open(dir.path()).unwrap().state(),
            DeviceStatus::PinLocked
        );
        #[cfg(unix)]
        assert_eq!(
            mode(&dir.path().join(FILE_NAME)),
            0o600,
            "the new file has its own 0600 mode"
        );
    }

    #[test]
    fn wiping_leaves_only_state_server_and_device() {
        let dir = tempfile::tempdir().unwrap();
        let (mut keystore, _, _) = active_keystore(dir.path(), "http://localhost:8080");
        keystore.wipe().unwrap();
        let text = fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut keys: Vec<_> = value.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["device_id", "server", "state"]);
        assert_eq!(value["state"], "deactivated");
        let reopened = Keystore::open(dir.path()).unwrap();
        assert_eq!(reopened.state(), DeviceStatus::Deactivated);
        assert!(reopened.certificate().is_none());
        assert!(matches!(reopened.credentials(), Err(Error::Deactivated)));
    }

    #[test]
    fn nothing_pin_derived_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        active_keystore(dir.path(), "http://localhost:8080");
        let value: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(dir.path().join(FILE_NAME)).unwrap()).unwrap();
        let mut keys: Vec<_> = value.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "certificate",
                "certificate_serial",
                "device_id",
                "device_key",
                "not_after",
                "not_before",
                "pin_salt",
                "server",
                "server_encryption_key",
                "server_signing_key",
                "state"
            ]
        );
    }

    #[test]
    fn a_missing_or_damaged_keystore_is_named() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            Keystore::open(dir.path()),
            Err(Error::NotActivated { .. })
        ));
        fs::write(
            dir.path().join(FILE_NAME),
            br#"{"state":"active","server":"https://x","device_id":"d"}"#,
        )
        .unwrap();
        match Keystore::open(dir.path()) {
            Err(Error::CorruptKeystore { detail, .. }) => {
                assert!(detail.contains("device_key"), "{detail}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_earlier_release_home_with_plain_http_elsewhere_is_named_not_damaged() {
        let dir = tempfile::tempdir().unwrap();
        active_keystore(dir.path(), "http://localhost:8080");
        let path = dir.path().join(FILE_NAME);
        let mut record: serde_json::Value =
            serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        record["server"] = "http://eid.example:8080".into();
        fs::write(&path, serde_json::to_vec(&record).unwrap()).unwrap();
        match Keystore::open(dir.path()) {
            Err(Error::PlainHttpHome { url }) => assert_eq!(url, "http://eid.example:8080"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_active_home_is_not_activated_over() {
        let dir = tempfile::tempdir().unwrap();
        let (mut keystore, _, _) = active_keystore(dir.path(), "http://localhost:8080");
        assert!(matches!(
            Keystore::prepare_home(dir.path()),
            Err(Error::AlreadyActive { .. })
        ));
        keystore.set_state(DeviceStatus::PinLocked).unwrap();
        assert!(
            Keystore::prepare_home(dir.path()).is_ok(),
            "a locked device is re-activated"
        );
        keystore.wipe().unwrap();
        assert!(Keystore::prepare_home(dir.path()).is_ok());
    }
}
