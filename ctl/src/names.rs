//! Output object names: kept when valid, otherwise made valid, and made unique per kind.

use std::collections::BTreeSet;

/// Label put on every converted pool with the pool's own name, so policies converted from
/// MetalLB's `ipAddressPools` (pools by name) can select them with `poolSelector`.
pub const POOL_NAME_LABEL: &str = "ferrolb.io/pool-name";

/// Longest pool name: pool names are also label values ([`POOL_NAME_LABEL`]), limited to 63.
pub const MAX_POOL_NAME: usize = 63;
/// Longest object name (DNS subdomain).
pub const MAX_NAME: usize = 253;

/// Whether `s` is a DNS subdomain name of at most `max` characters.
pub fn is_valid(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.split('.').all(|part| {
            !part.is_empty()
                && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && part.as_bytes()[0].is_ascii_alphanumeric()
                && part.as_bytes()[part.len() - 1].is_ascii_alphanumeric()
        })
}

/// A valid name close to `s`: lower case, other characters as `-`, cut to `max`.
pub fn sanitize(s: &str, max: usize) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    // Dots must separate non-empty alphanumeric-bounded parts.
    let parts: Vec<String> =
        out.split('.').map(|p| p.trim_matches('-').to_string()).filter(|p| !p.is_empty()).collect();
    let mut out = parts.join(".");
    out.truncate(max);
    let out = out.trim_end_matches(['-', '.']).to_string();
    if out.is_empty() { "unnamed".to_string() } else { out }
}

/// Hands out unique names for one kind of output object.
#[derive(Debug, Default)]
pub struct Namer {
    used: BTreeSet<String>,
}

impl Namer {
    /// The name to use for an object that wants `wanted`, and why it differs when it does.
    pub fn claim(&mut self, wanted: &str, max: usize) -> (String, Option<String>) {
        let (base, mut reason) = if is_valid(wanted, max) {
            (wanted.to_string(), None)
        } else {
            (
                sanitize(wanted, max),
                Some(format!("{wanted:?} is not a valid name of at most {max} characters")),
            )
        };
        let mut name = base.clone();
        let mut n = 2;
        while self.used.contains(&name) {
            let suffix = format!("-{n}");
            let mut b = base.clone();
            b.truncate(max - suffix.len());
            name = format!("{}{suffix}", b.trim_end_matches(['-', '.']));
            n += 1;
        }
        if name != base {
            reason = Some(match reason {
                Some(r) => format!("{r}, and {base:?} was taken"),
                None => format!("{base:?} is already used by another converted object"),
            });
        }
        self.used.insert(name.clone());
        (name, reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_valid("prod-pool", 63));
        assert!(!is_valid("Prod_Pool", 63));
        assert_eq!(sanitize("Prod_Pool", 63), "prod-pool");
        assert_eq!(sanitize("__", 63), "unnamed");
        assert_eq!(sanitize("a..b-", 63), "a.b");
        let mut n = Namer::default();
        assert_eq!(n.claim("default", 63).0, "default");
        let (second, why) = n.claim("default", 63);
        assert_eq!(second, "default-2");
        assert!(why.is_some());
        assert_eq!(n.claim("x".repeat(70).as_str(), 63).0.len(), 63);
    }
}
