//! The XDP program: what it leaves to the kernel (behind VLAN tags too, agreeing with the
//! parser), stale and foreign programs, link detach on drop, and setup errors. Run as root.

mod xdp_lab;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use ecmp_io::xdp::{
    AttachMode, BindMode, Umem, UmemConfig, XdpError, XdpProgram, XskConfig, XskPort,
};
use ecmp_port::{Frame, Port};
use ecmp_testkit::frames::{FrameSpec, TPID_QINQ, TPID_VLAN};
use ecmp_wire::parse::{ParseError, parse_frame};
use libbpf_rs::libbpf_sys;
use xdp_lab::{Lab, PacketSocket, mac_a, mac_b, rx_until, transit};

const WAIT: Duration = Duration::from_secs(3);

fn umem() -> Umem {
    Umem::new(UmemConfig {
        frame_count: 1024,
        hugepages: ecmp_mem::HugePages::Off,
    })
    .expect("UMEM")
}

fn config() -> XskConfig {
    XskConfig {
        rx_size: 256,
        tx_size: 256,
        fill_size: 256,
        comp_size: 256,
        ..XskConfig::default()
    }
}

/// ARP and ICMP to the host's own address reach the kernel (ping works while the socket is
/// bound); transit traffic still goes to the socket.
#[test]
fn host_traffic_passes_to_the_kernel() {
    let mut lab = Lab::new("ps", 1);
    // The sender must be in another namespace, or its packets to 198.18.0.1 never cross the veth.
    let peer = lab.isolate_peer(0);
    let prog = XdpProgram::attach("a0", AttachMode::Driver).unwrap();
    prog.set_pass_addrs(&[IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1))])
        .unwrap();
    let umem = umem();
    let mut port = XskPort::open(&umem, "a0", 0, BindMode::Copy, &config()).unwrap();
    prog.register_socket(0, port.as_fd()).unwrap();

    assert!(lab.exec_ok(
        &peer,
        &["ping", "-c", "2", "-i", "0.2", "-W", "2", "198.18.0.1"]
    ));
    let c = prog.counters().unwrap();
    assert!(c.pass_not_ip >= 1, "ARP not passed: {c:?}");
    assert!(c.pass_host >= 2, "echo requests not passed: {c:?}");
    assert_eq!(c.redirected, 0);
    assert!(rx_until(&mut port, 1, Duration::from_millis(100)).is_empty());

    // Transit traffic (routed through a0 towards an address nobody here owns) is redirected;
    // nothing answers it, so this ping fails.
    assert!(lab.exec_ok(
        &peer,
        &["ip", "route", "add", "198.18.200.0/24", "via", "198.18.0.1"]
    ));
    assert!(!lab.exec_ok(&peer, &["ping", "-c", "1", "-W", "1", "198.18.200.9"]));
    let got = rx_until(&mut port, 1, WAIT);
    assert_eq!(got.len(), 1);
    assert_eq!(prog.counters().unwrap().redirected, 1);
    for f in got {
        port.release(f);
    }

    // With the address no longer the host's, an echo request is redirected like transit.
    prog.set_pass_addrs(&[]).unwrap();
    assert!(!lab.exec_ok(&peer, &["ping", "-c", "1", "-W", "1", "198.18.0.1"]));
    assert!(prog.counters().unwrap().redirected >= 2);
}

/// Without a socket on the queue, transit packets fall back to the kernel.
#[test]
fn no_socket_falls_back_to_the_kernel() {
    let _lab = Lab::new("ns", 1);
    let prog = XdpProgram::attach("a0", AttachMode::Generic).unwrap();
    let sender = PacketSocket::bind("b0");
    for i in 0..5 {
        sender.send(&transit(0, i, 20));
    }
    let deadline = std::time::Instant::now() + WAIT;
    while prog.counters().unwrap().pass_no_socket < 5 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let c = prog.counters().unwrap();
    assert_eq!(c.pass_no_socket, 5);
    assert_eq!(c.redirected, 0);
}

/// A TPID neither the parser nor the program follows (the pre-standard QinQ one).
const TPID_9100: u16 = 0x9100;

/// Every stack of up to three tags drawn from 0x8100, 0x88a8 and 0x9100, outermost first.
fn tag_stacks() -> Vec<Vec<u16>> {
    let mut stacks = vec![Vec::new()];
    let mut last = vec![Vec::new()];
    for _ in 0..3 {
        last = last
            .iter()
            .flat_map(|s: &Vec<u16>| {
                [TPID_VLAN, TPID_QINQ, TPID_9100].map(|t| [s.clone(), vec![t]].concat())
            })
            .collect();
        stacks.extend(last.iter().cloned());
    }
    stacks
}

/// A UDP frame from b0 to a0 behind the VLAN tags `tpids` (VLAN ids 100, 101, ...).
fn tagged(tpids: &[u16], src: IpAddr, dst: IpAddr) -> Vec<u8> {
    let tags: Vec<(u16, u16)> = tpids.iter().zip(100..).map(|(&t, v)| (t, v)).collect();
    FrameSpec::udp(src, dst, 4000, 5000, 0)
        .payload_len(16)
        .macs(mac_b(0), mac_a(0))
        .vlans(&tags)
        .build()
        .expect("frame")
}

/// The program follows VLAN tags exactly as ecmpfwd's parser does: it redirects a frame behind
/// up to two tags of 0x8100 or 0x88a8 (802.1ad + 802.1Q, 802.1Q-in-802.1Q, either order), IPv4
/// or IPv6, iff the parser takes it for IP; the rest (0x9100, a third tag) is the kernel's, as are
/// the host's own addresses behind two tags. A QinQ frame the parser then drops (bad IPv4
/// checksum) is redirected too, so ecmpfwd counts it by its drop reason.
#[test]
fn vlan_tags_are_followed_as_far_as_the_parser_follows_them() {
    vlan_tags_as_the_parser("vd", AttachMode::Driver);
}

#[test]
fn vlan_tags_are_followed_as_far_as_the_parser_follows_them_in_generic_mode() {
    vlan_tags_as_the_parser("vg", AttachMode::Generic);
}

fn vlan_tags_as_the_parser(tag: &str, mode: AttachMode) {
    let _lab = Lab::new(tag, 1);
    let prog = XdpProgram::attach("a0", mode).expect("attach");
    let host = Ipv4Addr::new(198, 18, 0, 1);
    prog.set_pass_addrs(&[IpAddr::V4(host)])
        .expect("pass addresses");
    let umem = umem();
    let mut port = XskPort::open(&umem, "a0", 0, BindMode::Copy, &config()).expect("socket");
    prog.register_socket(0, port.as_fd()).expect("register");
    let sender = PacketSocket::bind("b0");
    let src4 = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2));
    let src6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2));

    let mut redirected = Vec::new();
    let mut not_ip = 0;
    let mut accepted_v4 = Vec::new();
    for (k, stack) in tag_stacks().iter().enumerate() {
        let k = k as u8;
        let dst4 = IpAddr::V4(Ipv4Addr::new(198, 18, 200, k));
        let dst6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x200, 0, 0, 0, 0, k.into()));
        for f in [tagged(stack, src4, dst4), tagged(stack, src6, dst6)] {
            match parse_frame(&f) {
                Ok(_) => redirected.push(f.clone()),
                Err(ParseError::UnknownEthertype | ParseError::VlanTooDeep) => not_ip += 1,
                Err(e) => panic!("{stack:x?}: the test built a malformed frame ({e})"),
            }
            sender.send(&f);
        }
        if parse_frame(&tagged(stack, src4, dst4)).is_ok() {
            accepted_v4.push(stack.clone());
        }
    }
    // What the parser takes, spelled out: both TPIDs, in either position, at most two deep.
    let mut want = vec![vec![], vec![TPID_VLAN], vec![TPID_QINQ]];
    for outer in [TPID_VLAN, TPID_QINQ] {
        for inner in [TPID_VLAN, TPID_QINQ] {
            want.push(vec![outer, inner]);
        }
    }
    accepted_v4.sort();
    want.sort();
    assert_eq!(accepted_v4, want);

    // Behind two tags the host's own address is still the kernel's, and a cut-off inner tag is
    // malformed.
    let to_host = tagged(&[TPID_QINQ, TPID_VLAN], src4, IpAddr::V4(host));
    sender.send(&to_host);
    let mut cut = to_host.clone();
    cut.truncate(14 + 4 + 2);
    sender.send(&cut);
    // A corrupt IPv4 header checksum behind two tags: IP to the program, a drop to the parser.
    let mut bad_sum = tagged(
        &[TPID_QINQ, TPID_VLAN],
        src4,
        IpAddr::V4(Ipv4Addr::new(198, 18, 201, 1)),
    );
    bad_sum[22 + 10] ^= 0xff;
    assert_eq!(parse_frame(&bad_sum), Err(ParseError::BadIpv4Checksum));
    sender.send(&bad_sum);
    redirected.push(bad_sum);

    let mut got = rx_until(&mut port, redirected.len(), WAIT);
    // Anything redirected beyond the expected frames would arrive right behind them.
    got.extend(rx_until(&mut port, 1, Duration::from_millis(200)));
    let mut got_bytes: Vec<Vec<u8>> = got.iter().map(|f| f.data().to_vec()).collect();
    for f in got {
        port.release(f);
    }
    got_bytes.sort();
    redirected.sort();
    assert_eq!(got_bytes.len(), redirected.len());
    assert!(got_bytes == redirected, "redirected frames differ");

    let want = (redirected.len() as u64, not_ip, 1, 1);
    let deadline = Instant::now() + WAIT;
    let c = loop {
        let c = prog.counters().expect("counters");
        let seen = (c.redirected, c.pass_not_ip, c.pass_host, c.pass_malformed);
        if seen == want || Instant::now() > deadline {
            break c;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(
        (c.redirected, c.pass_not_ip, c.pass_host, c.pass_malformed),
        want,
        "{c:?}"
    );
}

#[test]
fn stale_program_is_replaced_and_drop_detaches() {
    let lab = Lab::new("st", 1);
    let stale = XdpProgram::attach_unlinked("a0", AttachMode::Driver).unwrap();
    assert!(lab.has_xdp("a0"));
    let prog = XdpProgram::attach("a0", AttachMode::Driver).unwrap();
    assert!(prog.replaced_stale());
    assert_ne!(prog.prog_id(), stale);
    assert!(
        lab.link_show("a0")
            .contains(&format!("id {}", prog.prog_id()))
    );
    drop(prog);
    assert!(!lab.has_xdp("a0"), "{}", lab.link_show("a0"));

    // A stale program in the other mode is in the way too (EEXIST) and is replaced as well.
    XdpProgram::attach_unlinked("a0", AttachMode::Generic).unwrap();
    let prog = XdpProgram::attach("a0", AttachMode::Driver).unwrap();
    assert!(prog.replaced_stale());
}

#[test]
fn linked_ecmpfwd_program_is_not_stolen() {
    let _lab = Lab::new("lu", 1);
    let first = XdpProgram::attach("a0", AttachMode::Driver).unwrap();
    let err = XdpProgram::attach("a0", AttachMode::Driver).unwrap_err();
    match &err {
        XdpError::ForeignProgram {
            ifname, prog_id, ..
        } => {
            assert_eq!(ifname, "a0");
            assert_eq!(*prog_id, first.prog_id());
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(err.to_string().contains("bpf_link"), "{err}");
}

#[test]
fn foreign_program_is_an_error_naming_it() {
    let lab = Lab::new("fp", 1);
    // A two-instruction program returning XDP_PASS, named like someone else's.
    let insns = [
        libbpf_sys::bpf_insn {
            code: 0xb7, // BPF_ALU64 | BPF_MOV | BPF_K: r0 = 2
            _bitfield_align_1: [],
            _bitfield_1: libbpf_sys::bpf_insn::new_bitfield_1(0, 0),
            off: 0,
            imm: 2,
        },
        libbpf_sys::bpf_insn {
            code: 0x95, // BPF_JMP | BPF_EXIT
            _bitfield_align_1: [],
            _bitfield_1: libbpf_sys::bpf_insn::new_bitfield_1(0, 0),
            off: 0,
            imm: 0,
        },
    ];
    let name = c"other_xdp";
    let license = c"GPL";
    // SAFETY: valid instruction array of the count passed, NUL-terminated strings, null opts.
    let fd = unsafe {
        libbpf_sys::bpf_prog_load(
            libbpf_sys::BPF_PROG_TYPE_XDP,
            name.as_ptr(),
            license.as_ptr(),
            insns.as_ptr(),
            insns.len() as _,
            std::ptr::null_mut(),
        )
    };
    assert!(fd >= 0, "loading the foreign program: {fd}");
    // SAFETY: fresh descriptor, owned from here on.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let index = xdp_lab::ifindex("a0");
    // SAFETY: valid program fd, null opts.
    let rc = unsafe {
        libbpf_sys::bpf_xdp_attach(
            index as i32,
            fd.as_raw_fd(),
            libbpf_sys::XDP_FLAGS_SKB_MODE,
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0);
    let id = libbpf_rs::Program::id_from_fd(fd.as_fd()).unwrap();

    let err = XdpProgram::attach("a0", AttachMode::Generic).unwrap_err();
    assert!(
        matches!(&err, XdpError::ForeignProgram { prog_id, prog_name, .. } if *prog_id == id && prog_name == "other_xdp"),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("a0") && msg.contains(&id.to_string()), "{msg}");
    // The foreign program is left alone.
    assert!(lab.link_show("a0").contains(&format!("id {id}")));
}

#[test]
fn setup_errors_name_the_interface() {
    let _lab = Lab::new("er", 1);
    let umem = umem();

    let err = XskPort::open(&umem, "nosuch0", 0, BindMode::Copy, &config()).unwrap_err();
    assert!(matches!(&err, XdpError::NoSuchInterface { ifname } if ifname == "nosuch0"));
    assert!(err.to_string().contains("nosuch0"));
    let err = XdpProgram::attach("nosuch0", AttachMode::Generic).unwrap_err();
    assert!(matches!(err, XdpError::NoSuchInterface { .. }));

    let err = XskPort::open(&umem, "a0", 5, BindMode::Copy, &config()).unwrap_err();
    assert!(
        matches!(&err, XdpError::NoSuchQueue { ifname, queue: 5, queues: 1 } if ifname == "a0"),
        "{err:?}"
    );
    assert!(err.to_string().contains("a0") && err.to_string().contains("queue 5"));

    // veth has no zero-copy support: ZeroCopy fails clearly, Auto falls back to copy.
    let err = XskPort::open(&umem, "a0", 0, BindMode::ZeroCopy, &config()).unwrap_err();
    assert!(
        matches!(&err, XdpError::Unsupported { ifname, queue: 0, mode: "zero-copy" } if ifname == "a0"),
        "{err:?}"
    );
    assert_eq!(umem.outstanding(), 0);
    let port = XskPort::open(&umem, "a0", 0, BindMode::Auto, &config()).unwrap();
    assert!(!port.zero_copy());

    // A second socket on the same queue is busy (after the retries).
    let other = umem_with(64);
    let quick = XskConfig {
        busy_retries: 1,
        fill_size: 64,
        ..config()
    };
    let err = XskPort::open(&other, "a0", 0, BindMode::Copy, &quick).unwrap_err();
    assert!(matches!(&err, XdpError::Busy { queue: 0, .. }), "{err:?}");

    // Sockets of one UMEM share its mode.
    let err = XskPort::open(&umem, "b0", 0, BindMode::ZeroCopy, &config()).unwrap_err();
    assert!(matches!(err, XdpError::ModeMismatch { .. }), "{err:?}");
    drop(port);
    // Reopening right after a close works (transient EBUSY is retried).
    let port = XskPort::open(&umem, "a0", 0, BindMode::Copy, &config()).unwrap();
    assert_eq!(port.queue(), 0);
}

fn umem_with(frames: u32) -> Umem {
    Umem::new(UmemConfig {
        frame_count: frames,
        hugepages: ecmp_mem::HugePages::Off,
    })
    .expect("UMEM")
}
