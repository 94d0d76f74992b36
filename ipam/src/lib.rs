//! FerroLB IPAM: the pure decision core of the IPAM controller (DESIGN.md §2–3).
//!
//! The core modules have no I/O, no Kubernetes client, no async: the adapter ([`adapter`])
//! feeds plain-data pools and Services into [`Ipam`] and writes back the [`Changes`] it returns. See [`state`] for how to drive it and for
//! the exact rule of when an address stays with its Service.

pub mod adapter;
pub mod allocator;
pub mod contest;
pub mod metrics;
pub mod pool;
pub mod request;
pub mod service;
pub mod sharing;
pub mod state;

pub use allocator::{BlockAllocator, Bounds};
pub use pool::{Addr, Pool, PoolInput, PoolSelector};
pub use request::{Config, FamilyRule, MAX_IP_COUNT, Request};
pub use service::{
    ConditionView, IpFamilyPolicy, ObservedStatus, ServiceInput, ServiceKey, ServicePort, TrafficPolicy,
};
pub use sharing::{CrossNamespace, SharingProfile};
pub use state::{Changes, Event, EventType, Ipam, PoolStatusOutput, ServiceChange, ServiceStatusOutput};

#[cfg(test)]
mod props;
#[cfg(test)]
mod state_tests;
