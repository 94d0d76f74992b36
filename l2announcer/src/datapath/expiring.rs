//! `--datapath netlink` addresses that expire unless refreshed: the double-answer bound for a
//! killed announcer.
//!
//! With `--datapath netlink` the kernel answers ARP/NDP for a held address because the address is on
//! the interface. An announcer that is killed (SIGKILL, OOM kill, a crash) removes nothing, and
//! the kernel would answer until the announcer restarts and removes its leftovers, while the new
//! holder answers too. So each address is added with a short lifetime (`--netlink-address-lifetime`,
//! 3 s by default), which the kernel enforces by deleting the address, and [`ExpiringAddresses`]
//! adds it again every third of that lifetime while it is held. Releasing deletes it at once, as
//! before; only a process that stopped refreshing leaves it to the kernel's clock.
//!
//! Refreshing costs one netlink request per address per interval. For IPv4 that is a few tens of
//! µs each; an IPv6 address change costs the kernel a walk of the namespace's IPv6 addresses, so a
//! round grows with the square of their number (see `docs/benchmarks.md`). When a round takes long,
//! the lifetime written is stretched to outlast the next round ([`lifetime_for`]) rather than let
//! addresses expire between two refreshes.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use super::netlink::{Netlink, NetlinkError};

/// The lifetime to write in a refresh round, given the configured `lifetime`, the refresh
/// `interval` and how long the previous round took: an address refreshed early in one round is
/// refreshed again at most `interval` + one round later, plus one more round if the next round is
/// slower still; so the configured lifetime, or `interval` + twice the last round if that is longer.
/// Rounded up to whole seconds, the kernel's resolution (and so that the value written changes
/// seldom).
pub fn lifetime_for(lifetime: Duration, interval: Duration, last_round: Duration) -> Duration {
    let needed = interval + 2 * last_round;
    let whole = Duration::from_secs(needed.as_secs() + u64::from(needed.subsec_nanos() > 0));
    lifetime.max(whole)
}

/// The refresh interval for a lifetime: a third of it, so two refreshes in a row can be lost or
/// late before an address expires.
pub fn refresh_interval(lifetime: Duration) -> Duration {
    lifetime / 3
}

/// Addresses this announcer has added, each kept alive by periodic refreshes while it is here.
/// The refresh task stops when this is dropped.
pub struct ExpiringAddresses<N> {
    shared: Arc<Shared<N>>,
    refresher: Option<JoinHandle<()>>,
}

struct Shared<N> {
    netlink: Arc<N>,
    /// `None`: permanent addresses, no refresh (`--netlink-address-lifetime forever`).
    lifetime: Option<Duration>,
    /// (link, address) -> prefix length. A refresh holds it for each request, so that a removal
    /// never races a refresh that would add the address back.
    held: Mutex<BTreeMap<(u32, IpAddr), u8>>,
    /// The lifetime the last round wrote (it grows when rounds are slow).
    written: std::sync::Mutex<Option<Duration>>,
}

impl<N> Drop for ExpiringAddresses<N> {
    fn drop(&mut self) {
        if let Some(task) = &self.refresher {
            task.abort();
        }
    }
}

impl<N: Netlink + 'static> ExpiringAddresses<N> {
    /// Addresses added through `netlink` with `lifetime` (`None`: permanent). Nothing refreshes
    /// them until [`ExpiringAddresses::refreshing`] starts the task (tests call
    /// [`ExpiringAddresses::refresh`] themselves).
    pub fn new(netlink: Arc<N>, lifetime: Option<Duration>) -> Self {
        Self {
            shared: Arc::new(Shared {
                netlink,
                lifetime,
                held: Mutex::new(BTreeMap::new()),
                written: std::sync::Mutex::new(lifetime),
            }),
            refresher: None,
        }
    }

    /// Starts refreshing every [`refresh_interval`] of the lifetime (needs a tokio runtime). A
    /// round that fails for some addresses is logged; the next one tries again (an address that
    /// vanished meanwhile is added back: replace also creates).
    pub fn refreshing(mut self) -> Self {
        let Some(lifetime) = self.shared.lifetime else { return self };
        let interval = refresh_interval(lifetime);
        let shared = self.shared.clone();
        self.refresher = Some(tokio::spawn(async move {
            loop {
                // A sleep after each round (not a fixed-rate tick), so slow rounds never pile up.
                tokio::time::sleep(interval).await;
                shared.refresh(interval).await;
            }
        }));
        self
    }

    /// Adds `ip/prefix_len` to link `index` with the lifetime, and keeps it from now on.
    pub async fn add(&self, index: u32, ip: IpAddr, prefix_len: u8) -> Result<(), NetlinkError> {
        let mut held = self.shared.held.lock().await;
        let lifetime = *self.shared.written.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.shared.netlink.add_address(index, ip, prefix_len, lifetime).await?;
        held.insert((index, ip), prefix_len);
        Ok(())
    }

    /// Stops keeping `ip` on link `index` and deletes it now.
    pub async fn remove(&self, index: u32, ip: IpAddr) -> Result<(), NetlinkError> {
        let mut held = self.shared.held.lock().await;
        held.remove(&(index, ip));
        self.shared.netlink.remove_address(index, ip).await
    }

    /// Refreshes every kept address now (what the task does every interval). Returns how many
    /// refreshes failed.
    pub async fn refresh(&self) -> usize {
        let interval = self.shared.lifetime.map_or(Duration::ZERO, refresh_interval);
        self.shared.refresh(interval).await
    }

    /// The addresses kept, as (link, address).
    pub async fn kept(&self) -> Vec<(u32, IpAddr)> {
        self.shared.held.lock().await.keys().copied().collect()
    }

    /// The lifetime the addresses were last given (`None`: permanent).
    pub fn lifetime(&self) -> Option<Duration> {
        *self.shared.written.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<N: Netlink> Shared<N> {
    async fn refresh(&self, interval: Duration) -> usize {
        let Some(lifetime) = self.lifetime else { return 0 };
        let keys: Vec<((u32, IpAddr), u8)> = self.held.lock().await.iter().map(|(k, p)| (*k, *p)).collect();
        if keys.is_empty() {
            return 0;
        }
        let written =
            self.written.lock().unwrap_or_else(std::sync::PoisonError::into_inner).unwrap_or(lifetime);
        let started = Instant::now();
        let mut failed = 0usize;
        for ((index, ip), prefix_len) in keys {
            // One address at a time under the lock (fair: a waiting release goes first), and only
            // if still held: a release waits for one request at most, never for a whole round, and
            // a refresh never adds back an address released meanwhile.
            let held = self.held.lock().await;
            if !held.contains_key(&(index, ip)) {
                continue;
            }
            if let Err(error) = self.netlink.add_address(index, ip, prefix_len, Some(written)).await {
                failed += 1;
                if failed == 1 {
                    tracing::warn!(%ip, index, %error, "refreshing the address's lifetime failed");
                }
            }
            drop(held);
        }
        let took = started.elapsed();
        let next = lifetime_for(lifetime, interval, took);
        if next > written {
            tracing::warn!(
                round = ?took,
                lifetime = ?next,
                "refreshing the addresses' lifetimes is slow: giving them a longer lifetime (a killed \
                 announcer's addresses are answered that long)"
            );
        } else if next < written && next == lifetime {
            tracing::info!(lifetime = ?next, "address refreshes are fast again: back to the configured lifetime");
        }
        *self.written.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(next);
        if failed > 1 {
            tracing::warn!(failed, "refreshing some addresses' lifetimes failed");
        }
        failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datapath::FakeNetlink;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn the_lifetime_outlasts_the_next_round() {
        let l = secs(3);
        let i = refresh_interval(l);
        assert_eq!(i, secs(1));
        assert_eq!(lifetime_for(l, i, Duration::from_millis(20)), l, "fast rounds: as configured");
        assert_eq!(lifetime_for(l, i, secs(1)), l);
        assert_eq!(lifetime_for(l, i, secs(2)), secs(5), "slow rounds stretch it");
        assert_eq!(lifetime_for(l, i, Duration::from_millis(1100)), secs(4), "to whole seconds");
    }

    #[tokio::test]
    async fn held_addresses_live_while_refreshed_and_expire_after_the_last_refresh() {
        let nl = Arc::new(FakeNetlink::default());
        let kept = ExpiringAddresses::new(nl.clone(), Some(secs(3)));
        let v4: IpAddr = "198.51.100.200".parse().unwrap();
        let v6: IpAddr = "2001:db8:100::1000".parse().unwrap();
        kept.add(3, v4, 32).await.unwrap();
        kept.add(3, v6, 128).await.unwrap();
        assert_eq!(nl.remaining_lifetime(3, v4), Some(Some(secs(3))));
        for _ in 0..10 {
            nl.advance(secs(1));
            assert_eq!(kept.refresh().await, 0);
        }
        assert_eq!(nl.all_addresses().len(), 2, "refreshed every second: still there after 10 s");
        assert_eq!(kept.lifetime(), Some(secs(3)), "fast rounds keep the configured lifetime");

        // Released: deleted at once, and no refresh brings it back.
        kept.remove(3, v4).await.unwrap();
        assert_eq!(nl.remaining_lifetime(3, v4), None);
        kept.refresh().await;
        assert_eq!(nl.remaining_lifetime(3, v4), None);
        assert_eq!(kept.kept().await, vec![(3, v6)]);

        // The announcer is killed: nothing refreshes any more, and the kernel deletes the address
        // once the lifetime since the last refresh ran out.
        drop(kept);
        nl.advance(Duration::from_millis(2999));
        assert_eq!(nl.all_addresses(), vec![(3, v6, 128)]);
        nl.advance(Duration::from_millis(1));
        assert!(nl.all_addresses().is_empty());
    }

    #[tokio::test]
    async fn an_address_that_vanished_is_added_back_by_the_next_refresh() {
        let nl = Arc::new(FakeNetlink::default());
        let kept = ExpiringAddresses::new(nl.clone(), Some(secs(3)));
        let ip: IpAddr = "198.51.100.200".parse().unwrap();
        kept.add(3, ip, 32).await.unwrap();
        nl.remove_address(3, ip).await.unwrap();
        kept.refresh().await;
        assert_eq!(nl.all_addresses(), vec![(3, ip, 32)]);
    }

    #[tokio::test]
    async fn forever_adds_permanent_addresses_and_never_refreshes() {
        let nl = Arc::new(FakeNetlink::default());
        let kept = ExpiringAddresses::new(nl.clone(), None).refreshing();
        let ip: IpAddr = "198.51.100.200".parse().unwrap();
        kept.add(3, ip, 32).await.unwrap();
        assert_eq!(kept.refresh().await, 0);
        assert_eq!(nl.adds(), 1);
        assert_eq!(nl.remaining_lifetime(3, ip), Some(None));
    }

    #[tokio::test]
    async fn the_task_refreshes_on_its_own() {
        let nl = Arc::new(FakeNetlink::default());
        // 300 ms lifetime: a refresh every 100 ms.
        let kept = ExpiringAddresses::new(nl.clone(), Some(Duration::from_millis(300))).refreshing();
        let ip: IpAddr = "198.51.100.200".parse().unwrap();
        kept.add(3, ip, 32).await.unwrap();
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert!(nl.adds() >= 3, "{} adds", nl.adds());
        drop(kept);
        let adds = nl.adds();
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(nl.adds(), adds, "dropping stops the refreshes");
    }
}
