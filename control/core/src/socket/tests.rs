//! The peer check alone (binding is exercised through the front ends' own tests).

use super::*;

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
