//! Helpers every lab benchmark shares: the lab guard, root and binary checks, Ctrl-C, load.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use anyhow::{Result, bail};
use ferrolb_lab::{INTERRUPTED, Lab, cluster};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};

/// Removes the lab when dropped (also on errors and panics).
pub struct LabGuard(pub Lab);

impl Drop for LabGuard {
    fn drop(&mut self) {
        INTERRUPTED.store(false, Ordering::SeqCst);
        if let Err(e) = ferrolb_lab::down(&self.0) {
            eprintln!("bench: removing lab {} failed: {e:#}", self.0.prefix);
        }
    }
}

pub fn check_interrupted() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}

pub fn binaries() -> Result<(PathBuf, PathBuf)> {
    let dir = cluster::default_bin_dir()?;
    let build = "cargo build --release -p kube-sim -p ferrolb-ipam -p ferrolb-l2announcer -p ferrolb-lab";
    for b in [cluster::KUBE_SIM, cluster::IPAM, cluster::ANNOUNCER, cluster::LAB] {
        if cluster::find_binary(&dir, b).is_err() {
            bail!("missing {} in {}: build the lab's binaries first with `{build}`", b.name, dir.display());
        }
    }
    Ok((dir.clone(), dir.join(cluster::LAB.name)))
}

/// Effective UID 0 (from /proc/self/status).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("Uid:")).map(|v| v.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

pub fn cr_api(client: kube::Client, kind: &str, plural: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(ferrolb_api::names::GROUP, ferrolb_api::names::VERSION, kind);
    Api::all_with(client, &ApiResource::from_gvk_with_plural(&gvk, plural))
}
