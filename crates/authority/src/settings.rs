//! What an authority is configured with: the provider's identity (DESIGN §7: configuration, not
//! code), addresses, lifetimes and the key algorithm.

use domain::{CrlSchedule, OcspSchedule, TimestampSchedule};
use pki::profile::{IssuerUrls, OrganizationName, ProviderPolicy};
use pki::KeyAlgorithm;

/// The provider's identity as it appears in CA certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderIdentity {
    /// countryName of the CAs.
    pub country: String,
    /// The provider's legal name (organizationName).
    pub organization: String,
    /// organizationIdentifier, e.g. `VATRS-110177886` (EN 319 412-1 §5.1.4).
    pub organization_identifier: String,
    /// commonName of the root CA.
    pub root_name: String,
    /// commonName of the qualified CA.
    pub qualified_name: String,
    /// commonName of the ConsentID CA.
    pub consentid_name: String,
    /// commonName of the time-stamping unit.
    pub tsa_name: String,
}

impl Default for ProviderIdentity {
    /// The seed's Office for IT and eGovernment.
    fn default() -> Self {
        Self {
            country: "RS".into(),
            organization: "Канцеларија за информационе технологије и електронску управу".into(),
            organization_identifier: "VATRS-110177886".into(),
            root_name: "eID Portal Root CA".into(),
            qualified_name: "eID Portal Qualified CA".into(),
            consentid_name: "eID Portal ConsentID CA".into(),
            tsa_name: "eID Portal TSA".into(),
        }
    }
}

/// Validity of cloud signing certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloudValidity {
    /// Whole calendar years (the default: 5).
    CalendarYears(i64),
    /// A number of days (`EIDPORTAL_CLOUD_CERT_VALIDITY_DAYS`).
    Days(i64),
}

/// Everything an authority needs besides its store, keys and clock.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The public base URL, e.g. `http://127.0.0.1:8080`; AIA and CRL DP point under it.
    pub public_url: String,
    /// The provider's identity in CA names.
    pub identity: ProviderIdentity,
    /// The provider's policy OIDs and statements.
    pub policy: ProviderPolicy,
    /// Key type of new keys.
    pub key_algorithm: KeyAlgorithm,
    /// CRL lifetimes.
    pub crl: CrlSchedule,
    /// OCSP lifetimes.
    pub ocsp: OcspSchedule,
    /// Lifetime of the TSA certificate.
    pub timestamping: TimestampSchedule,
    /// Validity of cloud signing certificates.
    pub cloud_validity: CloudValidity,
    /// Outgoing mail.
    pub mailer: crate::ra::mail::Mailer,
    /// The registration e-mails' texts (the server fills them from its message catalogues).
    pub registration_mails: RegistrationMails,
    /// Days before expiry from which a cloud certificate may be renewed.
    pub renewal_window_days: i64,
    /// The provider as the agreement names it.
    pub provider: crate::ra::agreement::Provider,
    /// The agreement's words for `cloud_validity` and `renewal_window_days` (the server makes
    /// them from its message catalogues whenever it sets those two).
    pub agreement_words: crate::ra::agreement::AgreementWords,
    /// The cloud certificate's e-mails (the server fills them from its message catalogues).
    pub cloud_mails: CloudMails,
    /// Turns every rate limit off: for load benchmarks only, never in production.
    pub dangerous_disable_rate_limits: bool,
    /// The folder of the audit chain's checkpoints (outside the database; `None`: none kept).
    pub audit_checkpoints: Option<std::path::PathBuf>,
    /// Web Push to ConsentID devices.
    pub push: PushSettings,
    /// Where browsers are, for the phone's warning about a login from elsewhere (`None`: the
    /// phone shows the browser's address alone).
    pub geoip: Option<std::sync::Arc<crate::login::geoip::GeoIp>>,
}

impl Settings {
    /// Defaults for a server at `public_url`.
    pub fn new(public_url: &str) -> Self {
        let base = public_url.trim_end_matches('/').to_owned();
        Self {
            policy: ProviderPolicy {
                // Placeholders under the Office's private arc (1.3.6.1.4.1.55016, inferred from
                // its TSA policy OID, reference/pki-profiles.md §2.1); a deployment sets its own.
                qualified_policy: const_oid::ObjectIdentifier::new_unwrap(
                    "1.3.6.1.4.1.55016.1.2.1",
                ),
                device_policy: const_oid::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.55016.1.2.2"),
                timestamp_policy: const_oid::ObjectIdentifier::new_unwrap(
                    "1.3.6.1.4.1.55016.1.3.1",
                ),
                cps_url: format!("{base}/docs/cps"),
                pds: vec![
                    ("https://eid.gov.rs/pds/pds_sr.pdf".into(), "sr".into()),
                    ("https://eid.gov.rs/pds/pds_en.pdf".into(), "en".into()),
                ],
                retention_years: 10,
            },
            public_url: base,
            identity: ProviderIdentity::default(),
            key_algorithm: KeyAlgorithm::EcdsaP256,
            crl: CrlSchedule::default(),
            ocsp: OcspSchedule::default(),
            timestamping: TimestampSchedule::default(),
            cloud_validity: CloudValidity::CalendarYears(5),
            dangerous_disable_rate_limits: false,
            audit_checkpoints: None,
            push: PushSettings::default(),
            geoip: None,
            renewal_window_days: 30,
            provider: crate::ra::agreement::Provider::default(),
            agreement_words: crate::ra::agreement::AgreementWords::default(),
            mailer: crate::ra::mail::Mailer::new(
                std::path::PathBuf::from("outbox"),
                "eID portal <noreply@eid.gov.rs>".into(),
            ),
            registration_mails: RegistrationMails::default(),
            cloud_mails: CloudMails::default(),
        }
    }

    /// The status and issuer URLs of the CA called `name`.
    pub fn urls_of(&self, ca: CaName) -> IssuerUrls {
        let base = &self.public_url;
        let file = ca.file_stem();
        IssuerUrls {
            ocsp: format!("{base}/ocsp"),
            ca_issuers: format!("{base}/pki/{file}.crt"),
            crl: format!("{base}/pki/{file}.crl"),
        }
    }

    /// The distinguished name of the time-stamping unit: the provider's, with its own CN.
    pub fn tsa_name(&self) -> OrganizationName {
        let mut name = self.ca_name(CaName::Qualified);
        name.common_name = self.identity.tsa_name.clone();
        name
    }

    /// The distinguished name of a CA of the hierarchy.
    pub fn ca_name(&self, ca: CaName) -> OrganizationName {
        let id = &self.identity;
        OrganizationName {
            country: id.country.clone(),
            organization: id.organization.clone(),
            organization_identifier: id.organization_identifier.clone(),
            common_name: match ca {
                CaName::Root => id.root_name.clone(),
                CaName::Qualified => id.qualified_name.clone(),
                CaName::ConsentId => id.consentid_name.clone(),
            },
        }
    }
}

/// The three CAs of the hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CaName {
    /// The self-signed root.
    Root,
    /// Issues qualified cloud signing certificates.
    Qualified,
    /// Issues ConsentID device certificates.
    ConsentId,
}

impl CaName {
    /// All three, root first.
    pub const ALL: [Self; 3] = [Self::Root, Self::Qualified, Self::ConsentId];
    /// The two issuing CAs.
    pub const ISSUING: [Self; 2] = [Self::Qualified, Self::ConsentId];

    /// The name in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Root => "root",
            Self::Qualified => "qualified",
            Self::ConsentId => "consentid",
        }
    }

    /// The file name under `/pki/` without extension.
    pub fn file_stem(self) -> &'static str {
        match self {
            Self::Root => "root",
            Self::Qualified => "qualified-ca",
            Self::ConsentId => "consentid-ca",
        }
    }

    /// The CA with this store name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

/// The texts of the two registration e-mails. In the bodies, `{name}`, `{link}`, `{hours}` and
/// `{login}` are filled in when a mail is sent.
#[derive(Debug, Clone)]
pub struct RegistrationMails {
    /// Subject of the verification link's mail.
    pub verify_subject: String,
    /// Body of the verification link's mail (`{name}`, `{link}`, `{hours}`).
    pub verify_body: String,
    /// Subject of the notice to an address that already has an account.
    pub existing_subject: String,
    /// Body of that notice (`{login}`).
    pub existing_body: String,
}

impl Default for RegistrationMails {
    fn default() -> Self {
        Self {
            verify_subject: "Потврдите адресу електронске поште / Confirm your e-mail address".into(),
            verify_body: "Поштовани/а {name},\n\nда бисте потврдили адресу и завршили регистрацију, отворите:\n{link}\n\n\
                          To confirm your address and finish the registration, open the link above (valid {hours} hours).\n"
                .into(),
            existing_subject: "Регистрација на Порталу за електронску идентификацију / Registration".into(),
            existing_body: "Неко је покушао да региструје нови налог са овом адресом, а налог већ постоји.\n\
                            Ако сте то били ви, пријавите се на {login}.\n\n\
                            Someone tried to register a new account with this address, which already has one.\n\
                            If it was you, log in at {login}.\n"
                .into(),
        }
    }
}

/// Web Push settings.
#[derive(Debug, Clone, Default)]
pub struct PushSettings {
    /// The VAPID `sub` claim, a `mailto:` or `https:` URL; `None`: the portal's public URL.
    pub subject: Option<String>,
    /// Accepts `http://` endpoints on loopback addresses: for tests' local push services only.
    pub dangerous_allow_http_loopback: bool,
    /// Pushes also to loopback, private (RFC 1918), shared (RFC 6598), link-local and
    /// unique-local addresses (`domain::push::may_push_to`): for tests' local push services
    /// only. Off, an endpoint's host must resolve to public addresses only.
    pub dangerous_allow_private_endpoints: bool,
}

/// The texts of the cloud certificate's e-mails (the server fills them from its message
/// catalogues). Placeholders in braces are filled when a mail is sent: `{name}`, `{serial}`,
/// `{until}`, `{number}` and `{agreement}` (the agreement's text) in the issuance mail;
/// `{serial}`, `{until}` and `{old}` in the renewal mail; `{serial}` in the revocation mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudMails {
    /// Subject of the issuance mail (the agreement attached).
    pub issued_subject: String,
    /// Its body.
    pub issued_body: String,
    /// Subject of the renewal mail.
    pub renewed_subject: String,
    /// Its body.
    pub renewed_body: String,
    /// Subject of the revocation mail.
    pub revoked_subject: String,
    /// Its body.
    pub revoked_body: String,
    /// Subject of the mail after **Опозови све сертификате**.
    pub revoked_all_subject: String,
    /// Its body.
    pub revoked_all_body: String,
}

impl Default for CloudMails {
    /// The server's catalogue texts (a server test holds them equal), for settings made without it.
    fn default() -> Self {
        Self {
            issued_subject: "Уговор и квалификовани електронски сертификат у клауду / Agreement and qualified electronic certificate in the cloud".into(),
            issued_body: "Поштовани/а {name}, издат вам је квалификовани електронски сертификат у клауду (серијски број {serial}), важи до {until}. У прилогу је закључени уговор број {number}.\n\nDear {name}, your qualified electronic certificate in the cloud was issued (serial number {serial}), valid until {until}. The agreement number {number} is attached.\n\n{agreement}".into(),
            renewed_subject: "Сертификат у клауду је обновљен / Cloud certificate renewed".into(),
            renewed_body: "Ваш сертификат у клауду је обновљен: нови серијски број {serial}, важи до {until}. Претходни ({old}) је опозван.\n\nYour cloud certificate was renewed: new serial number {serial}, valid until {until}. The previous one ({old}) was revoked.\n".into(),
            revoked_subject: "Сертификат у клауду је опозван / Cloud certificate revoked".into(),
            revoked_body: "Ваш сертификат у клауду (серијски број {serial}) је опозван, а његов кључ уништен. Апликација ConsentID остаје активна.\n\nYour cloud certificate (serial number {serial}) was revoked and its key destroyed. ConsentID stays active.\n".into(),
            revoked_all_subject: "Сви сертификати су опозвани / All certificates revoked".into(),
            revoked_all_body: "Сви ваши сертификати су опозвани, укључујући сертификат апликације ConsentID, која више није активна. За поновну активацију обратите се службенику.\n\nAll your certificates were revoked, ConsentID's included, which is no longer active. To activate it again, contact an officer.\n".into(),
        }
    }
}
