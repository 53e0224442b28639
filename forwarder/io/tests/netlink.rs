//! `ecmp_io::netlink` against the real kernel (needs root): every test builds two namespaces A and
//! B joined by a veth pair, moves its own thread into A, and checks what rtnetlink reports there.
//! The namespaces (and with them the veths) are deleted by a drop guard, even when a test fails.
//! Names carry the pid and a per-test tag, so tests running in parallel (nextest processes, or
//! threads of one `cargo test` process: `setns` moves only the calling thread) never collide.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use ecmp_io::netlink::{
    NeighEvent, NeighState, Neighbour, NeighbourWatch, NetlinkError, interface, neighbours, resolve,
};

const MAC_A: [u8; 6] = [0x02, 0x4e, 0x4c, 0x00, 0x00, 0x0a];
const MAC_B: [u8; 6] = [0x02, 0x4e, 0x4c, 0x00, 0x00, 0x0b];
const V4_A: Ipv4Addr = Ipv4Addr::new(198, 18, 77, 1);
const V4_B: Ipv4Addr = Ipv4Addr::new(198, 18, 77, 2);
const V6_A: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0x77, 0, 0, 0, 1);
const V6_B: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0x77, 0, 0, 0, 2);
const MTU_A: u32 = 1400;
/// Longest wait for something the kernel does asynchronously (a neighbour answering).
const WAIT: Duration = Duration::from_secs(2);

fn mac_str(m: [u8; 6]) -> String {
    m.map(|b| format!("{b:02x}")).join(":")
}

/// Runs `ip` with the whitespace-separated arguments of `cmd` (none of ours contain spaces).
fn ip(cmd: &str) -> String {
    let out = Command::new("ip")
        .args(cmd.split_whitespace())
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "ip {cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Namespaces A and B with veth `va` (in A) and `vb` (in B), both up and addressed.
struct Lab {
    ns_a: String,
    ns_b: String,
    va: String,
}

impl Lab {
    /// `tag` tells the tests of one process apart: one lowercase letter per test.
    fn new(tag: char) -> Self {
        let pid = std::process::id();
        let lab = Lab {
            ns_a: format!("ecmp-nl-{tag}{pid}-a"),
            ns_b: format!("ecmp-nl-{tag}{pid}-b"),
            va: format!("nl{tag}{pid}a"),
        };
        let vb = format!("nl{tag}{pid}b");
        assert!(lab.va.len() <= 15 && vb.len() <= 15);
        // The guard exists before the first namespace does, so a failing step still cleans up.
        ip(&format!("netns add {}", lab.ns_a));
        ip(&format!("netns add {}", lab.ns_b));
        let (a, b, va) = (lab.ns_a.as_str(), lab.ns_b.as_str(), lab.va.as_str());
        ip(&format!(
            "-n {a} link add {va} numrxqueues 2 type veth peer name {vb} netns {b} numrxqueues 2"
        ));
        ip(&format!(
            "-n {a} link set {va} address {} mtu {MTU_A}",
            mac_str(MAC_A)
        ));
        ip(&format!("-n {b} link set {vb} address {}", mac_str(MAC_B)));
        // nodad: the addresses are usable at once instead of after duplicate detection. That
        // matters for the link-local address too: the kernel sends neighbour solicitations that
        // no packet prompted (resolve()) from it, and sends none while it is tentative. The links
        // go up before the addresses are added: IPv6 addresses added to a link that is still down
        // stay silent for about a second after it comes up (measured here).
        for (ns, dev, v4, v6, ll) in [
            (a, va, V4_A, V6_A, "fe80::a/64"),
            (b, vb.as_str(), V4_B, V6_B, "fe80::b/64"),
        ] {
            ip(&format!("-n {ns} link set {dev} addrgenmode none"));
            ip(&format!("-n {ns} link set lo up"));
            ip(&format!("-n {ns} link set {dev} up"));
            ip(&format!("-n {ns} addr add {ll} dev {dev} nodad"));
            ip(&format!("-n {ns} addr add {v4}/24 dev {dev}"));
            ip(&format!("-n {ns} addr add {v6}/64 dev {dev} nodad"));
        }
        lab
    }

    /// Moves the calling thread into namespace A.
    fn enter_a(&self) {
        let f = File::open(format!("/run/netns/{}", self.ns_a)).expect("open netns A");
        // SAFETY: `f` is an open namespace file for the duration of the call; setns only
        // changes this thread's network namespace.
        let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
    }

    /// A's veth index, as `ip` reports it.
    fn va_index(&self) -> u32 {
        let out = ip(&format!("-n {} -o link show {}", self.ns_a, self.va));
        out.split(':')
            .next()
            .and_then(|i| i.trim().parse().ok())
            .expect("ifindex in `ip link show` output")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.ns_a, &self.ns_b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// Polls `f` every 20 ms until it yields something or [`WAIT`] passes.
fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(t) = f() {
            return Some(t);
        }
        if Instant::now() >= deadline {
            return None;
        }
        sleep(Duration::from_millis(20));
    }
}

fn entry(ifindex: u32, addr: IpAddr) -> Option<Neighbour> {
    neighbours()
        .expect("neighbour dump")
        .into_iter()
        .find(|n| n.ifindex == ifindex && n.addr == addr)
}

/// Polls the watch until an event matching `pred` arrives; returns every event seen.
fn watch_until(w: &mut NeighbourWatch, pred: impl Fn(&NeighEvent) -> bool) -> Vec<NeighEvent> {
    let mut seen = Vec::new();
    let found = wait_for(|| {
        let before = seen.len();
        w.poll_events(&mut seen).expect("poll the watch");
        seen[before..].iter().any(&pred).then_some(())
    });
    assert!(
        found.is_some(),
        "no matching event within {WAIT:?}; saw {seen:?}"
    );
    seen
}

#[test]
fn interface_reports_index_mac_mtu_addresses_and_queues() {
    let lab = Lab::new('i');
    lab.enter_a();
    let i = interface(&lab.va).unwrap();
    assert_eq!(i.index, lab.va_index());
    assert_eq!(i.name, lab.va);
    assert_eq!(i.mac, MAC_A);
    assert_eq!(i.mtu, MTU_A);
    assert!(i.up && i.carrier, "{i:?}");
    assert_eq!(i.rx_queues, 2);
    assert!(i.addrs.contains(&(IpAddr::V4(V4_A), 24)), "{:?}", i.addrs);
    assert!(i.addrs.contains(&(IpAddr::V6(V6_A), 64)), "{:?}", i.addrs);
    // Only this interface's addresses: lo's 127.0.0.1 is in the namespace too.
    assert!(
        i.addrs.iter().all(|(a, _)| !a.is_loopback()),
        "{:?}",
        i.addrs
    );
    let lo = interface("lo").unwrap();
    assert!(
        lo.addrs.contains(&(IpAddr::V4(Ipv4Addr::LOCALHOST), 8)),
        "{lo:?}"
    );
    assert_eq!(lo.index, 1);
}

#[test]
fn missing_and_invalid_interfaces_are_their_own_errors() {
    let lab = Lab::new('m');
    lab.enter_a();
    let missing = format!("nlgone{}", std::process::id());
    match interface(&missing) {
        Err(NetlinkError::NoSuchInterface { name }) => assert_eq!(name, missing),
        other => panic!("expected NoSuchInterface, got {other:?}"),
    }
    let e = interface(&missing).unwrap_err();
    assert!(e.to_string().contains(&missing), "{e}");
    for bad in ["", "sixteen-chars-xx", "a/b", "a b", ".."] {
        assert!(
            matches!(
                interface(bad),
                Err(NetlinkError::InvalidInterfaceName { .. })
            ),
            "{bad:?}"
        );
    }
    // The veth exists here, and B's does not (it is in the other namespace).
    assert!(interface(&lab.va).is_ok());
    let vb = lab.va.replace('a', "b");
    assert!(matches!(
        interface(&vb),
        Err(NetlinkError::NoSuchInterface { .. })
    ));
}

/// `resolve` on B's address: the entry becomes usable with B's MAC, and the watch sees it.
fn resolves(tag: char, peer: IpAddr) {
    let lab = Lab::new(tag);
    lab.enter_a();
    let ifindex = interface(&lab.va).expect("A's veth").index;
    // Open the watch first, as the daemon would, so the change cannot slip past it.
    let mut watch = NeighbourWatch::new().expect("open the watch");
    assert!(
        !entry(ifindex, peer).is_some_and(|n| n.usable()),
        "{peer} already resolved before resolve()"
    );
    let t = Instant::now();
    resolve(ifindex, peer).expect("resolve");
    // Non-blocking: it returns long before any ARP/ND round trip could time out.
    assert!(t.elapsed() < Duration::from_millis(500));
    let n = wait_for(|| entry(ifindex, peer).filter(Neighbour::usable))
        .unwrap_or_else(|| panic!("{peer} not resolved within {WAIT:?}: {:?}", neighbours()));
    assert_eq!(n.mac, Some(MAC_B));
    assert!(
        matches!(
            n.state,
            NeighState::Reachable | NeighState::Stale | NeighState::Delay
        ),
        "{n:?}"
    );
    let events = watch_until(
        &mut watch,
        |e| matches!(e, NeighEvent::New(n) if n.addr == peer && n.ifindex == ifindex && n.mac == Some(MAC_B)),
    );
    assert!(!events.contains(&NeighEvent::Overrun), "{events:?}");
    // A second resolve of a known entry is accepted and leaves it usable.
    resolve(ifindex, peer).expect("resolve a known entry");
    assert!(entry(ifindex, peer).is_some_and(|n| n.usable()));
}

#[test]
fn resolve_ipv4_learns_the_peer_mac() {
    resolves('r', IpAddr::V4(V4_B));
}

#[test]
fn resolve_ipv6_learns_the_peer_mac() {
    resolves('s', IpAddr::V6(V6_B));
}

#[test]
fn resolve_of_a_silent_address_creates_an_unusable_entry() {
    let lab = Lab::new('u');
    lab.enter_a();
    let ifindex = interface(&lab.va).unwrap().index;
    let silent = IpAddr::V4(Ipv4Addr::new(198, 18, 77, 99));
    resolve(ifindex, silent).unwrap();
    let n = entry(ifindex, silent).expect("resolve created no entry");
    assert_eq!(n.state, NeighState::Incomplete, "{n:?}");
    assert!(!n.usable());
    // An interface index that does not exist is refused by the kernel, naming the request.
    let e = resolve(999_999, silent).unwrap_err();
    assert!(matches!(e, NetlinkError::Kernel { .. }), "{e:?}");
    assert!(e.to_string().contains("198.18.77.99"), "{e}");
}

#[test]
fn static_entries_are_permanent_and_deletion_is_seen() {
    let lab = Lab::new('p');
    lab.enter_a();
    let ifindex = interface(&lab.va).unwrap().index;
    let mut watch = NeighbourWatch::new().unwrap();
    let mut none = Vec::new();
    assert_eq!(watch.poll_events(&mut none).unwrap(), 0, "{none:?}");
    let mac = [0x02, 0x4e, 0x4c, 0x00, 0x00, 0x50];
    for addr in [
        IpAddr::V4(Ipv4Addr::new(198, 18, 77, 50)),
        IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0x77, 0, 0, 0, 0x50)),
    ] {
        ip(&format!(
            "-n {} neigh add {addr} lladdr {} dev {} nud permanent",
            lab.ns_a,
            mac_str(mac),
            lab.va
        ));
        let n = entry(ifindex, addr).expect("static entry missing from the dump");
        assert_eq!(
            n,
            Neighbour {
                ifindex,
                addr,
                mac: Some(mac),
                state: NeighState::Permanent
            }
        );
        assert!(n.usable());
        watch_until(&mut watch, |e| *e == NeighEvent::New(n));

        ip(&format!("-n {} neigh del {addr} dev {}", lab.ns_a, lab.va));
        assert!(entry(ifindex, addr).is_none());
        watch_until(
            &mut watch,
            |e| matches!(e, NeighEvent::Del(d) if d.addr == addr && d.ifindex == ifindex),
        );
    }
}

#[test]
fn overrun_is_reported_and_a_redump_recovers() {
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::process::Stdio;

    let lab = Lab::new('o');
    lab.enter_a();
    let ifindex = interface(&lab.va).unwrap().index;
    let mut watch = NeighbourWatch::new().unwrap();
    // Shrink the watch's buffer to the kernel's minimum so a burst of changes overruns it.
    let one: libc::c_int = 1;
    // SAFETY: the descriptor is the watch's open socket; `one` lives across the call and the
    // length passed is its size.
    let r = unsafe {
        libc::setsockopt(
            watch.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&raw const one).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "{}", std::io::Error::last_os_error());

    const N: u8 = 200;
    let batch: String = (0..N)
        .map(|i| {
            format!(
                "neigh add 198.18.77.{} lladdr 02:4e:4c:00:01:{i:02x} dev {} nud permanent\n",
                i + 20,
                lab.va
            )
        })
        .collect();
    let mut child = Command::new("ip")
        .args(["-n", &lab.ns_a, "-batch", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(batch.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());

    let mut events = Vec::new();
    watch.poll_events(&mut events).unwrap();
    assert!(
        events.contains(&NeighEvent::Overrun),
        "{} events, none Overrun",
        events.len()
    );
    assert!(
        events.len() < usize::from(N),
        "the buffer held all {} events",
        events.len()
    );
    // What the caller does on Overrun: dump again, which has every entry.
    let all = neighbours().unwrap();
    let ours = all
        .iter()
        .filter(|n| n.ifindex == ifindex && n.state == NeighState::Permanent)
        .count();
    assert_eq!(ours, usize::from(N));
    // The socket keeps working after the overrun.
    let first = IpAddr::V4(Ipv4Addr::new(198, 18, 77, 20));
    ip(&format!("-n {} neigh del {first} dev {}", lab.ns_a, lab.va));
    watch_until(
        &mut watch,
        |e| matches!(e, NeighEvent::Del(d) if d.addr == first),
    );
}
