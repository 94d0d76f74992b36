//! FerroLB's end-to-end conformance suite. Everything lives in `tests/`: see `README.md`.
//!
//! `tests/l2.rs` drives the L2 announcer in the network-namespace lab (`hack/lab`): kube-sim,
//! `ferrolb-ipam` and one `ferrolb-announcer` per node, a client sending HTTP, ARP and NDP, and faults
//! (SIGKILL, SIGTERM, links down, the API server paused).
//!
//! `tests/ipam.rs` checks the IPAM controller through the API alone, against any cluster with FerroLB
//! installed (`FERROLB_CONFORMANCE_KUBECONFIG`) or a kube-sim and `ferrolb-ipam` it starts, in
//! namespaces of its own that it removes afterwards.
