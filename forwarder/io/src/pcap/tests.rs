use super::*;
use proptest::prelude::*;
use std::io::Cursor;

/// A hand-made capture: big-endian, nanosecond magic, two Ethernet frames, the second captured
/// short (caplen 14 of 60 on the wire).
const BE_NANO: &[u8] = &[
    0xa1, 0xb2, 0x3c, 0x4d, // magic, nanoseconds, big-endian
    0x00, 0x02, 0x00, 0x04, // version 2.4
    0x00, 0x00, 0x00, 0x00, // thiszone
    0x00, 0x00, 0x00, 0x00, // sigfigs
    0x00, 0x00, 0xff, 0xff, // snaplen 65535
    0x00, 0x00, 0x00, 0x01, // LINKTYPE_ETHERNET
    // record 1: 1.000000002 s, 16 of 16 bytes
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00,
    0x10, //
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0xde,
    0xad, //
    // record 2: 2.5 s, 14 of 60 bytes
    0x00, 0x00, 0x00, 0x02, 0x1d, 0xcd, 0x65, 0x00, 0x00, 0x00, 0x00, 0x0e, 0x00, 0x00, 0x00,
    0x3c, //
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x86, 0xdd,
];

/// The same kind of file as tcpdump writes on x86: little-endian, microseconds, one frame.
const LE_MICRO: &[u8] = &[
    0xd4, 0xc3, 0xb2, 0xa1, 0x02, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x04, 0x00, 0x01, 0x00, 0x00, 0x00, //
    // 3 s + 7 us, 4 of 4 bytes
    0x03, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00,
    0x01, 0x02, 0x03, 0x04,
];

fn read_all(bytes: &[u8]) -> Result<Vec<Packet>, IoError> {
    PcapReader::new(bytes, "mem.pcap")?.collect()
}

#[test]
fn reads_hand_made_big_endian_nanosecond_capture() {
    let mut r = PcapReader::new(BE_NANO, "be.pcap").unwrap();
    assert_eq!(
        *r.header(),
        FileHeader {
            resolution: Resolution::Nano,
            endian: Endian::Big,
            version_major: 2,
            version_minor: 4,
            snaplen: 65535,
            linktype: LINKTYPE_ETHERNET,
        }
    );
    let p1 = r.next().unwrap().unwrap();
    assert_eq!(
        p1.header,
        RecordHeader {
            ts_nanos: 1_000_000_002,
            caplen: 16,
            orig_len: 16
        }
    );
    assert_eq!(&p1.data[..6], &[0xff; 6]);
    assert_eq!(&p1.data[12..], &[0x08, 0x06, 0xde, 0xad]);
    let p2 = r.next().unwrap().unwrap();
    assert_eq!(p2.header.ts_nanos, 2_500_000_000);
    assert_eq!((p2.header.caplen, p2.header.orig_len), (14, 60));
    assert_eq!(&p2.data[12..], &[0x86, 0xdd]);
    assert!(r.next().is_none());
    assert!(r.is_done());
}

#[test]
fn reads_hand_made_little_endian_microsecond_capture() {
    let r = PcapReader::new(LE_MICRO, "le.pcap").unwrap();
    assert_eq!(r.header().resolution, Resolution::Micro);
    assert_eq!(r.header().endian, Endian::Little);
    assert_eq!(r.header().snaplen, 262_144);
    let packets: Vec<Packet> = r.collect::<Result<_, _>>().unwrap();
    assert_eq!(packets.len(), 1);
    assert_eq!(packets[0].header.ts_nanos, 3_000_007_000);
    assert_eq!(packets[0].data, [1, 2, 3, 4]);
}

#[test]
fn header_errors_name_the_file() {
    let e = PcapReader::new(&b"\x0a\x0d\x0d\x0a"[..], "ng.pcapng")
        .err()
        .unwrap();
    assert!(matches!(
        e,
        IoError::BadMagic {
            magic: 0x0a0d_0d0a,
            ..
        }
    ));
    assert!(e.to_string().contains("ng.pcapng"), "{e}");

    let e = PcapReader::new(&BE_NANO[..10], "short.pcap").err().unwrap();
    assert!(matches!(e, IoError::Truncated { offset: 0, .. }));
    assert!(e.to_string().contains("short.pcap"), "{e}");

    let mut v1 = LE_MICRO.to_vec();
    v1[4] = 1;
    assert!(matches!(
        PcapReader::new(&v1[..], "v1.pcap").err().unwrap(),
        IoError::UnsupportedVersion {
            major: 1,
            minor: 4,
            ..
        }
    ));

    let mut raw_ip = LE_MICRO.to_vec();
    raw_ip[20] = 101;
    let e = PcapReader::new(&raw_ip[..], "raw.pcap").err().unwrap();
    assert!(matches!(
        e,
        IoError::UnsupportedLinkType { linktype: 101, .. }
    ));
    assert!(e.to_string().contains("raw.pcap"));

    // FCS bits above the link type do not matter.
    let mut fcs = LE_MICRO.to_vec();
    fcs[23] = 0x10;
    assert!(PcapReader::new(&fcs[..], "fcs.pcap").is_ok());

    let e = PcapReader::open("/nonexistent/dir/in.pcap").err().unwrap();
    assert!(matches!(e, IoError::Open { .. }));
    assert!(e.to_string().contains("/nonexistent/dir/in.pcap"));
}

#[test]
fn truncated_records_are_errors_clean_end_is_not() {
    // Clean end exactly after the file header.
    assert!(read_all(&LE_MICRO[..24]).unwrap().is_empty());
    // Cut inside the record header, then inside the packet.
    for cut in [25, 39, 40, 43] {
        let e = read_all(&LE_MICRO[..cut]).err().unwrap();
        assert!(
            matches!(e, IoError::Truncated { offset: 24, .. }),
            "cut {cut}: {e}"
        );
    }
    // Second record of BE_NANO starts at 24 + 16 + 16 = 56.
    let e = read_all(&BE_NANO[..BE_NANO.len() - 1]).err().unwrap();
    assert!(matches!(e, IoError::Truncated { offset: 56, .. }));
}

#[test]
fn absurd_caplen_is_rejected_before_allocating() {
    let mut bad = LE_MICRO.to_vec();
    bad[32..36].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    let mut r = PcapReader::new(&bad[..], "huge.pcap").unwrap();
    let e = r.next().unwrap().err().unwrap();
    assert!(matches!(
        e,
        IoError::RecordTooLong {
            offset: 24,
            caplen: 0xffff_fff0,
            ..
        }
    ));
    // The reader stops for good after an error.
    assert!(r.next().is_none());
}

#[test]
fn read_into_skips_oversize_packets() {
    let mut r = PcapReader::new(BE_NANO, "be.pcap").unwrap();
    let mut buf = [0u8; 15];
    assert!(matches!(
        r.read_into(&mut buf).unwrap(),
        Some(Fetched::Oversize(RecordHeader { caplen: 16, .. }))
    ));
    assert!(matches!(
        r.read_into(&mut buf).unwrap(),
        Some(Fetched::Packet(RecordHeader { caplen: 14, .. }))
    ));
    assert_eq!(&buf[12..14], &[0x86, 0xdd]);
    assert!(r.read_into(&mut buf).unwrap().is_none());
}

#[test]
fn writer_output_matches_hand_made_bytes() {
    let mut w = PcapWriter::new(Vec::new(), "out.pcap", Resolution::Micro, Endian::Little).unwrap();
    w.write_packet(3_000_007_000, &[1, 2, 3, 4]).unwrap();
    assert_eq!(w.into_inner().unwrap(), LE_MICRO);
}

fn round_trip(resolution: Resolution, endian: Endian, packets: &[(u64, Vec<u8>)]) {
    let mut w = PcapWriter::new(Vec::new(), "rt.pcap", resolution, endian).unwrap();
    for (ts, data) in packets {
        w.write_packet(*ts, data).unwrap();
    }
    let bytes = w.into_inner().unwrap();
    let r = PcapReader::new(&bytes[..], "rt.pcap").unwrap();
    assert_eq!(
        (r.header().resolution, r.header().endian),
        (resolution, endian)
    );
    let back: Vec<Packet> = r.collect::<Result<_, _>>().unwrap();
    assert_eq!(back.len(), packets.len());
    let unit = resolution.nanos_per_unit();
    for ((ts, data), p) in packets.iter().zip(&back) {
        assert_eq!(&p.data, data);
        assert_eq!(p.header.ts_nanos, ts / unit * unit);
        assert_eq!(p.header.orig_len as usize, data.len());
    }
}

#[test]
fn round_trip_every_format() {
    let packets = vec![
        (0, vec![]),
        (1_234_567_891, vec![0xab; 60]),
        (4_000_000_000_999_999_999, vec![7; 1514]),
    ];
    for resolution in [Resolution::Micro, Resolution::Nano] {
        for endian in [Endian::Little, Endian::Big] {
            round_trip(resolution, endian, &packets);
        }
    }
}

#[test]
fn writer_cuts_packets_beyond_max_caplen() {
    let mut w = PcapWriter::new(Vec::new(), "big.pcap", Resolution::Nano, Endian::Big).unwrap();
    let big = vec![5u8; MAX_CAPLEN as usize + 10];
    w.write_packet(1, &big).unwrap();
    let bytes = w.into_inner().unwrap();
    let p = read_all(&bytes).unwrap().pop().unwrap();
    assert_eq!(p.header.caplen, MAX_CAPLEN);
    assert_eq!(p.header.orig_len as usize, big.len());
}

#[test]
fn port_receives_each_packet_once_then_nothing() {
    let pool = FramePool::new(8);
    let reader = PcapReader::new(Cursor::new(BE_NANO.to_vec()), "be.pcap").unwrap();
    let mut port: PcapPort<_, Vec<u8>> = PcapPort::new(pool.clone()).with_rx(reader);
    assert!(!port.rx_done());
    let mut b = Burst::new();
    assert_eq!(port.rx_burst(&mut b), 2);
    assert_eq!(b[0].data().len(), 16);
    assert_eq!(b[1].data(), &BE_NANO[BE_NANO.len() - 14..]);
    assert_eq!(port.rx_burst(&mut b), 0);
    assert!(port.rx_done());
    // No writer: tx refuses, the frames stay with the caller.
    assert_eq!(port.tx_burst(&mut b), 0);
    assert_eq!(b.len(), 2);
    assert_eq!(port.stats().tx_refused, 2);
    for f in b.drain(..) {
        port.release(f);
    }
    assert_eq!(pool.outstanding(), 0);
    assert!(port.take_error().is_none());
}

#[test]
fn port_rx_stops_on_pool_exhaustion_and_resumes() {
    let pool = FramePool::new(1);
    let reader = PcapReader::new(BE_NANO, "be.pcap").unwrap();
    let mut port: PcapPort<_, Vec<u8>> = PcapPort::new(pool.clone()).with_rx(reader);
    let mut b = Burst::new();
    assert_eq!(port.rx_burst(&mut b), 1);
    assert_eq!(port.stats().rx_no_buffer, 1);
    port.release(b.pop().unwrap());
    assert_eq!(port.rx_burst(&mut b), 1);
    assert_eq!(b[0].data().len(), 14);
    port.release(b.pop().unwrap());
    assert_eq!(pool.outstanding(), 0);
}

#[test]
fn port_keeps_rx_error_and_stops() {
    let pool = FramePool::new(4);
    let reader = PcapReader::new(&BE_NANO[..BE_NANO.len() - 3], "cut.pcap").unwrap();
    let mut port: PcapPort<_, Vec<u8>> = PcapPort::new(pool.clone()).with_rx(reader);
    let mut b = Burst::new();
    assert_eq!(port.rx_burst(&mut b), 1);
    assert!(port.rx_done());
    let e = port.take_error().unwrap();
    assert!(e.to_string().contains("cut.pcap"));
    assert!(port.take_error().is_none());
    assert_eq!(port.rx_burst(&mut b), 0);
    port.release(b.pop().unwrap());
    assert_eq!(pool.outstanding(), 0);
}

#[test]
fn port_skips_packets_too_big_for_a_frame() {
    let mut w =
        PcapWriter::new(Vec::new(), "mixed.pcap", Resolution::Micro, Endian::Little).unwrap();
    w.write_packet(0, &[1; 100]).unwrap();
    w.write_packet(0, &[2; MAX_PACKET + 1]).unwrap();
    w.write_packet(0, &[3; MAX_PACKET]).unwrap();
    let bytes = w.into_inner().unwrap();
    let pool = FramePool::new(4);
    let reader = PcapReader::new(&bytes[..], "mixed.pcap").unwrap();
    let mut port: PcapPort<_, Vec<u8>> = PcapPort::new(pool.clone()).with_rx(reader);
    let mut b = Burst::new();
    assert_eq!(port.rx_burst(&mut b), 2);
    assert_eq!(port.rx_oversize(), 1);
    assert_eq!(b[1].data(), &[3; MAX_PACKET][..]);
    pool.release_all(b.drain(..));
    assert_eq!(pool.outstanding(), 0);
}

/// A sink that accepts `room` bytes and then fails.
struct Full {
    room: usize,
}

impl Write for Full {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.room == 0 {
            return Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"));
        }
        let n = buf.len().min(self.room);
        self.room -= n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn port_tx_write_error_refuses_the_rest() {
    let pool = FramePool::new(4);
    // Room for the file header and one 16 + 10 byte record.
    let writer = PcapWriter::new(
        Full { room: 24 + 26 },
        "full.pcap",
        Resolution::Micro,
        Endian::Little,
    )
    .unwrap();
    let mut port: PcapPort<&[u8], Full> = PcapPort::new(pool.clone()).with_tx(writer);
    let mut b = Burst::new();
    for i in 0..3u8 {
        b.push(pool.frame_from(&[i; 10]).unwrap());
    }
    assert_eq!(port.tx_burst(&mut b), 1);
    assert_eq!(b.len(), 2);
    assert_eq!(b[0].data(), &[1; 10]);
    assert_eq!(port.stats().tx_refused, 2);
    // Refused for good after the failure.
    assert_eq!(port.tx_burst(&mut b), 0);
    pool.release_all(b.drain(..));
    assert_eq!(pool.outstanding(), 0);
    let e = port.finish().err().unwrap();
    assert!(matches!(e, IoError::Write { .. }));
    assert!(e.to_string().contains("full.pcap"));
}

#[test]
fn port_tx_sequence_clock_is_reproducible() {
    let pool = FramePool::new(4);
    let mut outputs = Vec::new();
    for _ in 0..2 {
        let writer =
            PcapWriter::new(Vec::new(), "seq.pcap", Resolution::Nano, Endian::Little).unwrap();
        let mut port: PcapPort<&[u8], Vec<u8>> = PcapPort::new(pool.clone()).with_tx(writer);
        let mut b = Burst::new();
        b.push(pool.frame_from(&[1, 2]).unwrap());
        b.push(pool.frame_from(&[3]).unwrap());
        assert_eq!(port.tx_burst(&mut b), 2);
        port.flush();
        outputs.push(port.finish().unwrap().unwrap());
    }
    assert_eq!(outputs[0], outputs[1]);
    let packets = read_all(&outputs[0]).unwrap();
    assert_eq!(packets[0].data, [1, 2]);
    assert_eq!(packets[1].header.ts_nanos, 1_000);
    assert_eq!(pool.outstanding(), 0);
}

/// A pcapng file as `ecmpctl capture` writes one: two Ethernet interfaces with nanosecond
/// timestamps, enhanced packet blocks (one carrying a drop comment), then a simple packet block.
fn pcapng_capture(endianness: pcap_file::Endianness) -> Vec<u8> {
    use pcap_file::DataLink;
    use pcap_file::pcapng::PcapNgWriter;
    use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
    use pcap_file::pcapng::blocks::interface_description::{
        InterfaceDescriptionBlock, InterfaceDescriptionOption,
    };
    use pcap_file::pcapng::blocks::simple_packet::SimplePacketBlock;
    use std::borrow::Cow;
    use std::time::Duration;

    let mut w = PcapNgWriter::with_endianness(Vec::new(), endianness).unwrap();
    for _ in 0..2 {
        w.write_pcapng_block(InterfaceDescriptionBlock {
            linktype: DataLink::ETHERNET,
            snaplen: 65535,
            options: vec![InterfaceDescriptionOption::IfTsResol(9)],
        })
        .unwrap();
    }
    w.write_pcapng_block(EnhancedPacketBlock {
        interface_id: 0,
        timestamp: Duration::from_nanos(1_000_000_002),
        original_len: 16,
        data: Cow::Borrowed(&BE_NANO[40..56]),
        options: vec![],
    })
    .unwrap();
    w.write_pcapng_block(EnhancedPacketBlock {
        interface_id: 1,
        timestamp: Duration::from_nanos(2_500_000_000),
        original_len: 60,
        data: Cow::Borrowed(&[7; 14]),
        options: vec![EnhancedPacketOption::Comment(Cow::Borrowed(
            "drop: no_route",
        ))],
    })
    .unwrap();
    w.write_pcapng_block(SimplePacketBlock {
        original_len: 5,
        data: Cow::Borrowed(&[1, 2, 3, 4, 5]),
    })
    .unwrap();
    w.into_inner()
}

#[test]
fn reads_pcapng_as_ecmpctl_capture_writes_it() {
    for endianness in [pcap_file::Endianness::Little, pcap_file::Endianness::Big] {
        let bytes = pcapng_capture(endianness);
        let r = CaptureReader::new(&bytes[..], "cap.pcapng").unwrap();
        assert!(matches!(r, CaptureReader::PcapNg(_)));
        let packets: Vec<Packet> = r.collect::<Result<_, _>>().unwrap();
        assert_eq!(packets.len(), 3);
        assert_eq!(packets[0].data, &BE_NANO[40..56]);
        assert_eq!(packets[0].header.ts_nanos, 1_000_000_002);
        assert_eq!(packets[1].data, [7; 14]);
        assert_eq!(
            packets[1].header,
            RecordHeader {
                ts_nanos: 2_500_000_000,
                caplen: 14,
                orig_len: 60
            }
        );
        assert_eq!(packets[2].data, [1, 2, 3, 4, 5]);
    }
}

#[test]
fn capture_reader_reads_classic_pcap_too() {
    let packets: Vec<Packet> = CaptureReader::new(BE_NANO, "be.pcap")
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let classic: Vec<Packet> = read_all(BE_NANO).unwrap();
    assert_eq!(packets, classic);
    let e = CaptureReader::new(&b"hello, not a capture at all"[..], "notes.txt")
        .err()
        .unwrap();
    assert!(matches!(e, IoError::BadMagic { .. }), "{e}");
    assert!(e.to_string().contains("notes.txt"), "{e}");
}

#[test]
fn pcapng_microsecond_default_and_binary_resolutions() {
    use pcap_file::pcapng::blocks::interface_description::{
        InterfaceDescriptionBlock, InterfaceDescriptionOption,
    };
    let mut idb = InterfaceDescriptionBlock::new(pcap_file::DataLink::ETHERNET, 0);
    // No if_tsresol: microseconds.
    assert_eq!(pcapng_nanos(3_000_007, &idb), 3_000_007_000);
    idb.options = vec![InterfaceDescriptionOption::IfTsResol(0x80 | 10)];
    assert_eq!(pcapng_nanos(1024 * 5, &idb), 5_000_000_000);
    idb.options = vec![InterfaceDescriptionOption::IfTsResol(12)];
    assert_eq!(pcapng_nanos(7_000, &idb), 7);
    idb.options = vec![InterfaceDescriptionOption::IfTsResol(0x7f)];
    assert_eq!(pcapng_nanos(u64::MAX, &idb), 0);
}

#[test]
fn pcapng_errors_name_file_and_offset() {
    let bytes = pcapng_capture(pcap_file::Endianness::Little);
    // The second enhanced packet block: after the SHB, two IDBs and the first EPB.
    let first_epb = {
        let mut r = PcapNgReader::new(&bytes[..], "cap.pcapng").unwrap();
        r.next().unwrap().unwrap();
        r.input.offset
    };
    let e = PcapNgReader::new(&bytes[..first_epb as usize + 10], "cut.pcapng")
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .err()
        .unwrap();
    assert!(
        matches!(e, IoError::Truncated { offset, .. } if offset == first_epb),
        "{e}"
    );
    assert!(e.to_string().contains("cut.pcapng"), "{e}");

    // A section header cut short.
    let e = CaptureReader::new(&bytes[..20], "short.pcapng")
        .err()
        .unwrap();
    assert!(matches!(e, IoError::Truncated { offset: 0, .. }), "{e}");

    // A packet naming an interface no block described.
    let mut bad_if = bytes.clone();
    let at = first_epb as usize + 8;
    bad_if[at..at + 4].copy_from_slice(&9u32.to_le_bytes());
    let e = PcapNgReader::new(&bad_if[..], "if.pcapng")
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .err()
        .unwrap();
    assert!(
        matches!(e, IoError::Malformed { offset, .. } if offset == first_epb),
        "{e}"
    );
    assert!(e.to_string().contains("if.pcapng"), "{e}");

    // A block whose trailing length disagrees with its leading one.
    let mut bad_len = bytes.clone();
    let n = bad_len.len();
    bad_len[n - 4] ^= 0x40;
    let e = PcapNgReader::new(&bad_len[..], "len.pcapng")
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .err()
        .unwrap();
    assert!(matches!(e, IoError::Malformed { .. }), "{e}");
}

#[test]
fn pcapng_refuses_non_ethernet_interfaces() {
    use pcap_file::pcapng::PcapNgWriter;
    use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock;
    use pcap_file::pcapng::blocks::simple_packet::SimplePacketBlock;
    let mut w = PcapNgWriter::new(Vec::new()).unwrap();
    w.write_pcapng_block(InterfaceDescriptionBlock::new(pcap_file::DataLink::RAW, 0))
        .unwrap();
    w.write_pcapng_block(SimplePacketBlock {
        original_len: 1,
        data: std::borrow::Cow::Borrowed(&[0x45]),
    })
    .unwrap();
    let bytes = w.into_inner();
    let e = CaptureReader::new(&bytes[..], "raw.pcapng")
        .unwrap()
        .next()
        .unwrap()
        .err()
        .unwrap();
    assert!(
        matches!(e, IoError::UnsupportedLinkType { linktype: 101, .. }),
        "{e}"
    );
}

#[test]
fn port_replays_a_pcapng_capture() {
    let bytes = pcapng_capture(pcap_file::Endianness::Little);
    let pool = FramePool::new(8);
    let reader = CaptureReader::new(Cursor::new(bytes), "cap.pcapng").unwrap();
    let mut port: PcapPort<_, Vec<u8>> = PcapPort::new(pool.clone()).with_rx(reader);
    let mut b = Burst::new();
    assert_eq!(port.rx_burst(&mut b), 3);
    assert_eq!(b[1].data(), &[7; 14]);
    assert_eq!(port.rx_burst(&mut b), 0);
    assert!(port.rx_done());
    assert!(port.take_error().is_none());
    pool.release_all(b.drain(..));
    assert_eq!(pool.outstanding(), 0);
}

/// A source that hands out at most `chunk` bytes a read, so records straddle refills.
struct Trickle<'a> {
    bytes: &'a [u8],
    chunk: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.chunk).min(self.bytes.len());
        buf[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        Ok(n)
    }
}

#[test]
fn captures_larger_than_the_buffer_read_whole_and_cut_at_the_right_byte() {
    let mut w = PcapWriter::new(Vec::new(), "big.pcap", Resolution::Nano, Endian::Big).unwrap();
    let packets: Vec<Vec<u8>> = (0..3_000u32)
        .map(|i| vec![(i % 251) as u8; 60 + (i as usize * 97) % 1_454])
        .chain([vec![9; MAX_CAPLEN as usize], vec![8; 100]])
        .collect();
    let mut offsets = Vec::new();
    let mut offset = FILE_HEADER_LEN as u64;
    for (i, p) in packets.iter().enumerate() {
        w.write_packet(i as u64, p).unwrap();
        offsets.push(offset);
        offset += (RECORD_HEADER_LEN + p.len()) as u64;
    }
    let bytes = w.into_inner().unwrap();
    assert!(bytes.len() > 2 * READ_BUF);
    for chunk in [usize::MAX, 4_093] {
        let r = PcapReader::new(
            Trickle {
                bytes: &bytes,
                chunk,
            },
            "big.pcap",
        )
        .unwrap();
        let back: Vec<Vec<u8>> = r.map(|p| p.unwrap().data).collect();
        assert!(back == packets, "chunk {chunk}");
    }
    // Cut inside the header of the long record, inside it, and inside the last one.
    let long = offsets[3_000];
    for (cut, at) in [
        (long + 5, long),
        (long + 5_000, long),
        (offset - 1, offsets[3_001]),
    ] {
        let r = PcapReader::new(&bytes[..cut as usize], "big.pcap").unwrap();
        let e = r.collect::<Result<Vec<_>, _>>().err().unwrap();
        assert!(
            matches!(e, IoError::Truncated { offset, .. } if offset == at),
            "cut {cut}: {e}"
        );
    }
}

proptest! {
    #[test]
    fn round_trip_any_packets(
        packets in proptest::collection::vec(
            (any::<u64>(), proptest::collection::vec(any::<u8>(), 0..200)), 0..20),
        nano in any::<bool>(),
        big in any::<bool>(),
    ) {
        // Timestamps are u32 seconds on disk; keep them representable.
        let packets: Vec<(u64, Vec<u8>)> = packets
            .into_iter()
            .map(|(ts, d)| (ts % (u64::from(u32::MAX) * NANOS_PER_SEC), d))
            .collect();
        let resolution = if nano { Resolution::Nano } else { Resolution::Micro };
        let endian = if big { Endian::Big } else { Endian::Little };
        round_trip(resolution, endian, &packets);
    }

    // Arbitrary bytes after a valid header never panic the reader; it ends or errors.
    #[test]
    fn garbage_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut bytes = LE_MICRO[..24].to_vec();
        bytes.extend_from_slice(&tail);
        let mut r = PcapReader::new(&bytes[..], "fuzz.pcap").unwrap();
        let mut buf = [0u8; 64];
        for _ in 0..400 {
            match r.read_into(&mut buf) {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }

    // Arbitrary bytes after a valid pcapng section header never panic the reader either, nor do
    // random changes to a valid pcapng capture.
    #[test]
    fn pcapng_garbage_never_panics(
        tail in proptest::collection::vec(any::<u8>(), 0..300),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8),
    ) {
        let valid = pcapng_capture(pcap_file::Endianness::Little);
        let shb = usize::from(valid[4]);
        let mut garbage = valid[..shb].to_vec();
        garbage.extend_from_slice(&tail);
        let mut flipped = valid.clone();
        for (at, x) in flips {
            let n = flipped.len();
            flipped[at % n] ^= x;
        }
        for bytes in [garbage, flipped] {
            let Ok(mut r) = CaptureReader::new(&bytes[..], "fuzz.pcapng") else {
                continue;
            };
            let mut buf = [0u8; 64];
            for _ in 0..400 {
                match r.read_into(&mut buf) {
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }
}
