//! Durations as written in definitions and settings: `30s`, `15m`, `24h`, `7d`,
//! or a sum such as `1h30m`.
//!
//! Written by hand (not humantime) because the accepted grammar is this small
//! one and the canonical form must round-trip exactly.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration {
    secs: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error(
        "a duration is a number and a unit (`s`, `m`, `h`, `d`), like `30s`, `15m`, `24h` or `7d`"
    )]
    Syntax,
    #[error("a duration must be greater than zero")]
    Zero,
    #[error("a duration is at most 3650d (about 10 years)")]
    Overflow,
}

/// The longest duration anything accepts: 3650 days, about 10 years.
pub const MAX_SECS: u64 = 3650 * 86_400;

impl Duration {
    pub fn from_secs(secs: u64) -> Self {
        Self { secs }
    }

    pub fn as_secs(self) -> u64 {
        self.secs
    }

    pub fn std(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.secs)
    }

    /// Parses a positive duration.
    pub fn parse(s: &str) -> Result<Self, DurationError> {
        match Self::parse_allow_zero(s)? {
            d if d.secs == 0 => Err(DurationError::Zero),
            d => Ok(d),
        }
    }

    /// Parses a duration that may be zero (`0s`: at once); at most [`MAX_SECS`].
    pub fn parse_allow_zero(s: &str) -> Result<Self, DurationError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(DurationError::Syntax);
        }
        let mut total: u64 = 0;
        let mut rest = s;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(DurationError::Syntax);
            }
            let n: u64 = rest[..digits]
                .parse()
                .map_err(|_| DurationError::Overflow)?;
            rest = &rest[digits..];
            let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            let unit = match &rest[..unit_len] {
                "s" => 1,
                "m" => 60,
                "h" => 3600,
                "d" => 86_400,
                _ => return Err(DurationError::Syntax),
            };
            rest = &rest[unit_len..];
            total = n
                .checked_mul(unit)
                .and_then(|x| total.checked_add(x))
                .filter(|t| *t <= MAX_SECS)
                .ok_or(DurationError::Overflow)?;
        }
        Ok(Self { secs: total })
    }
}

/// The canonical form: the largest units first, e.g. `1d2h`, `90s` → `1m30s`.
impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.secs == 0 {
            return f.write_str("0s");
        }
        let mut rest = self.secs;
        for (unit, name) in [(86_400, "d"), (3600, "h"), (60, "m"), (1, "s")] {
            if rest >= unit {
                write!(f, "{}{name}", rest / unit)?;
                rest %= unit;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_sums() {
        assert_eq!(Duration::parse("30s").map(Duration::as_secs), Ok(30));
        assert_eq!(Duration::parse("15m").map(Duration::as_secs), Ok(900));
        assert_eq!(Duration::parse("24h").map(Duration::as_secs), Ok(86_400));
        assert_eq!(Duration::parse("7d").map(Duration::as_secs), Ok(604_800));
        assert_eq!(Duration::parse("1h30m").map(Duration::as_secs), Ok(5400));
    }

    #[test]
    fn rejects_bad_input() {
        for s in [
            "",
            "soon",
            "10",
            "m",
            "5 m",
            "-5s",
            "1.5h",
            "0s",
            "99999999999999999999s",
            "106751991167d",
            "99999999999999d",
            "3650d1s",
        ] {
            assert!(Duration::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn the_longest_duration_is_3650_days() {
        assert_eq!(
            Duration::parse("3650d").map(Duration::as_secs),
            Ok(MAX_SECS)
        );
        assert_eq!(Duration::parse("3650d1s"), Err(DurationError::Overflow));
        assert_eq!(
            Duration::parse("3649d23h59m60s").map(Duration::as_secs),
            Ok(MAX_SECS)
        );
    }

    #[test]
    fn display_round_trips() {
        for s in ["30s", "15m", "24h", "7d", "1d2h3m4s"] {
            let d = Duration::parse(s).expect("valid");
            assert_eq!(Duration::parse(&d.to_string()), Ok(d));
        }
        assert_eq!(Duration::from_secs(90).to_string(), "1m30s");
        assert_eq!(
            Duration::parse_allow_zero("0s").map(Duration::as_secs),
            Ok(0)
        );
    }
}
