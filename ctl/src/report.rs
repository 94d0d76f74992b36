//! The conversion report: one entry per source field, saying whether it was converted exactly,
//! approximately (with why and what to check) or not at all. Rendered as text or JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::error::Origin;

/// How a source field was carried over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// FerroLB behaves as the source did.
    Exact,
    /// Converted, but behaviour can differ; the entry says how and what to check.
    Approximate,
    /// Dropped: FerroLB has no equivalent (a VRF, tolerations of the old speaker, ...).
    NotConverted,
    /// Not configuration at all: written by the API server or the old controller (uid,
    /// resourceVersion, status, tool annotations). Listed so nothing disappears unseen; does not
    /// fail `--check`.
    Ignored,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Exact => "exact",
            Status::Approximate => "approximate",
            Status::NotConverted => "not converted",
            Status::Ignored => "ignored",
        }
    }
}

/// The source object a report entry belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Subject {
    pub origin: Origin,
    /// `Kind namespace/name` or `Kind name`.
    pub object: String,
}

impl Subject {
    pub fn new(origin: &Origin, kind: &str, namespace: Option<&str>, name: &str) -> Self {
        let object = match namespace {
            Some(ns) if !ns.is_empty() => format!("{kind} {ns}/{name}"),
            _ => format!("{kind} {name}"),
        };
        Self { origin: origin.clone(), object }
    }
}

/// One source field and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// File and document.
    pub source: String,
    /// The source object (`IPAddressPool metallb-system/prod`).
    pub object: String,
    /// Path of the field in the source object (`spec.addresses[0]`).
    pub field: String,
    pub status: Status,
    /// What it became (`LoadBalancerIPPool prod spec.blocks[0]`), if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Why, in one or two sentences.
    pub note: String,
    /// For approximate and dropped fields: what the user should verify or do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
}

/// An output object whose name differs from its source's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rename {
    pub source: String,
    pub from: String,
    pub to: String,
    pub reason: String,
}

/// Counts per status, for the summary line and `--check`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub exact: usize,
    pub approximate: usize,
    pub not_converted: usize,
    pub ignored: usize,
    pub pools: usize,
    pub policies: usize,
    pub service_patches: usize,
    /// BGP objects written; left out of the JSON when there are none, so reports of L2-only
    /// inputs read as before.
    #[serde(skip_serializing_if = "is_zero")]
    pub bgp_peers: usize,
    #[serde(skip_serializing_if = "is_zero")]
    pub bgp_advertisements: usize,
    #[serde(skip_serializing_if = "is_zero")]
    pub bfd_profiles: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// A load-balancer class the converted configuration serves (besides `ferrolb.io/l2`), and why:
/// the chart value `loadBalancerClasses` and the flag `--load-balancer-classes` list these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServedClass {
    pub class: String,
    /// The source object that served it (`MetalLoadBalancerClass ingress (file#1)`).
    pub why: String,
}

/// A `spec.loadBalancerClass` in use by the LoadBalancer Services of the inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClassInUse {
    /// `None`: Services without a class.
    pub class: Option<String>,
    pub services: usize,
    /// Whether FerroLB, configured as the output says, serves them.
    pub served: bool,
}

/// The whole report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub summary: Summary,
    /// Classes to serve besides `ferrolb.io/l2` (`ferrolb-values.yaml`).
    pub served_classes: Vec<ServedClass>,
    /// Every class the input Services use, and whether it will be served.
    pub classes_in_use: Vec<ClassInUse>,
    pub renames: Vec<Rename>,
    pub entries: Vec<Entry>,
}

impl Report {
    /// Adds one entry.
    pub fn add(
        &mut self,
        subject: &Subject,
        field: impl Into<String>,
        status: Status,
        target: Option<String>,
        note: impl Into<String>,
        check: Option<String>,
    ) {
        self.entries.push(Entry {
            source: subject.origin.to_string(),
            object: subject.object.clone(),
            field: field.into(),
            status,
            target,
            note: note.into(),
            check,
        });
    }

    /// A field carried over exactly.
    pub fn exact(
        &mut self,
        s: &Subject,
        field: impl Into<String>,
        target: Option<String>,
        note: impl Into<String>,
    ) {
        self.add(s, field, Status::Exact, target, note, None);
    }

    /// A field carried over with a difference the user should know about.
    pub fn approximate(
        &mut self,
        s: &Subject,
        field: impl Into<String>,
        target: Option<String>,
        note: impl Into<String>,
        check: impl Into<String>,
    ) {
        self.add(s, field, Status::Approximate, target, note, Some(check.into()));
    }

    /// A field FerroLB has no equivalent for.
    pub fn not_converted(
        &mut self,
        s: &Subject,
        field: impl Into<String>,
        note: impl Into<String>,
        check: impl Into<String>,
    ) {
        self.add(s, field, Status::NotConverted, None, note, Some(check.into()));
    }

    /// A field that is not configuration.
    pub fn ignored(&mut self, s: &Subject, field: impl Into<String>, note: impl Into<String>) {
        self.add(s, field, Status::Ignored, None, note, None);
    }

    /// Recomputes the status counts (call once all entries are in).
    pub fn count(&mut self) {
        let mut s = Summary {
            pools: self.summary.pools,
            policies: self.summary.policies,
            service_patches: self.summary.service_patches,
            bgp_peers: self.summary.bgp_peers,
            bgp_advertisements: self.summary.bgp_advertisements,
            bfd_profiles: self.summary.bfd_profiles,
            ..Summary::default()
        };
        for e in &self.entries {
            match e.status {
                Status::Exact => s.exact += 1,
                Status::Approximate => s.approximate += 1,
                Status::NotConverted => s.not_converted += 1,
                Status::Ignored => s.ignored += 1,
            }
        }
        self.summary = s;
    }

    /// True when something was approximated or dropped: `--check` fails then.
    pub fn needs_attention(&self) -> bool {
        self.entries.iter().any(|e| matches!(e.status, Status::Approximate | Status::NotConverted))
    }

    /// The report as pretty JSON (stable field order).
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("a report always serializes");
        s.push('\n');
        s
    }

    /// The report as text for people: a summary, renames, then each object with its fields.
    pub fn to_text(&self) -> String {
        let s = &self.summary;
        let mut out = String::new();
        let _ = writeln!(out, "ferrolbctl convert report");
        let _ = writeln!(
            out,
            "output: {} LoadBalancerIPPool(s), {} L2AnnouncementPolicy(ies), {} Service patch(es)",
            s.pools, s.policies, s.service_patches
        );
        if s.bgp_peers + s.bgp_advertisements + s.bfd_profiles > 0 {
            let _ = writeln!(
                out,
                "output (BGP): {} BGPPeer(s), {} BGPAdvertisement(s), {} BFDProfile(s)",
                s.bgp_peers, s.bgp_advertisements, s.bfd_profiles
            );
        }
        let _ = writeln!(
            out,
            "fields: {} exact, {} approximate, {} not converted, {} ignored",
            s.exact, s.approximate, s.not_converted, s.ignored
        );
        if self.needs_attention() {
            let _ = writeln!(out, "attention: review every 'approximate' and 'not converted' entry below");
        }
        if self.served_classes.is_empty() {
            let _ = writeln!(
                out,
                "load-balancer classes: no class and ferrolb.io/l2 (the defaults; loadBalancerClasses: [])"
            );
        } else {
            let list: Vec<&str> = self.served_classes.iter().map(|c| c.class.as_str()).collect();
            let _ = writeln!(
                out,
                "load-balancer classes: no class, ferrolb.io/l2 and {} (chart value loadBalancerClasses, flag \
                 --load-balancer-classes={} of ferrolb-ipam and ferrolb-announcer; see ferrolb-values.yaml)",
                list.join(", "),
                list.join(",")
            );
            for c in &self.served_classes {
                let _ = writeln!(out, "  {}: served by {}", c.class, c.why);
            }
        }
        if !self.classes_in_use.is_empty() {
            let _ = writeln!(out, "classes of the LoadBalancer Services:");
            for c in &self.classes_in_use {
                let _ = writeln!(
                    out,
                    "  {:<28}{} Service(s), {}",
                    c.class.as_deref().unwrap_or("(no class)"),
                    c.services,
                    if c.served { "served" } else { "not served: FerroLB leaves them alone" }
                );
            }
        }
        if !self.renames.is_empty() {
            let _ = writeln!(out, "\nrenamed:");
            for r in &self.renames {
                let _ = writeln!(out, "  {} -> {} ({}; {})", r.from, r.to, r.reason, r.source);
            }
        }
        // Group by object, in the order objects first appear (input order), so the text reads
        // like the inputs.
        let mut order: Vec<(String, String)> = Vec::new();
        let mut groups: BTreeMap<(String, String), Vec<&Entry>> = BTreeMap::new();
        for e in &self.entries {
            let key = (e.source.clone(), e.object.clone());
            if !groups.contains_key(&key) {
                order.push(key.clone());
            }
            groups.entry(key).or_default().push(e);
        }
        for key in order {
            let _ = writeln!(out, "\n{} ({})", key.1, key.0);
            for e in &groups[&key] {
                let _ = write!(out, "  {:<14}{}", e.status.label(), e.field);
                if let Some(t) = &e.target {
                    let _ = write!(out, " -> {t}");
                }
                let _ = writeln!(out, ": {}", e.note);
                if let Some(c) = &e.check {
                    let _ = writeln!(out, "  {:<14}check: {c}", "");
                }
            }
        }
        out
    }
}
