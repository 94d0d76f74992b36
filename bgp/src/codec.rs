//! BGP-4 messages on the wire (RFC 4271 §4), with the extensions an announce-only speaker needs.
//!
//! - OPEN with capabilities (RFC 5492): multiprotocol (RFC 4760), route refresh (RFC 2918),
//!   graceful restart (RFC 4724), 4-octet AS numbers (RFC 6793); anything else is kept as
//!   [`Capability::Unknown`] so the session can still judge the OPEN.
//! - UPDATE with ORIGIN, AS_PATH (always 4-octet: the session requires the RFC 6793 capability, see
//!   [`crate::fsm`]), NEXT_HOP, MULTI_EXIT_DISC, LOCAL_PREF, COMMUNITIES (RFC 1997),
//!   LARGE_COMMUNITIES (RFC 8092), and MP_REACH_NLRI/MP_UNREACH_NLRI for IPv6 unicast (RFC 4760,
//!   RFC 2545 next hops). Other attributes, and MP attributes of other families, are kept raw
//!   ([`PathAttribute::Other`]): the speaker imports nothing, so it never needs their meaning.
//! - NOTIFICATION (with the RFC 9003 shutdown communication for Cease), KEEPALIVE, ROUTE-REFRESH.
//!
//! Decoding never panics, whatever the bytes: every malformed input is a [`DecodeError`], which
//! also says which NOTIFICATION answers it ([`DecodeError::notification`]). Trailing host bits of a
//! received prefix are cleared (RFC 4271 §4.3: they are irrelevant), so a decoded prefix is always
//! canonical.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use thiserror::Error;

/// The all-ones marker that starts every message (RFC 4271 §4.1).
pub const MARKER: [u8; 16] = [0xff; 16];
/// Marker, length and type.
pub const HEADER_LEN: usize = 19;
/// The largest message without the RFC 8654 extended-message capability, which we never send.
pub const MAX_MESSAGE_LEN: usize = 4096;
/// The 2-octet AS number that stands for a 4-octet one in the OPEN's `My Autonomous System`.
pub const AS_TRANS: u16 = 23456;

const TYPE_OPEN: u8 = 1;
const TYPE_UPDATE: u8 = 2;
const TYPE_NOTIFICATION: u8 = 3;
const TYPE_KEEPALIVE: u8 = 4;
const TYPE_ROUTE_REFRESH: u8 = 5;

const CAP_MULTIPROTOCOL: u8 = 1;
const CAP_ROUTE_REFRESH: u8 = 2;
const CAP_GRACEFUL_RESTART: u8 = 64;
const CAP_FOUR_OCTET_AS: u8 = 65;
const PARAM_CAPABILITIES: u8 = 2;

const ATTR_ORIGIN: u8 = 1;
const ATTR_AS_PATH: u8 = 2;
const ATTR_NEXT_HOP: u8 = 3;
const ATTR_MED: u8 = 4;
const ATTR_LOCAL_PREF: u8 = 5;
const ATTR_COMMUNITIES: u8 = 8;
const ATTR_MP_REACH: u8 = 14;
const ATTR_MP_UNREACH: u8 = 15;
const ATTR_LARGE_COMMUNITIES: u8 = 32;

/// Attribute flag bits (RFC 4271 §4.3).
const FLAG_OPTIONAL: u8 = 0x80;
const FLAG_TRANSITIVE: u8 = 0x40;
const FLAG_EXTENDED_LENGTH: u8 = 0x10;

/// NOTIFICATION error codes (RFC 4271 §4.5, RFC 7313).
pub mod error_code {
    /// Message Header Error.
    pub const HEADER: u8 = 1;
    /// OPEN Message Error.
    pub const OPEN: u8 = 2;
    /// UPDATE Message Error.
    pub const UPDATE: u8 = 3;
    /// Hold Timer Expired.
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    /// Finite State Machine Error (subcodes: RFC 6608).
    pub const FSM: u8 = 5;
    /// Cease (subcodes: RFC 4486, RFC 9384 for BFD Down).
    pub const CEASE: u8 = 6;
}

/// NOTIFICATION subcodes used by the speaker.
pub mod subcode {
    /// Header: Connection Not Synchronized.
    pub const CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
    /// Header: Bad Message Length.
    pub const BAD_MESSAGE_LENGTH: u8 = 2;
    /// Header: Bad Message Type.
    pub const BAD_MESSAGE_TYPE: u8 = 3;
    /// OPEN: Unsupported Version Number.
    pub const UNSUPPORTED_VERSION: u8 = 1;
    /// OPEN: Bad Peer AS.
    pub const BAD_PEER_AS: u8 = 2;
    /// OPEN: Bad BGP Identifier.
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    /// OPEN: Unsupported Optional Parameter.
    pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
    /// OPEN: Unacceptable Hold Time.
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
    /// OPEN: Unsupported Capability (RFC 5492).
    pub const UNSUPPORTED_CAPABILITY: u8 = 7;
    /// UPDATE: Malformed Attribute List.
    pub const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
    /// UPDATE: Attribute Length Error.
    pub const ATTRIBUTE_LENGTH_ERROR: u8 = 5;
    /// UPDATE: Invalid ORIGIN Attribute.
    pub const INVALID_ORIGIN: u8 = 6;
    /// UPDATE: Invalid Network Field.
    pub const INVALID_NETWORK_FIELD: u8 = 10;
    /// UPDATE: Malformed AS_PATH.
    pub const MALFORMED_AS_PATH: u8 = 11;
    /// FSM: Receive Unexpected Message in OpenSent State (RFC 6608).
    pub const FSM_IN_OPEN_SENT: u8 = 1;
    /// FSM: Receive Unexpected Message in OpenConfirm State.
    pub const FSM_IN_OPEN_CONFIRM: u8 = 2;
    /// FSM: Receive Unexpected Message in Established State.
    pub const FSM_IN_ESTABLISHED: u8 = 3;
    /// Cease: Administrative Shutdown (RFC 4486), with an RFC 9003 shutdown communication.
    pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
    /// Cease: BFD Down (RFC 9384).
    pub const BFD_DOWN: u8 = 10;
}

/// An address family and subsequent address family (RFC 4760).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Family {
    /// Address Family Identifier (1 IPv4, 2 IPv6).
    pub afi: u16,
    /// Subsequent Address Family Identifier (1 unicast).
    pub safi: u8,
}

impl Family {
    /// IPv4 unicast.
    pub const IPV4_UNICAST: Family = Family { afi: 1, safi: 1 };
    /// IPv6 unicast.
    pub const IPV6_UNICAST: Family = Family { afi: 2, safi: 1 };
}

/// One family of a graceful-restart capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GracefulRestartFamily {
    /// The family.
    pub family: Family,
    /// Its flags octet (0x80: forwarding state preserved).
    pub flags: u8,
}

/// The graceful-restart capability (RFC 4724 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GracefulRestart {
    /// The four flag bits above the restart time (0x8: Restart State, 0x4: Notification, RFC 8538).
    pub flags: u8,
    /// Seconds the peer should keep our routes after the session drops (12 bits).
    pub restart_time: u16,
    /// Families whose forwarding state is (or is not) preserved.
    pub families: Vec<GracefulRestartFamily>,
}

/// An OPEN capability (RFC 5492).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capability {
    /// Multiprotocol extensions for one family (RFC 4760 §8).
    Multiprotocol(Family),
    /// Route refresh (RFC 2918).
    RouteRefresh,
    /// Graceful restart (RFC 4724).
    GracefulRestart(GracefulRestart),
    /// 4-octet AS numbers, with the speaker's AS (RFC 6793).
    FourOctetAs(u32),
    /// Any other capability, kept raw.
    Unknown {
        /// Capability code.
        code: u8,
        /// Capability value.
        value: Vec<u8>,
    },
}

/// An OPEN message (RFC 4271 §4.2). The version is always 4: any other is a decode error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    /// `My Autonomous System`: the AS, or [`AS_TRANS`] when it needs 4 octets.
    pub my_as: u16,
    /// Proposed hold time in seconds (0, or at least 3).
    pub hold_time: u16,
    /// BGP Identifier.
    pub router_id: Ipv4Addr,
    /// Every capability of every Capabilities optional parameter, in order.
    pub capabilities: Vec<Capability>,
}

impl Open {
    /// An OPEN for `asn`: sets `My Autonomous System` and adds the 4-octet AS capability that
    /// carries the real number (RFC 6793 §3 asks for it whatever the AS).
    pub fn new(asn: u32, hold_time: u16, router_id: Ipv4Addr, mut capabilities: Vec<Capability>) -> Open {
        capabilities.retain(|c| !matches!(c, Capability::FourOctetAs(_)));
        capabilities.push(Capability::FourOctetAs(asn));
        Open { my_as: u16::try_from(asn).unwrap_or(AS_TRANS), hold_time, router_id, capabilities }
    }

    /// The AS from the 4-octet AS capability, if the speaker sent one.
    pub fn four_octet_as(&self) -> Option<u32> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::FourOctetAs(asn) => Some(*asn),
            _ => None,
        })
    }

    /// The speaker's AS: the 4-octet capability's, or else `My Autonomous System`.
    pub fn asn(&self) -> u32 {
        self.four_octet_as().unwrap_or(u32::from(self.my_as))
    }

    /// The families of the multiprotocol capabilities (empty when none was sent, which RFC 4760
    /// reads as IPv4 unicast only).
    pub fn families(&self) -> Vec<Family> {
        self.capabilities
            .iter()
            .filter_map(|c| match c {
                Capability::Multiprotocol(f) => Some(*f),
                _ => None,
            })
            .collect()
    }
}

/// ORIGIN values (RFC 4271 §5.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Origin {
    /// Learned from an interior protocol (what the speaker always sends).
    Igp,
    /// Learned from EGP.
    Egp,
    /// Learned some other way.
    Incomplete,
}

/// AS_PATH segment types (RFC 4271 §4.3, RFC 5065 for confederations).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentKind {
    /// AS_SET.
    Set,
    /// AS_SEQUENCE.
    Sequence,
    /// AS_CONFED_SEQUENCE.
    ConfedSequence,
    /// AS_CONFED_SET.
    ConfedSet,
}

/// One AS_PATH segment, 4-octet AS numbers (at most 255 of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsSegment {
    /// Segment type.
    pub kind: SegmentKind,
    /// The AS numbers.
    pub asns: Vec<u32>,
}

/// A large community (RFC 8092).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LargeCommunity {
    /// Global administrator (an AS number).
    pub global: u32,
    /// First local data part.
    pub local1: u32,
    /// Second local data part.
    pub local2: u32,
}

/// MP_REACH_NLRI for IPv6 unicast (RFC 4760 §3, next hops per RFC 2545 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpReachV6 {
    /// Global next hop.
    pub next_hop: Ipv6Addr,
    /// Link-local next hop, sent beside the global one on a shared link.
    pub link_local: Option<Ipv6Addr>,
    /// Reachable prefixes.
    pub nlri: Vec<Ipv6Net>,
}

/// A path attribute (RFC 4271 §4.3 and the RFCs named on each variant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathAttribute {
    /// ORIGIN.
    Origin(Origin),
    /// AS_PATH with 4-octet AS numbers.
    AsPath(Vec<AsSegment>),
    /// NEXT_HOP (IPv4 NLRI).
    NextHop(Ipv4Addr),
    /// MULTI_EXIT_DISC: decoded, never sent (routers must see equal paths for ECMP).
    MultiExitDisc(u32),
    /// LOCAL_PREF (iBGP only).
    LocalPref(u32),
    /// COMMUNITIES (RFC 1997).
    Communities(Vec<u32>),
    /// LARGE_COMMUNITIES (RFC 8092).
    LargeCommunities(Vec<LargeCommunity>),
    /// MP_REACH_NLRI for IPv6 unicast.
    MpReach(MpReachV6),
    /// MP_UNREACH_NLRI for IPv6 unicast; empty, it is the IPv6 End-of-RIB marker (RFC 4724 §2).
    MpUnreach(Vec<Ipv6Net>),
    /// Anything else, MP attributes of other families included, kept raw.
    Other {
        /// Flags, without the extended-length bit (the encoder chooses it from the length).
        flags: u8,
        /// Attribute type code.
        type_code: u8,
        /// Attribute value.
        value: Vec<u8>,
    },
}

/// An UPDATE message (RFC 4271 §4.3). IPv4 unicast travels in the classic fields, IPv6 unicast in
/// the MP attributes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Update {
    /// Withdrawn IPv4 prefixes.
    pub withdrawn: Vec<Ipv4Net>,
    /// Path attributes, in the order they are sent.
    pub attributes: Vec<PathAttribute>,
    /// Reachable IPv4 prefixes.
    pub nlri: Vec<Ipv4Net>,
}

impl Update {
    /// The End-of-RIB marker of `family` (RFC 4724 §2): an empty UPDATE for IPv4 unicast, an
    /// UPDATE with an empty MP_UNREACH_NLRI for IPv6 unicast.
    pub fn end_of_rib(family: Family) -> Update {
        if family == Family::IPV6_UNICAST {
            Update { attributes: vec![PathAttribute::MpUnreach(Vec::new())], ..Update::default() }
        } else {
            Update::default()
        }
    }

    /// The family this UPDATE is the End-of-RIB marker of, if it is one.
    pub fn end_of_rib_family(&self) -> Option<Family> {
        if !self.withdrawn.is_empty() || !self.nlri.is_empty() {
            return None;
        }
        match self.attributes.as_slice() {
            [] => Some(Family::IPV4_UNICAST),
            [PathAttribute::MpUnreach(w)] if w.is_empty() => Some(Family::IPV6_UNICAST),
            _ => None,
        }
    }
}

/// A NOTIFICATION message (RFC 4271 §4.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// Error code ([`error_code`]).
    pub code: u8,
    /// Error subcode ([`subcode`]).
    pub subcode: u8,
    /// Data.
    pub data: Vec<u8>,
}

impl Notification {
    /// A NOTIFICATION without data.
    pub fn new(code: u8, subcode: u8) -> Notification {
        Notification { code, subcode, data: Vec::new() }
    }

    /// Cease / Administrative Shutdown with a shutdown communication (RFC 9003: a length octet and
    /// at most 255 octets of UTF-8, cut at a character boundary so the router can show it).
    pub fn administrative_shutdown(message: &str) -> Notification {
        let mut end = message.len().min(255);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let mut data = Vec::with_capacity(end + 1);
        data.push(end as u8);
        data.extend_from_slice(&message.as_bytes()[..end]);
        Notification { code: error_code::CEASE, subcode: subcode::ADMINISTRATIVE_SHUTDOWN, data }
    }

    /// The shutdown communication of a Cease / Administrative Shutdown (or Reset), if it has a
    /// valid one.
    pub fn shutdown_communication(&self) -> Option<&str> {
        if self.code != error_code::CEASE || !matches!(self.subcode, 2 | 4) {
            return None;
        }
        let (&len, rest) = self.data.split_first()?;
        std::str::from_utf8(rest.get(..usize::from(len))?).ok()
    }
}

/// A ROUTE-REFRESH message (RFC 2918, subtypes RFC 7313).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteRefresh {
    /// The family to refresh.
    pub family: Family,
    /// 0 a request; 1 and 2 mark an enhanced refresh's start and end (RFC 7313).
    pub subtype: u8,
}

/// A BGP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// OPEN.
    Open(Open),
    /// UPDATE.
    Update(Update),
    /// NOTIFICATION.
    Notification(Notification),
    /// KEEPALIVE.
    Keepalive,
    /// ROUTE-REFRESH.
    RouteRefresh(RouteRefresh),
}

/// Why bytes are not a valid message. Each error maps to the NOTIFICATION that answers it
/// ([`DecodeError::notification`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The marker is not all ones.
    #[error("message header: the marker is not all ones")]
    BadMarker,
    /// The length field is outside 19..=4096, or does not match the bytes given.
    #[error("message header: length {0} is outside 19..=4096 or not the message's size")]
    BadLength(u16),
    /// The type is not one we know.
    #[error("message header: unknown message type {0}")]
    BadType(u8),
    /// The length is impossible for the message's type.
    #[error("message header: {len} bytes is not a valid length for a message of type {msg_type}")]
    BadLengthForType {
        /// The message type.
        msg_type: u8,
        /// The length field.
        len: u16,
    },
    /// OPEN: version other than 4.
    #[error("OPEN: unsupported BGP version {0}")]
    UnsupportedVersion(u8),
    /// OPEN: an optional parameter other than Capabilities.
    #[error("OPEN: unsupported optional parameter type {0}")]
    UnsupportedOptionalParameter(u8),
    /// OPEN: inconsistent lengths or a capability of the wrong size.
    #[error("OPEN: {0}")]
    MalformedOpen(&'static str),
    /// UPDATE: the attribute list's structure is broken.
    #[error("UPDATE: malformed attribute list: {0}")]
    MalformedAttributeList(&'static str),
    /// UPDATE: an attribute of a known type has a length that type cannot have.
    #[error("UPDATE: attribute type {type_code} cannot be {len} bytes long")]
    AttributeLength {
        /// Attribute type code.
        type_code: u8,
        /// Its length.
        len: usize,
    },
    /// UPDATE: ORIGIN outside 0..=2.
    #[error("UPDATE: invalid ORIGIN {0}")]
    InvalidOrigin(u8),
    /// UPDATE: AS_PATH segments do not parse.
    #[error("UPDATE: malformed AS_PATH")]
    MalformedAsPath,
    /// UPDATE: a prefix longer than its family allows, or cut short.
    #[error("UPDATE: invalid network field")]
    InvalidNetwork,
    /// NOTIFICATION or ROUTE-REFRESH body shorter than its fixed part.
    #[error("{0}: body too short")]
    ShortBody(&'static str),
}

impl DecodeError {
    /// Whether the error is inside an UPDATE's body: the speaker imports nothing, so such an
    /// UPDATE is dropped rather than ending the session (RFC 7606's treat-as-withdraw of routes we
    /// never use).
    pub fn is_update_body(&self) -> bool {
        matches!(
            self,
            DecodeError::MalformedAttributeList(_)
                | DecodeError::AttributeLength { .. }
                | DecodeError::InvalidOrigin(_)
                | DecodeError::MalformedAsPath
                | DecodeError::InvalidNetwork
        )
    }

    /// The NOTIFICATION that answers this error (RFC 4271 §6).
    pub fn notification(&self) -> Notification {
        use error_code as c;
        use subcode as s;
        match self {
            DecodeError::BadMarker => Notification::new(c::HEADER, s::CONNECTION_NOT_SYNCHRONIZED),
            DecodeError::BadLength(len) | DecodeError::BadLengthForType { len, .. } => Notification {
                code: c::HEADER,
                subcode: s::BAD_MESSAGE_LENGTH,
                data: len.to_be_bytes().to_vec(),
            },
            DecodeError::BadType(t) => {
                Notification { code: c::HEADER, subcode: s::BAD_MESSAGE_TYPE, data: vec![*t] }
            }
            // The data is the largest version we support (RFC 4271 §6.2).
            DecodeError::UnsupportedVersion(_) => {
                Notification { code: c::OPEN, subcode: s::UNSUPPORTED_VERSION, data: vec![0, 4] }
            }
            DecodeError::UnsupportedOptionalParameter(_) => {
                Notification::new(c::OPEN, s::UNSUPPORTED_OPTIONAL_PARAMETER)
            }
            DecodeError::MalformedOpen(_) => Notification::new(c::OPEN, 0),
            DecodeError::MalformedAttributeList(_) => {
                Notification::new(c::UPDATE, s::MALFORMED_ATTRIBUTE_LIST)
            }
            DecodeError::AttributeLength { .. } => Notification::new(c::UPDATE, s::ATTRIBUTE_LENGTH_ERROR),
            DecodeError::InvalidOrigin(_) => Notification::new(c::UPDATE, s::INVALID_ORIGIN),
            DecodeError::MalformedAsPath => Notification::new(c::UPDATE, s::MALFORMED_AS_PATH),
            DecodeError::InvalidNetwork => Notification::new(c::UPDATE, s::INVALID_NETWORK_FIELD),
            DecodeError::ShortBody(_) => Notification::new(c::HEADER, s::BAD_MESSAGE_LENGTH),
        }
    }
}

/// Why a message cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// The message would exceed [`MAX_MESSAGE_LEN`].
    #[error("message of {0} bytes exceeds the 4096-byte limit")]
    TooLong(usize),
    /// The OPEN's capabilities do not fit one optional parameter (255 bytes).
    #[error("OPEN capabilities take {0} bytes, more than the 255 an optional parameter holds")]
    CapabilitiesTooLong(usize),
    /// A capability, AS_PATH segment or NOTIFICATION field exceeds what its length field holds.
    #[error("{0} is too long for its length field")]
    FieldTooLong(&'static str),
}

/// The length of the message at the start of `buf`, once all of it has arrived: `Ok(None)` while
/// more bytes are needed. Checks the header (marker, length, type), so a stream that is not BGP
/// fails on its first 19 bytes.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, DecodeError> {
    let Some(header) = buf.get(..HEADER_LEN) else { return Ok(None) };
    let len = check_header(header)?;
    Ok((buf.len() >= len).then_some(len))
}

/// Checks a header and returns the message length it announces.
fn check_header(header: &[u8]) -> Result<usize, DecodeError> {
    if header[..16] != MARKER {
        return Err(DecodeError::BadMarker);
    }
    let len = u16::from_be_bytes([header[16], header[17]]);
    let msg_type = header[18];
    if !(HEADER_LEN..=MAX_MESSAGE_LEN).contains(&usize::from(len)) {
        return Err(DecodeError::BadLength(len));
    }
    // Minimum lengths per type (RFC 4271 §6.1, RFC 2918 §3).
    let fits = match msg_type {
        TYPE_OPEN => len >= 29,
        TYPE_UPDATE => len >= 23,
        TYPE_NOTIFICATION => len >= 21,
        TYPE_KEEPALIVE => len == 19,
        TYPE_ROUTE_REFRESH => len == 23,
        other => return Err(DecodeError::BadType(other)),
    };
    if !fits {
        return Err(DecodeError::BadLengthForType { msg_type, len });
    }
    Ok(usize::from(len))
}

/// Cursor over a byte slice whose reads fail with the given error instead of panicking.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, err: DecodeError) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(err);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn u8(&mut self, err: DecodeError) -> Result<u8, DecodeError> {
        Ok(self.take(1, err)?[0])
    }

    fn u16(&mut self, err: DecodeError) -> Result<u16, DecodeError> {
        let b = self.take(2, err)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, err: DecodeError) -> Result<u32, DecodeError> {
        let b = self.take(4, err)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

impl Message {
    /// Decodes exactly one whole message, header included.
    pub fn decode(msg: &[u8]) -> Result<Message, DecodeError> {
        let Some(header) = msg.get(..HEADER_LEN) else {
            return Err(DecodeError::BadLength(u16::try_from(msg.len()).unwrap_or(u16::MAX)));
        };
        let len = check_header(header)?;
        if len != msg.len() {
            return Err(DecodeError::BadLength(len as u16));
        }
        let body = &msg[HEADER_LEN..];
        match header[18] {
            TYPE_OPEN => decode_open(body).map(Message::Open),
            TYPE_UPDATE => decode_update(body).map(Message::Update),
            TYPE_NOTIFICATION => decode_notification(body).map(Message::Notification),
            TYPE_KEEPALIVE => Ok(Message::Keepalive),
            TYPE_ROUTE_REFRESH => decode_route_refresh(body).map(Message::RouteRefresh),
            // check_header accepted only the types above.
            other => Err(DecodeError::BadType(other)),
        }
    }

    /// Encodes the message, header included.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(64);
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// Appends the encoded message to `out` (which is left as it was on error).
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        out.extend_from_slice(&MARKER);
        out.extend_from_slice(&[0, 0, self.type_code()]);
        let body = match self {
            Message::Open(open) => encode_open(open, out),
            Message::Update(update) => encode_update(update, out),
            Message::Notification(n) => {
                out.extend_from_slice(&[n.code, n.subcode]);
                out.extend_from_slice(&n.data);
                Ok(())
            }
            Message::Keepalive => Ok(()),
            Message::RouteRefresh(r) => {
                out.extend_from_slice(&r.family.afi.to_be_bytes());
                out.extend_from_slice(&[r.subtype, r.family.safi]);
                Ok(())
            }
        };
        let len = out.len() - start;
        let result = match body {
            Ok(()) if len > MAX_MESSAGE_LEN => Err(EncodeError::TooLong(len)),
            other => other,
        };
        match result {
            Ok(()) => {
                out[start + 16..start + 18].copy_from_slice(&(len as u16).to_be_bytes());
                Ok(())
            }
            Err(e) => {
                out.truncate(start);
                Err(e)
            }
        }
    }

    fn type_code(&self) -> u8 {
        match self {
            Message::Open(_) => TYPE_OPEN,
            Message::Update(_) => TYPE_UPDATE,
            Message::Notification(_) => TYPE_NOTIFICATION,
            Message::Keepalive => TYPE_KEEPALIVE,
            Message::RouteRefresh(_) => TYPE_ROUTE_REFRESH,
        }
    }
}

fn decode_open(body: &[u8]) -> Result<Open, DecodeError> {
    let short = || DecodeError::MalformedOpen("shorter than its fixed part");
    let mut r = Reader { buf: body };
    let version = r.u8(short())?;
    if version != 4 {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    let my_as = r.u16(short())?;
    let hold_time = r.u16(short())?;
    let router_id = Ipv4Addr::from(r.u32(short())?);
    let params_len = r.u8(short())?;
    if usize::from(params_len) != r.buf.len() {
        return Err(DecodeError::MalformedOpen("optional parameters length is not the rest of the message"));
    }
    let mut capabilities = Vec::new();
    let bad_param = || DecodeError::MalformedOpen("optional parameter overruns the message");
    while !r.is_empty() {
        let param_type = r.u8(bad_param())?;
        let param_len = r.u8(bad_param())?;
        let value = r.take(usize::from(param_len), bad_param())?;
        // RFC 9072's extended parameters (type 255) are only needed past 255 bytes, which no
        // OPEN to an announce-only speaker reaches; every other type but Capabilities is obsolete.
        if param_type != PARAM_CAPABILITIES {
            return Err(DecodeError::UnsupportedOptionalParameter(param_type));
        }
        decode_capabilities(value, &mut capabilities)?;
    }
    Ok(Open { my_as, hold_time, router_id, capabilities })
}

fn decode_capabilities(value: &[u8], out: &mut Vec<Capability>) -> Result<(), DecodeError> {
    let overrun = || DecodeError::MalformedOpen("capability overruns its parameter");
    let wrong = || DecodeError::MalformedOpen("capability has the wrong length for its code");
    let mut r = Reader { buf: value };
    while !r.is_empty() {
        let code = r.u8(overrun())?;
        let len = r.u8(overrun())?;
        let v = r.take(usize::from(len), overrun())?;
        let cap = match code {
            CAP_MULTIPROTOCOL => {
                let [a0, a1, _reserved, safi] = v else { return Err(wrong()) };
                Capability::Multiprotocol(Family { afi: u16::from_be_bytes([*a0, *a1]), safi: *safi })
            }
            CAP_ROUTE_REFRESH => {
                if !v.is_empty() {
                    return Err(wrong());
                }
                Capability::RouteRefresh
            }
            CAP_FOUR_OCTET_AS => {
                let [a, b, c, d] = v else { return Err(wrong()) };
                Capability::FourOctetAs(u32::from_be_bytes([*a, *b, *c, *d]))
            }
            CAP_GRACEFUL_RESTART => {
                if v.len() < 2 || !(v.len() - 2).is_multiple_of(4) {
                    return Err(wrong());
                }
                let head = u16::from_be_bytes([v[0], v[1]]);
                let families = v[2..]
                    .chunks_exact(4)
                    .map(|c| GracefulRestartFamily {
                        family: Family { afi: u16::from_be_bytes([c[0], c[1]]), safi: c[2] },
                        flags: c[3],
                    })
                    .collect();
                Capability::GracefulRestart(GracefulRestart {
                    flags: (head >> 12) as u8,
                    restart_time: head & 0x0fff,
                    families,
                })
            }
            code => Capability::Unknown { code, value: v.to_vec() },
        };
        out.push(cap);
    }
    Ok(())
}

fn encode_open(open: &Open, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    out.push(4);
    out.extend_from_slice(&open.my_as.to_be_bytes());
    out.extend_from_slice(&open.hold_time.to_be_bytes());
    out.extend_from_slice(&open.router_id.octets());
    let mut caps = Vec::new();
    for cap in &open.capabilities {
        encode_capability(cap, &mut caps)?;
    }
    if caps.is_empty() {
        out.push(0);
        return Ok(());
    }
    // One Capabilities parameter holding them all (RFC 5492 §4 allows either layout).
    let param_len = u8::try_from(caps.len()).map_err(|_| EncodeError::CapabilitiesTooLong(caps.len()))?;
    let total = u8::try_from(caps.len() + 2).map_err(|_| EncodeError::CapabilitiesTooLong(caps.len()))?;
    out.extend_from_slice(&[total, PARAM_CAPABILITIES, param_len]);
    out.extend_from_slice(&caps);
    Ok(())
}

impl Capability {
    /// Appends the encoded capability (code, length, value) to `out`: also the data of an
    /// Unsupported Capability NOTIFICATION (RFC 5492 §5).
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        encode_capability(self, out)
    }
}

fn encode_capability(cap: &Capability, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let mut value = Vec::new();
    let code = match cap {
        Capability::Multiprotocol(f) => {
            value.extend_from_slice(&f.afi.to_be_bytes());
            value.extend_from_slice(&[0, f.safi]);
            CAP_MULTIPROTOCOL
        }
        Capability::RouteRefresh => CAP_ROUTE_REFRESH,
        Capability::FourOctetAs(asn) => {
            value.extend_from_slice(&asn.to_be_bytes());
            CAP_FOUR_OCTET_AS
        }
        Capability::GracefulRestart(gr) => {
            let head = (u16::from(gr.flags & 0x0f) << 12) | (gr.restart_time & 0x0fff);
            value.extend_from_slice(&head.to_be_bytes());
            for f in &gr.families {
                value.extend_from_slice(&f.family.afi.to_be_bytes());
                value.extend_from_slice(&[f.family.safi, f.flags]);
            }
            CAP_GRACEFUL_RESTART
        }
        Capability::Unknown { code, value: v } => {
            value.extend_from_slice(v);
            *code
        }
    };
    let len = u8::try_from(value.len()).map_err(|_| EncodeError::FieldTooLong("capability"))?;
    out.extend_from_slice(&[code, len]);
    out.extend_from_slice(&value);
    Ok(())
}

fn decode_update(body: &[u8]) -> Result<Update, DecodeError> {
    let broken = |why| DecodeError::MalformedAttributeList(why);
    let mut r = Reader { buf: body };
    let withdrawn_len = r.u16(broken("no withdrawn routes length"))?;
    let withdrawn = r.take(usize::from(withdrawn_len), broken("withdrawn routes overrun the message"))?;
    let attrs_len = r.u16(broken("no path attributes length"))?;
    let attrs = r.take(usize::from(attrs_len), broken("path attributes overrun the message"))?;
    let nlri = r.buf;
    Ok(Update {
        withdrawn: decode_v4_prefixes(withdrawn)?,
        attributes: decode_attributes(attrs)?,
        nlri: decode_v4_prefixes(nlri)?,
    })
}

/// Reads `<length, prefix>` pairs (RFC 4271 §4.3) of at most `max_bits`, returning each prefix's
/// length and its address octets with the bits past the length cleared.
fn decode_prefixes(mut b: &[u8], max_bits: u8) -> Result<Vec<(u8, [u8; 16])>, DecodeError> {
    let mut out = Vec::new();
    while let Some((&bits, rest)) = b.split_first() {
        if bits > max_bits {
            return Err(DecodeError::InvalidNetwork);
        }
        let n = usize::from(bits).div_ceil(8);
        let Some(octets) = rest.get(..n) else { return Err(DecodeError::InvalidNetwork) };
        let mut addr = [0u8; 16];
        addr[..n].copy_from_slice(octets);
        if bits % 8 != 0 {
            addr[n - 1] &= 0xffu8 << (8 - bits % 8);
        }
        out.push((bits, addr));
        b = &rest[n..];
    }
    Ok(out)
}

fn decode_v4_prefixes(b: &[u8]) -> Result<Vec<Ipv4Net>, DecodeError> {
    decode_prefixes(b, 32)?
        .into_iter()
        .map(|(bits, a)| {
            Ipv4Net::new(Ipv4Addr::new(a[0], a[1], a[2], a[3]), bits).map_err(|_| DecodeError::InvalidNetwork)
        })
        .collect()
}

fn decode_v6_prefixes(b: &[u8]) -> Result<Vec<Ipv6Net>, DecodeError> {
    decode_prefixes(b, 128)?
        .into_iter()
        .map(|(bits, a)| Ipv6Net::new(Ipv6Addr::from(a), bits).map_err(|_| DecodeError::InvalidNetwork))
        .collect()
}

/// The encoded size of an IPv4 prefix in NLRI or withdrawn routes.
pub fn v4_prefix_len(net: &Ipv4Net) -> usize {
    1 + usize::from(net.prefix_len()).div_ceil(8)
}

/// The encoded size of an IPv6 prefix in MP_REACH_NLRI or MP_UNREACH_NLRI.
pub fn v6_prefix_len(net: &Ipv6Net) -> usize {
    1 + usize::from(net.prefix_len()).div_ceil(8)
}

/// The size of an attribute's header for a value of `value_len` bytes (type, flags and a one- or
/// two-octet length: the encoder takes two only past 255).
pub fn attribute_header_len(value_len: usize) -> usize {
    if value_len > 255 { 4 } else { 3 }
}

fn encode_prefix(octets: &[u8], bits: u8, out: &mut Vec<u8>) {
    let n = usize::from(bits).div_ceil(8);
    out.push(bits);
    out.extend_from_slice(&octets[..n]);
}

fn encode_v4_prefixes(nets: &[Ipv4Net], out: &mut Vec<u8>) {
    for net in nets {
        encode_prefix(&net.trunc().addr().octets(), net.prefix_len(), out);
    }
}

fn encode_v6_prefixes(nets: &[Ipv6Net], out: &mut Vec<u8>) {
    for net in nets {
        encode_prefix(&net.trunc().addr().octets(), net.prefix_len(), out);
    }
}

fn decode_attributes(b: &[u8]) -> Result<Vec<PathAttribute>, DecodeError> {
    let broken = |why| DecodeError::MalformedAttributeList(why);
    let mut r = Reader { buf: b };
    let mut out = Vec::new();
    while !r.is_empty() {
        let flags = r.u8(broken("attribute header cut short"))?;
        let type_code = r.u8(broken("attribute header cut short"))?;
        let len = if flags & FLAG_EXTENDED_LENGTH != 0 {
            usize::from(r.u16(broken("attribute header cut short"))?)
        } else {
            usize::from(r.u8(broken("attribute header cut short"))?)
        };
        let value = r.take(len, broken("attribute overruns the attribute list"))?;
        out.push(decode_attribute(flags, type_code, value)?);
    }
    Ok(out)
}

fn decode_attribute(flags: u8, type_code: u8, v: &[u8]) -> Result<PathAttribute, DecodeError> {
    let wrong_len = || DecodeError::AttributeLength { type_code, len: v.len() };
    let u32_of = |v: &[u8]| -> Result<u32, DecodeError> {
        let [a, b, c, d] = v else { return Err(wrong_len()) };
        Ok(u32::from_be_bytes([*a, *b, *c, *d]))
    };
    Ok(match type_code {
        ATTR_ORIGIN => {
            let [o] = v else { return Err(wrong_len()) };
            PathAttribute::Origin(match o {
                0 => Origin::Igp,
                1 => Origin::Egp,
                2 => Origin::Incomplete,
                other => return Err(DecodeError::InvalidOrigin(*other)),
            })
        }
        ATTR_AS_PATH => PathAttribute::AsPath(decode_as_path(v)?),
        ATTR_NEXT_HOP => PathAttribute::NextHop(Ipv4Addr::from(u32_of(v)?)),
        ATTR_MED => PathAttribute::MultiExitDisc(u32_of(v)?),
        ATTR_LOCAL_PREF => PathAttribute::LocalPref(u32_of(v)?),
        ATTR_COMMUNITIES => {
            if !v.len().is_multiple_of(4) {
                return Err(wrong_len());
            }
            PathAttribute::Communities(
                v.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect(),
            )
        }
        ATTR_LARGE_COMMUNITIES => {
            if !v.len().is_multiple_of(12) {
                return Err(wrong_len());
            }
            PathAttribute::LargeCommunities(
                v.chunks_exact(12)
                    .map(|c| LargeCommunity {
                        global: u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
                        local1: u32::from_be_bytes([c[4], c[5], c[6], c[7]]),
                        local2: u32::from_be_bytes([c[8], c[9], c[10], c[11]]),
                    })
                    .collect(),
            )
        }
        ATTR_MP_REACH if is_v6_unicast(v) => {
            let mut r = Reader { buf: &v[3..] };
            let nh_len = r.u8(wrong_len())?;
            let nh = r.take(usize::from(nh_len), wrong_len())?;
            let (next_hop, link_local) = match nh.len() {
                16 => (v6_at(nh, 0), None),
                32 => (v6_at(nh, 0), Some(v6_at(nh, 16))),
                _ => return Err(wrong_len()),
            };
            let _reserved = r.u8(wrong_len())?;
            PathAttribute::MpReach(MpReachV6 { next_hop, link_local, nlri: decode_v6_prefixes(r.buf)? })
        }
        ATTR_MP_UNREACH if is_v6_unicast(v) => PathAttribute::MpUnreach(decode_v6_prefixes(&v[3..])?),
        _ => PathAttribute::Other { flags: flags & !FLAG_EXTENDED_LENGTH, type_code, value: v.to_vec() },
    })
}

fn is_v6_unicast(v: &[u8]) -> bool {
    matches!(v, [0, 2, 1, ..])
}

/// The IPv6 address at `at` in `b`, which the caller has checked holds it.
fn v6_at(b: &[u8], at: usize) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[at..at + 16]);
    Ipv6Addr::from(a)
}

fn decode_as_path(v: &[u8]) -> Result<Vec<AsSegment>, DecodeError> {
    let mut r = Reader { buf: v };
    let mut out = Vec::new();
    while !r.is_empty() {
        let kind = match r.u8(DecodeError::MalformedAsPath)? {
            1 => SegmentKind::Set,
            2 => SegmentKind::Sequence,
            3 => SegmentKind::ConfedSequence,
            4 => SegmentKind::ConfedSet,
            _ => return Err(DecodeError::MalformedAsPath),
        };
        let count = r.u8(DecodeError::MalformedAsPath)?;
        let asns = r
            .take(usize::from(count) * 4, DecodeError::MalformedAsPath)?
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.push(AsSegment { kind, asns });
    }
    Ok(out)
}

impl PathAttribute {
    /// Flags (without extended length), type code and value.
    fn parts(&self) -> Result<(u8, u8, Vec<u8>), EncodeError> {
        let well_known = FLAG_TRANSITIVE;
        let optional_transitive = FLAG_OPTIONAL | FLAG_TRANSITIVE;
        let mut v = Vec::new();
        let (flags, code) = match self {
            PathAttribute::Origin(o) => {
                v.push(match o {
                    Origin::Igp => 0,
                    Origin::Egp => 1,
                    Origin::Incomplete => 2,
                });
                (well_known, ATTR_ORIGIN)
            }
            PathAttribute::AsPath(segments) => {
                for s in segments {
                    let count = u8::try_from(s.asns.len())
                        .map_err(|_| EncodeError::FieldTooLong("AS_PATH segment"))?;
                    let kind = match s.kind {
                        SegmentKind::Set => 1,
                        SegmentKind::Sequence => 2,
                        SegmentKind::ConfedSequence => 3,
                        SegmentKind::ConfedSet => 4,
                    };
                    v.extend_from_slice(&[kind, count]);
                    for asn in &s.asns {
                        v.extend_from_slice(&asn.to_be_bytes());
                    }
                }
                (well_known, ATTR_AS_PATH)
            }
            PathAttribute::NextHop(a) => {
                v.extend_from_slice(&a.octets());
                (well_known, ATTR_NEXT_HOP)
            }
            PathAttribute::MultiExitDisc(m) => {
                v.extend_from_slice(&m.to_be_bytes());
                (FLAG_OPTIONAL, ATTR_MED)
            }
            PathAttribute::LocalPref(p) => {
                v.extend_from_slice(&p.to_be_bytes());
                (well_known, ATTR_LOCAL_PREF)
            }
            PathAttribute::Communities(cs) => {
                for c in cs {
                    v.extend_from_slice(&c.to_be_bytes());
                }
                (optional_transitive, ATTR_COMMUNITIES)
            }
            PathAttribute::LargeCommunities(cs) => {
                for c in cs {
                    v.extend_from_slice(&c.global.to_be_bytes());
                    v.extend_from_slice(&c.local1.to_be_bytes());
                    v.extend_from_slice(&c.local2.to_be_bytes());
                }
                (optional_transitive, ATTR_LARGE_COMMUNITIES)
            }
            PathAttribute::MpReach(mp) => {
                v.extend_from_slice(&[0, 2, 1]);
                match mp.link_local {
                    None => {
                        v.push(16);
                        v.extend_from_slice(&mp.next_hop.octets());
                    }
                    Some(ll) => {
                        v.push(32);
                        v.extend_from_slice(&mp.next_hop.octets());
                        v.extend_from_slice(&ll.octets());
                    }
                }
                v.push(0);
                encode_v6_prefixes(&mp.nlri, &mut v);
                (FLAG_OPTIONAL, ATTR_MP_REACH)
            }
            PathAttribute::MpUnreach(nets) => {
                v.extend_from_slice(&[0, 2, 1]);
                encode_v6_prefixes(nets, &mut v);
                (FLAG_OPTIONAL, ATTR_MP_UNREACH)
            }
            PathAttribute::Other { flags, type_code, value } => {
                v.extend_from_slice(value);
                (flags & !FLAG_EXTENDED_LENGTH, *type_code)
            }
        };
        Ok((flags, code, v))
    }

    /// Appends the encoded attribute to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let (flags, code, value) = self.parts()?;
        if value.len() > 255 {
            let len = u16::try_from(value.len()).map_err(|_| EncodeError::FieldTooLong("path attribute"))?;
            out.extend_from_slice(&[flags | FLAG_EXTENDED_LENGTH, code]);
            out.extend_from_slice(&len.to_be_bytes());
        } else {
            out.extend_from_slice(&[flags, code, value.len() as u8]);
        }
        out.extend_from_slice(&value);
        Ok(())
    }
}

fn encode_update(update: &Update, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let mut withdrawn = Vec::new();
    encode_v4_prefixes(&update.withdrawn, &mut withdrawn);
    let mut attrs = Vec::new();
    for a in &update.attributes {
        a.encode_into(&mut attrs)?;
    }
    // Past u16 the message is over the limit anyway; report the size it would have had.
    let too_long = || EncodeError::TooLong(HEADER_LEN + 4 + withdrawn.len() + attrs.len());
    out.extend_from_slice(&u16::try_from(withdrawn.len()).map_err(|_| too_long())?.to_be_bytes());
    out.extend_from_slice(&withdrawn);
    out.extend_from_slice(&u16::try_from(attrs.len()).map_err(|_| too_long())?.to_be_bytes());
    out.extend_from_slice(&attrs);
    encode_v4_prefixes(&update.nlri, out);
    Ok(())
}

fn decode_notification(body: &[u8]) -> Result<Notification, DecodeError> {
    let [code, subcode, data @ ..] = body else { return Err(DecodeError::ShortBody("NOTIFICATION")) };
    Ok(Notification { code: *code, subcode: *subcode, data: data.to_vec() })
}

fn decode_route_refresh(body: &[u8]) -> Result<RouteRefresh, DecodeError> {
    let [a0, a1, subtype, safi] = body else { return Err(DecodeError::ShortBody("ROUTE-REFRESH")) };
    Ok(RouteRefresh {
        family: Family { afi: u16::from_be_bytes([*a0, *a1]), safi: *safi },
        subtype: *subtype,
    })
}

#[cfg(test)]
mod tests;
