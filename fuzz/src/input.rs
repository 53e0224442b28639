//! How the `pipeline` target reads one fuzz input: a sequence of records, each a 2-byte
//! big-endian header followed, for a frame, by its bytes.
//!
//! Header bits (so that any byte string is a valid input and a mutation of one bit changes one
//! decision):
//! - bit 15: a barrier. Everything injected so far is polled through first, then the clock moves
//!   by [`STEPS_NS`]`[bits 13..=14]` (flow-cache timeouts, the tx drain timer). No bytes follow.
//! - else bits 11 and 12 both set, bit 13 clear: a table event. Next hop `1 + (bits 0..=7) % hops` goes to state
//!   `bits 8..=9 % 3` (active, draining, failed) in every group it belongs to; with bit 10 set
//!   those groups are then rebalanced (`clear`, which a manual group needs to give a returning
//!   hop buckets). The events before a frame or barrier are published as one new snapshot (as
//!   control coalesces updates); the worker picks it up at its next poll. No bytes follow.
//! - else bits 11, 12 and 13 all set: a route change. Bit 9 picks the family (IPv6 when set),
//!   bit 8 adds (set) or removes the route; the prefix length is `8 + lo % 25` for IPv4 and
//!   `8 + lo % 121` for IPv6 (at least /8: a shorter prefix rewrites a large part of a 64 MiB
//!   table, which would slow every input down without reaching new code). The address follows
//!   (4 or 16 bytes, zero-filled when the input ends first), then, for an add, one byte `g`
//!   selecting group `1 + g % groups`. Route changes, like hop events, are published with the
//!   next snapshot.
//! - else a frame: `bits 0..=10` is its length (cut to the bytes left), `bit 11` the rx port
//!   (bits 12..=14 are ignored).
//!
//! At most [`MAX_RECORDS`] records are read; the rest of the input is ignored, so the number of
//! frames in flight stays below the pool's capacity.

use std::net::IpAddr;

/// Clock steps a barrier can take: 1 ms, 250 ms, 3 s and 40 s, so that embryonic, FIN and idle
/// flow-cache timeouts can all expire within one input.
pub const STEPS_NS: [u64; 4] = [1_000_000, 250_000_000, 3_000_000_000, 40_000_000_000];

/// Records read from one input.
pub const MAX_RECORDS: usize = 96;

/// The MACs of rx ports 0 and 1 (`uplink` and `fabric` of the harness's config): a frame is
/// admitted only when sent to the MAC of the port it arrives on, so inputs built here are
/// addressed to it (see [`encode_addressed`]).
pub const RX_PORT_MACS: [[u8; 6]; 2] = [[0x02, 0, 0, 0, 0, 0x01], [0x02, 0, 0, 0, 0, 0x02]];

const BARRIER: u16 = 1 << 15;
const TABLE_EVENT: u16 = 3 << 11;
const ROUTE_EVENT: u16 = 7 << 11;
const PORT_BIT: u16 = 1 << 11;
const LEN_MASK: u16 = (1 << 11) - 1;

/// One decoded record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record<'a> {
    /// Poll everything through, then advance the clock by this many nanoseconds.
    Barrier(u64),
    /// Set a hop's state: `hop_selector % hop count` picks the hop, `state % 3` the state.
    HopState {
        /// Selects the hop.
        hop_selector: u8,
        /// Selects the state (0 active, 1 draining, 2 failed).
        state: u8,
        /// Rebalance the hop's groups afterwards.
        clear: bool,
    },
    /// Add or remove a route.
    Route {
        /// Add (`true`) or remove.
        add: bool,
        /// The prefix's address (host bits are masked by the FIB).
        addr: IpAddr,
        /// The prefix length, within the address family's range.
        len: u8,
        /// Selects the group of an added route.
        group_selector: u8,
    },
    /// Inject a frame on rx port `port` (0 or 1).
    Frame {
        /// Rx port index.
        port: usize,
        /// The frame bytes.
        bytes: &'a [u8],
    },
}

/// Iterator over the records of one input.
#[derive(Debug, Clone)]
pub struct Records<'a> {
    rest: &'a [u8],
    read: usize,
}

impl<'a> Records<'a> {
    /// Records of `input`.
    pub fn new(input: &'a [u8]) -> Self {
        Records {
            rest: input,
            read: 0,
        }
    }
}

impl Records<'_> {
    /// Takes `n` bytes, zero-filled past the end of the input.
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = N.min(self.rest.len());
        out[..n].copy_from_slice(&self.rest[..n]);
        self.rest = &self.rest[n..];
        out
    }

    /// The route record whose header is `hi`, `lo` (its body follows in `rest`).
    fn route(&mut self, hi: u8, lo: u8) -> Record<'static> {
        let add = hi & 1 != 0;
        let (addr, len) = if hi & 2 != 0 {
            (IpAddr::from(self.take::<16>()), 8 + lo % 121)
        } else {
            (IpAddr::from(self.take::<4>()), 8 + lo % 25)
        };
        let group_selector = if add { self.take::<1>()[0] } else { 0 };
        Record::Route {
            add,
            addr,
            len,
            group_selector,
        }
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Record<'a>;

    fn next(&mut self) -> Option<Record<'a>> {
        if self.read == MAX_RECORDS {
            return None;
        }
        let (&[hi, lo], rest) = self.rest.split_first_chunk::<2>()?;
        self.read += 1;
        let h = u16::from_be_bytes([hi, lo]);
        self.rest = rest;
        if h & BARRIER != 0 {
            return Some(Record::Barrier(STEPS_NS[usize::from((h >> 13) & 3)]));
        }
        if h & ROUTE_EVENT == ROUTE_EVENT {
            return Some(self.route(hi, lo));
        }
        if h & TABLE_EVENT == TABLE_EVENT {
            return Some(Record::HopState {
                hop_selector: lo,
                state: (hi & 3) % 3,
                clear: hi & 4 != 0,
            });
        }
        let len = usize::from(h & LEN_MASK).min(rest.len());
        let (bytes, rest) = rest.split_at(len);
        self.rest = rest;
        Some(Record::Frame {
            port: usize::from(h & PORT_BIT != 0),
            bytes,
        })
    }
}

/// Encodes `frames` (rx port, bytes) as one input, each frame preceded by its header; the
/// inverse of [`Records`] for frames of at most 2047 bytes. Used to build seeds.
pub fn encode_frames<'a>(frames: impl IntoIterator<Item = (usize, &'a [u8])>) -> Vec<u8> {
    let mut out = Vec::new();
    for (port, bytes) in frames {
        let len = bytes.len().min(usize::from(LEN_MASK)) as u16;
        let port = if port == 0 { 0 } else { PORT_BIT };
        out.extend_from_slice(&(len | port).to_be_bytes());
        out.extend_from_slice(&bytes[..usize::from(len)]);
    }
    out
}

/// [`encode_frames`] with each frame's destination MAC set to that of the rx port it arrives on
/// ([`RX_PORT_MACS`]); frames shorter than a MAC go as they are.
pub fn encode_addressed<'a>(frames: impl IntoIterator<Item = (usize, &'a [u8])>) -> Vec<u8> {
    let frames: Vec<(usize, Vec<u8>)> = frames
        .into_iter()
        .map(|(port, bytes)| {
            let mut f = bytes.to_vec();
            if let (Some(dst), Some(mac)) = (f.get_mut(..6), RX_PORT_MACS.get(port)) {
                dst.copy_from_slice(mac);
            }
            (port, f)
        })
        .collect();
    encode_frames(frames.iter().map(|(port, f)| (*port, &f[..])))
}

/// The header of a barrier record advancing the clock by `STEPS_NS[step & 3]`.
pub fn barrier(step: usize) -> [u8; 2] {
    (BARRIER | ((step as u16 & 3) << 13)).to_be_bytes()
}

/// A route record: adds `addr/len` to group `1 + group_selector % groups` when `add`, else
/// removes it. `len` is stored modulo the family's range (see the module doc), so lengths
/// from 8 up round-trip.
pub fn route(add: bool, addr: IpAddr, len: u8, group_selector: u8) -> Vec<u8> {
    let v6 = addr.is_ipv6();
    let lo = if v6 {
        len.wrapping_sub(8) % 121
    } else {
        len.wrapping_sub(8) % 25
    };
    let hi = (ROUTE_EVENT >> 8) as u8 | if v6 { 2 } else { 0 } | u8::from(add);
    let mut out = vec![hi, lo];
    match addr {
        IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
    }
    if add {
        out.push(group_selector);
    }
    out
}

/// The header of a table event moving hop `1 + selector % hops` to `state % 3`, then
/// rebalancing its groups when `clear`.
pub fn hop_state(selector: u8, state: u8, clear: bool) -> [u8; 2] {
    let clear = if clear { 4 } else { 0 };
    [(TABLE_EVENT >> 8) as u8 | clear | (state % 3), selector]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_the_tail_is_cut() {
        let a = [1u8, 2, 3];
        let b = [9u8; 40];
        let mut input = encode_frames([(0, &a[..]), (1, &b[..])]);
        input.extend_from_slice(&barrier(2));
        input.extend_from_slice(&hop_state(7, 2, true));
        // A frame header announcing more bytes than are left takes what is left.
        input.extend_from_slice(&[0x00, 0x10, 0xAA]);
        let got: Vec<_> = Records::new(&input).collect();
        assert_eq!(
            got,
            vec![
                Record::Frame {
                    port: 0,
                    bytes: &a[..]
                },
                Record::Frame {
                    port: 1,
                    bytes: &b[..]
                },
                Record::Barrier(STEPS_NS[2]),
                Record::HopState {
                    hop_selector: 7,
                    state: 2,
                    clear: true,
                },
                Record::Frame {
                    port: 0,
                    bytes: &[0xAA]
                },
            ]
        );
    }

    #[test]
    fn routes_round_trip_and_a_cut_body_is_zero_filled() {
        let v4: IpAddr = "198.51.100.0".parse().expect("v4");
        let v6: IpAddr = "2001:db8:77::".parse().expect("v6");
        let mut input = route(true, v4, 24, 3);
        input.extend(route(false, v6, 48, 0));
        input.extend(route(true, v6, 128, 9));
        input.extend_from_slice(&[0x38 | 1, 0, 10]);
        let got: Vec<_> = Records::new(&input).collect();
        let r = |add, addr, len, group_selector| Record::Route {
            add,
            addr,
            len,
            group_selector,
        };
        assert_eq!(
            got,
            vec![
                r(true, v4, 24, 3),
                r(false, v6, 48, 0),
                r(true, v6, 128, 9),
                r(true, "10.0.0.0".parse().expect("v4"), 8, 0),
            ]
        );
    }

    #[test]
    fn record_count_is_bounded() {
        let input = vec![0u8; 2 * MAX_RECORDS + 10];
        assert_eq!(Records::new(&input).count(), MAX_RECORDS);
        assert_eq!(
            Records::new(&[0x80]).count(),
            0,
            "half a header is no record"
        );
    }

    #[test]
    fn bit_12_alone_is_still_a_frame() {
        let got: Vec<_> = Records::new(&[0x10, 0x01, 0xAB, 0x18, 0x05]).collect();
        assert_eq!(
            got,
            vec![
                Record::Frame {
                    port: 0,
                    bytes: &[0xAB]
                },
                Record::HopState {
                    hop_selector: 5,
                    state: 0,
                    clear: false
                },
            ]
        );
    }
}
