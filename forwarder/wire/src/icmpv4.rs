//! ICMP for IPv4 (RFC 792): type, code, checksum, 4 bytes of type-specific header, data.
//! The checksum covers the whole message (no pseudo-header).

use crate::bytes::{be16, be32, put16, put32};
use crate::{Error, Result, checksum};

/// Length of the header (type, code, checksum, rest of header).
pub const HEADER_LEN: usize = 8;

/// Message types the forwarder sends or recognises.
pub mod msg_type {
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 0;
    /// Destination unreachable.
    pub const DST_UNREACHABLE: u8 = 3;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 8;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 11;
    /// Parameter problem.
    pub const PARAM_PROBLEM: u8 = 12;
}

/// A view of an ICMPv4 message.
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

    /// Message type.
    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    /// Code.
    #[inline]
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[1]
    }

    /// Checksum as stored.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }

    /// The 4 type-specific header bytes (echo id/seq, next-hop MTU, pointer, ...).
    #[inline]
    pub fn rest_of_header(&self) -> u32 {
        be32(self.buffer.as_ref(), 4)
    }

    /// Echo identifier (echo request/reply).
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        be16(self.buffer.as_ref(), 4)
    }

    /// Echo sequence number (echo request/reply).
    #[inline]
    pub fn echo_seq_no(&self) -> u16 {
        be16(self.buffer.as_ref(), 6)
    }

    /// True when the checksum over the whole buffer verifies.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::verify(self.buffer.as_ref())
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// Echo data, or the invoking packet's headers for error messages.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the message type.
    #[inline]
    pub fn set_msg_type(&mut self, v: u8) {
        self.buffer.as_mut()[0] = v;
    }

    /// Sets the code.
    #[inline]
    pub fn set_code(&mut self, v: u8) {
        self.buffer.as_mut()[1] = v;
    }

    /// Sets the stored checksum.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        put16(self.buffer.as_mut(), 2, v);
    }

    /// Sets the type-specific header bytes.
    #[inline]
    pub fn set_rest_of_header(&mut self, v: u32) {
        put32(self.buffer.as_mut(), 4, v);
    }

    /// Mutable payload.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }

    /// Computes the checksum over the whole buffer.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::compute(self.buffer.as_ref());
        self.set_checksum(c);
    }
}

/// An ICMPv4 message, its data borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr<'a> {
    /// Message type.
    pub msg_type: u8,
    /// Code.
    pub code: u8,
    /// The 4 type-specific header bytes.
    pub rest_of_header: u32,
    /// The data after the header.
    pub data: &'a [u8],
}

impl<'a> Repr<'a> {
    /// Reads a message; `Checksum` when its checksum does not verify.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(p: &Packet<&'a T>) -> Result<Repr<'a>> {
        p.check_len()?;
        if !p.verify_checksum() {
            return Err(Error::Checksum);
        }
        Ok(Repr {
            msg_type: p.msg_type(),
            code: p.code(),
            rest_of_header: p.rest_of_header(),
            data: p.payload(),
        })
    }

    /// 8.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Header plus data.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.data.len()
    }

    /// Writes the message and its checksum into a buffer of exactly [`buffer_len`](Self::buffer_len)
    /// bytes (a longer one gets its tail zeroed and checksummed too).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_msg_type(self.msg_type);
        p.set_code(self.code);
        p.set_rest_of_header(self.rest_of_header);
        let area = p.payload_mut();
        let n = self.data.len().min(area.len());
        let (head, tail) = area.split_at_mut(n);
        head.copy_from_slice(&self.data[..n]);
        tail.fill(0);
        p.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipv4;
    use crate::test_util::hex;

    // Captured on lo: the kernel's port unreachable for a UDP datagram to 127.0.0.1:53,
    // quoting the datagram's IP header and data.
    const UNREACHABLE: &str =
        "03031e870000000045000021fc6d40004011405c7f0000017f0000019c400035000dfe2068656c6c6f";

    #[test]
    fn captured_port_unreachable() {
        let b = hex(UNREACHABLE);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.msg_type(), p.code()), (msg_type::DST_UNREACHABLE, 3));
        assert_eq!(p.checksum(), 0x1e87);
        assert!(p.verify_checksum());
        let inner = ipv4::Packet::new_checked(p.payload()).unwrap();
        assert_eq!(inner.dst_addr(), core::net::Ipv4Addr::LOCALHOST);
        let r = Repr::parse(&p).unwrap();
        let mut out = vec![0xaau8; r.buffer_len()];
        r.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, b);
    }

    #[test]
    fn echo_fields_and_bad_checksum() {
        let r = Repr {
            msg_type: msg_type::ECHO_REQUEST,
            code: 0,
            rest_of_header: 0x1234_0001,
            data: b"ecmpfwd!",
        };
        let mut out = vec![0u8; r.buffer_len()];
        r.emit(&mut Packet::new_unchecked(&mut out[..]));
        let p = Packet::new_checked(&out[..]).unwrap();
        assert_eq!((p.echo_ident(), p.echo_seq_no()), (0x1234, 1));
        assert_eq!(Repr::parse(&p).unwrap(), r);
        out[9] ^= 0x40;
        assert_eq!(
            Repr::parse(&Packet::new_checked(&out[..]).unwrap()).unwrap_err(),
            Error::Checksum
        );
        assert_eq!(
            Packet::new_checked(&out[..7]).unwrap_err(),
            Error::Truncated
        );
    }
}
