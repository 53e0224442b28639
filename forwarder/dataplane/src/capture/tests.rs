use super::*;

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> BpfInsn {
    BpfInsn { code, jt, jf, k }
}

/// `tcpdump -d ip`: ldh [12]; jeq #0x800 jt 2 jf 3; ret #262144; ret #0.
fn ip_only() -> Filter {
    Filter::new(vec![
        insn(0x28, 0, 0, 12),
        insn(0x15, 0, 1, 0x0800),
        insn(0x06, 0, 0, 262_144),
        insn(0x06, 0, 0, 0),
    ])
    .unwrap()
}

fn frame(ethertype: u16, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[12..14].copy_from_slice(&ethertype.to_be_bytes());
    f
}

#[test]
fn the_ip_filter_passes_ipv4_and_rejects_arp_and_short_frames() {
    let f = ip_only();
    assert_eq!(f.run(&frame(0x0800, 60), 60), 262_144);
    assert!(f.matches(&frame(0x0800, 60)));
    assert!(!f.matches(&frame(0x0806, 60)));
    // The load of [12..14] is past the end: rejected, not a panic.
    assert!(!f.matches(&[0u8; 13]));
    assert!(!f.matches(&[]));
}

#[test]
fn indexed_loads_msh_scratch_memory_and_alu_follow_bpf_semantics() {
    // x = 4 * (pkt[14] & 0xf); a = halfword at [x + 16]; mem[3] = a; a = mem[3] * 2 + x;
    // x = a; return len + x.
    let f = Filter::new(vec![
        insn(0xb1, 0, 0, 14),
        insn(0x48, 0, 0, 16),
        insn(0x02, 0, 0, 3),
        insn(0x00, 0, 0, 0),
        insn(0x60, 0, 0, 3),
        insn(0x24, 0, 0, 2),
        insn(0x0c, 0, 0, 0),
        insn(0x07, 0, 0, 0),
        insn(0x80, 0, 0, 0),
        insn(0x0c, 0, 0, 0),
        insn(0x16, 0, 0, 0),
    ])
    .unwrap();
    let mut p = vec![0u8; 64];
    p[14] = 0x45;
    p[14 + 20 + 2..14 + 20 + 4].copy_from_slice(&1000u16.to_be_bytes());
    // a = 2000; a += x (20) -> 2020; x = a; a = len (64); a += x -> 2084.
    assert_eq!(f.run(&p, 64), 2084);
    // The header length points past the frame: the indexed load fails and rejects.
    p[14] = 0x4f;
    assert_eq!(f.run(&p[..40], 40), 0);
}

#[test]
fn division_by_a_zero_register_rejects_and_wide_shifts_give_zero() {
    let div = Filter::new(vec![
        insn(0x00, 0, 0, 7),
        insn(0x01, 0, 0, 0),
        insn(0x3c, 0, 0, 0),
        insn(0x16, 0, 0, 0),
    ])
    .unwrap();
    assert_eq!(div.run(&[], 0), 0);
    let shift = Filter::new(vec![
        insn(0x00, 0, 0, 7),
        insn(0x01, 0, 0, 40),
        insn(0x6c, 0, 0, 0),
        insn(0x44, 0, 0, 1),
        insn(0x16, 0, 0, 0),
    ])
    .unwrap();
    assert_eq!(shift.run(&[], 0), 1);
}

#[test]
fn programs_that_could_misbehave_are_refused() {
    assert_eq!(Filter::new(vec![]), Err(FilterError::Length(0)));
    assert_eq!(
        Filter::new(vec![insn(0x15, 1, 0, 0), insn(0x06, 0, 0, 0)]),
        Err(FilterError::JumpOut(0))
    );
    assert_eq!(
        Filter::new(vec![insn(0x05, 0, 0, 1), insn(0x06, 0, 0, 0)]),
        Err(FilterError::JumpOut(0))
    );
    assert_eq!(
        Filter::new(vec![insn(0x02, 0, 0, 16), insn(0x06, 0, 0, 0)]),
        Err(FilterError::Memory(0, 16))
    );
    assert_eq!(
        Filter::new(vec![insn(0x28, 0, 0, 12)]),
        Err(FilterError::NoReturn)
    );
    assert_eq!(
        Filter::new(vec![insn(0xff, 0, 0, 0), insn(0x06, 0, 0, 0)]),
        Err(FilterError::Opcode(0, 0xff))
    );
}

#[test]
fn a_full_ring_counts_what_it_cannot_take_and_hands_the_rest_over_in_order() {
    let ring = CaptureRing::new(4, 8);
    for i in 0..6u8 {
        ring.push(1, Direction::Rx, None, u64::from(i), &[i; 12]);
    }
    assert_eq!(ring.dropped(), 2);
    let mut seen = Vec::new();
    assert_eq!(
        ring.drain(|c| {
            assert_eq!((c.len, c.data.len()), (12, 8), "cut at the slot size");
            seen.push(c.data[0]);
        }),
        4
    );
    assert_eq!(seen, [0, 1, 2, 3]);
    // Drained slots are free again; the order carries on across the wrap.
    ring.push(2, Direction::Drop, Some(DropReason::TtlExpired), 9, &[7; 3]);
    let mut again = Vec::new();
    ring.drain(|c| again.push((c.port, c.direction, c.reason, c.ts_ns, c.data.to_vec())));
    assert_eq!(
        again,
        [(
            2,
            Direction::Drop,
            Some(DropReason::TtlExpired),
            9,
            vec![7; 3]
        )]
    );
}

#[test]
fn a_ring_shared_between_two_threads_loses_nothing_it_accepted() {
    let ring = Arc::new(CaptureRing::new(8, 4));
    let producer = {
        let ring = Arc::clone(&ring);
        std::thread::spawn(move || {
            for i in 0..20_000u32 {
                ring.push(0, Direction::Tx, None, u64::from(i), &i.to_be_bytes());
            }
        })
    };
    let mut got = Vec::new();
    loop {
        // Read before draining: a drain after the producer finished sees everything it pushed.
        let done = producer.is_finished();
        ring.drain(|c| {
            got.push(u32::from_be_bytes([
                c.data[0], c.data[1], c.data[2], c.data[3],
            ]))
        });
        if done {
            break;
        }
    }
    producer.join().unwrap();
    assert!(got.windows(2).all(|w| w[0] < w[1]), "in order, no repeats");
    assert_eq!(got.len() as u64 + ring.dropped(), 20_000);
}

#[test]
fn a_session_takes_only_its_port_and_what_its_filter_passes() {
    let s = CaptureSession::new(Some(ip_only()), Some(1), (true, false, false), 64);
    s.offer(1, Direction::Rx, None, 5, &frame(0x0800, 60));
    s.offer(0, Direction::Rx, None, 6, &frame(0x0800, 60));
    s.offer(1, Direction::Rx, None, 7, &frame(0x0806, 60));
    let mut ts = Vec::new();
    s.ring.drain(|c| ts.push(c.ts_ns));
    assert_eq!(ts, [5]);
}

#[test]
fn the_tap_version_moves_on_every_arm_and_disarm() {
    let tap = CaptureTap::default();
    assert_eq!(tap.version(), 0);
    assert!(tap.session().is_none());
    tap.set(Some(Arc::new(CaptureSession::new(
        None,
        None,
        (true, true, true),
        100,
    ))));
    assert_eq!(tap.version(), 1);
    assert!(tap.session().is_some());
    tap.set(None);
    assert_eq!(tap.version(), 2);
    assert!(tap.session().is_none());
}
