//! IEEE 802.1Q (C-tag) and 802.1ad (S-tag, QinQ) VLAN tags.
//!
//! A tag is announced by the preceding EtherType field (its TPID: [`ethertype::VLAN`] or
//! [`ethertype::QINQ`]); the view covers what follows: the 16-bit TCI and the encapsulated
//! EtherType, then the payload. QinQ is an S-tag whose EtherType announces a C-tag.
//!
//! [`ethertype::VLAN`]: crate::ethertype::VLAN
//! [`ethertype::QINQ`]: crate::ethertype::QINQ

use crate::bytes::{be16, put16};
use crate::{Error, Result, ethertype};

/// Length of a tag after its TPID (TCI + EtherType).
pub const HEADER_LEN: usize = 4;

/// True when `t` is a TPID that announces a VLAN tag.
#[inline]
pub const fn is_tpid(t: u16) -> bool {
    t == ethertype::VLAN || t == ethertype::QINQ
}

/// A view of one VLAN tag (TCI and encapsulated EtherType).
#[derive(Debug, Clone)]
pub struct Tag<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Tag<T> {
    /// Wraps a buffer without checks (accessors may panic on a short buffer).
    pub const fn new_unchecked(buffer: T) -> Self {
        Tag { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let t = Self::new_unchecked(buffer);
        t.check_len()?;
        Ok(t)
    }

    /// `Err(Truncated)` when shorter than 4 bytes.
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

    /// The whole tag control information.
    #[inline]
    pub fn tci(&self) -> u16 {
        be16(self.buffer.as_ref(), 0)
    }

    /// Priority code point (3 bits).
    #[inline]
    pub fn pcp(&self) -> u8 {
        (self.tci() >> 13) as u8
    }

    /// Drop eligible indicator.
    #[inline]
    pub fn dei(&self) -> bool {
        self.tci() & 0x1000 != 0
    }

    /// VLAN identifier (12 bits).
    #[inline]
    pub fn vid(&self) -> u16 {
        self.tci() & 0x0FFF
    }

    /// The EtherType of what follows the tag (may be another TPID).
    #[inline]
    pub fn ethertype(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Tag<&'a T> {
    /// Everything after the tag.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Tag<T> {
    /// Sets the TCI.
    #[inline]
    pub fn set_tci(&mut self, tci: u16) {
        put16(self.buffer.as_mut(), 0, tci);
    }

    /// Sets PCP, DEI and VID (the VID is masked to 12 bits, the PCP to 3).
    #[inline]
    pub fn set_fields(&mut self, pcp: u8, dei: bool, vid: u16) {
        self.set_tci((u16::from(pcp & 7) << 13) | (u16::from(dei) << 12) | (vid & 0x0FFF));
    }

    /// Sets the encapsulated EtherType.
    #[inline]
    pub fn set_ethertype(&mut self, t: u16) {
        put16(self.buffer.as_mut(), 2, t);
    }

    /// Mutable payload.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// The fields of a VLAN tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Priority code point (0..=7).
    pub pcp: u8,
    /// Drop eligible indicator.
    pub dei: bool,
    /// VLAN id (0..=4095).
    pub vid: u16,
    /// Encapsulated EtherType.
    pub ethertype: u16,
}

impl Repr {
    /// Reads a tag.
    pub fn parse<T: AsRef<[u8]>>(tag: &Tag<T>) -> Result<Repr> {
        tag.check_len()?;
        Ok(Repr {
            pcp: tag.pcp(),
            dei: tag.dei(),
            vid: tag.vid(),
            ethertype: tag.ethertype(),
        })
    }

    /// 4.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Same as [`header_len`](Self::header_len).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the tag (PCP and VID masked to their widths).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, tag: &mut Tag<T>) {
        tag.set_fields(self.pcp, self.dei, self.vid);
        tag.set_ethertype(self.ethertype);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ethernet::Frame;
    use crate::test_util::hex;

    #[test]
    fn qinq_frame() {
        // S-tag vid 100 pcp 3, C-tag vid 200 dei, then IPv4.
        let b = hex("020000000002 020000000001 88a8 6064 8100 10c8 0800 45");
        let f = Frame::new_checked(&b[..]).unwrap();
        assert!(is_tpid(f.ethertype()));
        let s = Tag::new_checked(f.payload()).unwrap();
        assert_eq!(
            (s.pcp(), s.dei(), s.vid(), s.ethertype()),
            (3, false, 100, ethertype::VLAN)
        );
        let c = Tag::new_checked(s.payload()).unwrap();
        assert_eq!(
            (c.pcp(), c.dei(), c.vid(), c.ethertype()),
            (0, true, 200, ethertype::IPV4)
        );
        assert_eq!(c.payload(), &[0x45]);
        for off in [14, 18] {
            let r = Repr::parse(&Tag::new_checked(&b[off..]).unwrap()).unwrap();
            let mut out = [0u8; 4];
            r.emit(&mut Tag::new_unchecked(&mut out[..]));
            assert_eq!(&out[..], &b[off..off + 4]);
        }
        assert_eq!(Tag::new_checked(&b[..3]).unwrap_err(), Error::Truncated);
    }
}
