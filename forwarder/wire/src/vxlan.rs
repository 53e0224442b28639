//! VXLAN (RFC 7348): 8 bytes after the UDP header (destination port 4789): flags (I = VNI
//! valid), 24 reserved bits, the 24-bit VNI, 8 reserved bits; then the inner Ethernet frame.

use crate::bytes::{be32, put32};
use crate::{Error, Result};

/// Length of the VXLAN header.
pub const HEADER_LEN: usize = 8;
/// The I flag: the VNI is valid.
pub const FLAG_I: u8 = 0x08;
/// Largest VNI (24 bits).
pub const MAX_VNI: u32 = 0x00FF_FFFF;

/// A view of a VXLAN header and its inner frame.
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

    /// `Err(Truncated)` when shorter than 8 bytes.
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

    /// The flags byte.
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    /// I flag set: the VNI is valid.
    #[inline]
    pub fn vni_valid(&self) -> bool {
        self.flags() & FLAG_I != 0
    }

    /// VXLAN network identifier.
    #[inline]
    pub fn vni(&self) -> u32 {
        be32(self.buffer.as_ref(), 4) >> 8
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The inner Ethernet frame.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the flags byte and clears the 24 reserved bits after it.
    #[inline]
    pub fn set_flags(&mut self, flags: u8) {
        put32(self.buffer.as_mut(), 0, u32::from(flags) << 24);
    }

    /// Sets the VNI (low 24 bits) and clears the trailing reserved byte.
    #[inline]
    pub fn set_vni(&mut self, vni: u32) {
        put32(self.buffer.as_mut(), 4, (vni & MAX_VNI) << 8);
    }

    /// Mutable inner frame.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// A VXLAN header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// VNI (24 bits).
    pub vni: u32,
}

impl Repr {
    /// Reads a header; `Malformed` when the I flag is clear (RFC 7348: the VNI is not valid).
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        if !p.vni_valid() {
            return Err(Error::Malformed);
        }
        Ok(Repr { vni: p.vni() })
    }

    /// 8.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Same as [`header_len`](Self::header_len): the inner frame is not part of the repr.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header: I flag, zero reserved fields, the VNI's low 24 bits.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_flags(FLAG_I);
        p.set_vni(self.vni);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::hex;

    #[test]
    fn vni_round_trip() {
        let b = hex("08000000 0012d600 ffffffffffff");
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.vni_valid());
        assert_eq!(p.vni(), 4822);
        assert_eq!(p.payload().len(), 6);
        let r = Repr::parse(&p).unwrap();
        let mut out = [0xffu8; 8];
        r.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(&out[..], &b[..8]);
        let mut max = [0u8; 8];
        Repr { vni: 0xFFFF_FFFF }.emit(&mut Packet::new_unchecked(&mut max[..]));
        assert_eq!(Packet::new_unchecked(&max[..]).vni(), MAX_VNI);
        assert_eq!(max[7], 0);
    }

    #[test]
    fn rejects_missing_i_flag_and_short() {
        let b = hex("00000000 0012d600");
        assert_eq!(
            Repr::parse(&Packet::new_checked(&b[..]).unwrap()).unwrap_err(),
            Error::Malformed
        );
        assert_eq!(Packet::new_checked(&b[..7]).unwrap_err(), Error::Truncated);
    }
}
