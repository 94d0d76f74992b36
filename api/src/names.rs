//! Every string FerroLB shares with users and other components: API group, annotation and label
//! keys, condition types and reasons, Event reasons, and the load-balancer class. These are
//! interfaces (DESIGN.md §2): renaming one breaks users' manifests.

/// API group of FerroLB's CRDs.
pub const GROUP: &str = "ferrolb.io";
/// API version of FerroLB's CRDs.
pub const VERSION: &str = "v1alpha1";

/// The `spec.loadBalancerClass` FerroLB serves (also Services without a class, by default).
pub const LOAD_BALANCER_CLASS: &str = "ferrolb.io/l2";

/// Service annotations FerroLB reads.
pub mod annotations {
    /// Requested addresses, comma separated.
    pub const IPS: &str = "ferrolb.io/ips";
    /// Requested pool names, comma separated.
    pub const POOL: &str = "ferrolb.io/pool";
    /// Services with the same key may share an address (Cilium's sharing rules).
    pub const SHARING_KEY: &str = "ferrolb.io/sharing-key";
    /// Namespaces (comma list, `*` for all) allowed to share this Service's address.
    pub const SHARING_CROSS_NAMESPACE: &str = "ferrolb.io/sharing-cross-namespace";
    /// Addresses per IP family (Deckhouse's horizontal scaling).
    pub const IP_COUNT: &str = "ferrolb.io/ip-count";
    /// Written by the IPAM controller: the pool(s) the addresses came from.
    pub const ALLOCATED_FROM_POOL: &str = "ferrolb.io/allocated-from-pool";
    /// On a per-service Lease: the node heartbeat Lease that keeps it valid.
    pub const HEARTBEAT_LEASE: &str = "ferrolb.io/heartbeat-lease";
    /// On a node heartbeat Lease: that node's announcer's report (JSON: ready, interfaces, peer
    /// port), read by the other announcers for candidacy.
    pub const ANNOUNCER_STATE: &str = "ferrolb.io/announcer-state";

    /// Compatibility annotations, honoured with `--compat-annotations` (default on).
    /// Where one of these and a `ferrolb.io/*` key are both set, the FerroLB key wins.
    pub mod compat {
        pub const METALLB_IPS: &str = "metallb.io/loadBalancerIPs";
        pub const METALLB_POOL: &str = "metallb.io/address-pool";
        pub const METALLB_SHARED: &str = "metallb.io/allow-shared-ip";
        pub const METALLB_LEGACY_IPS: &str = "metallb.universe.tf/loadBalancerIPs";
        pub const METALLB_LEGACY_POOL: &str = "metallb.universe.tf/address-pool";
        pub const METALLB_LEGACY_SHARED: &str = "metallb.universe.tf/allow-shared-ip";
        pub const CILIUM_IPS: &str = "lbipam.cilium.io/ips";
        pub const CILIUM_SHARING_KEY: &str = "lbipam.cilium.io/sharing-key";
        pub const CILIUM_SHARING_CROSS_NAMESPACE: &str = "lbipam.cilium.io/sharing-cross-namespace";
        pub const CILIUM_LEGACY_IPS: &str = "io.cilium/lb-ipam-ips";
        pub const CILIUM_LEGACY_SHARING_KEY: &str = "io.cilium/lb-ipam-sharing-key";
        pub const CILIUM_LEGACY_SHARING_CROSS_NAMESPACE: &str = "io.cilium/lb-ipam-sharing-cross-namespace";
        pub const DECKHOUSE_IP_COUNT: &str = "network.deckhouse.io/l2-load-balancer-external-ips-count";
        pub const DECKHOUSE_IPS: &str = "network.deckhouse.io/load-balancer-ips";
        pub const DECKHOUSE_SHARED_IP_KEY: &str = "network.deckhouse.io/load-balancer-shared-ip-key";

        /// Keys meaning `ferrolb.io/ips`, in precedence order.
        pub const IPS_ALIASES: &[&str] =
            &[METALLB_IPS, METALLB_LEGACY_IPS, CILIUM_IPS, CILIUM_LEGACY_IPS, DECKHOUSE_IPS];
        /// Keys meaning `ferrolb.io/pool`, in precedence order.
        pub const POOL_ALIASES: &[&str] = &[METALLB_POOL, METALLB_LEGACY_POOL];
        /// Keys meaning `ferrolb.io/ip-count`.
        pub const IP_COUNT_ALIASES: &[&str] = &[DECKHOUSE_IP_COUNT];
        /// Sharing keys scoped to a namespace unless cross-namespace sharing is allowed (Cilium's).
        pub const SHARING_KEY_NAMESPACED_ALIASES: &[&str] = &[CILIUM_SHARING_KEY, CILIUM_LEGACY_SHARING_KEY];
        /// Sharing keys that share across namespaces by themselves (MetalLB's, and Deckhouse's,
        /// which inherits MetalLB's behaviour).
        pub const SHARING_KEY_GLOBAL_ALIASES: &[&str] =
            &[METALLB_SHARED, METALLB_LEGACY_SHARED, DECKHOUSE_SHARED_IP_KEY];
        /// Keys meaning `ferrolb.io/sharing-cross-namespace`.
        pub const SHARING_CROSS_NAMESPACE_ALIASES: &[&str] =
            &[CILIUM_SHARING_CROSS_NAMESPACE, CILIUM_LEGACY_SHARING_CROSS_NAMESPACE];
    }
}

/// Label keys FerroLB writes or interprets.
pub mod labels {
    /// Pseudo-label: the Service's namespace (overrides a user label of the same key).
    pub const SERVICE_NAMESPACE: &str = "io.kubernetes.service.namespace";
    /// Pseudo-label: the Service's name (overrides a user label of the same key).
    pub const SERVICE_NAME: &str = "io.kubernetes.service.name";
    /// Pseudo-label: the Service's `spec.loadBalancerClass`, when it has one.
    pub const LOAD_BALANCER_CLASS: &str = "ferrolb.io/load-balancer-class";
    /// On per-service Leases: the Service's namespace.
    pub const LEASE_SERVICE_NAMESPACE: &str = "ferrolb.io/service-namespace";
    /// On per-service Leases: the Service's name.
    pub const LEASE_SERVICE_NAME: &str = "ferrolb.io/service-name";
    /// On `BGPSessionState` objects: the node whose session it is (absent when the name is longer
    /// than a label value may be).
    pub const SESSION_NODE: &str = "ferrolb.io/node";
    /// On `BGPSessionState` objects: the `BGPPeer`'s name (absent past 63 characters).
    pub const SESSION_PEER: &str = "ferrolb.io/bgp-peer";
    /// Nodes with this label never announce (Kubernetes' own well-known label).
    pub const EXCLUDE_FROM_EXTERNAL_LB: &str = "node.kubernetes.io/exclude-from-external-load-balancers";
}

/// Network interface names.
pub mod interfaces {
    /// Prefixes of interface names an L2AnnouncementPolicy without `interfaces` never answers on
    /// (DESIGN.md §2: CNI and kube-proxy plumbing); `lo` is excluded by its exact name.
    pub const DEFAULT_EXCLUDED_PREFIXES: &[&str] =
        &["veth", "cali", "flannel", "cni", "docker", "kube-ipvs", "lxc", "tunl", "vxlan", "cilium"];

    /// Whether `name` is on the default exclude list.
    pub fn excluded_by_default(name: &str) -> bool {
        name == "lo" || DEFAULT_EXCLUDED_PREFIXES.iter().any(|p| name.starts_with(p))
    }
}

/// Node taint keys FerroLB interprets.
pub mod taints {
    /// A node shut down for good (non-graceful node shutdown): it never announces.
    pub const OUT_OF_SERVICE: &str = "node.kubernetes.io/out-of-service";
}

/// Status condition types.
pub mod conditions {
    /// On a pool: its blocks overlap another pool's (or each other).
    pub const POOL_CONFLICT: &str = "ferrolb.io/PoolConflict";
    /// On a pool, policy, `BGPPeer`, `BGPAdvertisement` or `BFDProfile`: the spec cannot be used
    /// as written (the message names every field and value at fault).
    pub const INVALID_SPEC: &str = "ferrolb.io/InvalidSpec";
    /// On a Service: whether its address request is satisfied.
    pub const IPAM_REQUEST_SATISFIED: &str = "ferrolb.io/IPAMRequestSatisfied";
    /// On a Service: another controller keeps overwriting FerroLB's `status.loadBalancer`, and
    /// FerroLB holds its writes for a while (the message names the other writer's field manager).
    pub const STATUS_CONTESTED: &str = "ferrolb.io/StatusContested";
}

/// Reasons of the `ferrolb.io/IPAMRequestSatisfied` condition (Cilium's, plus `partially_satisfied`).
pub mod reasons {
    /// Every address the Service asked for is assigned.
    pub const SATISFIED: &str = "satisfied";
    /// Some of the addresses asked for (`ip-count`, dual-stack) are assigned, not all.
    pub const PARTIALLY_SATISFIED: &str = "partially_satisfied";
    /// No enabled pool with addresses of the Service's IP families selects it (no pool at all, selectors
    /// that do not match, named pools missing, disabled or in conflict), or a requested address lies in
    /// no pool.
    pub const NO_POOL: &str = "no_pool";
    /// A requested address lies in a pool that does not select the Service, or that is not one of the
    /// pools it names.
    pub const POOL_SELECTOR_MISMATCH: &str = "pool_selector_mismatch";
    /// A requested address belongs to another Service.
    pub const ALREADY_ALLOCATED: &str = "already_allocated";
    /// A requested address is held by a Service it may not be shared with (sharing key, ports, namespaces).
    pub const ALREADY_ALLOCATED_INCOMPATIBLE_SERVICE: &str = "already_allocated_incompatible_service";
    /// The selected pools have no free address left.
    pub const OUT_OF_IPS: &str = "out_of_ips";
}

/// Reasons of Events FerroLB emits.
pub mod events {
    /// Normal, on a Service: addresses assigned (and from which pool).
    pub const IP_ALLOCATED: &str = "IPAllocated";
    /// Normal, on a Service: addresses released (Service deleted, no longer served, or its pool gone).
    pub const IP_RELEASED: &str = "IPReleased";
    /// Warning, on a Service: no address could be assigned; the message says why.
    pub const ALLOCATION_FAILED: &str = "AllocationFailed";
    /// Normal, on a Service: a node took over announcing one of its addresses (names the node).
    pub const ANNOUNCING: &str = "Announcing";
    /// On a Service: one of its addresses is announced by no node (Warning when no node is eligible); the message says why.
    pub const NOT_ANNOUNCING: &str = "NotAnnouncing";
    /// Warning, on a Service: one of its FerroLB annotations cannot be parsed; the rest still apply.
    pub const INVALID_ANNOTATION: &str = "InvalidAnnotation";
    /// Warning, on a Service: another controller keeps overwriting its `status.loadBalancer`;
    /// FerroLB stops writing it for a while (names the other writer and for how long).
    pub const STATUS_CONTESTED: &str = "StatusContested";
    /// Warning, on a Service (`--datapath delegate`): the node's CNI agent reported that it failed
    /// to program one of its addresses, or did not report within `--delegate-report-timeout`; no
    /// gratuitous ARP/NA goes out for it until the agent reports it programmed.
    pub const PROGRAMMING_FAILED: &str = "ProgrammingFailed";
    /// Warning, on a Node: kube-proxy runs in IPVS mode without strictARP, so every node answers
    /// ARP for every LoadBalancer address (check `ipvs-strict-arp`, see `preflight`).
    pub const PREFLIGHT_IPVS_STRICT_ARP: &str = "PreflightIPVSStrictARP";
    /// Warning, on a Node: neither kube-proxy nor a replacement was found (check
    /// `kube-proxy-missing`).
    pub const PREFLIGHT_KUBE_PROXY_MISSING: &str = "PreflightKubeProxyMissing";
    /// Warning, on a Node: an L2AnnouncementPolicy selects the node but none of its interfaces
    /// (check `interfaces`).
    pub const PREFLIGHT_NO_INTERFACE: &str = "PreflightNoInterface";
}

/// Name of the IPAM controller's leader-election Lease.
pub const IPAM_LEASE_NAME: &str = "ferrolb-ipam";

/// Names of Lease objects the announcer uses (DESIGN.md §4).
pub mod leases {
    use std::net::IpAddr;

    const MAX_NAME: usize = 253;

    /// The announcers' status writer: only its holder writes what one node writes for the whole
    /// cluster (the L2AnnouncementPolicies' and BGP objects' conditions, the Warnings about addresses
    /// nobody can announce, the deletes of address Leases nobody holds). Outside the `ferrolb-l2-` and
    /// `ferrolb-node-` prefixes, which name address and heartbeat Leases.
    pub const ANNOUNCER_STATUS: &str = "ferrolb-announcer-status";

    /// `ferrolb-node-<node>`: the node's heartbeat Lease.
    pub fn node_heartbeat(node: &str) -> String {
        bounded(format!("ferrolb-node-{node}"))
    }

    /// `ferrolb-l2-<namespace>-<service>-<address>`, `.`/`:` in the address written as `-`, and an
    /// IPv6 address ending in `::` (a pool's first address) followed by `0`, since an object name
    /// must end in a letter or digit; past 253 characters the name is cut and ends in a hash of the
    /// full name, so it stays unique.
    pub fn service_address(namespace: &str, service: &str, address: IpAddr) -> String {
        let mut addr = address.to_string().replace(['.', ':'], "-");
        if addr.ends_with('-') {
            addr.push('0');
        }
        bounded(format!("ferrolb-l2-{namespace}-{service}-{addr}"))
    }

    pub(crate) fn bounded(name: String) -> String {
        if name.len() <= MAX_NAME {
            return name;
        }
        let hash = format!("{:016x}", fnv1a(name.as_bytes()));
        let keep = MAX_NAME - hash.len() - 1;
        let mut cut = name[..keep].to_string();
        // A DNS subdomain may not have a '-' right before the suffix separator's neighbour rules;
        // trailing '-' or '.' is fine before "-<hash>" but avoid "--" for readability.
        while cut.ends_with(['-', '.']) {
            cut.pop();
        }
        format!("{cut}-{hash}")
    }

    /// FNV-1a: stable across releases and platforms, unlike `DefaultHasher`.
    pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn the_status_writer_lease_is_neither_an_address_nor_a_heartbeat_lease() {
            // The announcers take every `ferrolb-l2-*` Lease for an address Lease (and may delete
            // it), every `ferrolb-node-*` one for a heartbeat.
            assert!(!ANNOUNCER_STATUS.starts_with("ferrolb-l2-"));
            assert!(!ANNOUNCER_STATUS.starts_with(&node_heartbeat("")));
        }

        #[test]
        fn service_lease_names() {
            let v4 = service_address("default", "web", "198.51.100.130".parse().unwrap());
            assert_eq!(v4, "ferrolb-l2-default-web-198-51-100-130");
            let first = service_address("default", "web", "2001:db8:1::".parse().unwrap());
            assert_eq!(first, "ferrolb-l2-default-web-2001-db8-1--0", "names end in a letter or digit");
            let v6 = service_address("default", "web", "2001:db8:100::1000".parse().unwrap());
            assert_eq!(v6, "ferrolb-l2-default-web-2001-db8-100--1000");
        }

        #[test]
        fn long_names_are_cut_with_a_hash() {
            let ns = "n".repeat(63);
            let svc = "s".repeat(63);
            let a = service_address(&ns, &svc, "2001:db8:100:ffff:ffff:ffff:ffff:1fff".parse().unwrap());
            assert!(a.len() <= 253, "{}", a.len());
            let long = "x".repeat(250);
            let b = service_address("default", &long, "198.51.100.130".parse().unwrap());
            let c = service_address("default", &long, "198.51.100.131".parse().unwrap());
            assert_eq!(b.len(), 253);
            assert_ne!(b, c, "addresses past the cut must still give distinct names");
        }
    }
}
