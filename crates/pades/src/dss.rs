//! PAdES B-LT: the Document Security Store (ISO 32000-2 §12.8.4.3, ETSI EN 319 142-1 §5.4.2;
//! reference/pades.md §4.1) appended as one more incremental revision. Each certificate, OCSP
//! response and CRL becomes one stream; the catalog's `/DSS` lists them in `/Certs`, `/OCSPs`
//! and `/CRLs`. An existing DSS keeps its entries (and its `/VRI`, if any); no `/VRI` is
//! written, which validators do not need (verified with pyHanko, reference/pades.md §4.1).

use der::Decode;

use crate::document::Document;
use crate::syntax::{Dictionary, Object, ObjectId};
use crate::writer::Increment;
use crate::PadesError;

/// The most items one call may add.
const MAX_ITEMS: usize = 1000;

fn invalid(what: &str, index: usize, error: der::Error) -> PadesError {
    PadesError::InvalidValidationData(format!("{what} {index}: {error}"))
}

/// Checks the inputs' DER and drops duplicates (keeping the first of each).
fn checked<'i>(
    items: &'i [Vec<u8>],
    what: &str,
    parse: impl Fn(&[u8]) -> Result<(), der::Error>,
) -> Result<Vec<&'i [u8]>, PadesError> {
    let mut unique: Vec<&[u8]> = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        parse(item).map_err(|error| invalid(what, index, error))?;
        if !unique.contains(&item.as_slice()) {
            unique.push(item);
        }
    }
    Ok(unique)
}

/// The references already listed under `key` of an existing DSS.
fn existing_references(
    document: &mut Document<'_>,
    dss: &Dictionary,
    key: &[u8],
) -> Result<Vec<Object>, PadesError> {
    let Some(value) = dss.get(key) else {
        return Ok(Vec::new());
    };
    match document.resolve(value)? {
        Object::Array(items) => Ok(items),
        Object::Null => Ok(Vec::new()),
        _ => Err(PadesError::Corrupt(format!(
            "/DSS /{} is not an array",
            String::from_utf8_lossy(key)
        ))),
    }
}

/// See [`crate::add_dss`].
pub(crate) fn add_dss(
    pdf: &[u8],
    certificates: &[Vec<u8>],
    ocsp_responses: &[Vec<u8>],
    crls: &[Vec<u8>],
) -> Result<Vec<u8>, PadesError> {
    if certificates.len() + ocsp_responses.len() + crls.len() > MAX_ITEMS {
        return Err(PadesError::InvalidValidationData(format!(
            "more than {MAX_ITEMS} items"
        )));
    }
    let certificates = checked(certificates, "certificate", |der| {
        x509_cert::Certificate::from_der(der).map(|_| ())
    })?;
    let ocsp_responses = checked(ocsp_responses, "OCSP response", |der| {
        x509_ocsp::OcspResponse::from_der(der).map(|_| ())
    })?;
    let crls = checked(crls, "CRL", |der| {
        x509_cert::crl::CertificateList::from_der(der).map(|_| ())
    })?;
    if certificates.is_empty() && ocsp_responses.is_empty() && crls.is_empty() {
        return Err(PadesError::InvalidValidationData("nothing to add".into()));
    }

    let mut document = Document::load(pdf)?;
    let root = document.root()?;
    let mut catalog = document.dictionary(root)?;
    let (dss_id, mut dss) = match catalog.get(b"DSS") {
        Some(Object::Reference(id)) => match document.object(*id)? {
            Object::Dictionary(dss) => (Some(*id), dss),
            Object::Null => (None, Dictionary::new()),
            _ => return Err(PadesError::Corrupt("/DSS is not a dictionary".into())),
        },
        Some(Object::Dictionary(dss)) => (None, dss.clone()),
        None | Some(Object::Null) => (None, Dictionary::new()),
        Some(_) => return Err(PadesError::Corrupt("/DSS is not a dictionary".into())),
    };

    let mut increment = Increment::new(&document);
    for (key, items) in [
        (&b"Certs"[..], &certificates),
        (b"OCSPs", &ocsp_responses),
        (b"CRLs", &crls),
    ] {
        let mut references = existing_references(&mut document, &dss, key)?;
        if items.is_empty() {
            continue;
        }
        for item in items {
            let id: ObjectId = increment.allocate();
            increment.put_stream(id, Dictionary::new(), item.to_vec());
            references.push(Object::Reference(id));
        }
        dss.set(key, Object::Array(references));
    }
    match dss_id {
        Some(id) => increment.put(id, Object::Dictionary(dss)),
        None => {
            let id = increment.allocate();
            if !dss.contains(b"Type") {
                dss.set(b"Type", Object::Name(b"DSS".to_vec()));
            }
            increment.put(id, Object::Dictionary(dss));
            catalog.set(b"DSS", Object::Reference(id));
            increment.put(root, Object::Dictionary(catalog));
        }
    }
    let written = increment.write(&document)?;
    Ok(written.bytes)
}
