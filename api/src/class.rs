//! Which Services FerroLB serves, by `spec.loadBalancerClass`: the one rule the IPAM controller,
//! the announcer and `ferrolbctl` share.
//!
//! The set always holds FerroLB's own class `ferrolb.io/l2`; `--load-balancer-classes` adds more
//! (a Deckhouse `MetalLoadBalancerClass` name such as `ingress`, Cilium's `io.cilium/l2-announcer`),
//! so Services keep their class through a migration (the field cannot be changed on a Service).
//! Services without a class are served unless `--default-class=false`. A Service of any other
//! class belongs to another implementation and is never written to.

use std::collections::BTreeSet;
use std::fmt;

use crate::names::LOAD_BALANCER_CLASS;

/// Longest class: a qualified name (253-character prefix, `/`, 63-character name).
const MAX_CLASS: usize = 253 + 1 + 63;

/// A malformed `--load-balancer-classes` entry; `Display` names the entry and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("load-balancer class {position} ({class:?}): {why}")]
pub struct ClassError {
    /// 1-based position in the list.
    pub position: usize,
    pub class: String,
    pub why: &'static str,
}

/// The load-balancer classes FerroLB serves.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServedClasses {
    /// Serve Services without `spec.loadBalancerClass` (`--default-class`).
    pub default_class: bool,
    /// Always contains [`LOAD_BALANCER_CLASS`].
    classes: BTreeSet<String>,
}

impl Default for ServedClasses {
    /// Services without a class and `ferrolb.io/l2`.
    fn default() -> Self {
        Self::new(true, [] as [&str; 0])
    }
}

impl ServedClasses {
    /// `ferrolb.io/l2` plus `extra` (unchecked: use [`parse_class_list`] for user input).
    pub fn new<I, S>(default_class: bool, extra: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut classes: BTreeSet<String> = extra.into_iter().map(Into::into).collect();
        classes.insert(LOAD_BALANCER_CLASS.to_string());
        Self { default_class, classes }
    }

    /// Whether a Service with this `spec.loadBalancerClass` (None: no class) is FerroLB's.
    pub fn serves(&self, class: Option<&str>) -> bool {
        match class {
            None => self.default_class,
            Some(c) => self.classes.contains(c),
        }
    }

    /// Every served class, `ferrolb.io/l2` included, in order.
    pub fn classes(&self) -> impl Iterator<Item = &str> {
        self.classes.iter().map(String::as_str)
    }

    /// The classes served besides `ferrolb.io/l2` (what `--load-balancer-classes` added).
    pub fn extra(&self) -> impl Iterator<Item = &str> {
        self.classes().filter(|c| *c != LOAD_BALANCER_CLASS)
    }
}

impl fmt::Display for ServedClasses {
    /// `no class, ferrolb.io/l2, ingress`: for logs and messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<&str> = Vec::new();
        if self.default_class {
            parts.push("no class");
        }
        parts.extend(self.classes());
        f.write_str(&parts.join(", "))
    }
}

/// Parses a comma-separated list of classes (`--load-balancer-classes`, env
/// `FERROLB_LOAD_BALANCER_CLASSES`). Blanks around entries and empty entries are skipped, so an
/// empty string is the empty list; duplicates collapse.
pub fn parse_class_list(list: &str) -> Result<BTreeSet<String>, ClassError> {
    let mut out = BTreeSet::new();
    for (i, entry) in list.split(',').map(str::trim).enumerate() {
        if entry.is_empty() {
            continue;
        }
        validate_class(entry).map_err(|why| ClassError { position: i + 1, class: entry.to_string(), why })?;
        out.insert(entry.to_string());
    }
    Ok(out)
}

/// Checks a class as Kubernetes does for `spec.loadBalancerClass`: a qualified name,
/// `[prefix/]name`, the prefix a DNS subdomain, the name 1-63 characters of `[A-Za-z0-9_.-]`
/// starting and ending alphanumeric.
pub fn validate_class(class: &str) -> Result<(), &'static str> {
    if class.len() > MAX_CLASS {
        return Err("longer than a qualified name may be");
    }
    crate::selector::validate_key(class).map_err(|_| {
        "not a qualified name: [prefix/]name, the prefix a DNS subdomain (example.com), the name 1-63 \
         characters of [A-Za-z0-9_.-] starting and ending alphanumeric"
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn default_serves_no_class_and_ferrolb_l2_only() {
        let c = ServedClasses::default();
        assert!(c.serves(None));
        assert!(c.serves(Some("ferrolb.io/l2")));
        assert!(!c.serves(Some("ingress")));
        assert!(!c.serves(Some("io.cilium/l2-announcer")));
        assert!(!c.serves(Some("")));
        assert_eq!(c.extra().count(), 0);
        assert_eq!(c.to_string(), "no class, ferrolb.io/l2");
    }

    #[test]
    fn added_classes_keep_ferrolb_l2_and_default_class_is_separate() {
        let c = ServedClasses::new(false, ["ingress", "io.cilium/l2-announcer"]);
        assert!(!c.serves(None));
        assert!(c.serves(Some("ferrolb.io/l2")));
        assert!(c.serves(Some("ingress")));
        assert!(c.serves(Some("io.cilium/l2-announcer")));
        assert!(!c.serves(Some("Ingress")), "classes compare exactly, as the API server does");
        assert!(!c.serves(Some("io.cilium/bgp-control-plane")));
        assert_eq!(c.extra().collect::<Vec<_>>(), ["ingress", "io.cilium/l2-announcer"]);
        assert_eq!(c.to_string(), "ferrolb.io/l2, ingress, io.cilium/l2-announcer");
    }

    #[test]
    fn list_parsing_skips_blanks_and_duplicates() {
        assert!(parse_class_list("").unwrap().is_empty());
        assert!(parse_class_list(" , ,").unwrap().is_empty());
        let l = parse_class_list(" ingress,io.cilium/l2-announcer ,ingress,,ferrolb.io/l2").unwrap();
        assert_eq!(l.into_iter().collect::<Vec<_>>(), ["ferrolb.io/l2", "ingress", "io.cilium/l2-announcer"]);
    }

    #[test]
    fn bad_entries_are_named_with_their_position() {
        let e = parse_class_list("ingress, bad class").unwrap_err();
        assert_eq!(e.position, 2);
        assert_eq!(e.class, "bad class");
        assert!(
            e.to_string().starts_with("load-balancer class 2 (\"bad class\"): not a qualified name"),
            "{e}"
        );
        for bad in ["/l2", "ferrolb.io/", "-ingress", "ingress-", "a/b/c", "Ex_ample.com/l2", &"x".repeat(64)]
        {
            assert!(parse_class_list(bad).is_err(), "{bad:?} must be rejected");
        }
        for good in ["ingress", "ferrolb.io/l2", "io.cilium/l2-announcer", "example.com/My_Class.v1", "a"] {
            assert!(parse_class_list(good).is_ok(), "{good:?} must be accepted");
        }
    }

    proptest! {
        /// Whatever the list, `ferrolb.io/l2` is served, every listed class is served, and a
        /// class not listed is not; the default class is exactly the flag.
        #[test]
        fn serves_exactly_the_listed_classes(
            listed in proptest::collection::btree_set("[a-z]{1,8}(\\.[a-z]{1,5})?/[a-z][a-z0-9-]{0,6}[a-z0-9]", 0..5),
            other in "[a-z]{1,8}/[a-z]{1,8}",
            default_class: bool,
        ) {
            let text = listed.iter().cloned().collect::<Vec<_>>().join(",");
            let parsed = parse_class_list(&text).unwrap();
            prop_assert_eq!(&parsed, &listed);
            let c = ServedClasses::new(default_class, parsed);
            prop_assert!(c.serves(Some(LOAD_BALANCER_CLASS)));
            for l in &listed {
                prop_assert!(c.serves(Some(l)));
            }
            prop_assert_eq!(c.serves(Some(&other)), listed.contains(&other) || other == LOAD_BALANCER_CLASS);
            prop_assert_eq!(c.serves(None), default_class);
        }
    }
}
