//! End-to-end tests of the two-phase PAdES signer, checked by independent tools:
//! `qpdf --check` (structure; optional, skipped with a note when qpdf is missing), OpenSSL
//! (`openssl cms -verify` over the /ByteRange slices, `openssl ts` as a throw-away TSA), and
//! pyHanko (`pyhanko sign validate`, through `EIDPORTAL_TEST_PYTHON`; required when
//! `EIDPORTAL_TEST_REQUIRE_ALL=1`, skipped with a note otherwise).
//!
//! The certificates come from the x509-cert builder (root, issuing CA, signer with
//! nonRepudiation; P-256, and RSA-2048 for the signer in the RSA case); the PDFs from
//! the `pdf` crate (classic table), from a hand-written builder below (cross-reference stream
//! with an object stream, Flate + PNG predictor) and from `qpdf --object-streams=generate`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use std::str::FromStr;
use std::time::Duration;

use der::asn1::UtcTime;
use der::{Decode, Encode};
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::DerSignature;
use pades::{PadesError, Prepared, SignatureAlgorithm, SIGNATURE_CAPACITY};
use sha2::Sha256;
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};
use x509_cert::Certificate;

// ---------------------------------------------------------------------------------------------
// Environment

fn require_all() -> bool {
    std::env::var("EIDPORTAL_TEST_REQUIRE_ALL").is_ok_and(|v| v == "1")
}

/// The current time: pyHanko validates at the real time, so the test certificates must be
/// valid now.
#[allow(clippy::disallowed_methods)]
fn now() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(since.as_secs()).unwrap()
}

fn tool_exists(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok()
}

/// A Python with pyHanko, or `None` after a note (a failure when everything is required).
fn pyhanko_python() -> Option<PathBuf> {
    let python = match std::env::var_os("EIDPORTAL_TEST_PYTHON") {
        Some(python) => PathBuf::from(python),
        None => {
            assert!(
                !require_all(),
                "EIDPORTAL_TEST_REQUIRE_ALL=1 but EIDPORTAL_TEST_PYTHON is unset: point it at a Python with pyhanko 0.38.0 and pyhanko-cli 0.6.0 (scripts/test does)"
            );
            eprintln!("note: EIDPORTAL_TEST_PYTHON is unset, pyHanko checks skipped");
            return None;
        }
    };
    let ok = Command::new(&python)
        .args(["-c", "import pyhanko.cli"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            !require_all(),
            "{} cannot import pyhanko.cli",
            python.display()
        );
        eprintln!(
            "note: {} has no pyHanko, pyHanko checks skipped",
            python.display()
        );
        return None;
    }
    Some(python)
}

/// `qpdf --check` must find no error; skipped with a note when qpdf is missing.
fn qpdf_check(path: &Path) {
    if !tool_exists("qpdf") {
        eprintln!("note: qpdf is not installed, `qpdf --check` skipped");
        return;
    }
    let output = Command::new("qpdf")
        .arg("--check")
        .arg(path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success()
            && stdout.contains("No syntax or stream encoding errors found")
            && stderr.is_empty(),
        "qpdf --check {}:\n{stdout}\n{stderr}",
        path.display()
    );
    let summary = stdout
        .lines()
        .find(|line| line.contains("No syntax"))
        .unwrap_or("");
    eprintln!(
        "qpdf --check {}: {summary}",
        path.file_name().unwrap().to_string_lossy()
    );
}

/// Runs `pyhanko sign validate` and returns its output lines, or `None` when skipped.
fn pyhanko_validate(path: &Path, trust: &[&Path]) -> Option<String> {
    let python = pyhanko_python()?;
    let mut command = Command::new(python);
    command.args(["-m", "pyhanko", "sign", "validate", "--no-revocation-check"]);
    for root in trust {
        command.arg("--trust").arg(root);
    }
    command.arg("--trust-replace").arg(path);
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "pyhanko sign validate {}:\n{stdout}\n{stderr}",
        path.display()
    );
    eprintln!(
        "pyhanko sign validate {}: {}",
        path.file_name().unwrap().to_string_lossy(),
        stdout.trim()
    );
    Some(stdout)
}

// ---------------------------------------------------------------------------------------------
// Certificates and keys

enum SignerKey {
    Ecdsa(p256::ecdsa::SigningKey),
    Rsa(Box<rsa::RsaPrivateKey>),
}

impl SignerKey {
    /// What the remote signer returns for a CSC signHash of `hash`.
    fn sign_hash(&self, hash: &[u8; 32]) -> Vec<u8> {
        match self {
            Self::Ecdsa(key) => {
                let signature: p256::ecdsa::Signature = key.sign_prehash(hash).unwrap();
                signature.to_der().as_bytes().to_vec()
            }
            Self::Rsa(key) => key.sign(rsa::Pkcs1v15Sign::new::<Sha256>(), hash).unwrap(),
        }
    }
}

struct Chain {
    /// Signer, issuing CA, root.
    der: Vec<Vec<u8>>,
    key: SignerKey,
    algorithm: SignatureAlgorithm,
    /// The issuing CA's certificate and key (for a CRL).
    issuing: (Certificate, p256::ecdsa::SigningKey),
    /// The root's certificate and key (for a CRL).
    root: (Certificate, p256::ecdsa::SigningKey),
}

fn ecdsa_key() -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng)
}

fn validity(years: u64) -> Validity {
    let start = u64::try_from(now() - 3600).unwrap();
    let time = |seconds: u64| {
        Time::UtcTime(UtcTime::from_unix_duration(Duration::from_secs(seconds)).unwrap())
    };
    Validity {
        not_before: time(start),
        not_after: time(start + years * 365 * 86_400),
    }
}

fn serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    SerialNumber::new(&bytes).unwrap()
}

/// Root → issuing CA → signer. The x509-cert builder's leaf profile sets keyUsage
/// digitalSignature + nonRepudiation, which pyHanko requires of a signer by default.
fn chain(algorithm: SignatureAlgorithm) -> Chain {
    let root_key = ecdsa_key();
    let root_name = Name::from_str("CN=eidportal test root,O=eidportal test,C=RS").unwrap();
    let root = CertificateBuilder::new(
        Profile::Root,
        serial(),
        validity(10),
        root_name.clone(),
        SubjectPublicKeyInfoOwned::from_key(*root_key.verifying_key()).unwrap(),
        &root_key,
    )
    .unwrap()
    .build::<DerSignature>()
    .unwrap();
    let issuing_key = ecdsa_key();
    let issuing_name =
        Name::from_str("CN=eidportal test qualified CA,O=eidportal test,C=RS").unwrap();
    let issuing = CertificateBuilder::new(
        Profile::SubCA {
            issuer: root_name,
            path_len_constraint: Some(0),
        },
        serial(),
        validity(5),
        issuing_name.clone(),
        SubjectPublicKeyInfoOwned::from_key(*issuing_key.verifying_key()).unwrap(),
        &root_key,
    )
    .unwrap()
    .build::<DerSignature>()
    .unwrap();
    let (key, spki) = match algorithm {
        SignatureAlgorithm::EcdsaSha256 => {
            let key = ecdsa_key();
            let spki = SubjectPublicKeyInfoOwned::from_key(*key.verifying_key()).unwrap();
            (SignerKey::Ecdsa(key), spki)
        }
        SignatureAlgorithm::RsaPkcs1Sha256 => {
            let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
            let spki = SubjectPublicKeyInfoOwned::from_key(key.to_public_key()).unwrap();
            (SignerKey::Rsa(Box::new(key)), spki)
        }
    };
    let signer = CertificateBuilder::new(
        Profile::Leaf {
            issuer: issuing_name,
            enable_key_agreement: false,
            enable_key_encipherment: false,
        },
        serial(),
        validity(2),
        Name::from_str("CN=Petar Petrovic,SERIALNUMBER=PNORS-0101990710008,C=RS").unwrap(),
        spki,
        &issuing_key,
    )
    .unwrap()
    .build::<DerSignature>()
    .unwrap();
    Chain {
        der: vec![
            signer.to_der().unwrap(),
            issuing.to_der().unwrap(),
            root.to_der().unwrap(),
        ],
        key,
        algorithm,
        issuing: (issuing, issuing_key),
        root: (root, root_key),
    }
}

/// An empty CRL of the issuing CA (RFC 5280 §5), valid now.
fn empty_crl(issuing: &Certificate, key: &p256::ecdsa::SigningKey) -> Vec<u8> {
    use x509_cert::crl::{CertificateList, TbsCertList};
    let algorithm = spki::AlgorithmIdentifierOwned {
        oid: const_oid::ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2"),
        parameters: None,
    };
    let validity = validity(1);
    let tbs = TbsCertList {
        version: x509_cert::Version::V2,
        signature: algorithm.clone(),
        issuer: issuing.tbs_certificate.subject.clone(),
        this_update: validity.not_before,
        next_update: Some(validity.not_after),
        revoked_certificates: None,
        crl_extensions: None,
    };
    let signature: DerSignature = key.sign(&tbs.to_der().unwrap());
    CertificateList {
        tbs_cert_list: tbs,
        signature_algorithm: algorithm,
        signature: der::asn1::BitString::from_bytes(signature.as_bytes()).unwrap(),
    }
    .to_der()
    .unwrap()
}

fn pem(der: &[u8]) -> String {
    use der::EncodePem;
    Certificate::from_der(der)
        .unwrap()
        .to_pem(der::pem::LineEnding::LF)
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// PDFs

/// The agreement PDF the server writes (classic cross-reference table).
fn agreement() -> Vec<u8> {
    pdf::agreement_pdf(
        "УГОВОР О ПРУЖАЊУ УСЛУГЕ",
        &["Корисник Петар Петровић прихвата услове пружања услуге квалификованог електронског потписа.".to_string()],
        "Уговор бр. 42",
    )
    .unwrap()
}

/// A two-page PDF whose catalog, page tree and pages live in a Flate-compressed object stream,
/// indexed by a cross-reference stream with the PNG Up predictor (what qpdf and most modern
/// writers produce). Its `/Size` is larger than its highest object (`inflate_size`).
fn object_stream_pdf(inflate_size: u32) -> Vec<u8> {
    let compressed = [
        (1, "<< /Type /Catalog /Pages 2 0 R >>".to_string()),
        (
            2,
            "<< /Type /Pages /Kids [3 0 R 4 0 R] /Count 2 >>".to_string(),
        ),
        (
            3,
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 5 0 R /Annots [] >>"
                .to_string(),
        ),
        (
            4,
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>".to_string(),
        ),
    ];
    let mut header = String::new();
    let mut body = String::new();
    for (number, text) in &compressed {
        header.push_str(&format!("{number} {} ", body.len()));
        body.push_str(text);
        body.push('\n');
    }
    let object_stream_data =
        miniz_oxide::deflate::compress_to_vec_zlib(format!("{header}{body}").as_bytes(), 6);
    let mut out = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let content_offset = out.len();
    let content = b"BT /F1 12 Tf 72 720 Td (Hello) Tj ET";
    out.extend_from_slice(format!("5 0 obj\n<< /Length {} >>\nstream\n", content.len()).as_bytes());
    out.extend_from_slice(content);
    out.extend_from_slice(b"\nendstream\nendobj\n");
    let object_stream_offset = out.len();
    out.extend_from_slice(
        format!(
            "6 0 obj\n<< /Type /ObjStm /N {} /First {} /Filter /FlateDecode /Length {} >>\nstream\n",
            compressed.len(),
            header.len(),
            object_stream_data.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(&object_stream_data);
    out.extend_from_slice(b"\nendstream\nendobj\n");
    let xref_offset = out.len();
    // Rows: type (1 byte), field 2 (4 bytes), field 3 (2 bytes); objects 0..=7.
    let mut rows: Vec<[u8; 7]> = Vec::new();
    let row = |kind: u8, second: u32, third: u16| {
        let mut r = [0u8; 7];
        r[0] = kind;
        r[1..5].copy_from_slice(&second.to_be_bytes());
        r[5..7].copy_from_slice(&third.to_be_bytes());
        r
    };
    rows.push(row(0, 0, 65535));
    for (index, _) in compressed.iter().enumerate() {
        rows.push(row(2, 6, u16::try_from(index).unwrap()));
    }
    rows.push(row(1, u32::try_from(content_offset).unwrap(), 0));
    rows.push(row(1, u32::try_from(object_stream_offset).unwrap(), 0));
    rows.push(row(1, u32::try_from(xref_offset).unwrap(), 0));
    // PNG Up predictor: each row is the difference to the one above, after a filter byte 2.
    let mut predicted = Vec::new();
    let mut previous = [0u8; 7];
    for r in &rows {
        predicted.push(2);
        for i in 0..7 {
            predicted.push(r[i].wrapping_sub(previous[i]));
        }
        previous = *r;
    }
    let xref_data = miniz_oxide::deflate::compress_to_vec_zlib(&predicted, 6);
    let size = inflate_size.max(8);
    out.extend_from_slice(
        format!(
            "7 0 obj\n<< /Type /XRef /Size {size} /Index [0 8] /W [1 4 2] /Root 1 0 R /ID [<00112233445566778899AABBCCDDEEFF> <00112233445566778899AABBCCDDEEFF>] /Filter /FlateDecode /DecodeParms << /Predictor 12 /Columns 7 >> /Length {} >>\nstream\n",
            xref_data.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(&xref_data);
    out.extend_from_slice(
        format!("\nendstream\nendobj\nstartxref\n{xref_offset}\n%%EOF\n").as_bytes(),
    );
    out
}

/// A one-page PDF with a classic table and an info dictionary, offsets computed.
fn small_pdf() -> Vec<u8> {
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
        "<< /Producer (test) >>",
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(b"xref\n0 5\n0000000000 65535 f \n");
    for offset in offsets {
        out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!("trailer\n<< /Size 5 /Root 1 0 R /Info 4 0 R >>\nstartxref\n{xref}\n%%EOF\n")
            .as_bytes(),
    );
    out
}

/// The same file with a qpdf-made cross-reference stream and object streams, if qpdf exists.
fn qpdf_object_streams(input: &[u8], dir: &Path) -> Option<Vec<u8>> {
    if !tool_exists("qpdf") {
        eprintln!("note: qpdf is not installed, the qpdf-generated object-stream case is skipped");
        return None;
    }
    let source = dir.join("qpdf-in.pdf");
    let target = dir.join("qpdf-objstm.pdf");
    std::fs::write(&source, input).unwrap();
    let status = Command::new("qpdf")
        .arg("--object-streams=generate")
        .arg(&source)
        .arg(&target)
        .status()
        .unwrap();
    assert!(status.success());
    let bytes = std::fs::read(&target).unwrap();
    assert!(
        find(&bytes, b"/ObjStm").is_some(),
        "qpdf wrote no object stream"
    );
    Some(bytes)
}

// ---------------------------------------------------------------------------------------------
// Reading our own output back

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

/// The last signature's /ByteRange and its DER CMS (trailing zero padding removed).
fn last_signature(pdf: &[u8]) -> ([usize; 4], Vec<u8>) {
    let at = rfind(pdf, b"/ByteRange [").unwrap() + b"/ByteRange [".len();
    let end = at + find(&pdf[at..], b"]").unwrap();
    let numbers: Vec<usize> = std::str::from_utf8(&pdf[at..end])
        .unwrap()
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    let range: [usize; 4] = numbers.try_into().unwrap();
    let hex = std::str::from_utf8(&pdf[range[1] + 1..range[2] - 1]).unwrap();
    let bytes = hex::decode(hex).unwrap();
    // The DER container, without the zero padding after it.
    let mut reader = der::SliceReader::new(&bytes).unwrap();
    let any: der::asn1::AnyRef<'_> = der::Decode::decode(&mut reader).unwrap();
    (range, any.to_der().unwrap())
}

/// The structural promises of a signed revision (reference/pades.md §1.2).
fn check_byte_range(pdf: &[u8]) {
    let (range, _) = last_signature(pdf);
    assert_eq!(range[0], 0);
    assert_eq!(pdf[range[1]], b'<');
    assert_eq!(pdf[range[2] - 1], b'>');
    assert_eq!(range[2] - range[1], SIGNATURE_CAPACITY * 2 + 2);
    assert_eq!(range[2] + range[3], pdf.len());
    assert!(pdf[..range[2] + range[3]].ends_with(b"%%EOF\n"));
}

/// `openssl cms -verify` over the two /ByteRange slices (reference/pades.md §2.1 "Debug").
fn openssl_verify(pdf: &[u8], dir: &Path, chain: &Chain) {
    let (range, cms) = last_signature(pdf);
    let signed = [&pdf[..range[1]], &pdf[range[2]..range[2] + range[3]]].concat();
    std::fs::write(dir.join("sig.p7s"), &cms).unwrap();
    std::fs::write(dir.join("signed-ranges.bin"), &signed).unwrap();
    std::fs::write(dir.join("root.pem"), pem(chain.der.last().unwrap())).unwrap();
    let output = Command::new("openssl")
        .args([
            "cms",
            "-verify",
            "-inform",
            "DER",
            "-binary",
            "-purpose",
            "any",
            "-out",
            "/dev/null",
        ])
        .arg("-in")
        .arg(dir.join("sig.p7s"))
        .arg("-content")
        .arg(dir.join("signed-ranges.bin"))
        .arg("-CAfile")
        .arg(dir.join("root.pem"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.contains("CMS Verification successful"),
        "openssl cms -verify: {stderr}"
    );
    eprintln!("openssl cms -verify: {}", stderr.trim());
}

/// Prepares, signs with the chain's key and finishes.
fn sign(input: &[u8], chain: &Chain, field: &str) -> Vec<u8> {
    let prepared =
        pades::prepare(input, &chain.der, chain.algorithm, 1_764_040_668, field).unwrap();
    // The server keeps the prepared state in its database between the phases.
    let prepared = Prepared::from_bytes(&prepared.to_bytes()).unwrap();
    let signature = chain.key.sign_hash(&prepared.hash_to_sign());
    let signed = pades::finish(&prepared, &signature, None).unwrap();
    assert!(signed.starts_with(input), "the input bytes changed");
    check_byte_range(&signed);
    signed
}

/// Writes `pdf` and runs every external check on it.
fn check_everywhere(pdf: &[u8], name: &str, dir: &Path, chain: &Chain) -> Option<String> {
    let path = dir.join(name);
    std::fs::write(&path, pdf).unwrap();
    qpdf_check(&path);
    openssl_verify(pdf, dir, chain);
    let root = dir.join("root.pem");
    let output = pyhanko_validate(&path, &[&root]);
    if let Some(output) = &output {
        assert!(output.contains("INTACT:TRUSTED"), "{name}: {output}");
    }
    output
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn agreement_pdf_with_a_classic_table_validates() {
    let dir = tempfile::tempdir().unwrap();
    let chain = chain(SignatureAlgorithm::EcdsaSha256);
    let input = agreement();
    let signed = sign(&input, &chain, "Signature1");
    // The increment follows the input's kind: a classic table.
    let increment = &signed[input.len()..];
    assert!(find(increment, b"\nxref\n").is_some() && find(increment, b"/Type /XRef").is_none());
    assert!(find(increment, b"/SubFilter /ETSI.CAdES.detached").is_some());
    assert!(find(increment, b"/M (D:20251125031748Z)").is_some());
    assert!(find(increment, b"/SigFlags 3").is_some());
    let output = check_everywhere(&signed, "agreement-signed.pdf", dir.path(), &chain);
    if let Some(output) = output {
        assert!(output.contains("UNTOUCHED"), "{output}");
    }
}

#[test]
fn the_cms_holds_exactly_the_pades_attributes() {
    let chain = chain(SignatureAlgorithm::EcdsaSha256);
    let signed = sign(&small_pdf(), &chain, "Signature1");
    let (_, cms) = last_signature(&signed);
    let content_info = cms::content_info::ContentInfo::from_der(&cms).unwrap();
    assert_eq!(
        content_info.content_type.to_string(),
        "1.2.840.113549.1.7.2"
    );
    let signed_data: cms::signed_data::SignedData = content_info.content.decode_as().unwrap();
    assert_eq!(
        signed_data.encap_content_info.econtent_type.to_string(),
        "1.2.840.113549.1.7.1"
    );
    assert!(
        signed_data.encap_content_info.econtent.is_none(),
        "not detached"
    );
    assert_eq!(signed_data.certificates.unwrap().0.len(), 3);
    let signer_info = signed_data.signer_infos.0.iter().next().unwrap();
    assert_eq!(
        signer_info.signature_algorithm.oid.to_string(),
        "1.2.840.10045.4.3.2"
    );
    assert!(signer_info.signature_algorithm.parameters.is_none());
    assert!(matches!(
        signer_info.sid,
        cms::signed_data::SignerIdentifier::IssuerAndSerialNumber(_)
    ));
    let oids: Vec<String> = signer_info
        .signed_attrs
        .as_ref()
        .unwrap()
        .iter()
        .map(|attribute| attribute.oid.to_string())
        .collect();
    assert_eq!(oids.len(), 3);
    for oid in [
        "1.2.840.113549.1.9.3",
        "1.2.840.113549.1.9.4",
        "1.2.840.113549.1.9.16.2.47",
    ] {
        assert!(
            oids.contains(&oid.to_string()),
            "{oid} missing from {oids:?}"
        );
    }
    assert!(
        !oids.contains(&"1.2.840.113549.1.9.5".to_string()),
        "signing-time must not be there"
    );
    assert!(signer_info.unsigned_attrs.is_none());
}

#[test]
fn object_streams_and_xref_streams_are_followed() {
    let dir = tempfile::tempdir().unwrap();
    let chain = chain(SignatureAlgorithm::EcdsaSha256);
    // /Size 20 although the highest object is 7: the new /Size must not shrink.
    let input = object_stream_pdf(20);
    let prepared = pades::prepare(
        &input,
        &chain.der,
        chain.algorithm,
        1_764_040_668,
        "Signature1",
    )
    .unwrap();
    let signed = pades::finish(
        &prepared,
        &chain.key.sign_hash(&prepared.hash_to_sign()),
        None,
    )
    .unwrap();
    assert!(signed.starts_with(&input));
    let increment = &signed[input.len() - 1..];
    assert!(
        find(increment, b"/Type /XRef").is_some(),
        "the increment must use a cross-reference stream"
    );
    assert!(find(increment, b"\nxref\n").is_none());
    assert!(
        find(increment, b"/Size 24").is_some(),
        "objects 20..=23 are new, /Size 24"
    );
    assert!(find(increment, b"/Prev ").is_some());
    // The catalog (object 1, compressed before) is superseded by a plain object; so is page 3.
    assert!(find(increment, b"\n1 0 obj\n").is_some() && find(increment, b"\n3 0 obj\n").is_some());
    check_everywhere(&signed, "objstm-signed.pdf", dir.path(), &chain);

    if let Some(qpdf_input) = qpdf_object_streams(&agreement(), dir.path()) {
        let signed = sign(&qpdf_input, &chain, "Signature1");
        assert!(find(&signed[qpdf_input.len()..], b"/Type /XRef").is_some());
        check_everywhere(&signed, "qpdf-objstm-signed.pdf", dir.path(), &chain);
    }
}

#[test]
fn rsa_signatures_validate() {
    let dir = tempfile::tempdir().unwrap();
    let chain = chain(SignatureAlgorithm::RsaPkcs1Sha256);
    let signed = sign(&small_pdf(), &chain, "Signature1");
    assert!(find(&signed, b"/Info 4 0 R").is_some());
    check_everywhere(&signed, "rsa-signed.pdf", dir.path(), &chain);
}

#[test]
fn a_second_signature_keeps_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let first_chain = chain(SignatureAlgorithm::EcdsaSha256);
    let second_chain = chain(SignatureAlgorithm::EcdsaSha256);
    let once = sign(&agreement(), &first_chain, "Signature1");
    let twice = sign(&once, &second_chain, "Signature1");
    assert!(
        twice.starts_with(&once),
        "the first signature's bytes changed"
    );
    let increment = &twice[once.len()..];
    // The name clash is resolved with a suffix; the AcroForm keeps the first field.
    assert!(
        find(increment, b"/T <5369676E6174757265315F32>").is_some(),
        "field not renamed to Signature1_2"
    );
    let path = dir.path().join("twice.pdf");
    std::fs::write(&path, &twice).unwrap();
    qpdf_check(&path);
    openssl_verify(&twice, dir.path(), &second_chain);
    std::fs::write(
        dir.path().join("root1.pem"),
        pem(first_chain.der.last().unwrap()),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("root2.pem"),
        pem(second_chain.der.last().unwrap()),
    )
    .unwrap();
    if let Some(output) = pyhanko_validate(
        &path,
        &[&dir.path().join("root1.pem"), &dir.path().join("root2.pem")],
    ) {
        let lines: Vec<&str> = output
            .lines()
            .filter(|line| line.contains("INTACT:TRUSTED"))
            .collect();
        assert_eq!(lines.len(), 2, "both signatures must validate: {output}");
        assert!(
            output.contains("Signature1:") && output.contains("Signature1_2:"),
            "{output}"
        );
    }
}

/// A throw-away RFC 3161 TSA made with `openssl ts -reply` (a self-signed TSA certificate
/// with a critical id-kp-timeStamping EKU, ESS signing-certificate-v2 with SHA-256).
fn openssl_timestamp(dir: &Path, imprint: &[u8; 32]) -> Vec<u8> {
    let tsa = dir.join("tsa");
    std::fs::create_dir_all(&tsa).unwrap();
    let run = |args: &[&str]| {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(&tsa)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "tsa.key",
        "-out",
        "tsa.pem",
        "-subj",
        "/C=RS/O=eidportal test/CN=eidportal test TSA",
        "-days",
        "30",
        "-addext",
        "extendedKeyUsage=critical,timeStamping",
        "-addext",
        "keyUsage=critical,digitalSignature",
    ]);
    std::fs::write(
        tsa.join("tsa.cnf"),
        "[ tsa ]\ndefault_tsa = tsa1\n[ tsa1 ]\nserial = ./serial\ncrypto_device = builtin\nsigner_cert = ./tsa.pem\n\
         certs = ./tsa.pem\nsigner_key = ./tsa.key\nsigner_digest = sha256\ndefault_policy = 1.3.6.1.4.1.99999.2.1\n\
         digests = sha256\naccuracy = secs:1\nordering = no\ntsa_name = no\ness_cert_id_chain = no\ness_cert_id_alg = sha256\n",
    )
    .unwrap();
    std::fs::write(tsa.join("serial"), "01\n").unwrap();
    run(&[
        "ts",
        "-query",
        "-sha256",
        "-digest",
        &hex::encode(imprint),
        "-cert",
        "-out",
        "q.tsq",
    ]);
    run(&[
        "ts",
        "-reply",
        "-config",
        "tsa.cnf",
        "-queryfile",
        "q.tsq",
        "-token_out",
        "-out",
        "token.der",
    ]);
    std::fs::read(tsa.join("token.der")).unwrap()
}

#[test]
fn b_t_then_b_lt_validate() {
    let dir = tempfile::tempdir().unwrap();
    let chain = chain(SignatureAlgorithm::EcdsaSha256);
    let input = agreement();
    let prepared = pades::prepare(
        &input,
        &chain.der,
        chain.algorithm,
        1_764_040_668,
        "Signature1",
    )
    .unwrap();
    let signature = chain.key.sign_hash(&prepared.hash_to_sign());
    let token = openssl_timestamp(dir.path(), &pades::timestamp_imprint(&signature));

    // A token over something else is refused before it reaches the PDF.
    let other_token = openssl_timestamp(&dir.path().join("other"), &[7u8; 32]);
    assert!(matches!(
        pades::finish(&prepared, &signature, Some(&other_token)),
        Err(PadesError::InvalidTimestamp(_))
    ));
    assert!(matches!(
        pades::finish(&prepared, &signature, Some(b"\x30\x03\x02\x01\x01")),
        Err(PadesError::InvalidTimestamp(_))
    ));

    let signed = pades::finish(&prepared, &signature, Some(&token)).unwrap();
    let (_, cms) = last_signature(&signed);
    assert!(
        find(&cms, &token).is_some(),
        "the token must be embedded byte for byte"
    );
    let tsa_pem = dir.path().join("tsa").join("tsa.pem");
    let path = dir.path().join("b-t.pdf");
    std::fs::write(&path, &signed).unwrap();
    qpdf_check(&path);
    openssl_verify(&signed, dir.path(), &chain);
    let root = dir.path().join("root.pem");
    if let Some(output) = pyhanko_validate(&path, &[&root, &tsa_pem]) {
        assert!(
            output.contains("INTACT:TRUSTED") && output.contains("TIMESTAMP_TOKEN<INTACT:TRUSTED>"),
            "{output}"
        );
    }

    // B-LT: the chain and the CRLs of both CAs in a DSS revision, then one more item.
    let crls = [
        empty_crl(&chain.issuing.0, &chain.issuing.1),
        empty_crl(&chain.root.0, &chain.root.1),
    ];
    let tsa_der = pem_to_der(&std::fs::read_to_string(&tsa_pem).unwrap());
    let with_dss = pades::add_dss(&signed, &chain.der, &[], &crls).unwrap();
    assert!(with_dss.starts_with(&signed));
    let increment = &with_dss[signed.len()..];
    assert!(
        find(increment, b"/DSS ").is_some()
            && find(increment, b"/Certs [").is_some()
            && find(increment, b"/CRLs [").is_some()
    );
    let with_more = pades::add_dss(&with_dss, &[tsa_der], &[], &[]).unwrap();
    let last = &with_more[with_dss.len()..];
    // The existing DSS is re-emitted with its old references plus the new one.
    let certs_at = find(last, b"/Certs [").unwrap();
    let certs_end = certs_at + find(&last[certs_at..], b"]").unwrap();
    assert_eq!(
        std::str::from_utf8(&last[certs_at..certs_end])
            .unwrap()
            .matches(" R")
            .count(),
        4
    );
    let path = dir.path().join("b-lt.pdf");
    std::fs::write(&path, &with_more).unwrap();
    qpdf_check(&path);
    if let Some(output) = pyhanko_validate(&path, &[&root, &tsa_pem]) {
        assert!(
            output.contains("INTACT:TRUSTED") && output.contains("TIMESTAMP_TOKEN<INTACT:TRUSTED>"),
            "{output}"
        );
    }
    if let Some(python) = pyhanko_python() {
        // adesverify checks revocation with what the DSS holds (reference/pades.md §4.3).
        let output = Command::new(python)
            .args(["-m", "pyhanko", "sign", "adesverify", "--trust"])
            .arg(&root)
            .arg("--trust")
            .arg(&tsa_pem)
            .arg("--trust-replace")
            .arg(&path)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success() && stdout.contains("INTACT:TRUSTED"),
            "pyhanko sign adesverify:\n{stdout}\n{stderr}"
        );
        eprintln!("pyhanko sign adesverify b-lt.pdf: {}", stdout.trim());
    }

    // Garbage validation data is refused.
    assert!(matches!(
        pades::add_dss(&signed, &[b"junk".to_vec()], &[], &[]),
        Err(PadesError::InvalidValidationData(_))
    ));
    assert!(matches!(
        pades::add_dss(&signed, &[], &[b"\x30\x00".to_vec()], &[]),
        Err(PadesError::InvalidValidationData(_))
    ));
    assert!(matches!(
        pades::add_dss(&signed, &[], &[], &[]),
        Err(PadesError::InvalidValidationData(_))
    ));
}

fn pem_to_der(text: &str) -> Vec<u8> {
    let body: String = text
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    base64_decode(&body)
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("bad base64"),
    };
    let clean: Vec<u8> = text
        .bytes()
        .filter(|&c| c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::new();
    for chunk in clean.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &c)| n | (u32::from(value(c)) << (18 - 6 * i)));
        for i in 0..chunk.len() - 1 {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

#[test]
fn a_wrong_signature_value_is_refused() {
    let chain = chain(SignatureAlgorithm::EcdsaSha256);
    let prepared =
        pades::prepare(&small_pdf(), &chain.der, chain.algorithm, 0, "Signature1").unwrap();
    // Over another hash.
    let wrong = chain.key.sign_hash(&[0u8; 32]);
    assert_eq!(
        pades::finish(&prepared, &wrong, None),
        Err(PadesError::BadSignature)
    );
    // By another key.
    let other = chain_key_only();
    assert_eq!(
        pades::finish(&prepared, &other.sign_hash(&prepared.hash_to_sign()), None),
        Err(PadesError::BadSignature)
    );
    // The right value as raw r‖s (PKCS#11 CKM_ECDSA) instead of DER.
    let SignerKey::Ecdsa(key) = &chain.key else {
        panic!()
    };
    let raw: p256::ecdsa::Signature = key.sign_prehash(&prepared.hash_to_sign()).unwrap();
    assert_eq!(
        pades::finish(&prepared, &raw.to_bytes(), None),
        Err(PadesError::BadSignature)
    );
    assert_eq!(
        pades::finish(&prepared, b"", None),
        Err(PadesError::BadSignature)
    );
    // The right value works.
    let right = chain.key.sign_hash(&prepared.hash_to_sign());
    assert!(pades::finish(&prepared, &right, None).is_ok());

    let rsa_chain = chain_rsa_prepared();
    assert_eq!(
        pades::finish(&rsa_chain.0, &[1u8; 256], None),
        Err(PadesError::BadSignature)
    );
}

fn chain_key_only() -> SignerKey {
    SignerKey::Ecdsa(ecdsa_key())
}

fn chain_rsa_prepared() -> (Prepared, Chain) {
    let chain = chain(SignatureAlgorithm::RsaPkcs1Sha256);
    (
        pades::prepare(&small_pdf(), &chain.der, chain.algorithm, 0, "Signature1").unwrap(),
        chain,
    )
}

#[test]
fn the_prepared_state_survives_storage_and_detects_tampering() {
    let chain = chain(SignatureAlgorithm::EcdsaSha256);
    let prepared = pades::prepare(
        &small_pdf(),
        &chain.der,
        chain.algorithm,
        1_764_040_668,
        "Signature1",
    )
    .unwrap();
    let bytes = prepared.to_bytes();
    let restored = Prepared::from_bytes(&bytes).unwrap();
    assert_eq!(restored, prepared);
    assert_eq!(restored.hash_to_sign(), prepared.hash_to_sign());
    // Any byte of the stored PDF changed (outside the placeholder) breaks the digest check.
    let pdf_at = find(&bytes, b"%PDF-").unwrap();
    let mut tampered = bytes.clone();
    tampered[pdf_at + 20] ^= 1;
    assert!(matches!(
        Prepared::from_bytes(&tampered),
        Err(PadesError::InvalidPrepared(_))
    ));
    // A byte in the placeholder.
    let placeholder_at = pdf_at + find(&bytes[pdf_at..], b"/Contents <").unwrap() + 20;
    let mut tampered = bytes.clone();
    tampered[placeholder_at] = b'1';
    assert!(matches!(
        Prepared::from_bytes(&tampered),
        Err(PadesError::InvalidPrepared(_))
    ));
    // Every truncation.
    for cut in (0..bytes.len()).step_by(97) {
        assert!(
            matches!(
                Prepared::from_bytes(&bytes[..cut]),
                Err(PadesError::InvalidPrepared(_))
            ),
            "cut at {cut}"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        Prepared::from_bytes(&longer),
        Err(PadesError::InvalidPrepared(_))
    ));
}

#[test]
fn damaged_inputs_are_refused_without_panicking() {
    let chain = chain(SignatureAlgorithm::EcdsaSha256);
    let prepare = |pdf: &[u8]| pades::prepare(pdf, &chain.der, chain.algorithm, 0, "Signature1");
    assert_eq!(prepare(b"").unwrap_err(), PadesError::NotPdf);
    assert_eq!(prepare(b"hello world").unwrap_err(), PadesError::NotPdf);
    assert_eq!(prepare(b"%PDF").unwrap_err(), PadesError::NotPdf);

    // Every prefix of a small PDF, and of an object-stream PDF.
    for input in [small_pdf(), object_stream_pdf(8)] {
        for cut in 0..input.len() - 1 {
            let result = prepare(&input[..cut]);
            assert!(result.is_err(), "a PDF cut at {cut} was accepted");
        }
        // Every single-byte change must either be refused or still give a valid increment.
        for at in 0..input.len() {
            let mut changed = input.clone();
            changed[at] = changed[at].wrapping_add(0x41);
            if let Ok(prepared) = prepare(&changed) {
                let signed = pades::finish(
                    &prepared,
                    &chain.key.sign_hash(&prepared.hash_to_sign()),
                    None,
                )
                .unwrap();
                assert!(signed.starts_with(&changed));
            }
        }
    }
    // Pseudo-random bytes behind a PDF header.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for length in [10usize, 100, 1000, 10_000, 100_000] {
        let mut bytes = b"%PDF-1.7\n".to_vec();
        for _ in 0..length {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            bytes.push(state as u8);
        }
        assert!(
            matches!(prepare(&bytes), Err(PadesError::Corrupt(_))),
            "random {length}"
        );
    }

    let text = String::from_utf8(small_pdf()).unwrap();
    // Encrypted (an /Encrypt entry in the trailer).
    let encrypted = text.replace("/Root 1 0 R", "/Root 1 0 R /Encrypt 9 0 R");
    assert_eq!(
        prepare(encrypted.as_bytes()).unwrap_err(),
        PadesError::Encrypted
    );
    // A broken cross-reference table: an offset one byte off.
    let offset_of_2 = text.find("2 0 obj").unwrap();
    let broken = text.replace(
        &format!("{offset_of_2:010} 00000 n"),
        &format!("{:010} 00000 n", offset_of_2 + 1),
    );
    assert!(matches!(
        prepare(broken.as_bytes()),
        Err(PadesError::Corrupt(_))
    ));
    // startxref pointing into the middle of nowhere.
    let xref = text.find("xref\n").unwrap();
    let wrong_startxref = text.replace(
        &format!("startxref\n{xref}"),
        &format!("startxref\n{}", xref - 3),
    );
    assert!(matches!(
        prepare(wrong_startxref.as_bytes()),
        Err(PadesError::Corrupt(_))
    ));
    // No %%EOF.
    assert!(matches!(
        prepare(text.trim_end().trim_end_matches("%%EOF").as_bytes()),
        Err(PadesError::Corrupt(_))
    ));
    // A hybrid-reference file.
    let hybrid = text.replace("/Root 1 0 R", "/Root 1 0 R /XRefStm 9");
    assert!(matches!(
        prepare(hybrid.as_bytes()),
        Err(PadesError::Unsupported(_))
    ));
    // A page tree that loops.
    let looping = text.replace("/Kids [3 0 R]", "/Kids [2 0 R]");
    let looping = fix_offsets(&looping);
    assert!(matches!(
        prepare(looping.as_bytes()),
        Err(PadesError::Corrupt(_))
    ));

    // A real encrypted file, if qpdf can make one.
    if tool_exists("qpdf") {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("plain.pdf"), small_pdf()).unwrap();
        let status = Command::new("qpdf")
            .args(["--encrypt", "user", "owner", "256", "--"])
            .arg(dir.path().join("plain.pdf"))
            .arg(dir.path().join("encrypted.pdf"))
            .status()
            .unwrap();
        assert!(status.success());
        let encrypted = std::fs::read(dir.path().join("encrypted.pdf")).unwrap();
        assert_eq!(prepare(&encrypted).unwrap_err(), PadesError::Encrypted);
    } else {
        eprintln!("note: qpdf is not installed, the qpdf-encrypted case is skipped");
    }
}

/// Rewrites the classic table of a `small_pdf` variant so that the offsets fit again.
fn fix_offsets(text: &str) -> String {
    let body_end = text.find("xref\n").unwrap();
    let body = &text[..body_end];
    let mut table = String::from("xref\n0 5\n0000000000 65535 f \n");
    for number in 1..=4 {
        let offset = body.find(&format!("{number} 0 obj")).unwrap();
        table.push_str(&format!("{offset:010} 00000 n \n"));
    }
    let trailer_at = text.find("trailer").unwrap();
    let trailer_end = text.find("startxref").unwrap();
    format!(
        "{body}{table}{}startxref\n{body_end}\n%%EOF\n",
        &text[trailer_at..trailer_end]
    )
}

#[test]
fn bad_arguments_are_refused_before_anything_is_signed() {
    let chain = chain(SignatureAlgorithm::EcdsaSha256);
    let pdf = small_pdf();
    let prepare = |chain_der: &[Vec<u8>], algorithm, time, name: &str| {
        pades::prepare(&pdf, chain_der, algorithm, time, name)
    };
    assert!(matches!(
        prepare(&[], chain.algorithm, 0, "S"),
        Err(PadesError::InvalidCertificate(_))
    ));
    assert!(matches!(
        prepare(&[b"junk".to_vec()], chain.algorithm, 0, "S"),
        Err(PadesError::InvalidCertificate(_))
    ));
    assert!(matches!(
        prepare(&chain.der, SignatureAlgorithm::RsaPkcs1Sha256, 0, "S"),
        Err(PadesError::InvalidCertificate(_))
    ));
    assert!(matches!(
        prepare(&chain.der, chain.algorithm, 0, "a.b"),
        Err(PadesError::InvalidFieldName(_))
    ));
    assert!(matches!(
        prepare(&chain.der, chain.algorithm, 0, ""),
        Err(PadesError::InvalidFieldName(_))
    ));
    assert!(matches!(
        prepare(&chain.der, chain.algorithm, 400_000_000_000, "S"),
        Err(PadesError::InvalidSigningTime(_))
    ));
    // Cyrillic names are written as UTF-16BE text strings.
    let prepared = prepare(&chain.der, chain.algorithm, 0, "Потпис").unwrap();
    let signed = pades::finish(
        &prepared,
        &chain.key.sign_hash(&prepared.hash_to_sign()),
        None,
    )
    .unwrap();
    assert!(find(&signed, b"/T <FEFF041F043E0442043F04380441>").is_some());
}
