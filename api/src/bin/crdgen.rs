//! Writes FerroLB's CRD manifests to `helm/ferrolb/files/crds/` (or the directory given as argument).

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../helm/ferrolb/files/crds"));
    std::fs::create_dir_all(&dir)?;
    for crd in ferrolb_api::crd::all() {
        let path = dir.join(ferrolb_api::crd::file_name(&crd));
        std::fs::write(&path, ferrolb_api::crd::to_yaml(&crd))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
