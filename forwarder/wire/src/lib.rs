//! Zero-copy packet views and emitters for ecmpfwd (smoltcp `wire/` style), plus the hot-path
//! frame parser ([`parse::parse_frame`]) and Internet checksums ([`checksum`]).
//!
//! Every header module has the same shape:
//! - a view (`Packet<T>`, `Frame<T>`, `Tag<T>`, ...) over any `T: AsRef<[u8]>`, with field accessors,
//!   setters when `T: AsMut<[u8]>`, and `payload()`;
//! - a `Repr` with `parse(&view) -> Result<Repr>`, `emit(&self, &mut view)` and
//!   `header_len()`/`buffer_len()`.
//!
//! # Which checks make accessors panic-free
//! `new_checked` (which calls `check_len`) verifies that the buffer holds the fixed header and
//! every variable part that a length field of that header announces (IPv4 IHL and total length,
//! IPv6 payload length, TCP data offset, UDP length, GRE flag-selected fields, GUE hlen, ARP
//! address lengths). After it succeeds, no accessor, setter or `payload()` of that view can panic,
//! whatever the field values are. `new_unchecked` skips the checks: its accessors index the buffer
//! directly and panic if it is too short, so use it only on buffers you built or already checked.
//! `Repr::parse` additionally rejects values the header's RFC forbids (wrong version, bad IPv4
//! header checksum, VXLAN without the I flag, ...). `Repr::emit` expects a buffer of at least
//! `buffer_len()` (or `header_len()` where the payload is not part of the repr) bytes.
//!
//! Nothing in this crate allocates, and nothing reached from [`parse`] panics on any input bytes.
#![forbid(unsafe_code)]

pub mod arp;
pub mod checksum;
mod consts;
pub mod ethernet;
pub mod gre;
pub mod gue;
pub mod icmpv4;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod meta;
pub mod mpls;
pub mod parse;
pub mod tcp;
pub mod udp;
pub mod vlan;
pub mod vxlan;

pub use consts::{ethertype, ip_proto, udp_port};
pub use meta::{IpVersion, PacketMeta};
pub use parse::{ParseError, parse_frame, parse_inner};

/// Why a view or a `Repr` rejected a buffer. The hot-path parser has its own [`ParseError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Error {
    /// The buffer is shorter than the fixed header or than a length field of the header says.
    #[error("buffer too short for the header")]
    Truncated,
    /// A length, offset or version field is inconsistent (IHL below 5, UDP length below 8, ...).
    #[error("malformed header field")]
    Malformed,
    /// A field holds a value this crate does not handle (GRE version 1, ARP over non-Ethernet, ...).
    #[error("unsupported header variant")]
    Unsupported,
    /// A header checksum does not verify.
    #[error("bad checksum")]
    Checksum,
    /// An IPv6 extension header chain is longer than the caller's limit.
    #[error("IPv6 extension header chain too deep")]
    TooManyExtHeaders,
}

/// Result type of the views and reprs.
pub type Result<T> = core::result::Result<T, Error>;

/// Header options of IPv4 and TCP, held inline (no allocation): at most 40 bytes, a multiple of 4.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Options {
    bytes: [u8; Options::MAX_LEN],
    len: u8,
}

impl Options {
    /// Largest options area of IPv4 (IHL 15) and TCP (data offset 15).
    pub const MAX_LEN: usize = 40;
    /// No options.
    pub const EMPTY: Options = Options {
        bytes: [0; Options::MAX_LEN],
        len: 0,
    };

    /// Copies `bytes`; `Err(Malformed)` if longer than 40 bytes or not a multiple of 4 (both
    /// headers count their length in 32-bit words, so padding is the caller's job).
    pub fn new(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > Self::MAX_LEN || !bytes.len().is_multiple_of(4) {
            return Err(Error::Malformed);
        }
        let mut o = Self::EMPTY;
        if let Some(dst) = o.bytes.get_mut(..bytes.len()) {
            dst.copy_from_slice(bytes);
        }
        o.len = bytes.len() as u8;
        Ok(o)
    }

    /// The option bytes.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// Length in bytes (a multiple of 4).
    #[inline]
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// True when there are no options.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Default for Options {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl core::fmt::Debug for Options {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("Options").field(&self.as_bytes()).finish()
    }
}

/// Big-endian field access shared by the views. They index directly: callers are views whose
/// `check_len` proved the range present (see the crate doc).
pub(crate) mod bytes {
    #[inline(always)]
    pub(crate) fn be16(d: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([d[at], d[at + 1]])
    }

    #[inline(always)]
    pub(crate) fn be32(d: &[u8], at: usize) -> u32 {
        u32::from_be_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]])
    }

    #[inline(always)]
    pub(crate) fn put16(d: &mut [u8], at: usize, v: u16) {
        d[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }

    #[inline(always)]
    pub(crate) fn put32(d: &mut [u8], at: usize, v: u32) {
        d[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }

    #[inline(always)]
    pub(crate) fn array<const N: usize>(d: &[u8], at: usize) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(&d[at..at + N]);
        a
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    /// Decodes hex text, ignoring whitespace.
    pub(crate) fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        assert!(digits.len().is_multiple_of(2), "odd number of hex digits");
        digits
            .chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    }
}
