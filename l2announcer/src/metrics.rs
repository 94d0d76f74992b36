//! The announcer's metrics: every name it records, described once, so `/metrics` carries a
//! `# HELP` line for each and `docs/configuration.md` is generated from these descriptions (its
//! drift test fails on a metric recorded but not described here).

use crate::peer::{METRIC_LOCAL_HEALTH, METRIC_PEERS_HEARD, METRIC_REJECTED, METRIC_RTT};

/// Duration of one decision round.
pub const ROUND_SECONDS: &str = "ferrolb_announcer_round_seconds";
/// Duration of one per-address Lease write.
pub const LEASE_WRITE_SECONDS: &str = "ferrolb_announcer_lease_write_seconds";
/// Addresses taken over from another holder.
pub const TAKEOVERS: &str = "ferrolb_announcer_takeovers_total";
/// Addresses handed over to a successor.
pub const HANDOVERS: &str = "ferrolb_announcer_handovers_total";
/// From an address losing its holder to this node's write taking it.
pub const FAILOVER_SECONDS: &str = "ferrolb_announcer_failover_seconds";
/// Addresses this node answers for now.
pub const ADDRESSES_ANSWERED: &str = "ferrolb_announcer_addresses_answered";
/// Per-address Leases naming this node.
pub const LEASES_HELD: &str = "ferrolb_announcer_leases_held";
/// Addresses whose Lease names this node but that it does not answer for now, label `reason`.
pub const ADDRESSES_STOOD_DOWN: &str = "ferrolb_announcer_addresses_stood_down";
/// Lease and Event writes, label `verb`.
pub const API_REQUESTS: &str = "ferrolb_announcer_api_requests_total";
/// Events dropped because the event queue was full.
pub const EVENTS_DROPPED: &str = "ferrolb_announcer_events_dropped_total";
/// Delegate mode: addresses the CNI agent failed to program or did not report in time, label
/// `reason` (`reported`, `timeout`).
pub const DELEGATE_FAILURES: &str = "ferrolb_announcer_delegate_failures_total";
/// Delegate mode: addresses held whose programming failed or timed out now.
pub const DELEGATE_UNPROGRAMMED: &str = "ferrolb_announcer_delegate_unprogrammed_addresses";
/// Open WatchAnnouncements streams of the gRPC API (CNI agents following the table).
pub const GRPC_WATCHERS: &str = "ferrolb_announcer_grpc_watch_streams";
/// Preflight: 1 while a check finds a problem on this node, else 0; label `check`.
pub const PREFLIGHT_FAILED: &str = "ferrolb_announcer_preflight_failed";
/// BGP sessions of this node that are Established.
pub const BGP_SESSIONS_ESTABLISHED: &str = "ferrolb_announcer_bgp_sessions_established";
/// Prefixes this node advertises, summed over its BGP sessions.
pub const BGP_PREFIXES_ADVERTISED: &str = "ferrolb_announcer_bgp_prefixes_advertised";

/// Registers the descriptions with the installed recorder (datapath, peer channel and the
/// runtime's Lease metrics included).
pub fn describe() {
    metrics::describe_histogram!(ROUND_SECONDS, metrics::Unit::Seconds, "Duration of one decision round.");
    metrics::describe_histogram!(
        LEASE_WRITE_SECONDS,
        metrics::Unit::Seconds,
        "Duration of one per-address Lease write."
    );
    metrics::describe_counter!(TAKEOVERS, "Addresses this node took over from another holder.");
    metrics::describe_counter!(HANDOVERS, "Addresses this node handed over to a successor.");
    metrics::describe_histogram!(
        FAILOVER_SECONDS,
        metrics::Unit::Seconds,
        "From an address losing its holder to this node's Lease write taking it."
    );
    metrics::describe_gauge!(ADDRESSES_ANSWERED, "Addresses this node answers ARP/NDP for now.");
    metrics::describe_gauge!(LEASES_HELD, "Per-address Leases naming this node.");
    metrics::describe_gauge!(
        ADDRESSES_STOOD_DOWN,
        "Addresses whose Lease names this node but that it does not answer for now, by reason: takeover-notice (another node announced its takeover), not-vouched (this node can neither renew its heartbeat Lease nor get its heartbeats acknowledged by a majority of its monitors)."
    );
    metrics::describe_counter!(API_REQUESTS, "Lease and Event writes to the Kubernetes API, by verb.");
    metrics::describe_counter!(EVENTS_DROPPED, "Events dropped because the event queue was full.");
    metrics::describe_counter!(
        DELEGATE_FAILURES,
        "Delegate mode: (address, interface) pairs the CNI agent failed to program (reason reported) or did not report within --delegate-report-timeout (reason timeout)."
    );
    metrics::describe_gauge!(
        DELEGATE_UNPROGRAMMED,
        "Delegate mode: addresses held whose programming failed or timed out now (no gratuitous ARP/NA sent)."
    );
    metrics::describe_gauge!(
        GRPC_WATCHERS,
        "Open WatchAnnouncements streams of the gRPC API: CNI agents following the table (0 in delegate mode: nothing is programmed)."
    );
    metrics::describe_gauge!(
        PREFLIGHT_FAILED,
        "Preflight: 1 while the check (label check: ipvs-strict-arp, kube-proxy-missing, interfaces) finds a problem on this node, else 0; each problem is also a Warning Event on the Node."
    );
    metrics::describe_histogram!(
        METRIC_RTT,
        metrics::Unit::Seconds,
        "Peer heartbeat round-trip time, by peer."
    );
    metrics::describe_counter!(METRIC_REJECTED, "Peer messages rejected, by reason (auth, replay, ...).");
    metrics::describe_gauge!(METRIC_PEERS_HEARD, "Peers whose heartbeats this node hears now.");
    metrics::describe_gauge!(
        METRIC_LOCAL_HEALTH,
        "Local health score, 0 to 8: this node dates its peers' silences score x --peer-timeout later."
    );
    metrics::describe_gauge!(BGP_SESSIONS_ESTABLISHED, "BGP sessions of this node that are Established.");
    metrics::describe_gauge!(
        BGP_PREFIXES_ADVERTISED,
        "Prefixes this node advertises over BGP, summed over its sessions."
    );
    crate::datapath::metric::describe();
    ferrolb_runtime::lease::describe_metrics();
    ferrolb_runtime::writer::describe_metrics();
}
