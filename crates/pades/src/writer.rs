//! Writing one incremental update (ISO 32000-1 §7.5.6; reference/pades.md §1.3): the input
//! bytes unchanged, the new and changed objects, then a cross-reference section of the same
//! kind as the input's (table or stream) whose `/Prev` is the input's last `startxref`, and
//! whose `/Size` never decreases.

use std::collections::BTreeMap;

use crate::document::{Document, XrefKind};
use crate::syntax::{write_dictionary, write_object, Dictionary, Object, ObjectId};
use crate::PadesError;

/// Trailer keys that describe one cross-reference section, not the document, and so are not
/// carried into the next trailer (pyHanko `TrailerDictionary.non_trailer_keys`).
const SECTION_KEYS: [&[u8]; 10] = [
    b"XRefStm",
    b"W",
    b"Index",
    b"Length",
    b"Filter",
    b"DecodeParms",
    b"Type",
    b"Prev",
    b"Size",
    b"DL",
];

/// The body of one object of the increment.
enum NewBody {
    /// A plain object.
    Object(Object),
    /// A stream, written unfiltered with its `/Length` set.
    Stream(Dictionary, Vec<u8>),
    /// Bytes written verbatim between `obj` and `endobj` (the signature dictionary, whose
    /// placeholder offsets its builder knows).
    Raw(Vec<u8>),
}

/// The objects of one increment, collected before writing.
pub(crate) struct Increment {
    next: u32,
    objects: BTreeMap<u32, (ObjectId, NewBody)>,
}

/// A written increment.
pub(crate) struct Written {
    /// The whole new file: input, increment.
    pub(crate) bytes: Vec<u8>,
    /// Where each object's body (after `N G obj\n`) starts, by object number.
    pub(crate) body_offsets: BTreeMap<u32, usize>,
}

impl Increment {
    /// An empty increment on `document` (which is passed again to [`Increment::write`]).
    pub(crate) fn new(document: &Document<'_>) -> Self {
        Self {
            next: document.next_number(),
            objects: BTreeMap::new(),
        }
    }

    /// A new object number (from the previous `/Size` on).
    pub(crate) fn allocate(&mut self) -> ObjectId {
        let id = ObjectId::new(self.next);
        self.next += 1;
        id
    }

    /// Writes `object` as `id` (new, or replacing the object with the same number and
    /// generation).
    pub(crate) fn put(&mut self, id: ObjectId, object: Object) {
        self.objects
            .insert(id.number, (id, NewBody::Object(object)));
    }

    /// Writes a stream object.
    pub(crate) fn put_stream(&mut self, id: ObjectId, dictionary: Dictionary, data: Vec<u8>) {
        self.objects
            .insert(id.number, (id, NewBody::Stream(dictionary, data)));
    }

    /// Writes an object body verbatim.
    pub(crate) fn put_raw(&mut self, id: ObjectId, body: Vec<u8>) {
        self.objects.insert(id.number, (id, NewBody::Raw(body)));
    }

    /// The object queued as `id`, if any (to edit an object twice in one increment).
    pub(crate) fn queued(&self, id: ObjectId) -> Option<&Object> {
        match self.objects.get(&id.number) {
            Some((queued, NewBody::Object(object))) if *queued == id => Some(object),
            _ => None,
        }
    }

    /// Writes the increment after the bytes of `document`.
    pub(crate) fn write(mut self, document: &Document<'_>) -> Result<Written, PadesError> {
        let previous = document.bytes();
        let mut out = Vec::with_capacity(previous.len() + 64 * 1024);
        out.extend_from_slice(previous);
        // The increment starts on a new line (veraPDF-library#917).
        if !matches!(out.last(), Some(b'\n' | b'\r')) {
            out.push(b'\n');
        }
        let mut entries: BTreeMap<u32, (usize, u16)> = BTreeMap::new();
        let mut body_offsets = BTreeMap::new();
        for (number, (id, body)) in &self.objects {
            entries.insert(*number, (out.len(), id.generation));
            out.extend_from_slice(format!("{} {} obj\n", id.number, id.generation).as_bytes());
            body_offsets.insert(*number, out.len());
            match body {
                NewBody::Object(object) => write_object(&mut out, object),
                NewBody::Raw(bytes) => out.extend_from_slice(bytes),
                NewBody::Stream(dictionary, data) => {
                    let mut dictionary = dictionary.clone();
                    dictionary.set(
                        b"Length",
                        Object::Integer(i64::try_from(data.len()).map_err(internal)?),
                    );
                    write_dictionary(&mut out, &dictionary);
                    out.extend_from_slice(b"\nstream\n");
                    out.extend_from_slice(data);
                    out.extend_from_slice(b"\nendstream");
                }
            }
            out.extend_from_slice(b"\nendobj\n");
        }
        let mut trailer = document.trailer().clone();
        for key in SECTION_KEYS {
            trailer.remove(key);
        }
        let prev = i64::try_from(document.startxref()).map_err(internal)?;
        match document.xref_kind() {
            XrefKind::Table => {
                let size = document.size().max(self.next);
                trailer.set(b"Size", Object::Integer(i64::from(size)));
                trailer.set(b"Prev", Object::Integer(prev));
                let xref_offset = out.len();
                out.extend_from_slice(b"xref\n");
                entries.insert(0, (0, 65535));
                for run in runs(&entries) {
                    let (first, count) = (run.first().map(|(n, _)| *n).unwrap_or(0), run.len());
                    out.extend_from_slice(format!("{first} {count}\n").as_bytes());
                    for (number, (offset, generation)) in run {
                        // Exactly 20 bytes per entry (§7.5.4).
                        let kind = if number == 0 { 'f' } else { 'n' };
                        out.extend_from_slice(
                            format!("{offset:010} {generation:05} {kind}\r\n").as_bytes(),
                        );
                    }
                }
                out.extend_from_slice(b"trailer\n");
                write_dictionary(&mut out, &trailer);
                out.extend_from_slice(format!("\nstartxref\n{xref_offset}\n%%EOF\n").as_bytes());
            }
            XrefKind::Stream => {
                let xref_id = self.allocate();
                let xref_offset = out.len();
                entries.insert(xref_id.number, (xref_offset, 0));
                let size = document.size().max(self.next);
                let mut index = Vec::new();
                let mut data = Vec::new();
                for run in runs(&entries) {
                    let first = run.first().map(|(n, _)| *n).unwrap_or(0);
                    index.push(Object::Integer(i64::from(first)));
                    index.push(Object::Integer(i64::try_from(run.len()).map_err(internal)?));
                    for (_, (offset, generation)) in run {
                        data.push(1u8);
                        data.extend_from_slice(
                            &u32::try_from(offset).map_err(internal)?.to_be_bytes(),
                        );
                        data.extend_from_slice(&generation.to_be_bytes());
                    }
                }
                trailer.set(b"Type", Object::Name(b"XRef".to_vec()));
                trailer.set(b"Size", Object::Integer(i64::from(size)));
                trailer.set(b"Prev", Object::Integer(prev));
                trailer.set(
                    b"W",
                    Object::Array(vec![
                        Object::Integer(1),
                        Object::Integer(4),
                        Object::Integer(2),
                    ]),
                );
                trailer.set(b"Index", Object::Array(index));
                trailer.set(
                    b"Length",
                    Object::Integer(i64::try_from(data.len()).map_err(internal)?),
                );
                out.extend_from_slice(format!("{} 0 obj\n", xref_id.number).as_bytes());
                write_dictionary(&mut out, &trailer);
                out.extend_from_slice(b"\nstream\n");
                out.extend_from_slice(&data);
                out.extend_from_slice(
                    format!("\nendstream\nendobj\nstartxref\n{xref_offset}\n%%EOF\n").as_bytes(),
                );
            }
        }
        // reference/pades.md §5.3: an incremental update never changes a byte of its input.
        if !out.starts_with(previous) {
            return Err(PadesError::Internal(
                "the increment changed the input bytes".into(),
            ));
        }
        Ok(Written {
            bytes: out,
            body_offsets,
        })
    }
}

fn internal(error: impl std::fmt::Display) -> PadesError {
    PadesError::Internal(format!("offset out of range: {error}"))
}

/// Consecutive runs of object numbers (the subsections of a cross-reference section).
fn runs(entries: &BTreeMap<u32, (usize, u16)>) -> Vec<Vec<(u32, (usize, u16))>> {
    let mut runs: Vec<Vec<(u32, (usize, u16))>> = Vec::new();
    for (&number, &entry) in entries {
        match runs.last_mut() {
            Some(run) if run.last().is_some_and(|(last, _)| last + 1 == number) => {
                run.push((number, entry))
            }
            _ => runs.push(vec![(number, entry)]),
        }
    }
    runs
}
