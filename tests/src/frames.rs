//! Input frames for the fixtures, built with the wire emitters: every checksum right (IPv4 header,
//! TCP/UDP over the pseudo-header) unless a case breaks one on purpose, and every length field
//! consistent with the bytes, so a fixture exercises exactly the one thing its name says.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ecmp_wire::{Options, checksum, ethernet, ethertype, ip_proto, ipv4, ipv6, tcp, udp};

/// Source MAC of every input frame (the client side of the uplink).
pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xaa];
/// Destination MAC of every input frame: the golden config's `uplink` port.
pub const UPLINK_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// Filler of Ethernet padding: not zero, so an output that kept the padding shows it.
pub const PAD_BYTE: u8 = 0xee;

/// Why a frame could not be built (a mistake in a case definition, never in the data path).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// IPv4 options longer than 40 bytes or not a multiple of 4.
    #[error("bad IPv4 options: {0}")]
    Options(ecmp_wire::Error),
    /// Source and destination of different families.
    #[error("source and destination addresses of different families")]
    MixedFamilies,
    /// More than 65535 bytes of IP packet.
    #[error("IP packet of {0} bytes is too long")]
    TooLong(usize),
}

/// Where in its datagram a packet is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frag {
    /// Not fragmented (IPv4 DF set).
    Whole,
    /// The first fragment: the L4 header and the start of the data, more fragments follow.
    First {
        /// Datagram identification.
        ident: u32,
    },
    /// A later (here: the last) fragment: data only, no L4 header.
    Later {
        /// Datagram identification.
        ident: u32,
        /// Fragment offset in bytes (a multiple of 8).
        offset: u16,
    },
}

/// The L4 protocol of an input packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP with these flags (FIN 0x01, SYN 0x02, PSH 0x08, ACK 0x10).
    Tcp(u8),
}

/// One input frame: Ethernet, optional VLAN tags, IPv4 or IPv6, TCP or UDP, padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputSpec {
    /// VLAN tags outermost first, as (TPID, VLAN id).
    pub vlans: Vec<(u16, u16)>,
    /// Source address.
    pub src: IpAddr,
    /// Destination address (same family as `src`).
    pub dst: IpAddr,
    /// TTL / hop limit.
    pub ttl: u8,
    /// IPv4 TOS / IPv6 traffic class byte (DSCP << 2 | ECN).
    pub tos: u8,
    /// IPv4 options (a multiple of 4 bytes); ignored for IPv6.
    pub ipv4_options: Vec<u8>,
    /// Fragmentation.
    pub frag: Frag,
    /// TCP or UDP.
    pub transport: Transport,
    /// L4 source port.
    pub src_port: u16,
    /// L4 destination port.
    pub dst_port: u16,
    /// L4 data bytes (after the TCP/UDP header; the whole IP payload of a later fragment).
    pub payload_len: usize,
    /// Ethernet padding after the IP packet.
    pub padding: usize,
}

impl InputSpec {
    /// A UDP datagram 40000 -> 4242 with TTL 64 and `payload_len` data bytes (ports that no
    /// tshark dissector claims, so the data is shown as data, not misread as some protocol).
    pub fn udp(src: IpAddr, dst: IpAddr, payload_len: usize) -> Self {
        InputSpec {
            vlans: Vec::new(),
            src,
            dst,
            ttl: 64,
            tos: 0,
            ipv4_options: Vec::new(),
            frag: Frag::Whole,
            transport: Transport::Udp,
            src_port: 40000,
            dst_port: 4242,
            payload_len,
            padding: 0,
        }
    }

    /// The same packet as TCP 40001 -> 4280 with `flags`.
    pub fn tcp(mut self, flags: u8) -> Self {
        self.transport = Transport::Tcp(flags);
        self.src_port = 40001;
        self.dst_port = 4280;
        self
    }

    /// With these VLAN tags (outermost first).
    pub fn vlans(mut self, tags: &[(u16, u16)]) -> Self {
        self.vlans = tags.to_vec();
        self
    }

    /// With this TTL / hop limit.
    pub fn ttl(mut self, ttl: u8) -> Self {
        self.ttl = ttl;
        self
    }

    /// With this TOS / traffic class byte.
    pub fn tos(mut self, tos: u8) -> Self {
        self.tos = tos;
        self
    }

    /// With these IPv4 options.
    pub fn options(mut self, bytes: &[u8]) -> Self {
        self.ipv4_options = bytes.to_vec();
        self
    }

    /// As this fragment.
    pub fn frag(mut self, frag: Frag) -> Self {
        self.frag = frag;
        self
    }

    /// With `n` bytes of Ethernet padding.
    pub fn padding(mut self, n: usize) -> Self {
        self.padding = n;
        self
    }

    /// The frame's bytes.
    pub fn build(&self) -> Result<Vec<u8>, FrameError> {
        let proto = match self.transport {
            Transport::Udp => ip_proto::UDP,
            Transport::Tcp(_) => ip_proto::TCP,
        };
        let (ip, ip_ethertype) = match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let seg = self.segment(checksum_v4(s, d, proto))?;
                (self.ipv4(s, d, proto, &seg)?, ethertype::IPV4)
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let seg = self.segment(checksum_v6(s, d, proto))?;
                (self.ipv6(s, d, proto, &seg)?, ethertype::IPV6)
            }
            _ => return Err(FrameError::MixedFamilies),
        };

        let l2 = ethernet::HEADER_LEN + 4 * self.vlans.len();
        let mut frame = vec![0u8; l2 + ip.len() + self.padding];
        let first_type = self.vlans.first().map_or(ip_ethertype, |t| t.0);
        ethernet::Repr {
            src_addr: ethernet::Address(CLIENT_MAC),
            dst_addr: ethernet::Address(UPLINK_MAC),
            ethertype: first_type,
        }
        .emit(&mut ethernet::Frame::new_unchecked(
            &mut frame[..ethernet::HEADER_LEN],
        ));
        for (i, &(_, vid)) in self.vlans.iter().enumerate() {
            let next = self.vlans.get(i + 1).map_or(ip_ethertype, |t| t.0);
            let at = ethernet::HEADER_LEN + 4 * i;
            frame[at..at + 2].copy_from_slice(&(vid & 0x0fff).to_be_bytes());
            frame[at + 2..at + 4].copy_from_slice(&next.to_be_bytes());
        }
        frame[l2..l2 + ip.len()].copy_from_slice(&ip);
        frame[l2 + ip.len()..].fill(PAD_BYTE);
        Ok(frame)
    }

    /// The IP payload: L4 header and data, checksummed with `pseudo` (for a first fragment the
    /// checksum covers only what this fragment carries; nobody can verify it without the rest).
    fn segment(
        &self,
        pseudo: impl Fn(usize) -> Result<u16, FrameError>,
    ) -> Result<Vec<u8>, FrameError> {
        let data = payload(self.payload_len);
        if let Frag::Later { .. } = self.frag {
            return Ok(data);
        }
        let hdr = match self.transport {
            Transport::Udp => udp::HEADER_LEN,
            Transport::Tcp(_) => tcp::MIN_HEADER_LEN,
        };
        let mut seg = vec![0u8; hdr + data.len()];
        seg[hdr..].copy_from_slice(&data);
        let sum = pseudo(seg.len())?;
        match self.transport {
            Transport::Udp => {
                let mut p = udp::Packet::new_unchecked(&mut seg[..]);
                udp::Repr {
                    src_port: self.src_port,
                    dst_port: self.dst_port,
                    payload_len: data.len(),
                }
                .emit(&mut p);
                p.fill_checksum(sum);
            }
            Transport::Tcp(flags) => {
                let mut p = tcp::Packet::new_unchecked(&mut seg[..]);
                tcp::Repr {
                    src_port: self.src_port,
                    dst_port: self.dst_port,
                    seq_number: 0x0100_0000,
                    ack_number: if flags & 0x10 != 0 { 0x0200_0000 } else { 0 },
                    flags: u16::from(flags),
                    window_len: 64240,
                    urgent_at: 0,
                    options: Options::EMPTY,
                    payload_len: data.len(),
                }
                .emit(&mut p);
                p.fill_checksum(sum);
            }
        }
        Ok(seg)
    }

    fn ipv4(
        &self,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        proto: u8,
        seg: &[u8],
    ) -> Result<Vec<u8>, FrameError> {
        let options = Options::new(&self.ipv4_options).map_err(FrameError::Options)?;
        let (ident, dont_frag, more_frags, frag_offset) = match self.frag {
            Frag::Whole => (0x1234, true, false, 0),
            // IPv4 identification is 16 bits; the low half of the 32-bit one is used.
            Frag::First { ident } => (ident as u16, false, true, 0),
            Frag::Later { ident, offset } => (ident as u16, false, false, offset),
        };
        let repr = ipv4::Repr {
            src_addr: src,
            dst_addr: dst,
            protocol: proto,
            ttl: self.ttl,
            dscp: self.tos >> 2,
            ecn: self.tos & 3,
            ident,
            dont_frag,
            more_frags,
            frag_offset,
            options,
            payload_len: seg.len(),
        };
        let len = repr.buffer_len();
        if len > usize::from(u16::MAX) {
            return Err(FrameError::TooLong(len));
        }
        let mut ip = vec![0u8; len];
        repr.emit(&mut ipv4::Packet::new_unchecked(&mut ip[..]));
        ip[repr.header_len()..].copy_from_slice(seg);
        Ok(ip)
    }

    fn ipv6(
        &self,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        proto: u8,
        seg: &[u8],
    ) -> Result<Vec<u8>, FrameError> {
        let frag = match self.frag {
            Frag::Whole => None,
            Frag::First { ident } => Some((ident, 0, true)),
            Frag::Later { ident, offset } => Some((ident, offset, false)),
        };
        let ext = if frag.is_some() {
            ipv6::FRAG_HEADER_LEN
        } else {
            0
        };
        let len = ipv6::HEADER_LEN + ext + seg.len();
        if len - ipv6::HEADER_LEN > usize::from(u16::MAX) {
            return Err(FrameError::TooLong(len));
        }
        let mut ip = vec![0u8; len];
        ipv6::Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: if frag.is_some() {
                ip_proto::IPV6_FRAG
            } else {
                proto
            },
            hop_limit: self.ttl,
            traffic_class: self.tos,
            flow_label: 0,
            payload_len: ext + seg.len(),
        }
        .emit(&mut ipv6::Packet::new_unchecked(&mut ip[..]));
        if let Some((ident, frag_offset, more_frags)) = frag {
            ipv6::FragmentRepr {
                next_header: proto,
                frag_offset,
                more_frags,
                ident,
            }
            .emit(&mut ipv6::FragmentHeader::new_unchecked(
                &mut ip[ipv6::HEADER_LEN..ipv6::HEADER_LEN + ext],
            ));
        }
        ip[ipv6::HEADER_LEN + ext..].copy_from_slice(seg);
        Ok(ip)
    }
}

/// A recognisable data pattern (never all zero, never the padding byte at the start).
fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_add(0x30)).collect()
}

fn checksum_v4(s: Ipv4Addr, d: Ipv4Addr, proto: u8) -> impl Fn(usize) -> Result<u16, FrameError> {
    move |len| {
        let len16 = u16::try_from(len).map_err(|_| FrameError::TooLong(len))?;
        Ok(checksum::pseudo_header_v4(
            s.octets(),
            d.octets(),
            proto,
            len16,
        ))
    }
}

fn checksum_v6(s: Ipv6Addr, d: Ipv6Addr, proto: u8) -> impl Fn(usize) -> Result<u16, FrameError> {
    move |len| {
        let len32 = u32::try_from(len).map_err(|_| FrameError::TooLong(len))?;
        Ok(checksum::pseudo_header_v6(
            s.octets(),
            d.octets(),
            proto,
            len32,
        ))
    }
}

/// Recomputes the IPv4 header checksum of the header at `l3` (after a case edited the header).
pub fn refill_ipv4_checksum(frame: &mut [u8], l3: usize) {
    if let Some(ip) = frame.get_mut(l3..)
        && let Ok(mut p) = ipv4::Packet::new_checked(ip)
    {
        p.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecmp_wire::parse_frame;

    fn v4(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn udp_frame_parses_and_verifies() {
        let spec = InputSpec::udp(v4("198.51.100.7"), v4("10.1.0.10"), 18);
        let f = spec.build().unwrap();
        assert_eq!(f.len(), 60);
        let m = parse_frame(&f).unwrap();
        assert_eq!(
            (m.src_port, m.dst_port, m.ttl, m.ip_len),
            (40000, 4242, 64, 46)
        );
        let u = udp::Packet::new_checked(&f[34..]).unwrap();
        assert!(u.verify_checksum(checksum::pseudo_header_v4(
            [198, 51, 100, 7],
            [10, 1, 0, 10],
            17,
            26
        )));
    }

    #[test]
    fn tags_options_padding_and_fragments_land_where_the_parser_expects() {
        let qinq = InputSpec::udp(v4("198.51.100.7"), v4("10.1.0.10"), 4)
            .vlans(&[(ethertype::QINQ, 100), (ethertype::VLAN, 200)])
            .options(&[0x94, 0x04, 0, 0])
            .padding(9);
        let f = qinq.build().unwrap();
        assert_eq!(&f[12..22], &[0x88, 0xa8, 0, 100, 0x81, 0, 0, 200, 8, 0]);
        let m = parse_frame(&f).unwrap();
        assert_eq!((m.vlan_depth, m.l3_offset, m.l4_offset), (2, 22, 46));
        assert_eq!(usize::from(m.ip_len) + 22 + 9, f.len());
        assert_eq!(f[f.len() - 1], PAD_BYTE);

        let later = InputSpec::udp(
            "2001:db8:c1::7".parse().unwrap(),
            "2001:db8:1::10".parse().unwrap(),
            16,
        )
        .frag(Frag::Later {
            ident: 7,
            offset: 24,
        })
        .build()
        .unwrap();
        let m = parse_frame(&later).unwrap();
        assert!(m.fragment && m.is_later_fragment());
        assert_eq!(m.ip_len, 40 + 8 + 16);
    }

    #[test]
    fn mixed_families_are_refused() {
        let spec = InputSpec::udp(v4("198.51.100.7"), "2001:db8::1".parse().unwrap(), 1);
        assert_eq!(spec.build(), Err(FrameError::MixedFamilies));
    }
}
