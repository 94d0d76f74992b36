//! Rendering the Helm chart (`helm/ferrolb`) without a helm binary: `hack/helm.py` drives Helm 4
//! through PyPI's helm-python-sdk, from the venv `hack/helm-venv.sh` prepares (hack/test.sh does).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The namespace the chart is rendered for.
pub const NAMESPACE: &str = "ferrolb-system";

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().expect("repository root")
}

pub fn chart() -> PathBuf {
    repo().join("helm/ferrolb")
}

/// The venv's Python: `FERROLB_HELM_PYTHON`, else `.venv-helm/bin/python`. Panics when neither is
/// there: the chart checks never skip.
pub fn python() -> PathBuf {
    let python = std::env::var_os("FERROLB_HELM_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv-helm/bin/python"));
    assert!(
        python.is_file(),
        "the Helm chart checks need the venv with helm-python-sdk and kubernetes-validate, and {} does \
         not exist: run `hack/helm-venv.sh` (hack/test.sh does) and export FERROLB_HELM_PYTHON=$(hack/helm-venv.sh)",
        python.display()
    );
    python
}

/// Runs `hack/helm.py` with `args`.
pub fn driver(args: &[&str]) -> Output {
    let out = Command::new(python())
        .arg(repo().join("hack/helm.py"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running hack/helm.py {args:?}: {e}"));
    // The driver imports the SDK lazily: a broken venv shows up as a traceback, never as a pass.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("ModuleNotFoundError"), "the helm venv is incomplete: {stderr}");
    out
}

/// Renders the chart in [`NAMESPACE`] with the values files `values` (and `extra` arguments of
/// `hack/helm.py render`): every object, or Helm's error message.
pub fn try_render(values: &[PathBuf], extra: &[String]) -> Result<Vec<Value>, String> {
    let mut args =
        vec!["render".to_owned(), chart().display().to_string(), "--namespace".into(), NAMESPACE.into()];
    for v in values {
        args.push("-f".into());
        args.push(v.display().to_string());
    }
    args.extend(extra.iter().cloned());
    let out = driver(&args.iter().map(String::as_str).collect::<Vec<_>>());
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let items: Vec<Value> = serde_json::from_slice(&out.stdout).expect("render prints JSON");
    Ok(items.into_iter().map(|i| i["object"].clone()).collect())
}
