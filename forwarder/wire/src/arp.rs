//! ARP for IPv4 over Ethernet (RFC 826). Other hardware/protocol pairs are reported as
//! [`Error::Unsupported`] because the view's address accessors assume 6-byte and 4-byte addresses.

use core::net::Ipv4Addr;

use crate::bytes::{array, be16, put16};
use crate::ethernet::Address;
use crate::{Error, Result, ethertype};

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;
/// Hardware type of Ethernet.
pub const HTYPE_ETHERNET: u16 = 1;

mod field {
    pub(super) const HTYPE: usize = 0;
    pub(super) const PTYPE: usize = 2;
    pub(super) const HLEN: usize = 4;
    pub(super) const PLEN: usize = 5;
    pub(super) const OPER: usize = 6;
    pub(super) const SHA: usize = 8;
    pub(super) const SPA: usize = 14;
    pub(super) const THA: usize = 18;
    pub(super) const TPA: usize = 24;
}

/// ARP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// 1: who-has.
    Request,
    /// 2: is-at.
    Reply,
    /// Any other code (RARP and friends).
    Other(u16),
}

impl From<u16> for Operation {
    fn from(v: u16) -> Self {
        match v {
            1 => Operation::Request,
            2 => Operation::Reply,
            o => Operation::Other(o),
        }
    }
}

impl From<Operation> for u16 {
    fn from(o: Operation) -> u16 {
        match o {
            Operation::Request => 1,
            Operation::Reply => 2,
            Operation::Other(v) => v,
        }
    }
}

/// A view of an Ethernet/IPv4 ARP packet.
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

    /// `Err(Truncated)` below 8 bytes or below what the address lengths announce;
    /// `Err(Unsupported)` unless the address lengths are 6 and 4.
    pub fn check_len(&self) -> Result<()> {
        let d = self.buffer.as_ref();
        if d.len() < field::SHA {
            return Err(Error::Truncated);
        }
        let (hlen, plen) = (usize::from(d[field::HLEN]), usize::from(d[field::PLEN]));
        if d.len() < field::SHA + 2 * (hlen + plen) {
            return Err(Error::Truncated);
        }
        if hlen != 6 || plen != 4 {
            return Err(Error::Unsupported);
        }
        Ok(())
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Hardware type (1 = Ethernet).
    pub fn hardware_type(&self) -> u16 {
        be16(self.buffer.as_ref(), field::HTYPE)
    }

    /// Protocol type (an EtherType, 0x0800 for IPv4).
    pub fn protocol_type(&self) -> u16 {
        be16(self.buffer.as_ref(), field::PTYPE)
    }

    /// Hardware address length.
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// Protocol address length.
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// Operation.
    pub fn operation(&self) -> Operation {
        Operation::from(be16(self.buffer.as_ref(), field::OPER))
    }

    /// Sender hardware address.
    pub fn source_hardware_addr(&self) -> Address {
        Address(array(self.buffer.as_ref(), field::SHA))
    }

    /// Sender protocol address.
    pub fn source_protocol_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(array::<4>(self.buffer.as_ref(), field::SPA))
    }

    /// Target hardware address.
    pub fn target_hardware_addr(&self) -> Address {
        Address(array(self.buffer.as_ref(), field::THA))
    }

    /// Target protocol address.
    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(array::<4>(self.buffer.as_ref(), field::TPA))
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// Bytes after the 28-byte packet (Ethernet padding, usually).
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[PACKET_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the hardware type.
    pub fn set_hardware_type(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::HTYPE, v);
    }

    /// Sets the protocol type.
    pub fn set_protocol_type(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::PTYPE, v);
    }

    /// Sets the hardware address length.
    pub fn set_hardware_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::HLEN] = v;
    }

    /// Sets the protocol address length.
    pub fn set_protocol_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::PLEN] = v;
    }

    /// Sets the operation.
    pub fn set_operation(&mut self, op: Operation) {
        put16(self.buffer.as_mut(), field::OPER, u16::from(op));
    }

    /// Sets the sender hardware address.
    pub fn set_source_hardware_addr(&mut self, a: Address) {
        self.buffer.as_mut()[field::SHA..field::SHA + 6].copy_from_slice(&a.0);
    }

    /// Sets the sender protocol address.
    pub fn set_source_protocol_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SPA..field::SPA + 4].copy_from_slice(&a.octets());
    }

    /// Sets the target hardware address.
    pub fn set_target_hardware_addr(&mut self, a: Address) {
        self.buffer.as_mut()[field::THA..field::THA + 6].copy_from_slice(&a.0);
    }

    /// Sets the target protocol address.
    pub fn set_target_protocol_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::TPA..field::TPA + 4].copy_from_slice(&a.octets());
    }
}

/// An Ethernet/IPv4 ARP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Operation.
    pub operation: Operation,
    /// Sender MAC.
    pub source_hardware_addr: Address,
    /// Sender IPv4 address.
    pub source_protocol_addr: Ipv4Addr,
    /// Target MAC (zero in requests).
    pub target_hardware_addr: Address,
    /// Target IPv4 address.
    pub target_protocol_addr: Ipv4Addr,
}

impl Repr {
    /// Reads an Ethernet/IPv4 ARP packet; other hardware or protocol types are `Unsupported`.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        if p.hardware_type() != HTYPE_ETHERNET || p.protocol_type() != ethertype::IPV4 {
            return Err(Error::Unsupported);
        }
        Ok(Repr {
            operation: p.operation(),
            source_hardware_addr: p.source_hardware_addr(),
            source_protocol_addr: p.source_protocol_addr(),
            target_hardware_addr: p.target_hardware_addr(),
            target_protocol_addr: p.target_protocol_addr(),
        })
    }

    /// 28.
    pub const fn header_len(&self) -> usize {
        PACKET_LEN
    }

    /// 28.
    pub const fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    /// Writes the packet.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_hardware_type(HTYPE_ETHERNET);
        p.set_protocol_type(ethertype::IPV4);
        p.set_hardware_len(6);
        p.set_protocol_len(4);
        p.set_operation(self.operation);
        p.set_source_hardware_addr(self.source_hardware_addr);
        p.set_source_protocol_addr(self.source_protocol_addr);
        p.set_target_hardware_addr(self.target_hardware_addr);
        p.set_target_protocol_addr(self.target_protocol_addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::hex;

    // who-has 192.168.1.1 tell 192.168.1.100, padded to the Ethernet minimum.
    const REQUEST: &str = "0001 0800 06 04 0001 000c293c7ef1 c0a80164 000000000000 c0a80101 0000";

    #[test]
    fn request_round_trip() {
        let b = hex(REQUEST);
        let p = Packet::new_checked(&b[..]).unwrap();
        let r = Repr::parse(&p).unwrap();
        assert_eq!(r.operation, Operation::Request);
        assert_eq!(r.source_protocol_addr, Ipv4Addr::new(192, 168, 1, 100));
        assert_eq!(r.target_protocol_addr, Ipv4Addr::new(192, 168, 1, 1));
        assert_eq!(
            r.source_hardware_addr.0,
            [0x00, 0x0c, 0x29, 0x3c, 0x7e, 0xf1]
        );
        assert_eq!(p.payload(), &[0, 0]);
        let mut out = vec![0u8; r.buffer_len()];
        r.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(&out[..], &b[..PACKET_LEN]);
    }

    #[test]
    fn rejects_short_and_foreign() {
        let b = hex(REQUEST);
        assert_eq!(Packet::new_checked(&b[..27]).unwrap_err(), Error::Truncated);
        let mut other = b.clone();
        other[4] = 8; // a 64-bit hardware address
        other.resize(40, 0);
        assert_eq!(
            Packet::new_checked(&other[..]).unwrap_err(),
            Error::Unsupported
        );
        let mut ipx = b.clone();
        ipx[2..4].copy_from_slice(&0x8137u16.to_be_bytes());
        assert_eq!(
            Repr::parse(&Packet::new_checked(&ipx[..]).unwrap()).unwrap_err(),
            Error::Unsupported
        );
    }
}
