//! GUE variant 0 (draft-ietf-intarea-gue): a 4-byte base header inside UDP: 2-bit version (0),
//! C bit (control message), 5-bit hlen (optional fields, in 32-bit words), 8-bit proto/ctype
//! (the payload's IP protocol, or the control type when C is set), 16 flag bits; then hlen * 4
//! bytes of optional fields selected by the flags; then the payload.

use crate::bytes::{be16, put16};
use crate::{Error, Result};

/// Length of the base header.
pub const BASE_HEADER_LEN: usize = 4;

/// A view of a GUE header and its payload.
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

    /// `Err(Truncated)` when shorter than 4 bytes or than 4 + hlen * 4.
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

    /// Version (top 2 bits; 0 here, 1 is the headerless direct-IP variant).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 6
    }

    /// C bit: a control message.
    #[inline]
    pub fn control(&self) -> bool {
        self.buffer.as_ref()[0] & 0x20 != 0
    }

    /// Length of the optional fields in 32-bit words.
    #[inline]
    pub fn hlen(&self) -> u8 {
        self.buffer.as_ref()[0] & 0x1F
    }

    /// Header length in bytes (4 + hlen * 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        BASE_HEADER_LEN + 4 * usize::from(self.hlen())
    }

    /// Payload IP protocol (C clear) or control type (C set).
    #[inline]
    pub fn proto_ctype(&self) -> u8 {
        self.buffer.as_ref()[1]
    }

    /// The flags selecting optional fields.
    #[inline]
    pub fn flags(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }

    /// The optional fields.
    #[inline]
    pub fn optional_fields(&self) -> &[u8] {
        &self.buffer.as_ref()[BASE_HEADER_LEN..self.header_len()]
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// Everything after the header and its optional fields.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        let d = self.buffer.as_ref();
        &d[BASE_HEADER_LEN + 4 * usize::from(d[0] & 0x1F)..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets version 0, the C bit and hlen (masked to 5 bits).
    #[inline]
    pub fn set_first_byte(&mut self, control: bool, hlen: u8) {
        self.buffer.as_mut()[0] = (u8::from(control) << 5) | (hlen & 0x1F);
    }

    /// Sets proto/ctype.
    #[inline]
    pub fn set_proto_ctype(&mut self, v: u8) {
        self.buffer.as_mut()[1] = v;
    }

    /// Sets the flags.
    #[inline]
    pub fn set_flags(&mut self, v: u16) {
        put16(self.buffer.as_mut(), 2, v);
    }

    /// Mutable optional fields.
    #[inline]
    pub fn optional_fields_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[BASE_HEADER_LEN..hl]
    }

    /// Mutable payload.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[hl..]
    }
}

/// A GUE variant 0 header, its optional fields borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr<'a> {
    /// Control message.
    pub control: bool,
    /// Payload IP protocol or control type.
    pub proto_ctype: u8,
    /// Flags.
    pub flags: u16,
    /// Optional fields: a multiple of 4 bytes, at most 124 (emit pads or cuts to that).
    pub optional_fields: &'a [u8],
}

impl<'a> Repr<'a> {
    /// Largest optional-field area (hlen 31).
    pub const MAX_OPTIONAL_LEN: usize = 124;

    /// Reads a header; `Unsupported` unless the version is 0.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(p: &Packet<&'a T>) -> Result<Repr<'a>> {
        p.check_len()?;
        if p.version() != 0 {
            return Err(Error::Unsupported);
        }
        let d: &'a [u8] = p.buffer.as_ref();
        Ok(Repr {
            control: p.control(),
            proto_ctype: p.proto_ctype(),
            flags: p.flags(),
            optional_fields: &d[BASE_HEADER_LEN..p.header_len()],
        })
    }

    /// 4 plus the optional fields rounded up to 4 (at most 128).
    pub const fn header_len(&self) -> usize {
        let n = self.optional_fields.len().div_ceil(4) * 4;
        BASE_HEADER_LEN
            + if n > Self::MAX_OPTIONAL_LEN {
                Self::MAX_OPTIONAL_LEN
            } else {
                n
            }
    }

    /// Same as [`header_len`](Self::header_len): the payload is not part of the repr.
    pub const fn buffer_len(&self) -> usize {
        self.header_len()
    }

    /// Writes the header and optional fields (zero-padded to a multiple of 4).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_first_byte(
            self.control,
            ((self.header_len() - BASE_HEADER_LEN) / 4) as u8,
        );
        p.set_proto_ctype(self.proto_ctype);
        p.set_flags(self.flags);
        let area = p.optional_fields_mut();
        let n = self.optional_fields.len().min(area.len());
        let (head, tail) = area.split_at_mut(n);
        head.copy_from_slice(&self.optional_fields[..n]);
        tail.fill(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ip_proto;
    use crate::test_util::hex;

    #[test]
    fn data_message_with_optional_field() {
        // hlen 1, proto IPv4, one flag bit, a 4-byte optional field, then an IPv4 header's start.
        let b = hex("01 04 8000 0000002a 4500");
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.version(), p.control(), p.hlen()), (0, false, 1));
        assert_eq!(p.proto_ctype(), ip_proto::IPV4);
        assert_eq!(p.flags(), 0x8000);
        assert_eq!(p.optional_fields(), &[0, 0, 0, 0x2a]);
        assert_eq!(p.payload(), &[0x45, 0x00]);
        let r = Repr::parse(&p).unwrap();
        let mut out = vec![0xffu8; r.buffer_len()];
        r.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(&out[..], &b[..8]);
    }

    #[test]
    fn control_and_errors() {
        let b = hex("20 05 0000");
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.control());
        assert_eq!(p.proto_ctype(), 5);
        assert_eq!(
            Packet::new_checked(&hex("02 04 0000 00000000")[..]).unwrap_err(),
            Error::Truncated
        );
        // Variant 1 carries IP directly: an IPv4 header reads as version 1.
        let direct_ip = hex("45000018 00000000 40110000 0a000001 0a000002 00000000");
        assert_eq!(
            Repr::parse(&Packet::new_checked(&direct_ip[..]).unwrap()).unwrap_err(),
            Error::Unsupported
        );
    }
}
