//! Golden fixtures (ARCHITECTURE.md rule 11): input frame -> expected output frame and verdict,
//! for the config `tests/golden/golden.toml`, shared by the tests and the benches.
//!
//! Files in `tests/golden/`, per case `<name>`:
//! - `<name>.in.hex`: the input frame, received on the `uplink` port;
//! - `<name>.out.hex`: the frame the forwarder must send (absent for drops);
//! - `<name>.verdict`: `tx <port name>` or `drop <drop reason name>`.
//!
//! Names: `<next hop>__<variant>` for a packet routed to that next hop and sent, `drop__<what>`
//! for a drop. The inputs are defined here ([`golden_inputs`]), each drop case with the reason
//! it must be dropped for ([`GoldenInput::drop`]): regeneration refuses to write a verdict that
//! contradicts the declaration, and the golden test checks the pipeline against it directly.
//! The expected output frames are what the pipeline produced when they were last regenerated
//! (`UPDATE_GOLDEN=1 cargo test -p ecmp-tests`) and reviewed. The golden test fails when the
//! code, the inputs or the config drift from them.

use std::collections::BTreeSet;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ecmp_dataplane::drop::DropReason;
use ecmp_dataplane::pipeline::Pipeline;
use ecmp_port::PortId;
use ecmp_tables::snapshot::Snapshot;
use ecmp_testkit::frames::{
    CLIENT_MAC, Frag, FrameSpec, Ipv6Ext, TPID_QINQ, TPID_VLAN, TcpFlags, refill_ipv4_checksum,
};
use ecmp_wire::ethertype;
use ecmpfwd::config::Config;

use crate::TestsError;
use crate::hex;
use crate::rig::{self, Outcome, Rig, RigOptions, build_pipeline};

/// Suffix of input files.
pub const IN_SUFFIX: &str = ".in.hex";
/// Suffix of expected-output files.
pub const OUT_SUFFIX: &str = ".out.hex";
/// Suffix of verdict files.
pub const VERDICT_SUFFIX: &str = ".verdict";
/// Environment variable that makes the golden test rewrite the fixture files.
pub const UPDATE_ENV: &str = "UPDATE_GOLDEN";

/// The next hops that forward, in the order of the golden config; each gets every variant of
/// [`variants`]. Route k (1-based config position) is 10.k.0.0/16 and 2001:db8:k::/48.
pub const FORWARDING_HOPS: [&str; 12] = [
    "rewrite",
    "ipip-v4",
    "ipip-v6",
    "gre-v4",
    "gre-key-v4",
    "gre-key-v6",
    "vxlan-v4",
    "vxlan-v6",
    "gue-v4",
    "gue-v6",
    "mpls-v4",
    "mpls-v6",
];

/// Source of every IPv4 input.
pub const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
/// Source of every IPv6 input.
pub const CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xc1, 0, 0, 0, 0, 7);

/// The fixture directory, `tests/golden/`.
pub fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("golden")
}

/// The golden config, `tests/golden/golden.toml`.
pub fn golden_config() -> Result<Config, TestsError> {
    Ok(Config::load(&golden_dir().join("golden.toml"))?)
}

/// A [`Rig`] (worker + collecting memory ports) for the golden config.
pub fn golden_rig() -> Result<Rig, TestsError> {
    Ok(rig::for_config(&golden_config()?)?)
}

/// A [`Rig`] for the golden config sized and clocked by `opts` (port 0 is `uplink`, where the
/// fixtures' inputs arrive); benches count instead of collecting
/// (`ecmp_port::memory::TxMode::Count`).
pub fn golden_rig_with(opts: RigOptions) -> Result<Rig, TestsError> {
    Ok(rig::with_options(&golden_config()?, opts)?)
}

/// A bare pipeline and snapshot for the golden config.
pub fn golden_pipeline() -> Result<(Pipeline, Arc<Snapshot>), TestsError> {
    Ok(build_pipeline(&golden_config()?)?)
}

/// What the forwarder must do with a fixture's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// Send exactly `frame` on `port`.
    Tx {
        /// Egress port id.
        port: PortId,
        /// Egress port name (as in the verdict file).
        port_name: String,
        /// The expected output frame.
        frame: Vec<u8>,
    },
    /// Drop it for this reason.
    Drop(DropReason),
}

/// One fixture as loaded from `tests/golden/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoldenCase {
    /// The file stem.
    pub name: String,
    /// The input frame.
    pub input: Vec<u8>,
    /// The expected result.
    pub expected: Expected,
}

impl GoldenCase {
    /// The next hop a `<hop>__<variant>` case is routed to (`None` for `drop__` cases).
    pub fn hop(&self) -> Option<&str> {
        self.name
            .split_once("__")
            .map(|(h, _)| h)
            .filter(|h| *h != "drop")
    }
}

/// Every fixture, sorted by name; panics (naming the file) when the fixtures cannot be read,
/// which in a test or bench is the failure to report.
pub fn golden_cases() -> Vec<GoldenCase> {
    try_golden_cases().unwrap_or_else(|e| panic!("loading the golden fixtures: {e}"))
}

/// Every fixture, sorted by name.
pub fn try_golden_cases() -> Result<Vec<GoldenCase>, TestsError> {
    let cfg = golden_config()?;
    let dir = golden_dir();
    let mut names = BTreeSet::new();
    for entry in fs::read_dir(&dir).map_err(|e| TestsError::file(&dir, e))? {
        let entry = entry.map_err(|e| TestsError::file(&dir, e))?;
        if let Some(stem) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.strip_suffix(IN_SUFFIX))
        {
            names.insert(stem.to_owned());
        }
    }
    names
        .into_iter()
        .map(|name| load_case(&cfg, &dir, name))
        .collect()
}

fn load_case(cfg: &Config, dir: &Path, name: String) -> Result<GoldenCase, TestsError> {
    let input = read_hex(&dir.join(format!("{name}{IN_SUFFIX}")))?;
    let vpath = dir.join(format!("{name}{VERDICT_SUFFIX}"));
    let text = read_text(&vpath)?;
    let bad = || TestsError::Verdict {
        path: vpath.clone(),
        text: text.trim().to_owned(),
    };
    let expected = match text.trim().split_once(' ') {
        Some(("tx", port_name)) => {
            let port = cfg
                .port_index(port_name)
                .and_then(|p| PortId::try_from(p).ok())
                .ok_or_else(bad)?;
            Expected::Tx {
                port,
                port_name: port_name.to_owned(),
                frame: read_hex(&dir.join(format!("{name}{OUT_SUFFIX}")))?,
            }
        }
        Some(("drop", reason)) => Expected::Drop(drop_reason(reason).ok_or_else(bad)?),
        _ => return Err(bad()),
    };
    Ok(GoldenCase {
        name,
        input,
        expected,
    })
}

/// The drop reason named `name` (its `DropReason::name()`).
pub fn drop_reason(name: &str) -> Option<DropReason> {
    DropReason::ALL.iter().copied().find(|r| r.name() == name)
}

fn read_text(path: &Path) -> Result<String, TestsError> {
    fs::read_to_string(path).map_err(|e| TestsError::file(path, e))
}

/// The bytes of a hex fixture file.
pub fn read_hex(path: &Path) -> Result<Vec<u8>, TestsError> {
    hex::decode(&read_text(path)?).map_err(|source| TestsError::Hex {
        path: path.to_path_buf(),
        source,
    })
}

fn write(path: &Path, text: &str) -> Result<(), TestsError> {
    fs::write(path, text).map_err(|e| TestsError::file(path, e))
}

/// Rewrites every fixture file from [`golden_inputs`] and what the pipeline does with each
/// input now, and deletes fixture files of cases that no longer exist. Returns the case count.
/// Fails, before writing anything, when a case's outcome contradicts its declaration (a drop
/// case not dropped for its declared reason, a forwarding case dropped): verdicts come from the
/// case list, only output bytes from the code. Review the diff before committing.
pub fn regenerate() -> Result<usize, TestsError> {
    let cfg = golden_config()?;
    let inputs = golden_inputs(&cfg)?;
    let mut rig = rig::for_config(&cfg)?;
    let mut outcomes = Vec::with_capacity(inputs.len());
    for input in &inputs {
        let got = rig.run(&input.frame)?;
        input.check(&got)?;
        outcomes.push(got);
    }
    let dir = golden_dir();
    let mut keep = BTreeSet::new();
    for (input, outcome) in inputs.iter().zip(outcomes) {
        let name = &input.name;
        write(
            &dir.join(format!("{name}{IN_SUFFIX}")),
            &hex::encode(&input.description, &input.frame),
        )?;
        let out_path = dir.join(format!("{name}{OUT_SUFFIX}"));
        let verdict = match outcome {
            Outcome::Tx { port, frame } => {
                let port_name = cfg
                    .ports
                    .get(usize::from(port))
                    .map(|p| p.name.clone())
                    .ok_or(TestsError::UnknownPort(port))?;
                let comment = format!("{name}: sent on {port_name}, {} bytes", frame.len());
                write(&out_path, &hex::encode(&comment, &frame))?;
                format!("tx {port_name}\n")
            }
            Outcome::Drop(reason) => {
                if out_path.exists() {
                    fs::remove_file(&out_path).map_err(|e| TestsError::file(&out_path, e))?;
                }
                format!("drop {}\n", reason.name())
            }
        };
        write(&dir.join(format!("{name}{VERDICT_SUFFIX}")), &verdict)?;
        keep.insert(name.clone());
    }
    for entry in fs::read_dir(&dir).map_err(|e| TestsError::file(&dir, e))? {
        let path = entry.map_err(|e| TestsError::file(&dir, e))?.path();
        let Some(file) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let stem = [IN_SUFFIX, OUT_SUFFIX, VERDICT_SUFFIX]
            .iter()
            .find_map(|s| file.strip_suffix(s));
        if let Some(stem) = stem
            && !keep.contains(stem)
        {
            fs::remove_file(&path).map_err(|e| TestsError::file(&path, e))?;
        }
    }
    Ok(inputs.len())
}

/// A fixture input as defined in code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoldenInput {
    /// The case name (file stem).
    pub name: String,
    /// What the frame is (the comment line of its `.in.hex`).
    pub description: String,
    /// The frame.
    pub frame: Vec<u8>,
    /// The reason a `drop__` case must be dropped for, as declared with the case; `None` for a
    /// case that must be sent.
    pub drop: Option<DropReason>,
}

impl GoldenInput {
    /// Whether `outcome` is what this case declares: sent for a forwarding case, dropped for
    /// the declared reason for a drop case.
    pub fn check(&self, outcome: &Outcome) -> Result<(), TestsError> {
        let agrees = match (outcome, self.drop) {
            (Outcome::Tx { .. }, None) => true,
            (Outcome::Drop(got), Some(want)) => *got == want,
            _ => false,
        };
        if agrees {
            return Ok(());
        }
        Err(TestsError::Undeclared {
            case: self.name.clone(),
            declared: self.drop.map_or("tx", DropReason::name),
            got: match outcome {
                Outcome::Tx { .. } => "tx",
                Outcome::Drop(r) => r.name(),
            },
        })
    }
}

/// The inner destinations routed to next hop `name` of `cfg` (route k = config position + 1).
fn hop_destinations(cfg: &Config, name: &str) -> Result<(IpAddr, IpAddr), TestsError> {
    let k = cfg
        .nexthop_index(name)
        .map(|i| i + 1)
        .and_then(|k| u8::try_from(k).ok())
        .ok_or_else(|| TestsError::UnknownHop(name.to_owned()))?;
    Ok((
        IpAddr::V4(Ipv4Addr::new(10, k, 0, 10)),
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, u16::from(k), 0, 0, 0, 0, 0x10)),
    ))
}

const QINQ: [(u16, u16); 2] = [(TPID_QINQ, 100), (TPID_VLAN, 200)];
const ROUTER_ALERT: [u8; 4] = [0x94, 0x04, 0x00, 0x00];
const SYN: TcpFlags = TcpFlags::SYN;
const PSH_ACK: TcpFlags = TcpFlags::PSH.union(TcpFlags::ACK);

/// Every input: UDP 40000 -> 4242 (ports no tshark dissector claims, so the data shows as data)
/// with `payload_len` data bytes, TTL 64.
fn input(src: IpAddr, dst: IpAddr, payload_len: usize) -> FrameSpec {
    FrameSpec::udp(src, dst, 40000, 4242, 0).payload_len(payload_len)
}

/// The same input as TCP 40001 -> 4280 with `flags`.
fn tcp(spec: FrameSpec, flags: TcpFlags) -> FrameSpec {
    spec.with_tcp(flags).ports(40001, 4280)
}

/// The input variants every forwarding next hop gets: (suffix, description, frame spec).
fn variants(d4: IpAddr, d6: IpAddr) -> Vec<(&'static str, &'static str, FrameSpec)> {
    let (s4, s6) = (IpAddr::V4(CLIENT_V4), IpAddr::V6(CLIENT_V6));
    let first = Frag::First { ident: 0x4242 };
    // The first fragment carried 8 (UDP) + 24 data bytes.
    let later = Frag::Later {
        ident: 0x4242,
        offset: 32,
    };
    vec![
        (
            "v4-udp",
            "IPv4 UDP 40000 -> 4242, 18 data bytes, TTL 64, DF",
            input(s4, d4, 18),
        ),
        (
            "v4-tcp",
            "IPv4 TCP PSH+ACK 40001 -> 4280, 32 data bytes, DSCP 10 ECN 2",
            tcp(input(s4, d4, 32), PSH_ACK).tos(0x2a),
        ),
        (
            "v6-udp",
            "IPv6 UDP 40000 -> 4242, 20 data bytes, hop limit 64",
            input(s6, d6, 20),
        ),
        (
            "v6-tcp",
            "IPv6 TCP PSH+ACK 40001 -> 4280, 32 data bytes, traffic class 0xb8 (EF)",
            tcp(input(s6, d6, 32), PSH_ACK).tos(0xb8),
        ),
        (
            "v4-vlan",
            "802.1Q VLAN 100, IPv4 UDP, 18 data bytes",
            input(s4, d4, 18).vlans(&[(TPID_VLAN, 100)]),
        ),
        (
            "v4-qinq",
            "802.1ad 100 + 802.1Q 200 (QinQ), IPv4 TCP SYN",
            tcp(input(s4, d4, 0), SYN).vlans(&QINQ),
        ),
        (
            "v6-qinq",
            "802.1ad 100 + 802.1Q 200 (QinQ), IPv6 UDP, 8 data bytes",
            input(s6, d6, 8).vlans(&QINQ),
        ),
        (
            "v4-padded",
            "IPv4 UDP with 2 data bytes (IP length 30) and 16 bytes of Ethernet padding 0xee",
            input(s4, d4, 2).padding(16),
        ),
        (
            "v4-options",
            "IPv4 with a Router Alert option (IHL 6), UDP, 14 data bytes",
            input(s4, d4, 14).options(&ROUTER_ALERT),
        ),
        (
            "v4-frag-first",
            "IPv4 first fragment (MF, offset 0, ident 0x4242): UDP header + 24 data bytes",
            input(s4, d4, 24).frag(first),
        ),
        (
            "v4-frag-later",
            "IPv4 last fragment (offset 32, ident 0x4242): 20 data bytes, no L4 header",
            input(s4, d4, 20).frag(later),
        ),
        (
            "v6-frag-first",
            "IPv6 first fragment (fragment header, M, offset 0): UDP header + 24 data bytes",
            input(s6, d6, 24).frag(first),
        ),
        (
            "v6-frag-later",
            "IPv6 last fragment (offset 32): 20 data bytes, no L4 header",
            input(s6, d6, 20).frag(later),
        ),
        (
            "v4-ttl2",
            "IPv4 UDP with TTL 2 (leaves with TTL 1)",
            input(s4, d4, 18).ttl(2),
        ),
        (
            "v6-hlim2",
            "IPv6 UDP with hop limit 2 (leaves with 1)",
            input(s6, d6, 20).ttl(2),
        ),
    ]
}

/// Every fixture input, in a fixed order: each forwarding hop with every variant, the
/// small-MTU port at and past its MTU, then the drops.
pub fn golden_inputs(cfg: &Config) -> Result<Vec<GoldenInput>, TestsError> {
    let mut out = Vec::new();
    let mut push = |name: String, drop: Option<DropReason>, description: &str, frame: Vec<u8>| {
        out.push(GoldenInput {
            name,
            description: description.to_owned(),
            frame,
            drop,
        });
    };
    let built = |spec: &FrameSpec| -> Result<Vec<u8>, TestsError> { Ok(spec.build()?) };
    let (s4, s6) = (IpAddr::V4(CLIENT_V4), IpAddr::V6(CLIENT_V6));

    for hop in FORWARDING_HOPS {
        let (d4, d6) = hop_destinations(cfg, hop)?;
        for (suffix, description, spec) in variants(d4, d6) {
            push(format!("{hop}__{suffix}"), None, description, built(&spec)?);
        }
    }

    // The small-MTU port (128): the limit is on the IP packet, not the frame.
    let (n4, n6) = hop_destinations(cfg, "narrow-rewrite")?;
    let (g4, _) = hop_destinations(cfg, "narrow-gre")?;
    let mtu_cases = [
        (
            "narrow-rewrite__v4-at-mtu",
            None,
            "IPv4 UDP, IP length 128 = the egress MTU",
            input(s4, n4, 100),
        ),
        (
            "narrow-rewrite__v6-at-mtu",
            None,
            "IPv6 UDP, IP length 128 = the egress MTU",
            input(s6, n6, 80),
        ),
        (
            "narrow-rewrite__v4-qinq-at-mtu",
            None,
            "QinQ IPv4 UDP, IP length 128 = the egress MTU (tags do not count)",
            input(s4, n4, 100).vlans(&QINQ),
        ),
        (
            "drop__mtu-rewrite-v4",
            Some(DropReason::MtuExceeded),
            "IPv4 UDP, IP length 129 > the egress MTU 128",
            input(s4, n4, 101),
        ),
        (
            "drop__mtu-rewrite-v6",
            Some(DropReason::MtuExceeded),
            "IPv6 UDP, IP length 129 > the egress MTU 128",
            input(s6, n6, 81),
        ),
        (
            "narrow-gre__v4-at-mtu",
            None,
            "IPv4 UDP, IP length 104: with 24 bytes of IPv4+GRE exactly the egress MTU 128",
            input(s4, g4, 76),
        ),
        (
            "drop__mtu-gre-v4",
            Some(DropReason::MtuExceeded),
            "IPv4 UDP, IP length 105: with 24 bytes of IPv4+GRE one past the egress MTU 128",
            input(s4, g4, 77),
        ),
    ];
    for (name, drop, description, spec) in mtu_cases {
        push(name.to_owned(), drop, description, built(&spec)?);
    }

    let (r4, r6) = hop_destinations(cfg, "rewrite")?;
    let (v4, _) = hop_destinations(cfg, "vxlan-v4")?;
    let (f4, f6) = hop_destinations(cfg, "failed")?;
    let unrouted4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let unrouted6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 1));
    let forwarding_drops = [
        (
            "drop__ttl1-v4",
            DropReason::TtlExpired,
            "IPv4 UDP with TTL 1, routed",
            input(s4, r4, 18).ttl(1),
        ),
        (
            "drop__ttl0-v4",
            DropReason::TtlExpired,
            "IPv4 UDP with TTL 0, routed",
            input(s4, r4, 18).ttl(0),
        ),
        (
            "drop__hlim1-v6",
            DropReason::TtlExpired,
            "IPv6 UDP with hop limit 1, routed",
            input(s6, r6, 20).ttl(1),
        ),
        (
            "drop__ttl1-v4-vxlan",
            DropReason::TtlExpired,
            "IPv4 UDP with TTL 1 toward a VXLAN hop: not encapsulated either",
            input(s4, v4, 18).ttl(1),
        ),
        (
            "drop__no-route-v4",
            DropReason::NoRoute,
            "IPv4 UDP to 192.0.2.1 (no route)",
            input(s4, unrouted4, 18),
        ),
        (
            "drop__no-route-v6",
            DropReason::NoRoute,
            "IPv6 UDP to 2001:db8:100::1 (no route)",
            input(s6, unrouted6, 20),
        ),
        (
            "drop__no-next-hop-v4",
            DropReason::NoNextHop,
            "IPv4 UDP routed to a group whose only hop is failed",
            input(s4, f4, 18),
        ),
        (
            "drop__no-next-hop-v6",
            DropReason::NoNextHop,
            "IPv6 UDP routed to a group whose only hop is failed",
            input(s6, f6, 20),
        ),
    ];
    for (name, reason, description, spec) in forwarding_drops {
        push(name.to_owned(), Some(reason), description, built(&spec)?);
    }

    for (name, reason, description, frame) in parse_error_frames(r4, r6)? {
        push(name.to_owned(), Some(reason), description, frame);
    }
    for (name, reason, description, spec) in input_check_cases(r4, r6) {
        push(name.to_owned(), Some(reason), description, built(&spec)?);
    }
    Ok(out)
}

/// (case name, the reason it must be dropped for, description, frame spec).
type NamedSpec = (&'static str, DropReason, &'static str, FrameSpec);

/// The router input checks (RFC 1812 5.3.7, RFC 4291, RFC 6890): frames that are well formed
/// and routed to the rewrite hop (`r4`, `r6`) but for the one thing each case changes.
fn input_check_cases(r4: IpAddr, r6: IpAddr) -> Vec<NamedSpec> {
    let (s4, s6) = (IpAddr::V4(CLIENT_V4), IpAddr::V6(CLIENT_V6));
    let v4 = |a: [u8; 4]| IpAddr::V4(Ipv4Addr::from(a));
    let v6 = |a: Ipv6Addr| IpAddr::V6(a);
    let to_mac = |spec: FrameSpec, mac: [u8; 6]| {
        let src = spec.src_mac;
        spec.macs(src, mac)
    };
    let from_mac = |spec: FrameSpec, mac: [u8; 6]| {
        let dst = spec.dst_mac;
        spec.macs(mac, dst)
    };
    let ff02_1 = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    let fe80_1 = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
    vec![
        (
            "drop__not-for-us-other-host",
            DropReason::NotForUs,
            "IPv4 UDP, routed, sent to another host's MAC 02:00:00:00:00:99",
            to_mac(input(s4, r4, 18), [0x02, 0, 0, 0, 0, 0x99]),
        ),
        (
            "drop__not-for-us-broadcast-mac",
            DropReason::NotForUs,
            "IPv4 UDP, routed, sent to the broadcast MAC ff:ff:ff:ff:ff:ff",
            to_mac(input(s4, r4, 18), [0xff; 6]),
        ),
        (
            "drop__not-for-us-multicast-mac-v4",
            DropReason::NotForUs,
            "IPv4 UDP, routed, sent to the multicast MAC 01:00:5e:00:00:05",
            to_mac(input(s4, r4, 18), [0x01, 0, 0x5e, 0, 0, 5]),
        ),
        (
            "drop__not-for-us-multicast-mac-v6",
            DropReason::NotForUs,
            "IPv6 UDP, routed, sent to the multicast MAC 33:33:00:00:00:01",
            to_mac(input(s6, r6, 20), [0x33, 0x33, 0, 0, 0, 1]),
        ),
        (
            "drop__not-for-us-limited-broadcast",
            DropReason::NotForUs,
            "IPv4 UDP to 255.255.255.255 (the host's limited broadcast) in a frame to the port's MAC",
            input(s4, v4([255; 4]), 18),
        ),
        (
            "drop__bad-src-mac-broadcast",
            DropReason::BadSrcMac,
            "IPv4 UDP, routed, from the broadcast MAC ff:ff:ff:ff:ff:ff",
            from_mac(input(s4, r4, 18), [0xff; 6]),
        ),
        (
            "drop__bad-src-mac-multicast-v6",
            DropReason::BadSrcMac,
            "IPv6 UDP, routed, from the multicast MAC 33:33:00:00:00:01",
            from_mac(input(s6, r6, 20), [0x33, 0x33, 0, 0, 0, 1]),
        ),
        (
            "drop__martian-src-v4-loopback",
            DropReason::MartianSource,
            "IPv4 UDP from 127.0.0.1, routed",
            input(v4([127, 0, 0, 1]), r4, 18),
        ),
        (
            "drop__martian-src-v4-this-network",
            DropReason::MartianSource,
            "IPv4 UDP from 0.0.0.0, routed",
            input(v4([0; 4]), r4, 18),
        ),
        (
            "drop__martian-src-v4-multicast",
            DropReason::MartianSource,
            "IPv4 UDP from 224.0.0.5, routed",
            input(v4([224, 0, 0, 5]), r4, 18),
        ),
        (
            "drop__martian-src-v4-broadcast",
            DropReason::MartianSource,
            "IPv4 UDP from 255.255.255.255, routed",
            input(v4([255; 4]), r4, 18),
        ),
        (
            "drop__martian-src-v6-loopback",
            DropReason::MartianSource,
            "IPv6 UDP from ::1, routed",
            input(v6(Ipv6Addr::LOCALHOST), r6, 20),
        ),
        (
            "drop__martian-src-v6-multicast",
            DropReason::MartianSource,
            "IPv6 UDP from ff02::1, routed",
            input(v6(ff02_1), r6, 20),
        ),
        (
            "drop__martian-src-v4-link-local",
            DropReason::MartianSource,
            "IPv4 UDP from 169.254.1.1 (link-local: never forwarded off its link), routed",
            input(v4([169, 254, 1, 1]), r4, 18),
        ),
        (
            "drop__martian-src-v6-link-local",
            DropReason::MartianSource,
            "IPv6 UDP from fe80::1 (link-local: never forwarded off its link), routed",
            input(v6(fe80_1), r6, 20),
        ),
        (
            "drop__martian-dst-v4-this-network",
            DropReason::MartianDestination,
            "IPv4 UDP to 0.1.2.3 (0/8)",
            input(s4, v4([0, 1, 2, 3]), 18),
        ),
        (
            "drop__martian-dst-v4-loopback",
            DropReason::MartianDestination,
            "IPv4 UDP to 127.0.0.1",
            input(s4, v4([127, 0, 0, 1]), 18),
        ),
        (
            "drop__martian-dst-v4-reserved",
            DropReason::MartianDestination,
            "IPv4 UDP to 240.0.0.1 (240/4)",
            input(s4, v4([240, 0, 0, 1]), 18),
        ),
        (
            "drop__martian-dst-v4-link-local",
            DropReason::MartianDestination,
            "IPv4 UDP to 169.254.1.1 (link-local: never routed)",
            input(s4, v4([169, 254, 1, 1]), 18),
        ),
        (
            "drop__martian-dst-v4-multicast",
            DropReason::MartianDestination,
            "IPv4 UDP to 224.0.0.5 (multicast: ecmpfwd routes unicast only) in a frame to the port's MAC",
            input(s4, v4([224, 0, 0, 5]), 18),
        ),
        (
            "drop__martian-dst-v6-link-local",
            DropReason::MartianDestination,
            "IPv6 UDP to fe80::1 (link-local: never routed)",
            input(s6, v6(fe80_1), 20),
        ),
        (
            "drop__martian-dst-v6-multicast",
            DropReason::MartianDestination,
            "IPv6 UDP to ff02::1 (multicast)",
            input(s6, v6(ff02_1), 20),
        ),
        (
            "drop__bad-fragment-v4",
            DropReason::BadFragment,
            "IPv4 last fragment at offset 65512 with 20 data bytes: 17 bytes past 65535, routed",
            input(s4, r4, 20).frag(Frag::Later {
                ident: 0x4242,
                offset: 65512,
            }),
        ),
        (
            "drop__bad-fragment-v6",
            DropReason::BadFragment,
            "IPv6 last fragment at offset 65528 with 20 data bytes: 13 bytes past 65535, routed",
            input(s6, r6, 20).frag(Frag::Later {
                ident: 0x4242,
                offset: 65528,
            }),
        ),
    ]
}

/// (case name, the reason it must be dropped for, description, frame).
type NamedFrame = (&'static str, DropReason, &'static str, Vec<u8>);

/// One frame per parse error (some errors twice, by different routes), each routed to the
/// rewrite hop so that only the malformation stops it.
fn parse_error_frames(r4: IpAddr, r6: IpAddr) -> Result<Vec<NamedFrame>, TestsError> {
    let (s4, s6) = (IpAddr::V4(CLIENT_V4), IpAddr::V6(CLIENT_V6));
    let udp4 = input(s4, r4, 18).build()?;
    let tcp4 = tcp(input(s4, r4, 6), SYN).build()?;
    let udp6 = input(s6, r6, 20).build()?;
    const L3: usize = 14;

    let runt = udp4[..13].to_vec();
    let ip_cut = udp4[..30].to_vec();
    let mut vlan_cut = udp4[..16].to_vec();
    vlan_cut[12..14].copy_from_slice(&ethertype::VLAN.to_be_bytes());

    let mut arp = vec![0u8; 60];
    arp[..6].fill(0xff);
    arp[6..12].copy_from_slice(&CLIENT_MAC);
    arp[12..14].copy_from_slice(&ethertype::ARP.to_be_bytes());
    // Ethernet/IPv4, request, sender 198.51.100.7, target 10.1.0.1.
    arp[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    arp[22..28].copy_from_slice(&CLIENT_MAC);
    arp[28..32].copy_from_slice(&CLIENT_V4.octets());
    arp[38..42].copy_from_slice(&[10, 1, 0, 1]);

    let three_tags = input(s4, r4, 18)
        .vlans(&[(TPID_QINQ, 100), (TPID_VLAN, 200), (TPID_VLAN, 300)])
        .build()?;

    let mut v6_in_0800 = udp6.clone();
    v6_in_0800[12..14].copy_from_slice(&ethertype::IPV4.to_be_bytes());

    let mut ihl4 = udp4.clone();
    ihl4[L3] = 0x44;
    refill_ipv4_checksum(&mut ihl4, L3);

    let mut long = udp4.clone();
    // Total length 200 in a 46-byte IP packet; the header checksum is right for it.
    long[L3 + 2..L3 + 4].copy_from_slice(&200u16.to_be_bytes());
    refill_ipv4_checksum(&mut long, L3);

    let mut bad_sum = udp4.clone();
    bad_sum[L3 + 11] ^= 0x01;

    let mut udp_cut = udp4.clone();
    // Total length 24: 4 bytes of UDP header; the rest of the frame becomes padding.
    udp_cut[L3 + 2..L3 + 4].copy_from_slice(&24u16.to_be_bytes());
    refill_ipv4_checksum(&mut udp_cut, L3);

    let mut doff4 = tcp4.clone();
    doff4[L3 + 20 + 12] = 0x40;

    Ok(vec![
        (
            "drop__truncated-runt",
            DropReason::Truncated,
            "13 bytes: shorter than an Ethernet header",
            runt,
        ),
        (
            "drop__truncated-ipv4-header",
            DropReason::Truncated,
            "IPv4 frame cut 16 bytes into the IP header",
            ip_cut,
        ),
        (
            "drop__truncated-vlan-tag",
            DropReason::Truncated,
            "EtherType 802.1Q followed by only 2 bytes",
            vlan_cut,
        ),
        (
            "drop__unknown-ethertype-arp",
            DropReason::UnknownEthertype,
            "ARP request (who has 10.1.0.1), padded to 60 bytes",
            arp,
        ),
        (
            "drop__vlan-too-deep",
            DropReason::VlanTooDeep,
            "three VLAN tags (802.1ad 100, 802.1Q 200, 802.1Q 300), then IPv4 UDP",
            three_tags,
        ),
        (
            "drop__bad-ip-version",
            DropReason::BadIpVersion,
            "an IPv6 packet under EtherType 0x0800",
            v6_in_0800,
        ),
        (
            "drop__bad-ipv4-header-len",
            DropReason::BadIpv4HeaderLen,
            "IPv4 with IHL 4 (16 bytes)",
            ihl4,
        ),
        (
            "drop__bad-ip-length",
            DropReason::BadIpLength,
            "IPv4 total length 200 in a frame holding 46 bytes of IP (checksum valid)",
            long,
        ),
        (
            "drop__bad-ipv4-checksum",
            DropReason::BadIpv4Checksum,
            "IPv4 UDP with one bit of the header checksum flipped",
            bad_sum,
        ),
        (
            "drop__ipv6-ext-chain-too-deep",
            DropReason::Ipv6ExtChainTooDeep,
            "IPv6 with nine destination-options headers before UDP",
            input(s6, r6, 8)
                .ipv6_exts(&[Ipv6Ext::DestinationOptions; 9])
                .build()?,
        ),
        (
            "drop__l4-truncated-udp",
            DropReason::L4Truncated,
            "IPv4 total length 24: only 4 bytes of the UDP header inside the IP packet",
            udp_cut,
        ),
        (
            "drop__l4-truncated-tcp-doff",
            DropReason::L4Truncated,
            "IPv4 TCP SYN with data offset 4 (16 bytes)",
            doff4,
        ),
    ])
}
