//! IPv4 (RFC 791): options via IHL, fragmentation fields, header checksum.

use core::net::Ipv4Addr;

use crate::bytes::{array, be16, put16};
use crate::{Error, Options, Result, checksum};

/// Length of the header without options.
pub const MIN_HEADER_LEN: usize = 20;
/// Length of the header with the most options (IHL 15).
pub const MAX_HEADER_LEN: usize = 60;

mod field {
    pub(super) const VER_IHL: usize = 0;
    pub(super) const DSCP_ECN: usize = 1;
    pub(super) const LENGTH: usize = 2;
    pub(super) const IDENT: usize = 4;
    pub(super) const FLG_OFF: usize = 6;
    pub(super) const TTL: usize = 8;
    pub(super) const PROTOCOL: usize = 9;
    pub(super) const CHECKSUM: usize = 10;
    pub(super) const SRC: usize = 12;
    pub(super) const DST: usize = 16;
}

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1FFF;

/// A view of an IPv4 packet.
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

    /// `Err(Truncated)` when the buffer is shorter than 20 bytes, the IHL or the total length;
    /// `Err(Malformed)` when IHL < 5 or the total length is below the header length.
    /// Bytes past the total length (link padding) are allowed.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = usize::from(self.header_len());
        if hl < MIN_HEADER_LEN {
            return Err(Error::Malformed);
        }
        if hl > len {
            return Err(Error::Truncated);
        }
        let total = usize::from(self.total_len());
        if total < hl {
            return Err(Error::Malformed);
        }
        if total > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version nibble (4 for a valid packet).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL * 4).
    #[inline]
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::VER_IHL] & 0x0F) * 4
    }

    /// Differentiated services code point.
    #[inline]
    pub fn dscp(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] >> 2
    }

    /// Explicit congestion notification bits.
    #[inline]
    pub fn ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] & 0x03
    }

    /// Total length (header and payload).
    #[inline]
    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Identification.
    #[inline]
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT)
    }

    /// Don't fragment.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_DF != 0
    }

    /// More fragments.
    #[inline]
    pub fn more_frags(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the field counts 8-byte units).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (be16(self.buffer.as_ref(), field::FLG_OFF) & OFFSET_MASK) << 3
    }

    /// True for any fragment: MF set or a non-zero offset.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF) & (FLAG_MF | OFFSET_MASK) != 0
    }

    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol of the payload.
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    /// Header checksum as stored.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(array::<4>(self.buffer.as_ref(), field::SRC))
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(array::<4>(self.buffer.as_ref(), field::DST))
    }

    /// True when the header checksum verifies.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::verify(&self.buffer.as_ref()[..usize::from(self.header_len())])
    }

    /// The options between the fixed header and the payload.
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[MIN_HEADER_LEN..usize::from(self.header_len())]
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The payload: from the header length to the total length (link padding excluded).
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        let d = self.buffer.as_ref();
        &d[usize::from((d[field::VER_IHL] & 0x0F) * 4)..usize::from(be16(d, field::LENGTH))]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets version 4 and the header length (bytes, a multiple of 4 up to 60).
    #[inline]
    pub fn set_version_and_header_len(&mut self, header_len: u8) {
        self.buffer.as_mut()[field::VER_IHL] = 0x40 | ((header_len / 4) & 0x0F);
    }

    /// Sets DSCP and ECN.
    #[inline]
    pub fn set_dscp_ecn(&mut self, dscp: u8, ecn: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = (dscp << 2) | (ecn & 0x03);
    }

    /// Sets the total length.
    #[inline]
    pub fn set_total_len(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::LENGTH, v);
    }

    /// Sets the identification.
    #[inline]
    pub fn set_ident(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::IDENT, v);
    }

    /// Sets DF, MF and the fragment offset (bytes; the low 3 bits are dropped). The reserved
    /// flag is cleared.
    #[inline]
    pub fn set_frag_fields(&mut self, dont_frag: bool, more_frags: bool, offset: u16) {
        let v =
            (u16::from(dont_frag) * FLAG_DF) | (u16::from(more_frags) * FLAG_MF) | (offset >> 3);
        put16(self.buffer.as_mut(), field::FLG_OFF, v);
    }

    /// Sets the TTL (checksum untouched; see [`decrement_ttl`](Self::decrement_ttl)).
    #[inline]
    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v;
    }

    /// Sets the protocol.
    #[inline]
    pub fn set_protocol(&mut self, v: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = v;
    }

    /// Sets the stored checksum.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC..field::SRC + 4].copy_from_slice(&a.octets());
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::DST..field::DST + 4].copy_from_slice(&a.octets());
    }

    /// Recomputes the header checksum over the whole header.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = usize::from(self.header_len());
        let c = checksum::compute(&self.buffer.as_ref()[..hl]);
        self.set_checksum(c);
    }

    /// Decrements the TTL (saturating at 0) and updates the checksum incrementally
    /// (RFC 1624); returns the new TTL.
    #[inline]
    pub fn decrement_ttl(&mut self) -> u8 {
        let (ttl, proto) = (self.ttl(), self.protocol());
        let new = ttl.saturating_sub(1);
        let c = checksum::update16(
            self.checksum(),
            u16::from_be_bytes([ttl, proto]),
            u16::from_be_bytes([new, proto]),
        );
        self.set_ttl(new);
        self.set_checksum(c);
        new
    }

    /// Mutable options area.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = usize::from(self.header_len());
        &mut self.buffer.as_mut()[MIN_HEADER_LEN..hl]
    }

    /// Mutable payload (header length to total length).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, total) = (
            usize::from(self.header_len()),
            usize::from(self.total_len()),
        );
        &mut self.buffer.as_mut()[hl..total]
    }
}

/// The fields of an IPv4 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Payload protocol.
    pub protocol: u8,
    /// Time to live.
    pub ttl: u8,
    /// DSCP (6 bits).
    pub dscp: u8,
    /// ECN (2 bits).
    pub ecn: u8,
    /// Identification.
    pub ident: u16,
    /// Don't fragment.
    pub dont_frag: bool,
    /// More fragments.
    pub more_frags: bool,
    /// Fragment offset in bytes (a multiple of 8).
    pub frag_offset: u16,
    /// Options, padded to a multiple of 4.
    pub options: Options,
    /// Payload length (total length minus header length).
    pub payload_len: usize,
}

impl Repr {
    /// Reads a header: checks the lengths, version 4 (`Malformed` otherwise) and the header
    /// checksum (`Checksum`).
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        if p.version() != 4 {
            return Err(Error::Malformed);
        }
        if !p.verify_checksum() {
            return Err(Error::Checksum);
        }
        Ok(Repr {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            protocol: p.protocol(),
            ttl: p.ttl(),
            dscp: p.dscp(),
            ecn: p.ecn(),
            ident: p.ident(),
            dont_frag: p.dont_frag(),
            more_frags: p.more_frags(),
            frag_offset: p.frag_offset(),
            options: Options::new(p.options())?,
            payload_len: usize::from(p.total_len()) - usize::from(p.header_len()),
        })
    }

    /// 20 plus the options.
    pub const fn header_len(&self) -> usize {
        MIN_HEADER_LEN + self.options.len as usize
    }

    /// Header plus payload (the total length).
    pub const fn buffer_len(&self) -> usize {
        self.header_len() + self.payload_len
    }

    /// Writes the header and its checksum; the payload area is left as it is. The total length
    /// saturates at 65535.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        let hl = self.header_len();
        p.set_version_and_header_len(hl as u8);
        p.set_dscp_ecn(self.dscp, self.ecn);
        p.set_total_len(u16::try_from(self.buffer_len()).unwrap_or(u16::MAX));
        p.set_ident(self.ident);
        p.set_frag_fields(self.dont_frag, self.more_frags, self.frag_offset);
        p.set_ttl(self.ttl);
        p.set_protocol(self.protocol);
        p.set_src_addr(self.src_addr);
        p.set_dst_addr(self.dst_addr);
        p.options_mut().copy_from_slice(self.options.as_bytes());
        p.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ip_proto;
    use crate::test_util::hex;

    // A captured TCP SYN 192.168.254.103:59058 -> 192.168.254.107:8888 (IP header checksum 7430).
    pub(crate) const SYN: &str = "4500003c4867400040067430c0a8fe67c0a8fe6b\
        e6b222b860a0e96f00000000a002ffffd5020000020405b40402080a0055a1080000000001030307";

    #[test]
    fn captured_syn() {
        let b = hex(SYN);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 60);
        assert_eq!(p.ident(), 0x4867);
        assert!(p.dont_frag() && !p.more_frags() && !p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), ip_proto::TCP);
        assert_eq!(p.checksum(), 0x7430);
        assert!(p.verify_checksum());
        assert_eq!(p.src_addr(), Ipv4Addr::new(192, 168, 254, 103));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(192, 168, 254, 107));
        assert_eq!(p.payload().len(), 40);
        let r = Repr::parse(&p).unwrap();
        let mut out = vec![0u8; r.buffer_len()];
        out[20..].copy_from_slice(p.payload());
        r.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, b);
    }

    #[test]
    fn options_and_fragment_round_trip() {
        // Router alert option, MF set, offset 1480 bytes; checksum filled by emit.
        let r = Repr {
            src_addr: Ipv4Addr::new(10, 0, 0, 1),
            dst_addr: Ipv4Addr::new(10, 0, 0, 2),
            protocol: ip_proto::UDP,
            ttl: 3,
            dscp: 46,
            ecn: 1,
            ident: 0xbeef,
            dont_frag: false,
            more_frags: true,
            frag_offset: 1480,
            options: Options::new(&[0x94, 0x04, 0x00, 0x00]).unwrap(),
            payload_len: 8,
        };
        let mut buf = vec![0u8; r.buffer_len() + 6];
        r.emit(&mut Packet::new_unchecked(&mut buf[..]));
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum());
        assert!(p.is_fragment());
        assert_eq!(p.options(), &[0x94, 0x04, 0, 0]);
        assert_eq!(p.payload().len(), 8, "padding excluded");
        assert_eq!(Repr::parse(&p).unwrap(), r);
    }

    #[test]
    fn decrement_ttl_keeps_checksum_valid() {
        let mut b = hex(SYN);
        for expect in (0..64).rev() {
            let mut p = Packet::new_unchecked(&mut b[..]);
            assert_eq!(p.decrement_ttl(), expect);
            assert!(p.verify_checksum());
        }
    }

    #[test]
    fn length_checks() {
        let b = hex(SYN);
        assert_eq!(Packet::new_checked(&b[..19]).unwrap_err(), Error::Truncated);
        assert_eq!(Packet::new_checked(&b[..59]).unwrap_err(), Error::Truncated);
        let mut m = b.clone();
        m[0] = 0x44;
        assert_eq!(Packet::new_checked(&m[..]).unwrap_err(), Error::Malformed);
        m[0] = 0x4f;
        assert!(
            Packet::new_checked(&m[..]).is_ok(),
            "60-byte header filling the packet"
        );
        m[2..4].copy_from_slice(&56u16.to_be_bytes());
        assert_eq!(Packet::new_checked(&m[..]).unwrap_err(), Error::Malformed);
        m[2..4].copy_from_slice(&80u16.to_be_bytes());
        assert_eq!(Packet::new_checked(&m[..]).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn parse_rejects_version_and_checksum() {
        let mut b = hex(SYN);
        b[11] ^= 1;
        assert_eq!(
            Repr::parse(&Packet::new_checked(&b[..]).unwrap()).unwrap_err(),
            Error::Checksum
        );
        b[11] ^= 1;
        b[0] = 0x65;
        assert_eq!(
            Repr::parse(&Packet::new_checked(&b[..]).unwrap()).unwrap_err(),
            Error::Malformed
        );
    }
}
