//! Durations as MetalLB writes them (`9s`, `1m30s`, `500ms`): Go's `time.ParseDuration` syntax,
//! so a MetalLB `holdTime` is copied verbatim. Negative durations are refused: no BGP timer can
//! be negative.

use std::time::Duration;

use thiserror::Error;

/// Why a duration string was refused; the message quotes the text.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DurationError {
    #[error("empty duration (write it like \"9s\", \"1m30s\" or \"500ms\")")]
    Empty,
    #[error("{0:?} is negative")]
    Negative(String),
    #[error("{text:?} is not a duration: {why} (write it like \"9s\", \"1m30s\" or \"500ms\")")]
    Malformed { text: String, why: &'static str },
    #[error("{0:?} is too long")]
    Overflow(String),
}

/// Nanoseconds per unit, longest unit names first so `ms` is not read as `m`.
const UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("\u{b5}s", 1_000),
    ("\u{3bc}s", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Parses `text` as Go's `time.ParseDuration` does: a sequence of decimal numbers, each with
/// an optional fraction and a unit (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`); `0` alone is zero.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let malformed = |why| DurationError::Malformed { text: text.to_string(), why };
    let s = match s.strip_prefix('+') {
        Some(rest) => rest,
        None if s.starts_with('-') => {
            return Err(DurationError::Negative(text.to_string()));
        }
        None => s,
    };
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = s;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(f) => {
                let n = f.bytes().take_while(u8::is_ascii_digit).count();
                f.split_at(n)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(malformed("expected a number"));
        }
        let unit_len = after.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err(malformed("a number without a unit (ns, us, ms, s, m or h)"));
        }
        let per = UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, n)| *n)
            .ok_or_else(|| malformed("unknown unit (expected ns, us, ms, s, m or h)"))?;
        let overflow = || DurationError::Overflow(text.to_string());
        let int: u128 = if int_part.is_empty() { 0 } else { int_part.parse().map_err(|_| overflow())? };
        let mut nanos = int.checked_mul(per).ok_or_else(overflow)?;
        // Digits past nanosecond precision cannot change the result; Go drops them too.
        let mut scale = per;
        for d in frac_part.bytes() {
            scale /= 10;
            if scale == 0 {
                break;
            }
            nanos = nanos.checked_add(u128::from(d - b'0') * scale).ok_or_else(overflow)?;
        }
        total = total.checked_add(nanos).ok_or_else(overflow)?;
        rest = next;
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| DurationError::Overflow(text.to_string()))?;
    Ok(Duration::new(secs, (total % 1_000_000_000) as u32))
}

/// A duration in the shortest form [`parse_duration`] reads back exactly (`90s`, `1m30s`,
/// `300ms`), for converted objects.
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    if d.subsec_nanos() != 0 {
        let nanos = d.as_nanos();
        return if nanos.is_multiple_of(1_000_000) {
            format!("{}ms", nanos / 1_000_000)
        } else if nanos.is_multiple_of(1_000) {
            format!("{}us", nanos / 1_000)
        } else {
            format!("{nanos}ns")
        };
    }
    let s = d.as_secs();
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if sec > 0 {
        out.push_str(&format!("{sec}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn metallb_spellings() {
        assert_eq!(parse_duration("9s"), Ok(Duration::from_secs(9)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration(".5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("2\u{b5}s"), Ok(Duration::from_micros(2)));
    }

    #[test]
    fn refusals_say_why() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert_eq!(parse_duration("-3s"), Err(DurationError::Negative("-3s".into())));
        let e = parse_duration("90").unwrap_err().to_string();
        assert!(e.contains("\"90\"") && e.contains("without a unit"), "{e}");
        let e = parse_duration("3 sec").unwrap_err().to_string();
        assert!(e.contains("unknown unit"), "{e}");
        assert!(matches!(parse_duration("s"), Err(DurationError::Malformed { .. })));
        assert!(matches!(parse_duration("99999999999999999999999h"), Err(DurationError::Overflow(_))));
    }

    proptest! {
        #[test]
        fn format_reads_back(secs in 0u64..400_000, millis in 0u32..1000) {
            let d = Duration::from_secs(secs) + Duration::from_millis(u64::from(millis));
            prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }

        #[test]
        fn never_panics(s in "\\PC{0,24}") {
            let _ = parse_duration(&s);
        }
    }
}
