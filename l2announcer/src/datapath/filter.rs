//! The classic BPF program attached to every responder socket, so the kernel hands userspace only
//! the frames it may answer. In `tcpdump -d` notation (offsets into the Ethernet frame):
//!
//! ```text
//!  0: ld  #pkttype          ; skb->pkt_type (ancillary load)
//!  1: jeq #4, drop          ; PACKET_OUTGOING: our own transmissions, never questions
//!  2: ld  #vlan_avail       ; was a VLAN tag stripped from this frame? (ancillary load)
//!  3: jeq #0, +0, drop      ; tagged: the frame belongs to the VLAN sub-interface, not to this one
//!  4: ldh [12]              ; EtherType
//!  5: jeq #0x0806, arp      ; ARP
//!  6: jeq #0x86dd, +0, drop ; IPv6
//!  7: ldb [20]              ; IPv6 next header (no extension header: NS never carries one)
//!  8: jeq #58, +0, drop     ; ICMPv6
//!  9: ldb [54]              ; ICMPv6 type
//! 10: jeq #135, accept, drop; Neighbor Solicitation
//! 11: arp: ldh [20]         ; ARP operation
//! 12: jeq #1, accept, drop  ; request
//! 13: accept: ret #262144   ; whole frame
//! 14: drop: ret #0
//! ```
//!
//! Why the VLAN check: the kernel strips an 802.1Q tag before packet taps on the parent device
//! run, so a socket on `eth0` would otherwise see VLAN 100's ARP requests as if they were
//! untagged and answer them on the wrong segment. Binding to `eth0.100` itself is how a VLAN is
//! served. A load past the end of a frame makes the kernel return 0 (drop): frames too short to
//! hold the checked fields never reach userspace; everything longer is validated by
//! [`super::frame::parse`].

use socket2::SockFilter;

const BPF_LD: u16 = 0x00;
const BPF_W: u16 = 0x00;
const BPF_H: u16 = 0x08;
const BPF_B: u16 = 0x10;
const BPF_ABS: u16 = 0x20;
const BPF_JMP: u16 = 0x05;
const BPF_JEQ: u16 = 0x10;
const BPF_K: u16 = 0x00;
const BPF_RET: u16 = 0x06;

/// Base of the kernel's ancillary data "offsets" (`SKF_AD_OFF`, -0x1000 as u32).
const SKF_AD_OFF: u32 = 0xffff_f000;
const SKF_AD_PKTTYPE: u32 = 4;
const SKF_AD_VLAN_TAG_PRESENT: u32 = 48;
const PACKET_OUTGOING: u32 = 4;
/// Bytes of an accepted frame handed to userspace (more than any ARP or NS frame).
const ACCEPT_LEN: u32 = 0x40000;

/// One instruction, as plain data (so tests can run the program).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

const fn insn(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
    Insn { code, jt, jf, k }
}

/// The program described in the module docs.
pub const PROGRAM: [Insn; 15] = [
    insn(BPF_LD | BPF_W | BPF_ABS, 0, 0, SKF_AD_OFF + SKF_AD_PKTTYPE),
    insn(BPF_JMP | BPF_JEQ | BPF_K, 12, 0, PACKET_OUTGOING),
    insn(BPF_LD | BPF_W | BPF_ABS, 0, 0, SKF_AD_OFF + SKF_AD_VLAN_TAG_PRESENT),
    insn(BPF_JMP | BPF_JEQ | BPF_K, 0, 10, 0),
    insn(BPF_LD | BPF_H | BPF_ABS, 0, 0, 12),
    insn(BPF_JMP | BPF_JEQ | BPF_K, 5, 0, 0x0806),
    insn(BPF_JMP | BPF_JEQ | BPF_K, 0, 7, 0x86dd),
    insn(BPF_LD | BPF_B | BPF_ABS, 0, 0, 20),
    insn(BPF_JMP | BPF_JEQ | BPF_K, 0, 5, 58),
    insn(BPF_LD | BPF_B | BPF_ABS, 0, 0, 54),
    insn(BPF_JMP | BPF_JEQ | BPF_K, 2, 3, 135),
    insn(BPF_LD | BPF_H | BPF_ABS, 0, 0, 20),
    insn(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 1),
    insn(BPF_RET | BPF_K, 0, 0, ACCEPT_LEN),
    insn(BPF_RET | BPF_K, 0, 0, 0),
];

/// The program in the form `setsockopt(SO_ATTACH_FILTER)` takes.
pub fn socket_filter() -> Vec<SockFilter> {
    PROGRAM.iter().map(|i| SockFilter::new(i.code, i.jt, i.jf, i.k)).collect()
}

#[cfg(test)]
mod tests {
    use super::super::frame::{self, Mac};
    use super::*;

    /// A classic BPF interpreter for the instructions [`PROGRAM`] uses, with the kernel's
    /// semantics: loads past the end return 0, ancillary loads read `pkttype` and `vlan`.
    fn run(frame: &[u8], pkttype: u32, vlan_tagged: bool) -> u32 {
        let mut pc = 0usize;
        let mut a: u32 = 0;
        for _ in 0..PROGRAM.len() {
            let i = PROGRAM[pc];
            match i.code {
                c if c == BPF_LD | BPF_W | BPF_ABS && i.k >= SKF_AD_OFF => {
                    a = match i.k - SKF_AD_OFF {
                        SKF_AD_PKTTYPE => pkttype,
                        SKF_AD_VLAN_TAG_PRESENT => u32::from(vlan_tagged),
                        other => panic!("ancillary {other}"),
                    }
                }
                c if c == BPF_LD | BPF_H | BPF_ABS => {
                    let k = i.k as usize;
                    let Some(b) = frame.get(k..k + 2) else { return 0 };
                    a = u32::from(u16::from_be_bytes([b[0], b[1]]));
                }
                c if c == BPF_LD | BPF_B | BPF_ABS => {
                    let Some(b) = frame.get(i.k as usize) else { return 0 };
                    a = u32::from(*b);
                }
                c if c == BPF_JMP | BPF_JEQ | BPF_K => {
                    pc += usize::from(if a == i.k { i.jt } else { i.jf });
                }
                c if c == BPF_RET | BPF_K => return i.k,
                other => panic!("opcode {other:#x}"),
            }
            pc += 1;
        }
        panic!("program ran off its end")
    }

    const MAC: Mac = Mac([2, 0, 0, 0, 0, 2]);

    #[test]
    fn accepts_arp_requests_and_neighbor_solicitations_only() {
        let vip = "198.51.100.200".parse().unwrap();
        let src = "198.51.100.2".parse().unwrap();
        let v6 = "2001:db8:100::1000".parse().unwrap();
        let src6 = "2001:db8:100::2".parse().unwrap();
        let req = frame::arp_request(MAC, src, vip);
        let ns = frame::neighbor_solicitation(MAC, src6, v6, false);
        assert_eq!(run(&req, 0, false), ACCEPT_LEN);
        assert_eq!(run(&req, 1, false), ACCEPT_LEN, "broadcast pkttype");
        assert_eq!(run(&ns, 2, false), ACCEPT_LEN, "multicast pkttype");
        assert_eq!(run(&req, PACKET_OUTGOING, false), 0, "our own transmissions");
        assert_eq!(run(&req, 0, true), 0, "VLAN-tagged on the parent");
        assert_eq!(run(&frame::arp_reply(MAC, MAC, src, vip), 0, false), 0);
        assert_eq!(run(&frame::gratuitous_arp_reply(MAC, vip), 0, false), 0);
        assert_eq!(run(&frame::unsolicited_na(MAC, v6), 2, false), 0, "NA");
        assert_eq!(run(&req[..16], 0, false), 0, "too short");
        let mut ipv4 = req.clone();
        ipv4[12..14].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(run(&ipv4, 0, false), 0);
        assert_eq!(socket_filter().len(), PROGRAM.len());
    }
}
