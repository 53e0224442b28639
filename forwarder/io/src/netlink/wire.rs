//! rtnetlink message encoding and decoding: pure functions over byte slices, no I/O.
//!
//! Every read goes through [`Reader`]-style checked helpers (`get`, slice ranges tested against the
//! buffer length first), so a truncated or inconsistent message yields [`Malformed`], never a
//! panic. Fixed headers are read field by field from native-endian bytes, never by casting bytes
//! to structs. Layouts follow `<linux/netlink.h>`, `<linux/rtnetlink.h>`, `<linux/if_link.h>`,
//! `<linux/if_addr.h>` and `<linux/neighbour.h>`; those are kernel ABI and never change.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{NeighState, Neighbour};

// <linux/netlink.h>
pub(crate) const NLMSG_HDRLEN: usize = 16;
pub(crate) const NLMSG_NOOP: u16 = 1;
pub(crate) const NLMSG_ERROR: u16 = 2;
pub(crate) const NLMSG_DONE: u16 = 3;
pub(crate) const NLMSG_OVERRUN: u16 = 4;
pub(crate) const NLM_F_REQUEST: u16 = 0x01;
pub(crate) const NLM_F_ACK: u16 = 0x04;
pub(crate) const NLM_F_DUMP_INTR: u16 = 0x10;
pub(crate) const NLM_F_DUMP: u16 = 0x100 | 0x200;
pub(crate) const NLM_F_CREATE: u16 = 0x400;
/// On an `NLMSG_ERROR`: the echoed request was cut to its header (`NETLINK_CAP_ACK`).
const NLM_F_CAPPED: u16 = 0x100;
/// On an `NLMSG_ERROR`: extended-ack attributes follow the echoed request.
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;
/// `NLA_F_NESTED | NLA_F_NET_BYTEORDER`: flag bits carried in an attribute's type field.
const NLA_TYPE_MASK: u16 = !(0x8000 | 0x4000);

// <linux/rtnetlink.h>
pub(crate) const RTM_NEWLINK: u16 = 16;
pub(crate) const RTM_GETLINK: u16 = 18;
pub(crate) const RTM_NEWADDR: u16 = 20;
pub(crate) const RTM_GETADDR: u16 = 22;
pub(crate) const RTM_NEWNEIGH: u16 = 28;
pub(crate) const RTM_DELNEIGH: u16 = 29;
pub(crate) const RTM_GETNEIGH: u16 = 30;
/// `RTNLGRP_NEIGH` (3) as a legacy bind-time group mask: `1 << (3 - 1)`.
pub(crate) const RTMGRP_NEIGH: u32 = 1 << 2;

// <linux/if_link.h>, <linux/if.h>
const IFINFOMSG_LEN: usize = 16;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_NUM_RX_QUEUES: u16 = 32;
const IFF_UP: u32 = 0x1;
const IFF_LOWER_UP: u32 = 0x1_0000;

// <linux/if_addr.h>
const IFADDRMSG_LEN: usize = 8;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;

// <linux/neighbour.h>
const NDMSG_LEN: usize = 12;
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
pub(crate) const NTF_USE: u8 = 0x01;
const NTF_PROXY: u8 = 0x08;
const NUD_INCOMPLETE: u16 = 0x01;
const NUD_REACHABLE: u16 = 0x02;
const NUD_STALE: u16 = 0x04;
const NUD_DELAY: u16 = 0x08;
const NUD_PROBE: u16 = 0x10;
const NUD_FAILED: u16 = 0x20;
const NUD_NOARP: u16 = 0x40;
const NUD_PERMANENT: u16 = 0x80;
pub(crate) const NUD_NONE: u16 = 0x00;

const AF_INET: u8 = libc::AF_INET as u8;
const AF_INET6: u8 = libc::AF_INET6 as u8;

/// Why a message could not be decoded; the caller adds which request it belonged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed(pub(crate) &'static str);

/// Rounds a length up to the 4-byte alignment of netlink messages and attributes.
const fn align4(len: usize) -> usize {
    (len + 3) & !3
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off.checked_add(2)?)?;
    Some(u16::from_ne_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

/// One netlink message: its header fields and the payload after the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NlMsg<'a> {
    pub(crate) ty: u16,
    pub(crate) flags: u16,
    pub(crate) seq: u32,
    pub(crate) pid: u32,
    pub(crate) payload: &'a [u8],
}

/// Iterates over the messages of one datagram; stops after the first malformed one.
pub(crate) struct Messages<'a> {
    rest: &'a [u8],
}

/// The messages packed in one received datagram.
pub(crate) fn messages(buf: &[u8]) -> Messages<'_> {
    Messages { rest: buf }
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<NlMsg<'a>, Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let b = self.rest;
        let parsed = (|| {
            let len = u32_at(b, 0).ok_or(Malformed("message header truncated"))?;
            let len = usize::try_from(len).map_err(|_| Malformed("message length overflows"))?;
            if len < NLMSG_HDRLEN {
                return Err(Malformed("message length shorter than its header"));
            }
            if len > b.len() {
                return Err(Malformed("message length runs past the datagram"));
            }
            let msg = NlMsg {
                ty: u16_at(b, 4).ok_or(Malformed("message header truncated"))?,
                flags: u16_at(b, 6).ok_or(Malformed("message header truncated"))?,
                seq: u32_at(b, 8).ok_or(Malformed("message header truncated"))?,
                pid: u32_at(b, 12).ok_or(Malformed("message header truncated"))?,
                payload: &b[NLMSG_HDRLEN..len],
            };
            // The last message of a datagram may omit its padding.
            Ok((msg, align4(len).min(b.len())))
        })();
        match parsed {
            Ok((msg, next)) => {
                self.rest = &b[next..];
                Some(Ok(msg))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

/// Iterates over the attributes (`struct rtattr` / `struct nlattr`) of a message body, yielding
/// the attribute type (flag bits masked off) and its value; stops after the first malformed one.
pub(crate) struct Attrs<'a> {
    rest: &'a [u8],
}

pub(crate) fn attrs(buf: &[u8]) -> Attrs<'_> {
    Attrs { rest: buf }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<(u16, &'a [u8]), Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        // Fewer bytes than an attribute header is trailing padding, not an attribute.
        if self.rest.len() < 4 {
            return None;
        }
        let b = self.rest;
        let len = usize::from(u16_at(b, 0)?);
        let ty = u16_at(b, 2)? & NLA_TYPE_MASK;
        if len < 4 || len > b.len() {
            self.rest = &[];
            return Some(Err(Malformed("attribute length inconsistent")));
        }
        self.rest = &b[align4(len).min(b.len())..];
        Some(Ok((ty, &b[4..len])))
    }
}

fn attr_u32(v: &[u8], what: &'static str) -> Result<u32, Malformed> {
    match v {
        [a, b, c, d] => Ok(u32::from_ne_bytes([*a, *b, *c, *d])),
        _ => Err(Malformed(what)),
    }
}

fn attr_ip(family: u8, v: &[u8], what: &'static str) -> Result<IpAddr, Malformed> {
    match (family, v.len()) {
        (AF_INET, 4) => {
            let mut a = [0u8; 4];
            a.copy_from_slice(v);
            Ok(IpAddr::V4(Ipv4Addr::from(a)))
        }
        (AF_INET6, 16) => {
            let mut a = [0u8; 16];
            a.copy_from_slice(v);
            Ok(IpAddr::V6(Ipv6Addr::from(a)))
        }
        _ => Err(Malformed(what)),
    }
}

/// The parts of an `RTM_NEWLINK` message the forwarder uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Link {
    pub(crate) index: u32,
    pub(crate) name: String,
    /// `IFLA_ADDRESS` as sent (6 bytes on Ethernet, other lengths on other link types).
    pub(crate) address: Option<Vec<u8>>,
    pub(crate) mtu: u32,
    pub(crate) up: bool,
    pub(crate) lower_up: bool,
    pub(crate) rx_queues: u32,
}

/// Decodes the body of an `RTM_NEWLINK` message.
pub(crate) fn decode_link(p: &[u8]) -> Result<Link, Malformed> {
    if p.len() < IFINFOMSG_LEN {
        return Err(Malformed("ifinfomsg truncated"));
    }
    let index = u32_at(p, 4).ok_or(Malformed("ifinfomsg truncated"))?;
    let flags = u32_at(p, 8).ok_or(Malformed("ifinfomsg truncated"))?;
    let mut name = None;
    let mut address = None;
    let mut mtu = None;
    let mut rx_queues = None;
    for a in attrs(&p[IFINFOMSG_LEN..]) {
        let (ty, v) = a?;
        match ty {
            IFLA_IFNAME => {
                let end = v.iter().position(|&c| c == 0).unwrap_or(v.len());
                let s = std::str::from_utf8(&v[..end])
                    .map_err(|_| Malformed("IFLA_IFNAME is not UTF-8"))?;
                name = Some(s.to_owned());
            }
            IFLA_ADDRESS => address = Some(v.to_vec()),
            IFLA_MTU => mtu = Some(attr_u32(v, "IFLA_MTU is not 4 bytes")?),
            IFLA_NUM_RX_QUEUES => {
                rx_queues = Some(attr_u32(v, "IFLA_NUM_RX_QUEUES is not 4 bytes")?);
            }
            _ => {}
        }
    }
    Ok(Link {
        index,
        name: name.ok_or(Malformed("link message without IFLA_IFNAME"))?,
        address,
        mtu: mtu.ok_or(Malformed("link message without IFLA_MTU"))?,
        up: flags & IFF_UP != 0,
        lower_up: flags & IFF_LOWER_UP != 0,
        // Kernels before 3.x did not send it; one queue is what such a device has.
        rx_queues: rx_queues.unwrap_or(1),
    })
}

/// Decodes the body of an `RTM_NEWADDR` message into (interface index, address, prefix length);
/// `None` for address families other than IPv4 and IPv6.
pub(crate) fn decode_addr(p: &[u8]) -> Result<Option<(u32, IpAddr, u8)>, Malformed> {
    if p.len() < IFADDRMSG_LEN {
        return Err(Malformed("ifaddrmsg truncated"));
    }
    let family = p[0];
    let prefix = p[1];
    let index = u32_at(p, 4).ok_or(Malformed("ifaddrmsg truncated"))?;
    let max_prefix = match family {
        AF_INET => 32,
        AF_INET6 => 128,
        _ => return Ok(None),
    };
    if prefix > max_prefix {
        return Err(Malformed("address prefix length too long for its family"));
    }
    let mut local = None;
    let mut address = None;
    for a in attrs(&p[IFADDRMSG_LEN..]) {
        let (ty, v) = a?;
        match ty {
            IFA_LOCAL => local = Some(attr_ip(family, v, "IFA_LOCAL length wrong")?),
            IFA_ADDRESS => address = Some(attr_ip(family, v, "IFA_ADDRESS length wrong")?),
            _ => {}
        }
    }
    // On point-to-point links IFA_ADDRESS is the peer; IFA_LOCAL, when present, is ours.
    let addr = local
        .or(address)
        .ok_or(Malformed("address message without an address"))?;
    Ok(Some((index, addr, prefix)))
}

/// Decodes the body of an `RTM_NEWNEIGH`/`RTM_DELNEIGH` message; `None` for entries the forwarder
/// has no use for (families other than IPv4/IPv6, such as bridge FDB entries, and proxy entries).
pub(crate) fn decode_neigh(p: &[u8]) -> Result<Option<Neighbour>, Malformed> {
    if p.len() < NDMSG_LEN {
        return Err(Malformed("ndmsg truncated"));
    }
    let family = p[0];
    let ifindex = u32_at(p, 4).ok_or(Malformed("ndmsg truncated"))?;
    let state = u16_at(p, 8).ok_or(Malformed("ndmsg truncated"))?;
    let flags = p[10];
    if !matches!(family, AF_INET | AF_INET6) || flags & NTF_PROXY != 0 {
        return Ok(None);
    }
    let mut dst = None;
    let mut mac = None;
    for a in attrs(&p[NDMSG_LEN..]) {
        let (ty, v) = a?;
        match ty {
            NDA_DST => dst = Some(attr_ip(family, v, "NDA_DST length wrong")?),
            // Non-Ethernet links (tunnels) carry other lengths; they have no MAC to use.
            NDA_LLADDR => mac = <[u8; 6]>::try_from(v).ok(),
            _ => {}
        }
    }
    Ok(Some(Neighbour {
        ifindex,
        addr: dst.ok_or(Malformed("neighbour message without NDA_DST"))?,
        mac,
        state: NeighState::from_nud(state),
    }))
}

/// Decodes `NUD_*` bits. The kernel sets one bit at a time; should several appear, the most
/// definite state wins.
pub(crate) fn nud_state(nud: u16) -> NeighState {
    const ORDER: [(u16, NeighState); 8] = [
        (NUD_PERMANENT, NeighState::Permanent),
        (NUD_NOARP, NeighState::Noarp),
        (NUD_REACHABLE, NeighState::Reachable),
        (NUD_DELAY, NeighState::Delay),
        (NUD_PROBE, NeighState::Probe),
        (NUD_STALE, NeighState::Stale),
        (NUD_INCOMPLETE, NeighState::Incomplete),
        (NUD_FAILED, NeighState::Failed),
    ];
    ORDER
        .iter()
        .find(|(bit, _)| nud & bit != 0)
        .map_or(NeighState::None, |&(_, s)| s)
}

/// The outcome carried by an `NLMSG_ERROR` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ErrorMsg {
    /// 0 for an acknowledgement, else a positive errno.
    pub(crate) errno: i32,
    /// The sequence number of the request it answers.
    pub(crate) seq: u32,
    /// The kernel's extended-ack text, if it sent one.
    pub(crate) text: Option<String>,
}

/// Decodes an `NLMSG_ERROR` message (`struct nlmsgerr`, then extended-ack attributes when
/// `NLM_F_ACK_TLVS` is set).
pub(crate) fn decode_error(m: &NlMsg<'_>) -> Result<ErrorMsg, Malformed> {
    let p = m.payload;
    let code = u32_at(p, 0).ok_or(Malformed("nlmsgerr truncated"))?;
    let code = i32::from_ne_bytes(code.to_ne_bytes());
    let orig_len = u32_at(p, 4).ok_or(Malformed("nlmsgerr truncated"))?;
    let seq = u32_at(p, 12).ok_or(Malformed("nlmsgerr truncated"))?;
    if p.len() < 4 + NLMSG_HDRLEN {
        return Err(Malformed("nlmsgerr truncated"));
    }
    if code > 0 {
        return Err(Malformed("nlmsgerr carries a positive error code"));
    }
    let mut text = None;
    if m.flags & NLM_F_ACK_TLVS != 0 {
        // The echoed request is its header alone when capped (always for acks), else whole.
        let echoed = if m.flags & NLM_F_CAPPED != 0 || code == 0 {
            NLMSG_HDRLEN
        } else {
            usize::try_from(orig_len).map_err(|_| Malformed("echoed request length overflows"))?
        };
        let start = 4usize
            .checked_add(align4(echoed.max(NLMSG_HDRLEN)))
            .ok_or(Malformed("echoed request length overflows"))?;
        let tlvs = p
            .get(start..)
            .ok_or(Malformed("echoed request runs past the message"))?;
        for a in attrs(tlvs) {
            let (ty, v) = a?;
            if ty == NLMSGERR_ATTR_MSG {
                let end = v.iter().position(|&c| c == 0).unwrap_or(v.len());
                text = Some(String::from_utf8_lossy(&v[..end]).into_owned());
            }
        }
    }
    Ok(ErrorMsg {
        errno: code
            .checked_neg()
            .ok_or(Malformed("nlmsgerr code out of range"))?,
        seq,
        text,
    })
}

/// The error code an `NLMSG_DONE` may carry (a dump that failed midway): 0 or a positive errno.
pub(crate) fn decode_done(p: &[u8]) -> i32 {
    match u32_at(p, 0) {
        Some(c) => i32::from_ne_bytes(c.to_ne_bytes())
            .checked_neg()
            .unwrap_or(0)
            .max(0),
        None => 0,
    }
}

/// Builds one request message: header, fixed family header, attributes.
pub(crate) struct Request {
    buf: Vec<u8>,
}

impl Request {
    /// A message of type `ty` with `flags`; the sequence number and length are filled by
    /// [`finish`](Self::finish).
    pub(crate) fn new(ty: u16, flags: u16) -> Self {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&ty.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        Self { buf }
    }

    /// The header flags given to [`new`](Self::new).
    pub(crate) fn flags(&self) -> u16 {
        u16::from_ne_bytes([self.buf[6], self.buf[7]])
    }

    /// Appends `struct ifinfomsg` (family unspecified).
    pub(crate) fn ifinfomsg(mut self, index: u32) -> Self {
        self.buf.extend_from_slice(&[0, 0, 0, 0]); // family, pad, type
        self.buf.extend_from_slice(&index.to_ne_bytes());
        self.buf.extend_from_slice(&[0; 8]); // flags, change
        self
    }

    /// Appends `struct ifaddrmsg` for a dump (family unspecified) filtered on `index`.
    pub(crate) fn ifaddrmsg(mut self, index: u32) -> Self {
        self.buf.extend_from_slice(&[0, 0, 0, 0]); // family, prefixlen, flags, scope
        self.buf.extend_from_slice(&index.to_ne_bytes());
        self
    }

    /// Appends `struct ndmsg`.
    pub(crate) fn ndmsg(mut self, family: u8, ifindex: u32, state: u16, flags: u8) -> Self {
        self.buf.extend_from_slice(&[family, 0, 0, 0]);
        self.buf.extend_from_slice(&ifindex.to_ne_bytes());
        self.buf.extend_from_slice(&state.to_ne_bytes());
        self.buf.extend_from_slice(&[flags, 0]); // flags, type
        self
    }

    /// Appends one attribute, padded to 4 bytes.
    pub(crate) fn attr(mut self, ty: u16, value: &[u8]) -> Self {
        let len = u16::try_from(4 + value.len()).unwrap_or(u16::MAX);
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(value);
        self.buf.resize(align4(self.buf.len()), 0);
        self
    }

    /// Appends `IFLA_IFNAME` with the terminating NUL the kernel expects.
    pub(crate) fn ifname(self, name: &str) -> Self {
        let mut v = Vec::with_capacity(name.len() + 1);
        v.extend_from_slice(name.as_bytes());
        v.push(0);
        self.attr(IFLA_IFNAME, &v)
    }

    /// Appends `NDA_DST`.
    pub(crate) fn nda_dst(self, addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(a) => self.attr(NDA_DST, &a.octets()),
            IpAddr::V6(a) => self.attr(NDA_DST, &a.octets()),
        }
    }

    /// Sets the sequence number and length and returns the bytes to send.
    pub(crate) fn finish(mut self, seq: u32) -> Vec<u8> {
        let len = u32::try_from(self.buf.len()).unwrap_or(u32::MAX);
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.buf
    }
}

/// The address family byte of `addr`.
pub(crate) fn family_of(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => AF_INET,
        IpAddr::V6(_) => AF_INET6,
    }
}

/// The address families whose neighbour tables a dump covers.
pub(crate) const NEIGH_FAMILIES: [u8; 2] = [AF_INET, AF_INET6];

#[cfg(test)]
mod tests;
