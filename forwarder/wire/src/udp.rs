//! UDP headers (RFC 768). Checksums take the pseudo-header sum from
//! [`checksum::pseudo_header_v4`] or [`checksum::pseudo_header_v6`] over the UDP length.

use crate::bytes::{be16, put16};
use crate::{Error, Result, checksum};

/// Length of the header.
pub const HEADER_LEN: usize = 8;

/// A view of a UDP datagram.
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

    /// `Err(Truncated)` when shorter than 8 bytes or than the length field;
    /// `Err(Malformed)` when the length field is below 8.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let l = usize::from(self.len());
        if l < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if l > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), 0)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }

    /// Length of header and data.
    #[inline]
    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), 4)
    }

    /// True when the length field says there is no data.
    #[inline]
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    /// Checksum as stored; 0 means none was computed (allowed over IPv4 only).
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), 6)
    }

    /// True when the checksum over the datagram (up to the length field) and the pseudo-header
    /// sum `pseudo` verifies. A zero checksum does not verify: callers over IPv4 treat it as
    /// "none" before calling this.
    #[inline]
    pub fn verify_checksum(&self, pseudo: u16) -> bool {
        let d = &self.buffer.as_ref()[..usize::from(self.len())];
        self.checksum() != 0 && checksum::add(pseudo, checksum::data(d)) == 0xFFFF
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The data, up to the length field (link padding excluded).
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        let d = self.buffer.as_ref();
        &d[HEADER_LEN..usize::from(be16(d, 4))]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the source port.
    #[inline]
    pub fn set_src_port(&mut self, v: u16) {
        put16(self.buffer.as_mut(), 0, v);
    }

    /// Sets the destination port.
    #[inline]
    pub fn set_dst_port(&mut self, v: u16) {
        put16(self.buffer.as_mut(), 2, v);
    }

    /// Sets the length field.
    #[inline]
    pub fn set_len(&mut self, v: u16) {
        put16(self.buffer.as_mut(), 4, v);
    }

    /// Sets the stored checksum.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        put16(self.buffer.as_mut(), 6, v);
    }

    /// Mutable data (up to the length field).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let l = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..l]
    }

    /// Computes the checksum over the datagram and the pseudo-header sum `pseudo`; a computed
    /// 0 is sent as 0xFFFF, since 0 means "no checksum" (RFC 768).
    #[inline]
    pub fn fill_checksum(&mut self, pseudo: u16) {
        self.set_checksum(0);
        let l = usize::from(self.len());
        let c = !checksum::add(pseudo, checksum::data(&self.buffer.as_ref()[..l]));
        self.set_checksum(if c == 0 { 0xFFFF } else { c });
    }
}

/// The fields of a UDP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Data length.
    pub payload_len: usize,
}

impl Repr {
    /// Reads a header (the checksum needs the IP addresses: see [`Packet::verify_checksum`]).
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        Ok(Repr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            payload_len: usize::from(p.len()) - HEADER_LEN,
        })
    }

    /// 8.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Header plus data.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes the header with a zero checksum (length saturating at 65535); write the data,
    /// then call [`Packet::fill_checksum`] (or leave 0 over IPv4).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_len(u16::try_from(self.buffer_len()).unwrap_or(u16::MAX));
        p.set_checksum(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ip_proto;
    use crate::test_util::hex;

    // Captured on lo: 127.0.0.1:40000 -> 127.0.0.1:53 "hello". Loopback leaves the checksum
    // offloaded (fe20, a partial sum); the full one, computed independently, is 218a.
    const DATAGRAM: &str = "9c400035000dfe2068656c6c6f";
    const LO: [u8; 4] = [127, 0, 0, 1];

    #[test]
    fn captured_datagram() {
        let b = hex(DATAGRAM);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port(), p.len()), (40000, 53, 13));
        assert_eq!(p.payload(), b"hello");
        let pseudo = checksum::pseudo_header_v4(LO, LO, ip_proto::UDP, p.len());
        assert!(!p.verify_checksum(pseudo), "offloaded partial checksum");

        let r = Repr::parse(&p).unwrap();
        assert_eq!(r.payload_len, 5);
        let mut out = vec![0u8; r.buffer_len()];
        let mut q = Packet::new_unchecked(&mut out[..]);
        r.emit(&mut q);
        q.payload_mut().copy_from_slice(b"hello");
        q.fill_checksum(pseudo);
        assert_eq!(q.checksum(), 0x218a);
        assert!(q.verify_checksum(pseudo));
        assert_eq!(out[..6], b[..6]);
    }

    #[test]
    fn captured_datagram_v6() {
        // ::1 -> ::1 port 4789, same offload story; full checksum d29f.
        let b = hex("d6ab12b5000d002068656c6c6f");
        let one = core::net::Ipv6Addr::LOCALHOST.octets();
        let pseudo = checksum::pseudo_header_v6(one, one, ip_proto::UDP, 13);
        let mut p = Packet::new_checked(b).unwrap();
        p.fill_checksum(pseudo);
        assert_eq!(p.checksum(), 0xd29f);
        assert!(p.verify_checksum(pseudo));
    }

    #[test]
    fn length_checks_and_padding() {
        let mut b = hex(DATAGRAM);
        b.extend_from_slice(&[0; 4]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload(), b"hello", "padding excluded");
        assert_eq!(Packet::new_checked(&b[..7]).unwrap_err(), Error::Truncated);
        assert_eq!(Packet::new_checked(&b[..12]).unwrap_err(), Error::Truncated);
        b[5] = 7;
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Malformed);
    }
}
