//! GRE (RFC 2784) with the key and sequence number extensions (RFC 2890).
//!
//! Base header: C (checksum present), reserved bits, K (key present), S (sequence present),
//! version (0), protocol type (an EtherType). Optional fields follow in that order, 4 bytes each:
//! checksum + reserved1, key, sequence number. RFC 1701 routing (R bit) and version 1 (PPTP) are
//! not handled: [`Repr::parse`] reports them as [`Error::Unsupported`].

use crate::bytes::{be16, be32, put16, put32};
use crate::{Error, Result, checksum};

/// Length of the base header.
pub const BASE_HEADER_LEN: usize = 4;

const FLAG_C: u8 = 0x80;
const FLAG_R: u8 = 0x40;
const FLAG_K: u8 = 0x20;
const FLAG_S: u8 = 0x10;
/// Strict source route and recursion control (RFC 1701), reserved0 in RFC 2784.
const RESERVED0_LOW: u8 = 0x0F;

/// A view of a GRE packet.
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

    /// `Err(Truncated)` when shorter than the base header plus the fields its flags announce.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < BASE_HEADER_LEN || len < self.header_len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    fn flags(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    /// C bit: checksum and reserved1 present.
    #[inline]
    pub fn checksum_present(&self) -> bool {
        self.flags() & FLAG_C != 0
    }

    /// R bit (RFC 1701 routing present; must be 0 in RFC 2784).
    #[inline]
    pub fn routing_present(&self) -> bool {
        self.flags() & FLAG_R != 0
    }

    /// K bit: key present.
    #[inline]
    pub fn key_present(&self) -> bool {
        self.flags() & FLAG_K != 0
    }

    /// S bit: sequence number present.
    #[inline]
    pub fn seq_present(&self) -> bool {
        self.flags() & FLAG_S != 0
    }

    /// Version (0 for RFC 2784).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[1] & 0x07
    }

    /// True when any bit that RFC 2784/2890 reserves is set (R, strict route, recursion,
    /// the flag bits of the second byte).
    #[inline]
    pub fn reserved_bits_set(&self) -> bool {
        let d = self.buffer.as_ref();
        d[0] & (FLAG_R | RESERVED0_LOW) != 0 || d[1] & 0xF8 != 0
    }

    /// Protocol type of the payload (an EtherType).
    #[inline]
    pub fn protocol_type(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }

    /// Header length in bytes: 4 plus 4 for each of C, K and S.
    #[inline]
    pub fn header_len(&self) -> usize {
        let f = self.flags();
        BASE_HEADER_LEN
            + 4 * (usize::from(f & FLAG_C != 0)
                + usize::from(f & FLAG_K != 0)
                + usize::from(f & FLAG_S != 0))
    }

    #[inline]
    fn key_offset(&self) -> usize {
        BASE_HEADER_LEN + 4 * usize::from(self.checksum_present())
    }

    #[inline]
    fn seq_offset(&self) -> usize {
        self.key_offset() + 4 * usize::from(self.key_present())
    }

    /// The checksum field, when C is set.
    #[inline]
    pub fn checksum(&self) -> Option<u16> {
        self.checksum_present()
            .then(|| be16(self.buffer.as_ref(), BASE_HEADER_LEN))
    }

    /// The key, when K is set.
    #[inline]
    pub fn key(&self) -> Option<u32> {
        self.key_present()
            .then(|| be32(self.buffer.as_ref(), self.key_offset()))
    }

    /// The sequence number, when S is set.
    #[inline]
    pub fn sequence(&self) -> Option<u32> {
        self.seq_present()
            .then(|| be32(self.buffer.as_ref(), self.seq_offset()))
    }

    /// True when no checksum is present or the checksum over header and payload (the whole
    /// buffer) verifies.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        !self.checksum_present() || checksum::verify(self.buffer.as_ref())
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// Everything after the header.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        let hl = Packet::new_unchecked(self.buffer.as_ref()).header_len();
        &self.buffer.as_ref()[hl..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the C, K and S bits and version 0, clearing every reserved bit. Do this first:
    /// the other setters write where these flags place their fields.
    #[inline]
    pub fn set_flags(&mut self, checksum: bool, key: bool, seq: bool) {
        let d = self.buffer.as_mut();
        d[0] = (u8::from(checksum) * FLAG_C) | (u8::from(key) * FLAG_K) | (u8::from(seq) * FLAG_S);
        d[1] = 0;
    }

    /// Sets the protocol type.
    #[inline]
    pub fn set_protocol_type(&mut self, v: u16) {
        put16(self.buffer.as_mut(), 2, v);
    }

    /// Sets the checksum field and clears reserved1; does nothing when C is clear.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        if self.checksum_present() {
            put32(self.buffer.as_mut(), BASE_HEADER_LEN, u32::from(v) << 16);
        }
    }

    /// Sets the key; does nothing when K is clear.
    #[inline]
    pub fn set_key(&mut self, v: u32) {
        if self.key_present() {
            let at = self.key_offset();
            put32(self.buffer.as_mut(), at, v);
        }
    }

    /// Sets the sequence number; does nothing when S is clear.
    #[inline]
    pub fn set_sequence(&mut self, v: u32) {
        if self.seq_present() {
            let at = self.seq_offset();
            put32(self.buffer.as_mut(), at, v);
        }
    }

    /// Computes the checksum over the whole buffer (header and payload) when C is set.
    #[inline]
    pub fn fill_checksum(&mut self) {
        if self.checksum_present() {
            self.set_checksum(0);
            let c = checksum::compute(self.buffer.as_ref());
            self.set_checksum(c);
        }
    }

    /// Mutable payload.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[hl..]
    }
}

/// The fields of a GRE header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Protocol type of the payload.
    pub protocol_type: u16,
    /// A checksum is present (filled by [`Packet::fill_checksum`] once the payload is written).
    pub checksum: bool,
    /// The key, if present.
    pub key: Option<u32>,
    /// The sequence number, if present.
    pub sequence: Option<u32>,
}

impl Repr {
    /// Reads a header: `Unsupported` for version != 0 or any reserved bit set (RFC 2784 says
    /// to discard), `Checksum` when a present checksum does not verify.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        if p.version() != 0 || p.reserved_bits_set() {
            return Err(Error::Unsupported);
        }
        if !p.verify_checksum() {
            return Err(Error::Checksum);
        }
        Ok(Repr {
            protocol_type: p.protocol_type(),
            checksum: p.checksum_present(),
            key: p.key(),
            sequence: p.sequence(),
        })
    }

    /// 4 plus the optional fields.
    pub const fn header_len(&self) -> usize {
        BASE_HEADER_LEN
            + 4 * (self.checksum as usize
                + self.key.is_some() as usize
                + self.sequence.is_some() as usize)
    }

    /// Same as [`header_len`](Self::header_len): the payload is not part of the repr.
    pub const fn buffer_len(&self) -> usize {
        self.header_len()
    }

    /// Writes the header; a checksum field is written as 0 (see [`Packet::fill_checksum`]).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_flags(self.checksum, self.key.is_some(), self.sequence.is_some());
        p.set_protocol_type(self.protocol_type);
        p.set_checksum(0);
        if let Some(k) = self.key {
            p.set_key(k);
        }
        if let Some(s) = self.sequence {
            p.set_sequence(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ethertype;
    use crate::test_util::hex;

    #[test]
    fn plain_ipv4_over_gre() {
        let b = hex("0000 0800 4500");
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.header_len(), 4);
        assert_eq!(p.protocol_type(), ethertype::IPV4);
        assert_eq!((p.checksum(), p.key(), p.sequence()), (None, None, None));
        assert_eq!(p.payload(), &[0x45, 0x00]);
        let r = Repr::parse(&p).unwrap();
        let mut out = [0xffu8; 4];
        r.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(&out[..], &b[..4]);
    }

    #[test]
    fn checksum_key_and_sequence() {
        // C, K, S set; transparent Ethernet; checksum over header + 4 payload bytes.
        let r = Repr {
            protocol_type: ethertype::TEB,
            checksum: true,
            key: Some(0x0001_e240),
            sequence: Some(7),
        };
        let mut buf = vec![0u8; r.header_len() + 4];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        r.emit(&mut p);
        p.payload_mut().copy_from_slice(&[1, 2, 3, 4]);
        p.fill_checksum();
        assert_eq!(&buf[..4], &[0xb0, 0x00, 0x65, 0x58]);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.header_len(), 16);
        assert_eq!(p.key(), Some(123_456));
        assert_eq!(p.sequence(), Some(7));
        assert!(p.verify_checksum());
        assert_eq!(Repr::parse(&p).unwrap(), r);
        assert_eq!(p.payload(), &[1, 2, 3, 4]);
        assert_eq!(
            Packet::new_checked(&buf[..15]).unwrap_err(),
            Error::Truncated
        );
        let mut bad = buf.clone();
        bad[19] ^= 1;
        assert_eq!(
            Repr::parse(&Packet::new_checked(&bad[..]).unwrap()).unwrap_err(),
            Error::Checksum
        );
    }

    #[test]
    fn rejects_version_and_routing() {
        let pptp = hex("3001 880b 0000 0000 0000 0000");
        assert_eq!(
            Repr::parse(&Packet::new_checked(&pptp[..]).unwrap()).unwrap_err(),
            Error::Unsupported
        );
        let routed = hex("4000 0800 0000 0000");
        assert_eq!(
            Repr::parse(&Packet::new_checked(&routed[..]).unwrap()).unwrap_err(),
            Error::Unsupported
        );
    }
}
