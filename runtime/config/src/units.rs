//! Byte sizes and durations as policies write them: `"256 MiB"`, `"90s"`, `"5m"`.

use std::fmt;
use std::time::Duration;

/// A number of bytes, written with a unit: `B`, `KiB`, `MiB`, `GiB` (or `KB`, `MB`, `GB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub const fn kib(n: u64) -> Self {
        ByteSize(n * 1024)
    }

    pub const fn mib(n: u64) -> Self {
        ByteSize(n * 1024 * 1024)
    }

    pub const fn gib(n: u64) -> Self {
        ByteSize(n * 1024 * 1024 * 1024)
    }

    pub fn bytes(self) -> u64 {
        self.0
    }

    /// The size as `usize`, saturating on 32-bit hosts.
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
        for (unit, size) in UNITS {
            if self.0 >= size && self.0.is_multiple_of(size) {
                return write!(f, "{} {unit}", self.0 / size);
            }
        }
        if self.0 >= 1 << 20 {
            return write!(f, "{:.1} MiB", self.0 as f64 / (1u64 << 20) as f64);
        }
        write!(f, "{} B", self.0)
    }
}

fn split_number(text: &str) -> Option<(u64, &str)> {
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit() && c != '_')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let number: u64 = number.replace('_', "").parse().ok()?;
    Some((number, unit.trim()))
}

impl std::str::FromStr for ByteSize {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || {
            format!(
                "`{}` is not a size: write a whole number and a unit, like \"256 MiB\"",
                text.escape_debug()
            )
        };
        let (number, unit) = split_number(text).ok_or_else(invalid)?;
        let scale: u64 = match unit {
            "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "KB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            _ => return Err(invalid()),
        };
        number.checked_mul(scale).map(ByteSize).ok_or_else(invalid)
    }
}

impl<'de> serde::Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A duration, written with a unit: `us`, `ms`, `s`, `m` or `h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct WallTime(pub Duration);

impl fmt::Display for WallTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl serde::Serialize for WallTime {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl std::str::FromStr for WallTime {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || {
            format!(
                "`{}` is not a duration: write a whole number and a unit, like \"90s\" or \"5m\"",
                text.escape_debug()
            )
        };
        let (number, unit) = split_number(text).ok_or_else(invalid)?;
        let micros: u64 = match unit {
            "us" => 1,
            "ms" => 1_000,
            "s" => 1_000_000,
            "m" => 60_000_000,
            "h" => 3_600_000_000,
            _ => return Err(invalid()),
        };
        number
            .checked_mul(micros)
            .map(|us| WallTime(Duration::from_micros(us)))
            .ok_or_else(invalid)
    }
}

impl<'de> serde::Deserialize<'de> for WallTime {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_parse() {
        assert_eq!("256 MiB".parse::<ByteSize>().unwrap(), ByteSize::mib(256));
        assert_eq!("1GiB".parse::<ByteSize>().unwrap(), ByteSize::gib(1));
        assert!("12 parsecs".parse::<ByteSize>().is_err());
        assert!("99999999999999 GiB".parse::<ByteSize>().is_err());
        assert_eq!(
            "90s".parse::<WallTime>().unwrap().0,
            Duration::from_secs(90)
        );
        assert_eq!(
            "500us".parse::<WallTime>().unwrap().0,
            Duration::from_micros(500)
        );
        assert!("soon".parse::<WallTime>().is_err());
        assert_eq!(ByteSize::mib(64).to_string(), "64 MiB");
    }
}
