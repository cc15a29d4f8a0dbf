//! UTC timestamps in the one format TUF metadata uses: `YYYY-MM-DDTHH:MM:SSZ`.
//!
//! Reading also accepts RFC 3339 fractional seconds (`…:45.0000001Z`, as go-tuf writes and
//! tough reads), truncated to the whole second: an `expires` then ends at most a second early,
//! never late. At most 9 fraction digits (nanoseconds), so junk cannot hide there. Writing
//! always uses whole seconds.
//!
//! A tiny civil-calendar conversion instead of a date crate: the gateway needs nothing more,
//! and every dependency is code on the vehicle.

use crate::error::{Error, Result};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Seconds since the Unix epoch, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DateTime(pub i64);

const MIN_YEAR: i64 = 1970;
const MAX_YEAR: i64 = 9999;
/// Nanosecond precision; longer fractions are refused rather than read without bound.
const MAX_FRACTION_DIGITS: usize = 9;

impl DateTime {
    pub fn now() -> Self {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        DateTime(secs)
    }

    pub fn plus_seconds(self, secs: i64) -> Self {
        DateTime(self.0.saturating_add(secs))
    }

    pub fn parse(s: &str) -> Result<Self> {
        let bad = || {
            Error::malformed(
                "timestamp",
                format!("{s:?} is not YYYY-MM-DDTHH:MM:SS[.fraction]Z"),
            )
        };
        let b = s.as_bytes();
        if b.len() < 20
            || b[4] != b'-'
            || b[7] != b'-'
            || b[10] != b'T'
            || b[13] != b':'
            || b[16] != b':'
            || b[b.len() - 1] != b'Z'
        {
            return Err(bad());
        }
        // Between the seconds and the `Z`: nothing, or `.` and 1..=9 digits (dropped).
        let fraction = &b[19..b.len() - 1];
        if let Some((&dot, digits)) = fraction.split_first() {
            if dot != b'.'
                || !(1..=MAX_FRACTION_DIGITS).contains(&digits.len())
                || !digits.iter().all(u8::is_ascii_digit)
            {
                return Err(bad());
            }
        }
        let num = |r: std::ops::Range<usize>| -> Result<i64> {
            let part = &b[r];
            if !part.iter().all(u8::is_ascii_digit) {
                return Err(bad());
            }
            Ok(part.iter().fold(0i64, |a, d| a * 10 + i64::from(d - b'0')))
        };
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(MIN_YEAR..=MAX_YEAR).contains(&y)
            || !(1..=12).contains(&mo)
            || d < 1
            || d > days_in_month(y, mo)
            || h > 23
            || mi > 59
            || se > 59
        {
            return Err(bad());
        }
        Ok(DateTime(
            days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se,
        ))
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's algorithms, valid for the whole proleptic Gregorian calendar.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.0.div_euclid(86_400);
        let secs = self.0.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        )
    }
}

impl Serialize for DateTime {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DateTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Parse a human duration such as `30d`, `12h`, `90m`, `45s` or `2w` into seconds.
pub fn parse_duration(s: &str) -> Result<i64> {
    let bad = || {
        Error::malformed(
            "duration",
            format!("{s:?}: use a number and one of s, m, h, d, w (e.g. 7d)"),
        )
    };
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().map_err(|_| bad())?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).filter(|v| *v > 0).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_known_dates() {
        for (s, secs) in [
            ("1970-01-01T00:00:00Z", 0),
            ("2000-02-29T12:34:56Z", 951_827_696),
            ("2038-01-19T03:14:08Z", 2_147_483_648),
            ("9999-12-31T23:59:59Z", 253_402_300_799),
        ] {
            let t = DateTime::parse(s).unwrap();
            assert_eq!(t.0, secs, "{s}");
            assert_eq!(t.to_string(), s);
        }
    }

    #[test]
    fn rejects_malformed_and_impossible_dates() {
        for s in [
            "2021-02-29T00:00:00Z",
            "2021-13-01T00:00:00Z",
            "2021-01-01T24:00:00Z",
            "2021-01-01 00:00:00Z",
            "2021-01-01T00:00:00+01:00",
            "+021-01-01T00:00:00Z",
            "",
            "２021-01-01T00:00:00Z",
        ] {
            assert!(DateTime::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn fractional_seconds_are_read_truncated_and_never_written() {
        let whole = DateTime::parse("2030-08-15T14:30:45Z").unwrap();
        for s in [
            "2030-08-15T14:30:45.0000001Z",
            "2030-08-15T14:30:45.9Z",
            "2030-08-15T14:30:45.000Z",
            "2030-08-15T14:30:45.999999999Z",
        ] {
            let t = DateTime::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(t, whole, "{s}");
            assert_eq!(t.to_string(), "2030-08-15T14:30:45Z");
        }
        // Through serde too, as `expires` is read.
        let t: DateTime = serde_json::from_str("\"2030-08-15T14:30:45.0000001Z\"").unwrap();
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"2030-08-15T14:30:45Z\""
        );
        for s in [
            "2030-08-15T14:30:45.Z",
            "2030-08-15T14:30:45.1234567890Z",
            "2030-08-15T14:30:45,5Z",
            "2030-08-15T14:30:45.5.5Z",
            "2030-08-15T14:30:45.5aZ",
            "2030-08-15T14:30:45.-5Z",
            "2030-08-15T14:30:45.+5Z",
            "2030-08-15T14:30:45. 5Z",
            "2030-08-15T14:30:45.5",
            "2030-08-15T14:30:45.5z",
            "2030-08-15T14:30:45.5+00:00",
            "2030-08-15T14:30:45.５Z",
            "2030-08-15T14:30:60.5Z",
        ] {
            assert!(DateTime::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("7d").unwrap(), 604_800);
        assert_eq!(parse_duration("2w").unwrap(), 1_209_600);
        assert_eq!(parse_duration("90m").unwrap(), 5400);
        assert!(parse_duration("0d").is_err());
        assert!(parse_duration("d").is_err());
        assert!(parse_duration("5y").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }
}
