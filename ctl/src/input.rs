//! Reading inputs: files, directories (recursively: `*.yaml`, `*.yml`, `*.json`) and stdin, split
//! into documents, with `List` objects (`kubectl get -o yaml`) flattened into their items.
//!
//! The conversion only sees [`Document`]s: reading from the live cluster (`--from-cluster`,
//! [`crate::cluster`]) is another [`DocumentSource`].

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{InputError, InputErrors, Origin};

/// One object to convert (or to use as context, such as a Namespace).
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub origin: Origin,
    pub value: Value,
}

/// Text of one input, named as the user named it.
#[derive(Debug, Clone)]
pub struct SourceText {
    pub name: String,
    pub text: String,
}

/// Where the documents come from.
pub trait DocumentSource {
    /// Every document, in a stable order.
    fn documents(&mut self) -> Result<Vec<Document>, InputErrors>;
}

/// Files, directories and stdin (`-`), as given with `-f`.
#[derive(Debug)]
pub struct FileSource<R> {
    paths: Vec<PathBuf>,
    stdin: Option<R>,
}

impl<R: Read> FileSource<R> {
    /// `paths` in the order given; `stdin` is read when one path is `-`.
    pub fn new(paths: Vec<PathBuf>, stdin: R) -> Self {
        Self { paths, stdin: Some(stdin) }
    }
}

impl<R: Read> DocumentSource for FileSource<R> {
    fn documents(&mut self) -> Result<Vec<Document>, InputErrors> {
        let mut texts = Vec::new();
        let mut errors = Vec::new();
        for p in &self.paths {
            if p.as_os_str() == "-" {
                let mut text = String::new();
                match self.stdin.take() {
                    Some(mut r) => {
                        if let Err(source) = r.read_to_string(&mut text) {
                            errors.push(InputError::Io { path: "-".into(), source });
                        }
                    }
                    None => errors.push(InputError::Io {
                        path: "-".into(),
                        source: std::io::Error::other("stdin given twice"),
                    }),
                }
                texts.push(SourceText { name: "-".into(), text });
                continue;
            }
            match collect_files(p) {
                Ok(files) => {
                    for f in files {
                        match std::fs::read(&f) {
                            Ok(bytes) => texts.push(SourceText {
                                name: f.display().to_string(),
                                text: String::from_utf8_lossy(&bytes).into_owned(),
                            }),
                            Err(source) => {
                                errors.push(InputError::Io { path: f.display().to_string(), source })
                            }
                        }
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        let mut docs = Vec::new();
        for t in &texts {
            match parse_documents(t) {
                Ok(d) => docs.extend(d),
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() { Ok(docs) } else { Err(InputErrors(errors)) }
    }
}

/// A file as itself; a directory as every `*.yaml`, `*.yml` and `*.json` below it, sorted by
/// path so the output does not depend on the file system's order.
pub fn collect_files(path: &Path) -> Result<Vec<PathBuf>, InputError> {
    let io = |source| InputError::Io { path: path.display().to_string(), source };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir)
            .map_err(|source| InputError::Io { path: dir.display().to_string(), source })?;
        for entry in entries {
            let entry = entry.map_err(|source| InputError::Io { path: dir.display().to_string(), source })?;
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json")) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Splits one input into documents. JSON files (by name, or text starting with `{`/`[`) are
/// read as JSON, everything else as a YAML stream.
pub fn parse_documents(src: &SourceText) -> Result<Vec<Document>, InputError> {
    let trimmed = src.text.trim_start();
    let values: Vec<Value> =
        if src.name.ends_with(".json") || trimmed.starts_with('{') || trimmed.starts_with('[') {
            match serde_json::from_str::<Value>(&src.text) {
                Ok(Value::Array(items)) => items,
                Ok(v) => vec![v],
                Err(e) => {
                    return Err(InputError::Syntax {
                        file: src.name.clone(),
                        document: 1,
                        line: e.line() as u64,
                        format: "JSON",
                        message: e.to_string(),
                    });
                }
            }
        } else {
            match serde_saphyr::from_multiple::<Value>(&src.text) {
                Ok(v) => v,
                Err(e) => {
                    let line = e.location().map(|l| l.line()).unwrap_or(0);
                    return Err(InputError::Syntax {
                        file: src.name.clone(),
                        document: document_at_line(&src.text, line),
                        line,
                        format: "YAML",
                        message: first_line(&e.to_string()),
                    });
                }
            }
        };
    let mut docs = Vec::new();
    for (i, value) in values.into_iter().enumerate() {
        let origin = Origin { from_cluster: false, file: src.name.clone(), document: i + 1, item: None };
        flatten(value, origin, &mut docs);
    }
    Ok(docs)
}

/// `kind: List` (and `FooList`) objects hold their objects in `items`.
fn flatten(value: Value, origin: Origin, out: &mut Vec<Document>) {
    let is_list = value.get("kind").and_then(Value::as_str).is_some_and(|k| k.ends_with("List"))
        && value.get("items").is_some_and(Value::is_array);
    if !is_list {
        out.push(Document { origin, value });
        return;
    }
    let Value::Object(mut m) = value else { unreachable!("checked above") };
    let Some(Value::Array(items)) = m.remove("items") else { unreachable!("checked above") };
    for (i, item) in items.into_iter().enumerate() {
        let i = u32::try_from(i).unwrap_or(u32::MAX);
        out.push(Document { origin: Origin { item: Some(i), ..origin.clone() }, value: item });
    }
}

/// The 1-based document a line falls in, counting `---` separators before it. Only used to
/// point at a syntax error, where the parser gives a line but not a document.
fn document_at_line(text: &str, line: u64) -> usize {
    let mut doc = 1;
    let mut seen_content = false;
    for (i, l) in text.lines().enumerate() {
        if (i as u64) + 1 >= line {
            break;
        }
        if l.starts_with("---") {
            if seen_content {
                doc += 1;
            }
            seen_content = false;
        } else if !l.trim().is_empty() && !l.trim_start().starts_with('#') {
            seen_content = true;
        }
    }
    doc
}

fn first_line(s: &str) -> String {
    let line = s.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    line.strip_prefix("error: ").unwrap_or(line).to_string()
}
