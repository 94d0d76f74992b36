//! Helpers every lab benchmark shares: the lab guard, root and binary checks, Ctrl-C, load; and in
//! [`service`], the Service under test of the failover benches.

pub mod service;

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use anyhow::{Context, Result, bail};
use ferrolb_lab::{INTERRUPTED, Lab, cluster};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};

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

/// The lab's binaries: next to the bench's executable, or in `FERROLB_BENCH_BIN_DIR` (for a build
/// with other features, or a wrapper script that runs the announcer under a heap profiler; see
/// docs/benchmarks.md, "Announcer footprint in the lab").
pub fn binaries() -> Result<(PathBuf, PathBuf)> {
    let dir = match std::env::var_os("FERROLB_BENCH_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => cluster::default_bin_dir()?,
    };
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

/// Whether `cargo bench` runs this bench (it passes `--bench`); under `cargo test --all-targets` (CI)
/// the benches run at smoke size (same code, small numbers) unless the environment says otherwise.
pub fn full_run() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// The command line's options as (name, value) pairs, from `--name value` or `--name=value` (every
/// bench option takes a value); `--bench` and bare words (cargo's filter) are skipped.
pub fn options() -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        if arg == "--bench" || !arg.starts_with("--") {
            continue;
        }
        out.push(match arg.split_once('=') {
            Some((name, value)) => (name.to_owned(), value.to_owned()),
            None => {
                let value = it.next().with_context(|| format!("{arg} needs a value"))?;
                (arg, value)
            }
        });
    }
    Ok(out)
}

/// Creates pool `bench` with the one address `block` (a `blocks` entry: `{"cidr": ...}` or
/// `{"start": ..., "stop": ...}`) and policy `bench` announcing on `eth0`.
pub async fn create_pool_and_policy(client: kube::Client, block: serde_json::Value) -> Result<()> {
    let pool: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "ferrolb.io/v1alpha1", "kind": "LoadBalancerIPPool",
        "metadata": {"name": "bench"},
        "spec": {"blocks": [block]},
    }))?;
    cr_api(client.clone(), "LoadBalancerIPPool", "loadbalancerippools")
        .create(&PostParams::default(), &pool)
        .await
        .context("creating the pool")?;
    let policy: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "ferrolb.io/v1alpha1", "kind": "L2AnnouncementPolicy",
        "metadata": {"name": "bench"},
        "spec": {"interfaces": ["^eth0$"]},
    }))?;
    cr_api(client, "L2AnnouncementPolicy", "l2announcementpolicies")
        .create(&PostParams::default(), &policy)
        .await
        .context("creating the policy")?;
    Ok(())
}

/// Every lab bench's start: root (it builds network namespaces), the binaries, Ctrl-C handling.
/// Returns the binaries' directory and `ferrolb-lab`.
pub fn start(bench: &str) -> Result<(PathBuf, PathBuf)> {
    if !is_root() {
        bail!("the {bench} bench builds network namespaces: run it as root");
    }
    let found = binaries()?;
    ferrolb_lab::install_interrupt_handler()?;
    Ok(found)
}

/// Copies the lab's process logs to `keep` (emptied first), for a look after the lab is gone.
pub fn keep_logs(lab: &Lab, keep: &std::path::Path) {
    let _ = std::fs::remove_dir_all(keep);
    let _ = std::fs::create_dir_all(keep);
    if let Ok(rd) = std::fs::read_dir(lab.log_dir()) {
        for e in rd.flatten() {
            if e.path().extension().is_some_and(|x| x == "log") {
                let _ = std::fs::copy(e.path(), keep.join(e.file_name()));
            }
        }
    }
}

/// Nearest-rank percentile of sorted values.
#[allow(dead_code)] // not every bench reports percentiles
pub fn pct(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

/// The values, sorted (NaN last).
#[allow(dead_code)] // not every bench reports percentiles
pub fn sorted(values: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    v
}
