use super::*;

#[test]
fn port_macs_and_addresses() {
    let c = ok(
        "[[port]]\nname = \"x1\"\nkind = \"afxdp\"\ninterface = \"veth-t1\"\nmac = \"02:00:00:00:00:03\"\naddresses = [\"198.18.1.254/24\", \"2001:2:0:1::fe/64\"]\n\
         [[port]]\nname = \"m1\"\nkind = \"memory\"\nmac = \"02:00:00:00:00:04\"\naddresses = [\"198.18.9.1/32\"]\n",
    );
    assert_eq!(c.ports[0].mac, Some(MacAddr([2, 0, 0, 0, 0, 1])));
    assert_eq!(
        c.ports[0].addresses,
        Some(vec![]),
        "memory: none unless given"
    );
    assert_eq!(
        (c.ports[1].mac, c.ports[1].addresses.as_ref()),
        (None, None)
    );
    assert_eq!(
        c.ports[1].port_info().mac,
        [0; 6],
        "filled in from the interface"
    );
    assert_eq!(c.ports[2].mac, Some(MacAddr([2, 0, 0, 0, 0, 3])));
    let addrs = c.ports[2].addresses.clone().unwrap();
    assert_eq!(addrs[0].to_string(), "198.18.1.254/24");
    assert_eq!(addrs[0].subnet(), p("198.18.1.0/24"));
    assert_eq!(addrs[1].subnet(), p("2001:2:0:1::/64"));
    assert_eq!(
        c.ports[3].addresses.as_deref(),
        Some(&["198.18.9.1/32".parse::<PortAddr>().unwrap()][..])
    );
    for bad in ["198.18.1.1", "198.18.1.1/33", "x/8", "2001:2::1/129"] {
        assert!(bad.parse::<PortAddr>().is_err(), "{bad:?}");
    }
}

#[test]
fn port_errors() {
    fails(
        "[[port]] #<\nname = \"m1\"\nkind = \"memory\"\n",
        "port[2].mac",
        "missing `mac`: a memory port needs one",
    );
    fails(
        "[[port]] #<\nname = \"c1\"\nkind = \"pcap\"\noutput = \"o.pcap\"\n",
        "port[2].mac",
        "a pcap port needs one",
    );
    fails(
        "[[port]]\nname = \"x1\"\nkind = \"afxdp\"\ninterface = \"v1\"\naddresses = [\"198.18.1.254\"] #<\n",
        "port[2].addresses[0]",
        "expected address/length",
    );
    fails(
        "[[port]]\nname = \"x1\"\nkind = \"afxdp\"\ninterface = \"v1\"\naddresses = [\"198.18.1.254/24\",\n  \"224.0.0.1/4\"] #<\n",
        "port[2].addresses[1]",
        "not a unicast address",
    );
    fails(
        "[[port]]\nname = \"x1\"\nkind = \"afxdp\"\ninterface = \"v1\"\naddresses = [\"198.18.1.254/24\",\n  \"198.18.1.254/25\"] #<\n",
        "port[2].addresses[1]",
        "listed twice",
    );
}

#[test]
fn next_hop_macs() {
    let c = ok(HOPS);
    assert_eq!(c.nexthops[0].mac, Some(MacAddr([2, 0, 0, 0, 1, 1])));
    assert_eq!(c.nexthops[1].mac, None, "resolved from the neighbour table");
    fails(
        "[[nexthop]] #<\nname = \"h\"\naddress = \"198.18.1.1\"\nport = \"m0\"\n",
        "nexthop[0].mac",
        "port \"m0\" is a memory port",
    );
}

#[test]
fn neighbors() {
    let c = ok(&format!(
        "{HOPS}[[neighbor]]\naddress = \"198.18.2.1\"\nmac = \"02:00:00:00:02:01\"\nport = \"x0\"\n\
         [[neighbor]]\naddress = \"2001:2::7\"\nmac = \"02:00:00:00:02:07\"\n"
    ));
    assert_eq!(
        c.neighbors,
        [
            NeighborSpec {
                address: "198.18.2.1".parse().unwrap(),
                mac: MacAddr([2, 0, 0, 0, 2, 1]),
                port: Some(1),
                line: 26,
            },
            NeighborSpec {
                address: "2001:2::7".parse().unwrap(),
                mac: MacAddr([2, 0, 0, 0, 2, 7]),
                port: None,
                line: 30,
            }
        ]
    );
    let n = "[[neighbor]]\naddress = \"198.18.3.1\"\nmac = \"02:00:00:00:03:01\"\n";
    fails(
        &format!("{n}[[neighbor]]\naddress = \"198.18.3.1\" #<\nmac = \"02:00:00:00:03:02\"\n"),
        "neighbor[1].address",
        "duplicate neighbor 198.18.3.1 (first on line 17)",
    );
    fails(
        "[[neighbor]]\naddress = \"255.255.255.255\" #<\nmac = \"02:00:00:00:03:01\"\n",
        "neighbor[0].address",
        "not a unicast address",
    );
    fails(
        "[[neighbor]]\naddress = \"198.18.3.1\"\nmac = \"ff:ff:ff:ff:ff:ff\" #<\n",
        "neighbor[0].mac",
        "not a unicast MAC",
    );
    fails(
        "[[neighbor]] #<\naddress = \"198.18.3.1\"\n",
        "neighbor[0].mac",
        "missing field `mac`",
    );
    fails(
        &format!("{n}port = \"p9\" #<\n"),
        "neighbor[0].port",
        "unknown port \"p9\"",
    );
    fails(
        &format!("{n}iface = \"x\" #<\n"),
        "neighbor[0].iface",
        "unknown field `iface`",
    );
    fails(
        &format!("{HOPS}[[neighbor]]\naddress = \"198.18.1.1\"\nmac = \"02:00:00:00:09:09\" #<\n"),
        "neighbor[0].mac",
        "conflicts with next hop \"hm\"",
    );
    fails(
        &format!(
            "{HOPS}[[neighbor]]\naddress = \"198.18.2.1\"\nmac = \"02:00:00:00:09:09\"\nport = \"m0\" #<\n"
        ),
        "neighbor[0].port",
        "next hop \"hx\" (line 22) with this address is on another port",
    );
}

#[test]
fn two_next_hops_with_one_address_on_one_port_are_refused_naming_both() {
    fails(
        "[[nexthop]]\nname = \"a\"\naddress = \"198.18.1.1\"\nport = \"m0\"\nmac = \"02:00:00:00:01:01\"\n\
         [[nexthop]]\nname = \"b\"\naddress = \"198.18.1.1\" #<\nport = \"m0\"\nmac = \"02:00:00:00:01:02\"\n",
        "nexthop[1].address",
        "next hops \"a\" (line 17) and \"b\" both have address 198.18.1.1 on port \"m0\"",
    );
    // The same address behind two ports is two neighbours (two links), and stays allowed.
    let c = ok(
        "[[nexthop]]\nname = \"a\"\naddress = \"198.18.1.1\"\nport = \"m0\"\nmac = \"02:00:00:00:01:01\"\n\
         [[nexthop]]\nname = \"b\"\naddress = \"198.18.1.1\"\nport = \"x0\"\n",
    );
    assert_eq!(c.nexthops.len(), 2);
}
