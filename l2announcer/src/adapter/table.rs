//! The announcement table the gRPC API serves: one entry per address some node holds, from a
//! round's address statuses and the Leases' acquisition times.

use crate::engine::AddressStatus;

use super::*;

impl<N: Netlink + 'static> Announcer<N> {
    pub(super) fn update_table(
        &mut self,
        addresses: &[AddressStatus],
        leases: &BTreeMap<String, LeaseRecord>,
    ) {
        let mut by_ip: BTreeMap<IpAddr, TableEntry> = BTreeMap::new();
        for status in addresses {
            let Some(holder) = &status.holder else { continue };
            let key = &status.key;
            let name = lease_names::service_address(&key.service.namespace, &key.service.name, key.address);
            let since = leases
                .get(&name)
                .and_then(|r| r.acquire_time)
                .map_or(SystemTime::UNIX_EPOCH, SystemTime::from);
            let entry = by_ip
                .entry(key.address)
                .or_insert_with(|| TableEntry::new(key.address, holder.clone(), since));
            *entry = entry.clone().with_service(key.service.namespace.clone(), key.service.name.clone());
            for iface in &status.interfaces {
                *entry = entry.clone().with_interface(iface.clone());
            }
        }
        self.table.update(|t| t.reset(by_ip.into_values()));
    }
}
