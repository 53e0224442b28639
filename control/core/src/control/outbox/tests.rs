use std::io::Read;
use std::time::{Duration, Instant};

use super::*;

#[test]
fn outbox_never_blocks_on_a_peer_that_does_not_read() {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let mut conn = Conn::new(ours);
    // One route-refresh request, as the feed front end sends it.
    let line = b"announce route-refresh ipv4 unicast\n".to_vec();
    let started = Instant::now();
    let mut dropped = 0;
    for _ in 0..100_000 {
        if !conn.send(&line) {
            dropped += 1;
        }
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        dropped > 0,
        "the socket buffer and outbox cannot hold 3.6 MB"
    );
    assert!(conn.outbox.len() <= OUTBOX_MAX);
    let accepted = 100_000 - dropped;

    // Once the peer reads, the outbox drains and the peer sees only whole lines.
    theirs
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut received = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    while received.len() < accepted * line.len() {
        let n = (&theirs).read(&mut buf).unwrap();
        assert!(n > 0);
        received.extend_from_slice(&buf[..n]);
        conn.flush();
    }
    assert_eq!(received.len(), accepted * line.len());
    assert!(received.chunks(line.len()).all(|l| l == line.as_slice()));
    assert!(conn.outbox.is_empty());
}
