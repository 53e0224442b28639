//! IPv6 (RFC 8200), its extension headers and a walker that skips them to reach the upper layer.

use core::net::Ipv6Addr;

use crate::bytes::{array, be16, be32, put16, put32};
use crate::ip_proto;
use crate::{Error, Result};

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;

mod field {
    pub(super) const VER_TC_FLOW: usize = 0;
    pub(super) const LENGTH: usize = 4;
    pub(super) const NXT_HDR: usize = 6;
    pub(super) const HOP_LIMIT: usize = 7;
    pub(super) const SRC: usize = 8;
    pub(super) const DST: usize = 24;
}

/// A view of an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checks (accessors may panic on a short buffer).
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// `Err(Truncated)` when shorter than 40 bytes or than 40 + payload length (link padding
    /// past that is allowed).
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN || len < HEADER_LEN + usize::from(self.payload_len()) {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version nibble (6 for a valid packet).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TC_FLOW] >> 4
    }

    /// Traffic class.
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (be16(self.buffer.as_ref(), field::VER_TC_FLOW) >> 4) as u8
    }

    /// Flow label (20 bits).
    #[inline]
    pub fn flow_label(&self) -> u32 {
        be32(self.buffer.as_ref(), field::VER_TC_FLOW) & 0x000F_FFFF
    }

    /// Payload length (extension headers included).
    #[inline]
    pub fn payload_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Next header (first extension header or the upper layer).
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NXT_HDR]
    }

    /// Hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(array::<16>(self.buffer.as_ref(), field::SRC))
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(array::<16>(self.buffer.as_ref(), field::DST))
    }

    /// Walks the extension headers of the payload (see [`walk_ext_headers`]); offsets in the
    /// result are relative to the start of the payload.
    #[inline]
    pub fn ext_chain(&self, max_headers: usize) -> Result<ExtChain> {
        let d = self.buffer.as_ref();
        walk_ext_headers(
            self.next_header(),
            &d[HEADER_LEN..HEADER_LEN + usize::from(self.payload_len())],
            max_headers,
        )
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The payload (extension headers and upper layer), link padding excluded.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        let d = self.buffer.as_ref();
        &d[HEADER_LEN..HEADER_LEN + usize::from(be16(d, field::LENGTH))]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets version 6, traffic class and flow label (masked to 20 bits).
    #[inline]
    pub fn set_version_tc_flow(&mut self, traffic_class: u8, flow_label: u32) {
        let v = (6u32 << 28) | (u32::from(traffic_class) << 20) | (flow_label & 0x000F_FFFF);
        put32(self.buffer.as_mut(), field::VER_TC_FLOW, v);
    }

    /// Sets the payload length.
    #[inline]
    pub fn set_payload_len(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::LENGTH, v);
    }

    /// Sets the next header.
    #[inline]
    pub fn set_next_header(&mut self, v: u8) {
        self.buffer.as_mut()[field::NXT_HDR] = v;
    }

    /// Sets the hop limit.
    #[inline]
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = v;
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC..field::SRC + 16].copy_from_slice(&a.octets());
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::DST..field::DST + 16].copy_from_slice(&a.octets());
    }

    /// Mutable payload.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// The fields of an IPv6 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv6Addr,
    /// Destination address.
    pub dst_addr: Ipv6Addr,
    /// Next header.
    pub next_header: u8,
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class.
    pub traffic_class: u8,
    /// Flow label (20 bits).
    pub flow_label: u32,
    /// Payload length.
    pub payload_len: usize,
}

impl Repr {
    /// Reads a header; `Malformed` unless the version is 6.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        if p.version() != 6 {
            return Err(Error::Malformed);
        }
        Ok(Repr {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            next_header: p.next_header(),
            hop_limit: p.hop_limit(),
            traffic_class: p.traffic_class(),
            flow_label: p.flow_label(),
            payload_len: usize::from(p.payload_len()),
        })
    }

    /// 40.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Header plus payload.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes the header (payload length saturating at 65535); the payload is left as it is.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_version_tc_flow(self.traffic_class, self.flow_label);
        p.set_payload_len(u16::try_from(self.payload_len).unwrap_or(u16::MAX));
        p.set_next_header(self.next_header);
        p.set_hop_limit(self.hop_limit);
        p.set_src_addr(self.src_addr);
        p.set_dst_addr(self.dst_addr);
    }
}

/// True for the extension headers the walker skips: hop-by-hop, routing, fragment, destination options.
#[inline]
pub const fn is_ext_header(next_header: u8) -> bool {
    matches!(
        next_header,
        ip_proto::HOPOPT | ip_proto::IPV6_ROUTE | ip_proto::IPV6_FRAG | ip_proto::IPV6_OPTS
    )
}

/// A view of a hop-by-hop, routing or destination-options header: next header, length in
/// 8-byte units beyond the first, then type-specific data.
#[derive(Debug, Clone)]
pub struct ExtHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ExtHeader<T> {
    /// Wraps a buffer without checks (accessors may panic on a short buffer).
    pub const fn new_unchecked(buffer: T) -> Self {
        ExtHeader { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let h = Self::new_unchecked(buffer);
        h.check_len()?;
        Ok(h)
    }

    /// `Err(Truncated)` when shorter than 8 bytes or than the length field says.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < 8 || len < self.header_len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Next header.
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    /// The raw length field (8-byte units, not counting the first 8 bytes).
    #[inline]
    pub fn hdr_ext_len(&self) -> u8 {
        self.buffer.as_ref()[1]
    }

    /// Header length in bytes.
    #[inline]
    pub fn header_len(&self) -> usize {
        (usize::from(self.hdr_ext_len()) + 1) * 8
    }

    /// The type-specific data after the two fixed bytes (options, or routing type,
    /// segments left and addresses for a routing header).
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[2..self.header_len()]
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> ExtHeader<&'a T> {
    /// Everything after this header.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        let d = self.buffer.as_ref();
        &d[(usize::from(d[1]) + 1) * 8..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ExtHeader<T> {
    /// Sets the next header.
    #[inline]
    pub fn set_next_header(&mut self, v: u8) {
        self.buffer.as_mut()[0] = v;
    }

    /// Sets the raw length field.
    #[inline]
    pub fn set_hdr_ext_len(&mut self, v: u8) {
        self.buffer.as_mut()[1] = v;
    }

    /// Mutable type-specific data.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        &mut self.buffer.as_mut()[2..end]
    }
}

/// A hop-by-hop, routing or destination-options header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExtHeaderRepr<'a> {
    /// Next header.
    pub next_header: u8,
    /// Type-specific data (at most 2046 bytes).
    pub data: &'a [u8],
}

impl<'a> ExtHeaderRepr<'a> {
    /// Borrows the header's data.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(h: &ExtHeader<&'a T>) -> Result<ExtHeaderRepr<'a>> {
        h.check_len()?;
        let d: &'a [u8] = h.buffer.as_ref();
        Ok(ExtHeaderRepr {
            next_header: h.next_header(),
            data: &d[2..h.header_len()],
        })
    }

    /// 2 + data rounded up to a multiple of 8 (capped at 2048).
    pub const fn header_len(&self) -> usize {
        let n = (2 + self.data.len()).div_ceil(8) * 8;
        if n > 2048 { 2048 } else { n }
    }

    /// Same as [`header_len`](Self::header_len).
    pub const fn buffer_len(&self) -> usize {
        self.header_len()
    }

    /// Writes the header; data short of a multiple of 8 is padded with zero bytes (Pad1 options).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, h: &mut ExtHeader<T>) {
        let hl = self.header_len();
        h.set_next_header(self.next_header);
        h.set_hdr_ext_len((hl / 8 - 1) as u8);
        let area = h.data_mut();
        let n = self.data.len().min(area.len());
        let (head, tail) = area.split_at_mut(n);
        head.copy_from_slice(&self.data[..n]);
        tail.fill(0);
    }
}

/// Length of the fragment header.
pub const FRAG_HEADER_LEN: usize = 8;

/// A view of an IPv6 fragment header.
#[derive(Debug, Clone)]
pub struct FragmentHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> FragmentHeader<T> {
    /// Wraps a buffer without checks (accessors may panic on a short buffer).
    pub const fn new_unchecked(buffer: T) -> Self {
        FragmentHeader { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let h = Self::new_unchecked(buffer);
        h.check_len()?;
        Ok(h)
    }

    /// `Err(Truncated)` when shorter than 8 bytes.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < FRAG_HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Next header.
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    /// Fragment offset in bytes.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        be16(self.buffer.as_ref(), 2) & 0xFFF8
    }

    /// More fragments.
    #[inline]
    pub fn more_frags(&self) -> bool {
        be16(self.buffer.as_ref(), 2) & 1 != 0
    }

    /// Identification.
    #[inline]
    pub fn ident(&self) -> u32 {
        be32(self.buffer.as_ref(), 4)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> FragmentHeader<&'a T> {
    /// Everything after the fragment header.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[FRAG_HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> FragmentHeader<T> {
    /// Sets the next header and clears the reserved byte.
    #[inline]
    pub fn set_next_header(&mut self, v: u8) {
        let d = self.buffer.as_mut();
        d[0] = v;
        d[1] = 0;
    }

    /// Sets the offset (bytes, low 3 bits dropped) and the M flag.
    #[inline]
    pub fn set_offset_and_more(&mut self, offset: u16, more: bool) {
        put16(self.buffer.as_mut(), 2, (offset & 0xFFF8) | u16::from(more));
    }

    /// Sets the identification.
    #[inline]
    pub fn set_ident(&mut self, v: u32) {
        put32(self.buffer.as_mut(), 4, v);
    }
}

/// The fields of a fragment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragmentRepr {
    /// Next header.
    pub next_header: u8,
    /// Offset in bytes (a multiple of 8).
    pub frag_offset: u16,
    /// More fragments.
    pub more_frags: bool,
    /// Identification.
    pub ident: u32,
}

impl FragmentRepr {
    /// Reads a fragment header.
    pub fn parse<T: AsRef<[u8]>>(h: &FragmentHeader<T>) -> Result<FragmentRepr> {
        h.check_len()?;
        Ok(FragmentRepr {
            next_header: h.next_header(),
            frag_offset: h.frag_offset(),
            more_frags: h.more_frags(),
            ident: h.ident(),
        })
    }

    /// 8.
    pub const fn header_len(&self) -> usize {
        FRAG_HEADER_LEN
    }

    /// 8.
    pub const fn buffer_len(&self) -> usize {
        FRAG_HEADER_LEN
    }

    /// Writes the header.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, h: &mut FragmentHeader<T>) {
        h.set_next_header(self.next_header);
        h.set_offset_and_more(self.frag_offset, self.more_frags);
        h.set_ident(self.ident);
    }
}

/// What the walker found in a fragment header (the first one, if a chain has several).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragmentInfo {
    /// Offset of the fragment header in the walked buffer.
    pub header_offset: usize,
    /// Fragment offset in bytes.
    pub offset: u16,
    /// More fragments.
    pub more_frags: bool,
    /// Identification.
    pub ident: u32,
}

/// Where the extension header chain leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExtChain {
    /// The first next-header value that is not a skipped extension header (the upper layer,
    /// ESP, AH, no-next-header, ...).
    pub protocol: u8,
    /// Offset of that header in the walked buffer; `None` in a non-first fragment, whose
    /// upper-layer header is in another packet.
    pub l4_offset: Option<usize>,
    /// The fragment header, if any.
    pub fragment: Option<FragmentInfo>,
    /// Number of extension headers skipped.
    pub ext_headers: usize,
}

/// Skips hop-by-hop, routing, fragment and destination-options headers from the start of
/// `payload` (an IPv6 payload whose first header is `first`). Stops after a fragment header
/// with a non-zero offset. `Err(Truncated)` when a header does not fit in `payload`,
/// `Err(TooManyExtHeaders)` when more than `max_headers` would have to be skipped.
#[inline]
pub fn walk_ext_headers(first: u8, payload: &[u8], max_headers: usize) -> Result<ExtChain> {
    let mut nh = first;
    let mut off = 0usize;
    let mut count = 0usize;
    let mut fragment = None;
    while is_ext_header(nh) {
        if count == max_headers {
            return Err(Error::TooManyExtHeaders);
        }
        count += 1;
        // Every skipped header is at least 8 bytes; read them as one fixed chunk.
        let h = payload
            .get(off..)
            .and_then(|s| s.first_chunk::<8>())
            .ok_or(Error::Truncated)?;
        if nh == ip_proto::IPV6_FRAG {
            let fo = u16::from_be_bytes([h[2], h[3]]);
            let info = FragmentInfo {
                header_offset: off,
                offset: fo & 0xFFF8,
                more_frags: fo & 1 != 0,
                ident: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
            };
            let first = *fragment.get_or_insert(info);
            nh = h[0];
            off += FRAG_HEADER_LEN;
            if info.offset != 0 {
                return Ok(ExtChain {
                    protocol: nh,
                    l4_offset: None,
                    fragment: Some(first),
                    ext_headers: count,
                });
            }
        } else {
            let len = (usize::from(h[1]) + 1) * 8;
            if off + len > payload.len() {
                return Err(Error::Truncated);
            }
            nh = h[0];
            off += len;
        }
    }
    Ok(ExtChain {
        protocol: nh,
        l4_offset: Some(off),
        fragment,
        ext_headers: count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::hex;

    // Captured on lo: ICMPv6 echo request ::1 -> ::1, id 0x1234 seq 1, data "ecmpfwd!".
    pub(crate) const ECHO_REQUEST: &str = "600f93e300103a40 00000000000000000000000000000001 \
        00000000000000000000000000000001 8000d0111234000165636d7066776421";

    #[test]
    fn captured_echo_request() {
        let b = hex(ECHO_REQUEST);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0);
        assert_eq!(p.flow_label(), 0xf93e3);
        assert_eq!(p.payload_len(), 16);
        assert_eq!(p.next_header(), ip_proto::ICMPV6);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), Ipv6Addr::LOCALHOST);
        assert_eq!(p.dst_addr(), Ipv6Addr::LOCALHOST);
        let chain = p.ext_chain(8).unwrap();
        assert_eq!(
            chain,
            ExtChain {
                protocol: ip_proto::ICMPV6,
                l4_offset: Some(0),
                fragment: None,
                ext_headers: 0
            }
        );
        let r = Repr::parse(&p).unwrap();
        let mut out = vec![0u8; r.buffer_len()];
        out[HEADER_LEN..].copy_from_slice(p.payload());
        r.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, b);
        assert_eq!(Packet::new_checked(&b[..55]).unwrap_err(), Error::Truncated);
        let mut v4 = b.clone();
        v4[0] = 0x40;
        assert_eq!(
            Repr::parse(&Packet::new_checked(&v4[..]).unwrap()).unwrap_err(),
            Error::Malformed
        );
    }

    /// Hop-by-hop (router alert), destination options (16 bytes), fragment (offset 0, M), then UDP.
    const CHAIN: &str = "3c00 0502 0000 0100 \
        2c01 0104 0000 0000 0000 0000 0000 0000 \
        1100 0001 deadbeef \
        3039 0035 0008 0000";

    #[test]
    fn walks_chain_to_udp() {
        let b = hex(CHAIN);
        let c = walk_ext_headers(ip_proto::HOPOPT, &b, 8).unwrap();
        assert_eq!(c.protocol, ip_proto::UDP);
        assert_eq!(c.l4_offset, Some(32));
        assert_eq!(c.ext_headers, 3);
        assert_eq!(
            c.fragment,
            Some(FragmentInfo {
                header_offset: 24,
                offset: 0,
                more_frags: true,
                ident: 0xdeadbeef
            })
        );
        assert_eq!(
            walk_ext_headers(ip_proto::HOPOPT, &b, 2).unwrap_err(),
            Error::TooManyExtHeaders
        );
        assert_eq!(
            walk_ext_headers(ip_proto::HOPOPT, &b[..23], 8).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            walk_ext_headers(ip_proto::HOPOPT, &b[..31], 8).unwrap_err(),
            Error::Truncated
        );
    }

    #[test]
    fn stops_at_non_first_fragment() {
        let b = hex("0600 05a9 00000007 0102030405060708");
        let c = walk_ext_headers(ip_proto::IPV6_FRAG, &b, 8).unwrap();
        assert_eq!(c.protocol, ip_proto::TCP);
        assert_eq!(c.l4_offset, None);
        assert_eq!(
            c.fragment,
            Some(FragmentInfo {
                header_offset: 0,
                offset: 1448,
                more_frags: true,
                ident: 7
            })
        );
        let h = FragmentHeader::new_checked(&b[..]).unwrap();
        let r = FragmentRepr::parse(&h).unwrap();
        assert_eq!((r.frag_offset, r.more_frags, r.ident), (1448, true, 7));
        let mut out = [0xffu8; 8];
        r.emit(&mut FragmentHeader::new_unchecked(&mut out[..]));
        assert_eq!(&out[..], &b[..8]);
        assert_eq!(h.payload().len(), 8);
    }

    #[test]
    fn ext_header_round_trip() {
        let b = hex(CHAIN);
        for (off, len) in [(0usize, 8usize), (8, 16)] {
            let h = ExtHeader::new_checked(&b[off..]).unwrap();
            assert_eq!(h.header_len(), len);
            let r = ExtHeaderRepr::parse(&h).unwrap();
            assert_eq!(r.buffer_len(), len);
            let mut out = vec![0xffu8; len];
            r.emit(&mut ExtHeader::new_unchecked(&mut out[..]));
            assert_eq!(&out[..], &b[off..off + len]);
        }
        assert_eq!(
            ExtHeader::new_checked(&b[8..20]).unwrap_err(),
            Error::Truncated
        );
        // Odd-sized data is padded with Pad1 bytes.
        let r = ExtHeaderRepr {
            next_header: ip_proto::TCP,
            data: &[1, 2, 3],
        };
        let mut out = [0xffu8; 8];
        r.emit(&mut ExtHeader::new_unchecked(&mut out[..]));
        assert_eq!(out, [6, 0, 1, 2, 3, 0, 0, 0]);
    }
}
