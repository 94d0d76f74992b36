//! `docs/configuration.md` is generated from the code: every binary's `--help` (flags with their
//! environment variables and defaults), every CRD field (from the generated schemas), every
//! annotation, label, condition, reason and taint name (from `api/src/names.rs` and its doc
//! comments), every metric (from the binaries' metric descriptions) and the chart's values. This test
//! fails when the file differs from what the code generates; regenerate with
//! `FERROLB_BLESS=1 cargo test -p ferrolb-conformance --test docs`.
//!
//! It also fails on a metric name that the code records but nobody describes, so a new metric
//! cannot reach `/metrics` without a `# HELP` line and a row in the reference.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use ferrolb_lab::cluster::{self, Binary};
use serde_json::Value;

const CTL: Binary = Binary { name: "ferrolbctl", package: "ferrolb-ctl" };

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn configuration_reference_matches_the_code() {
    let generated = generate();
    let path = root().join("docs/configuration.md");
    if std::env::var_os("FERROLB_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    if current != generated {
        let line = current.lines().zip(generated.lines()).position(|(a, b)| a != b);
        panic!(
            "docs/configuration.md is stale (first difference at line {}): regenerate it with \
             `FERROLB_BLESS=1 cargo test -p ferrolb-conformance --test docs`",
            line.map_or_else(|| "the end".to_string(), |l| (l + 1).to_string())
        );
    }
}

#[test]
fn every_recorded_metric_is_described() {
    let described: BTreeSet<String> = described_metrics().into_iter().map(|m| m.name).collect();
    let recorded = recorded_metric_names();
    assert!(recorded.len() >= 20, "the source scan found only {recorded:?}");
    let undescribed: Vec<_> = recorded.difference(&described).collect();
    assert!(undescribed.is_empty(), "metrics recorded but not described: {undescribed:?}");
    let unused: Vec<_> = described.difference(&recorded).collect();
    assert!(unused.is_empty(), "metrics described but never recorded: {unused:?}");
}

fn generate() -> String {
    let mut out = String::new();
    out.push_str(
        "# Configuration reference\n\n\
         <!-- Generated from the code by `FERROLB_BLESS=1 cargo test -p ferrolb-conformance --test docs`; \
         conformance/tests/docs.rs fails when this file is stale. Edit the sources, not this file. -->\n\n\
         Every flag also reads the environment variable shown beside it. Durations use humantime syntax \
         (`500ms`, `15s`).\n\n\
         - [Command lines](#command-lines)\n\
         - [Custom resources](#custom-resources)\n\
         - [Names: annotations, labels, conditions, reasons, taints](#names)\n\
         - [Metrics](#metrics)\n\
         - [Helm values](#helm-values)\n\n",
    );
    out.push_str("## Command lines\n\n");
    let dir = cluster::default_bin_dir().unwrap();
    for bin in [cluster::IPAM, cluster::ANNOUNCER, cluster::NIC_AGENT] {
        let exe = cluster::find_binary(&dir, bin).unwrap();
        let _ = write!(out, "### `{}`\n\n```text\n{}```\n\n", bin.name, help(&exe, &[]));
    }
    let ctl = cluster::find_binary(&dir, CTL).unwrap();
    let top = help(&ctl, &[]);
    let _ = write!(out, "### `ferrolbctl`\n\n```text\n{top}```\n\n");
    for sub in subcommands(&top) {
        let _ = write!(out, "#### `ferrolbctl {sub}`\n\n```text\n{}```\n\n", help(&ctl, &[&sub]));
    }
    out.push_str("## Custom resources\n\n");
    for crd in ferrolb_api::crd::all() {
        let crd = serde_json::to_value(&crd).unwrap();
        let spec = &crd["spec"];
        for version in spec["versions"].as_array().unwrap() {
            let _ = write!(
                out,
                "### {} (`{}/{}`, {} scope, short names: {})\n\n| field | type | description |\n|---|---|---|\n",
                spec["names"]["kind"].as_str().unwrap(),
                spec["group"].as_str().unwrap(),
                version["name"].as_str().unwrap(),
                spec["scope"].as_str().unwrap(),
                spec["names"]["shortNames"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "none".into()),
            );
            let schema = &version["schema"]["openAPIV3Schema"]["properties"];
            for part in ["spec", "status"] {
                if let Some(s) = schema.get(part) {
                    fields(&mut out, part, s, false);
                }
            }
            out.push('\n');
        }
    }
    out.push_str("## Names\n\nFrom `api/src/names.rs`.\n\n");
    names(&mut out, &std::fs::read_to_string(root().join("api/src/names.rs")).unwrap());
    out.push_str("## Metrics\n\nServed on `--metrics-addr` at `/metrics` (Prometheus text format).\n\n");
    out.push_str("| metric | type | description |\n|---|---|---|\n");
    for m in described_metrics() {
        let unit = m.unit.map(|u| format!(" ({})", u.as_str())).unwrap_or_default();
        let _ = writeln!(out, "| `{}` | {}{unit} | {} |", m.name, m.kind, m.description);
    }
    out.push_str(
        "\n## Helm values\n\nThe chart's `values.yaml` (`helm/ferrolb/values.yaml`), with its comments:\n\n",
    );
    match std::fs::read_to_string(root().join("helm/ferrolb/values.yaml")) {
        Ok(v) => {
            let _ = write!(out, "```yaml\n{}\n```\n", v.trim_end());
        }
        Err(_) => out.push_str("(no chart values yet)\n"),
    }
    out
}

fn help(exe: &Path, args: &[&str]) -> String {
    let out = Command::new(exe).args(args).arg("--help").env_clear().output().unwrap();
    assert!(
        out.status.success(),
        "{} {args:?} --help failed: {}",
        exe.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    // Without a terminal clap does not wrap, so the text does not depend on who runs the test;
    // trailing blanks are dropped so the Markdown has none.
    text.lines().map(|l| l.trim_end().to_string() + "\n").collect()
}

/// The subcommand names of a clap `--help`'s "Commands:" section (without `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

/// One table row per field of an object schema, depth-first, with dotted paths (`[]` for array
/// items).
fn fields(out: &mut String, path: &str, schema: &Value, required: bool) {
    let ty = type_of(schema);
    let mut desc = schema["description"].as_str().unwrap_or("").replace('\n', " ").replace('|', "\\|");
    if let Some(values) = schema["enum"].as_array() {
        let values: Vec<String> = values.iter().map(|v| format!("`{}`", v.as_str().unwrap_or("?"))).collect();
        let _ = write!(desc, " One of {}.", values.join(", "));
    }
    if required {
        desc.push_str(" Required.");
    }
    let _ = writeln!(out, "| `{path}` | {ty} | {} |", desc.trim());
    let req: BTreeSet<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if let Some(props) = schema["properties"].as_object() {
        for (name, s) in props {
            fields(out, &format!("{path}.{name}"), s, req.contains(name.as_str()));
        }
    }
    if let Some(items) = schema.get("items").filter(|i| i.get("properties").is_some()) {
        let req: BTreeSet<&str> = items["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for (name, s) in items["properties"].as_object().unwrap() {
            fields(out, &format!("{path}[].{name}"), s, req.contains(name.as_str()));
        }
    }
}

fn type_of(schema: &Value) -> String {
    if schema["x-kubernetes-int-or-string"].as_bool() == Some(true) {
        return "int or string".into();
    }
    match schema["type"].as_str() {
        Some("array") => format!("array of {}", type_of(&schema["items"])),
        Some("object")
            if schema.get("properties").is_none() && schema.get("additionalProperties").is_some() =>
        {
            format!("map of {}", type_of(&schema["additionalProperties"]))
        }
        Some(t) => match schema["format"].as_str() {
            Some(f) => format!("{t} ({f})"),
            None => t.to_string(),
        },
        None if schema.get("anyOf").is_some() || schema.get("oneOf").is_some() => "see description".into(),
        None => "any".into(),
    }
}

/// Tables of the string constants of `names.rs`, one per module (in order of first appearance),
/// with their doc comments.
fn names(out: &mut String, source: &str) {
    let mut tables: Vec<(String, Vec<String>)> = Vec::new();
    let mut module: Vec<String> = Vec::new();
    let mut doc: Vec<String> = Vec::new();
    let mut pending = String::new();
    for line in source.lines() {
        let t = line.trim();
        if !pending.is_empty() {
            pending.push_str(t);
            if !t.ends_with(';') {
                continue;
            }
        } else if let Some(d) = t.strip_prefix("///") {
            doc.push(d.trim().to_string());
            continue;
        } else if let Some(m) = t.strip_prefix("pub mod ").and_then(|m| m.strip_suffix(" {")) {
            module.push(m.to_string());
            doc.clear();
            continue;
        } else if t == "}" {
            module.pop();
            doc.clear();
            continue;
        } else if t.starts_with("pub const ") && t.contains(": &str") {
            pending = t.to_string();
            if !t.ends_with(';') {
                continue;
            }
        } else {
            if !t.starts_with("#[") {
                doc.clear();
            }
            continue;
        }
        let decl = std::mem::take(&mut pending);
        let (Some(name), Some(value)) =
            (decl.strip_prefix("pub const ").and_then(|d| d.split(':').next()), decl.split('"').nth(1))
        else {
            continue;
        };
        let section = if module.is_empty() { "top level".to_string() } else { module.join("::") };
        let row = format!("| `{name}` | `{value}` | {} |", doc.join(" ").replace('|', "\\|"));
        match tables.iter_mut().find(|(s, _)| *s == section) {
            Some((_, rows)) => rows.push(row),
            None => tables.push((section, vec![row])),
        }
        doc.clear();
    }
    for (section, rows) in tables {
        let _ = write!(
            out,
            "### `{section}`\n\n| name | value | meaning |\n|---|---|---|\n{}\n\n",
            rows.join("\n")
        );
    }
}

struct Described {
    name: String,
    kind: &'static str,
    unit: Option<metrics::Unit>,
    description: String,
}

/// Captures metric descriptions; registers nothing.
#[derive(Default)]
struct Capture(Mutex<Vec<Described>>);

impl Capture {
    fn push(
        &self,
        key: metrics::KeyName,
        kind: &'static str,
        unit: Option<metrics::Unit>,
        d: metrics::SharedString,
    ) {
        let mut v = self.0.lock().unwrap();
        if !v.iter().any(|m| m.name == key.as_str()) {
            v.push(Described { name: key.as_str().to_string(), kind, unit, description: d.to_string() });
        }
    }
}

impl metrics::Recorder for Capture {
    fn describe_counter(&self, key: metrics::KeyName, unit: Option<metrics::Unit>, d: metrics::SharedString) {
        self.push(key, "counter", unit, d);
    }
    fn describe_gauge(&self, key: metrics::KeyName, unit: Option<metrics::Unit>, d: metrics::SharedString) {
        self.push(key, "gauge", unit, d);
    }
    fn describe_histogram(
        &self,
        key: metrics::KeyName,
        unit: Option<metrics::Unit>,
        d: metrics::SharedString,
    ) {
        self.push(key, "histogram", unit, d);
    }
    fn register_counter(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::noop()
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }
    fn register_histogram(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

/// What the binaries describe at start, sorted by name.
fn described_metrics() -> Vec<Described> {
    let capture = Capture::default();
    metrics::with_local_recorder(&capture, || {
        ferrolb_ipam::metrics::describe();
        ferrolb_l2announcer::metrics::describe();
        ferrolb_cni::agent::metrics::describe();
    });
    let mut v = capture.0.into_inner().unwrap();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// Every `"ferrolb_..."` string literal in the binaries' sources: the metric names they record
/// (test-only names, containing `_test_`, left out).
fn recorded_metric_names() -> BTreeSet<String> {
    let re = regex::Regex::new(r#""(ferrolb_[a-z0-9_]+)""#).unwrap();
    let mut names = BTreeSet::new();
    for dir in ["ipam/src", "l2announcer/src", "runtime/src", "cni-integration/src"] {
        let mut stack = vec![root().join(dir)];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    let text = std::fs::read_to_string(&p).unwrap();
                    for c in re.captures_iter(&text) {
                        if !c[1].contains("_test_") {
                            names.insert(c[1].to_string());
                        }
                    }
                }
            }
        }
    }
    names
}

// ---------------------------------------------------------------------------------------------
// The setup guides (cni-integration/docs/) and the pages they lean on: every FerroLB flag they
// name exists, every chart value they `--set` exists, every relative link resolves.

/// Pages checked: the guides, the crate's README and the user docs they link to.
fn guide_pages() -> Vec<PathBuf> {
    let mut pages: Vec<PathBuf> = std::fs::read_dir(root().join("cni-integration/docs"))
        .expect("cni-integration/docs")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    pages.sort();
    assert!(pages.len() >= 6, "the guides: {pages:?}");
    for extra in ["cni-integration/README.md", "docs/install-k3s.md", "README.md"] {
        pages.push(root().join(extra));
    }
    pages
}

/// The `--flags` of each FerroLB command line, from `--help`: `ferrolb-ipam`, `ferrolb-announcer`,
/// `ferrolb-nic-agent`, and `ferrolbctl <subcommand>` for each subcommand.
struct Flags(std::collections::BTreeMap<String, BTreeSet<String>>);

impl Flags {
    fn from_help() -> Self {
        let dir = cluster::default_bin_dir().unwrap();
        let mut map = std::collections::BTreeMap::new();
        for bin in [cluster::IPAM, cluster::ANNOUNCER, cluster::NIC_AGENT] {
            let exe = cluster::find_binary(&dir, bin).unwrap_or_else(|e| panic!("{e:#}"));
            map.insert(bin.name.to_string(), flags_of(&help(&exe, &[])));
        }
        let ctl = cluster::find_binary(&dir, CTL).unwrap_or_else(|e| panic!("{e:#}"));
        for sub in subcommands(&help(&ctl, &[])) {
            map.insert(format!("ferrolbctl {sub}"), flags_of(&help(&ctl, &[&sub])));
        }
        Self(map)
    }

    fn any_has(&self, flag: &str) -> bool {
        self.0.values().any(|f| f.contains(flag))
    }
}

fn flags_of(help: &str) -> BTreeSet<String> {
    let re = regex::Regex::new(r"--[a-z][a-z0-9-]*").unwrap();
    re.find_iter(help).map(|m| m.as_str().to_string()).collect()
}

/// Flags of other programs that the guides name in prose (a code span of its own): kubectl's,
/// k3s's and kube-proxy's. A FerroLB flag is never listed here.
const FOREIGN_FLAGS: &[&str] =
    &["--disable", "--kube-proxy-arg", "--nodeport-addresses", "--set", "--reuse-values"];

/// What is wrong in one page's text (`name` for the messages).
fn check_page(name: &str, text: &str, flags: &Flags, values: &ValuesPaths) -> Vec<String> {
    let mut problems = Vec::new();
    let (blocks, prose) = split_code(text);
    // Commands: every line of a code block (continuations joined) and every code span.
    let spans = regex::Regex::new(r"`([^`]+)`").unwrap();
    let mut commands: Vec<String> = blocks.iter().flat_map(|b| joined_lines(b)).collect();
    let inline: Vec<String> = spans.captures_iter(&prose).map(|c| c[1].replace('\n', " ")).collect();
    commands.extend(inline.iter().cloned());
    for command in &commands {
        for segment in command.split(['|', ';']).flat_map(|s| s.split("&&")) {
            let segment = strip_comment(segment);
            let tokens: Vec<&str> = segment.split_whitespace().collect();
            check_segment(name, &tokens, flags, values, &mut problems);
        }
    }
    // A code span that is only a flag: some FerroLB command line has it, or it is another program's.
    for span in &inline {
        let first = span.split_whitespace().next().unwrap_or("");
        let flag = first.split('=').next().unwrap();
        if flag.starts_with("--") && flag.len() > 2 && !flags.any_has(flag) && !FOREIGN_FLAGS.contains(&flag)
        {
            problems.push(format!("{name}: `{span}`: no FerroLB command line has {flag}"));
        }
    }
    // Relative links resolve from the page's directory.
    let links = regex::Regex::new(r"\]\(([^)\s]+)\)").unwrap();
    let dir = Path::new(name).parent().unwrap_or(Path::new(""));
    for c in links.captures_iter(&prose) {
        let target = c[1].split('#').next().unwrap();
        if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        if !root().join(dir).join(target).exists() {
            problems.push(format!("{name}: link to {target}, which does not exist"));
        }
    }
    problems
}

/// The token list of one shell command: a FerroLB binary's flags after its name, `helm --set`
/// keys, and the chart files named with `-f`.
fn check_segment(
    name: &str,
    tokens: &[&str],
    flags: &Flags,
    values: &ValuesPaths,
    problems: &mut Vec<String>,
) {
    let program = |t: &str| Path::new(t).file_name().and_then(|n| n.to_str()).unwrap_or("").to_string();
    if let Some(at) = tokens.iter().position(|t| {
        let p = program(t);
        p.starts_with("ferrolb") && (flags.0.contains_key(&p) || p == "ferrolbctl")
    }) {
        let mut command = program(tokens[at]);
        let mut rest = &tokens[at + 1..];
        if command == "ferrolbctl" {
            match rest.first().filter(|s| !s.starts_with('-')) {
                Some(sub) if flags.0.contains_key(&format!("ferrolbctl {sub}")) => {
                    command = format!("ferrolbctl {sub}");
                    rest = &rest[1..];
                }
                Some(sub) => {
                    problems.push(format!("{name}: `ferrolbctl {sub}`: no such subcommand"));
                    return;
                }
                None => return,
            }
        }
        let known = &flags.0[&command];
        for t in rest {
            let flag =
                t.split('=').next().unwrap().trim_matches(|c| matches!(c, '`' | ',' | '(' | ')' | '[' | ']'));
            if flag.len() > 2 && flag.starts_with("--") && !known.contains(flag) {
                problems.push(format!("{name}: `{}`: {command} has no flag {flag}", tokens.join(" ")));
            }
        }
    }
    if tokens.first() == Some(&"helm") {
        for pair in tokens.windows(2) {
            if pair[0] == "--set" {
                let key = pair[1].trim_matches('\'').split('=').next().unwrap();
                if !values.has(key) {
                    problems
                        .push(format!("{name}: `helm ... --set {}`: the chart has no value {key}", pair[1]));
                }
            }
            if pair[0] == "-f" && pair[1].starts_with("helm/") && !root().join(pair[1]).is_file() {
                problems.push(format!("{name}: `helm ... -f {}`: no such file", pair[1]));
            }
        }
    }
}

/// Fenced code blocks, and the text outside them.
fn split_code(text: &str) -> (Vec<String>, String) {
    let (mut blocks, mut prose, mut current) = (Vec::new(), String::new(), None::<String>);
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            match current.take() {
                Some(b) => blocks.push(b),
                None => current = Some(String::new()),
            }
            continue;
        }
        match &mut current {
            Some(b) => {
                b.push_str(line);
                b.push('\n');
            }
            None => {
                prose.push_str(line);
                prose.push('\n');
            }
        }
    }
    (blocks, prose)
}

/// The lines of a code block with `\`-continued lines joined.
fn joined_lines(block: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in block.lines() {
        match line.trim_end().strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    out
}

/// `segment` without a trailing shell comment (a `#` after whitespace).
fn strip_comment(segment: &str) -> &str {
    match segment.find(" #") {
        Some(i) => &segment[..i],
        None if segment.trim_start().starts_with('#') => "",
        None => segment,
    }
}

/// The dotted paths of the chart's values.yaml mappings, and which of them are lists.
struct ValuesPaths {
    paths: BTreeSet<String>,
    lists: BTreeSet<String>,
}

impl ValuesPaths {
    fn read() -> Self {
        let text = std::fs::read_to_string(root().join("helm/ferrolb/values.yaml")).unwrap();
        let key = regex::Regex::new(r"^(\s*)([A-Za-z][A-Za-z0-9]*):(.*)$").unwrap();
        let (mut paths, mut lists) = (BTreeSet::new(), BTreeSet::new());
        let mut stack: Vec<(usize, String)> = Vec::new();
        for line in text.lines() {
            let Some(c) = key.captures(line) else { continue };
            let indent = c[1].len();
            while stack.last().is_some_and(|(i, _)| *i >= indent) {
                stack.pop();
            }
            let path = stack.iter().map(|(_, k)| k.as_str()).chain([&c[2]]).collect::<Vec<_>>().join(".");
            let value = c[3].trim();
            if value.starts_with('[') || value.is_empty() {
                lists.insert(path.clone());
            }
            paths.insert(path.clone());
            stack.push((indent, c[2].to_string()));
        }
        Self { paths, lists }
    }

    /// Whether `key` (`a.b.c`, `a[0].b`) is a value of the chart: the path exists, or it goes
    /// into a list the chart has (whose items the schema checks).
    fn has(&self, key: &str) -> bool {
        let mut prefix = String::new();
        for part in key.split('.') {
            let (name, indexed) = match part.find('[') {
                Some(i) => (&part[..i], true),
                None => (part, false),
            };
            if !prefix.is_empty() {
                prefix.push('.');
            }
            prefix.push_str(name);
            if !self.paths.contains(&prefix) {
                return false;
            }
            if indexed {
                return self.lists.contains(&prefix);
            }
        }
        true
    }
}

#[test]
fn guides_name_only_flags_values_and_files_that_exist() {
    let flags = Flags::from_help();
    let values = ValuesPaths::read();
    let mut problems = Vec::new();
    let mut commands = 0;
    for page in guide_pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        commands += text.matches("ferrolb").count();
        let name = page.strip_prefix(root()).unwrap_or(&page).display().to_string();
        problems.extend(check_page(&name, &text, &flags, &values));
    }
    assert!(commands > 50, "the guides name FerroLB only {commands} times");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The instrument works: a mistyped flag of each kind, an unknown subcommand, chart value and
/// file, and a broken link are each reported.
#[test]
fn the_guide_check_finds_each_kind_of_mistake() {
    let flags = Flags::from_help();
    let values = ValuesPaths::read();
    let page = "cni-integration/docs/example.md";
    let cases = [
        (
            "```sh\nferrolb-announcer --grpc-tls-certificate x\n```\n",
            "ferrolb-announcer has no flag --grpc-tls-certificate",
        ),
        (
            "```sh\nkubectl exec p -- ferrolbctl announcements \\\n  --locale\n```\n",
            "ferrolbctl announcements has no flag --locale",
        ),
        ("Run `ferrolb-nic-agent --fence 5s`.\n", "ferrolb-nic-agent has no flag --fence"),
        ("With `--grpc-lisen`.\n", "no FerroLB command line has --grpc-lisen"),
        ("```sh\nferrolbctl whoowns 192.0.2.1\n```\n", "`ferrolbctl whoowns`: no such subcommand"),
        (
            "```sh\nhelm upgrade r helm/ferrolb --set nicAgent.enable=true\n```\n",
            "the chart has no value nicAgent.enable",
        ),
        ("```sh\nhelm install r helm/ferrolb -f helm/ferrolb/examples/nope.yaml\n```\n", "no such file"),
        ("See [the guide](nope.md).\n", "link to nope.md"),
    ];
    for (text, expect) in cases {
        let problems = check_page(page, text, &flags, &values);
        assert!(problems.iter().any(|p| p.contains(expect)), "{text:?}: {problems:?}");
    }
    // And the right spellings pass.
    let good = "```sh\nferrolb-announcer --datapath delegate --grpc-listen 0.0.0.0:7949\n\
                helm upgrade r helm/ferrolb --set 'ipPools[0].name=lan' --set nicAgent.enabled=true\n```\n\
                With `--fence-after`, `ferrolbctl who-owns 192.0.2.1 --socket /s`.\n";
    assert_eq!(check_page(page, good, &flags, &values), Vec::<String>::new());
}
