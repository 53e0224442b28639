use super::*;
use proptest::prelude::*;

fn burst() -> Burst<MemFrame> {
    Burst::new()
}

#[test]
fn fresh_frame_has_headroom_and_no_data() {
    let pool = FramePool::new(1);
    let f = pool.alloc().unwrap();
    assert_eq!(f.headroom(), HEADROOM);
    assert!(f.data().is_empty());
    assert_eq!(f.tailroom(), MAX_PACKET);
    pool.release(f);
    assert_eq!(pool.outstanding(), 0);
}

#[test]
fn push_pull_truncate_semantics() {
    let pool = FramePool::new(1);
    let mut f = pool.frame_from(&[1, 2, 3, 4, 5, 6]).unwrap();
    assert_eq!(f.data(), &[1, 2, 3, 4, 5, 6]);

    // Pull the first two bytes, then push them back: the same bytes reappear.
    assert!(f.pull_front(2));
    assert_eq!(f.data(), &[3, 4, 5, 6]);
    assert_eq!(f.headroom(), HEADROOM + 2);
    assert!(f.push_front(2));
    assert_eq!(f.data(), &[1, 2, 3, 4, 5, 6]);

    // Encapsulation: push and write an outer header in front.
    assert!(f.push_front(4));
    f.data_mut()[..4].copy_from_slice(&[0xaa, 0xbb, 0xcc, 0xdd]);
    assert_eq!(f.data(), &[0xaa, 0xbb, 0xcc, 0xdd, 1, 2, 3, 4, 5, 6]);
    assert_eq!(f.headroom(), HEADROOM - 4);

    // Refusals change nothing.
    assert!(!f.push_front(HEADROOM - 3));
    assert!(!f.pull_front(11));
    assert!(!f.push_front(usize::MAX));
    assert!(!f.pull_front(usize::MAX));
    assert_eq!(f.data().len(), 10);
    assert_eq!(f.headroom(), HEADROOM - 4);

    // All the headroom, then all the data.
    assert!(f.push_front(HEADROOM - 4));
    assert_eq!(f.headroom(), 0);
    assert!(!f.push_front(1));
    assert!(f.pull_front(HEADROOM + 6));
    assert!(f.data().is_empty());
    assert!(f.pull_front(0));

    pool.release(f);
    assert_eq!(pool.outstanding(), 0);
}

#[test]
fn truncate_shortens_only() {
    let pool = FramePool::new(1);
    let mut f = pool.frame_from(&[1, 2, 3, 4]).unwrap();
    f.truncate(10);
    assert_eq!(f.data(), &[1, 2, 3, 4]);
    f.truncate(2);
    assert_eq!(f.data(), &[1, 2]);
    assert_eq!(f.headroom(), HEADROOM);
    pool.release(f);
}

#[test]
fn frame_from_rejects_oversize_and_exhaustion() {
    let pool = FramePool::new(1);
    assert!(matches!(
        pool.frame_from(&[0; MAX_PACKET + 1]),
        Err(PortError::PacketTooLarge { len, max: MAX_PACKET }) if len == MAX_PACKET + 1
    ));
    assert_eq!(pool.outstanding(), 0);
    let f = pool.frame_from(&[0; MAX_PACKET]).unwrap();
    assert_eq!(f.data().len(), MAX_PACKET);
    assert_eq!(f.tailroom(), 0);
    assert!(matches!(
        pool.frame_from(&[0]),
        Err(PortError::PoolExhausted { capacity: 1 })
    ));
    assert_eq!(pool.stats().alloc_failures, 1);
    pool.release(f);
    assert_eq!(pool.outstanding(), 0);
}

#[test]
fn recycled_frame_is_reset() {
    let pool = FramePool::new(1);
    let mut f = pool.frame_from(&[7; 100]).unwrap();
    assert!(f.push_front(30));
    pool.release(f);
    let f = pool.alloc().unwrap();
    assert_eq!(f.headroom(), HEADROOM);
    assert!(f.data().is_empty());
    pool.release(f);
}

#[test]
fn foreign_frame_is_not_adopted() {
    let a = FramePool::new(1);
    let b = FramePool::new(1);
    let f = a.alloc().unwrap();
    b.release(f);
    assert_eq!(b.stats().foreign_releases, 1);
    assert_eq!(b.available(), 1);
    // The frame is gone for good: pool a reports it as leaked.
    assert_eq!(a.outstanding(), 1);
}

#[test]
fn inject_rx_tx_collect_round_trip() {
    let pool = FramePool::new(8);
    let mut port = MemoryPort::new(pool.clone());
    port.inject(&[1, 2, 3]).unwrap();
    port.inject(&[4, 5]).unwrap();
    assert_eq!(pool.outstanding(), 2);

    let mut b = burst();
    assert_eq!(port.rx_burst(&mut b), 2);
    assert_eq!(port.rx_burst(&mut b), 0);
    assert_eq!(b[0].data(), &[1, 2, 3]);
    assert_eq!(b[1].data(), &[4, 5]);

    assert_eq!(port.tx_burst(&mut b), 2);
    assert!(b.is_empty());
    assert_eq!(port.sent().len(), 2);
    assert_eq!(port.take_sent(), vec![vec![1, 2, 3], vec![4, 5]]);
    assert!(port.take_sent().is_empty());
    assert_eq!(pool.outstanding(), 0);

    let s = port.stats();
    assert_eq!(
        (s.rx_packets, s.rx_bytes, s.tx_packets, s.tx_bytes),
        (2, 5, 2, 5)
    );
}

#[test]
fn ports_of_a_worker_share_one_pool() {
    let pool = FramePool::new(4);
    let mut a = MemoryPort::new(pool.clone());
    let mut b = MemoryPort::with_tx_mode(pool.clone(), TxMode::Count);
    a.inject(&[1; 60]).unwrap();
    a.inject(&[2; 60]).unwrap();
    let mut rx = burst();
    a.rx_burst(&mut rx);
    // Frames received on a, sent on b: b counts and recycles them into the shared pool.
    assert_eq!(b.tx_burst(&mut rx), 2);
    assert_eq!(b.stats().tx_bytes, 120);
    assert_eq!(pool.outstanding(), 0);
}

#[test]
fn replay_cycles_forever_and_exhaustion_returns_fewer() {
    let pool = FramePool::new(40);
    let mut port = MemoryPort::new(pool.clone());
    port.replay([&[1u8][..], &[2, 2], &[3, 3, 3]]).unwrap();

    let mut b = burst();
    assert_eq!(port.rx_burst(&mut b), crate::BURST);
    let lens: Vec<usize> = b.iter().map(|f| f.data().len()).collect();
    assert_eq!(&lens[..7], &[1, 2, 3, 1, 2, 3, 1]);

    // 32 of 40 frames are out; the next burst gets only the 8 left, without panicking.
    let mut c = burst();
    assert_eq!(port.rx_burst(&mut c), 8);
    assert_eq!(port.stats().rx_no_buffer, 1);
    let mut d = burst();
    assert_eq!(port.rx_burst(&mut d), 0);
    assert_eq!(pool.outstanding(), 40);

    // Releasing one burst and transmitting the other brings the count back to zero.
    for f in b.drain(..) {
        port.release(f);
    }
    port.tx_burst(&mut c);
    assert_eq!(pool.outstanding(), 8);
    port.clear_sent();
    assert_eq!(pool.outstanding(), 0);

    // Replay continues where it stopped: 32 + 8 = 40 packets so far, 40 % 3 == 1.
    assert_eq!(port.rx_burst(&mut b), crate::BURST);
    assert_eq!(b[0].data(), &[2, 2]);
    port.tx_burst(&mut b);
    drop(port);
    assert_eq!(pool.outstanding(), 0);
}

#[test]
fn rx_burst_respects_partly_filled_burst() {
    let pool = FramePool::new(64);
    let mut port = MemoryPort::new(pool.clone());
    port.replay([[0u8; 64]]).unwrap();
    let mut b = burst();
    for _ in 0..30 {
        b.push(pool.alloc().unwrap());
    }
    assert_eq!(port.rx_burst(&mut b), 2);
    assert!(b.is_full());
    pool.release_all(b.drain(..));
    assert_eq!(pool.outstanding(), 0);
}

#[test]
fn replay_rejects_oversize_and_empty_turns_off() {
    let pool = FramePool::new(2);
    let mut port = MemoryPort::new(pool);
    assert!(port.replay([vec![0u8; MAX_PACKET + 1]]).is_err());
    port.replay(Vec::<Vec<u8>>::new()).unwrap();
    let mut b = burst();
    assert_eq!(port.rx_burst(&mut b), 0);
}

#[test]
fn dropping_a_port_returns_its_queued_frames() {
    let pool = FramePool::new(4);
    let mut port = MemoryPort::new(pool.clone());
    port.inject(&[1]).unwrap();
    port.inject(&[2]).unwrap();
    let mut b = burst();
    port.rx_burst(&mut b);
    port.tx_burst(&mut b);
    port.inject(&[3]).unwrap();
    assert_eq!(pool.outstanding(), 3);
    drop(port);
    assert_eq!(pool.outstanding(), 0);
}

proptest! {
    // Any sequence of push/pull/truncate keeps the window inside the buffer and keeps the
    // bytes that stayed in the packet where they were.
    #[test]
    fn window_ops_stay_in_bounds(
        packet in proptest::collection::vec(any::<u8>(), 0..=MAX_PACKET),
        ops in proptest::collection::vec((0u8..3, 0usize..4096), 0..32),
    ) {
        let pool = FramePool::new(1);
        let mut f = pool.frame_from(&packet).unwrap();
        // Model: absolute start and length inside the buffer.
        let (mut start, mut len) = (HEADROOM, packet.len());
        for (op, n) in ops {
            match op {
                0 => {
                    let ok = f.push_front(n);
                    prop_assert_eq!(ok, n <= start);
                    if ok { start -= n; len += n; }
                }
                1 => {
                    let ok = f.pull_front(n);
                    prop_assert_eq!(ok, n <= len);
                    if ok { start += n; len -= n; }
                }
                _ => { f.truncate(n); len = len.min(n); }
            }
            prop_assert_eq!(f.headroom(), start);
            prop_assert_eq!(f.data().len(), len);
            prop_assert_eq!(f.tailroom(), FRAME_SIZE - start - len);
            // Bytes of the original packet still inside the window are unchanged.
            let lo = start.max(HEADROOM);
            let hi = (start + len).min(HEADROOM + packet.len());
            if lo < hi {
                prop_assert_eq!(&f.data()[lo - start..hi - start], &packet[lo - HEADROOM..hi - HEADROOM]);
            }
        }
        pool.release(f);
        prop_assert_eq!(pool.outstanding(), 0);
    }
}
