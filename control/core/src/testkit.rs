//! What the feed and control thread tests share: the verbatim ExaBGP 5.0 lines of
//! `shared/reference/bgp-feed.md`, a builder over a resolver that knows every address, and the
//! wait bound.

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use ecmp_tables::nexthop::{PortId, PortInfo};

use crate::builder::{Builder, BuilderConfig, GroupPolicy, StaticTables};

pub(crate) type Resolve = fn(IpAddr) -> Option<(PortId, [u8; 6])>;

/// The longest any test waits for something to happen.
pub(crate) const WAIT: Duration = Duration::from_secs(5);

// ExaBGP 5.0.15, verbatim.
pub(crate) const UP: &str = r#"{ "exabgp": "5.0.0", "time": 1795310632.684011, "host" : "vm", "pid" : 8996, "ppid" : 8994, "counter": 2, "type": "state", "neighbor": { "address": { "local": "127.0.0.1", "peer": "127.0.0.2" }, "asn": { "local": 65000, "peer": 65001 }, "router-id": "127.0.0.1" , "state": "up" } }"#;
pub(crate) const ANNOUNCE: &str = r#"{ "exabgp": "5.0.0", "time": 1795310634.8154979, "host" : "vm", "pid" : 8996, "ppid" : 8994, "counter": 6, "type": "update", "neighbor": { "address": { "local": "127.0.0.1", "peer": "127.0.0.2" }, "asn": { "local": 65000, "peer": 65001 }, "router-id": "127.0.0.1" , "direction": "receive", "message": { "update": { "attribute": { "origin": "igp", "as-path": {"0": {"element": "as-sequence", "value": [65001]}} }, "announce": { "ipv4 unicast": { "198.51.100.2": [ { "nlri": "192.0.2.10/32", "path-information": "0.0.0.2" } ] } } } } } }"#;
pub(crate) const WITHDRAW: &str = r#"{ "exabgp": "5.0.0", "time": 1795310636.7733183, "host" : "vm", "pid" : 8996, "ppid" : 8994, "counter": 9, "type": "update", "neighbor": { "address": { "local": "127.0.0.1", "peer": "127.0.0.2" }, "asn": { "local": 65000, "peer": 65001 }, "router-id": "127.0.0.1" , "direction": "receive", "message": { "update": { "withdraw": { "ipv4 unicast": [ { "nlri": "192.0.2.10/32", "path-information": "0.0.0.2" } ] } } } } }"#;
pub(crate) const DOWN: &str = r#"{ "exabgp": "5.0.0", "time": 1795310644.5298004, "host" : "vm", "pid" : 8996, "ppid" : 8994, "counter": 10, "type": "state", "neighbor": { "address": { "local": "127.0.0.1", "peer": "127.0.0.2" }, "asn": { "local": 65000, "peer": 65001 }, "router-id": "127.0.0.1" , "state": "down", "reason": "closing connection" } }"#;
/// End-of-RIB as the reference quotes it, in the verbatim update framing.
pub(crate) const EOR: &str = r#"{ "exabgp": "5.0.0", "time": 1795310634.9, "host" : "vm", "pid" : 8996, "ppid" : 8994, "counter": 7, "type": "update", "neighbor": { "address": { "local": "127.0.0.1", "peer": "127.0.0.2" }, "asn": { "local": 65000, "peer": 65001 }, "router-id": "127.0.0.1" , "direction": "receive", "message": { "eor": { "afi" : "ipv4", "safi" : "unicast" } } } }"#;

pub(crate) const PREFIX: &str = "192.0.2.10";

/// `line` from peer `peer` (the verbatim lines are from 127.0.0.2).
pub(crate) fn from_peer(line: &str, peer: &str) -> String {
    line.replace(r#""peer": "127.0.0.2""#, &format!(r#""peer": "{peer}""#))
}

/// The verbatim announce with another peer, next hop, prefix and path id.
pub(crate) fn announce(peer: &str, next_hop: &str, prefix: &str, path_id: &str) -> String {
    from_peer(ANNOUNCE, peer)
        .replace("198.51.100.2", next_hop)
        .replace("192.0.2.10/32", prefix)
        .replace(
            r#""path-information": "0.0.0.2""#,
            &format!(r#""path-information": "{path_id}""#),
        )
}

pub(crate) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub(crate) fn resolve_all(addr: IpAddr) -> Option<(PortId, [u8; 6])> {
    let last = match addr {
        IpAddr::V4(a) => a.octets()[3],
        IpAddr::V6(a) => a.octets()[15],
    };
    Some((0, [2, 0, 0, 0, 1, last]))
}

pub(crate) fn builder() -> Builder<Resolve> {
    let config = BuilderConfig {
        policies: Vec::new(),
        default_policy: GroupPolicy {
            buckets: 64,
            ..GroupPolicy::default()
        },
        ports: vec![PortInfo {
            mac: [2, 0, 0, 0, 0, 9],
            mtu: 1500,
        }],
        seed: 7,
        max_tbl8: 256,
        statics: StaticTables::default(),
    };
    Builder::new(config, resolve_all as Resolve).unwrap()
}

pub(crate) fn send(stream: &mut UnixStream, lines: &[&str]) {
    let mut bytes = Vec::new();
    for line in lines {
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
    }
    stream.write_all(&bytes).unwrap();
}
