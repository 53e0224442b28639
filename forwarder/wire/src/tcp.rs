//! TCP headers (RFC 9293). Checksums take the pseudo-header sum from
//! [`checksum::pseudo_header_v4`] or [`checksum::pseudo_header_v6`] over the segment length.

use crate::bytes::{be16, be32, put16, put32};
use crate::{Error, Options, Result, checksum};

/// Length of the header without options.
pub const MIN_HEADER_LEN: usize = 20;

/// FIN flag (bit in [`Packet::flags`]).
pub const FIN: u16 = 0x001;
/// SYN flag.
pub const SYN: u16 = 0x002;
/// RST flag.
pub const RST: u16 = 0x004;
/// PSH flag.
pub const PSH: u16 = 0x008;
/// ACK flag.
pub const ACK: u16 = 0x010;
/// URG flag.
pub const URG: u16 = 0x020;
/// ECE flag.
pub const ECE: u16 = 0x040;
/// CWR flag.
pub const CWR: u16 = 0x080;
/// NS (accurate ECN) flag, in the data-offset byte.
pub const NS: u16 = 0x100;

mod field {
    pub(super) const SRC_PORT: usize = 0;
    pub(super) const DST_PORT: usize = 2;
    pub(super) const SEQ: usize = 4;
    pub(super) const ACK: usize = 8;
    pub(super) const OFF_FLAGS: usize = 12;
    pub(super) const FLAGS: usize = 13;
    pub(super) const WINDOW: usize = 14;
    pub(super) const CHECKSUM: usize = 16;
    pub(super) const URGENT: usize = 18;
}

/// A view of a TCP segment.
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

    /// `Err(Truncated)` when shorter than 20 bytes or than the data offset;
    /// `Err(Malformed)` when the data offset is below 5.
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
        Ok(())
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// Sequence number.
    #[inline]
    pub fn seq_number(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SEQ)
    }

    /// Acknowledgment number (meaningful when ACK is set).
    #[inline]
    pub fn ack_number(&self) -> u32 {
        be32(self.buffer.as_ref(), field::ACK)
    }

    /// Header length in bytes (data offset * 4).
    #[inline]
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::OFF_FLAGS] >> 4) * 4
    }

    /// The nine flag bits (`FIN` ... `NS`).
    #[inline]
    pub fn flags(&self) -> u16 {
        be16(self.buffer.as_ref(), field::OFF_FLAGS) & 0x01FF
    }

    /// The flags byte (CWR..FIN), as stored in [`PacketMeta::tcp_flags`](crate::PacketMeta::tcp_flags).
    #[inline]
    pub fn flags_byte(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// SYN set.
    #[inline]
    pub fn syn(&self) -> bool {
        self.flags() & SYN != 0
    }

    /// ACK set.
    #[inline]
    pub fn ack(&self) -> bool {
        self.flags() & ACK != 0
    }

    /// FIN set.
    #[inline]
    pub fn fin(&self) -> bool {
        self.flags() & FIN != 0
    }

    /// RST set.
    #[inline]
    pub fn rst(&self) -> bool {
        self.flags() & RST != 0
    }

    /// Window.
    #[inline]
    pub fn window_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::WINDOW)
    }

    /// Checksum as stored.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Urgent pointer.
    #[inline]
    pub fn urgent_at(&self) -> u16 {
        be16(self.buffer.as_ref(), field::URGENT)
    }

    /// Options between the fixed header and the data.
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[MIN_HEADER_LEN..usize::from(self.header_len())]
    }

    /// True when the checksum over the whole buffer (the segment) and the pseudo-header sum
    /// `pseudo` verifies.
    #[inline]
    pub fn verify_checksum(&self, pseudo: u16) -> bool {
        checksum::add(pseudo, checksum::data(self.buffer.as_ref())) == 0xFFFF
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The data after the header (the rest of the buffer).
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        let d = self.buffer.as_ref();
        &d[usize::from(d[field::OFF_FLAGS] >> 4) * 4..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the source port.
    #[inline]
    pub fn set_src_port(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::SRC_PORT, v);
    }

    /// Sets the destination port.
    #[inline]
    pub fn set_dst_port(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::DST_PORT, v);
    }

    /// Sets the sequence number.
    #[inline]
    pub fn set_seq_number(&mut self, v: u32) {
        put32(self.buffer.as_mut(), field::SEQ, v);
    }

    /// Sets the acknowledgment number.
    #[inline]
    pub fn set_ack_number(&mut self, v: u32) {
        put32(self.buffer.as_mut(), field::ACK, v);
    }

    /// Sets the header length (bytes, a multiple of 4 up to 60) and the nine flag bits.
    #[inline]
    pub fn set_header_len_and_flags(&mut self, header_len: u8, flags: u16) {
        let v = (u16::from((header_len / 4) & 0x0F) << 12) | (flags & 0x01FF);
        put16(self.buffer.as_mut(), field::OFF_FLAGS, v);
    }

    /// Sets the window.
    #[inline]
    pub fn set_window_len(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::WINDOW, v);
    }

    /// Sets the stored checksum.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    /// Sets the urgent pointer.
    #[inline]
    pub fn set_urgent_at(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::URGENT, v);
    }

    /// Mutable options area.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = usize::from(self.header_len());
        &mut self.buffer.as_mut()[MIN_HEADER_LEN..hl]
    }

    /// Mutable data.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = usize::from(self.header_len());
        &mut self.buffer.as_mut()[hl..]
    }

    /// Computes the checksum over the whole buffer and the pseudo-header sum `pseudo`.
    #[inline]
    pub fn fill_checksum(&mut self, pseudo: u16) {
        self.set_checksum(0);
        let c = !checksum::add(pseudo, checksum::data(self.buffer.as_ref()));
        self.set_checksum(c);
    }
}

/// The fields of a TCP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq_number: u32,
    /// Acknowledgment number (kept as stored even without ACK).
    pub ack_number: u32,
    /// The nine flag bits.
    pub flags: u16,
    /// Window.
    pub window_len: u16,
    /// Urgent pointer.
    pub urgent_at: u16,
    /// Options, padded to a multiple of 4.
    pub options: Options,
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
            seq_number: p.seq_number(),
            ack_number: p.ack_number(),
            flags: p.flags(),
            window_len: p.window_len(),
            urgent_at: p.urgent_at(),
            options: Options::new(p.options())?,
            payload_len: p.buffer.as_ref().len() - usize::from(p.header_len()),
        })
    }

    /// 20 plus the options.
    pub const fn header_len(&self) -> usize {
        MIN_HEADER_LEN + self.options.len as usize
    }

    /// Header plus data.
    pub const fn buffer_len(&self) -> usize {
        self.header_len() + self.payload_len
    }

    /// Writes the header with a zero checksum; write the data, then call
    /// [`Packet::fill_checksum`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_seq_number(self.seq_number);
        p.set_ack_number(self.ack_number);
        p.set_header_len_and_flags(self.header_len() as u8, self.flags);
        p.set_window_len(self.window_len);
        p.set_checksum(0);
        p.set_urgent_at(self.urgent_at);
        p.options_mut().copy_from_slice(self.options.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::hex;

    // The TCP part of the captured SYN in `ipv4::tests` (192.168.254.103 -> 192.168.254.107).
    const SYN_SEGMENT: &str =
        "e6b222b860a0e96f00000000a002ffffd5020000020405b40402080a0055a1080000000001030307";
    const SRC: [u8; 4] = [192, 168, 254, 103];
    const DST: [u8; 4] = [192, 168, 254, 107];

    #[test]
    fn captured_syn() {
        let b = hex(SYN_SEGMENT);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port()), (59058, 8888));
        assert_eq!(p.seq_number(), 0x60a0e96f);
        assert_eq!(p.header_len(), 40);
        assert_eq!(p.flags(), SYN);
        assert_eq!(p.flags_byte(), 0x02);
        assert!(p.syn() && !p.ack() && !p.fin() && !p.rst());
        assert_eq!(p.window_len(), 0xffff);
        assert_eq!(p.checksum(), 0xd502);
        assert_eq!(p.options()[..4], [2, 4, 0x05, 0xb4], "MSS 1460");
        assert!(p.payload().is_empty());
        let pseudo = checksum::pseudo_header_v4(SRC, DST, crate::ip_proto::TCP, b.len() as u16);
        assert!(p.verify_checksum(pseudo));

        let r = Repr::parse(&p).unwrap();
        let mut out = vec![0u8; r.buffer_len()];
        let mut q = Packet::new_unchecked(&mut out[..]);
        r.emit(&mut q);
        q.fill_checksum(pseudo);
        assert_eq!(out, b);
    }

    #[test]
    fn length_checks() {
        let b = hex(SYN_SEGMENT);
        assert_eq!(Packet::new_checked(&b[..19]).unwrap_err(), Error::Truncated);
        assert_eq!(Packet::new_checked(&b[..39]).unwrap_err(), Error::Truncated);
        let mut m = b.clone();
        m[12] = 0x40;
        assert_eq!(Packet::new_checked(&m[..]).unwrap_err(), Error::Malformed);
    }
}
