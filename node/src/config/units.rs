//! Sizes and durations as operators write them: `"256MiB"`, `"4 MiB"`, `"1GB"` or a whole
//! number of bytes; `"30s"`, `"10m"`, `"7d"`. Each type reads its TOML value itself, so a
//! value that is not one is reported while the file is read, with its key and line, in words
//! that say what to write instead.
//!
//! A size type of our own rather than a crate (`bytesize`, `ubyte`): the parser is forty lines,
//! exact in integers (those crates go through `f64`), refuses the ambiguous `"256M"` instead of
//! guessing 1000 or 1024, and its messages are the ones this file's readers see.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer, Unexpected, Visitor};

/// A number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

/// Why a text is not a size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SizeError {
    /// Not a number with an optional unit.
    #[error("{0:?} is not a size like \"256MiB\", \"4 MiB\", \"1GB\" or a whole number of bytes")]
    Malformed(String),
    /// A unit letter without `B`/`iB`: 1000 or 1024 would be a guess.
    #[error("{text:?} is ambiguous: write \"{number}{letter}iB\" (1024-based) or \"{number}{letter}B\" (1000-based)")]
    Ambiguous {
        /// As written.
        text: String,
        /// The number part.
        number: String,
        /// The unit letter, upper case.
        letter: char,
    },
    /// More than fits in 64 bits.
    #[error("{0:?} is too large (the most is 16 EiB)")]
    TooLarge(String),
}

/// `(unit, multiplier)`, compared without regard to case.
const UNITS: &[(&str, u64)] = &[
    ("", 1),
    ("b", 1),
    ("kb", 1_000),
    ("kib", 1 << 10),
    ("mb", 1_000_000),
    ("mib", 1 << 20),
    ("gb", 1_000_000_000),
    ("gib", 1 << 30),
    ("tb", 1_000_000_000_000),
    ("tib", 1 << 40),
];

impl ByteSize {
    /// `n` bytes.
    pub const fn bytes(n: u64) -> Self {
        ByteSize(n)
    }

    /// `n` KiB.
    pub const fn kib(n: u64) -> Self {
        ByteSize(n << 10)
    }

    /// `n` MiB.
    pub const fn mib(n: u64) -> Self {
        ByteSize(n << 20)
    }

    /// `n` GiB.
    pub const fn gib(n: u64) -> Self {
        ByteSize(n << 30)
    }

    /// The number of bytes.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl FromStr for ByteSize {
    type Err = SizeError;

    /// A whole or decimal number, optional spaces, an optional unit (`B`, `kB`/`KiB`,
    /// `MB`/`MiB`, `GB`/`GiB`, `TB`/`TiB`, any case). A fraction of a byte is dropped.
    fn from_str(text: &str) -> Result<Self, SizeError> {
        let malformed = || SizeError::Malformed(text.to_owned());
        let trimmed = text.trim();
        let split = trimmed.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_')).unwrap_or(trimmed.len());
        let (number, unit) = (&trimmed[..split], trimmed[split..].trim_start());
        let number = number.replace('_', "");
        let (whole, fraction) = number.split_once('.').unwrap_or((&number, ""));
        if whole.is_empty() || fraction.len() > 9 || (number.contains('.') && fraction.is_empty()) {
            return Err(malformed());
        }
        let multiplier = match UNITS.iter().find(|(u, _)| u.eq_ignore_ascii_case(unit)) {
            Some((_, m)) => *m,
            None => {
                let letter = unit.chars().next().map(|c| c.to_ascii_uppercase());
                return match letter {
                    Some(letter @ ('K' | 'M' | 'G' | 'T')) if unit.len() == 1 => {
                        Err(SizeError::Ambiguous { text: text.to_owned(), number: number.clone(), letter })
                    }
                    _ => Err(malformed()),
                };
            }
        };
        let whole: u128 = whole.parse().map_err(|_| SizeError::TooLarge(text.to_owned()))?;
        let fraction_value: u128 = if fraction.is_empty() { 0 } else { fraction.parse().map_err(|_| malformed())? };
        let scale = 10u128.pow(fraction.len() as u32);
        let bytes = whole
            .checked_mul(u128::from(multiplier))
            .map(|b| b + fraction_value * u128::from(multiplier) / scale)
            .and_then(|b| u64::try_from(b).ok())
            .ok_or_else(|| SizeError::TooLarge(text.to_owned()))?;
        Ok(ByteSize(bytes))
    }
}

impl fmt::Display for ByteSize {
    /// The largest binary unit that divides the size exactly: `4MiB`, `1536KiB`, `1000B`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] {
            if self.0 != 0 && self.0.trailing_zeros() >= shift {
                return write!(f, "{}{unit}", self.0 >> shift);
            }
        }
        write!(f, "{}B", self.0)
    }
}

struct SizeVisitor {
    rate: bool,
}

impl Visitor<'_> for SizeVisitor {
    type Value = ByteSize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.rate {
            f.write_str("a rate like \"256KiB/s\" or a whole number of bytes per second")
        } else {
            f.write_str("a size like \"256MiB\", \"4 MiB\", \"1GB\" or a whole number of bytes")
        }
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
        Ok(ByteSize(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
        u64::try_from(v).map(ByteSize).map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
        let text = if self.rate { v.trim().strip_suffix("/s").unwrap_or(v) } else { v };
        text.parse().map_err(|e: SizeError| match e {
            SizeError::Malformed(_) => E::invalid_value(Unexpected::Str(v), &self),
            other => E::custom(other),
        })
    }
}

impl<'de> de::Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SizeVisitor { rate: false })
    }
}

/// Bytes per second: a size, optionally followed by `/s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ByteRate(pub ByteSize);

impl<'de> de::Deserialize<'de> for ByteRate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SizeVisitor { rate: true }).map(ByteRate)
    }
}

impl fmt::Display for ByteRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/s", self.0)
    }
}

/// A duration written with its unit, read with `humantime`: `"500ms"`, `"30s"`, `"10m"`,
/// `"7d"`, `"1h 30m"`. A bare number is refused: seconds or milliseconds would be a guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// `n` seconds.
    pub const fn secs(n: u64) -> Self {
        HumanDuration(Duration::from_secs(n))
    }

    /// `n` minutes.
    pub const fn mins(n: u64) -> Self {
        HumanDuration(Duration::from_secs(n * 60))
    }

    /// `n` hours.
    pub const fn hours(n: u64) -> Self {
        HumanDuration(Duration::from_secs(n * 3600))
    }

    /// `n` days.
    pub const fn days(n: u64) -> Self {
        HumanDuration(Duration::from_secs(n * 86_400))
    }

    /// The duration.
    pub const fn get(self) -> Duration {
        self.0
    }
}

impl FromStr for HumanDuration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        humantime::parse_duration(text.trim())
            .map(HumanDuration)
            .map_err(|_| format!("{text:?} is not a duration like \"30s\", \"10m\" or \"7d\""))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        humantime::format_duration(self.0).fmt(f)
    }
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = HumanDuration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration with its unit, like \"30s\", \"10m\" or \"7d\"")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<HumanDuration, E> {
        v.parse().map_err(E::custom)
    }
}

impl<'de> de::Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DurationVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(text: &str) -> Result<u64, SizeError> {
        text.parse::<ByteSize>().map(ByteSize::get)
    }

    #[test]
    fn sizes_are_read_with_binary_and_decimal_units_and_spaces() {
        for (text, bytes) in [
            ("256MiB", 256 << 20),
            ("4 MiB", 4 << 20),
            ("1GB", 1_000_000_000),
            ("1 gib", 1 << 30),
            ("512KiB", 512 << 10),
            ("64kB", 64_000),
            ("1.5KiB", 1536),
            ("1_048_576", 1 << 20),
            ("0", 0),
            ("100 B", 100),
            ("15TiB", 15 << 40),
        ] {
            assert_eq!(size(text), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn sizes_at_the_edge_of_64_bits_and_bad_sizes_are_refused_with_what_to_write() {
        assert_eq!(size("18446744073709551615"), Ok(u64::MAX));
        assert!(matches!(size("18446744073709551616"), Err(SizeError::TooLarge(_))));
        assert_eq!(size("16777215TiB"), Ok(16_777_215 << 40));
        assert!(matches!(size("16777216TiB"), Err(SizeError::TooLarge(_))));
        assert_eq!(
            size("256M").unwrap_err().to_string(),
            "\"256M\" is ambiguous: write \"256MiB\" (1024-based) or \"256MB\" (1000-based)"
        );
        for bad in ["", "MiB", "thirty", "4 MiBs", "1.", ".5", "-1", "1e6"] {
            assert!(matches!(size(bad), Err(SizeError::Malformed(_))), "{bad:?}: {:?}", size(bad));
        }
    }

    #[test]
    fn sizes_print_in_the_largest_exact_binary_unit() {
        assert_eq!(ByteSize::mib(4).to_string(), "4MiB");
        assert_eq!(ByteSize::kib(1536).to_string(), "1536KiB");
        assert_eq!(ByteSize(1536).to_string(), "1536B");
        assert_eq!(ByteSize(0).to_string(), "0B");
        assert_eq!(ByteRate(ByteSize::kib(256)).to_string(), "256KiB/s");
    }

    #[test]
    fn durations_need_their_unit() {
        assert_eq!("1h 30m".parse::<HumanDuration>(), Ok(HumanDuration::mins(90)));
        assert_eq!(
            "soon".parse::<HumanDuration>().unwrap_err(),
            "\"soon\" is not a duration like \"30s\", \"10m\" or \"7d\""
        );
        assert!("60".parse::<HumanDuration>().is_err(), "a bare number is a guess");
        assert_eq!(HumanDuration::days(7).to_string(), "7days");
    }
}
