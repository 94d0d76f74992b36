//! FerroLB for CNI agents.
//!
//! The announcer on each node serves `ferrolb.v1.Announcer` (see `proto/ferrolb/v1/announcer.proto`)
//! on a unix socket, and on TCP with mutual TLS. This crate is what a Rust CNI agent links to follow
//! it:
//!
//! - [`client`]: [`Target`] (unix socket or TCP + mTLS), [`Client`] with typed `get_owner`, `list`
//!   and `report_programmed`.
//! - [`watch`]: [`watch_local`], the addresses this node holds as a [`DeltaStream`] of typed
//!   [`Delta`]s that survives announcer restarts (bounded, jittered back-off; resumes by revision,
//!   or says [`Delta::Resync`] when it cannot).
//! - [`delta`] and [`backoff`]: the decisions behind the watch, pure; [`reconcile`]: the NIC
//!   agent's, pure.
//! - `agent` (feature `agent`, on by default): the reference agent `ferrolb-nic-agent`, which
//!   programs the held addresses on one interface over netlink and reports each result.
//!
//! ```no_run
//! use ferrolb_cni::{Delta, Target, WatchOptions, watch_local};
//!
//! # async fn follow() {
//! let mut deltas = watch_local(Target::unix(ferrolb_proto::DEFAULT_SOCKET_PATH), WatchOptions::default());
//! while let Some(delta) = deltas.next().await {
//!     match delta {
//!         Delta::Acquired(a) => println!("program {} for {:?}", a.ip, a.services),
//!         Delta::Changed { current, .. } => println!("re-program {} on {:?}", current.ip, current.interfaces),
//!         Delta::Released(a) => println!("remove {}", a.ip),
//!         Delta::Resync { held, .. } => println!("this node holds exactly {} addresses", held.len()),
//!     }
//! }
//! # }
//! ```

pub mod announced;
pub mod backoff;
pub mod client;
pub mod delta;
pub mod reconcile;
pub mod watch;

#[cfg(feature = "agent")]
pub mod agent;

pub use announced::{Announced, Listing, Malformed, Owner, Programming};
pub use backoff::{Backoff, BackoffPolicy};
pub use client::{Client, ClientError, Target, TlsTarget};
pub use delta::{Delta, DeltaDecoder, ResyncReason};
pub use watch::{Connection, DeltaStream, WatchOptions, watch_local};
