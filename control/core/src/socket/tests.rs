//! The peer check alone (binding is exercised through the front ends' own tests).

use super::*;
use std::time::Duration;

#[test]
fn peer_check_allows_own_uid_and_listed_ids_only() {
    let rule = |uids: &[u32], gids: &[u32]| PeerCheck {
        own_uid: 1000,
        allowed_uids: uids.to_vec(),
        allowed_gids: gids.to_vec(),
    };
    let none = rule(&[], &[]);
    assert!(none.allows(1000, 1000));
    assert!(!none.allows(1001, 1000));
    assert!(!none.allows(0, 0));
    let listed = rule(&[1001], &[50]);
    assert!(listed.allows(1001, 7));
    assert!(listed.allows(4242, 50));
    assert!(!listed.allows(4242, 51));
}

#[test]
fn slots_evict_the_longest_evictable_and_never_a_busy_one() {
    let slots = Slots::new(2);
    let pair = || UnixStream::pair().unwrap();
    let (a, a_peer) = pair();
    let (b, _b_peer) = pair();
    let (c, _c_peer) = pair();
    let Admission::Admitted { slot: first, .. } = slots.admit(&a) else {
        panic!("room for the first")
    };
    std::thread::sleep(Duration::from_millis(3));
    let Admission::Admitted { slot: second, .. } = slots.admit(&b) else {
        panic!("room for the second")
    };
    // Full: the newcomer takes the oldest evictable slot, the first one, whose peer sees the end.
    let Admission::Admitted {
        slot: third,
        evicted,
    } = slots.admit(&c)
    else {
        panic!("the first is evictable")
    };
    assert!(evicted);
    assert_eq!(slots.len(), 2);
    assert!(
        !first.busy() && !first.evictable(),
        "the evicted one must stop"
    );
    let mut buf = [0u8; 1];
    assert_eq!(io::Read::read(&mut &a_peer, &mut buf).unwrap(), 0);
    drop(first);
    assert_eq!(slots.len(), 2, "an evicted slot was freed already");

    // Both busy: a newcomer is refused; one evictable again: it goes.
    assert!(second.busy() && third.busy());
    let (d, _d_peer) = pair();
    assert!(matches!(slots.admit(&d), Admission::Full));
    assert!(third.evictable());
    assert!(matches!(
        slots.admit(&d),
        Admission::Admitted { evicted: true, .. }
    ));
    assert!(second.busy() && !third.evictable());
    // A slot dropped by its thread frees its room.
    drop(second);
    let (e, _e_peer) = pair();
    assert!(matches!(
        slots.admit(&e),
        Admission::Admitted { evicted: false, .. }
    ));
}
