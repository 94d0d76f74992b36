//! `ferrolbctl`'s library: the pure conversion of MetalLB, Deckhouse and Cilium configuration to
//! FerroLB objects (DESIGN.md §7), with a report of every source field.
//!
//! - [`input`] reads files, directories and stdin into documents, [`cluster`] the live cluster
//!   (both are [`input::DocumentSource`]s);
//! - [`convert`](mod@convert) classifies documents and assembles the result from the source modules
//!   [`metallb`], [`metallb_bgp`], [`metallb_legacy`], [`deckhouse`], [`cilium`],
//!   [`cilium_bgp`] and [`services`], with the BGP drafts of [`bgp`];
//! - [`report`] and [`output`] render it;
//! - [`status`] shows FerroLB's pools and the LoadBalancer Services, and checks that every
//!   Service kept its addresses through a migration;
//! - [`doctor`] checks an installed FerroLB and says what to do about each problem;
//! - [`announcements`] renders an announcer's `ListAnnouncements` answer.

pub mod announcements;
pub mod bgp;
pub mod cilium;
pub mod cilium_bgp;
pub mod cluster;
pub mod convert;
pub mod deckhouse;
pub mod doctor;
pub mod error;
pub mod input;
pub mod metallb;
pub mod metallb_bgp;
pub mod metallb_legacy;
pub mod names;
pub mod obj;
pub mod output;
pub mod report;
pub mod services;
pub mod status;

pub use convert::{Conversion, Options, convert};
pub use error::{InputError, InputErrors, Origin};
pub use input::{Document, DocumentSource, FileSource, SourceText, parse_documents};
pub use report::{Report, Status};

/// Parses texts (name, content) and converts them: the whole pipeline without the file system,
/// for tests and the fuzzer.
pub fn convert_texts(texts: &[SourceText], opts: &Options) -> Result<Conversion, InputErrors> {
    let mut docs = Vec::new();
    let mut errors = Vec::new();
    for t in texts {
        match parse_documents(t) {
            Ok(d) => docs.extend(d),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(InputErrors(errors));
    }
    convert(&docs, opts)
}
