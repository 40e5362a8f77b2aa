//! Signing PDF documents in the portal (DESIGN §6, the service **Потписивање документа**):
//! the user uploads PDFs, each is prepared for a PAdES signature, the user approves the exact
//! hashes in ConsentID, and the portal signs them with the user's cloud key and finishes them at
//! the chosen level: B-B, B-T (a signature timestamp from our own TSA) or B-LT (also the
//! certificates, OCSP responses and CRLs in the document's DSS, for validation without network).
//!
//! Crash safety: the upload and the approval request are one transaction; the approval, the
//! signature values and the job's `signed` state are one transaction (the key is used inside
//! it); the finishing (timestamp, validation data) is redone from the stored signature values
//! until the finished PDFs are stored, so an approved signature is never lost.

use der::Encode;
use serde_json::json;
use sha2::{Digest as _, Sha256};

use domain::login::effective_status;
use domain::records::{SigningDocumentRecord, SigningJobRecord};
use domain::signing::{AuthorizationStatus, HashAlgorithm, SignatureScheme};
use domain::TransactionStatus;
use pades::{PadesError, Prepared, SignatureAlgorithm};
use pki::KeyAlgorithm;
use proto::app::RequestContext;
use store::{AuditLog as _, SigningStore as _, Transaction as _};

use crate::login::Session;
use crate::login::PORTAL_NAME;
use crate::settings::CaName;
use crate::signing::{usable, Credential, Settled, SignRequest, SigningDb, SigningRefusal};
use crate::{Account, Error, Signing};

/// The largest PDF accepted, bytes.
pub const MAX_DOCUMENT_BYTES: usize = 10 * 1024 * 1024;
/// The most documents in one signing.
pub const MAX_DOCUMENTS: usize = 10;
/// The signature field the portal adds (numbered if the document has one of that name).
const FIELD_NAME: &str = "eidportal";

/// The PAdES baseline level of a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureLevel {
    /// PAdES-B-B: the signature.
    BasicB,
    /// PAdES-B-T: with a signature timestamp.
    BasicT,
    /// PAdES-B-LT: with the timestamp and the validation data (certificates, OCSP, CRLs).
    BasicLt,
}

impl SignatureLevel {
    /// `b-b`, `b-t` or `b-lt`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BasicB => "b-b",
            Self::BasicT => "b-t",
            Self::BasicLt => "b-lt",
        }
    }

    /// Parses [`SignatureLevel::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "b-b" => Some(Self::BasicB),
            "b-t" => Some(Self::BasicT),
            "b-lt" => Some(Self::BasicLt),
            _ => None,
        }
    }
}

/// A file as uploaded.
#[derive(Clone)]
pub struct UploadedDocument {
    /// Its name on the user's computer (shown back, never used as a path).
    pub filename: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// Why documents cannot be signed (the portal shows each in the user's language). Carried by
/// [`Error::Document`]; a refused signing step is an [`Error::Signing`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentRefusal {
    /// No file was chosen.
    #[error("no document")]
    NoDocuments,
    /// More than [`MAX_DOCUMENTS`].
    #[error("too many documents")]
    TooMany,
    /// A file is larger than [`MAX_DOCUMENT_BYTES`].
    #[error("{0}: too large")]
    TooLarge(String),
    /// A file is not a PDF.
    #[error("{0}: not a PDF")]
    NotPdf(String),
    /// A file is a damaged PDF, or one we cannot sign (encrypted, hybrid).
    #[error("{0}: damaged or unsupported PDF: {1}")]
    Unreadable(String, String),
    /// Signing needs a login with ConsentID (the high assurance level).
    #[error("a ConsentID login is needed")]
    NeedsConsentIdLogin,
    /// The user has no cloud certificate that may sign.
    #[error("no active cloud certificate")]
    NoCertificate,
    /// No such job among the user's.
    #[error("not found")]
    NotFound,
}

/// A document of a job as the portal shows it.
#[derive(Debug, Clone)]
pub struct DocumentView {
    /// The uploaded name.
    pub filename: String,
    /// The short fingerprint of the hash the user approves, as the app shows it.
    pub fingerprint: String,
    /// Whether the signed PDF is ready.
    pub ready: bool,
}

/// Where a job is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobStatus {
    /// Waiting for the approval in ConsentID.
    Pending {
        /// Seconds until the request expires.
        seconds_left: i64,
    },
    /// Signed; the documents may be downloaded.
    Done,
    /// Not signed: denied, expired, locked, revoked or interrupted (the `hint`).
    Failed(String),
}

/// A job as the portal shows it.
#[derive(Debug, Clone)]
pub struct JobView {
    /// Its id.
    pub id: String,
    /// The chosen level.
    pub level: SignatureLevel,
    /// Where it is.
    pub status: JobStatus,
    /// Its documents.
    pub documents: Vec<DocumentView>,
}

fn unreadable(filename: &str, error: PadesError) -> DocumentRefusal {
    match error {
        PadesError::NotPdf => DocumentRefusal::NotPdf(filename.to_owned()),
        PadesError::TooLarge => DocumentRefusal::TooLarge(filename.to_owned()),
        other => DocumentRefusal::Unreadable(filename.to_owned(), other.to_string()),
    }
}

/// The scheme, PAdES algorithm and RSA padding of a credential's key.
fn scheme_of(credential: &Credential) -> (SignatureScheme, SignatureAlgorithm) {
    match credential.algorithm {
        KeyAlgorithm::EcdsaP256 => (SignatureScheme::Ecdsa, SignatureAlgorithm::EcdsaSha256),
        KeyAlgorithm::Rsa3072 => (
            SignatureScheme::RsaPkcs1,
            SignatureAlgorithm::RsaPkcs1Sha256,
        ),
    }
}

impl<D: SigningDb> Signing<D> {
    fn signer_of(&self, session: &Session) -> Result<Account, Error> {
        let user = session
            .user
            .clone()
            .ok_or(DocumentRefusal::NeedsConsentIdLogin)?;
        if !session.by_consentid() {
            return Err(DocumentRefusal::NeedsConsentIdLogin.into());
        }
        Ok(user)
    }

    /// Uploads documents for signing at `level` and asks the user to approve them in
    /// ConsentID; returns the job's id. Nothing is stored for a refused upload.
    pub async fn start_document_signing(
        &self,
        session: &Session,
        documents: Vec<UploadedDocument>,
        level: SignatureLevel,
        context: RequestContext,
    ) -> Result<String, Error> {
        let user = self.signer_of(session)?;
        if documents.is_empty() {
            return Err(DocumentRefusal::NoDocuments.into());
        }
        if documents.len() > MAX_DOCUMENTS {
            return Err(DocumentRefusal::TooMany.into());
        }
        if let Some(big) = documents
            .iter()
            .find(|d| d.bytes.len() > MAX_DOCUMENT_BYTES)
        {
            return Err(DocumentRefusal::TooLarge(big.filename.clone()).into());
        }
        let credential = self
            .credentials(&user, true)
            .await?
            .into_iter()
            .next()
            .ok_or(DocumentRefusal::NoCertificate)?;
        let (_, algorithm) = scheme_of(&credential);
        let chain: Vec<Vec<u8>> = credential.chain.iter().map(|c| c.0.clone()).collect();
        let now = self.clock.now();
        // Reading and preparing up to 20 MB of PDF is CPU work: off the async threads.
        let (documents, prepared) = tokio::task::spawn_blocking(move || {
            let prepared = documents
                .iter()
                .map(|d| {
                    pades::prepare(&d.bytes, &chain, algorithm, now.0, FIELD_NAME)
                        .map_err(|e| unreadable(&d.filename, e))
                })
                .collect::<Result<Vec<_>, _>>();
            (documents, prepared)
        })
        .await
        .map_err(|e| Error::Inconsistent(format!("the preparing thread failed: {e}")))?;
        let prepared = prepared?;
        let request = SignRequest {
            credential_id: credential.id.clone(),
            algorithm: HashAlgorithm::Sha256,
            hashes: prepared.iter().map(|p| p.hash_to_sign().to_vec()).collect(),
            num_signatures: prepared.len(),
            titles: documents.iter().map(|d| d.filename.clone()).collect(),
            requester: PORTAL_NAME.to_owned(),
            context,
        };
        let mut tx = self.store.begin().await?;
        let authorization_id = self
            .authorize_in(
                &mut tx,
                &user,
                &credential,
                &request,
                &session.record.id_hash,
            )
            .await?;
        let job = SigningJobRecord {
            id: hex::encode(rand::random::<[u8; 16]>()),
            user_id: user.id.clone(),
            authorization_id,
            level: level.as_str().to_owned(),
            status: "pending".into(),
            hint: "outstanding".into(),
            created_at: now,
            finished_at: None,
        };
        let records: Vec<SigningDocumentRecord> = documents
            .iter()
            .zip(&prepared)
            .enumerate()
            .map(|(i, (document, ready))| SigningDocumentRecord {
                position: i64::try_from(i).unwrap_or(i64::MAX),
                filename: document.filename.clone(),
                prepared: ready.to_bytes(),
                signature: None,
                signed_pdf: None,
            })
            .collect();
        tx.insert_signing_job(&job, &records).await?;
        tx.audit(
            now,
            &format!("user:{}", user.id),
            "documents.uploaded",
            json!({
                "job": job.id,
                "level": job.level,
                "documents": documents.iter().zip(&prepared).map(|(d, p)| json!({
                    "filename": d.filename,
                    "size": d.bytes.len(),
                    "sha256": hex::encode(Sha256::digest(&d.bytes)),
                    "hash_to_sign": hex::encode(p.hash_to_sign()),
                })).collect::<Vec<_>>(),
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(job.id)
    }

    async fn own_job(&self, user: &Account, job_id: &str) -> Result<SigningJobRecord, Error> {
        self.store
            .signing_job(job_id)
            .await?
            .filter(|job| job.user_id == user.id)
            .ok_or_else(|| DocumentRefusal::NotFound.into())
    }

    /// A job's state, moving it on: once the user approved, the documents are signed (one
    /// transaction) and finished at the job's level. Only to a ConsentID session of the job's
    /// owner: a password session is refused (`NeedsConsentIdLogin`), as for the agreement.
    pub async fn document_signing(
        &self,
        session: &Session,
        job_id: &str,
    ) -> Result<JobView, Error> {
        let user = session.user.clone().ok_or(DocumentRefusal::NotFound)?;
        if !session.by_consentid() {
            return Err(DocumentRefusal::NeedsConsentIdLogin.into());
        }
        let mut job = self.own_job(&user, job_id).await?;
        if job.status == "pending" && self.answered(&job).await? {
            self.sign_job(&user, &job).await?;
            job = self.own_job(&user, job_id).await?;
        }
        if job.status == "signed" {
            if let Err(error) = self.finish_job(&user, &job).await {
                tracing::error!(job = %job.id, %error, "a signed job could not be finished yet");
            }
            job = self.own_job(&user, job_id).await?;
        }
        let level = SignatureLevel::parse(&job.level)
            .ok_or_else(|| Error::Inconsistent(format!("job level {}", job.level)))?;
        let documents = self.store.signing_documents(&job.id).await?;
        let views = documents
            .iter()
            .map(|d| {
                let hash = Prepared::from_bytes(&d.prepared)
                    .map(|p| p.hash_to_sign())
                    .unwrap_or_default();
                DocumentView {
                    filename: d.filename.clone(),
                    fingerprint: proto::crypto::fingerprint(&hash),
                    ready: d.signed_pdf.is_some(),
                }
            })
            .collect();
        let status = match job.status.as_str() {
            "done" => JobStatus::Done,
            "failed" => JobStatus::Failed(job.hint.clone()),
            "signed" => JobStatus::Pending { seconds_left: 0 },
            _ => {
                let seconds_left =
                    match self.store.sign_authorization(&job.authorization_id).await? {
                        Some(auth) => match self.store.transaction(&auth.txn_id).await? {
                            Some(txn) => (txn.expires_at.0 - self.clock.now().0).max(0),
                            None => 0,
                        },
                        None => 0,
                    };
                JobStatus::Pending { seconds_left }
            }
        };
        Ok(JobView {
            id: job.id,
            level,
            status,
            documents: views,
        })
    }

    /// Whether the user answered (or the request ended), read without a write transaction: the
    /// waiting page asks every two seconds.
    async fn answered(&self, job: &SigningJobRecord) -> Result<bool, Error> {
        let Some(auth) = self.store.sign_authorization(&job.authorization_id).await? else {
            return Ok(true);
        };
        let Some(txn) = self.store.transaction(&auth.txn_id).await? else {
            return Ok(true);
        };
        Ok(auth.status != AuthorizationStatus::Pending
            || effective_status(txn.status, txn.expires_at, self.clock.now())
                != TransactionStatus::Pending)
    }

    /// If the user answered: on approval, signs every document in one transaction with the
    /// approval; on a refusal, ends the job with its reason.
    async fn sign_job(&self, user: &Account, job: &SigningJobRecord) -> Result<(), Error> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let auth = tx
            .sign_authorization(&job.authorization_id)
            .await?
            .ok_or(DocumentRefusal::NotFound)?;
        if auth.status != AuthorizationStatus::Pending {
            // Settled by an earlier call that then failed: nothing more will happen.
            tx.move_signing_job(&job.id, "pending", "failed", "interrupted", now)
                .await?;
            tx.commit().await?;
            return Ok(());
        }
        let device_id = match self.settle_in(&mut tx, user, &auth, now).await {
            Ok(Settled::Pending { .. }) => return Ok(()),
            Ok(Settled::Approved { device_id }) => device_id,
            Ok(Settled::Refused(refusal))
            | Err(Error::Signing(refusal @ (SigningRefusal::NoDevice | SigningRefusal::Locked))) => {
                let hint = failure_hint(&Error::Signing(refusal));
                tx.move_signing_job(&job.id, "pending", "failed", hint, now)
                    .await?;
                tx.commit().await?;
                return Ok(());
            }
            Err(other) => return Err(other),
        };
        let credential = match self
            .credential_by_serial(user, &auth.credential_id)
            .await
            .and_then(usable)
        {
            Ok(credential) => credential,
            Err(error) => {
                tx.settle_sign_authorization(
                    &auth.id,
                    AuthorizationStatus::Refused,
                    None,
                    Some(&device_id),
                )
                .await?;
                tx.move_signing_job(&job.id, "pending", "failed", failure_hint(&error), now)
                    .await?;
                tx.commit().await?;
                return Ok(());
            }
        };
        let (scheme, _) = scheme_of(&credential);
        let padding = crate::signing::padding_for(credential.algorithm, scheme)?;
        let documents = tx.signing_documents(&job.id).await?;
        let hashes = documents
            .iter()
            .map(|d| Prepared::from_bytes(&d.prepared).map(|p| p.hash_to_sign().to_vec()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Inconsistent(format!("a stored prepared document: {e}")))?;
        let authorized =
            domain::signing::split_hashes(&auth.hashes, HashAlgorithm::Sha256).unwrap_or_default();
        if authorized != hashes {
            return Err(Error::Inconsistent(
                "the job's documents differ from the approved hashes".into(),
            ));
        }
        if !tx
            .settle_sign_authorization(
                &auth.id,
                AuthorizationStatus::Consumed,
                None,
                Some(&device_id),
            )
            .await?
        {
            // Another request of the same page signed it meanwhile.
            return Ok(());
        }
        let batch = crate::signing::SignBatch {
            authorization_id: &auth.id,
            padding,
            algorithm: HashAlgorithm::Sha256,
            hashes: &hashes,
        };
        let signatures = self.sign_in(&mut tx, user, &credential, &batch).await?;
        for (document, signature) in documents.iter().zip(&signatures) {
            tx.store_document_signature(&job.id, document.position, signature)
                .await?;
        }
        tx.move_signing_job(&job.id, "pending", "signed", "signed", now)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Finishes a signed job at its level and stores the PDFs (redone until that succeeds).
    async fn finish_job(&self, user: &Account, job: &SigningJobRecord) -> Result<(), Error> {
        let level = SignatureLevel::parse(&job.level)
            .ok_or_else(|| Error::Inconsistent(format!("job level {}", job.level)))?;
        let auth = self
            .store
            .sign_authorization(&job.authorization_id)
            .await?
            .ok_or(DocumentRefusal::NotFound)?;
        let credential = self
            .credential_by_serial(user, &auth.credential_id)
            .await?
            .ok_or(DocumentRefusal::NotFound)?;
        let documents = self.store.signing_documents(&job.id).await?;
        let mut finished = Vec::new();
        for document in &documents {
            let prepared = Prepared::from_bytes(&document.prepared)
                .map_err(|e| Error::Inconsistent(format!("a stored prepared document: {e}")))?;
            let signature = document
                .signature
                .clone()
                .ok_or_else(|| Error::Inconsistent("a signed job without signature".into()))?;
            let token = match level {
                SignatureLevel::BasicB => None,
                SignatureLevel::BasicT | SignatureLevel::BasicLt => Some(
                    self.tsa
                        .timestamp_token(
                            HashAlgorithm::Sha256,
                            &pades::timestamp_imprint(&signature),
                            None,
                        )
                        .await?,
                ),
            };
            let mut pdf = pades::finish(&prepared, &signature, token.as_deref())
                .map_err(|e| Error::Inconsistent(format!("finishing a signature: {e}")))?;
            if level == SignatureLevel::BasicLt {
                let (certificates, ocsp, crls) = self.validation_data(&credential).await?;
                pdf = pades::add_dss(&pdf, &certificates, &ocsp, &crls)
                    .map_err(|e| Error::Inconsistent(format!("adding validation data: {e}")))?;
            }
            finished.push((document.position, pdf));
        }
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        for (position, pdf) in &finished {
            tx.store_signed_document(&job.id, *position, pdf).await?;
        }
        if tx
            .move_signing_job(&job.id, "signed", "done", "ok", now)
            .await?
        {
            tx.audit(
                now,
                &format!("user:{}", user.id),
                "documents.signed",
                json!({
                    "job": job.id,
                    "level": job.level,
                    "documents": finished.iter().map(|(_, pdf)| hex::encode(Sha256::digest(pdf))).collect::<Vec<_>>(),
                }),
            )
            .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// A signed PDF of one of the user's finished jobs: (file name, bytes). Only to a ConsentID
    /// session: a password session is refused (`NeedsConsentIdLogin`).
    pub async fn signed_document(
        &self,
        session: &Session,
        job_id: &str,
        index: usize,
    ) -> Result<(String, Vec<u8>), Error> {
        let user = session.user.clone().ok_or(DocumentRefusal::NotFound)?;
        if !session.by_consentid() {
            return Err(DocumentRefusal::NeedsConsentIdLogin.into());
        }
        let job = self.own_job(&user, job_id).await?;
        let documents = self.store.signing_documents(&job.id).await?;
        let document = documents
            .into_iter()
            .nth(index)
            .ok_or(DocumentRefusal::NotFound)?;
        let pdf = document.signed_pdf.ok_or(DocumentRefusal::NotFound)?;
        Ok((document.filename, pdf))
    }

    /// What a B-LT signature carries for offline validation: every certificate of the signer's
    /// and the TSA's chains and the OCSP responders, an OCSP response for the signer's and the
    /// TSA's certificates, and the CRLs of the qualified CA and the root (which cover the
    /// intermediate).
    async fn validation_data(
        &self,
        credential: &Credential,
    ) -> Result<(Vec<Vec<u8>>, Vec<Vec<u8>>, Vec<Vec<u8>>), Error> {
        let mut certificates: Vec<Vec<u8>> = credential.chain.iter().map(|c| c.0.clone()).collect();
        for certificate in self.tsa.tsa_chain() {
            certificates.push(certificate.0);
        }
        let qualified = self.ca.ca(CaName::Qualified)?;
        if let Some((responder, _)) = &qualified.responder {
            certificates.push(responder.to_der()?);
        }
        certificates.sort();
        certificates.dedup();
        let mut ocsp = Vec::new();
        let subjects = [
            credential.chain.first().map(|c| c.0.clone()),
            self.tsa.tsa_chain().first().map(|c| c.0.clone()),
        ];
        for der in subjects.into_iter().flatten() {
            let certificate = crate::parse_certificate(&der)?;
            let request = pki::ocsp::request(
                &qualified.hashes,
                &certificate.tbs_certificate.serial_number,
            )?;
            let answer = self.va.ocsp(&request).await;
            if answer.outcome != "successful" {
                return Err(Error::Inconsistent(format!(
                    "our OCSP responder answered {}",
                    answer.outcome
                )));
            }
            ocsp.push(answer.body.to_vec());
        }
        let crls = vec![
            self.va.crl(CaName::Qualified).await?,
            self.va.crl(CaName::Root).await?,
        ];
        Ok((certificates, ocsp, crls))
    }
}

/// The reason a job failed, for the portal's message: the signing step's refusal, else
/// `failed`.
fn failure_hint(error: &Error) -> &'static str {
    match error {
        Error::Signing(SigningRefusal::Denied) => "denied",
        Error::Signing(SigningRefusal::RequestExpired) => "expired",
        Error::Signing(SigningRefusal::Locked) => "locked",
        Error::Signing(SigningRefusal::NoDevice) => "no_device",
        Error::Signing(SigningRefusal::Revoked) => "revoked",
        Error::Signing(SigningRefusal::Expired) => "certificate_expired",
        _ => "failed",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    #[test]
    fn ocsp_requests_to_our_own_responder_are_well_formed() {
        let hashes = pki::ocsp::IssuerHashes {
            sha1_name: vec![1; 20],
            sha1_key: vec![2; 20],
            sha256_name: vec![],
            sha256_key: vec![],
        };
        let serial = x509_cert::serial_number::SerialNumber::new(&[0x11; 16]).unwrap();
        let parsed =
            pki::ocsp::parse_request(&pki::ocsp::request(&hashes, &serial).unwrap()).unwrap();
        assert_eq!(parsed.queries.len(), 1);
        assert!(hashes.matches(&parsed.queries[0]));
    }
}
