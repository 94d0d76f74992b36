//! The NIC agent's metrics: every name it records, described once, so `/metrics` carries a
//! `# HELP` line for each.

/// Addresses the agent has on its interface now (with its mark).
pub const ADDRESSES_PROGRAMMED: &str = "ferrolb_nic_agent_addresses_programmed";
/// Addresses this node holds, as the agent last heard.
pub const ADDRESSES_HELD: &str = "ferrolb_nic_agent_addresses_held";
/// Netlink address changes, labels `op` (`add`, `remove`) and `result` (`ok`, `error`).
pub const NETLINK_OPERATIONS: &str = "ferrolb_nic_agent_netlink_operations_total";
/// ReportProgrammed calls, label `outcome` (`accepted`, `stale`, `not_held`, `error`).
pub const REPORTS: &str = "ferrolb_nic_agent_reports_total";
/// Full snapshots received from the announcer, label `reason`.
pub const RESYNCS: &str = "ferrolb_nic_agent_resyncs_total";
/// Whether the watch of the announcer is connected (1) or not (0).
pub const CONNECTED: &str = "ferrolb_nic_agent_announcer_connected";
/// Times the agent removed its addresses because the announcer was unreachable too long.
pub const FENCES: &str = "ferrolb_nic_agent_fences_total";
/// Duration of one reconcile round.
pub const RECONCILE_SECONDS: &str = "ferrolb_nic_agent_reconcile_seconds";

/// Registers the descriptions with the installed recorder.
pub fn describe() {
    metrics::describe_gauge!(ADDRESSES_PROGRAMMED, "Addresses the agent has on its interface now.");
    metrics::describe_gauge!(
        ADDRESSES_HELD,
        "Addresses this node holds, as the agent last heard from the announcer."
    );
    metrics::describe_counter!(
        NETLINK_OPERATIONS,
        "Netlink address changes, by op (add, remove) and result."
    );
    metrics::describe_counter!(
        REPORTS,
        "ReportProgrammed calls, by outcome (accepted, stale, not_held, error)."
    );
    metrics::describe_counter!(RESYNCS, "Full snapshots received from the announcer, by reason.");
    metrics::describe_gauge!(CONNECTED, "1 while the agent's watch of the announcer is connected, else 0.");
    metrics::describe_counter!(
        FENCES,
        "Times the agent removed its addresses because the announcer was unreachable for longer than --fence-after."
    );
    metrics::describe_histogram!(
        RECONCILE_SECONDS,
        metrics::Unit::Seconds,
        "Duration of one reconcile round."
    );
}
