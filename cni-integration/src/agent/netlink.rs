//! The agent's netlink facade (rtnetlink on tokio): find a link, list its addresses with who owns
//! them, add and remove the agent's own.
//!
//! Ownership is kept by the kernel, with the address: every address the agent adds carries the
//! address protocol [`ADDRESS_PROTOCOL`] (`IFA_PROTO`, Linux 6.3 and later), so a restarted agent
//! finds what an earlier run added, and removes only addresses with that mark.
//!
//! Not the announcer's facade (`l2announcer/src/datapath/netlink.rs`): that one lives in the
//! announcer crate (kube, the election, the responder come with it), has no notion of an address's
//! owner, and replaces existing addresses, which would take over one the agent did not add.

use std::io;
use std::net::IpAddr;

use futures::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage};
use rtnetlink::packet_route::link::LinkAttribute;
use tokio::task::JoinHandle;

/// The `IFA_PROTO` value that marks the agent's addresses (`ip address show` prints it as
/// `proto 102`). Values 0 to 3 are the kernel's own.
pub const ADDRESS_PROTOCOL: u8 = 102;

/// What went wrong talking to the kernel.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// No netlink socket.
    #[error("cannot open a netlink socket: {0}")]
    Connect(#[source] io::Error),
    /// A request failed; `op` says which, with its address and link.
    #[error("{op}: {source}")]
    Request {
        /// What was asked.
        op: String,
        /// The kernel's answer.
        #[source]
        source: rtnetlink::Error,
    },
}

/// An address on a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkAddress {
    /// The address.
    pub ip: IpAddr,
    /// Its prefix length.
    pub prefix_len: u8,
    /// Whether it carries the agent's mark.
    pub owned: bool,
}

/// A netlink connection in the network namespace of the thread that opened it.
#[derive(Debug)]
pub struct AddressNetlink {
    handle: rtnetlink::Handle,
    connection: JoinHandle<()>,
}

impl Drop for AddressNetlink {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

fn request(op: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetlinkError {
    let op = op.into();
    move |source| NetlinkError::Request { op, source }
}

fn errno(error: &rtnetlink::Error) -> Option<i32> {
    match error {
        rtnetlink::Error::NetlinkError(message) => Some(message.raw_code().abs()),
        _ => None,
    }
}

/// The single-address prefix: the agent adds host addresses, which add no subnet route.
pub fn host_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

impl AddressNetlink {
    /// Opens the connection (needs a tokio runtime; the connection runs as a task).
    pub fn new() -> Result<Self, NetlinkError> {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(NetlinkError::Connect)?;
        Ok(Self { handle, connection: tokio::spawn(connection) })
    }

    /// The index of link `name`, `None` when there is no such link.
    pub async fn link_index(&self, name: &str) -> Result<Option<u32>, NetlinkError> {
        let links: Vec<_> =
            self.handle.link().get().execute().try_collect().await.map_err(request("list links"))?;
        Ok(links.iter().find_map(|link| {
            let named = link.attributes.iter().any(|a| matches!(a, LinkAttribute::IfName(n) if n == name));
            named.then_some(link.header.index)
        }))
    }

    /// The addresses on link `index`.
    pub async fn addresses(&self, index: u32) -> Result<Vec<LinkAddress>, NetlinkError> {
        let messages: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await
            .map_err(request(format!("list addresses of link {index}")))?;
        Ok(messages.iter().filter_map(link_address).collect())
    }

    /// Adds `ip` as a host address with the agent's mark to link `index`. Fails when the address is
    /// there already (the plan adds only missing addresses; one that appeared meanwhile is someone
    /// else's, and replacing it would take it over). IPv6 addresses skip duplicate address
    /// detection: a tentative address is not answered for, and the previous holder may still
    /// answer for a moment after a takeover, which would make DAD fail for good.
    pub async fn add_owned(&self, index: u32, ip: IpAddr) -> Result<(), NetlinkError> {
        let prefix_len = host_prefix(ip);
        let mut add = self.handle.address().add(index, ip, prefix_len);
        let message = add.message_mut();
        message.attributes.push(AddressAttribute::Protocol(ADDRESS_PROTOCOL.into()));
        if ip.is_ipv6() {
            message.header.flags |= AddressHeaderFlags::Nodad;
            message.attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        add.execute().await.map_err(request(format!("add {ip}/{prefix_len} to link {index}")))
    }

    /// Removes `ip` from link `index` if it carries the agent's mark; absent is success, and an
    /// unmarked address of that value stays.
    pub async fn remove_owned(&self, index: u32, ip: IpAddr) -> Result<(), NetlinkError> {
        let messages: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .set_address_filter(ip)
            .execute()
            .try_collect()
            .await
            .map_err(request(format!("find {ip} on link {index}")))?;
        for message in messages {
            if !link_address(&message).is_some_and(|a| a.owned && a.ip == ip) {
                continue;
            }
            match self.handle.address().del(message).execute().await {
                Err(e) if errno(&e) == Some(nix::libc::EADDRNOTAVAIL) => {}
                result => result.map_err(request(format!("remove {ip} from link {index}")))?,
            }
        }
        Ok(())
    }
}

fn link_address(message: &AddressMessage) -> Option<LinkAddress> {
    // IFA_LOCAL is the address itself on point-to-point links; IFA_ADDRESS elsewhere.
    let local = message.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(ip) => Some(*ip),
        _ => None,
    });
    let address = message.attributes.iter().find_map(|a| match a {
        AddressAttribute::Address(ip) => Some(*ip),
        _ => None,
    });
    let owned = message
        .attributes
        .iter()
        .any(|a| matches!(a, AddressAttribute::Protocol(p) if u8::from(*p) == ADDRESS_PROTOCOL));
    local.or(address).map(|ip| LinkAddress { ip, prefix_len: message.header.prefix_len, owned })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_route::address::AddressProtocol;

    fn message(ip: &str, protocol: Option<u8>) -> AddressMessage {
        let mut message = AddressMessage::default();
        message.header.prefix_len = 32;
        message.attributes.push(AddressAttribute::Address(ip.parse().unwrap()));
        if let Some(p) = protocol {
            message.attributes.push(AddressAttribute::Protocol(AddressProtocol::from(p)));
        }
        message
    }

    #[test]
    fn only_the_agents_protocol_marks_an_address_as_owned() {
        assert!(link_address(&message("198.51.100.200", Some(ADDRESS_PROTOCOL))).unwrap().owned);
        assert!(!link_address(&message("198.51.100.200", None)).unwrap().owned);
        assert!(!link_address(&message("198.51.100.200", Some(3))).unwrap().owned, "kernel_ll is not ours");
        assert_eq!(host_prefix("2001:db8::1".parse().unwrap()), 128);
    }
}
