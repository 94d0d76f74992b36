//! `ferrolbctl status`: FerroLB's pools and the LoadBalancer Services as a table or JSON, and the
//! migration check: save every Service's addresses before migrating ([`AddressMap`]), compare
//! after ([`compare`]). Pure: the objects come from [`crate::cluster::read_state`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use ferrolb_api::LoadBalancerIPPool;
use ferrolb_api::names::{annotations, conditions};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt as _;
use serde::Serialize;

/// One pool's row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolRow {
    pub name: String,
    pub disabled: bool,
    /// Status of the `ferrolb.io/PoolConflict` condition (`True`: the pool overlaps another and
    /// is not used), `None` before the controller wrote it.
    pub conflicting: Option<String>,
    pub total: Option<String>,
    pub used: Option<String>,
    pub available: Option<String>,
}

/// A condition as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConditionView {
    pub status: String,
    pub reason: String,
    pub message: String,
}

/// One LoadBalancer Service's row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceRow {
    pub namespace: String,
    pub name: String,
    /// `spec.loadBalancerClass`.
    pub class: Option<String>,
    /// `status.loadBalancer.ingress[]`: each IP, or the hostname when there is no IP.
    pub ingress: Vec<String>,
    /// The `ferrolb.io/allocated-from-pool` annotation.
    pub pool: Option<String>,
    /// The `ferrolb.io/IPAMRequestSatisfied` condition.
    pub ipam: Option<ConditionView>,
}

impl ServiceRow {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// What `status` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusView {
    /// `None`: the LoadBalancerIPPool CRD is not installed (FerroLB is not installed yet).
    pub pools: Option<Vec<PoolRow>>,
    pub services: Vec<ServiceRow>,
    /// With `--compare`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comparison: Option<Comparison>,
}

fn condition<'a>(conds: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conds.iter().find(|c| c.type_ == type_)
}

impl StatusView {
    /// Rows for the pools (by name) and Services (by namespace and name).
    pub fn new(pools: Option<&[LoadBalancerIPPool]>, services: &[Service]) -> Self {
        let pools = pools.map(|pools| {
            let mut rows: Vec<PoolRow> = pools
                .iter()
                .map(|p| {
                    let st = p.status.clone().unwrap_or_default();
                    PoolRow {
                        name: p.name_any(),
                        disabled: p.spec.disabled,
                        conflicting: condition(&st.conditions, conditions::POOL_CONFLICT)
                            .map(|c| c.status.clone()),
                        total: st.ips_total,
                        used: st.ips_used,
                        available: st.ips_available,
                    }
                })
                .collect();
            rows.sort_by(|a, b| a.name.cmp(&b.name));
            rows
        });
        let mut services: Vec<ServiceRow> = services
            .iter()
            .map(|s| {
                let status = s.status.as_ref();
                let ingress = status
                    .and_then(|st| st.load_balancer.as_ref())
                    .and_then(|lb| lb.ingress.as_ref())
                    .map(|ing| {
                        ing.iter().filter_map(|i| i.ip.clone().or_else(|| i.hostname.clone())).collect()
                    })
                    .unwrap_or_default();
                let conds = status.and_then(|st| st.conditions.as_deref()).unwrap_or_default();
                ServiceRow {
                    namespace: s.namespace().unwrap_or_default(),
                    name: s.name_any(),
                    class: s.spec.as_ref().and_then(|sp| sp.load_balancer_class.clone()),
                    ingress,
                    pool: s.annotations().get(annotations::ALLOCATED_FROM_POOL).cloned(),
                    ipam: condition(conds, conditions::IPAM_REQUEST_SATISFIED).map(|c| ConditionView {
                        status: c.status.clone(),
                        reason: c.reason.clone(),
                        message: c.message.clone(),
                    }),
                }
            })
            .collect();
        services.sort_by_key(ServiceRow::key);
        Self { pools, services, comparison: None }
    }

    /// Every Service's addresses (for `--save` and `--compare`).
    pub fn addresses(&self) -> AddressMap {
        AddressMap(self.services.iter().map(|s| (s.key(), sorted(&s.ingress))).collect())
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("a status view always serializes");
        s.push('\n');
        s
    }

    /// Two tables (pools, Services), then the comparison when there is one.
    pub fn to_text(&self) -> String {
        let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        let mut out = String::new();
        match &self.pools {
            None => out.push_str("LoadBalancerIPPools: none (FerroLB's CRDs are not installed)\n"),
            Some(pools) if pools.is_empty() => out.push_str("LoadBalancerIPPools: none\n"),
            Some(pools) => {
                let mut rows =
                    vec![["POOL", "DISABLED", "CONFLICTING", "TOTAL", "USED", "AVAILABLE"].map(String::from)];
                rows.extend(pools.iter().map(|p| {
                    [
                        p.name.clone(),
                        p.disabled.to_string(),
                        dash(&p.conflicting),
                        dash(&p.total),
                        dash(&p.used),
                        dash(&p.available),
                    ]
                }));
                out.push_str(&table(&rows));
            }
        }
        out.push('\n');
        if self.services.is_empty() {
            out.push_str("LoadBalancer Services: none\n");
        } else {
            let mut rows =
                vec![["SERVICE", "CLASS", "ADDRESSES", "POOL", "IPAM", "MESSAGE"].map(String::from)];
            rows.extend(self.services.iter().map(|s| {
                let (ipam, message) = match &s.ipam {
                    Some(c) => (format!("{} ({})", c.reason, c.status), c.message.clone()),
                    None => ("-".into(), String::new()),
                };
                [
                    s.key(),
                    dash(&s.class),
                    if s.ingress.is_empty() { "<pending>".into() } else { s.ingress.join(",") },
                    dash(&s.pool),
                    ipam,
                    message,
                ]
            }));
            out.push_str(&table(&rows));
        }
        if let Some(c) = &self.comparison {
            out.push('\n');
            out.push_str(&c.to_text());
        }
        out
    }
}

/// Columns padded to their widest cell; the last column is not padded.
pub(crate) fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0; N];
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ", width = widths[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn sorted(v: &[String]) -> Vec<String> {
    let set: BTreeSet<&String> = v.iter().collect();
    set.into_iter().cloned().collect()
}

/// Service (`namespace/name`) → its addresses, sorted: the file `--save` writes and `--compare`
/// reads, a plain JSON object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressMap(pub BTreeMap<String, Vec<String>>);

impl AddressMap {
    /// Pretty JSON, one Service per line group.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(&self.0).expect("a map of strings serializes");
        s.push('\n');
        s
    }

    /// Reads a saved map; the error says what is wrong with the file.
    pub fn from_json(text: &str) -> Result<Self, String> {
        serde_json::from_str::<BTreeMap<String, Vec<String>>>(text)
            .map(|m| Self(m.into_iter().map(|(k, v)| (k, sorted(&v))).collect()))
            .map_err(|e| {
                format!(
                    "not a map of Service (\"namespace/name\") to addresses as `ferrolbctl status --save` writes: {e}"
                )
            })
    }
}

/// What happened to one Service's addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "change")]
pub enum Change {
    /// The Service has other addresses (some may be kept).
    Changed { service: String, before: Vec<String>, after: Vec<String> },
    /// The Service has no address now.
    Lost { service: String, before: Vec<String> },
    /// The Service is gone (deleted, or no longer of type LoadBalancer).
    Gone { service: String, before: Vec<String> },
}

impl Change {
    fn to_text(&self) -> String {
        match self {
            Change::Changed { service, before, after } => {
                format!("{service}: {} -> {}", before.join(","), after.join(","))
            }
            Change::Lost { service, before } => format!("{service}: {} -> no address", before.join(",")),
            Change::Gone { service, before } => {
                format!(
                    "{service}: {} -> Service not found (deleted, or no longer of type LoadBalancer)",
                    before.join(",")
                )
            }
        }
    }
}

/// The result of `--compare`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Comparison {
    /// The saved file, as named on the command line.
    pub file: String,
    /// Services that had addresses and still have exactly those.
    pub kept: usize,
    /// Services that had addresses and now have others, none, or are gone.
    pub changes: Vec<Change>,
    /// Services saved without an address (pending then): nothing to keep.
    pub pending_before: usize,
    /// LoadBalancer Services created since the map was saved.
    pub new: usize,
}

impl Comparison {
    /// Every Service kept its addresses.
    pub fn ok(&self) -> bool {
        self.changes.is_empty()
    }

    pub fn to_text(&self) -> String {
        let mut out = format!(
            "compared with {}: {} Service(s) kept their addresses, {} changed",
            self.file,
            self.kept,
            self.changes.len()
        );
        if self.pending_before > 0 || self.new > 0 {
            let _ = write!(out, " ({} had no address when saved, {} are new)", self.pending_before, self.new);
        }
        out.push('\n');
        for c in &self.changes {
            let _ = writeln!(out, "  {}", c.to_text());
        }
        out
    }
}

/// Compares the saved addresses with the current ones. A Service saved without an address has
/// nothing to keep; one with addresses must have the same set now.
pub fn compare(file: &str, saved: &AddressMap, now: &AddressMap) -> Comparison {
    let mut c =
        Comparison { file: file.to_string(), kept: 0, changes: Vec::new(), pending_before: 0, new: 0 };
    for (service, before) in &saved.0 {
        if before.is_empty() {
            c.pending_before += 1;
            continue;
        }
        match now.0.get(service) {
            None => c.changes.push(Change::Gone { service: service.clone(), before: before.clone() }),
            Some(after) if after.is_empty() => {
                c.changes.push(Change::Lost { service: service.clone(), before: before.clone() })
            }
            Some(after) if after != before => c.changes.push(Change::Changed {
                service: service.clone(),
                before: before.clone(),
                after: after.clone(),
            }),
            Some(_) => c.kept += 1,
        }
    }
    c.new = now.0.keys().filter(|k| !saved.0.contains_key(*k)).count();
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, &[&str])]) -> AddressMap {
        AddressMap(
            entries.iter().map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect())).collect(),
        )
    }

    #[test]
    fn compare_finds_every_change() {
        let saved = map(&[
            ("a/kept", &["192.0.2.1"]),
            ("a/moved", &["192.0.2.2"]),
            ("a/lost", &["192.0.2.3"]),
            ("a/gone", &["192.0.2.4"]),
            ("a/pending", &[]),
            ("a/dual", &["192.0.2.5", "2001:db8::5"]),
        ]);
        let now = map(&[
            ("a/kept", &["192.0.2.1"]),
            ("a/moved", &["192.0.2.9"]),
            ("a/lost", &[]),
            ("a/pending", &["192.0.2.7"]),
            ("a/dual", &["192.0.2.5"]),
            ("b/new", &["192.0.2.8"]),
        ]);
        let c = compare("before.json", &saved, &now);
        assert_eq!(c.kept, 1);
        assert_eq!(c.pending_before, 1);
        assert_eq!(c.new, 1);
        let changed: Vec<String> = c.changes.iter().map(Change::to_text).collect();
        assert_eq!(
            changed,
            [
                "a/dual: 192.0.2.5,2001:db8::5 -> 192.0.2.5",
                "a/gone: 192.0.2.4 -> Service not found (deleted, or no longer of type LoadBalancer)",
                "a/lost: 192.0.2.3 -> no address",
                "a/moved: 192.0.2.2 -> 192.0.2.9",
            ]
        );
        assert!(compare("x", &saved, &saved).ok());
    }

    #[test]
    fn address_map_round_trips_and_rejects_other_files() {
        let m = map(&[("shop/web", &["192.0.2.10", "192.0.2.1"])]);
        let back = AddressMap::from_json(&m.to_json()).unwrap();
        assert_eq!(back.0["shop/web"], ["192.0.2.1", "192.0.2.10"]);
        assert!(AddressMap::from_json("[1, 2]").unwrap_err().contains("status --save"));
    }
}
