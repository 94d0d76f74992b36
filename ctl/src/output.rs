//! Writing the result: FerroLB manifests as one multi-document YAML stream (pools, policies,
//! BFD profiles, BGP peers, BGP advertisements, each ordered by name), Service merge patches,
//! and the report.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::convert::Conversion;

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Text,
    Json,
}

fn yaml<T: Serialize>(v: &T) -> String {
    serde_saphyr::to_string(v).expect("converted objects always serialize")
}

/// Every converted object, as `kubectl apply -f` takes them.
pub fn manifests(c: &Conversion) -> String {
    let mut out = String::from(
        "# FerroLB manifests written by `ferrolbctl convert`; read the report before applying.\n",
    );
    for p in &c.pools {
        let _ = write!(out, "---\n{}", yaml(p));
    }
    for p in &c.policies {
        let _ = write!(out, "---\n{}", yaml(p));
    }
    for p in &c.bfd_profiles {
        let _ = write!(out, "---\n{}", yaml(p));
    }
    for p in &c.bgp_peers {
        let _ = write!(out, "---\n{}", yaml(p));
    }
    for a in &c.bgp_advertisements {
        let _ = write!(out, "---\n{}", yaml(a));
    }
    out
}

/// Service annotation patches: JSON merge patches (`null` removes a key), one document each.
pub fn service_patches(c: &Conversion) -> String {
    let mut out = String::from(
        "# Service annotation patches written by `ferrolbctl convert`. Each document is a JSON merge patch\n\
         # (null removes an annotation). Apply one with:\n\
         #   kubectl -n NAMESPACE patch service NAME --type merge --patch-file FILE\n\
         # or all of them with `kubectl apply -f` (client-side apply also removes keys set to null).\n",
    );
    for p in &c.service_patches {
        let _ = write!(out, "---\n{}", yaml(p));
    }
    out
}

/// Manifests, then the Service patches when there are any: the single stream written to stdout
/// or to a file.
pub fn stream(c: &Conversion) -> String {
    let mut out = manifests(c);
    if !c.service_patches.is_empty() {
        out.push_str(&service_patches(c));
    }
    out
}

/// Chart values with the load-balancer classes the migration needs (`loadBalancerClasses`),
/// with the equivalent flags in a comment.
pub fn values(c: &Conversion) -> String {
    let extra: Vec<&str> = c.classes.extra().collect();
    let mut out = String::from(
        "# FerroLB chart values written by `ferrolbctl convert`: the load-balancer classes FerroLB must serve\n\
         # besides ferrolb.io/l2 (always served) and Services without a class, so that Services of these\n\
         # classes are taken over as they are. Pass with `helm install -f ferrolb-values.yaml`, or give both\n\
         # ferrolb-ipam and ferrolb-announcer the flag:\n",
    );
    if extra.is_empty() {
        out.push_str("#   (none needed)\nloadBalancerClasses: []\n");
    } else {
        let _ = writeln!(out, "#   --load-balancer-classes={}", extra.join(","));
        out.push_str("loadBalancerClasses:\n");
        for class in extra {
            let _ = writeln!(out, "  - {class}");
        }
    }
    out
}

/// The report in the chosen format.
pub fn report(c: &Conversion, format: ReportFormat) -> String {
    match format {
        ReportFormat::Text => c.report.to_text(),
        ReportFormat::Json => c.report.to_json(),
    }
}

/// Writes `ferrolb.yaml`, `ferrolb-values.yaml`, `service-patches.yaml` (when there are patches)
/// and `report.txt` or `report.json` into `dir`, creating it. Returns the paths written.
pub fn write_dir(c: &Conversion, dir: &Path, format: ReportFormat) -> std::io::Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    let mut put = |name: &str, text: String| -> std::io::Result<()> {
        let p = dir.join(name);
        std::fs::write(&p, text)?;
        written.push(p.display().to_string());
        Ok(())
    };
    put("ferrolb.yaml", manifests(c))?;
    put("ferrolb-values.yaml", values(c))?;
    if !c.service_patches.is_empty() {
        put("service-patches.yaml", service_patches(c))?;
    }
    let name = match format {
        ReportFormat::Text => "report.txt",
        ReportFormat::Json => "report.json",
    };
    put(name, report(c, format))?;
    Ok(written)
}
