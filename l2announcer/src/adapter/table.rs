//! The announcement table the gRPC API serves: one entry per address some node holds, from a
//! round's address statuses and the Leases' acquisition times.

use ferrolb_proto::table::ServiceRef;

use crate::engine::AddressStatus;

use super::*;

impl<N: Netlink + 'static> Announcer<N> {
    /// Brings the table to the round's statuses. Only addresses whose entry changed are built: every
    /// round would otherwise build all 10,000 entries again to find the few that differ.
    pub(super) fn update_table(
        &mut self,
        addresses: &[AddressStatus],
        leases: &BTreeMap<String, LeaseRecord>,
    ) {
        // By address; a stable sort keeps the statuses of an address in key order.
        let mut held: Vec<&AddressStatus> = addresses.iter().filter(|s| s.holder.is_some()).collect();
        held.sort_by_key(|s| s.key.address);
        self.table.update(|t| {
            t.retain(|ip| held.binary_search_by_key(&ip, |s| s.key.address).is_ok());
            for run in held.chunk_by(|a, b| a.key.address == b.key.address) {
                let first = run[0];
                let (ip, holder) = (first.key.address, first.holder.as_deref().unwrap_or_default());
                let since = leases
                    .get(&first.lease)
                    .and_then(|r| r.acquire_time)
                    .map_or(SystemTime::UNIX_EPOCH, SystemTime::from);
                if let [one] = run
                    && t.get(ip).is_some_and(|e| unchanged(&e.announcement, one, holder, since))
                {
                    continue;
                }
                let mut entry = TableEntry::new(ip, holder, since);
                for s in run {
                    entry.services.push(ServiceRef::new(&*s.key.service.namespace, &*s.key.service.name));
                    entry.interfaces.extend(s.interfaces.iter().cloned());
                }
                t.apply(entry);
            }
        });
    }
}

/// Whether `entry` already says what the one Service's `status` does.
fn unchanged(entry: &TableEntry, status: &AddressStatus, holder: &str, since: SystemTime) -> bool {
    let service = &status.key.service;
    entry.node == holder
        && entry.since == since
        && entry.interfaces == status.interfaces
        && matches!(entry.services.as_slice(), [s] if s.namespace == service.namespace && s.name == service.name)
}
