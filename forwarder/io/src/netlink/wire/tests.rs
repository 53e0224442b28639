use super::*;
use proptest::prelude::*;

const NLM_F_MULTI: u16 = 0x02;

fn hdr(len: u32, ty: u16, flags: u16, seq: u32, pid: u32) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&len.to_ne_bytes());
    v.extend_from_slice(&ty.to_ne_bytes());
    v.extend_from_slice(&flags.to_ne_bytes());
    v.extend_from_slice(&seq.to_ne_bytes());
    v.extend_from_slice(&pid.to_ne_bytes());
    v
}

fn attr(ty: u16, val: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&u16::try_from(4 + val.len()).unwrap().to_ne_bytes());
    v.extend_from_slice(&ty.to_ne_bytes());
    v.extend_from_slice(val);
    v.resize(align4(v.len()), 0);
    v
}

/// Wraps a body in a header with the right length.
fn msg(ty: u16, flags: u16, seq: u32, body: &[u8]) -> Vec<u8> {
    let mut v = hdr(
        u32::try_from(16 + body.len()).unwrap(),
        ty,
        flags,
        seq,
        4242,
    );
    v.extend_from_slice(body);
    v
}

fn link_body() -> Vec<u8> {
    let mut b = vec![0u8, 0];
    b.extend_from_slice(&1u16.to_ne_bytes()); // ARPHRD_ETHER
    b.extend_from_slice(&7u32.to_ne_bytes()); // index
    b.extend_from_slice(&(IFF_UP | IFF_LOWER_UP | 0x1000).to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes());
    b.extend(attr(IFLA_IFNAME, b"eth7\0"));
    b.extend(attr(IFLA_MTU, &9000u32.to_ne_bytes()));
    b.extend(attr(99, &[1, 2, 3])); // unknown attribute, odd length: skipped with its padding
    b.extend(attr(IFLA_ADDRESS, &[0x02, 0, 0, 0, 0, 0x07]));
    b.extend(attr(IFLA_NUM_RX_QUEUES, &4u32.to_ne_bytes()));
    b
}

#[test]
fn decodes_a_link_message() {
    let m = msg(RTM_NEWLINK, 0, 5, &link_body());
    let all: Vec<_> = messages(&m).collect();
    assert_eq!(all.len(), 1);
    let nl = all[0].unwrap();
    assert_eq!((nl.ty, nl.seq, nl.pid), (RTM_NEWLINK, 5, 4242));
    let link = decode_link(nl.payload).unwrap();
    assert_eq!(
        link,
        Link {
            index: 7,
            name: "eth7".into(),
            address: Some(vec![0x02, 0, 0, 0, 0, 0x07]),
            mtu: 9000,
            up: true,
            lower_up: true,
            rx_queues: 4,
        }
    );
}

#[test]
fn decodes_address_messages_of_both_families() {
    let mut v4 = vec![AF_INET, 24, 0, 0];
    v4.extend_from_slice(&3u32.to_ne_bytes());
    v4.extend(attr(IFA_ADDRESS, &[198, 18, 0, 9])); // the peer on a p2p link
    v4.extend(attr(IFA_LOCAL, &[198, 18, 0, 1]));
    let mut v6 = vec![AF_INET6, 64, 0, 0];
    v6.extend_from_slice(&3u32.to_ne_bytes());
    let a6: Ipv6Addr = "2001:2::1".parse().unwrap();
    v6.extend(attr(IFA_ADDRESS, &a6.octets()));
    // Two messages in one datagram, as a dump sends them.
    let mut d = msg(RTM_NEWADDR, NLM_F_MULTI, 1, &v4);
    d.extend(msg(RTM_NEWADDR, NLM_F_MULTI, 1, &v6));
    let got: Vec<_> = messages(&d)
        .map(|m| decode_addr(m.unwrap().payload).unwrap().unwrap())
        .collect();
    assert_eq!(
        got,
        vec![
            (3, IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)), 24),
            (3, IpAddr::V6(a6), 64)
        ]
    );
    // A v4 message whose address attribute has the v6 length is inconsistent.
    let mut bad = vec![AF_INET, 24, 0, 0];
    bad.extend_from_slice(&3u32.to_ne_bytes());
    bad.extend(attr(IFA_LOCAL, &a6.octets()));
    assert!(decode_addr(&bad).is_err());
    let mut long_prefix = vec![AF_INET, 33, 0, 0];
    long_prefix.extend_from_slice(&3u32.to_ne_bytes());
    long_prefix.extend(attr(IFA_LOCAL, &[198, 18, 0, 1]));
    assert!(decode_addr(&long_prefix).is_err());
}

fn neigh_body(family: u8, state: u16, flags: u8, dst: &[u8], ll: Option<&[u8]>) -> Vec<u8> {
    let mut b = vec![family, 0, 0, 0];
    b.extend_from_slice(&9u32.to_ne_bytes());
    b.extend_from_slice(&state.to_ne_bytes());
    b.extend_from_slice(&[flags, 1]);
    b.extend(attr(NDA_DST, dst));
    if let Some(ll) = ll {
        b.extend(attr(NDA_LLADDR, ll));
    }
    b
}

#[test]
fn decodes_neighbour_messages() {
    let mac = [0x02, 0xaa, 0, 0, 0, 0x02];
    let b = neigh_body(AF_INET, NUD_REACHABLE, 0, &[198, 18, 0, 2], Some(&mac));
    let n = decode_neigh(&b).unwrap().unwrap();
    assert_eq!(
        n,
        Neighbour {
            ifindex: 9,
            addr: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)),
            mac: Some(mac),
            state: NeighState::Reachable,
        }
    );
    assert!(n.usable());

    let a6: Ipv6Addr = "2001:2::2".parse().unwrap();
    let b = neigh_body(AF_INET6, NUD_INCOMPLETE, 0, &a6.octets(), None);
    let n = decode_neigh(&b).unwrap().unwrap();
    assert_eq!(
        (n.addr, n.mac, n.state),
        (IpAddr::V6(a6), None, NeighState::Incomplete)
    );
    assert!(!n.usable());

    // A failed entry keeping an old MAC is still not usable.
    let b = neigh_body(AF_INET, NUD_FAILED, 0, &[198, 18, 0, 3], Some(&mac));
    assert!(!decode_neigh(&b).unwrap().unwrap().usable());

    // Bridge FDB entries (AF_BRIDGE) and proxy entries are skipped, not errors.
    let b = neigh_body(
        libc::AF_BRIDGE as u8,
        NUD_PERMANENT,
        0,
        &[1, 2, 3, 4],
        Some(&mac),
    );
    assert_eq!(decode_neigh(&b), Ok(None));
    let b = neigh_body(AF_INET, NUD_NONE, NTF_PROXY, &[198, 18, 0, 4], None);
    assert_eq!(decode_neigh(&b), Ok(None));
    // A v6 entry with a 4-byte destination is malformed; one without NDA_DST too.
    assert!(decode_neigh(&neigh_body(AF_INET6, NUD_STALE, 0, &[1, 2, 3, 4], None)).is_err());
    let mut nodst = vec![AF_INET, 0, 0, 0];
    nodst.extend_from_slice(&[0; 8]);
    assert!(decode_neigh(&nodst).is_err());
}

#[test]
fn decodes_every_nud_state() {
    let cases = [
        (NUD_REACHABLE, NeighState::Reachable),
        (NUD_STALE, NeighState::Stale),
        (NUD_DELAY, NeighState::Delay),
        (NUD_PROBE, NeighState::Probe),
        (NUD_FAILED, NeighState::Failed),
        (NUD_INCOMPLETE, NeighState::Incomplete),
        (NUD_PERMANENT, NeighState::Permanent),
        (NUD_NOARP, NeighState::Noarp),
        (NUD_NONE, NeighState::None),
        (0x100, NeighState::None),
        (NUD_STALE | NUD_PERMANENT, NeighState::Permanent),
    ];
    for (nud, want) in cases {
        assert_eq!(nud_state(nud), want, "NUD {nud:#x}");
    }
}

#[test]
fn truncated_messages_are_errors() {
    let full = msg(RTM_NEWLINK, 0, 5, &link_body());
    // Cutting the datagram anywhere inside the message leaves a length that runs past it.
    for cut in 1..full.len() {
        let r: Vec<_> = messages(&full[..cut]).collect();
        assert_eq!(r.len(), 1, "cut at {cut}");
        assert!(r[0].is_err(), "cut at {cut}");
    }
    // A message whose own length cuts its body short: the fixed header or an attribute.
    let body = link_body();
    for cut in [0, 10, 15] {
        let m = msg(RTM_NEWLINK, 0, 5, &body[..cut]);
        let p = messages(&m).next().unwrap().unwrap().payload;
        assert_eq!(decode_link(p), Err(Malformed("ifinfomsg truncated")));
    }
    let m = msg(RTM_NEWLINK, 0, 5, &body[..body.len() - 2]);
    let p = messages(&m).next().unwrap().unwrap().payload;
    assert_eq!(
        decode_link(p),
        Err(Malformed("attribute length inconsistent"))
    );
    // A length below the header size.
    let mut tiny = hdr(8, RTM_NEWLINK, 0, 1, 0);
    tiny.extend_from_slice(&[0; 8]);
    assert!(messages(&tiny).next().unwrap().is_err());
    // A malformed message ends the iteration.
    let mut two = tiny.clone();
    two.extend(msg(NLMSG_DONE, 0, 1, &[0; 4]));
    assert_eq!(messages(&two).count(), 1);
    // An ndmsg and an ifaddrmsg that are too short.
    assert!(decode_neigh(&[AF_INET, 0, 0, 0, 1]).is_err());
    assert!(decode_addr(&[AF_INET, 24, 0]).is_err());
}

#[test]
fn decodes_error_and_ack_messages() {
    // EEXIST for request seq 77, with an extended-ack text after the capped echo.
    let mut body = (-libc::EEXIST).to_ne_bytes().to_vec();
    body.extend(hdr(40, RTM_NEWNEIGH, NLM_F_REQUEST, 77, 4242));
    body.extend(attr(NLMSGERR_ATTR_MSG, b"entry exists\0"));
    let m = msg(NLMSG_ERROR, NLM_F_CAPPED | NLM_F_ACK_TLVS, 77, &body);
    let nl = messages(&m).next().unwrap().unwrap();
    assert_eq!(nl.ty, NLMSG_ERROR);
    assert_eq!(
        decode_error(&nl).unwrap(),
        ErrorMsg {
            errno: libc::EEXIST,
            seq: 77,
            text: Some("entry exists".into())
        }
    );
    let e = std::io::Error::from_raw_os_error(decode_error(&nl).unwrap().errno);
    assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);

    // An uncapped error echoes the whole request before the attributes.
    let req = Request::new(RTM_GETLINK, NLM_F_REQUEST)
        .ifinfomsg(0)
        .ifname("nope0")
        .finish(78);
    let mut body = (-libc::ENODEV).to_ne_bytes().to_vec();
    body.extend(&req);
    body.extend(attr(NLMSGERR_ATTR_MSG, b"no device\0"));
    let m = msg(NLMSG_ERROR, NLM_F_ACK_TLVS, 78, &body);
    let e = decode_error(&messages(&m).next().unwrap().unwrap()).unwrap();
    assert_eq!(
        (e.errno, e.seq, e.text.as_deref()),
        (libc::ENODEV, 78, Some("no device"))
    );

    // A plain ack.
    let mut body = 0i32.to_ne_bytes().to_vec();
    body.extend(hdr(28, RTM_NEWNEIGH, NLM_F_REQUEST, 79, 4242));
    let m = msg(NLMSG_ERROR, NLM_F_CAPPED, 79, &body);
    let e = decode_error(&messages(&m).next().unwrap().unwrap()).unwrap();
    assert_eq!((e.errno, e.text), (0, None));

    // Truncated, and a positive code (the kernel only sends zero or negated errnos).
    let m = msg(NLMSG_ERROR, 0, 80, &(-1i32).to_ne_bytes());
    assert!(decode_error(&messages(&m).next().unwrap().unwrap()).is_err());
    let mut body = 5i32.to_ne_bytes().to_vec();
    body.extend(hdr(16, 0, 0, 81, 0));
    let m = msg(NLMSG_ERROR, 0, 81, &body);
    assert!(decode_error(&messages(&m).next().unwrap().unwrap()).is_err());
    // i32::MIN cannot be negated.
    let mut body = i32::MIN.to_ne_bytes().to_vec();
    body.extend(hdr(16, 0, 0, 82, 0));
    let m = msg(NLMSG_ERROR, 0, 82, &body);
    assert!(decode_error(&messages(&m).next().unwrap().unwrap()).is_err());

    assert_eq!(decode_done(&(-libc::EINTR).to_ne_bytes()), libc::EINTR);
    assert_eq!(decode_done(&0i32.to_ne_bytes()), 0);
    assert_eq!(decode_done(&[]), 0);
}

#[test]
fn requests_encode_as_the_kernel_expects() {
    let addr: IpAddr = "198.18.0.2".parse().unwrap();
    let r = Request::new(RTM_NEWNEIGH, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE)
        .ndmsg(family_of(addr), 5, NUD_NONE, NTF_USE)
        .nda_dst(addr)
        .finish(9);
    let mut want = hdr(36, RTM_NEWNEIGH, 0x405, 9, 0);
    want.extend_from_slice(&[AF_INET, 0, 0, 0]);
    want.extend_from_slice(&5u32.to_ne_bytes());
    want.extend_from_slice(&0u16.to_ne_bytes());
    want.extend_from_slice(&[NTF_USE, 0]);
    want.extend(attr(NDA_DST, &[198, 18, 0, 2]));
    assert_eq!(r, want);
    // Round trip through the decoder: the name attribute is padded and NUL-terminated.
    let r = Request::new(RTM_GETLINK, NLM_F_REQUEST)
        .ifinfomsg(0)
        .ifname("veth1")
        .finish(1);
    assert_eq!(r.len(), 16 + 16 + 12);
    let m = messages(&r).next().unwrap().unwrap();
    let (ty, v) = attrs(&m.payload[16..]).next().unwrap().unwrap();
    assert_eq!((ty, v), (IFLA_IFNAME, &b"veth1\0"[..]));
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        for m in messages(&bytes) {
            let Ok(m) = m else { continue };
            let _ = decode_link(m.payload);
            let _ = decode_addr(m.payload);
            let _ = decode_neigh(m.payload);
            let _ = decode_error(&m);
            let _ = decode_done(m.payload);
        }
        let _ = decode_link(&bytes);
        let _ = decode_addr(&bytes);
        let _ = decode_neigh(&bytes);
        for a in attrs(&bytes) {
            let _ = a;
        }
    }

    /// Valid headers with random bodies reach the body decoders more often than pure noise.
    #[test]
    fn random_bodies_never_panic(
        ty in 0u16..40,
        flags in any::<u16>(),
        family in prop_oneof![Just(AF_INET), Just(AF_INET6), any::<u8>()],
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut b = body;
        if let Some(f) = b.first_mut() {
            *f = family;
        }
        let m = msg(ty, flags, 1, &b);
        for m in messages(&m) {
            let m = m.unwrap();
            let _ = decode_link(m.payload);
            let _ = decode_addr(m.payload);
            let _ = decode_neigh(m.payload);
            let _ = decode_error(&m);
        }
    }
}
