//! DPDK ports over virtual devices (feature `dpdk`): no root, no NIC, no huge pages.
//!
//! DPDK initialises its EAL once per process, so every test gets it through [`eal`], a
//! process-wide `OnceLock`: nextest runs each test in a process of its own (one EAL each, with
//! its own `--file-prefix`), and under plain `cargo test` the file's tests share one EAL. Either
//! way each test uses devices and pools of its own (distinct vdev names), so they never meet.

use std::sync::{Arc, OnceLock};

use ecmp_io::dpdk::{
    DeviceConfig, DpdkDevice, DpdkError, DpdkFrame, DpdkPort, Eal, Mempool, PoolConfig,
    RSS_KEY_LEN, default_headroom,
};
use ecmp_io::pcap::{PcapReader, PcapWriter, Resolution};
use ecmp_port::alloc_count::{CountingAllocator, allocations};
use ecmp_port::{BURST, Burst, Frame, Port};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// The test EAL: one lcore, 256 MB of ordinary memory, no PCI scan, no shared files (each test
/// process is a primary of its own), and one vdev from the arguments (the others are hot-plugged
/// by spec, as the daemon does).
fn eal() -> &'static Eal {
    static EAL: OnceLock<&'static Eal> = OnceLock::new();
    EAL.get_or_init(|| {
        let prefix = format!("ecmp-test-{}", std::process::id());
        let eal = Eal::init(&[
            "-l",
            "0",
            "--no-huge",
            "--no-pci",
            "-m",
            "256",
            "--file-prefix",
            prefix.as_str(),
            "--log-level",
            "lib.eal:error",
            "--no-telemetry",
            "--no-shconf",
            "--vdev",
            "net_null0",
        ])
        .expect("EAL init");
        // With --no-shconf the EAL writes nothing into its runtime directory, but it still
        // creates it (/var/run/dpdk/<prefix> as root): remove the empty directory so that test
        // runs leave nothing behind. Best effort: only an empty directory goes.
        let _ = std::fs::remove_dir(format!("/var/run/dpdk/{prefix}"));
        if let Some(xdg) = std::env::var_os("XDG_RUNTIME_DIR") {
            let _ = std::fs::remove_dir(std::path::Path::new(&xdg).join("dpdk").join(&prefix));
        }
        eal
    })
}

fn pool(label: &str, mbufs: u32) -> Arc<Mempool> {
    let config = PoolConfig {
        mbufs,
        cache: 0,
        ..PoolConfig::default()
    };
    Arc::new(Mempool::create(eal(), label, &config).expect("mbuf pool"))
}

fn packet(i: u16, len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len];
    p[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    p[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    p[12..14].copy_from_slice(&[0x08, 0x00]);
    for (j, b) in p[14..].iter_mut().enumerate() {
        *b = (usize::from(i) + j) as u8;
    }
    p
}

fn open(spec: &str, pools: &[Arc<Mempool>]) -> DpdkDevice {
    DpdkDevice::open(eal(), spec, &DeviceConfig::default(), pools).expect("open device")
}

fn burst_of(pool: &Mempool, first: u16, n: usize, len: usize) -> Burst<DpdkFrame> {
    let mut b = Burst::new();
    for i in 0..n {
        b.push(
            pool.frame_from(&packet(first + i as u16, len))
                .expect("frame"),
        );
    }
    b
}

#[test]
fn ring_loops_frames_back_without_copying_them() {
    let pool = pool("ring-loop", 1023);
    let dev = open("net_ring10", std::slice::from_ref(&pool));
    let mut port = dev.port(0).expect("queue 0");
    assert!(dev.port(0).is_none(), "a queue has one poller");

    let mut out = burst_of(&pool, 0, BURST, 100);
    let sent_ids: Vec<usize> = out.iter().map(DpdkFrame::mbuf_addr).collect();
    assert_eq!(port.tx_burst(&mut out), BURST);
    assert!(out.is_empty());

    let mut back = Burst::new();
    assert_eq!(port.rx_burst(&mut back), BURST);
    let got_ids: Vec<usize> = back.iter().map(DpdkFrame::mbuf_addr).collect();
    assert_eq!(got_ids, sent_ids, "the same mbufs come back: no copy");
    for (i, f) in back.iter().enumerate() {
        assert_eq!(f.data(), packet(i as u16, 100).as_slice());
        assert_eq!(f.headroom(), default_headroom());
    }
    let stats = port.stats();
    assert_eq!(
        (stats.tx_packets, stats.rx_packets),
        (BURST as u64, BURST as u64)
    );
    assert_eq!((stats.tx_bytes, stats.rx_bytes), (3200, 3200));
    port.release_burst(&mut back);
    drop(port);
    drop(dev);
    assert_eq!(pool.in_use(), 0);

    // Closing unplugs the device: the same spec opens again.
    let again = open("net_ring10", std::slice::from_ref(&pool));
    assert!(again.port(0).is_some());
}

#[test]
fn ring_tx_refusals_stay_in_the_burst_and_nothing_leaks() {
    let pool = pool("ring-refuse", 4095);
    let dev = open("net_ring11", std::slice::from_ref(&pool));
    let mut port = dev.port(0).expect("queue 0");
    // Send more than net_ring's ring holds, without receiving.
    let rounds = 80u16;
    let mut accepted = 0;
    let mut refused = 0;
    for round in 0..rounds {
        let mut b = burst_of(&pool, round, BURST, 64);
        let n = port.tx_burst(&mut b);
        assert_eq!(n + b.len(), BURST, "refused frames stay in the burst");
        accepted += n;
        refused += b.len();
        for f in b.drain(..) {
            port.release(f);
        }
    }
    assert!(
        refused > 0 && accepted > 0,
        "{accepted} accepted, {refused} refused"
    );
    assert_eq!(accepted + refused, usize::from(rounds) * BURST);
    assert_eq!(port.stats().tx_refused, refused as u64);
    assert_eq!(port.dpdk_stats().tx_refused, refused as u64);
    assert_eq!(
        pool.in_use() as usize,
        accepted,
        "only the ring's frames are out"
    );

    // Drain the ring.
    let mut rx = Burst::new();
    let mut received = 0;
    while port.rx_burst(&mut rx) > 0 {
        received += rx.len();
        for f in rx.drain(..) {
            port.release(f);
        }
    }
    assert_eq!(received, accepted);
    assert_eq!(pool.in_use(), 0, "every frame back in the pool");
}

#[test]
fn null_device_bursts_do_not_allocate_or_leak() {
    let pool = pool("null-poll", 2047);
    // net_null0 comes from the EAL arguments: found by name, not hot-plugged.
    let dev = open("net_null0", std::slice::from_ref(&pool));
    let mut port: DpdkPort = dev.port(0).expect("queue 0");
    let mut b = Burst::new();
    // Warm up, then count.
    port.rx_burst(&mut b);
    port.tx_burst(&mut b);
    assert!(b.is_empty());
    let before = allocations();
    for _ in 0..1000 {
        assert_eq!(port.rx_burst(&mut b), BURST);
        for f in &mut b {
            f.data_mut()[0] ^= 1;
        }
        port.tx_burst(&mut b);
        for f in b.drain(..) {
            port.release(f);
        }
        port.flush();
    }
    assert_eq!(allocations() - before, 0, "rx/tx bursts allocated");
    let stats = port.stats();
    assert_eq!(stats.rx_packets, 1001 * BURST as u64);
    assert_eq!(stats.tx_packets, 1001 * BURST as u64);
    assert_eq!(pool.in_use(), 0, "net_null frees what it sends");

    let link = dev.link().expect("link");
    assert!(link.up, "{link:?}");
    let xstats = dev.xstats().expect("xstats");
    let get = |name: &str| xstats.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
    assert_eq!(
        get("rx_good_packets"),
        Some(1001 * BURST as u64),
        "{xstats:?}"
    );
    assert_eq!(
        get("tx_good_packets"),
        Some(1001 * BURST as u64),
        "{xstats:?}"
    );
    assert_eq!(dev.stats().expect("stats").ipackets, 1001 * BURST as u64);
}

#[test]
fn rss_key_is_configured_where_the_device_has_rss() {
    let key: [u8; RSS_KEY_LEN] = std::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ 0x5a);
    let config = DeviceConfig {
        rss_key: Some(key),
        ..DeviceConfig::default()
    };
    let pools = [pool("rss-0", 511), pool("rss-1", 511)];
    // net_null has RSS (a software one): it must take the key, on both queues.
    let null = DpdkDevice::open(eal(), "net_null20", &config, &pools).expect("net_null");
    assert!(null.rss());
    assert_eq!(null.rss_key(), Some(key));
    assert_eq!(null.queues(), 2);
    assert!(null.port(0).is_some() && null.port(1).is_some() && null.port(2).is_none());

    // net_ring has none: the port opens anyway and says RSS is off.
    let ring_pool = [pool("rss-ring", 511)];
    let ring = DpdkDevice::open(eal(), "net_ring20", &config, &ring_pool).expect("net_ring");
    assert!(!ring.rss());
}

#[test]
fn frames_grow_and_shrink_like_every_other_frame() {
    let pool = pool("frame-window", 63);
    let mut f = pool.frame_from(&packet(7, 80)).expect("frame");
    let head = default_headroom();
    assert_eq!((f.headroom(), f.data().len()), (head, 80));
    assert!(f.pull_front(14));
    assert_eq!((f.headroom(), f.data().len()), (head + 14, 66));
    assert!(f.push_front(14 + 50));
    assert_eq!((f.headroom(), f.data().len()), (head - 50, 130));
    assert_eq!(&f.data()[64..], &packet(7, 80)[14..]);
    assert!(!f.push_front(head), "more than the headroom");
    assert_eq!(f.headroom(), head - 50);
    assert!(!f.pull_front(131), "more than the packet");
    f.truncate(100);
    assert_eq!(f.data().len(), 100);
    f.truncate(200);
    assert_eq!(f.data().len(), 100);
    assert!(!f.push_front(1 << 20));
    f.free();
    assert!(
        pool.frame_from(&vec![0; pool.max_packet() + 1]).is_err(),
        "larger than an mbuf"
    );
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn pcap_device_forwards_a_capture_byte_for_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.pcap");
    let output = dir.path().join("out.pcap");
    let packets: Vec<Vec<u8>> = (0..200u16)
        .map(|i| packet(i, 60 + usize::from(i) * 7))
        .collect();
    let mut w = PcapWriter::create_with(&input, Resolution::Micro, Default::default()).unwrap();
    for (i, p) in packets.iter().enumerate() {
        w.write_packet(i as u64 * 1000, p).unwrap();
    }
    w.into_inner().unwrap();

    let pool = pool("pcap", 1023);
    let spec = format!(
        "net_pcap30,rx_pcap={},tx_pcap={}",
        input.display(),
        output.display()
    );
    let dev = open(&spec, std::slice::from_ref(&pool));
    let mut port = dev.port(0).expect("queue 0");
    let mut b = Burst::new();
    let mut forwarded = 0;
    // net_pcap delivers the file once, then reports empty polls.
    for _ in 0..1000 {
        port.rx_burst(&mut b);
        forwarded += port.tx_burst(&mut b);
        for f in b.drain(..) {
            port.release(f);
        }
        if forwarded == packets.len() {
            break;
        }
    }
    assert_eq!(forwarded, packets.len());
    drop(port);
    // Closing the device flushes and closes its capture.
    drop(dev);
    assert_eq!(pool.in_use(), 0);
    let mut r = PcapReader::open(&output).unwrap();
    let mut got = Vec::new();
    while let Some(p) = r.next_packet().unwrap() {
        got.push(p.data);
    }
    assert_eq!(got, packets);
}

#[test]
fn start_up_errors_name_the_device_and_the_cause() {
    let pools = [pool("errors", 63)];
    let missing = DpdkDevice::open(eal(), "net_nosuchdriver0", &DeviceConfig::default(), &pools)
        .expect_err("no such PMD");
    assert!(
        matches!(&missing, DpdkError::PmdMissing { device, driver }
            if device == "net_nosuchdriver0" && driver == "net_nosuchdriver"),
        "{missing:?}"
    );

    let bad_args = DpdkDevice::open(
        eal(),
        "net_pcap40,rx_pcap=/nonexistent/in.pcap",
        &DeviceConfig::default(),
        &pools,
    )
    .expect_err("missing capture");
    assert!(
        bad_args
            .to_string()
            .contains("net_pcap40,rx_pcap=/nonexistent/in.pcap"),
        "{bad_args}"
    );
    assert!(
        !matches!(bad_args, DpdkError::PmdMissing { .. }),
        "{bad_args:?}"
    );

    let config = DeviceConfig {
        min_headroom: default_headroom() + 1,
        ..DeviceConfig::default()
    };
    let headroom = DpdkDevice::open(eal(), "net_null40", &config, &pools).expect_err("headroom");
    assert!(
        matches!(&headroom, DpdkError::Headroom { device, need, .. }
            if device == "net_null40" && *need == default_headroom() + 1),
        "{headroom:?}"
    );

    let again = Eal::init(&["--no-huge"]).expect_err("second EAL");
    assert!(matches!(again, DpdkError::AlreadyInitialised), "{again:?}");
    assert!(Eal::get().is_some());
}
