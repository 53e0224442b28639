//! AF_XDP ports on veth pairs: rx in driver and generic mode, tx, zero-copy forwarding between
//! two ports of one UMEM, headroom, and frame accounting. Run as root.

mod xdp_lab;

use std::time::Duration;

use ecmp_io::xdp::{
    AttachMode, BindMode, UMEM_HEADROOM, Umem, UmemConfig, XdpFrame, XdpProgram, XskConfig, XskPort,
};
use ecmp_port::{Burst, Frame, Port};
use xdp_lab::{Lab, PacketSocket, bytes_of, drain_tx, rx_until, transit, tx_all};

const WAIT: Duration = Duration::from_secs(3);

fn small_config() -> XskConfig {
    XskConfig {
        rx_size: 512,
        tx_size: 512,
        fill_size: 512,
        comp_size: 512,
        ..XskConfig::default()
    }
}

fn umem(frames: u32) -> Umem {
    Umem::new(UmemConfig {
        frame_count: frames,
        hugepages: ecmp_mem::HugePages::Off,
    })
    .expect("lab setup")
}

/// Sends 40 distinct transit packets from b0 and checks a0's socket gets exactly them.
fn rx_on_a0(tag: &str, mode: AttachMode) {
    let _lab = Lab::new(tag, 1);
    let prog = XdpProgram::attach("a0", mode).expect("lab setup");
    assert!(!prog.replaced_stale());
    let umem = umem(1024);
    let mut port =
        XskPort::open(&umem, "a0", 0, BindMode::Copy, &small_config()).expect("lab setup");
    assert!(!port.zero_copy());
    prog.register_socket(0, std::os::fd::AsFd::as_fd(&port))
        .expect("lab setup");

    let sender = PacketSocket::bind("b0");
    let sent: Vec<Vec<u8>> = (0..40u8)
        .map(|i| transit(0, i, 20 + usize::from(i)))
        .collect();
    for p in &sent {
        sender.send(p);
    }
    let got = rx_until(&mut port, sent.len(), WAIT);
    assert_eq!(bytes_of(&got), sent);
    // Nothing more than what was sent arrives.
    std::thread::sleep(Duration::from_millis(50));
    let extra = rx_until(&mut port, 1, Duration::from_millis(50));
    assert!(
        extra.is_empty(),
        "unexpected frames: {:?}",
        bytes_of(&extra)
    );

    let stats = port.stats();
    assert_eq!(stats.rx_packets, 40);
    assert_eq!(
        stats.rx_bytes,
        sent.iter().map(|p| p.len() as u64).sum::<u64>()
    );
    assert_eq!(prog.counters().expect("lab setup").redirected, 40);
    for f in got {
        // The registered headroom plus the kernel's own 256-byte XDP headroom.
        assert_eq!(f.headroom(), UMEM_HEADROOM + 256);
        port.release(f);
    }
    assert_eq!(umem.outstanding(), port.kernel_held() as usize);
}

#[test]
fn rx_driver_mode() {
    rx_on_a0("rd", AttachMode::Driver);
}

#[test]
fn rx_generic_mode() {
    rx_on_a0("rg", AttachMode::Generic);
}

#[test]
fn tx_arrives_at_peer() {
    let _lab = Lab::new("tx", 1);
    let umem = umem(1024);
    let mut port = XskPort::open(&umem, "a0", 0, BindMode::Auto, &small_config()).unwrap();
    let fill_held = port.kernel_held();
    let sink = PacketSocket::bind("b0");

    let packets: Vec<Vec<u8>> = (0..50u8)
        .map(|i| {
            xdp_lab::udp4(
                xdp_lab::mac_b(0),
                xdp_lab::mac_a(0),
                [198, 18, 0, 1],
                [198, 18, 0, 2],
                i,
                30,
            )
        })
        .collect();
    let frames: Vec<XdpFrame> = packets
        .iter()
        .map(|p| umem.frame_from(p).unwrap())
        .collect();
    assert_eq!(tx_all(&mut port, frames, WAIT), packets.len());
    let got = sink.recv_incoming(packets.len(), WAIT);
    assert_eq!(got, packets);
    drain_tx(&mut port, fill_held, WAIT);
    assert_eq!(port.kernel_held(), fill_held);
    assert_eq!(umem.outstanding(), fill_held as usize);
    assert_eq!(port.stats().tx_packets, 50);
}

/// Receives on a0, sends the same frames (same chunks) out of a1: no chunk is taken from the
/// free list for the transmission and the bytes arrive at b1 unchanged.
#[test]
fn forward_between_ports_without_copy() {
    let _lab = Lab::new("fw", 2);
    let prog = XdpProgram::attach("a0", AttachMode::Driver).unwrap();
    let umem = umem(2048);
    let cfg = small_config();
    let mut a = XskPort::open(&umem, "a0", 0, BindMode::Copy, &cfg).unwrap();
    let mut b = XskPort::open(&umem, "a1", 0, BindMode::Auto, &cfg).unwrap();
    assert!(!b.zero_copy());
    prog.register_socket(0, std::os::fd::AsFd::as_fd(&a))
        .unwrap();
    let b_fill = b.kernel_held();
    let sender = PacketSocket::bind("b0");
    let sink = PacketSocket::bind("b1");

    let sent: Vec<Vec<u8>> = (0..20u8).map(|i| transit(0, i, 60)).collect();
    for p in &sent {
        sender.send(p);
    }
    let got = rx_until(&mut a, sent.len(), WAIT);
    assert_eq!(got.len(), sent.len());
    let chunks: Vec<u64> = got.iter().map(XdpFrame::chunk_addr).collect();

    let free_before = umem.available();
    let mut burst: Burst<XdpFrame> = got.into_iter().collect();
    assert_eq!(b.tx_burst(&mut burst), sent.len());
    assert!(burst.is_empty());
    // tx took no chunk from the free list: the descriptors point at the received chunks.
    assert_eq!(umem.available(), free_before);

    let arrived = sink.recv_incoming(sent.len(), WAIT);
    assert_eq!(arrived, sent);
    drain_tx(&mut b, b_fill, WAIT);
    assert_eq!(b.kernel_held(), b_fill);
    // The completed chunks are back on the free list: exactly the received ones.
    let mut reused = Vec::new();
    while let Some(f) = umem.alloc() {
        reused.push(f);
        if reused.len() == umem.frame_count() as usize {
            break;
        }
    }
    let reused_chunks: Vec<u64> = reused.iter().map(XdpFrame::chunk_addr).collect();
    for c in &chunks {
        assert!(reused_chunks.contains(c), "chunk {c} not recycled");
    }
    for f in reused {
        umem.release(f);
    }
    assert_eq!(
        umem.outstanding(),
        (a.kernel_held() + b.kernel_held()) as usize
    );
}

/// A received frame grows at the front into its headroom and goes out longer.
#[test]
fn push_front_on_received_frame() {
    let _lab = Lab::new("pf", 2);
    let prog = XdpProgram::attach("a0", AttachMode::Driver).unwrap();
    let umem = umem(1024);
    let cfg = small_config();
    let mut a = XskPort::open(&umem, "a0", 0, BindMode::Copy, &cfg).unwrap();
    let mut b = XskPort::open(&umem, "a1", 0, BindMode::Copy, &cfg).unwrap();
    prog.register_socket(0, std::os::fd::AsFd::as_fd(&a))
        .unwrap();
    let sender = PacketSocket::bind("b0");
    let sink = PacketSocket::bind("b1");

    let inner = transit(0, 7, 100);
    sender.send(&inner);
    let mut got = rx_until(&mut a, 1, WAIT);
    assert_eq!(got.len(), 1);
    let mut frame = got.pop().unwrap();
    let headroom = frame.headroom();
    assert!(headroom >= UMEM_HEADROOM, "headroom {headroom}");
    // An outer Ethernet header addressed to b1, as an encapsulation would write.
    assert!(frame.push_front(14));
    let mut outer = Vec::new();
    outer.extend_from_slice(&xdp_lab::mac_b(1));
    outer.extend_from_slice(&xdp_lab::mac_a(1));
    outer.extend_from_slice(&[0x88, 0xb5]);
    frame.data_mut()[..14].copy_from_slice(&outer);
    assert_eq!(frame.headroom(), headroom - 14);
    assert!(!frame.push_front(headroom - 13));

    let mut burst: Burst<XdpFrame> = Burst::new();
    burst.push(frame);
    assert_eq!(b.tx_burst(&mut burst), 1);
    let arrived = sink.recv_incoming(1, WAIT);
    assert_eq!(arrived.len(), 1);
    assert_eq!(&arrived[0][..14], &outer[..]);
    assert_eq!(&arrived[0][14..], &inner[..]);
}

/// Many bursts received, half forwarded and half released: every frame is accounted for.
#[test]
fn no_frame_leaks_over_many_bursts() {
    let _lab = Lab::new("lk", 2);
    let prog = XdpProgram::attach("a0", AttachMode::Driver).unwrap();
    let umem = umem(1024);
    let cfg = small_config();
    let mut a = XskPort::open(&umem, "a0", 0, BindMode::Copy, &cfg).unwrap();
    let mut b = XskPort::open(&umem, "a1", 0, BindMode::Copy, &cfg).unwrap();
    prog.register_socket(0, std::os::fd::AsFd::as_fd(&a))
        .unwrap();
    let b_fill = b.kernel_held();
    let sender = PacketSocket::bind("b0");
    let sink = PacketSocket::bind("b1");

    let rounds = 30;
    let per_round = 32;
    let mut forwarded = 0;
    let mut arrived = 0;
    for round in 0..rounds {
        for i in 0..per_round {
            sender.send(&transit(0, (round * per_round + i) as u8, 40));
        }
        let got = rx_until(&mut a, per_round, WAIT);
        assert_eq!(got.len(), per_round, "round {round}");
        let mut burst: Burst<XdpFrame> = Burst::new();
        for (i, f) in got.into_iter().enumerate() {
            if i % 2 == 0 {
                burst.push(f);
            } else {
                a.release(f);
            }
        }
        let n = b.tx_burst(&mut burst);
        forwarded += n;
        b.release_burst(&mut burst);
        b.flush();
        a.flush();
        // Read them each round: the capture socket's buffer holds only a few hundred.
        arrived += sink.recv_incoming(n, WAIT).len();
    }
    assert_eq!(forwarded, rounds * per_round / 2);
    assert_eq!(arrived, forwarded);
    drain_tx(&mut b, b_fill, WAIT);
    assert_eq!(
        umem.outstanding(),
        (a.kernel_held() + b.kernel_held()) as usize
    );
    assert_eq!(b.kernel_held(), b_fill);
    assert_eq!(a.stats().rx_packets, (rounds * per_round) as u64);
    assert_eq!(umem.foreign_releases(), 0);
}
