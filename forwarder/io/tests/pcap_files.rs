//! Capture files on disk: a pcap in, forwarded through memory ports, one pcap out per egress port.

use ecmp_io::IoError;
use ecmp_io::pcap::{PcapPort, PcapReader, PcapWriter, Resolution};
use ecmp_port::memory::{FramePool, HEADROOM};
use ecmp_port::{Burst, Frame, Port};

fn frame(dst_last: u8, len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len];
    p[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, dst_last]);
    p[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xee]);
    p[12..14].copy_from_slice(&[0x08, 0x00]);
    for (i, b) in p[14..].iter_mut().enumerate() {
        *b = i as u8;
    }
    p
}

#[test]
fn split_capture_across_two_egress_files() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.pcap");
    let out0 = dir.path().join("port0.pcap");
    let out1 = dir.path().join("port1.pcap");

    let packets: Vec<Vec<u8>> = (0..100)
        .map(|i| frame(i % 2, 60 + usize::from(i)))
        .collect();
    let mut w = PcapWriter::create_with(&input, Resolution::Nano, Default::default()).unwrap();
    for (i, p) in packets.iter().enumerate() {
        w.write_packet(i as u64 * 1_000_000, p).unwrap();
    }
    w.into_inner().unwrap();

    let pool = FramePool::new(64);
    let mut rx = PcapPort::open(pool.clone(), Some(&input), None).unwrap();
    let mut tx = [
        PcapPort::open(pool.clone(), None, Some(&out0)).unwrap(),
        PcapPort::open(pool.clone(), None, Some(&out1)).unwrap(),
    ];

    // A toy pipeline: pick the egress port by the last byte of the destination MAC, and
    // encapsulate with a 4-byte tag in the headroom so the output differs from the input.
    let mut b = Burst::new();
    let mut per_port: [Burst<_>; 2] = [Burst::new(), Burst::new()];
    while rx.rx_burst(&mut b) > 0 {
        for mut f in b.drain(..) {
            assert_eq!(f.headroom(), HEADROOM);
            assert!(f.push_front(4));
            f.data_mut()[..4].copy_from_slice(b"TAG!");
            let port = usize::from(f.data()[9] & 1);
            per_port[port].push(f);
        }
        for (port, burst) in tx.iter_mut().zip(per_port.iter_mut()) {
            port.tx_burst(burst);
            assert!(burst.is_empty());
            port.flush();
        }
    }
    assert!(rx.rx_done());
    assert_eq!(rx.stats().rx_packets, 100);
    assert_eq!(pool.outstanding(), 0);
    for port in tx {
        port.finish().unwrap();
    }

    for (k, path) in [&out0, &out1].into_iter().enumerate() {
        let got: Vec<Vec<u8>> = PcapReader::open(path)
            .unwrap()
            .map(|p| p.unwrap().data)
            .collect();
        let want: Vec<Vec<u8>> = packets
            .iter()
            .filter(|p| usize::from(p[5]) == k)
            .map(|p| [&b"TAG!"[..], p].concat())
            .collect();
        assert_eq!(got, want, "{}", path.display());
    }
}

#[test]
fn open_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let pool = FramePool::new(1);

    let missing = dir.path().join("missing.pcap");
    let e = PcapPort::open(pool.clone(), Some(&missing), None)
        .err()
        .unwrap();
    assert!(matches!(e, IoError::Open { .. }));
    assert!(e.to_string().contains("missing.pcap"), "{e}");

    let not_pcap = dir.path().join("notes.txt");
    std::fs::write(&not_pcap, b"hello, this is not a capture").unwrap();
    let e = PcapPort::open(pool.clone(), Some(&not_pcap), None)
        .err()
        .unwrap();
    assert!(matches!(e, IoError::BadMagic { .. }));
    assert!(e.to_string().contains("notes.txt"), "{e}");

    let unwritable = dir.path().join("no/such/dir/out.pcap");
    let e = PcapPort::open(pool, None, Some(&unwritable)).err().unwrap();
    assert!(e.to_string().contains("out.pcap"), "{e}");
}
