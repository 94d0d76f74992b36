//! The announcer's side of preflight (the checks themselves are [`ferrolb_api::preflight`], shared
//! with `ferrolbctl doctor`): which policies select this node and which of its interfaces they
//! select, and what to say about the findings of each pass, so that a problem that persists is
//! neither logged nor posted as an Event on every pass.
//!
//! - A finding is new when no finding of the same check with the same message was shown: it is
//!   logged once (a warning) and posted as one Warning Event on the Node.
//! - A finding still there is posted again only after `repeat` (Kubernetes deletes Events after an
//!   hour by default, and a problem that lasts must stay visible with `kubectl describe node`),
//!   and not logged again.
//! - A finding that is gone is logged once as resolved; its gauge goes back to 0.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use ferrolb_api::preflight::{Check, Finding, PolicyInterfaces};

use crate::interface::Interface;
use crate::policy::{CompiledPolicy, NodeInput};

/// The policies that select `node`, each with the interfaces of `interfaces` it selects (link
/// state aside: a link that is down now is still this policy's). Policies that do not compile
/// are left out: their status condition already says why.
pub fn policy_interfaces(
    policies: &[CompiledPolicy],
    node: &NodeInput,
    patterns: &BTreeMap<String, Vec<String>>,
    interfaces: &[Interface],
) -> Vec<PolicyInterfaces> {
    policies
        .iter()
        .filter(|p| p.selects_node(node))
        .map(|p| PolicyInterfaces {
            policy: p.name.clone(),
            patterns: patterns.get(&p.name).cloned().unwrap_or_default(),
            selected: interfaces
                .iter()
                .filter(|i| p.interfaces().selects(i))
                .map(|i| i.name.clone())
                .collect(),
        })
        .collect()
}

/// What to do after one pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Findings to post as Warning Events now.
    pub post: Vec<Finding>,
    /// Findings that appeared in this pass (log them).
    pub new: Vec<Finding>,
    /// Findings of the last pass that are gone (log them as resolved).
    pub resolved: Vec<Finding>,
    /// Every check with whether it found something (the gauge).
    pub failed: BTreeMap<Check, bool>,
}

/// The findings shown so far and when each was last posted.
#[derive(Debug, Clone)]
pub struct Memory {
    repeat: Duration,
    shown: HashMap<Finding, Instant>,
}

impl Memory {
    /// A finding that lasts is posted again every `repeat`.
    pub fn new(repeat: Duration) -> Self {
        Self { repeat, shown: HashMap::new() }
    }

    /// One pass's findings at `now`.
    pub fn observe(&mut self, findings: Vec<Finding>, now: Instant) -> Outcome {
        let mut out = Outcome {
            failed: Check::ALL.iter().map(|c| (*c, findings.iter().any(|f| f.check == *c))).collect(),
            ..Outcome::default()
        };
        let mut gone: Vec<Finding> = self.shown.keys().filter(|f| !findings.contains(f)).cloned().collect();
        gone.sort_by(|a, b| (a.check, &a.message).cmp(&(b.check, &b.message)));
        for f in gone {
            self.shown.remove(&f);
            out.resolved.push(f);
        }
        for f in findings {
            match self.shown.get(&f) {
                None => {
                    out.new.push(f.clone());
                    out.post.push(f.clone());
                    self.shown.insert(f, now);
                }
                Some(at) if now.saturating_duration_since(*at) >= self.repeat => {
                    out.post.push(f.clone());
                    self.shown.insert(f, now);
                }
                Some(_) => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PolicyInput;
    use ferrolb_api::L2AnnouncementPolicySpec;
    use ferrolb_api::preflight::Severity;

    fn finding(check: Check, message: &str) -> Finding {
        Finding { check, severity: Severity::Warning, message: message.into(), action: "fix it".into() }
    }

    #[test]
    fn a_lasting_finding_is_posted_once_per_repeat_and_logged_once() {
        let t0 = Instant::now();
        let mut m = Memory::new(Duration::from_secs(3600));
        let ipvs = finding(Check::IpvsStrictArp, "ipvs");
        let o = m.observe(vec![ipvs.clone()], t0);
        assert_eq!((o.post.len(), o.new.len(), o.resolved.len()), (1, 1, 0));
        assert!(o.failed[&Check::IpvsStrictArp]);
        assert!(!o.failed[&Check::KubeProxyMissing]);
        assert_eq!(o.failed.len(), Check::ALL.len(), "every check has a gauge value");
        for minutes in [1, 30, 59] {
            let o = m.observe(vec![ipvs.clone()], t0 + Duration::from_secs(60 * minutes));
            assert!(o.post.is_empty() && o.new.is_empty(), "minute {minutes}: {o:?}");
            assert!(o.failed[&Check::IpvsStrictArp]);
        }
        let o = m.observe(vec![ipvs.clone()], t0 + Duration::from_secs(3600));
        assert_eq!(o.post, std::slice::from_ref(&ipvs), "posted again after an hour");
        assert!(o.new.is_empty(), "but not logged again");
        let o = m.observe(vec![ipvs.clone()], t0 + Duration::from_secs(3700));
        assert!(o.post.is_empty(), "the hour counts from the last post");
    }

    #[test]
    fn a_changed_message_is_new_and_a_gone_finding_is_resolved() {
        let t0 = Instant::now();
        let mut m = Memory::new(Duration::from_secs(3600));
        m.observe(vec![finding(Check::Interfaces, "policy a"), finding(Check::Interfaces, "policy b")], t0);
        let o =
            m.observe(vec![finding(Check::Interfaces, "policy b (eth1 gone)")], t0 + Duration::from_secs(1));
        assert_eq!(o.new, [finding(Check::Interfaces, "policy b (eth1 gone)")]);
        assert_eq!(
            o.resolved,
            [finding(Check::Interfaces, "policy a"), finding(Check::Interfaces, "policy b")]
        );
        let o = m.observe(Vec::new(), t0 + Duration::from_secs(2));
        assert_eq!(o.resolved.len(), 1);
        assert!(o.failed.values().all(|f| !f), "{o:?}");
        // Back again: new again.
        let o = m.observe(vec![finding(Check::Interfaces, "policy a")], t0 + Duration::from_secs(3));
        assert_eq!(o.new.len(), 1);
    }

    #[test]
    fn policies_that_select_the_node_with_the_interfaces_they_select() {
        let policy = |name: &str, interfaces: &[&str], node_label: Option<&str>| {
            let mut spec: L2AnnouncementPolicySpec =
                serde_json::from_value(serde_json::json!({})).expect("an empty spec");
            spec.interfaces = interfaces.iter().map(|s| s.to_string()).collect();
            if let Some(l) = node_label {
                spec.node_selector =
                    serde_json::from_value(serde_json::json!({"matchLabels": {l: "yes"}})).unwrap();
            }
            CompiledPolicy::compile(&PolicyInput { name: name.into(), spec }).unwrap()
        };
        let policies = [
            policy("lan", &["eth0"], None),
            policy("typo", &["eht0"], None),
            policy("elsewhere", &["eth0"], Some("edge")),
            policy("default", &[], None),
        ];
        let patterns: BTreeMap<String, Vec<String>> =
            [("lan".into(), vec!["eth0".into()]), ("typo".into(), vec!["eht0".into()])].into();
        let node = NodeInput { name: "node1".into(), ..Default::default() };
        let ifaces =
            [Interface::device("lo"), Interface::device("eth0").with_up(false), Interface::device("veth12")];
        let got = policy_interfaces(&policies, &node, &patterns, &ifaces);
        let summary: Vec<(&str, Vec<&str>)> = got
            .iter()
            .map(|p| (p.policy.as_str(), p.selected.iter().map(String::as_str).collect()))
            .collect();
        assert_eq!(summary, [("lan", vec!["eth0"]), ("typo", vec![]), ("default", vec!["eth0"])]);
        assert_eq!(got[1].patterns, ["eht0"]);
    }
}
