//! Input errors: everything that stops a conversion (exit code 2). Each names the file, the
//! document and the field, so the user can fix the input without guessing.

use std::fmt;

use thiserror::Error;

/// Where a document came from: a file (or `-` for stdin), its 1-based position in the file, and
/// its position inside a `List` when it was one of the items; or the live cluster.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Origin {
    /// Read from the live cluster (`--from-cluster`): `document` only orders the objects, and the
    /// origin shows as `cluster` (the object's kind and name say the rest).
    pub from_cluster: bool,
    /// File name as given on the command line (`-` for stdin).
    pub file: String,
    /// 1-based document index within the file (empty documents are not counted).
    pub document: usize,
    /// 0-based index in `items` when the document was a `List` (u32 keeps [`InputError`] small).
    pub item: Option<u32>,
}

impl Origin {
    /// What a file origin is shown as when read from the cluster.
    pub const CLUSTER: &str = "cluster";

    /// The `index`th object (1-based) read from the live cluster.
    pub fn cluster(index: usize) -> Self {
        Self { from_cluster: true, file: Self::CLUSTER.into(), document: index, item: None }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.from_cluster {
            return f.write_str(&self.file);
        }
        write!(f, "{}, document {}", self.file, self.document)?;
        if let Some(i) = self.item {
            write!(f, ", items[{i}]")?;
        }
        Ok(())
    }
}

/// One reason the inputs cannot be converted.
#[derive(Debug, Error)]
pub enum InputError {
    /// A file or directory could not be read.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid YAML (or JSON).
    #[error("{file}, document {document} (line {line}): invalid {format}: {message}")]
    Syntax { file: String, document: usize, line: u64, format: &'static str, message: String },
    /// A document that is not a mapping, or has no `kind` and is not a Helm values file.
    #[error("{origin}: {message}")]
    Document { origin: Origin, message: String },
    /// A kind ferrolbctl does not know.
    #[error(
        "{origin}: unknown kind {kind:?} (apiVersion {api_version:?}); ferrolbctl reads MetalLB, \
         Deckhouse and Cilium load-balancer objects, MetalLB ConfigMaps, Helm values with \
         configInline, Services and Namespaces"
    )]
    UnknownKind { origin: Origin, api_version: String, kind: String },
    /// A field with a missing, mistyped or invalid value.
    #[error("{origin}: {object}: {field}: {message}")]
    Field { origin: Origin, object: String, field: String, message: String },
    /// Two address ranges that overlap, in one pool or in two.
    #[error("overlapping addresses: {first} and {second} share {shared}")]
    Overlap { first: String, second: String, shared: String },
}

/// Every error found in the inputs: ferrolbctl reports them all at once instead of stopping at
/// the first, so one run tells the user everything to fix.
#[derive(Debug, Default)]
pub struct InputErrors(pub Vec<InputError>);

impl fmt::Display for InputErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "error: {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for InputErrors {}

impl From<InputError> for InputErrors {
    fn from(e: InputError) -> Self {
        Self(vec![e])
    }
}
