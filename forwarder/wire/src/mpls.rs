//! MPLS label stack entries (RFC 3032): 20-bit label, 3-bit traffic class, bottom-of-stack
//! bit S, 8-bit TTL.

use crate::bytes::{be32, put32};
use crate::{Error, Result};

/// Length of one label stack entry.
pub const ENTRY_LEN: usize = 4;
/// Largest label value.
pub const MAX_LABEL: u32 = 0x000F_FFFF;

/// Reserved label values (RFC 3032, RFC 7274).
pub mod label {
    /// IPv4 explicit null.
    pub const IPV4_EXPLICIT_NULL: u32 = 0;
    /// Router alert.
    pub const ROUTER_ALERT: u32 = 1;
    /// IPv6 explicit null.
    pub const IPV6_EXPLICIT_NULL: u32 = 2;
    /// Implicit null (signalled only, never on the wire).
    pub const IMPLICIT_NULL: u32 = 3;
    /// Entropy label indicator (RFC 6790).
    pub const ENTROPY_LABEL_INDICATOR: u32 = 7;
}

/// A view of one label stack entry followed by the rest of the packet.
#[derive(Debug, Clone)]
pub struct Entry<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Entry<T> {
    /// Wraps a buffer without checks (accessors may panic on a short buffer).
    pub const fn new_unchecked(buffer: T) -> Self {
        Entry { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let e = Self::new_unchecked(buffer);
        e.check_len()?;
        Ok(e)
    }

    /// `Err(Truncated)` when shorter than 4 bytes.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < ENTRY_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    fn word(&self) -> u32 {
        be32(self.buffer.as_ref(), 0)
    }

    /// Label (20 bits).
    #[inline]
    pub fn label(&self) -> u32 {
        self.word() >> 12
    }

    /// Traffic class (3 bits).
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        ((self.word() >> 9) & 0x7) as u8
    }

    /// Bottom of stack.
    #[inline]
    pub fn bottom_of_stack(&self) -> bool {
        self.word() & 0x100 != 0
    }

    /// TTL.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[3]
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Entry<&'a T> {
    /// Everything after this entry (the next entry, or the payload after the bottom one).
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[ENTRY_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Entry<T> {
    /// Sets every field (label masked to 20 bits, TC to 3).
    #[inline]
    pub fn set_fields(&mut self, label: u32, traffic_class: u8, bottom: bool, ttl: u8) {
        let w = ((label & MAX_LABEL) << 12)
            | (u32::from(traffic_class & 7) << 9)
            | (u32::from(bottom) << 8)
            | u32::from(ttl);
        put32(self.buffer.as_mut(), 0, w);
    }

    /// Sets the TTL.
    #[inline]
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[3] = ttl;
    }

    /// Mutable payload.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[ENTRY_LEN..]
    }
}

/// One label stack entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Label (20 bits).
    pub label: u32,
    /// Traffic class (3 bits).
    pub traffic_class: u8,
    /// Bottom of stack.
    pub bottom_of_stack: bool,
    /// TTL.
    pub ttl: u8,
}

impl Repr {
    /// Reads an entry.
    pub fn parse<T: AsRef<[u8]>>(e: &Entry<T>) -> Result<Repr> {
        e.check_len()?;
        Ok(Repr {
            label: e.label(),
            traffic_class: e.traffic_class(),
            bottom_of_stack: e.bottom_of_stack(),
            ttl: e.ttl(),
        })
    }

    /// 4.
    pub const fn header_len(&self) -> usize {
        ENTRY_LEN
    }

    /// 4.
    pub const fn buffer_len(&self) -> usize {
        ENTRY_LEN
    }

    /// Writes the entry (label and TC masked to their widths).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, e: &mut Entry<T>) {
        e.set_fields(
            self.label,
            self.traffic_class,
            self.bottom_of_stack,
            self.ttl,
        );
    }
}

/// Length in bytes of the label stack at the start of `buf`, up to and including the entry with
/// S set. `Err(Truncated)` when `buf` ends first, `Err(Malformed)` when more than `max_entries`
/// entries precede the bottom one.
#[inline]
pub fn stack_len(buf: &[u8], max_entries: usize) -> Result<usize> {
    let (entries, _) = buf.as_chunks::<ENTRY_LEN>();
    for (i, e) in entries.iter().take(max_entries).enumerate() {
        if e[2] & 0x01 != 0 {
            return Ok((i + 1) * ENTRY_LEN);
        }
    }
    if entries.len() >= max_entries {
        Err(Error::Malformed)
    } else {
        Err(Error::Truncated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::hex;

    #[test]
    fn two_label_stack() {
        // Label 16000 tc 5 ttl 64, then label 299 bottom ttl 255, then an IPv4 header's start.
        let b = hex("03e80a40 0012b1ff 45");
        let top = Entry::new_checked(&b[..]).unwrap();
        assert_eq!(
            (
                top.label(),
                top.traffic_class(),
                top.bottom_of_stack(),
                top.ttl()
            ),
            (16000, 5, false, 64)
        );
        let bottom = Entry::new_checked(top.payload()).unwrap();
        assert_eq!(
            (
                bottom.label(),
                bottom.traffic_class(),
                bottom.bottom_of_stack(),
                bottom.ttl()
            ),
            (299, 0, true, 255)
        );
        assert_eq!(bottom.payload(), &[0x45]);
        assert_eq!(stack_len(&b, 8), Ok(8));
        assert_eq!(stack_len(&b, 1), Err(Error::Malformed));
        assert_eq!(stack_len(&b[..7], 8), Err(Error::Truncated));
        for off in [0, 4] {
            let r = Repr::parse(&Entry::new_checked(&b[off..]).unwrap()).unwrap();
            let mut out = [0u8; 4];
            r.emit(&mut Entry::new_unchecked(&mut out[..]));
            assert_eq!(&out[..], &b[off..off + 4]);
        }
        assert_eq!(Entry::new_checked(&b[..3]).unwrap_err(), Error::Truncated);
    }
}
