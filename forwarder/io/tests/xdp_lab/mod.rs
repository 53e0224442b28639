//! A veth lab in a private network namespace for the AF_XDP tests (run as root).
//!
//! The namespace is entered on the test thread with setns (nextest runs each test in its own
//! process) and deleted, with everything in it, by the test kit's guard when the lab drops,
//! panics included.
#![allow(dead_code)]

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use ecmp_io::xdp::{XdpFrame, XskPort};
use ecmp_port::{BURST, Burst, Frame, Port};
use ecmp_testkit::lab::{self, Netns};

/// MAC of the `a` end of veth pair `i`.
pub fn mac_a(i: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, i, 1]
}

/// MAC of the `b` end of veth pair `i`.
pub fn mac_b(i: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, i, 2]
}

/// A network namespace holding `pairs` veth pairs `a<i>` <-> `b<i>`; `a<i>` has 198.18.<i>.1/24
/// and `b<i>` 198.18.<i>.2/24. Entered by the calling thread until dropped; the namespaces go
/// with the kit's [`Netns`] guards.
pub struct Lab {
    pub ns: String,
    home: File,
    // Dropped after `Drop::drop` took the thread home, in this order.
    netns: Netns,
    /// A second namespace holding moved peers (see [`Lab::isolate_peer`]).
    peer: Option<Netns>,
}

impl Lab {
    pub fn new(tag: &str, pairs: u8) -> Self {
        let home = File::open("/proc/thread-self/ns/net").expect("opening our netns");
        // From here on the guard removes the namespace, whatever happens.
        let netns = Netns::add(format!("xdp{tag}{}", std::process::id()));
        let lab = Self {
            ns: netns.name().to_owned(),
            home,
            netns,
            peer: None,
        };
        let target = File::open(format!("/run/netns/{}", lab.ns)).expect("opening the new netns");
        // SAFETY: setns with a valid namespace fd only changes this thread's network namespace.
        let rc = unsafe { libc::setns(target.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        for i in 0..pairs {
            let (a, b) = (format!("a{i}"), format!("b{i}"));
            let (ma, mb) = (fmt_mac(mac_a(i)), fmt_mac(mac_b(i)));
            lab.netns.add_veth(&a, &ma, &b, &mb);
            lab.ip(&["addr", "add", &format!("198.18.{i}.1/24"), "dev", &a]);
            lab.ip(&["addr", "add", &format!("198.18.{i}.2/24"), "dev", &b]);
            lab.ip(&["link", "set", &a, "up"]);
            lab.ip(&["link", "set", &b, "up"]);
        }
        lab.ip(&["link", "set", "lo", "up"]);
        lab
    }

    /// Moves `b<i>` into a namespace of its own (so traffic between the two ends really crosses
    /// the veth instead of being delivered locally); returns that namespace's name.
    pub fn isolate_peer(&mut self, i: u8) -> String {
        let peer = self
            .peer
            .get_or_insert_with(|| Netns::add(format!("{}p", self.ns)));
        let b = format!("b{i}");
        self.netns.ip(&["link", "set", &b, "netns", peer.name()]);
        peer.ip(&["addr", "add", &format!("198.18.{i}.2/24"), "dev", &b]);
        peer.ip(&["link", "set", &b, "up"]);
        peer.name().to_owned()
    }

    /// Runs `ip -n NS args...`, asserting success.
    pub fn ip(&self, args: &[&str]) {
        self.netns.ip(args);
    }

    /// Output of `ip -n NS link show dev`.
    pub fn link_show(&self, dev: &str) -> String {
        self.netns.link_show(dev)
    }

    /// Whether any XDP program is attached to `dev`.
    pub fn has_xdp(&self, dev: &str) -> bool {
        self.netns.has_xdp(dev)
    }

    /// Runs a command inside namespace `ns` (bounded in time); true if it succeeded.
    pub fn exec_ok(&self, ns: &str, args: &[&str]) -> bool {
        lab::exec(ns, lab::CMD_SECS, args).status.success()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Home first: the namespaces are deleted (by the fields' guards) from outside.
        // SAFETY: setns with a valid namespace fd only changes this thread's network namespace.
        unsafe { libc::setns(self.home.as_raw_fd(), libc::CLONE_NEWNET) };
    }
}

fn fmt_mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// An IPv4/UDP frame from `src` to `dst` with `payload_len` bytes of payload, each equal to
/// `tag` (the UDP checksum is left 0, which IPv4 allows).
pub fn udp4(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    tag: u8,
    payload_len: usize,
) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&dst_mac);
    p.extend_from_slice(&src_mac);
    p.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + 8 + payload_len) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let mut sum = 0u32;
    for c in ip.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    p.extend_from_slice(&ip);
    p.extend_from_slice(&4000u16.to_be_bytes());
    p.extend_from_slice(&5000u16.to_be_bytes());
    p.extend_from_slice(&((8 + payload_len) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend(std::iter::repeat_n(tag, payload_len));
    p
}

/// A transit UDP packet into veth pair `i`'s `a` end, sent from its `b` end (to 198.18.200.x,
/// which nobody in the lab owns).
pub fn transit(i: u8, tag: u8, payload_len: usize) -> Vec<u8> {
    udp4(
        mac_a(i),
        mac_b(i),
        [198, 18, i, 2],
        [198, 18, 200, tag],
        tag,
        payload_len,
    )
}

/// An AF_PACKET socket bound to one interface, for sending frames and capturing what arrives.
pub struct PacketSocket {
    fd: OwnedFd,
}

const ETH_P_ALL: u16 = 0x0003;
const PACKET_OUTGOING: u8 = 4;

impl PacketSocket {
    pub fn bind(ifname: &str) -> Self {
        let index = ifindex(ifname);
        // SAFETY: plain socket creation.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                i32::from(ETH_P_ALL.to_be()),
            )
        };
        assert!(
            raw >= 0,
            "AF_PACKET socket: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: fresh descriptor, owned from here on.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_ll is plain data; all-zero is valid.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ETH_P_ALL.to_be();
        sll.sll_ifindex = index as i32;
        // SAFETY: valid sockaddr_ll of the length passed.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const sll).cast(),
                size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(rc, 0, "AF_PACKET bind: {}", std::io::Error::last_os_error());
        Self { fd }
    }

    pub fn send(&self, frame: &[u8]) {
        // SAFETY: `frame` is a live buffer of the length passed.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        assert_eq!(
            n,
            frame.len() as isize,
            "AF_PACKET send: {}",
            std::io::Error::last_os_error()
        );
    }

    /// Frames received (not sent) on the interface until `count` arrived or `timeout` passed.
    pub fn recv_incoming(&self, count: usize, timeout: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        let mut buf = vec![0u8; 4096];
        while got.len() < count && Instant::now() < deadline {
            // SAFETY: sockaddr_ll is plain data; all-zero is valid.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = size_of::<libc::sockaddr_ll>() as u32;
            // SAFETY: `buf` and `from` are live and writable for the lengths passed.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                    (&raw mut from).cast(),
                    &mut len,
                )
            };
            if n < 0 {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            // The kernel's own IPv6 multicast (MLD reports, router solicitations) from the
            // peer as it comes up is not what a test sent: skip 33:33:xx destinations.
            let kernel_v6_multicast = n >= 2 && buf[..2] == [0x33, 0x33];
            if from.sll_pkttype != PACKET_OUTGOING && !kernel_v6_multicast {
                got.push(buf[..n as usize].to_vec());
            }
        }
        got
    }
}

pub fn ifindex(ifname: &str) -> u32 {
    let c = std::ffi::CString::new(ifname).expect("interface name");
    // SAFETY: valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    assert_ne!(i, 0, "no interface {ifname}");
    i
}

/// Receives on `port` until `count` frames arrived or `timeout` passed.
pub fn rx_until(port: &mut XskPort, count: usize, timeout: Duration) -> Vec<XdpFrame> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    while got.len() < count && Instant::now() < deadline {
        let mut b: Burst<XdpFrame> = Burst::new();
        if port.rx_burst(&mut b) == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
        got.extend(b.drain(..));
    }
    got
}

/// Flushes `port` until its tx frames are all reaped or `timeout` passed.
pub fn drain_tx(port: &mut XskPort, fill_held: u32, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while port.kernel_held() > fill_held && Instant::now() < deadline {
        port.flush();
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Moves `frames` into bursts and sends them all on `port` (retrying refused ones until
/// `timeout`); returns how many were sent.
pub fn tx_all(port: &mut XskPort, frames: Vec<XdpFrame>, timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    let mut sent = 0;
    let mut it = frames.into_iter().peekable();
    let mut b: Burst<XdpFrame> = Burst::new();
    while (it.peek().is_some() || !b.is_empty()) && Instant::now() < deadline {
        while b.len() < BURST {
            match it.next() {
                Some(f) => b.push(f),
                None => break,
            }
        }
        sent += port.tx_burst(&mut b);
        port.flush();
    }
    for f in b.drain(..) {
        port.release(f);
    }
    for f in it {
        port.release(f);
    }
    sent
}

/// Copies of the frames' bytes.
pub fn bytes_of(frames: &[XdpFrame]) -> Vec<Vec<u8>> {
    frames.iter().map(|f| f.data().to_vec()).collect()
}
