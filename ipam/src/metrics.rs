//! The controller's metrics: every name it records, described once, so `/metrics` carries a
//! `# HELP` line for each and `docs/configuration.md` is generated from these descriptions (its
//! drift test fails on a metric recorded but not described here).

/// `1` on the replica that leads and runs the controller, `0` on standbys.
pub const ACTIVE: &str = "ferrolb_ipam_active";
/// Services given addresses.
pub const ALLOCATIONS: &str = "ferrolb_ipam_allocations_total";
/// Allocation failures, label `reason` (the `ferrolb.io/IPAMRequestSatisfied` condition's reason).
pub const ALLOCATION_FAILURES: &str = "ferrolb_ipam_allocation_failures_total";
/// Events not written because of the per-Service rate limit.
pub const EVENTS_SUPPRESSED: &str = "ferrolb_ipam_events_suppressed_total";
/// Addresses per pool, labels `pool` and `kind` (`total`, `used`, `available`).
pub const POOL_IPS: &str = "ferrolb_ipam_pool_ips";
/// Holds of FerroLB's writes to a Service whose status another controller keeps overwriting.
pub const STATUS_CONTESTS: &str = "ferrolb_ipam_status_contests_total";
/// Writes not sent because this replica's Lease claim had lapsed when their turn came (a late
/// renewal, or leadership being lost): Service and pool writes are retried once the claim is
/// current again, Events are dropped.
pub const WRITES_HELD: &str = "ferrolb_ipam_writes_without_claim_total";
/// Kubernetes API writes and reads, labels `verb`, `resource`, `outcome` (`ok`, `error`).
pub const API_REQUESTS: &str = "ferrolb_api_requests_total";

/// Registers the descriptions with the installed recorder (and the runtime's Lease metrics).
pub fn describe() {
    metrics::describe_gauge!(ACTIVE, "1 on the replica that leads and runs the controller, 0 on standbys.");
    metrics::describe_counter!(ALLOCATIONS, "Services given addresses.");
    metrics::describe_counter!(
        ALLOCATION_FAILURES,
        "Allocation failures, by reason (the IPAMRequestSatisfied condition's reason)."
    );
    metrics::describe_counter!(
        EVENTS_SUPPRESSED,
        "Events not written because of the per-Service rate limit."
    );
    metrics::describe_gauge!(POOL_IPS, "Addresses of a pool, by kind: total, used, available.");
    metrics::describe_counter!(
        STATUS_CONTESTS,
        "Holds of FerroLB's writes to a Service whose status another controller keeps overwriting."
    );
    metrics::describe_counter!(
        WRITES_HELD,
        "Writes not sent because this replica's Lease claim had lapsed; Service and pool writes are retried."
    );
    metrics::describe_counter!(API_REQUESTS, "Kubernetes API requests, by verb, resource and outcome.");
    ferrolb_runtime::lease::describe_metrics();
}
