//! `ferrolbctl`: FerroLB's command line. `convert` turns MetalLB, Deckhouse and Cilium
//! configuration into FerroLB objects, with a report of every field.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use ferrolb_ctl::input::{DocumentSource, FileSource};
use ferrolb_ctl::output::{self, ReportFormat};
use ferrolb_ctl::{InputErrors, Options};

/// FerroLB's command line.
#[derive(Debug, Parser)]
#[command(name = "ferrolbctl", version, about = "FerroLB's command line: migrate to FerroLB and inspect it")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Convert MetalLB, Deckhouse and Cilium load-balancer configuration to FerroLB manifests.
    ///
    /// Reads MetalLB CRDs (IPAddressPool, L2Advertisement, AddressPool; BGP kinds are reported as
    /// not converted), MetalLB's legacy ConfigMap, Helm values with configInline, Deckhouse's
    /// metallb ModuleConfig and MetalLoadBalancerClass, Cilium's CiliumLoadBalancerIPPool and
    /// CiliumL2AnnouncementPolicy, Services (their load-balancer annotations and current
    /// addresses) and Namespaces (to resolve MetalLB namespaceSelectors).
    ///
    /// Exit codes: 0 converted; 1 with --check when something was approximated or not converted;
    /// 2 invalid input (the message names file, document and field).
    Convert(ConvertArgs),
}

#[derive(Debug, clap::Args)]
struct ConvertArgs {
    /// Input file, directory (searched recursively for *.yaml, *.yml, *.json) or `-` for stdin.
    /// Repeat for several inputs.
    #[arg(short = 'f', long = "filename", value_name = "PATH", required_unless_present = "from_cluster")]
    filenames: Vec<PathBuf>,

    /// Read the source objects from the live cluster instead of files (not available yet: it
    /// comes with the kube client; export with `kubectl get ... -o yaml` and use -f meanwhile).
    #[arg(long, env = "FERROLB_FROM_CLUSTER")]
    from_cluster: bool,

    /// Where to write: a directory (existing, or a path ending in `/`) receives ferrolb.yaml,
    /// service-patches.yaml and report.txt/report.json; any other path receives the manifests
    /// (and patches), with the report on stderr. Default: manifests on stdout, report on stderr.
    #[arg(short = 'o', long, value_name = "DIR|FILE", env = "FERROLB_OUTPUT")]
    output: Option<PathBuf>,

    /// Report format.
    #[arg(long, value_enum, default_value_t = ReportArg::Text, env = "FERROLB_REPORT")]
    report: ReportArg,

    /// Also write the report to this file (instead of stderr).
    #[arg(long, value_name = "FILE")]
    report_file: Option<PathBuf>,

    /// Emit Service patches that replace MetalLB/Cilium/Deckhouse annotations with ferrolb.io/*
    /// ones. Without it the old annotations are kept (FerroLB honours them) and only references
    /// to renamed pools are patched.
    #[arg(long, env = "FERROLB_REWRITE_ANNOTATIONS")]
    rewrite_annotations: bool,

    /// Exit with code 1 when any field was converted approximately or not at all (for CI).
    #[arg(long)]
    check: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ReportArg {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Convert(args) => match convert(args) {
            Ok(code) => code,
            Err(e) => {
                match e.downcast_ref::<InputErrors>() {
                    Some(errors) => eprintln!("{errors}"),
                    None => eprintln!("error: {e:#}"),
                }
                ExitCode::from(2)
            }
        },
    }
}

fn convert(args: ConvertArgs) -> anyhow::Result<ExitCode> {
    if args.from_cluster {
        return Err(ferrolb_ctl::InputError::Unsupported(
            "--from-cluster is not available in this build yet; export the objects with `kubectl get <kinds> -A -o yaml` and pass them with -f"
                .into(),
        )
        .into());
    }
    let format = match args.report {
        ReportArg::Text => ReportFormat::Text,
        ReportArg::Json => ReportFormat::Json,
    };
    let docs = FileSource::new(args.filenames, std::io::stdin().lock()).documents()?;
    let opts = Options { rewrite_annotations: args.rewrite_annotations };
    let conversion = ferrolb_ctl::convert(&docs, &opts)?;
    let report = output::report(&conversion, format);

    let to_dir =
        args.output.as_ref().filter(|o| o.is_dir() || o.as_os_str().to_string_lossy().ends_with('/'));
    match (&args.output, to_dir) {
        (_, Some(dir)) => {
            for path in output::write_dir(&conversion, dir, format)
                .with_context(|| format!("writing {}", dir.display()))?
            {
                eprintln!("wrote {path}");
            }
        }
        (Some(file), None) => {
            std::fs::write(file, output::stream(&conversion))
                .with_context(|| format!("writing {}", file.display()))?;
            eprintln!("wrote {}", file.display());
        }
        (None, None) => {
            std::io::stdout()
                .lock()
                .write_all(output::stream(&conversion).as_bytes())
                .context("writing stdout")?;
        }
    }
    match &args.report_file {
        Some(f) => std::fs::write(f, &report).with_context(|| format!("writing {}", f.display()))?,
        None if to_dir.is_none() => eprint!("{report}"),
        None => {}
    }
    if args.check && conversion.report.needs_attention() {
        eprintln!("check failed: some fields were converted approximately or not at all (see the report)");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
