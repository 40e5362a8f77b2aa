//! Reading an existing PDF far enough to append to it: the cross-reference chain (classic
//! tables and cross-reference streams, ISO 32000-1 §7.5.4, §7.5.8), the newest trailer and
//! random access to objects, including objects inside object streams (§7.5.7).
//!
//! The reader is strict where lenient readers repair: `startxref` must point exactly at a
//! section, every in-use entry of the newest view must point at its own `N G obj` header and
//! the file must end after `%%EOF`. A file that needs repair is refused
//! ([`PadesError::Corrupt`]) rather than silently rebuilt, because an increment appended to a
//! file that validators read differently from us would carry a signature over something else
//! (reference/pades.md §1.4). Hybrid-reference files and encrypted files are refused too.
//!
//! Every loop is bounded by the input length, by [`MAX_SECTIONS`] or by the decoding budget
//! of `filters`, and every nesting by a depth limit.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;

use crate::filters::{self, DECODE_BUDGET};
use crate::syntax::{Body, Dictionary, Object, ObjectId, Parser};
use crate::PadesError;

/// The largest input accepted, in bytes.
pub const MAX_INPUT_LEN: usize = 128 * 1024 * 1024;
/// The largest object number (ISO 32000-1 Annex C.2 limit of 8 388 607 indirect objects).
pub(crate) const MAX_OBJECT_NUMBER: u32 = 8_388_607;
/// The most cross-reference sections followed along the `/Prev` chain.
const MAX_SECTIONS: usize = 1000;
/// The most indirections followed to read one object (stream length, object stream, ...).
const MAX_RESOLVE_DEPTH: usize = 4;
/// How many bytes of objects may be parsed to resolve objects, in total: a hostile file can
/// make objects overlap so that each resolution reads most of the file again.
const PARSE_BUDGET: usize = 256 * 1024 * 1024;
/// Cross-reference entries read over all sections, beyond one per input byte.
const EXTRA_ENTRIES: usize = 100_000;
/// How far from the end `startxref` is looked for.
const TAIL_SEARCH: usize = 2048;

/// One entry of the cross-reference view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// Free (type 0 / `f`).
    Free,
    /// An object at a byte offset (type 1 / `n`).
    InUse { offset: usize, generation: u16 },
    /// An object inside an object stream (type 2).
    Compressed { stream: u32, index: usize },
}

/// The kind of cross-reference section the input uses, which the increment must follow
/// (reference/pades.md §1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum XrefKind {
    /// Classic `xref` tables only.
    Table,
    /// At least one cross-reference stream on the chain.
    Stream,
}

/// A decoded object stream.
struct ObjectStream {
    data: Vec<u8>,
    first: usize,
    offsets: Vec<(u32, usize)>,
}

/// One indirect object as stored: a plain object or a stream with its raw (encoded) data.
enum Stored {
    Object(Object),
    Stream(Dictionary, Vec<u8>),
}

/// A parsed input PDF.
pub(crate) struct Document<'a> {
    bytes: &'a [u8],
    entries: BTreeMap<u32, Entry>,
    trailer: Dictionary,
    startxref: usize,
    kind: XrefKind,
    size: u32,
    next_number: u32,
    budget: usize,
    parse_budget: usize,
    object_streams: HashMap<u32, Rc<ObjectStream>>,
}

fn corrupt(message: impl Into<String>) -> PadesError {
    PadesError::Corrupt(message.into())
}

impl<'a> Document<'a> {
    /// Reads the cross-reference chain of `bytes` and checks it (see the module comment).
    pub(crate) fn load(bytes: &'a [u8]) -> Result<Self, PadesError> {
        if bytes.len() > MAX_INPUT_LEN {
            return Err(PadesError::TooLarge);
        }
        if !bytes.starts_with(b"%PDF-") {
            return Err(PadesError::NotPdf);
        }
        let startxref = find_startxref(bytes)?;
        let mut budget = DECODE_BUDGET;
        let mut entries = BTreeMap::new();
        let mut newest_trailer: Option<Dictionary> = None;
        let mut kind = XrefKind::Table;
        let mut seen = HashSet::new();
        let mut entry_budget = bytes.len() + EXTRA_ENTRIES;
        let mut next = Some(startxref);
        while let Some(offset) = next {
            if !seen.insert(offset) {
                return Err(corrupt("the /Prev chain of cross-reference sections loops"));
            }
            if seen.len() > MAX_SECTIONS {
                return Err(PadesError::Unsupported(format!(
                    "more than {MAX_SECTIONS} cross-reference sections"
                )));
            }
            let section = read_section(bytes, offset, &mut budget)?;
            entry_budget = entry_budget
                .checked_sub(section.entries.len())
                .ok_or_else(|| {
                    PadesError::Unsupported("implausibly many cross-reference entries".into())
                })?;
            if section.is_stream {
                kind = XrefKind::Stream;
            } else if section.trailer.contains(b"XRefStm") {
                return Err(PadesError::Unsupported(
                    "hybrid-reference file (a cross-reference table with /XRefStm); rewrite it before signing".into(),
                ));
            }
            // Newest first: an entry already seen is superseded by the newer section.
            for (number, entry) in section.entries {
                entries.entry(number).or_insert(entry);
            }
            next = match section.trailer.get(b"Prev") {
                None => None,
                Some(Object::Integer(prev)) => Some(
                    usize::try_from(*prev).map_err(|_| corrupt("negative /Prev in a trailer"))?,
                ),
                Some(_) => return Err(corrupt("/Prev is not an integer")),
            };
            if newest_trailer.is_none() {
                newest_trailer = Some(section.trailer);
            }
        }
        let trailer = newest_trailer.ok_or_else(|| corrupt("no cross-reference section"))?;
        if trailer.contains(b"Encrypt") {
            return Err(PadesError::Encrypted);
        }
        if trailer
            .get(b"Root")
            .and_then(Object::as_reference)
            .is_none()
        {
            return Err(corrupt("the trailer has no /Root reference"));
        }
        let size = trailer
            .get(b"Size")
            .and_then(Object::as_integer)
            .and_then(|size| u32::try_from(size).ok())
            .filter(|&size| (1..=MAX_OBJECT_NUMBER).contains(&size))
            .ok_or_else(|| corrupt("the trailer's /Size is missing or out of range"))?;
        let highest = entries.keys().next_back().copied().unwrap_or(0);
        let next_number = size.max(highest.saturating_add(1));
        if next_number > MAX_OBJECT_NUMBER - 64 {
            return Err(PadesError::Unsupported(
                "no object numbers left for an incremental update".into(),
            ));
        }
        let document = Self {
            bytes,
            entries,
            trailer,
            startxref,
            kind,
            size,
            next_number,
            budget,
            parse_budget: PARSE_BUDGET,
            object_streams: HashMap::new(),
        };
        document.check_offsets()?;
        Ok(document)
    }

    /// Every in-use entry must point at `N G obj` with its own number and generation: an
    /// offset that needs correcting means a damaged file.
    fn check_offsets(&self) -> Result<(), PadesError> {
        for (&number, entry) in &self.entries {
            match *entry {
                Entry::InUse { offset, generation } => {
                    let id = ObjectId { number, generation };
                    let found = Parser::new(self.bytes, offset).object_header().ok();
                    if number == 0 || offset >= self.bytes.len() || found != Some(id) {
                        return Err(corrupt(format!(
                            "the cross-reference entry of object {number} {generation} does not point at it (offset {offset})"
                        )));
                    }
                }
                Entry::Compressed { stream, .. } => {
                    if number == 0
                        || !matches!(
                            self.entries.get(&stream),
                            Some(Entry::InUse { generation: 0, .. })
                        )
                    {
                        return Err(corrupt(format!("object {number} lies in object stream {stream}, which is not a plain object")));
                    }
                }
                Entry::Free => {}
            }
        }
        Ok(())
    }

    /// The input bytes.
    pub(crate) fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The newest trailer dictionary.
    pub(crate) fn trailer(&self) -> &Dictionary {
        &self.trailer
    }

    /// The offset after the input's last `startxref` (the new section's `/Prev`).
    pub(crate) fn startxref(&self) -> usize {
        self.startxref
    }

    /// Which cross-reference kind the increment must use.
    pub(crate) fn xref_kind(&self) -> XrefKind {
        self.kind
    }

    /// The previous trailer's `/Size`.
    pub(crate) fn size(&self) -> u32 {
        self.size
    }

    /// The first object number free for new objects.
    pub(crate) fn next_number(&self) -> u32 {
        self.next_number
    }

    /// The catalog's id (`/Root`, checked at load).
    pub(crate) fn root(&self) -> Result<ObjectId, PadesError> {
        self.trailer
            .get(b"Root")
            .and_then(Object::as_reference)
            .ok_or_else(|| corrupt("the trailer has no /Root"))
    }

    /// Reads a non-stream object; a reference to a free or missing object reads as `null`
    /// (ISO 32000-1 §7.3.10).
    pub(crate) fn object(&mut self, id: ObjectId) -> Result<Object, PadesError> {
        match self.stored(id, 0)? {
            Stored::Object(object) => Ok(object),
            Stored::Stream(..) => Err(corrupt(format!(
                "object {} {} is a stream where none is expected",
                id.number, id.generation
            ))),
        }
    }

    /// Follows `object` if it is a reference.
    pub(crate) fn resolve(&mut self, object: &Object) -> Result<Object, PadesError> {
        match object {
            Object::Reference(id) => self.object(*id),
            other => Ok(other.clone()),
        }
    }

    /// Reads an object that must be a dictionary.
    pub(crate) fn dictionary(&mut self, id: ObjectId) -> Result<Dictionary, PadesError> {
        match self.object(id)? {
            Object::Dictionary(dictionary) => Ok(dictionary),
            _ => Err(corrupt(format!(
                "object {} {} is not a dictionary",
                id.number, id.generation
            ))),
        }
    }

    fn stored(&mut self, id: ObjectId, depth: usize) -> Result<Stored, PadesError> {
        if depth > MAX_RESOLVE_DEPTH {
            return Err(corrupt("too many nested indirections"));
        }
        match self.entries.get(&id.number).copied() {
            None | Some(Entry::Free) => Ok(Stored::Object(Object::Null)),
            Some(Entry::InUse { offset, generation }) => {
                if generation != id.generation {
                    return Ok(Stored::Object(Object::Null));
                }
                let mut parser = Parser::new(self.bytes, offset);
                parser.object_header()?;
                let body = parser.indirect_body();
                self.charge_parse(parser.position().saturating_sub(offset))?;
                match body? {
                    Body::Object(object) => Ok(Stored::Object(object)),
                    Body::Stream {
                        dictionary,
                        data_start,
                    } => {
                        let length = match dictionary.get(b"Length") {
                            Some(Object::Reference(length_id)) => {
                                match self.stored(*length_id, depth + 1)? {
                                    Stored::Object(Object::Integer(length)) => length,
                                    _ => return Err(corrupt("a stream /Length is not an integer")),
                                }
                            }
                            Some(Object::Integer(length)) => *length,
                            _ => return Err(corrupt("a stream has no /Length")),
                        };
                        let data = stream_data(self.bytes, data_start, length)?;
                        self.charge_parse(data.len())?;
                        Ok(Stored::Stream(dictionary, data.to_vec()))
                    }
                }
            }
            Some(Entry::Compressed { stream, index }) => {
                if id.generation != 0 {
                    return Ok(Stored::Object(Object::Null));
                }
                let object_stream = self.object_stream(stream, depth + 1)?;
                let &(number, offset) = object_stream.offsets.get(index).ok_or_else(|| {
                    corrupt(format!("object stream {stream} has no entry {index}"))
                })?;
                if number != id.number {
                    return Err(corrupt(format!(
                        "entry {index} of object stream {stream} is not object {}",
                        id.number
                    )));
                }
                let start = object_stream
                    .first
                    .checked_add(offset)
                    .ok_or_else(|| corrupt("object stream offset overflow"))?;
                if start >= object_stream.data.len() {
                    return Err(corrupt(format!(
                        "object {number} lies outside object stream {stream}"
                    )));
                }
                let mut parser = Parser::new(&object_stream.data, start);
                let object = parser.object();
                self.charge_parse(parser.position().saturating_sub(start))?;
                Ok(Stored::Object(object?))
            }
        }
    }

    fn charge_parse(&mut self, amount: usize) -> Result<(), PadesError> {
        self.parse_budget = self
            .parse_budget
            .checked_sub(amount)
            .ok_or(PadesError::TooLarge)?;
        Ok(())
    }

    fn object_stream(&mut self, number: u32, depth: usize) -> Result<Rc<ObjectStream>, PadesError> {
        if let Some(cached) = self.object_streams.get(&number) {
            return Ok(Rc::clone(cached));
        }
        if !matches!(self.entries.get(&number), Some(Entry::InUse { .. })) {
            return Err(corrupt(format!(
                "object stream {number} is not a plain object"
            )));
        }
        let Stored::Stream(dictionary, raw) = self.stored(ObjectId::new(number), depth)? else {
            return Err(corrupt(format!("object {number} is not an object stream")));
        };
        if dictionary.get(b"Type").and_then(Object::as_name) != Some(b"ObjStm") {
            return Err(corrupt(format!("object {number} is not an object stream")));
        }
        let count = non_negative(&dictionary, b"N")?;
        let first = non_negative(&dictionary, b"First")?;
        let data = filters::decode(&dictionary, &raw, &mut self.budget)?;
        if first > data.len() || count > first / 2 + 1 {
            return Err(corrupt(format!(
                "object stream {number} has an impossible /N or /First"
            )));
        }
        let header = data.get(..first).unwrap_or_default();
        let mut parser = Parser::new(header, 0);
        let mut offsets = Vec::with_capacity(count);
        for _ in 0..count {
            let object_number = u32::try_from(parser.unsigned()?)
                .map_err(|_| corrupt("object number too large"))?;
            let offset =
                usize::try_from(parser.unsigned()?).map_err(|_| corrupt("offset too large"))?;
            offsets.push((object_number, offset));
        }
        let object_stream = Rc::new(ObjectStream {
            data,
            first,
            offsets,
        });
        self.object_streams
            .insert(number, Rc::clone(&object_stream));
        Ok(object_stream)
    }
}

fn non_negative(dictionary: &Dictionary, key: &[u8]) -> Result<usize, PadesError> {
    dictionary
        .get(key)
        .and_then(Object::as_integer)
        .and_then(|value| usize::try_from(value).ok())
        .ok_or_else(|| {
            corrupt(format!(
                "/{} missing or negative",
                String::from_utf8_lossy(key)
            ))
        })
}

/// The `length` bytes of a stream starting at `start`, followed by `endstream`.
fn stream_data(bytes: &[u8], start: usize, length: i64) -> Result<&[u8], PadesError> {
    let length = usize::try_from(length).map_err(|_| corrupt("negative stream /Length"))?;
    let end = start
        .checked_add(length)
        .ok_or_else(|| corrupt("stream /Length overflow"))?;
    let data = bytes
        .get(start..end)
        .ok_or_else(|| corrupt("a stream runs past the end of the file"))?;
    let mut parser = Parser::new(bytes, end);
    parser.expect_keyword("endstream")?;
    Ok(data)
}

/// The offset after the last `startxref`, which must be followed by `%%EOF` and nothing but
/// white space.
fn find_startxref(bytes: &[u8]) -> Result<usize, PadesError> {
    let tail_start = bytes.len().saturating_sub(TAIL_SEARCH);
    let tail = bytes.get(tail_start..).unwrap_or_default();
    let keyword = b"startxref";
    let at = tail
        .windows(keyword.len())
        .rposition(|window| window == keyword)
        .map(|position| tail_start + position)
        .ok_or_else(|| corrupt("no `startxref` near the end of the file"))?;
    let mut parser = Parser::new(bytes, at + keyword.len());
    let offset =
        usize::try_from(parser.unsigned()?).map_err(|_| corrupt("`startxref` offset too large"))?;
    let mut position = parser.position();
    while bytes
        .get(position)
        .is_some_and(|&b| crate::syntax::is_whitespace(b))
    {
        position += 1;
    }
    let rest = bytes.get(position..).unwrap_or_default();
    let Some(after) = rest.strip_prefix(b"%%EOF") else {
        return Err(corrupt("`startxref` is not followed by %%EOF"));
    };
    if !after.iter().all(|&b| crate::syntax::is_whitespace(b)) {
        return Err(corrupt("data after the last %%EOF"));
    }
    if offset >= bytes.len() {
        return Err(corrupt("`startxref` points past the end of the file"));
    }
    Ok(offset)
}

/// One cross-reference section and its trailer.
struct Section {
    entries: Vec<(u32, Entry)>,
    trailer: Dictionary,
    is_stream: bool,
}

fn object_number(first: u64, index: u64) -> Result<u32, PadesError> {
    first
        .checked_add(index)
        .and_then(|number| u32::try_from(number).ok())
        .filter(|&number| number <= MAX_OBJECT_NUMBER)
        .ok_or_else(|| corrupt("object number out of range in a cross-reference section"))
}

fn read_section(bytes: &[u8], offset: usize, budget: &mut usize) -> Result<Section, PadesError> {
    let at = bytes.get(offset..).unwrap_or_default();
    if at.starts_with(b"xref") {
        read_table(bytes, offset + 4)
    } else if at.first().is_some_and(u8::is_ascii_digit) {
        read_stream_section(bytes, offset, budget)
    } else {
        Err(corrupt(format!(
            "no cross-reference section at offset {offset}"
        )))
    }
}

/// A classic table (§7.5.4) and its trailer (§7.5.5).
fn read_table(bytes: &[u8], start: usize) -> Result<Section, PadesError> {
    let mut parser = Parser::new(bytes, start);
    let mut entries = Vec::new();
    loop {
        if parser.eat_keyword(b"trailer") {
            break;
        }
        let first = parser.unsigned()?;
        let count = parser.unsigned()?;
        for index in 0..count {
            let number = object_number(first, index)?;
            let offset = parser.unsigned()?;
            let generation = parser.unsigned()?;
            let entry = if parser.eat_keyword(b"n") {
                Entry::InUse {
                    offset: usize::try_from(offset).map_err(|_| corrupt("offset too large"))?,
                    generation: u16::try_from(generation)
                        .map_err(|_| corrupt("generation too large"))?,
                }
            } else if parser.eat_keyword(b"f") {
                Entry::Free
            } else {
                return Err(corrupt(format!(
                    "bad cross-reference entry near byte {}",
                    parser.position()
                )));
            };
            entries.push((number, entry));
        }
    }
    let Object::Dictionary(trailer) = parser.object()? else {
        return Err(corrupt("`trailer` is not followed by a dictionary"));
    };
    Ok(Section {
        entries,
        trailer,
        is_stream: false,
    })
}

/// A cross-reference stream (§7.5.8); its dictionary is the trailer.
fn read_stream_section(
    bytes: &[u8],
    offset: usize,
    budget: &mut usize,
) -> Result<Section, PadesError> {
    let mut parser = Parser::new(bytes, offset);
    parser.object_header()?;
    let Body::Stream {
        dictionary,
        data_start,
    } = parser.indirect_body()?
    else {
        return Err(corrupt(format!(
            "no cross-reference stream at offset {offset}"
        )));
    };
    if dictionary.get(b"Type").and_then(Object::as_name) != Some(b"XRef") {
        return Err(corrupt(format!(
            "the stream at offset {offset} is not a cross-reference stream"
        )));
    }
    // §7.5.8.2: every value of a cross-reference stream dictionary is direct.
    let length = dictionary
        .get(b"Length")
        .and_then(Object::as_integer)
        .ok_or_else(|| corrupt("xref stream without a direct /Length"))?;
    let raw = stream_data(bytes, data_start, length)?;
    let data = filters::decode(&dictionary, raw, budget)?;
    let widths: Vec<usize> = match dictionary.get(b"W") {
        Some(Object::Array(items)) if items.len() == 3 => items
            .iter()
            .map(|item| {
                item.as_integer()
                    .and_then(|w| usize::try_from(w).ok())
                    .filter(|&w| w <= 8)
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| corrupt("bad /W in a cross-reference stream"))?,
        _ => return Err(corrupt("bad /W in a cross-reference stream")),
    };
    let (w0, w1, w2) = match widths.as_slice() {
        [a, b, c] => (*a, *b, *c),
        _ => return Err(corrupt("bad /W in a cross-reference stream")),
    };
    let row = w0 + w1 + w2;
    if row == 0 {
        return Err(corrupt("bad /W in a cross-reference stream"));
    }
    let size = dictionary
        .get(b"Size")
        .and_then(Object::as_integer)
        .ok_or_else(|| corrupt("xref stream without /Size"))?;
    let index: Vec<i64> = match dictionary.get(b"Index") {
        None => vec![0, size],
        Some(Object::Array(items)) if items.len() % 2 == 0 => items
            .iter()
            .map(Object::as_integer)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| corrupt("bad /Index in a cross-reference stream"))?,
        Some(_) => return Err(corrupt("bad /Index in a cross-reference stream")),
    };
    let mut rows = data.chunks_exact(row);
    let mut entries = Vec::new();
    for pair in index.chunks_exact(2) {
        let (first, count) = match pair {
            [first, count] => (*first, *count),
            _ => return Err(corrupt("bad /Index in a cross-reference stream")),
        };
        let first = u64::try_from(first).map_err(|_| corrupt("negative /Index"))?;
        let count = u64::try_from(count).map_err(|_| corrupt("negative /Index"))?;
        if count > (data.len() / row) as u64 {
            return Err(corrupt(
                "a cross-reference stream is shorter than its /Index",
            ));
        }
        for i in 0..count {
            let number = object_number(first, i)?;
            let fields = rows
                .next()
                .ok_or_else(|| corrupt("a cross-reference stream is shorter than its /Index"))?;
            let (f0, rest) = fields.split_at(w0);
            let (f1, f2) = rest.split_at(w1);
            let kind = if w0 == 0 { 1 } else { big_endian(f0) };
            let second = big_endian(f1);
            let third = big_endian(f2);
            let entry = match kind {
                0 => Entry::Free,
                1 => Entry::InUse {
                    offset: usize::try_from(second).map_err(|_| corrupt("offset too large"))?,
                    generation: u16::try_from(third)
                        .map_err(|_| corrupt("generation too large"))?,
                },
                2 => Entry::Compressed {
                    stream: u32::try_from(second)
                        .map_err(|_| corrupt("object stream number too large"))?,
                    index: usize::try_from(third)
                        .map_err(|_| corrupt("object stream index too large"))?,
                },
                // §7.5.8.3: other types are references to the null object.
                _ => Entry::Free,
            };
            entries.push((number, entry));
        }
    }
    Ok(Section {
        entries,
        trailer: dictionary,
        is_stream: true,
    })
}

fn big_endian(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0u64, |value, &byte| (value << 8) | u64::from(byte))
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

    /// A one-page PDF with a classic table, offsets computed.
    pub(crate) fn minimal_pdf() -> Vec<u8> {
        let objects = [
            "<< /Type /Catalog /Pages 2 0 R >>",
            "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
        ];
        let mut out = b"%PDF-1.7\n".to_vec();
        let mut offsets = Vec::new();
        for (i, body) in objects.iter().enumerate() {
            offsets.push(out.len());
            out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
        }
        let xref = out.len();
        out.extend_from_slice(b"xref\n0 4\n0000000000 65535 f \n");
        for offset in offsets {
            out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
        }
        out.extend_from_slice(
            format!("trailer\n<< /Size 4 /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n").as_bytes(),
        );
        out
    }

    #[test]
    fn reads_a_classic_table() {
        let bytes = minimal_pdf();
        let mut document = Document::load(&bytes).unwrap();
        assert_eq!(document.xref_kind(), XrefKind::Table);
        assert_eq!(document.next_number(), 4);
        let root = document.root().unwrap();
        let catalog = document.dictionary(root).unwrap();
        assert_eq!(
            catalog.get(b"Pages"),
            Some(&Object::Reference(ObjectId::new(2)))
        );
        assert_eq!(document.object(ObjectId::new(99)).unwrap(), Object::Null);
    }

    #[test]
    fn a_shifted_offset_is_corruption() {
        let bytes = minimal_pdf();
        let text = String::from_utf8(bytes).unwrap();
        let broken = text.replacen("0000000009 00000 n", "0000000010 00000 n", 1);
        assert!(matches!(
            Document::load(broken.as_bytes()),
            Err(PadesError::Corrupt(_))
        ));
    }

    #[test]
    fn encryption_and_hybrids_are_refused() {
        let text = String::from_utf8(minimal_pdf()).unwrap();
        let encrypted = text.replace("/Root 1 0 R", "/Root 1 0 R /Encrypt 9 0 R");
        assert!(matches!(
            Document::load(encrypted.as_bytes()),
            Err(PadesError::Encrypted)
        ));
        let hybrid = text.replace("/Root 1 0 R", "/Root 1 0 R /XRefStm 12");
        assert!(matches!(
            Document::load(hybrid.as_bytes()),
            Err(PadesError::Unsupported(_))
        ));
    }

    #[test]
    fn a_prev_loop_is_corruption() {
        let text = String::from_utf8(minimal_pdf()).unwrap();
        let start = text.find("xref\n0 4").unwrap();
        let looping = text.replace("/Root 1 0 R", &format!("/Root 1 0 R /Prev {start}"));
        assert!(matches!(
            Document::load(looping.as_bytes()),
            Err(PadesError::Corrupt(_))
        ));
    }
}
