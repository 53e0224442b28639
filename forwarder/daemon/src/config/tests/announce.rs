//! `[[bgp.announce]]` and the `[bgp]` keys timing it.

use super::*;

const FEED: &str = "[feed]\nsocket = \"/f\"\n";

#[test]
fn entries_load_with_their_attributes_and_the_timing_defaults() {
    let c = ok(&format!(
        "{FEED}[bgp]\nmode = \"maglev\"\n\
         [[bgp.announce]]\nprefix = \"198.19.0.1/32\"\nnext_hop = \"self\"\n\
         [[bgp.announce]]\nprefix = \"2001:db8::1/128\"\nnext_hop = \"2001:db8::fe\"\nmed = 50\n\
         communities = [\"65000:1\", \"65535:0\"]\nneighbors = [\"10.0.0.254\", \"fe80::1\"]\n"
    ));
    let a = &c.announce;
    assert_eq!(a.stall_time, DEFAULT_ANNOUNCE_STALL_TIME);
    assert_eq!(a.grace, DEFAULT_ANNOUNCE_GRACE);
    assert_eq!(a.entries.len(), 2);
    assert_eq!(
        a.entries[0],
        AnnounceSpec {
            prefix: p("198.19.0.1/32"),
            next_hop: AnnounceNextHopSpec::Local,
            med: None,
            communities: vec![],
            neighbors: vec![],
            line: 21,
        }
    );
    let v6 = &a.entries[1];
    assert_eq!(
        v6.next_hop,
        AnnounceNextHopSpec::Addr("2001:db8::fe".parse().unwrap())
    );
    assert_eq!(v6.med, Some(50));
    assert_eq!(v6.communities, vec![(65000, 1), (65535, 0)]);
    assert_eq!(
        v6.neighbors,
        vec![
            "10.0.0.254".parse::<IpAddr>().unwrap(),
            "fe80::1".parse().unwrap()
        ]
    );
    // The group policy keys of [bgp] still apply next to the announcements.
    assert_eq!(c.bgp.default_policy.mode, GroupMode::Maglev);
    let c = ok(&format!(
        "{FEED}[bgp]\nannounce_stall_time = \"250ms\"\nannounce_grace = \"0s\"\n"
    ));
    assert_eq!(c.announce.stall_time, Duration::from_millis(250));
    assert_eq!(c.announce.grace, Duration::ZERO);
    assert!(c.announce.entries.is_empty());
    assert!(ok("").announce.entries.is_empty());
}

#[test]
fn bad_entries_name_their_file_line_and_key() {
    let entry = |body: &str| format!("{FEED}[[bgp.announce]]\nprefix = \"198.19.0.1/32\"\n{body}");
    fails(
        &entry("next_hop = \"here\" #<\n"),
        "bgp.announce[0].next_hop",
        "neither \"self\" nor an IP address",
    );
    fails(
        &entry("next_hop = \"2001:db8::1\" #<\n"),
        "bgp.announce[0].next_hop",
        "not of 198.19.0.1/32's address family",
    );
    fails(
        &entry("next_hop = \"224.0.0.1\" #<\n"),
        "bgp.announce[0].next_hop",
        "not a unicast address",
    );
    fails(
        &entry("next_hop = \"self\"\ncommunities = [\"65000:1\",\n \"65536:1\"] #<\n"),
        "bgp.announce[0].communities[1]",
        "invalid community \"65536:1\"",
    );
    fails(
        &entry("next_hop = \"self\"\nneighbors = [\"router\"] #<\n"),
        "bgp.announce[0].neighbors[0]",
        "\"router\" is not an IP address",
    );
    fails(
        &entry("next_hop = \"self\"\ncolor = 1 #<\n"),
        "bgp.announce[0].color",
        "unknown field `color`",
    );
    fails(
        &format!(
            "{FEED}[[bgp.announce]]\nprefix = \"198.19.0.1/32\"\nnext_hop = \"self\"\n\
             [[bgp.announce]]\nprefix = \"198.19.0.1/32\" #<\nnext_hop = \"self\"\n"
        ),
        "bgp.announce[1].prefix",
        "announced twice (first on line 19)",
    );
    fails(
        &format!("{FEED}[bgp]\nannounce_stall_time = \"0s\" #<\n"),
        "bgp.announce_stall_time",
        "must be greater than zero",
    );
    fails(
        "[[bgp.announce]] #<\nprefix = \"198.19.0.1/32\"\nnext_hop = \"self\"\n",
        "bgp.announce[0]",
        "need a [feed] socket",
    );
}
