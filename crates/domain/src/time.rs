//! Points in time as whole seconds since the Unix epoch, the unit the store and the
//! certificates use.

use serde::{Deserialize, Serialize};

/// Seconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct UnixTime(pub i64);

/// Seconds in one day.
pub const DAY: i64 = 86_400;

impl UnixTime {
    /// The time `seconds` later (earlier if negative), saturating.
    pub fn plus_seconds(self, seconds: i64) -> Self {
        Self(self.0.saturating_add(seconds))
    }

    /// The time `days` whole days later.
    pub fn plus_days(self, days: i64) -> Self {
        self.plus_seconds(days.saturating_mul(DAY))
    }

    /// The same instant, `years` calendar years later (29 February becomes 28 February in a
    /// year that has none).
    pub fn plus_calendar_years(self, years: i64) -> Self {
        let days = self.0.div_euclid(DAY);
        let second_of_day = self.0.rem_euclid(DAY);
        let (y, m, d) = civil_from_days(days);
        let target_year = y + years;
        let day = if m == 2 && d == 29 && !is_leap(target_year) {
            28
        } else {
            d
        };
        Self(days_from_civil(target_year, m, day) * DAY + second_of_day)
    }

    /// The calendar date in UTC as (year, month, day).
    pub fn date(self) -> (i64, u32, u32) {
        civil_from_days(self.0.div_euclid(DAY))
    }

    /// RFC 3339 text in UTC, e.g. `2026-11-25T03:34:33Z`.
    pub fn rfc3339(self) -> String {
        let (y, m, d) = self.date();
        let s = self.0.rem_euclid(DAY);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            s / 3600,
            (s / 60) % 60,
            s % 60
        )
    }
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Days since the epoch to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A proleptic Gregorian date to days since the epoch.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_years_keep_the_date() {
        // 2026-11-25T03:34:33Z
        let t = UnixTime(1_795_577_673);
        assert_eq!(t.rfc3339(), "2026-11-25T03:34:33Z");
        assert_eq!(t.plus_calendar_years(5).rfc3339(), "2031-11-25T03:34:33Z");
    }

    #[test]
    fn leap_day_becomes_28_february() {
        let t = UnixTime(days_from_civil(2028, 2, 29) * DAY);
        assert_eq!(t.plus_calendar_years(5).date(), (2033, 2, 28));
        assert_eq!(t.plus_calendar_years(4).date(), (2032, 2, 29));
    }
}
