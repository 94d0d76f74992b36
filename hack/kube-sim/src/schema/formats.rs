//! The `format` keyword of string fields, as kube-openapi checks it.

use std::cell::RefCell;
use std::collections::HashMap;

use regex::Regex;
use serde_json::Value;

use crate::schema::go_format::go_quote;
use crate::schema::shown;
use crate::schema::{FieldError, FieldErrorKind};

pub(super) fn check_format(format: &str, v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let ok = match v {
        Value::String(s) => string_format_ok(format, s),
        Value::Number(n) => match format {
            "int32" => match n.as_i64() {
                Some(i) => i32::try_from(i).is_ok(),
                None => {
                    !n.is_u64()
                        && n.as_f64().is_some_and(|f| f >= f64::from(i32::MIN) && f <= f64::from(i32::MAX))
                }
            },
            "int64" => n.as_i64().is_some() || (!n.is_u64() && n.as_f64().is_some_and(|f| f.abs() < 9.2e18)),
            _ => true,
        },
        _ => true,
    };
    if !ok {
        let shown_value = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let msg = format!("{} in body must be of type {format}: {}", shown(path), go_quote(&shown_value));
        errs.push(FieldError::new(path, FieldErrorKind::TypeInvalid, Some(v.clone()), msg));
    }
}

/// The string formats kube-openapi's strfmt registry validates; any other format is accepted, as
/// the apiserver does.
fn string_format_ok(format: &str, s: &str) -> bool {
    match format {
        "ipv4" => parse_ipv4(s).is_some(),
        "ipv6" => s.contains(':') && s.parse::<std::net::Ipv6Addr>().is_ok(),
        "cidr" => is_cidr(s),
        "date-time" | "datetime" => is_date_time(s),
        "date" => s.len() == 10 && s.parse::<jiff::civil::Date>().is_ok(),
        "uuid" => is_uuid(s, None),
        "uuid3" => is_uuid(s, Some('3')),
        "uuid4" => is_uuid(s, Some('4')),
        "uuid5" => is_uuid(s, Some('5')),
        "byte" => is_base64(s),
        "hostname" => is_hostname(s),
        "mac" => is_mac(s),
        "bsonobjectid" => s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit()),
        "hexcolor" => {
            let h = s.strip_prefix('#').unwrap_or(s);
            (h.len() == 3 || h.len() == 6) && h.bytes().all(|b| b.is_ascii_hexdigit())
        }
        "duration" => is_duration(s),
        "email" => is_email(s),
        "uri" => !s.is_empty() && !s.contains(char::is_whitespace),
        _ => true,
    }
}

/// Parses an IPv4 address the way Go's netutils.ParseIPSloppy does, which Kubernetes uses for
/// formats: leading zeros are allowed (and read as decimal).
fn parse_ipv4(s: &str) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    let mut parts = s.split('.');
    for o in &mut out {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *o = part.parse().ok()?;
    }
    parts.next().is_none().then_some(out)
}

fn is_cidr(s: &str) -> bool {
    let Some((addr, len)) = s.split_once('/') else { return false };
    if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let Ok(len) = len.parse::<u8>() else { return false };
    if parse_ipv4(addr).is_some() {
        len <= 32
    } else {
        addr.parse::<std::net::Ipv6Addr>().is_ok() && len <= 128
    }
}

fn is_date_time(s: &str) -> bool {
    // strfmt accepts RFC 3339 with a 'T' or a space, with or without fractional seconds.
    s.len() >= 20 && s.replacen(' ', "T", 1).parse::<jiff::Timestamp>().is_ok()
}

fn is_uuid(s: &str, version: Option<char>) -> bool {
    let b = s.as_bytes();
    if b.len() != 36 {
        return false;
    }
    let shape = b.iter().enumerate().all(|(i, &c)| match i {
        8 | 13 | 18 | 23 => c == b'-',
        _ => c.is_ascii_hexdigit(),
    });
    let version_ok = version.is_none_or(|v| b[14] as char == v);
    let variant_ok = version.is_none() || matches!(b[19].to_ascii_lowercase(), b'8' | b'9' | b'a' | b'b');
    shape && version_ok && variant_ok
}

fn is_base64(s: &str) -> bool {
    let s: Vec<u8> = s.bytes().filter(|b| !matches!(b, b'\r' | b'\n')).collect();
    if !s.len().is_multiple_of(4) {
        return false;
    }
    let pad = s.iter().rev().take_while(|&&b| b == b'=').count();
    pad <= 2 && s[..s.len() - pad].iter().all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

fn is_hostname(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 255
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn is_mac(s: &str) -> bool {
    let hex = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit());
    let groups = |sep: char, n: usize| {
        let parts: Vec<&str> = s.split(sep).collect();
        matches!(parts.len() * n / 2, 6 | 8 | 20) && parts.iter().all(|p| hex(p, n))
    };
    groups(':', 2) || groups('-', 2) || groups('.', 4)
}

fn is_duration(s: &str) -> bool {
    with_regex(r"^(?:[0-9]+(?:\.[0-9]+)?\s*(?:ns|us|µs|ms|s|m|h|d|w))+$", |re| re.is_match(s.trim()))
        .unwrap_or(false)
}

fn is_email(s: &str) -> bool {
    match s.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty() && !local.contains(char::is_whitespace) && is_hostname(domain)
        }
        None => false,
    }
}

thread_local! {
    /// Schemas are few and objects many: compile each pattern once per thread.
    static REGEXES: RefCell<HashMap<String, Option<Regex>>> = RefCell::new(HashMap::new());
}

/// Runs `f` on the compiled pattern; `None` when the pattern does not compile (the CRD would have
/// been rejected, so the keyword is ignored).
pub(super) fn with_regex<T>(pattern: &str, f: impl FnOnce(&Regex) -> T) -> Option<T> {
    REGEXES.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.len() > 1024 {
            cache.clear();
        }
        let re = cache.entry(pattern.to_owned()).or_insert_with(|| Regex::new(pattern).ok());
        re.as_ref().map(f)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::tests::check;
    use serde_json::json;

    #[test]
    fn formats() {
        let f = |format: &str, v: Value| check(json!({"type": "string", "format": format}), v).is_empty();
        assert!(f("ipv4", json!("10.0.0.1")));
        assert!(!f("ipv4", json!("10.0.0.256")));
        assert!(!f("ipv4", json!("::1")));
        assert!(f("ipv6", json!("2001:db8::1")));
        assert!(!f("ipv6", json!("10.0.0.1")));
        assert!(f("cidr", json!("198.51.100.128/25")));
        assert!(f("cidr", json!("2001:db8:100::/64")));
        assert!(!f("cidr", json!("10.0.0.0/33")));
        assert!(!f("cidr", json!("10.0.0.0")));
        assert!(f("date-time", json!("2026-11-02T10:00:00Z")));
        assert!(f("date-time", json!("2026-11-02T10:00:00.123+01:00")));
        assert!(!f("date-time", json!("yesterday")));
        assert!(f("date", json!("2026-11-02")));
        assert!(f("uuid", json!("123e4567-e89b-12d3-a456-426614174000")));
        assert!(!f("uuid", json!("123e4567e89b12d3a456426614174000")));
        assert!(f("uuid4", json!("9f1c7f5e-8f7a-4b3c-9d2e-1a2b3c4d5e6f")));
        assert!(!f("uuid4", json!("123e4567-e89b-12d3-a456-426614174000")));
        assert!(f("byte", json!("aGVsbG8=")));
        assert!(!f("byte", json!("hello!")));
        assert!(f("hostname", json!("node-1.example.com")));
        assert!(!f("hostname", json!("-bad")));
        assert!(f("mac", json!("02:42:ac:11:00:02")));
        assert!(f("duration", json!("1h30m")));
        assert!(f("whatever-unknown", json!("anything")));
        assert_eq!(
            check(json!({"type": "string", "format": "cidr"}), json!("x")),
            [r#"spec.x: Invalid value: "x": spec.x in body must be of type cidr: "x""#]
        );
        let i = |format: &str, v: Value| check(json!({"type": "integer", "format": format}), v).is_empty();
        assert!(i("int32", json!(2147483647)));
        assert!(!i("int32", json!(2147483648_i64)));
        assert!(!i("int32", json!(-2147483649_i64)));
        assert!(i("int64", json!(i64::MIN)));
        assert!(!i("int64", json!(u64::MAX)));
    }
}
