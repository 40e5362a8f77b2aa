//! The Serbian personal number (JMBG, DESIGN §3): 13 digits `DDMMYYYRRBBBK` with a real date
//! and a mod-11 check digit.

use std::fmt;

use crate::time::days_from_civil;

/// A JMBG whose date and check digit are valid.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Jmbg(String);

/// Why a JMBG was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JmbgError {
    /// Not exactly 13 ASCII digits.
    #[error("a JMBG has exactly 13 digits")]
    Format,
    /// The first seven digits are not a real date.
    #[error("the JMBG does not start with a real date")]
    Date,
    /// The last digit does not match the checksum.
    #[error("the JMBG check digit is wrong")]
    Checksum,
}

impl Jmbg {
    /// Validates `text` as a JMBG.
    pub fn parse(text: &str) -> Result<Self, JmbgError> {
        let digits: Vec<u32> = text.chars().filter_map(|c| c.to_digit(10)).collect();
        if text.len() != 13 || digits.len() != 13 {
            return Err(JmbgError::Format);
        }
        let a = |i: usize| digits.get(i).copied().unwrap_or(0);
        let day = a(0) * 10 + a(1);
        let month = a(2) * 10 + a(3);
        let yyy = a(4) * 100 + a(5) * 10 + a(6);
        // Three-digit year: 9xx is 1900s, 0xx is 2000s.
        let year = if yyy >= 800 { 1000 + yyy } else { 2000 + yyy };
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(i64::from(year), month) {
            return Err(JmbgError::Date);
        }
        let weights = [7, 6, 5, 4, 3, 2];
        let sum: u32 = (0..6)
            .map(|i| weights.get(i).copied().unwrap_or(0) * (a(i) + a(i + 6)))
            .sum();
        let m = 11 - (sum % 11);
        let k = if m >= 10 { 0 } else { m };
        if k != a(12) {
            return Err(JmbgError::Checksum);
        }
        Ok(Self(text.to_owned()))
    }

    /// The 13 digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn days_in_month(year: i64, month: u32) -> u32 {
    let next = if month == 12 {
        days_from_civil(year + 1, 1, 1)
    } else {
        days_from_civil(year, month + 1, 1)
    };
    u32::try_from(next - days_from_civil(year, month, 1)).unwrap_or(0)
}

impl fmt::Debug for Jmbg {
    /// Personal numbers never reach logs in full.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Jmbg(…{})", self.0.get(9..).unwrap_or(""))
    }
}

impl fmt::Display for Jmbg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_numbers() {
        assert!(Jmbg::parse("0101990710008").is_ok());
        assert!(Jmbg::parse("2902000710009").is_ok());
    }

    #[test]
    fn refuses_bad_numbers() {
        assert_eq!(Jmbg::parse("0101990710007"), Err(JmbgError::Checksum));
        assert_eq!(Jmbg::parse("3002990710006"), Err(JmbgError::Date));
        assert_eq!(Jmbg::parse("2902001710002").err(), Some(JmbgError::Date));
        assert_eq!(Jmbg::parse("01019907100"), Err(JmbgError::Format));
        assert_eq!(Jmbg::parse("01019907100x6"), Err(JmbgError::Format));
        assert_eq!(Jmbg::parse("０101990710006"), Err(JmbgError::Format));
    }
}
