//! Gratuitous announcements on takeover: gratuitous ARP in request and reply forms (IPv4) or an
//! unsolicited Neighbor Advertisement with Override (IPv6), sent at once and repeated on a
//! schedule for lossy links and for clients of a returning old leader. A burst is a tokio task;
//! dropping or cancelling its [`Announcement`] stops it (the address was released).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::Counters;
use super::frame::{self, Mac};
use super::socket::PacketSocket;

/// When the announcements of one takeover are sent, as offsets from the takeover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceSchedule(Vec<Duration>);

impl AnnounceSchedule {
    /// Offsets from the takeover, sorted; an empty list sends nothing.
    pub fn new(mut offsets: Vec<Duration>) -> Self {
        offsets.sort();
        Self(offsets)
    }

    /// The offsets.
    pub fn offsets(&self) -> &[Duration] {
        &self.0
    }
}

impl Default for AnnounceSchedule {
    /// At 0, 0.5, 1, 2 and 5 s: quick repeats while a switch or client may still be catching up,
    /// and a last one after the typical ARP retry interval.
    fn default() -> Self {
        Self::new([0, 500, 1000, 2000, 5000].into_iter().map(Duration::from_millis).collect())
    }
}

/// The frames of one announcement round for `ip` from `mac`.
pub fn gratuitous_frames(mac: Mac, ip: IpAddr) -> Vec<Vec<u8>> {
    match ip {
        IpAddr::V4(v4) => vec![frame::gratuitous_arp_request(mac, v4), frame::gratuitous_arp_reply(mac, v4)],
        IpAddr::V6(v6) => vec![frame::unsolicited_na(mac, v6)],
    }
}

/// A running burst of announcements; dropping it cancels the rest.
#[derive(Debug)]
pub struct Announcement {
    task: JoinHandle<()>,
}

impl Announcement {
    /// Starts announcing `ip` with `mac` on `socket`'s interface (needs a tokio runtime).
    pub fn start(
        socket: Arc<PacketSocket>,
        mac: Mac,
        ip: IpAddr,
        schedule: &AnnounceSchedule,
        counters: Arc<Counters>,
    ) -> Self {
        let frames = gratuitous_frames(mac, ip);
        let offsets = schedule.offsets().to_vec();
        let task = tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            for offset in offsets {
                tokio::time::sleep_until(start + offset).await;
                for f in &frames {
                    match socket.send(f).await {
                        Ok(()) => counters.gratuitous_sent(ip),
                        Err(e) => {
                            counters.send_error();
                            tracing::debug!(%ip, ifindex = socket.ifindex(), error = %e, "gratuitous send failed");
                        }
                    }
                }
            }
        });
        Self { task }
    }

    /// Whether every scheduled round has been sent (or the burst was cancelled).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops the remaining rounds.
    pub fn cancel(&self) {
        self.task.abort();
    }
}

/// Forgets the bursts that are over: a finished burst's task stays allocated while its handle is
/// kept. A takeover of thousands of addresses grows the map, so its buckets are given back too.
pub fn forget_finished(bursts: &mut HashMap<(u32, IpAddr), Announcement>) {
    if bursts.is_empty() {
        return;
    }
    bursts.retain(|_, b| !b.is_finished());
    if bursts.capacity() > 4 * bursts.len().max(16) {
        bursts.shrink_to_fit();
    }
}

impl Drop for Announcement {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_schedule_spans_five_seconds() {
        let s = AnnounceSchedule::default();
        assert_eq!(s.offsets().first(), Some(&Duration::ZERO));
        assert_eq!(s.offsets().last(), Some(&Duration::from_secs(5)));
        assert!(s.offsets().windows(2).all(|w| w[0] <= w[1]));
        let s = AnnounceSchedule::new(vec![Duration::from_secs(2), Duration::ZERO]);
        assert_eq!(s.offsets(), &[Duration::ZERO, Duration::from_secs(2)]);
    }

    #[test]
    fn both_arp_forms_or_one_na() {
        let mac = Mac([2, 0, 0, 0, 0, 1]);
        assert_eq!(gratuitous_frames(mac, "198.51.100.200".parse().unwrap()).len(), 2);
        assert_eq!(gratuitous_frames(mac, "2001:db8:100::1000".parse().unwrap()).len(), 1);
    }
}
