//! Loading manifests straight into the store at start (`kube-sim --apply crds/`), so a demo or a
//! test can begin with CRDs in place without a client round trip.

use std::path::Path;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::sim::{Sim, WriteOptions};

/// Creates every object in `path` (a YAML/JSON file or a directory of them, in name order).
/// Returns how many objects were created.
pub fn apply_path(sim: &Sim, path: &Path) -> anyhow::Result<usize> {
    let mut files = Vec::new();
    if path.is_dir() {
        for e in std::fs::read_dir(path).with_context(|| format!("reading {}", path.display()))? {
            let p = e?.path();
            if p.extension().is_some_and(|x| x == "yaml" || x == "yml" || x == "json") {
                files.push(p);
            }
        }
        files.sort();
    } else {
        files.push(path.to_path_buf());
    }
    let mut n = 0;
    for f in files {
        let text = std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(&text).with_context(|| format!("parsing {}", f.display()))?;
        for (i, doc) in docs.into_iter().filter(|d| !d.is_null()).enumerate() {
            create(sim, &doc).with_context(|| format!("{}: document {}", f.display(), i + 1))?;
            n += 1;
        }
    }
    Ok(n)
}

/// Creates one object, finding its resource by apiVersion and kind.
pub fn create(sim: &Sim, obj: &Value) -> anyhow::Result<()> {
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    let kind = obj["kind"].as_str().unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let Some(rt) =
        sim.registry().all().find(|t| t.group == group && t.version == version && t.kind == kind).cloned()
    else {
        bail!("no resource serves {api_version} {kind}");
    };
    let ns = rt
        .namespaced
        .then(|| obj.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("default"));
    let opts = WriteOptions { manager: "kube-sim".into(), ..Default::default() };
    sim.with(|s| s.create(&rt, ns, obj.clone(), &opts)).map_err(|e| anyhow::anyhow!("{}", e.message))?;
    Ok(())
}
