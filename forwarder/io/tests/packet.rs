//! PacketPort over a real veth pair in a namespace of the test's own (needs root).
//!
//! The test thread enters the namespace with setns, so the ports it opens live there; the namespace
//! and its veths are removed by a Drop guard, on panic too.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

use ecmp_io::packet::{PacketOptions, PacketPort};
use ecmp_port::memory::FramePool;
use ecmp_port::{BURST, Burst, Frame, Port};

/// An ethertype from the local-experimental range: nothing in the kernel answers or emits it.
const ETHERTYPE: [u8; 2] = [0x88, 0xb5];

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().expect("run ip");
    assert!(st.success(), "ip {args:?} failed");
}

/// A namespace holding veth pair `a` <-> `b`, both up; deleted on drop.
struct VethNs {
    ns: String,
    a: String,
    b: String,
}

impl VethNs {
    fn new(tag: &str) -> VethNs {
        let pid = std::process::id();
        let v = VethNs {
            ns: format!("efwio-{tag}-{pid}"),
            a: format!("pa{pid}"),
            b: format!("pb{pid}"),
        };
        let _ = Command::new("ip")
            .args(["netns", "del", &v.ns])
            .stderr(std::process::Stdio::null())
            .status();
        ip(&["netns", "add", &v.ns]);
        // No IPv6 on the links, so the kernel sends no router solicitations or MLD reports.
        let st = Command::new("ip")
            .args(["netns", "exec", &v.ns, "sh", "-c"])
            .arg("echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6")
            .status()
            .expect("sysctl");
        assert!(st.success());
        ip(&[
            "-n",
            &v.ns,
            "link",
            "add",
            &v.a,
            "address",
            "02:ef:10:00:00:0a",
            "numrxqueues",
            "1",
            "numtxqueues",
            "1",
            "type",
            "veth",
            "peer",
            "name",
            &v.b,
            "address",
            "02:ef:10:00:00:0b",
            "numrxqueues",
            "1",
            "numtxqueues",
            "1",
        ]);
        ip(&["-n", &v.ns, "link", "set", &v.a, "up"]);
        ip(&["-n", &v.ns, "link", "set", &v.b, "up"]);
        v
    }

    /// Moves the calling thread into the namespace (only this thread: setns is per thread).
    fn enter(&self) {
        let f = File::open(format!("/run/netns/{}", self.ns)).expect("open netns");
        // SAFETY: `f` is an open namespace file descriptor for the duration of the call.
        let ret = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(ret, 0, "setns: {}", std::io::Error::last_os_error());
        // Carrier reaches a veth peer asynchronously; a send before it would be dropped.
        let deadline = Instant::now() + Duration::from_secs(5);
        for dev in [&self.a, &self.b] {
            loop {
                let out = Command::new("ip")
                    .args(["-n", &self.ns, "-br", "link", "show", dev])
                    .output()
                    .expect("ip link show");
                if String::from_utf8_lossy(&out.stdout).contains(" UP ") {
                    break;
                }
                assert!(Instant::now() < deadline, "{dev} did not come up");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for VethNs {
    fn drop(&mut self) {
        // Deleting the namespace deletes both veth ends.
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

/// Frame `i`: to `dst`, a distinct length (60..=1514) and a distinct body.
fn frame(i: usize, dst: [u8; 6]) -> Vec<u8> {
    let len = 60 + (i * 37) % (1514 - 60 + 1);
    let mut f = vec![0u8; len];
    f[..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&[0x02, 0xef, 0x10, 0, 0, 0x0a]);
    f[12..14].copy_from_slice(&ETHERTYPE);
    f[14..18].copy_from_slice(&(i as u32).to_be_bytes());
    for (k, b) in f[18..].iter_mut().enumerate() {
        *b = (k ^ i) as u8;
    }
    f
}

/// Receives from `port` until `want` frames of our ethertype arrived or `wait` passed; returns
/// copies of them (other frames are released and ignored).
fn receive(port: &mut PacketPort, want: usize, wait: Duration) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + wait;
    let mut got = Vec::new();
    let mut b: Burst<_> = Burst::new();
    while got.len() < want && Instant::now() < deadline {
        if port.rx_burst(&mut b) == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
        for f in b.drain(..) {
            if f.data().get(12..14) == Some(&ETHERTYPE[..]) {
                got.push(f.data().to_vec());
            }
            port.release(f);
        }
    }
    got
}

#[test]
fn frames_cross_a_veth_pair_intact_and_nothing_leaks() {
    let lab = VethNs::new("x");
    lab.enter();
    let pool = FramePool::new(256);
    let mut tx = PacketPort::open(&lab.a, pool.clone()).expect("open a");
    let mut rx = PacketPort::open(&lab.b, pool.clone()).expect("open b");
    assert_eq!(tx.ifname(), lab.a);
    assert_ne!(tx.ifindex(), rx.ifindex());

    const N: usize = 1000;
    let dst_b = [0x02, 0xef, 0x10, 0, 0, 0x0b];
    let sent: Vec<Vec<u8>> = (0..N).map(|i| frame(i, dst_b)).collect();
    let mut received = Vec::with_capacity(N);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut next = 0;
    let mut burst: Burst<_> = Burst::new();
    // Send in bursts and drain the receiver in between, so its socket buffer never overflows.
    while next < N || !burst.is_empty() {
        assert!(Instant::now() < deadline, "sending timed out at {next}");
        while next < N && !burst.is_full() {
            burst.push(pool.frame_from(&sent[next]).expect("frame"));
            next += 1;
        }
        tx.tx_burst(&mut burst);
        tx.flush();
        received.extend(receive(&mut rx, BURST, Duration::from_millis(1)));
    }
    let rest = N - received.len();
    received.extend(receive(&mut rx, rest, Duration::from_secs(5)));
    assert!(tx.take_error().is_none());
    assert_eq!(tx.stats().tx_packets, N as u64);
    assert_eq!(received.len(), N, "received {} of {N}", received.len());
    // A veth keeps order: the i-th frame received is the i-th sent, byte for byte.
    for (i, (r, s)) in received.iter().zip(&sent).enumerate() {
        assert_eq!(r, s, "frame {i} differs");
    }
    // Nothing more arrives (no duplicates), and the sender never saw its own frames.
    assert!(receive(&mut rx, 1, Duration::from_millis(100)).is_empty());
    assert!(receive(&mut tx, 1, Duration::from_millis(50)).is_empty());
    assert_eq!(rx.counters().rx_oversize, 0);
    assert_eq!(pool.outstanding(), 0);
}

#[test]
fn promiscuous_and_broadcast_frames_arrive_and_refused_frames_stay() {
    let lab = VethNs::new("p");
    lab.enter();
    let pool = FramePool::new(64);
    let opts = PacketOptions {
        promiscuous: true,
        ..PacketOptions::default()
    };
    let mut tx = PacketPort::open(&lab.a, pool.clone()).expect("open a");
    let mut rx = PacketPort::with_options(&lab.b, pool.clone(), opts).expect("open b");

    // A frame for another host and a broadcast both reach the promiscuous receiver.
    let frames = [
        frame(1, [0x02, 0xef, 0x10, 0, 0, 0x99]),
        frame(2, [0xff; 6]),
    ];
    let mut burst: Burst<_> = Burst::new();
    for f in &frames {
        burst.push(pool.frame_from(f).expect("frame"));
    }
    assert_eq!(tx.tx_burst(&mut burst), 2);
    assert!(burst.is_empty());
    let got = receive(&mut rx, 2, Duration::from_secs(5));
    assert_eq!(got, frames.to_vec());

    // A frame longer than the device MTU is refused; it stays in the burst for the caller.
    let mut burst: Burst<_> = Burst::new();
    burst.push(pool.frame_from(&frame(3, [0xff; 6])[..60]).expect("frame"));
    let mut big = vec![0xffu8; 1600];
    big[12..14].copy_from_slice(&ETHERTYPE);
    burst.push(pool.frame_from(&big).expect("frame"));
    assert_eq!(tx.tx_burst(&mut burst), 1);
    assert_eq!(burst.len(), 1);
    assert_eq!(burst[0].data().len(), 1600);
    assert!(tx.take_error().is_some());
    assert_eq!(tx.counters().tx_errors, 1);
    assert_eq!(tx.stats().tx_refused, 1);
    for f in burst.drain(..) {
        tx.release(f);
    }
    assert_eq!(receive(&mut rx, 1, Duration::from_secs(5)).len(), 1);
    assert_eq!(pool.outstanding(), 0);
}
