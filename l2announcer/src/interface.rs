//! Which of a node's network interfaces a policy answers on.
//!
//! A policy names interfaces with regular expressions that are **anchored**: the expression `eth0`
//! selects only `eth0` (not `eth01` or `veth0`), and `eth.*` selects `eth0`, `eth1.100`, ... This is
//! what users mean when they write an interface name, and unlike Cilium's unanchored matching a
//! policy for `eth0` can never start answering on `veth0abc`.
//!
//! Two kinds of rules apply:
//! - **structural** (always): the interface must be ARP-capable (not loopback, not `NOARP`) and must
//!   not be a bridge port or bond slave: frames for the node arrive on the bridge or the bond, and a
//!   reply with a port's MAC would teach the switch the wrong address;
//! - **by name** (only when the policy lists no regex): the default exclude list of DESIGN.md §2
//!   (`lo`, `veth*`, `cali*`, ...), which keeps CNI plumbing out. An explicit regex overrides the name
//!   list, so `interfaces: ["veth.*"]` works where a lab needs it.
//!
//! Selection does not look at the link state: an interface that goes down stays selected (so the set
//! does not churn), and [`Interface::usable`] adds the "link up" check where candidacy needs it.

use regex::{Regex, RegexBuilder};

pub use ferrolb_api::names::interfaces::{DEFAULT_EXCLUDED_PREFIXES, excluded_by_default};

/// Upper bound on the compiled size of one interface regex: a user's typo must not cost megabytes.
const REGEX_SIZE_LIMIT: usize = 64 * 1024;

/// What kind of link an interface is (from netlink's `IFLA_INFO_KIND`, loopback from its flags).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InterfaceKind {
    Loopback,
    /// A physical NIC or anything without a link kind.
    Device,
    Vlan,
    Bond,
    Bridge,
    Veth,
    /// Any other link kind, as netlink names it (`macvlan`, `vxlan`, ...).
    Other(String),
}

/// One network interface of a node, as the node's announcer sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Interface {
    pub name: String,
    /// Operational state: carrier present and administratively up.
    pub up: bool,
    /// Can do ARP/NDP: not loopback, no `IFF_NOARP`.
    pub arp_capable: bool,
    /// A bridge port or a bond slave (has a master of kind bridge or bond).
    pub enslaved: bool,
    pub kind: InterfaceKind,
}

impl Interface {
    /// An up, ARP-capable, standalone device interface (the common case; for tests and fixtures).
    pub fn device(name: impl Into<String>) -> Self {
        Self { name: name.into(), up: true, arp_capable: true, enslaved: false, kind: InterfaceKind::Device }
    }

    /// The same interface with another link state.
    pub fn with_up(mut self, up: bool) -> Self {
        self.up = up;
        self
    }

    /// Whether replies may be sent from this interface at all, whatever the policy says.
    pub fn structurally_eligible(&self) -> bool {
        self.arp_capable && !self.enslaved && self.kind != InterfaceKind::Loopback
    }

    /// Whether the interface can announce now: `selector` selects it and its link is up.
    pub fn usable(&self, selector: &InterfaceSelector) -> bool {
        self.up && selector.selects(self)
    }
}

/// A policy's `spec.interfaces`, compiled.
#[derive(Debug, Clone)]
pub enum InterfaceSelector {
    /// No regex: every structurally eligible interface not on the default exclude list.
    Default,
    /// Interfaces whose whole name matches one of these (anchored) expressions.
    Regexes(Vec<Regex>),
}

/// A regex of `spec.interfaces` that does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("interfaces[{index}]: {pattern:?} is not a valid regular expression: {why}")]
pub struct InterfaceRegexError {
    pub index: usize,
    pub pattern: String,
    pub why: String,
}

impl InterfaceSelector {
    /// Compiles `spec.interfaces`; empty means [`InterfaceSelector::Default`]. Every bad entry is
    /// reported (not only the first), so one condition message lists them all.
    pub fn compile(patterns: &[String]) -> Result<Self, Vec<InterfaceRegexError>> {
        if patterns.is_empty() {
            return Ok(Self::Default);
        }
        let mut regexes = Vec::with_capacity(patterns.len());
        let mut errors = Vec::new();
        for (index, pattern) in patterns.iter().enumerate() {
            // Anchored: the whole name must match. The group keeps `a|b` from binding as `^a|b$`.
            match RegexBuilder::new(&format!("^(?:{pattern})$")).size_limit(REGEX_SIZE_LIMIT).build() {
                Ok(re) => regexes.push(re),
                Err(e) => errors.push(InterfaceRegexError {
                    index,
                    pattern: pattern.clone(),
                    why: one_line(&e.to_string()),
                }),
            }
        }
        if errors.is_empty() { Ok(Self::Regexes(regexes)) } else { Err(errors) }
    }

    /// Whether this selector selects `iface` (ignoring its link state).
    pub fn selects(&self, iface: &Interface) -> bool {
        if !iface.structurally_eligible() {
            return false;
        }
        match self {
            Self::Default => !excluded_by_default(&iface.name),
            Self::Regexes(res) => res.iter().any(|re| re.is_match(&iface.name)),
        }
    }
}

/// regex's messages span several lines (with a caret under the error); a condition message is one.
fn one_line(s: &str) -> String {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sel(p: &[&str]) -> InterfaceSelector {
        InterfaceSelector::compile(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn regexes_are_anchored() {
        let s = sel(&["eth0"]);
        assert!(s.selects(&Interface::device("eth0")));
        for other in ["eth01", "veth0", "xeth0", "eth"] {
            assert!(!s.selects(&Interface::device(other)), "{other}");
        }
        let s = sel(&["eth.*", "bond0|br0"]);
        assert!(s.selects(&Interface::device("eth1.100")));
        assert!(s.selects(&Interface::device("br0")));
        assert!(!s.selects(&Interface::device("xbond0")));
        assert!(!s.selects(&Interface::device("br01")), "alternation stays inside the anchors");
    }

    #[test]
    fn default_excludes_cni_plumbing() {
        let s = InterfaceSelector::Default;
        for name in ["eth0", "ens3", "bond0", "eth0.100", "br-lan", "enp0s31f6"] {
            assert!(s.selects(&Interface::device(name)), "{name}");
        }
        for name in [
            "lo",
            "veth1234",
            "cali0ab",
            "flannel.1",
            "cni0",
            "docker0",
            "kube-ipvs0",
            "lxc12",
            "tunl0",
            "vxlan.calico",
            "cilium_host",
        ] {
            assert!(!s.selects(&Interface::device(name)), "{name}");
        }
        // An explicit regex overrides the name list, not the structural rules.
        assert!(sel(&["veth.*"]).selects(&Interface::device("veth1")));
        let slave = Interface { enslaved: true, ..Interface::device("eth1") };
        assert!(!sel(&["eth1"]).selects(&slave));
        let noarp = Interface { arp_capable: false, ..Interface::device("wg0") };
        assert!(!sel(&["wg0"]).selects(&noarp));
        let lo = Interface { kind: InterfaceKind::Loopback, ..Interface::device("lo0") };
        assert!(!InterfaceSelector::Default.selects(&lo));
    }

    #[test]
    fn link_state_affects_usable_not_selection() {
        let down = Interface::device("eth0").with_up(false);
        assert!(InterfaceSelector::Default.selects(&down));
        assert!(!down.usable(&InterfaceSelector::Default));
        assert!(Interface::device("eth0").usable(&InterfaceSelector::Default));
    }

    #[test]
    fn bad_regexes_are_all_reported_on_one_line() {
        let errs = InterfaceSelector::compile(&["eth0".into(), "eth(".into(), "[z-a]".into()]).unwrap_err();
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[0].index, 1);
        assert_eq!(errs[1].index, 2);
        let msg = errs[0].to_string();
        assert!(msg.starts_with("interfaces[1]: \"eth(\" is not a valid regular expression"), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
        // A regex too large to compile is an error, not an allocation spree.
        assert!(InterfaceSelector::compile(&["(a{1000}){1000}".into()]).is_err());
    }

    proptest! {
        #[test]
        fn compile_never_panics(p in ".{0,40}") {
            let _ = InterfaceSelector::compile(&[p]);
        }

        #[test]
        fn literal_names_match_only_themselves(a in "[a-z][a-z0-9]{0,8}", b in "[a-z][a-z0-9]{0,8}") {
            let s = sel(&[a.as_str()]);
            prop_assert_eq!(s.selects(&Interface::device(b.clone())), a == b);
        }
    }
}
