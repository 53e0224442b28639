//! Ethernet II frames (destination, source, EtherType; no FCS).

use crate::bytes::{array, be16, put16};
use crate::{Error, Result};

/// A 48-bit MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Address(pub [u8; 6]);

impl Address {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: Address = Address([0xff; 6]);

    /// True for ff:ff:ff:ff:ff:ff.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// True when the group bit (least significant bit of the first octet) is set.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// True for an individual (non-group) address other than all zeros.
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast() && self.0 != [0; 6]
    }

    /// True when the locally administered bit is set.
    pub fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }
}

impl core::fmt::Display for Address {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let a = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            a[0], a[1], a[2], a[3], a[4], a[5]
        )
    }
}

/// Length of the Ethernet II header.
pub const HEADER_LEN: usize = 14;

mod field {
    pub(super) const DST: usize = 0;
    pub(super) const SRC: usize = 6;
    pub(super) const ETHERTYPE: usize = 12;
}

/// A view of an Ethernet II frame.
#[derive(Debug, Clone)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without checks (accessors may panic on a short buffer).
    pub const fn new_unchecked(buffer: T) -> Self {
        Frame { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let f = Self::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }

    /// `Err(Truncated)` when the buffer is shorter than the 14-byte header.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Destination MAC.
    #[inline]
    pub fn dst_addr(&self) -> Address {
        Address(array(self.buffer.as_ref(), field::DST))
    }

    /// Source MAC.
    #[inline]
    pub fn src_addr(&self) -> Address {
        Address(array(self.buffer.as_ref(), field::SRC))
    }

    /// EtherType (or the TPID of a VLAN tag that follows).
    #[inline]
    pub fn ethertype(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ETHERTYPE)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Frame<&'a T> {
    /// Everything after the 14-byte header.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Sets the destination MAC.
    #[inline]
    pub fn set_dst_addr(&mut self, a: Address) {
        self.buffer.as_mut()[field::DST..field::DST + 6].copy_from_slice(&a.0);
    }

    /// Sets the source MAC.
    #[inline]
    pub fn set_src_addr(&mut self, a: Address) {
        self.buffer.as_mut()[field::SRC..field::SRC + 6].copy_from_slice(&a.0);
    }

    /// Sets the EtherType.
    #[inline]
    pub fn set_ethertype(&mut self, t: u16) {
        put16(self.buffer.as_mut(), field::ETHERTYPE, t);
    }

    /// Mutable payload.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// The fields of an Ethernet II header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source MAC.
    pub src_addr: Address,
    /// Destination MAC.
    pub dst_addr: Address,
    /// EtherType.
    pub ethertype: u16,
}

impl Repr {
    /// Reads the header of a checked frame.
    pub fn parse<T: AsRef<[u8]>>(frame: &Frame<T>) -> Result<Repr> {
        frame.check_len()?;
        Ok(Repr {
            src_addr: frame.src_addr(),
            dst_addr: frame.dst_addr(),
            ethertype: frame.ethertype(),
        })
    }

    /// 14.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Same as [`header_len`](Self::header_len): the payload is not part of the repr.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header into the first 14 bytes of `frame`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut Frame<T>) {
        frame.set_dst_addr(self.dst_addr);
        frame.set_src_addr(self.src_addr);
        frame.set_ethertype(self.ethertype);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ethertype;
    use crate::test_util::hex;

    // Start of a captured ARP request broadcast by 00:0c:29:3c:7e:f1.
    const FRAME: &str = "ffffffffffff 000c293c7ef1 0806 0001080006040001";

    #[test]
    fn parse_and_round_trip() {
        let bytes = hex(FRAME);
        let f = Frame::new_checked(&bytes[..]).unwrap();
        assert!(f.dst_addr().is_broadcast());
        assert_eq!(f.src_addr(), Address([0x00, 0x0c, 0x29, 0x3c, 0x7e, 0xf1]));
        assert!(f.src_addr().is_unicast());
        assert_eq!(f.ethertype(), ethertype::ARP);
        assert_eq!(f.payload().len(), 8);
        assert_eq!(f.src_addr().to_string(), "00:0c:29:3c:7e:f1");
        let r = Repr::parse(&f).unwrap();
        let mut out = bytes.clone();
        out[..HEADER_LEN].fill(0);
        r.emit(&mut Frame::new_unchecked(&mut out[..]));
        assert_eq!(out, bytes);
    }

    #[test]
    fn short_buffer() {
        assert_eq!(
            Frame::new_checked(&[0u8; 13][..]).unwrap_err(),
            Error::Truncated
        );
    }
}
