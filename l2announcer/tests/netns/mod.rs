//! Network namespaces for datapath tests: the suites' [`Netns`] and [`NsRuntime`]
//! (`ferrolb_testkit::netns`), and the two-namespace lab these tests share.
//!
//! Every test builds its own namespaces (deleted on drop, also when the test panics) joined by veth
//! pairs that have no link to any physical interface and no route out. Code that touches the
//! network runs on a runtime inside the namespace ([`Netns::runtime`]); the test thread itself
//! stays in the root namespace and only runs `ip -n <ns> ...` commands.

#![allow(dead_code)]

use ferrolb_l2announcer::datapath::Mac;
pub use ferrolb_testkit::netns::{Netns, NsRuntime};

/// The interface index and MAC of a link, as the datapath takes them.
pub trait LinkOf {
    /// Interface index and MAC of `dev`.
    fn link(&self, dev: &str) -> (u32, Mac);
}

impl LinkOf for Netns {
    fn link(&self, dev: &str) -> (u32, Mac) {
        let j = self.link_json(dev);
        let index = u32::try_from(j["ifindex"].as_u64().expect("ifindex")).expect("ifindex fits u32");
        let mac = j["address"].as_str().expect("address").parse().expect("mac");
        (index, mac)
    }
}

/// A "node" and a "client" namespace joined by a veth pair named `eth0` on both sides, up, with no
/// address on the node side. The client has 198.51.100.2/24 and 2001:db8:100::2/64 (no DAD).
pub struct Lab {
    pub node: Netns,
    pub client: Netns,
}

impl Lab {
    pub fn new() -> Self {
        let lab = Self { node: Netns::new("node"), client: Netns::new("client") };
        lab.add_pair("eth0");
        lab.client.ip(&["addr", "add", "198.51.100.2/24", "dev", "eth0"]);
        lab.client.ip(&["addr", "add", "2001:db8:100::2/64", "dev", "eth0", "nodad"]);
        lab
    }

    /// Another veth pair `dev` (node) <-> `dev` (client), both up.
    pub fn add_pair(&self, dev: &str) {
        self.node.join(&self.client, dev);
        self.wait_up(dev);
    }

    fn wait_up(&self, dev: &str) {
        self.node.wait_carrier(dev);
        self.client.wait_carrier(dev);
    }
}

pub use ferrolb_testkit::poll_blocking as wait_for;
