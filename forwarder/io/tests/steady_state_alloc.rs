//! Proves the "no allocation once warmed up" promise of the ports: a counting global allocator
//! watches a worker-style poll loop over every port type of this crate.

use std::io::{self, Cursor};

use ecmp_io::pcap::{Endian, PcapPort, PcapReader, PcapWriter, Resolution};
use ecmp_port::alloc_count::{CountingAllocator, allocations};
use ecmp_port::fault::{Chance, FaultConfig, FaultPort};
use ecmp_port::memory::{FramePool, MemoryPort, TxMode};
use ecmp_port::{Burst, Port};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn packet(i: u8, len: usize) -> Vec<u8> {
    let mut p = vec![i; len];
    p[12] = 0x08;
    p[13] = 0x00;
    p
}

/// One iteration of a worker's poll loop: receive, transmit, release what tx refused, flush.
fn forward<R: Port, T: Port<Frame = R::Frame>>(rx: &mut R, tx: &mut T, b: &mut Burst<R::Frame>) {
    rx.rx_burst(b);
    tx.tx_burst(b);
    for f in b.drain(..) {
        tx.release(f);
    }
    tx.flush();
}

#[test]
fn poll_loops_do_not_allocate_once_warm() {
    let pool = FramePool::new(256);
    let packets: Vec<Vec<u8>> = (0..64u8)
        .map(|i| packet(i, 60 + usize::from(i) * 20))
        .collect();

    // Memory replay through a fault wrapper into a counting sink and a collecting port.
    let mut rx = FaultPort::new(
        MemoryPort::new(pool.clone()),
        11,
        FaultConfig {
            rx_drop: Chance::percent(10),
            rx_truncate: Chance::percent(10),
            rx_corrupt: Chance::percent(10),
            tx_refuse: Chance::NEVER,
        },
    );
    rx.inner_mut().replay(&packets).unwrap();
    let mut sink = FaultPort::new(
        MemoryPort::with_tx_mode(pool.clone(), TxMode::Count),
        12,
        FaultConfig {
            tx_refuse: Chance::percent(20),
            ..FaultConfig::default()
        },
    );
    let mut collect = MemoryPort::new(pool.clone());

    // A pcap capture of 2000 packets read from memory, written to a discarding writer.
    let mut w = PcapWriter::new(Vec::new(), "in.pcap", Resolution::Nano, Endian::Little).unwrap();
    for i in 0..2000u32 {
        w.write_packet(u64::from(i), &packets[i as usize % packets.len()])
            .unwrap();
    }
    let capture = w.into_inner().unwrap();
    let reader = PcapReader::new(Cursor::new(capture), "in.pcap").unwrap();
    let writer = PcapWriter::new(io::sink(), "out.pcap", Resolution::Micro, Endian::Big).unwrap();
    let mut pcap = PcapPort::new(pool.clone()).with_rx(reader).with_tx(writer);

    let mut b = Burst::new();
    let mut step = |b: &mut Burst<_>| {
        forward(&mut rx, &mut sink, b);
        forward(&mut rx, &mut collect, b);
        collect.clear_sent();
        forward(&mut pcap, &mut sink, b);
        forward(&mut rx, &mut pcap, b);
    };
    for _ in 0..4 {
        step(&mut b);
    }

    // The counter itself works: a real allocation shows up.
    let probe = allocations();
    drop(std::hint::black_box(Vec::<u8>::with_capacity(8)));
    assert_eq!(allocations(), probe + 1);

    let before = allocations();
    for _ in 0..10_000 {
        step(&mut b);
    }
    let during = allocations() - before;
    assert_eq!(
        during, 0,
        "steady-state poll loops allocated {during} times"
    );

    // Each frame risks a 20% refusal that also refuses the rest of its burst: about 4 of every
    // 29 offered get through.
    assert!(sink.inner().stats().tx_packets > 30_000);
    assert!(sink.stats().tx_refused > 200_000);
    assert!(collect.stats().tx_packets > 250_000);
    assert!(pcap.stats().tx_packets > 250_000);
    assert!(pcap.rx_done());
    assert_eq!(pcap.stats().rx_packets, 2000);
    assert!(pcap.take_error().is_none());
    assert_eq!(pool.outstanding(), 0);
}
