//! Revision n+1 of a PAdES signature (reference/pades.md §1.1, §1.2): an invisible signature
//! field and widget in AcroForm `/Fields` and the first page's `/Annots`, and the `/Sig`
//! dictionary with a fixed-width `/ByteRange` slot and a zero-filled `/Contents` placeholder.

use std::collections::HashSet;

use crate::document::Document;
use crate::syntax::{Dictionary, Object, ObjectId};
use crate::writer::Increment;
use crate::PadesError;

/// The `/ByteRange` slot as first written; the real values overwrite it, padded with spaces.
const BYTE_RANGE_SLOT: &[u8] = b"[0 9999999999 9999999999 9999999999]";
/// The deepest page tree followed to the first page.
const MAX_PAGE_TREE_DEPTH: usize = 64;
/// The most form fields looked at for name clashes.
const MAX_FIELDS: usize = 100_000;
/// The longest field name accepted, in characters.
const MAX_FIELD_NAME: usize = 127;

/// The signed revision with its placeholder, not yet hashed.
pub(crate) struct Placeholder {
    /// The whole file with the increment; `/ByteRange` already filled in.
    pub(crate) pdf: Vec<u8>,
    /// Offset of the `<` that opens `/Contents`.
    pub(crate) contents_start: usize,
}

/// Checks a field name: non-empty, no period (it separates the parts of a fully qualified
/// name, ISO 32000-1 §12.7.3.2), no control characters, at most [`MAX_FIELD_NAME`] characters.
pub(crate) fn check_field_name(name: &str) -> Result<(), PadesError> {
    let count = name.chars().count();
    if count == 0
        || count > MAX_FIELD_NAME
        || name.contains('.')
        || name.chars().any(char::is_control)
    {
        return Err(PadesError::InvalidFieldName(name.to_owned()));
    }
    Ok(())
}

/// A text string (ISO 32000-1 §7.9.2.2): ASCII as is, anything else UTF-16BE with a BOM.
fn text_string(text: &str) -> Vec<u8> {
    if text.is_ascii() {
        return text.as_bytes().to_vec();
    }
    let mut bytes = vec![0xfe, 0xff];
    for unit in text.encode_utf16() {
        bytes.extend_from_slice(&unit.to_be_bytes());
    }
    bytes
}

/// Decodes a text string well enough to compare names (PDFDocEncoding read as Latin-1).
fn decode_text(bytes: &[u8]) -> String {
    match bytes.strip_prefix(&[0xfe, 0xff]) {
        Some(utf16) => {
            let units = utf16
                .chunks_exact(2)
                .map(|pair| u16::from_be_bytes(<[u8; 2]>::try_from(pair).unwrap_or_default()));
            char::decode_utf16(units)
                .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect()
        }
        None => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

/// The object as it stands in this increment: the queued edit, or the input's.
fn current(
    increment: &Increment,
    document: &mut Document<'_>,
    id: ObjectId,
) -> Result<Object, PadesError> {
    match increment.queued(id) {
        Some(object) => Ok(object.clone()),
        None => document.object(id),
    }
}

fn current_dictionary(
    increment: &Increment,
    document: &mut Document<'_>,
    id: ObjectId,
) -> Result<Dictionary, PadesError> {
    match current(increment, document, id)? {
        Object::Dictionary(dictionary) => Ok(dictionary),
        _ => Err(PadesError::Corrupt(format!(
            "object {} {} is not a dictionary",
            id.number, id.generation
        ))),
    }
}

/// The first page of the page tree (ISO 32000-1 §7.7.3), following the first kid at each level.
fn first_page(document: &mut Document<'_>, catalog: &Dictionary) -> Result<ObjectId, PadesError> {
    let mut node = catalog
        .get(b"Pages")
        .and_then(Object::as_reference)
        .ok_or_else(|| PadesError::Corrupt("the catalog has no /Pages reference".into()))?;
    let mut seen = HashSet::new();
    for _ in 0..MAX_PAGE_TREE_DEPTH {
        if !seen.insert(node) {
            return Err(PadesError::Corrupt("the page tree loops".into()));
        }
        let dictionary = document.dictionary(node)?;
        let is_leaf = match dictionary.get(b"Type").and_then(Object::as_name) {
            Some(b"Page") => true,
            Some(b"Pages") => false,
            _ => !dictionary.contains(b"Kids"),
        };
        if is_leaf {
            return Ok(node);
        }
        let kids = match dictionary.get(b"Kids") {
            Some(kids) => document.resolve(kids)?,
            None => Object::Null,
        };
        node = match kids {
            Object::Array(kids) => kids.first().and_then(Object::as_reference),
            _ => None,
        }
        .ok_or_else(|| PadesError::Corrupt("the document has no page".into()))?;
    }
    Err(PadesError::Corrupt("the page tree is too deep".into()))
}

/// Whether the document is certified with DocMDP `/P 1` (no changes allowed, ISO 32000-1
/// §12.8.2.2): a further signature would break the certification.
fn forbids_changes(document: &mut Document<'_>, catalog: &Dictionary) -> Result<bool, PadesError> {
    let Some(perms) = catalog.get(b"Perms") else {
        return Ok(false);
    };
    let Object::Dictionary(perms) = document.resolve(perms)? else {
        return Ok(false);
    };
    let Some(doc_mdp) = perms.get(b"DocMDP") else {
        return Ok(false);
    };
    let Object::Dictionary(signature) = document.resolve(doc_mdp)? else {
        return Ok(false);
    };
    let Some(references) = signature.get(b"Reference") else {
        return Ok(false);
    };
    let Object::Array(references) = document.resolve(references)? else {
        return Ok(false);
    };
    for reference in references.iter().take(16) {
        let Object::Dictionary(reference) = document.resolve(reference)? else {
            continue;
        };
        if reference.get(b"TransformMethod").and_then(Object::as_name) != Some(b"DocMDP") {
            continue;
        }
        let params = match reference.get(b"TransformParams") {
            Some(params) => document.resolve(params)?,
            None => Object::Null,
        };
        let permission = match params {
            Object::Dictionary(params) => {
                params.get(b"P").and_then(Object::as_integer).unwrap_or(2)
            }
            _ => 2,
        };
        return Ok(permission == 1);
    }
    Ok(false)
}

/// The names of the top-level fields of `fields` (the only ones a top-level field can clash with).
fn field_names(
    document: &mut Document<'_>,
    fields: &[Object],
) -> Result<HashSet<String>, PadesError> {
    if fields.len() > MAX_FIELDS {
        return Err(PadesError::Unsupported(format!(
            "more than {MAX_FIELDS} form fields"
        )));
    }
    let mut names = HashSet::new();
    for field in fields {
        if let Object::Dictionary(field) = document.resolve(field)? {
            if let Some(Object::String(name)) = field.get(b"T") {
                names.insert(decode_text(name));
            }
        }
    }
    Ok(names)
}

/// `name`, or `name_2`, `name_3`, ... whichever is not taken.
fn unique_name(name: &str, taken: &HashSet<String>) -> Result<String, PadesError> {
    if !taken.contains(name) {
        return Ok(name.to_owned());
    }
    (2..=taken.len() + 2)
        .map(|n| format!("{name}_{n}"))
        .find(|candidate| !taken.contains(candidate))
        .ok_or_else(|| PadesError::Internal("no free field name".into()))
}

/// Appends `item` to the array held (directly or through a reference) under `key` of
/// `holder`; an indirect array is rewritten in place. Returns whether `holder` changed.
fn append_to_array(
    increment: &mut Increment,
    document: &mut Document<'_>,
    holder: &mut Dictionary,
    key: &[u8],
    item: Object,
) -> Result<bool, PadesError> {
    match holder.get(key).cloned() {
        Some(Object::Reference(id)) => match current(increment, document, id)? {
            Object::Array(mut items) => {
                items.push(item);
                increment.put(id, Object::Array(items));
                Ok(false)
            }
            Object::Null => {
                holder.set(key, Object::Array(vec![item]));
                Ok(true)
            }
            _ => Err(PadesError::Corrupt(format!(
                "/{} is not an array",
                String::from_utf8_lossy(key)
            ))),
        },
        Some(Object::Array(mut items)) => {
            items.push(item);
            holder.set(key, Object::Array(items));
            Ok(true)
        }
        None | Some(Object::Null) => {
            holder.set(key, Object::Array(vec![item]));
            Ok(true)
        }
        Some(_) => Err(PadesError::Corrupt(format!(
            "/{} is not an array",
            String::from_utf8_lossy(key)
        ))),
    }
}

/// `/SigFlags 3` (SignaturesExist | AppendOnly) added to the existing flags, `/NeedAppearances`
/// removed (pyHanko `ensure_sig_flags`), the field appended to `/Fields`.
fn update_acroform(
    increment: &mut Increment,
    document: &mut Document<'_>,
    acroform: &mut Dictionary,
    field: ObjectId,
) -> Result<(), PadesError> {
    let flags = acroform
        .get(b"SigFlags")
        .and_then(Object::as_integer)
        .unwrap_or(0);
    acroform.set(b"SigFlags", Object::Integer(flags | 3));
    acroform.remove(b"NeedAppearances");
    append_to_array(
        increment,
        document,
        acroform,
        b"Fields",
        Object::Reference(field),
    )?;
    Ok(())
}

/// Builds revision n+1 with an invisible signature field `field_name` (made unique) signed at
/// `pdf_date`, and fills in `/ByteRange` around a placeholder of `capacity` bytes.
pub(crate) fn add_signature_field(
    document: &mut Document<'_>,
    field_name: &str,
    pdf_date: &str,
    capacity: usize,
) -> Result<Placeholder, PadesError> {
    let root = document.root()?;
    let catalog = document.dictionary(root)?;
    if forbids_changes(document, &catalog)? {
        return Err(PadesError::Unsupported(
            "the document is certified with no changes allowed (DocMDP /P 1)".into(),
        ));
    }
    let page = first_page(document, &catalog)?;
    let acroform = match catalog.get(b"AcroForm") {
        Some(Object::Reference(id)) => match document.object(*id)? {
            Object::Dictionary(dictionary) => Some((Some(*id), dictionary)),
            Object::Null => None,
            _ => return Err(PadesError::Corrupt("/AcroForm is not a dictionary".into())),
        },
        Some(Object::Dictionary(dictionary)) => Some((None, dictionary.clone())),
        None | Some(Object::Null) => None,
        Some(_) => return Err(PadesError::Corrupt("/AcroForm is not a dictionary".into())),
    };
    let fields = match acroform
        .as_ref()
        .and_then(|(_, form)| form.get(b"Fields"))
        .cloned()
    {
        Some(fields) => match document.resolve(&fields)? {
            Object::Array(fields) => fields,
            Object::Null => Vec::new(),
            _ => return Err(PadesError::Corrupt("/Fields is not an array".into())),
        },
        None => Vec::new(),
    };
    let taken = field_names(document, &fields)?;
    let name = unique_name(field_name, &taken)?;

    let mut increment = Increment::new(document);
    let signature = increment.allocate();
    let field = increment.allocate();

    // 1. The merged field and widget (reference/pades.md §1.1): invisible, printable, locked.
    let mut widget = Dictionary::new();
    widget.set(b"Type", Object::Name(b"Annot".to_vec()));
    widget.set(b"Subtype", Object::Name(b"Widget".to_vec()));
    widget.set(b"FT", Object::Name(b"Sig".to_vec()));
    widget.set(b"T", Object::String(text_string(&name)));
    widget.set(b"F", Object::Integer(132));
    widget.set(b"Rect", Object::Array(vec![Object::Integer(0); 4]));
    widget.set(b"P", Object::Reference(page));
    widget.set(b"V", Object::Reference(signature));
    increment.put(field, Object::Dictionary(widget));

    // 2. The signature dictionary, written by hand so that the offsets of its two slots are known.
    let mut body = Vec::with_capacity(capacity * 2 + 256);
    body.extend_from_slice(
        b"<< /Type /Sig /Filter /Adobe.PPKLite /SubFilter /ETSI.CAdES.detached /M (",
    );
    body.extend_from_slice(pdf_date.as_bytes());
    body.extend_from_slice(b") /ByteRange ");
    let byte_range_relative = body.len();
    body.extend_from_slice(BYTE_RANGE_SLOT);
    body.extend_from_slice(b" /Contents ");
    let contents_relative = body.len();
    body.push(b'<');
    body.resize(body.len() + capacity * 2, b'0');
    body.extend_from_slice(b"> >>");
    increment.put_raw(signature, body);

    // 3. The AcroForm: created, or updated where it lives (indirect object or inside the catalog).
    match acroform {
        Some((Some(id), _)) => {
            let mut form = current_dictionary(&increment, document, id)?;
            update_acroform(&mut increment, document, &mut form, field)?;
            increment.put(id, Object::Dictionary(form));
        }
        Some((None, mut form)) => {
            update_acroform(&mut increment, document, &mut form, field)?;
            let mut catalog = current_dictionary(&increment, document, root)?;
            catalog.set(b"AcroForm", Object::Dictionary(form));
            increment.put(root, Object::Dictionary(catalog));
        }
        None => {
            let id = increment.allocate();
            let mut form = Dictionary::new();
            form.set(b"Fields", Object::Array(vec![Object::Reference(field)]));
            form.set(b"SigFlags", Object::Integer(3));
            increment.put(id, Object::Dictionary(form));
            let mut catalog = current_dictionary(&increment, document, root)?;
            catalog.set(b"AcroForm", Object::Reference(id));
            increment.put(root, Object::Dictionary(catalog));
        }
    }

    // 4. The widget on the first page.
    let mut page_dictionary = current_dictionary(&increment, document, page)?;
    if append_to_array(
        &mut increment,
        document,
        &mut page_dictionary,
        b"Annots",
        Object::Reference(field),
    )? {
        increment.put(page, Object::Dictionary(page_dictionary));
    }

    // 5. Write, then fill /ByteRange: the gap is exactly the hex string with its brackets
    //    (reference/pades.md §1.2, §5.1).
    let written = increment.write(document)?;
    let body_start = *written
        .body_offsets
        .get(&signature.number)
        .ok_or_else(|| PadesError::Internal("the signature dictionary was not written".into()))?;
    let mut pdf = written.bytes;
    let contents_start = body_start + contents_relative;
    let contents_end = contents_start + capacity * 2 + 2;
    let byte_range = format!(
        "[0 {contents_start} {contents_end} {}]",
        pdf.len() - contents_end
    );
    let slot_start = body_start + byte_range_relative;
    let slot = pdf
        .get_mut(slot_start..slot_start + BYTE_RANGE_SLOT.len())
        .ok_or_else(|| PadesError::Internal("the /ByteRange slot is outside the file".into()))?;
    if byte_range.len() > slot.len() {
        return Err(PadesError::TooLarge);
    }
    slot.fill(b' ');
    slot.get_mut(..byte_range.len())
        .ok_or_else(|| PadesError::Internal("the /ByteRange slot is too small".into()))?
        .copy_from_slice(byte_range.as_bytes());
    Ok(Placeholder {
        pdf,
        contents_start,
    })
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )]

    use super::*;

    #[test]
    fn names_are_checked_and_made_unique() {
        assert!(check_field_name("Signature1").is_ok());
        assert!(check_field_name("Потпис").is_ok());
        for bad in ["", "a.b", "a\nb", &"x".repeat(200)] {
            assert!(matches!(
                check_field_name(bad),
                Err(PadesError::InvalidFieldName(_))
            ));
        }
        let taken: HashSet<String> = ["Sig".to_owned(), "Sig_2".to_owned()].into_iter().collect();
        assert_eq!(unique_name("Sig", &taken).unwrap(), "Sig_3");
        assert_eq!(unique_name("Other", &taken).unwrap(), "Other");
    }

    #[test]
    fn text_strings_round_trip() {
        assert_eq!(text_string("Sig"), b"Sig");
        assert_eq!(decode_text(&text_string("Потпис")), "Потпис");
    }
}
