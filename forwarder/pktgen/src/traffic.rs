//! Synthetic traffic: well-formed frames (every checksum right) for benches, tests, the demo and
//! the pcap examples, plus a small deterministic PRNG so runs are reproducible.

use std::net::IpAddr;

use ecmp_wire::{checksum, ethernet, ethertype, ip_proto, ipv4, ipv6, tcp, udp};

/// TCP flag bits as [`L4::Tcp`] takes them: the wire crate's constants (`tcp_flags::SYN`, ...).
pub use ecmp_wire::tcp as tcp_flags;

/// The L4 protocol of a synthetic packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4 {
    /// UDP.
    Udp,
    /// TCP with these flags.
    Tcp(u16),
}

/// One synthetic packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketSpec {
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// Destination MAC (the forwarder's port).
    pub dst_mac: [u8; 6],
    /// Source address (the family of `src` and `dst` must agree).
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// TCP or UDP.
    pub l4: L4,
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// TTL / hop limit.
    pub ttl: u8,
    /// Frame length without FCS (at least the headers; 60 is a 64-byte frame on the wire).
    pub frame_len: usize,
}

impl PacketSpec {
    /// A UDP packet of `frame_len` bytes (without FCS) with TTL 64.
    pub fn udp(src: IpAddr, dst: IpAddr, src_port: u16, dst_port: u16, frame_len: usize) -> Self {
        PacketSpec {
            src_mac: [0x02, 0, 0, 0, 0, 0xaa],
            dst_mac: [0x02, 0, 0, 0, 0, 0x01],
            src,
            dst,
            l4: L4::Udp,
            src_port,
            dst_port,
            ttl: 64,
            frame_len,
        }
    }

    /// The same packet as TCP with `flags`.
    pub fn with_tcp(mut self, flags: u16) -> Self {
        self.l4 = L4::Tcp(flags);
        self
    }

    /// Header bytes before the L4 payload.
    fn header_len(&self) -> usize {
        let ip = match self.src {
            IpAddr::V4(_) => ipv4::MIN_HEADER_LEN,
            IpAddr::V6(_) => ipv6::HEADER_LEN,
        };
        let l4 = match self.l4 {
            L4::Udp => udp::HEADER_LEN,
            L4::Tcp(_) => tcp::MIN_HEADER_LEN,
        };
        ethernet::HEADER_LEN + ip + l4
    }

    /// Builds the frame.
    pub fn build(&self) -> Vec<u8> {
        let mut buf = vec![0u8; self.frame_len.max(self.header_len())];
        self.write(&mut buf);
        buf
    }

    /// Writes the frame into `buf` (which must be at least `max(frame_len, headers)` long and is
    /// used whole); the payload is a fixed pattern.
    pub fn write(&self, buf: &mut [u8]) {
        let eth_type = match self.src {
            IpAddr::V4(_) => ethertype::IPV4,
            IpAddr::V6(_) => ethertype::IPV6,
        };
        ethernet::Repr {
            src_addr: ethernet::Address(self.src_mac),
            dst_addr: ethernet::Address(self.dst_mac),
            ethertype: eth_type,
        }
        .emit(&mut ethernet::Frame::new_unchecked(
            &mut buf[..ethernet::HEADER_LEN],
        ));
        let l3 = ethernet::HEADER_LEN;
        let ip_len = buf.len() - l3;
        let (proto, l4_hdr) = match self.l4 {
            L4::Udp => (ip_proto::UDP, udp::HEADER_LEN),
            L4::Tcp(_) => (ip_proto::TCP, tcp::MIN_HEADER_LEN),
        };
        let (l4, pseudo_of) = match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let repr = ipv4::Repr {
                    src_addr: s,
                    dst_addr: d,
                    protocol: proto,
                    ttl: self.ttl,
                    dscp: 0,
                    ecn: 0,
                    ident: 0x1234,
                    dont_frag: true,
                    more_frags: false,
                    frag_offset: 0,
                    options: ecmp_wire::Options::EMPTY,
                    payload_len: ip_len - ipv4::MIN_HEADER_LEN,
                };
                repr.emit(&mut ipv4::Packet::new_unchecked(&mut buf[l3..]));
                let l4_len = ip_len - ipv4::MIN_HEADER_LEN;
                (
                    l3 + ipv4::MIN_HEADER_LEN,
                    checksum::pseudo_header_v4(s.octets(), d.octets(), proto, l4_len as u16),
                )
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let repr = ipv6::Repr {
                    src_addr: s,
                    dst_addr: d,
                    next_header: proto,
                    hop_limit: self.ttl,
                    traffic_class: 0,
                    flow_label: 0,
                    payload_len: ip_len - ipv6::HEADER_LEN,
                };
                repr.emit(&mut ipv6::Packet::new_unchecked(&mut buf[l3..]));
                let l4_len = ip_len - ipv6::HEADER_LEN;
                (
                    l3 + ipv6::HEADER_LEN,
                    checksum::pseudo_header_v6(s.octets(), d.octets(), proto, l4_len as u32),
                )
            }
            _ => panic!("PacketSpec: source and destination of different families"),
        };
        for (i, b) in buf[l4 + l4_hdr..].iter_mut().enumerate() {
            *b = i as u8;
        }
        let payload_len = buf.len() - l4 - l4_hdr;
        match self.l4 {
            L4::Udp => {
                let mut p = udp::Packet::new_unchecked(&mut buf[l4..]);
                udp::Repr {
                    src_port: self.src_port,
                    dst_port: self.dst_port,
                    payload_len,
                }
                .emit(&mut p);
                p.fill_checksum(pseudo_of);
            }
            L4::Tcp(flags) => {
                let mut p = tcp::Packet::new_unchecked(&mut buf[l4..]);
                tcp::Repr {
                    src_port: self.src_port,
                    dst_port: self.dst_port,
                    seq_number: 1000,
                    ack_number: if flags & tcp_flags::ACK != 0 { 1 } else { 0 },
                    flags,
                    window_len: 65535,
                    urgent_at: 0,
                    options: ecmp_wire::Options::EMPTY,
                    payload_len,
                }
                .emit(&mut p);
                p.fill_checksum(pseudo_of);
            }
        }
    }
}

/// SplitMix64: tiny, fast, and reproducible from a seed (no `rand` dependency needed).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), by multiply-shift (no modulo bias worth the name for n << 2^32).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() >> 32) * n) >> 32
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecmp_wire::parse_frame;

    #[test]
    fn synthetic_frames_parse_with_valid_checksums() {
        let v4 = PacketSpec::udp(
            "198.18.0.1".parse().unwrap(),
            "192.0.2.10".parse().unwrap(),
            1234,
            80,
            60,
        );
        let f = v4.build();
        assert_eq!(f.len(), 60);
        let m = parse_frame(&f).unwrap();
        assert_eq!(
            (m.src_port, m.dst_port, m.protocol, m.ttl),
            (1234, 80, 17, 64)
        );
        let u = udp::Packet::new_checked(&f[34..]).unwrap();
        let pseudo = checksum::pseudo_header_v4([198, 18, 0, 1], [192, 0, 2, 10], 17, 26);
        assert!(u.verify_checksum(pseudo));

        let v6 = PacketSpec::udp(
            "2001:db8::1".parse().unwrap(),
            "2001:db8::10".parse().unwrap(),
            1,
            2,
            80,
        )
        .with_tcp(tcp_flags::SYN);
        let f = v6.build();
        let m = parse_frame(&f).unwrap();
        assert_eq!((m.protocol, m.tcp_flags), (6, 0x02));
    }

    #[test]
    fn rng_is_reproducible_and_below_stays_in_range() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for _ in 0..1000 {
            let x = a.below(10);
            assert_eq!(x, b.below(10));
            assert!(x < 10);
        }
    }
}
