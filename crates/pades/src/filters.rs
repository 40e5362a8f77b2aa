//! Stream decoding for the two kinds of stream this crate must read: cross-reference streams
//! and object streams (ISO 32000-1 §7.4.4 FlateDecode with the PNG predictors of §7.4.4.4).
//! Every other filter is refused. Output is bounded by a budget shared by the whole document,
//! so a compression bomb ends in [`PadesError::TooLarge`] instead of exhausting memory.

use miniz_oxide::inflate::{decompress_to_vec_zlib_with_limit, DecompressError, TINFLStatus};

use crate::syntax::{Dictionary, Object};
use crate::PadesError;

/// How many decoded bytes one document may produce in total.
pub(crate) const DECODE_BUDGET: usize = 128 * 1024 * 1024;

/// Decodes `raw` according to the stream dictionary's `/Filter` and `/DecodeParms`, charging
/// the output against `budget`.
pub(crate) fn decode(
    dictionary: &Dictionary,
    raw: &[u8],
    budget: &mut usize,
) -> Result<Vec<u8>, PadesError> {
    let filter = match dictionary.get(b"Filter") {
        None => None,
        Some(Object::Name(name)) => Some(name.as_slice()),
        Some(Object::Array(items)) if items.is_empty() => None,
        Some(Object::Array(items)) if items.len() == 1 => items.first().and_then(Object::as_name),
        Some(_) => {
            return Err(PadesError::Unsupported(
                "a stream with a chain of filters".into(),
            ))
        }
    };
    let params = match dictionary.get(b"DecodeParms") {
        Some(Object::Dictionary(params)) => Some(params),
        Some(Object::Array(items)) => match items.first() {
            Some(Object::Dictionary(params)) => Some(params),
            _ => None,
        },
        _ => None,
    };
    let decoded = match filter {
        None => {
            charge(budget, raw.len())?;
            raw.to_vec()
        }
        Some(b"FlateDecode") => {
            let decoded = decompress_to_vec_zlib_with_limit(raw, *budget).map_err(
                |error: DecompressError| {
                    if error.status == TINFLStatus::HasMoreOutput {
                        PadesError::TooLarge
                    } else {
                        PadesError::Corrupt(format!(
                            "bad Flate data in a stream: {:?}",
                            error.status
                        ))
                    }
                },
            )?;
            charge(budget, decoded.len())?;
            decoded
        }
        Some(other) => {
            return Err(PadesError::Unsupported(format!(
                "a cross-reference or object stream with filter /{}",
                String::from_utf8_lossy(other)
            )))
        }
    };
    match params {
        Some(params) => unpredict(params, decoded),
        None => Ok(decoded),
    }
}

fn charge(budget: &mut usize, amount: usize) -> Result<(), PadesError> {
    *budget = budget.checked_sub(amount).ok_or(PadesError::TooLarge)?;
    Ok(())
}

fn small_parameter(
    params: &Dictionary,
    key: &[u8],
    default: i64,
    max: i64,
) -> Result<usize, PadesError> {
    let value = match params.get(key) {
        None => default,
        Some(object) => object
            .as_integer()
            .ok_or_else(|| PadesError::Corrupt("non-integer decode parameter".into()))?,
    };
    if !(1..=max).contains(&value) {
        return Err(PadesError::Corrupt("decode parameter out of range".into()));
    }
    usize::try_from(value).map_err(|_| PadesError::Corrupt("decode parameter out of range".into()))
}

/// Undoes a `/Predictor` (§7.4.4.4): 1 is none, 10–15 are the PNG filters, chosen per row.
fn unpredict(params: &Dictionary, data: Vec<u8>) -> Result<Vec<u8>, PadesError> {
    let predictor = match params.get(b"Predictor") {
        None => 1,
        Some(object) => object
            .as_integer()
            .ok_or_else(|| PadesError::Corrupt("non-integer /Predictor".into()))?,
    };
    if predictor == 1 {
        return Ok(data);
    }
    if !(10..=15).contains(&predictor) {
        return Err(PadesError::Unsupported(format!(
            "stream predictor {predictor}"
        )));
    }
    let colors = small_parameter(params, b"Colors", 1, 32)?;
    let bits = small_parameter(params, b"BitsPerComponent", 8, 16)?;
    let columns = small_parameter(params, b"Columns", 1, 1 << 20)?;
    let bytes_per_pixel = (colors * bits).div_ceil(8).max(1);
    let row_length = (columns * colors * bits).div_ceil(8);
    let stride = row_length + 1;
    if data.len() % stride != 0 {
        return Err(PadesError::Corrupt(
            "predicted stream is not a whole number of rows".into(),
        ));
    }
    let mut out = Vec::with_capacity(data.len() / stride * row_length);
    let mut previous = vec![0u8; row_length];
    for row in data.chunks_exact(stride) {
        let (&kind, encoded) = row
            .split_first()
            .ok_or_else(|| PadesError::Internal("empty row".into()))?;
        let mut current = vec![0u8; row_length];
        for i in 0..row_length {
            let raw = encoded.get(i).copied().unwrap_or(0);
            let left = if i >= bytes_per_pixel {
                current.get(i - bytes_per_pixel).copied().unwrap_or(0)
            } else {
                0
            };
            let up = previous.get(i).copied().unwrap_or(0);
            let upper_left = if i >= bytes_per_pixel {
                previous.get(i - bytes_per_pixel).copied().unwrap_or(0)
            } else {
                0
            };
            let value = match kind {
                0 => raw,
                1 => raw.wrapping_add(left),
                2 => raw.wrapping_add(up),
                3 => raw.wrapping_add(((u16::from(left) + u16::from(up)) / 2) as u8),
                4 => raw.wrapping_add(paeth(left, up, upper_left)),
                _ => {
                    return Err(PadesError::Corrupt(format!(
                        "unknown PNG row filter {kind}"
                    )))
                }
            };
            if let Some(slot) = current.get_mut(i) {
                *slot = value;
            }
        }
        out.extend_from_slice(&current);
        previous = current;
    }
    Ok(out)
}

fn paeth(left: u8, up: u8, upper_left: u8) -> u8 {
    let estimate = i16::from(left) + i16::from(up) - i16::from(upper_left);
    let to_left = (estimate - i16::from(left)).abs();
    let to_up = (estimate - i16::from(up)).abs();
    let to_upper_left = (estimate - i16::from(upper_left)).abs();
    if to_left <= to_up && to_left <= to_upper_left {
        left
    } else if to_up <= to_upper_left {
        up
    } else {
        upper_left
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

    fn params(predictor: i64, columns: i64) -> Dictionary {
        let mut params = Dictionary::new();
        params.set(b"Predictor", Object::Integer(predictor));
        params.set(b"Columns", Object::Integer(columns));
        params
    }

    #[test]
    fn png_up_predictor_is_undone() {
        // Two rows of three bytes, the second encoded with "Up".
        let data = vec![0, 1, 2, 3, 2, 1, 1, 1];
        assert_eq!(
            unpredict(&params(12, 3), data).unwrap(),
            vec![1, 2, 3, 2, 3, 4]
        );
    }

    #[test]
    fn bad_rows_are_refused() {
        assert!(matches!(
            unpredict(&params(12, 3), vec![0, 1, 2]),
            Err(PadesError::Corrupt(_))
        ));
        assert!(matches!(
            unpredict(&params(12, 2), vec![9, 1, 2]),
            Err(PadesError::Corrupt(_))
        ));
        assert!(matches!(
            unpredict(&params(2, 2), vec![1, 2]),
            Err(PadesError::Unsupported(_))
        ));
    }

    #[test]
    fn flate_output_is_bounded_by_the_budget() {
        let zeros = vec![0u8; 1 << 20];
        let compressed = miniz_oxide::deflate::compress_to_vec_zlib(&zeros, 9);
        let mut dictionary = Dictionary::new();
        dictionary.set(b"Filter", Object::Name(b"FlateDecode".to_vec()));
        let mut budget = 1000;
        assert!(matches!(
            decode(&dictionary, &compressed, &mut budget),
            Err(PadesError::TooLarge)
        ));
        let mut budget = 2 << 20;
        assert_eq!(
            decode(&dictionary, &compressed, &mut budget).unwrap().len(),
            1 << 20
        );
        assert_eq!(budget, 1 << 20);
    }
}
