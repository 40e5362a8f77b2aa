//! PDF object syntax (ISO 32000-1 §7.2, §7.3): the object model, a bounded parser for untrusted
//! bytes and the serialiser for the objects this crate writes back.
//!
//! The parser never recurses deeper than [`MAX_DEPTH`], never reads past its slice and reports
//! every malformation as [`PadesError::Corrupt`]; it allocates at most a small constant factor
//! of the bytes it consumes.

use crate::PadesError;

/// The deepest nesting of arrays and dictionaries accepted (real documents stay below 10).
pub(crate) const MAX_DEPTH: usize = 32;

/// The longest number token accepted (leading zeros included).
const MAX_NUMBER_LEN: usize = 64;

/// An object number and generation (ISO 32000-1 §7.3.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ObjectId {
    /// The object number.
    pub(crate) number: u32,
    /// The generation number.
    pub(crate) generation: u16,
}

impl ObjectId {
    /// A generation-0 object, the only kind this crate creates.
    pub(crate) fn new(number: u32) -> Self {
        Self {
            number,
            generation: 0,
        }
    }
}

/// A direct PDF object.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Object {
    /// `null`.
    Null,
    /// `true` / `false`.
    Boolean(bool),
    /// An integer.
    Integer(i64),
    /// A real number, kept as its text so that it is written back unchanged.
    Real(Vec<u8>),
    /// A name, decoded (`#xx` escapes resolved), without the slash.
    Name(Vec<u8>),
    /// A string, decoded (literal escapes or hex resolved).
    String(Vec<u8>),
    /// An array.
    Array(Vec<Object>),
    /// A dictionary.
    Dictionary(Dictionary),
    /// `N G R`.
    Reference(ObjectId),
}

impl Object {
    /// The name bytes, if this is a name.
    pub(crate) fn as_name(&self) -> Option<&[u8]> {
        match self {
            Self::Name(name) => Some(name),
            _ => None,
        }
    }

    /// The integer, if this is one.
    pub(crate) fn as_integer(&self) -> Option<i64> {
        match self {
            Self::Integer(value) => Some(*value),
            _ => None,
        }
    }

    /// The reference, if this is one.
    pub(crate) fn as_reference(&self) -> Option<ObjectId> {
        match self {
            Self::Reference(id) => Some(*id),
            _ => None,
        }
    }
}

/// A dictionary that keeps its keys in the order read (and written).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Dictionary {
    entries: Vec<(Vec<u8>, Object)>,
}

impl Dictionary {
    /// An empty dictionary.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The value of `key`.
    pub(crate) fn get(&self, key: &[u8]) -> Option<&Object> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// A dictionary of parsed entries; of a key given twice the last value counts (in linear
    /// time, whatever a hostile file repeats).
    fn from_entries(entries: Vec<(Vec<u8>, Object)>) -> Self {
        let mut last: std::collections::HashMap<&[u8], usize> =
            std::collections::HashMap::with_capacity(entries.len());
        for (index, (key, _)) in entries.iter().enumerate() {
            last.insert(key.as_slice(), index);
        }
        if last.len() == entries.len() {
            return Self { entries };
        }
        let keep: std::collections::HashSet<usize> = last.into_values().collect();
        let entries = entries
            .into_iter()
            .enumerate()
            .filter(|(index, _)| keep.contains(index))
            .map(|(_, entry)| entry)
            .collect();
        Self { entries }
    }

    /// Sets `key`, replacing an existing value in place or appending.
    pub(crate) fn set(&mut self, key: &[u8], value: Object) {
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((key.to_vec(), value)),
        }
    }

    /// Removes `key`.
    pub(crate) fn remove(&mut self, key: &[u8]) {
        self.entries.retain(|(k, _)| k != key);
    }

    /// Whether `key` is present.
    pub(crate) fn contains(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// The entries, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &(Vec<u8>, Object)> {
        self.entries.iter()
    }
}

/// What follows an indirect object's value: `endobj`, or `stream` and its data.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Body {
    /// A plain object.
    Object(Object),
    /// A stream: its dictionary and the offset of its first data byte in the parsed slice.
    Stream {
        /// The stream dictionary.
        dictionary: Dictionary,
        /// Offset of the first data byte.
        data_start: usize,
    },
}

fn corrupt(what: &str, at: usize) -> PadesError {
    PadesError::Corrupt(format!("{what} at byte {at}"))
}

/// PDF white-space characters (ISO 32000-1 Table 1).
pub(crate) fn is_whitespace(byte: u8) -> bool {
    matches!(byte, 0 | 9 | 10 | 12 | 13 | 32)
}

/// PDF delimiter characters (ISO 32000-1 Table 2).
fn is_delimiter(byte: u8) -> bool {
    matches!(
        byte,
        b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%'
    )
}

fn is_regular(byte: u8) -> bool {
    !is_whitespace(byte) && !is_delimiter(byte)
}

/// A cursor over untrusted bytes.
pub(crate) struct Parser<'a> {
    data: &'a [u8],
    position: usize,
}

impl<'a> Parser<'a> {
    /// A parser positioned at `position` (clamped to the end).
    pub(crate) fn new(data: &'a [u8], position: usize) -> Self {
        Self {
            data,
            position: position.min(data.len()),
        }
    }

    /// The current offset.
    pub(crate) fn position(&self) -> usize {
        self.position
    }

    fn peek(&self) -> Option<u8> {
        self.data.get(self.position).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<u8> {
        self.data.get(self.position.checked_add(ahead)?).copied()
    }

    fn rest(&self) -> &'a [u8] {
        self.data.get(self.position..).unwrap_or_default()
    }

    /// Skips white space and comments.
    pub(crate) fn skip_whitespace(&mut self) {
        while let Some(byte) = self.peek() {
            if is_whitespace(byte) {
                self.position += 1;
            } else if byte == b'%' {
                while let Some(byte) = self.peek() {
                    if byte == b'\r' || byte == b'\n' {
                        break;
                    }
                    self.position += 1;
                }
            } else {
                break;
            }
        }
    }

    /// Consumes `keyword` if it comes next (after white space) and ends at a delimiter,
    /// white space or the end of the data.
    pub(crate) fn eat_keyword(&mut self, keyword: &[u8]) -> bool {
        let saved = self.position;
        self.skip_whitespace();
        if self.rest().starts_with(keyword) {
            let after = self.position + keyword.len();
            if self.data.get(after).is_none_or(|&b| !is_regular(b)) {
                self.position = after;
                return true;
            }
        }
        self.position = saved;
        false
    }

    /// Requires `keyword` next.
    pub(crate) fn expect_keyword(&mut self, keyword: &str) -> Result<(), PadesError> {
        if self.eat_keyword(keyword.as_bytes()) {
            Ok(())
        } else {
            Err(corrupt(&format!("expected `{keyword}`"), self.position))
        }
    }

    /// Reads a non-negative integer token (digits only).
    pub(crate) fn unsigned(&mut self) -> Result<u64, PadesError> {
        self.skip_whitespace();
        let start = self.position;
        let mut value: u64 = 0;
        while let Some(byte) = self.peek().filter(u8::is_ascii_digit) {
            if self.position - start >= MAX_NUMBER_LEN {
                return Err(corrupt("number too long", start));
            }
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(byte - b'0')))
                .ok_or_else(|| corrupt("number too large", start))?;
            self.position += 1;
        }
        if self.position == start || self.peek().is_some_and(is_regular) {
            return Err(corrupt("expected an unsigned integer", start));
        }
        Ok(value)
    }

    /// Reads `N G obj` and returns the id.
    pub(crate) fn object_header(&mut self) -> Result<ObjectId, PadesError> {
        let at = self.position;
        let number =
            u32::try_from(self.unsigned()?).map_err(|_| corrupt("object number too large", at))?;
        let generation =
            u16::try_from(self.unsigned()?).map_err(|_| corrupt("generation too large", at))?;
        self.expect_keyword("obj")?;
        Ok(ObjectId { number, generation })
    }

    /// Reads an indirect object's value and what follows it (`endobj` or a stream start).
    pub(crate) fn indirect_body(&mut self) -> Result<Body, PadesError> {
        let object = self.object()?;
        if self.eat_keyword(b"stream") {
            let Object::Dictionary(dictionary) = object else {
                return Err(corrupt("stream without a dictionary", self.position));
            };
            // ISO 32000-1 §7.3.8.1: `stream` is followed by CRLF or LF (a lone CR is tolerated).
            match (self.peek(), self.peek_at(1)) {
                (Some(b'\r'), Some(b'\n')) => self.position += 2,
                (Some(b'\n'), _) | (Some(b'\r'), _) => self.position += 1,
                _ => {
                    return Err(corrupt(
                        "`stream` not followed by an end of line",
                        self.position,
                    ))
                }
            }
            return Ok(Body::Stream {
                dictionary,
                data_start: self.position,
            });
        }
        self.expect_keyword("endobj")?;
        Ok(Body::Object(object))
    }

    /// Reads one direct object.
    pub(crate) fn object(&mut self) -> Result<Object, PadesError> {
        self.object_at_depth(0)
    }

    fn object_at_depth(&mut self, depth: usize) -> Result<Object, PadesError> {
        if depth > MAX_DEPTH {
            return Err(corrupt("objects nested too deeply", self.position));
        }
        self.skip_whitespace();
        let start = self.position;
        let Some(byte) = self.peek() else {
            return Err(corrupt("unexpected end of data", start));
        };
        match byte {
            b'/' => {
                self.position += 1;
                Ok(Object::Name(self.name_body()?))
            }
            b'<' if self.peek_at(1) == Some(b'<') => {
                self.position += 2;
                let mut entries = Vec::new();
                loop {
                    self.skip_whitespace();
                    match self.peek() {
                        Some(b'>') if self.peek_at(1) == Some(b'>') => {
                            self.position += 2;
                            return Ok(Object::Dictionary(Dictionary::from_entries(entries)));
                        }
                        Some(b'/') => {
                            self.position += 1;
                            let key = self.name_body()?;
                            let value = self.object_at_depth(depth + 1)?;
                            entries.push((key, value));
                        }
                        _ => {
                            return Err(corrupt(
                                "expected a name key or `>>` in a dictionary",
                                self.position,
                            ))
                        }
                    }
                }
            }
            b'<' => {
                self.position += 1;
                Ok(Object::String(self.hex_string_body()?))
            }
            b'(' => {
                self.position += 1;
                Ok(Object::String(self.literal_string_body()?))
            }
            b'[' => {
                self.position += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_whitespace();
                    if self.peek() == Some(b']') {
                        self.position += 1;
                        return Ok(Object::Array(items));
                    }
                    items.push(self.object_at_depth(depth + 1)?);
                }
            }
            b'+' | b'-' | b'.' | b'0'..=b'9' => self.number_or_reference(),
            _ => {
                if self.eat_keyword(b"true") {
                    Ok(Object::Boolean(true))
                } else if self.eat_keyword(b"false") {
                    Ok(Object::Boolean(false))
                } else if self.eat_keyword(b"null") {
                    Ok(Object::Null)
                } else {
                    Err(corrupt("unexpected token", start))
                }
            }
        }
    }

    fn name_body(&mut self) -> Result<Vec<u8>, PadesError> {
        let mut name = Vec::new();
        while let Some(byte) = self.peek().filter(|&b| is_regular(b)) {
            if byte == b'#' {
                let high = self.peek_at(1).and_then(hex_value);
                let low = self.peek_at(2).and_then(hex_value);
                let (Some(high), Some(low)) = (high, low) else {
                    return Err(corrupt("bad `#` escape in a name", self.position));
                };
                name.push(high << 4 | low);
                self.position += 3;
            } else {
                name.push(byte);
                self.position += 1;
            }
        }
        Ok(name)
    }

    fn hex_string_body(&mut self) -> Result<Vec<u8>, PadesError> {
        let mut bytes = Vec::new();
        let mut pending: Option<u8> = None;
        loop {
            let Some(byte) = self.peek() else {
                return Err(corrupt("unterminated hex string", self.position));
            };
            self.position += 1;
            if byte == b'>' {
                break;
            }
            if is_whitespace(byte) {
                continue;
            }
            let Some(value) = hex_value(byte) else {
                return Err(corrupt("bad character in a hex string", self.position - 1));
            };
            match pending.take() {
                Some(high) => bytes.push(high << 4 | value),
                None => pending = Some(value),
            }
        }
        if let Some(high) = pending {
            bytes.push(high << 4);
        }
        Ok(bytes)
    }

    fn literal_string_body(&mut self) -> Result<Vec<u8>, PadesError> {
        let mut bytes = Vec::new();
        let mut open = 1usize;
        loop {
            let Some(byte) = self.peek() else {
                return Err(corrupt("unterminated string", self.position));
            };
            self.position += 1;
            match byte {
                b'(' => {
                    open += 1;
                    bytes.push(byte);
                }
                b')' => {
                    open -= 1;
                    if open == 0 {
                        return Ok(bytes);
                    }
                    bytes.push(byte);
                }
                b'\\' => {
                    let Some(escaped) = self.peek() else {
                        return Err(corrupt("unterminated string", self.position));
                    };
                    self.position += 1;
                    match escaped {
                        b'n' => bytes.push(b'\n'),
                        b'r' => bytes.push(b'\r'),
                        b't' => bytes.push(b'\t'),
                        b'b' => bytes.push(8),
                        b'f' => bytes.push(12),
                        b'0'..=b'7' => {
                            let mut value = u32::from(escaped - b'0');
                            for _ in 0..2 {
                                match self.peek() {
                                    Some(digit @ b'0'..=b'7') => {
                                        value = value * 8 + u32::from(digit - b'0');
                                        self.position += 1;
                                    }
                                    _ => break,
                                }
                            }
                            // Overflow of a three-digit octal escape is ignored (§7.3.4.2).
                            bytes.push((value & 0xff) as u8);
                        }
                        b'\r' => {
                            if self.peek() == Some(b'\n') {
                                self.position += 1;
                            }
                        }
                        b'\n' => {}
                        other => bytes.push(other),
                    }
                }
                b'\r' => {
                    // An end of line inside a string reads as LF (§7.3.4.2).
                    if self.peek() == Some(b'\n') {
                        self.position += 1;
                    }
                    bytes.push(b'\n');
                }
                other => bytes.push(other),
            }
        }
    }

    fn number_or_reference(&mut self) -> Result<Object, PadesError> {
        let start = self.position;
        let mut end = start;
        while self
            .data
            .get(end)
            .is_some_and(|&b| matches!(b, b'+' | b'-' | b'.' | b'0'..=b'9'))
        {
            end += 1;
            if end - start > MAX_NUMBER_LEN {
                return Err(corrupt("number too long", start));
            }
        }
        let text = self.data.get(start..end).unwrap_or_default();
        if self.data.get(end).is_some_and(|&b| is_regular(b)) {
            return Err(corrupt("malformed number", start));
        }
        let (sign, digits) = match text.split_first() {
            Some((b'-', rest)) | Some((b'+', rest)) => (text.first().copied(), rest),
            _ => (None, text),
        };
        let dots = digits.iter().filter(|&&b| b == b'.').count();
        let numeric = digits.iter().filter(|b| b.is_ascii_digit()).count();
        if numeric == 0 || dots > 1 || numeric + dots != digits.len() {
            return Err(corrupt("malformed number", start));
        }
        self.position = end;
        if dots == 1 {
            return Ok(Object::Real(text.to_vec()));
        }
        let mut value: i64 = 0;
        for &digit in digits {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(i64::from(digit - b'0')))
                .ok_or_else(|| corrupt("integer out of range", start))?;
        }
        if sign == Some(b'-') {
            value = -value;
        }
        // `N G R`: only an unsigned integer can start a reference.
        if sign.is_none() {
            let saved = self.position;
            if let Some(reference) = self.reference_tail(value) {
                return Ok(reference);
            }
            self.position = saved;
        }
        Ok(Object::Integer(value))
    }

    fn reference_tail(&mut self, number: i64) -> Option<Object> {
        self.skip_whitespace();
        if !self.peek()?.is_ascii_digit() {
            return None;
        }
        let generation = self.unsigned().ok()?;
        if !self.eat_keyword(b"R") {
            return None;
        }
        Some(Object::Reference(ObjectId {
            number: u32::try_from(number).ok()?,
            generation: u16::try_from(generation).ok()?,
        }))
    }
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Serialises `object` in the PDF syntax. Strings are written as hex strings, names with `#xx`
/// escapes for every byte that is not a regular printable character.
pub(crate) fn write_object(out: &mut Vec<u8>, object: &Object) {
    match object {
        Object::Null => out.extend_from_slice(b"null"),
        Object::Boolean(true) => out.extend_from_slice(b"true"),
        Object::Boolean(false) => out.extend_from_slice(b"false"),
        Object::Integer(value) => out.extend_from_slice(value.to_string().as_bytes()),
        Object::Real(text) => out.extend_from_slice(text),
        Object::Name(name) => write_name(out, name),
        Object::String(bytes) => {
            out.push(b'<');
            for byte in bytes {
                out.extend_from_slice(format!("{byte:02X}").as_bytes());
            }
            out.push(b'>');
        }
        Object::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b' ');
                }
                write_object(out, item);
            }
            out.push(b']');
        }
        Object::Dictionary(dictionary) => write_dictionary(out, dictionary),
        Object::Reference(id) => {
            out.extend_from_slice(format!("{} {} R", id.number, id.generation).as_bytes())
        }
    }
}

/// Serialises a dictionary (`<< /Key value ... >>`).
pub(crate) fn write_dictionary(out: &mut Vec<u8>, dictionary: &Dictionary) {
    out.extend_from_slice(b"<<");
    for (key, value) in dictionary.iter() {
        out.push(b' ');
        write_name(out, key);
        out.push(b' ');
        write_object(out, value);
    }
    out.extend_from_slice(b" >>");
}

fn write_name(out: &mut Vec<u8>, name: &[u8]) {
    out.push(b'/');
    for &byte in name {
        if (0x21..=0x7e).contains(&byte) && !is_delimiter(byte) && byte != b'#' {
            out.push(byte);
        } else {
            out.extend_from_slice(format!("#{byte:02X}").as_bytes());
        }
    }
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

    fn parse(text: &[u8]) -> Result<Object, PadesError> {
        Parser::new(text, 0).object()
    }

    #[test]
    fn reads_the_basic_objects() {
        let object = parse(b"<< /Type /Page /Kids [1 0 R 2 0 R] /N -3 /R 1.5 /S (a\\(b\\)\\101) /H <41 4> /E#20x null >>")
            .unwrap();
        let Object::Dictionary(dictionary) = object else {
            panic!("not a dictionary")
        };
        assert_eq!(
            dictionary.get(b"Type"),
            Some(&Object::Name(b"Page".to_vec()))
        );
        assert_eq!(
            dictionary.get(b"Kids"),
            Some(&Object::Array(vec![
                Object::Reference(ObjectId::new(1)),
                Object::Reference(ObjectId::new(2))
            ]))
        );
        assert_eq!(dictionary.get(b"N"), Some(&Object::Integer(-3)));
        assert_eq!(dictionary.get(b"R"), Some(&Object::Real(b"1.5".to_vec())));
        assert_eq!(
            dictionary.get(b"S"),
            Some(&Object::String(b"a(b)A".to_vec()))
        );
        assert_eq!(
            dictionary.get(b"H"),
            Some(&Object::String(vec![0x41, 0x40]))
        );
        assert_eq!(dictionary.get(b"E x"), Some(&Object::Null));
    }

    #[test]
    fn numbers_that_are_not_references_stay_numbers() {
        assert_eq!(
            parse(b"[1 2]").unwrap(),
            Object::Array(vec![Object::Integer(1), Object::Integer(2)])
        );
        assert_eq!(
            parse(b"[1 2 3 R]").unwrap(),
            Object::Array(vec![
                Object::Integer(1),
                Object::Reference(ObjectId {
                    number: 2,
                    generation: 3
                })
            ])
        );
    }

    #[test]
    fn refuses_malformed_input_without_panicking() {
        for bad in [
            &b"<< /A"[..],
            b"[1 2",
            b"(unterminated",
            b"<4G>",
            b"1.2.3",
            b"99999999999999999999",
            b"<< 1 2 >>",
            b"",
            b")",
            b"/A#4",
        ] {
            assert!(
                matches!(parse(bad), Err(PadesError::Corrupt(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let deep = [b"[".repeat(10_000), b"]".repeat(10_000)].concat();
        assert!(matches!(parse(&deep), Err(PadesError::Corrupt(_))));
        let long = [b"0".repeat(100), b"1".to_vec()].concat();
        assert!(matches!(parse(&long), Err(PadesError::Corrupt(_))));
    }

    #[test]
    fn a_repeated_key_keeps_its_last_value() {
        let object = parse(b"<< /A 1 /B 2 /A 3 >>").unwrap();
        let Object::Dictionary(dictionary) = object else {
            panic!("not a dictionary")
        };
        assert_eq!(dictionary.get(b"A"), Some(&Object::Integer(3)));
        assert_eq!(dictionary.iter().count(), 2);
    }

    #[test]
    fn writes_what_it_reads() {
        let text =
            b"<< /Type /Annot /Rect [0 0 0 0] /T <FEFF0041> /N#23 1.0 /Ref 12 0 R /B true >>";
        let object = parse(text).unwrap();
        let mut out = Vec::new();
        write_object(&mut out, &object);
        assert_eq!(
            out,
            b"<< /Type /Annot /Rect [0 0 0 0] /T <FEFF0041> /N#23 1.0 /Ref 12 0 R /B true >>"
        );
        assert_eq!(parse(&out).unwrap(), object);
    }
}
