use std::net::Ipv4Addr;

use super::*;

fn vip() -> Prefix {
    "192.0.2.10/32".parse().unwrap()
}

fn other() -> Prefix {
    "192.0.2.20/32".parse().unwrap()
}

fn spec(prefix: Prefix) -> AnnounceSpec {
    AnnounceSpec {
        prefix,
        next_hop: AnnounceNextHop::Local,
        med: None,
        communities: Vec::new(),
        neighbors: Vec::new(),
    }
}

fn health(serving: &[Prefix]) -> Health<impl Fn(&Prefix) -> bool + '_> {
    Health {
        serving: move |p: &Prefix| serving.contains(p),
        stalled: None,
        shutting_down: false,
    }
}

#[test]
fn commands_carry_the_next_hop_attributes_and_neighbours() {
    let mut s = spec(vip());
    assert_eq!(
        s.announce_command(),
        "announce route 192.0.2.10/32 next-hop self"
    );
    assert_eq!(
        s.withdraw_command(),
        "withdraw route 192.0.2.10/32 next-hop self"
    );
    s.next_hop = AnnounceNextHop::Addr(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
    s.med = Some(100);
    s.communities = vec![
        Community {
            asn: 65000,
            value: 1,
        },
        Community::GRACEFUL_SHUTDOWN,
    ];
    s.neighbors = vec!["10.0.0.254".parse().unwrap(), "10.0.1.254".parse().unwrap()];
    assert_eq!(
        s.announce_command(),
        "neighbor 10.0.0.254, neighbor 10.0.1.254 announce route 192.0.2.10/32 next-hop 10.0.0.1 \
         med 100 community [65000:1 65535:0]"
    );
    assert_eq!(
        s.withdraw_command(),
        "neighbor 10.0.0.254, neighbor 10.0.1.254 withdraw route 192.0.2.10/32 next-hop 10.0.0.1"
    );
}

#[test]
fn a_prefix_is_announced_once_it_has_an_active_hop_and_withdrawn_when_it_has_none() {
    let t0 = Instant::now();
    let mut a = Announcer::new(vec![spec(vip()), spec(other())], t0);
    let lines = a.lines(t0);
    assert!(lines.iter().all(|l| !l.announced));
    assert_eq!(lines[0].reason, Some(WithdrawReason::NoActiveHop));
    // Nothing serves yet: no command (the companion holds nothing).
    assert!(a.update(&health(&[]), t0).is_empty());
    let t1 = t0 + Duration::from_secs(1);
    assert_eq!(
        a.update(&health(&[vip()]), t1),
        vec!["announce route 192.0.2.10/32 next-hop self"]
    );
    // Unchanged health: no command again.
    assert!(a.update(&health(&[vip()]), t1).is_empty());
    let t2 = t1 + Duration::from_secs(2);
    let lines = a.lines(t2);
    assert!(lines[0].announced && lines[0].reason.is_none());
    assert_eq!(lines[0].since_s, 2.0);
    assert_eq!(lines[1].reason, Some(WithdrawReason::NoActiveHop));
    assert_eq!(lines[1].since_s, 3.0);
    assert_eq!(
        a.update(&health(&[]), t2),
        vec!["withdraw route 192.0.2.10/32 next-hop self"]
    );
    let lines = a.lines(t2);
    assert_eq!(lines[0].reason, Some(WithdrawReason::NoActiveHop));
    assert_eq!(lines[0].since_s, 0.0);
}

#[test]
fn a_stalled_worker_withdraws_every_prefix_until_it_polls_again() {
    let t0 = Instant::now();
    let mut a = Announcer::new(vec![spec(vip()), spec(other())], t0);
    let both = [vip(), other()];
    assert_eq!(a.update(&health(&both), t0).len(), 2);
    let mut watch = StallWatch::new(Duration::from_millis(500));
    assert_eq!(watch.observe(&[10, 20], t0), None);
    let t1 = t0 + Duration::from_millis(400);
    // Worker 0 moves, worker 1 does not: not yet the stall time.
    assert_eq!(watch.observe(&[11, 20], t1), None);
    let t2 = t0 + Duration::from_millis(600);
    let stalled = watch.observe(&[12, 20], t2);
    assert_eq!(stalled, Some((1, Duration::from_millis(600))));
    let h = Health {
        stalled,
        ..health(&both)
    };
    assert_eq!(
        a.update(&h, t2),
        vec![
            "withdraw route 192.0.2.10/32 next-hop self",
            "withdraw route 192.0.2.20/32 next-hop self"
        ]
    );
    let reason = a.lines(t2)[0].reason;
    assert_eq!(
        reason,
        Some(WithdrawReason::WorkersStalled {
            worker: 1,
            stalled_ms: 600
        })
    );
    assert_eq!(
        reason.unwrap().to_string(),
        "worker 1 stalled (no poll for 600 ms)"
    );
    // Still stalled later: no command, the first noticed stall kept.
    let t3 = t2 + Duration::from_millis(300);
    let h = Health {
        stalled: watch.observe(&[13, 20], t3),
        ..health(&both)
    };
    assert!(a.update(&h, t3).is_empty());
    assert_eq!(a.lines(t3)[1].reason, reason);
    // It polls again: announced again.
    let t4 = t3 + Duration::from_millis(10);
    let h = Health {
        stalled: watch.observe(&[14, 21], t4),
        ..health(&both)
    };
    assert_eq!(h.stalled, None);
    assert_eq!(a.update(&h, t4).len(), 2);
    assert!(a.lines(t4).iter().all(|l| l.announced));
}

#[test]
fn a_new_worker_set_starts_afresh() {
    let t0 = Instant::now();
    let mut watch = StallWatch::new(Duration::from_millis(100));
    assert_eq!(watch.observe(&[1], t0), None);
    // Two workers now: neither is judged on the old one's history.
    assert_eq!(watch.observe(&[1, 0], t0 + Duration::from_secs(5)), None);
    assert_eq!(
        watch.observe(&[1, 0], t0 + Duration::from_millis(5100)),
        Some((0, Duration::from_millis(100)))
    );
}

#[test]
fn shutting_down_withdraws_everything_and_wins_over_other_reasons() {
    let t0 = Instant::now();
    let mut a = Announcer::new(vec![spec(vip()), spec(other())], t0);
    let serving = [vip()];
    assert_eq!(a.update(&health(&serving), t0).len(), 1);
    let h = Health {
        shutting_down: true,
        stalled: Some((0, Duration::from_secs(3))),
        ..health(&serving)
    };
    // Only the announced one needs a command; both now say why.
    assert_eq!(
        a.update(&h, t0),
        vec!["withdraw route 192.0.2.10/32 next-hop self"]
    );
    let lines = a.lines(t0);
    assert!(
        lines
            .iter()
            .all(|l| l.reason == Some(WithdrawReason::ShuttingDown))
    );
    assert_eq!(lines[1].since_s, 0.0);
    // Stopping stays stopping whatever the routes do.
    assert!(a.update(&h, t0 + Duration::from_secs(1)).is_empty());
}

#[test]
fn a_companion_that_connects_hears_the_whole_state() {
    let t0 = Instant::now();
    let mut a = Announcer::new(vec![spec(vip()), spec(other())], t0);
    a.update(&health(&[other()]), t0);
    assert_eq!(
        a.commands(),
        vec![
            "withdraw route 192.0.2.10/32 next-hop self",
            "announce route 192.0.2.20/32 next-hop self"
        ]
    );
    let lines = a.lines(t0);
    assert_eq!(
        lines[0].command,
        "withdraw route 192.0.2.10/32 next-hop self"
    );
    assert_eq!(
        lines[1].command,
        "announce route 192.0.2.20/32 next-hop self"
    );
}
