//! The daemon's TOML configuration: schema, parsing and validation.
//!
//! A [`Config`] returned by [`Config::load`] or [`Config::parse`] is fully validated:
//! - every name (port, next hop, group) is well formed and unique within its kind;
//! - every reference is resolved to an index into the matching `Vec` of [`Config`]
//!   (`WorkerSpec::ports`, `NextHopSpec::port`, `MemberSpec::nexthop`, `RouteSpec::group`), so
//!   consumers never look names up again and never see a dangling reference;
//! - every value is in range (MACs unicast, prefixes without host bits, bucket counts powers of
//!   two, durations non-zero where zero makes no sense, encap fields consistent with the kind and
//!   both tunnel endpoints of one family);
//! - workers are on distinct cores and every (port, queue) is served by at most one worker; an
//!   AF_XDP port served at all has every queue served (RSS spreads flows over all of them, so an
//!   unserved queue would silently drop a share of the traffic).
//!
//! Every error names the file, the line and the key (`configs/x.toml:14: nexthop[2].port: unknown
//! port "p9"`). Array indices in keys count from 0, in file order. Errors found by the TOML
//! parser or by serde carry a byte span; the key path is recovered by finding that span in the
//! parsed document tree. Errors found by the cross-checks below use `toml::Spanned` positions.
//!
//! What may be left to run time: an AF_XDP port may omit `mac` and `addresses` (read from the
//! interface at start), and a next hop on an AF_XDP port may omit `mac` (resolved from the
//! `[[neighbor]]` entries, else the kernel's neighbour table). Memory and pcap ports have no
//! kernel behind them, so they and their next hops must say everything.
//!
//! `[control]` and `[feed]` describe the control socket and the BGP companion's socket; a
//! `group` given by name is looked up in [`GROUP_FILE`] while loading, so a typo fails here
//! rather than at bind time (groups only known to NSS modules must be given as a gid).
//! `[bgp]` is the group policy of BGP-learnt prefixes; each `[[bgp.policy]]` overrides some of
//! its keys for the prefixes inside its range (the longest covering range wins).
//! `instance.control_socket` moved to `[control] socket` and is refused with a pointer there.
//!
//! Relative paths (pcap files, the control and feed sockets) are resolved against the directory
//! of the config file by [`Config::load`]; [`Config::parse`] keeps them as written.
//!
//! The hash seed: when `instance.seed` is absent it is derived from `instance.name`, so two
//! instances that must hash alike (an anycast cluster behind one ECMP router, Maglev groups that
//! must agree) need either the same name or the same explicit seed. Seed 0 is refused: a fixed,
//! well-known seed makes flow placement predictable to anyone.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// The table types a validated config converts into.
mod tables {
    pub use ecmp_tables::MAX_GROUP_ID;
    pub use ecmp_tables::nexthop::{Action, Encap, EncapKind, HopState, PortInfo};
    pub use ecmp_tables::policy::{HashAlgo, HashFields, HashPolicy};
}

/// Microsoft's default RSS key (the one most NIC drivers ship), 40 bytes.
pub const DEFAULT_RSS_KEY: [u8; RSS_KEY_LEN] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];
/// Length of a Toeplitz RSS key in bytes.
pub const RSS_KEY_LEN: usize = 40;
/// Default MTU of a port (L3 bytes).
pub const DEFAULT_MTU: u16 = 1500;
/// Smallest MTU accepted (the IPv4 minimum, RFC 791).
pub const MIN_MTU: u16 = 68;
/// Largest MTU accepted (the common jumbo-frame ceiling).
pub const MAX_MTU: u16 = 9216;
/// Default flow-cache capacity per worker.
pub const DEFAULT_FLOW_CAPACITY: usize = 1 << 20;
/// Default idle timeout of an established flow.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Default timeout of a flow that has only seen a TCP SYN.
pub const DEFAULT_EMBRYONIC_TIMEOUT: Duration = Duration::from_secs(5);
/// Default timeout of a flow after its TCP FIN or RST.
pub const DEFAULT_FIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Default number of DIR-24-8 tbl8 groups.
pub const DEFAULT_MAX_TBL8: u32 = 65_536;
/// Largest number of tbl8 groups (a tbl24 entry holds a 24-bit group index).
pub const MAX_TBL8: u32 = 1 << 24;
/// Default bucket count of a resilient group.
pub const DEFAULT_BUCKETS: u32 = 256;
/// Default bucket count of a Maglev group: Maglev wants many more slots than members.
pub const DEFAULT_MAGLEV_BUCKETS: u32 = 4096;
/// Largest bucket count of a group.
pub const MAX_BUCKETS: u32 = 65_536;
/// Default idle timer of an `idle` group.
pub const DEFAULT_IDLE_TIMER: Duration = Duration::from_secs(120);
/// Distinct values the `lb-key` hash can produce; more buckets than this are never used.
pub const LB_KEY_VALUES: u32 = 1024;
/// VXLAN's IANA UDP port.
pub const VXLAN_PORT: u16 = 4789;
/// MPLS-in-UDP's IANA UDP port (RFC 7510).
pub const MPLS_UDP_PORT: u16 = 6635;
/// Longest name of a port, next hop, group or instance.
pub const MAX_NAME_LEN: usize = 64;
/// Longest Linux interface name (IFNAMSIZ - 1).
pub const MAX_IFNAME_LEN: usize = 15;
/// Longest Unix socket path (sun_path is 108 bytes including the NUL).
pub const MAX_SOCKET_PATH_LEN: usize = 107;

/// Default permission bits of the control and feed sockets (owner and group read/write).
pub const DEFAULT_SOCKET_MODE: u32 = 0o660;
/// Permission bits a socket `mode` may set (no setuid, setgid or sticky bits).
pub const MAX_SOCKET_MODE: u32 = 0o777;
/// Default number of control connections served at once.
pub const DEFAULT_MAX_CLIENTS: usize = 256;
/// Default longest feed line in bytes (newline excluded).
pub const DEFAULT_FEED_MAX_LINE: usize = 1 << 20;
/// Smallest feed `max_line`: an ExaBGP update for a single prefix is already a few hundred bytes,
/// so anything shorter would discard every update.
pub const MIN_FEED_MAX_LINE: usize = 1024;
/// Largest feed `max_line` (each connection may buffer a line this long).
pub const MAX_FEED_MAX_LINE: usize = 1 << 30;
/// Default time feed changes are collected before one snapshot is built from all of them.
pub const DEFAULT_BATCH_WINDOW: Duration = Duration::ZERO;
/// Default time a down BGP peer's paths keep forwarding (zero: removed at once).
pub const DEFAULT_STALE_TIME: Duration = Duration::ZERO;
/// Default time a route refresh waits for End-of-RIB before unconfirmed paths are dropped.
pub const DEFAULT_REFRESH_TIMEOUT: Duration = Duration::from_secs(30);
/// Where group names are looked up (`control.group`, `feed.group`).
pub const GROUP_FILE: &str = "/etc/group";

/// Where in a config file an error is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file (or the origin label given to [`Config::parse`]).
    pub origin: String,
    /// 1-based line.
    pub line: usize,
    /// Dotted key path (`nexthop[2].port`); empty when the error is not about one key.
    pub key: String,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}:{}", self.origin, self.line)
        } else {
            write!(f, "{}:{}: {}", self.origin, self.line, self.key)
        }
    }
}

/// Why a config could not be loaded. Display is `file:line: key: message`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{origin}: cannot read: {source}")]
    Read {
        /// The path that was read.
        origin: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid TOML.
    #[error("{at}: {message}")]
    Syntax {
        /// Where.
        at: Location,
        /// What the TOML parser said.
        message: String,
    },
    /// Valid TOML that does not fit the schema: an unknown or missing key, a wrong type, a
    /// malformed value (MAC, prefix, duration, name).
    #[error("{at}: {message}")]
    Schema {
        /// Where.
        at: Location,
        /// What is wrong.
        message: String,
    },
    /// Well-formed values that do not fit together or are out of range: unknown or duplicate
    /// names, conflicting settings, a worker core used twice.
    #[error("{at}: {message}")]
    Invalid {
        /// Where.
        at: Location,
        /// What is wrong.
        message: String,
    },
}

impl ConfigError {
    /// Where the error is, if it is about the file's content.
    pub fn location(&self) -> Option<&Location> {
        match self {
            Self::Read { .. } => None,
            Self::Syntax { at, .. } | Self::Schema { at, .. } | Self::Invalid { at, .. } => {
                Some(at)
            }
        }
    }

    /// The 1-based line of the error, if it is about the file's content.
    pub fn line(&self) -> Option<usize> {
        self.location().map(|at| at.line)
    }

    /// The key path of the error (may be empty), if it is about the file's content.
    pub fn key(&self) -> Option<&str> {
        self.location().map(|at| at.key.as_str())
    }
}

// ---------------------------------------------------------------------------------------------
// Validated configuration.
// ---------------------------------------------------------------------------------------------

/// A validated configuration (see the module doc for what "validated" guarantees).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where it was read from (for errors found later, e.g. an interface that does not exist).
    pub origin: String,
    /// `[instance]`.
    pub instance: InstanceSpec,
    /// `[[port]]`, in file order; the index is the port id.
    pub ports: Vec<PortSpec>,
    /// `[[worker]]`, in file order.
    pub workers: Vec<WorkerSpec>,
    /// `[flow_cache]`.
    pub flow_cache: FlowCacheSpec,
    /// `[hash]`: the default hash policy of groups.
    pub hash: HashSpec,
    /// `[fib]`.
    pub fib: FibSpec,
    /// `[[nexthop]]`, in file order.
    pub nexthops: Vec<NextHopSpec>,
    /// `[[group]]`, in file order.
    pub groups: Vec<GroupSpec>,
    /// `[[route]]`, in file order.
    pub routes: Vec<RouteSpec>,
    /// `[[neighbor]]`, in file order: static neighbours, preferred over the kernel's table.
    pub neighbors: Vec<NeighborSpec>,
    /// `[control]`: the control socket, if any.
    pub control: Option<ControlSpec>,
    /// `[feed]`: the BGP companion's socket, if any.
    pub feed: Option<FeedSpec>,
    /// `[bgp]` and `[[bgp.policy]]`: how groups of BGP-learnt prefixes are built.
    pub bgp: BgpSpec,
}

/// `[instance]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSpec {
    /// The instance name.
    pub name: String,
    /// The hash seed: explicit, or derived from the name; never 0.
    pub seed: u64,
    /// Toeplitz key for the `toeplitz` hash.
    pub rss_key: [u8; RSS_KEY_LEN],
}

/// A 48-bit MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// Multicast (and broadcast) addresses have the I/G bit set.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }

    /// All zeroes.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl std::str::FromStr for MacAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("invalid MAC address {s:?} (expected six hex pairs like \"02:00:00:00:00:01\")")
        };
        let sep = if s.contains('-') { '-' } else { ':' };
        let mut out = [0u8; 6];
        let mut parts = s.split(sep);
        for byte in &mut out {
            let part = parts.next().ok_or_else(bad)?;
            if part.len() != 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Self(out))
    }
}

/// An IP prefix with no host bits set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prefix {
    /// The network address (host bits zero).
    pub addr: IpAddr,
    /// Prefix length: at most 32 for IPv4, 128 for IPv6.
    pub len: u8,
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl std::str::FromStr for Prefix {
    type Err = String;

    /// `addr/len`, or a bare address meaning a host route (/32 or /128).
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr_text, len_text) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| format!("invalid prefix {s:?}: {addr_text:?} is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len_text {
            None => max,
            Some(l) => match l.parse::<u8>() {
                Ok(len) if len <= max && !l.starts_with('+') => len,
                _ => return Err(format!("invalid prefix {s:?}: length must be 0..={max}")),
            },
        };
        let masked = mask(addr, len);
        if masked != addr {
            return Err(format!(
                "prefix {s} has host bits set (did you mean {masked}/{len}?)"
            ));
        }
        Ok(Self { addr, len })
    }
}

/// `addr` with everything after the first `len` bits cleared.
fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6((bits & m).into())
        }
    }
}

/// `[[port]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    /// The port name (unique, no `:`).
    pub name: String,
    /// The backend and its settings.
    pub kind: PortKind,
    /// The port's own MAC (unicast, non-zero). `None` only for AF_XDP ports: read from the
    /// interface at start.
    pub mac: Option<MacAddr>,
    /// The port's connected subnets, as addresses with their prefix length. `None` only for
    /// AF_XDP ports: read from the interface at start. Memory and pcap ports without
    /// `addresses` have none (`Some(vec![])`).
    pub addresses: Option<Vec<PortAddr>>,
    /// Largest L3 packet the port may send.
    pub mtu: u16,
    /// Line of the `[[port]]` header, for errors found at run time.
    pub line: usize,
}

impl PortSpec {
    /// Number of rx/tx queues (1 unless AF_XDP).
    pub fn queues(&self) -> u16 {
        match &self.kind {
            PortKind::AfXdp { queues, .. } => *queues,
            PortKind::Memory | PortKind::Pcap { .. } => 1,
        }
    }
}

/// The backend of a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortKind {
    /// In-memory rings (tests, benches).
    Memory,
    /// Reads frames from a pcap file and/or writes sent frames to one (at least one is set).
    Pcap {
        /// Frames to receive.
        input: Option<PathBuf>,
        /// Where sent frames are written.
        output: Option<PathBuf>,
    },
    /// AF_XDP sockets on a Linux interface.
    AfXdp {
        /// The interface name.
        interface: String,
        /// Number of queues, ids `0..queues`.
        queues: u16,
        /// How the XDP program is attached.
        mode: XdpMode,
        /// Ask for zero-copy (driver mode only).
        zero_copy: bool,
    },
}

/// How the XDP program is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum XdpMode {
    /// Native XDP in the driver.
    #[default]
    Driver,
    /// Generic (SKB) XDP: works everywhere, copies.
    Generic,
}

/// One queue of one port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortQueue {
    /// Index into [`Config::ports`].
    pub port: usize,
    /// Queue id on that port.
    pub queue: u16,
}

/// `[[worker]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerSpec {
    /// The CPU core the worker is pinned to (unique).
    pub core: usize,
    /// The queues it polls (non-empty, each served by no other worker).
    pub ports: Vec<PortQueue>,
    /// Line of the `[[worker]]` header.
    pub line: usize,
}

/// `[flow_cache]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowCacheSpec {
    /// Entries per worker (a power of two).
    pub capacity: usize,
    /// Idle timeout of an established flow.
    pub idle_timeout: Duration,
    /// Timeout of a flow that has only seen a SYN (at most `idle_timeout`).
    pub embryonic_timeout: Duration,
    /// Timeout after FIN/RST (at most `idle_timeout`).
    pub fin_timeout: Duration,
}

impl Default for FlowCacheSpec {
    fn default() -> Self {
        Self {
            capacity: DEFAULT_FLOW_CAPACITY,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            embryonic_timeout: DEFAULT_EMBRYONIC_TIMEOUT,
            fin_timeout: DEFAULT_FIN_TIMEOUT,
        }
    }
}

/// Which packet fields feed the hash (mirrors `ecmp_tables::policy::HashFields`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
pub enum HashFieldsSpec {
    /// `"src-ip"`.
    #[serde(rename = "src-ip")]
    SrcIp,
    /// `"dst-ip"`.
    #[serde(rename = "dst-ip")]
    DstIp,
    /// `"src-dst-ip"`.
    #[serde(rename = "src-dst-ip")]
    SrcDstIp,
    /// `"5-tuple"`.
    #[default]
    #[serde(rename = "5-tuple", alias = "five-tuple")]
    FiveTuple,
}

/// The hash function (mirrors `ecmp_tables::policy::HashAlgo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HashAlgoSpec {
    /// `"fast"`.
    #[default]
    Fast,
    /// `"crc32c"`.
    Crc32c,
    /// `"toeplitz"`.
    Toeplitz,
    /// `"lb-key"`.
    LbKey,
}

/// A hash policy (mirrors `ecmp_tables::policy::HashPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct HashSpec {
    /// Fields that feed the hash.
    pub fields: HashFieldsSpec,
    /// The hash function.
    pub algo: HashAlgoSpec,
    /// Both directions of a flow hash alike.
    pub symmetric: bool,
    /// Hash inner headers of tunnelled packets.
    pub inner: bool,
}

/// `[fib]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FibSpec {
    /// Number of DIR-24-8 tbl8 groups (1..=2^24).
    pub max_tbl8: u32,
}

impl Default for FibSpec {
    fn default() -> Self {
        Self {
            max_tbl8: DEFAULT_MAX_TBL8,
        }
    }
}

/// A next hop's initial state (mirrors `ecmp_tables::nexthop::HopState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HopStateSpec {
    /// Owns buckets, takes new flows.
    #[default]
    Active,
    /// Keeps cached flows, takes no new ones.
    Draining,
    /// Gone.
    Failed,
}

/// What kind of tunnel (mirrors `ecmp_tables::nexthop::EncapKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EncapKindSpec {
    /// IP-in-IP.
    IpIp,
    /// GRE with an optional key.
    Gre {
        /// RFC 2890 key.
        key: Option<u32>,
    },
    /// VXLAN.
    Vxlan {
        /// 24-bit VNI.
        vni: u32,
        /// Inner destination MAC; `None` uses the hop's MAC.
        inner_mac: Option<MacAddr>,
        /// Outer UDP destination port.
        udp_port: u16,
    },
    /// GUE variant 0.
    Gue {
        /// Outer UDP destination port.
        udp_port: u16,
    },
    /// MPLS in UDP, one label.
    MplsUdp {
        /// 20-bit label, 16 or more (0..=15 are reserved).
        label: u32,
        /// Outer UDP destination port.
        udp_port: u16,
    },
}

/// Outer tunnel (mirrors `ecmp_tables::nexthop::Encap`); `src` and `dst` are of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EncapSpec {
    /// The tunnel kind and its fields.
    pub kind: EncapKindSpec,
    /// Outer source (this forwarder).
    pub src: IpAddr,
    /// Outer destination (defaults to the hop's address).
    pub dst: IpAddr,
}

/// What is done to packets sent to a hop (mirrors `ecmp_tables::nexthop::Action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ActionSpec {
    /// Rewrite MACs, decrement TTL.
    #[default]
    Rewrite,
    /// Encapsulate.
    Encap(EncapSpec),
}

/// `[[nexthop]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextHopSpec {
    /// Unique name.
    pub name: String,
    /// The hop's address (unicast).
    pub address: IpAddr,
    /// Index into [`Config::ports`].
    pub port: usize,
    /// Destination MAC (unicast, non-zero). `None` only on AF_XDP ports: resolved at run time
    /// (a `[[neighbor]]` entry first, else the kernel's neighbour table).
    pub mac: Option<MacAddr>,
    /// Default weight (>= 1).
    pub weight: u32,
    /// Initial state.
    pub state: HopStateSpec,
    /// Rewrite or encapsulate.
    pub action: ActionSpec,
    /// Line of the `[[nexthop]]` header.
    pub line: usize,
}

/// How a group reacts to hops coming and going (see ARCHITECTURE.md, resilient tables).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GroupMode {
    /// A returning hop gets no buckets until cleared.
    Manual,
    /// A returning hop gets back exactly the buckets it had.
    #[default]
    AutoRecovery,
    /// Buckets move to underweight hops once idle (or after the unbalanced timer).
    Idle,
    /// The table is a pure function of seed, members and weights.
    Maglev,
}

/// A member of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MemberSpec {
    /// Index into [`Config::nexthops`].
    pub nexthop: usize,
    /// Weight in this group (>= 1; the hop's own weight unless overridden).
    pub weight: u32,
}

/// `[[group]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSpec {
    /// Unique name.
    pub name: String,
    /// Resilience mode.
    pub mode: GroupMode,
    /// Bucket count: a power of two in 1..=65536, at least the member count.
    pub buckets: u32,
    /// Members (distinct hops); may be empty.
    pub members: Vec<MemberSpec>,
    /// `idle` mode: how long a bucket must be idle before it moves.
    pub idle_timer: Duration,
    /// `idle` mode: move buckets anyway after this long unbalanced; zero disables.
    pub unbalanced_timer: Duration,
    /// `[hash]` with this group's overrides applied.
    pub hash: HashSpec,
    /// Line of the `[[group]]` header.
    pub line: usize,
}

/// `[[route]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// The destination prefix (unique).
    pub prefix: Prefix,
    /// Index into [`Config::groups`].
    pub group: usize,
    /// Line of the `[[route]]` header.
    pub line: usize,
}

/// An address of a port with the length of its connected subnet (`198.18.1.254/24`); unlike
/// [`Prefix`], host bits are the point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortAddr {
    /// The port's own address (unicast).
    pub addr: IpAddr,
    /// The subnet's prefix length: at most 32 for IPv4, 128 for IPv6.
    pub len: u8,
}

impl PortAddr {
    /// The connected subnet (`198.18.1.0/24`).
    pub fn subnet(&self) -> Prefix {
        Prefix {
            addr: mask(self.addr, self.len),
            len: self.len,
        }
    }
}

impl fmt::Display for PortAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl std::str::FromStr for PortAddr {
    type Err = String;

    /// `addr/len`; the length is required (an interface address always has one).
    fn from_str(s: &str) -> Result<Self, String> {
        let Some((addr_text, len_text)) = s.split_once('/') else {
            return Err(format!(
                "invalid port address {s:?}: expected address/length like \"198.18.1.254/24\""
            ));
        };
        let addr: IpAddr = addr_text.parse().map_err(|_| {
            format!("invalid port address {s:?}: {addr_text:?} is not an IP address")
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        match len_text.parse::<u8>() {
            Ok(len) if len <= max && !len_text.starts_with('+') => Ok(Self { addr, len }),
            _ => Err(format!(
                "invalid port address {s:?}: length must be 0..={max}"
            )),
        }
    }
}

/// `[[neighbor]]`: a static neighbour, used instead of the kernel's entry for its address (for
/// configured next hops and BGP next hops alike).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighborSpec {
    /// The neighbour's address (unicast, unique among neighbours).
    pub address: IpAddr,
    /// Its MAC (unicast, non-zero).
    pub mac: MacAddr,
    /// Index into [`Config::ports`] of the port it is reached through; `None`: the port whose
    /// connected subnet holds the address.
    pub port: Option<usize>,
    /// Line of the `[[neighbor]]` header.
    pub line: usize,
}

/// `[control]`: the control socket (mirrors `ecmp_control::ctl_server::CtlConfig` plus where and
/// as which group the socket file is created).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlSpec {
    /// The socket path (at most 107 bytes; relative paths are resolved by [`Config::load`]).
    pub socket: PathBuf,
    /// Permission bits of the socket file (at most 0o777; default 0o660).
    pub mode: u32,
    /// Group id the socket file is given; `None` keeps the daemon's group. A group name in the
    /// file is resolved through [`GROUP_FILE`] at load time.
    pub group: Option<u32>,
    /// Peer uids allowed besides the daemon's own effective uid (distinct).
    pub allowed_uids: Vec<u32>,
    /// Peer gids allowed (distinct).
    pub allowed_gids: Vec<u32>,
    /// Connections served at once (>= 1; default 256).
    pub max_clients: usize,
    /// Line of the `[control]` header.
    pub line: usize,
}

/// `[feed]`: the socket the BGP companion writes to (mirrors
/// `ecmp_control::feed_server::FeedServerConfig`, `ecmp_control::control::ControlConfig` and
/// `ecmp_control::rib::RibConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedSpec {
    /// The socket path (at most 107 bytes; relative paths are resolved by [`Config::load`]).
    pub socket: PathBuf,
    /// Permission bits of the socket file (at most 0o777; default 0o660).
    pub mode: u32,
    /// Group id the socket file is given; `None` keeps the daemon's group.
    pub group: Option<u32>,
    /// Peer uids allowed besides the daemon's own effective uid (distinct).
    pub allowed_uids: Vec<u32>,
    /// Peer gids allowed (distinct).
    pub allowed_gids: Vec<u32>,
    /// Longest accepted line in bytes, newline excluded (1 KiB..=1 GiB; default 1 MiB).
    pub max_line: usize,
    /// How long changes are collected before one snapshot is built (default zero: whatever is
    /// queued when the first change is applied goes into one snapshot, see `ControlConfig`).
    pub batch_window: Duration,
    /// How long a down peer's paths keep forwarding (zero removes them at once, the default).
    pub stale_time: Duration,
    /// How long a refresh waits for End-of-RIB before unconfirmed paths are dropped (> 0;
    /// default 30 s).
    pub refresh_timeout: Duration,
    /// Line of the `[feed]` header.
    pub line: usize,
}

/// What BGP-learnt next hops do to packets (mirrors `ecmp_control::builder::ActionTemplate`):
/// like [`ActionSpec`], but an encapsulation's outer destination is always the next hop itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ActionTemplateSpec {
    /// Rewrite MACs, decrement TTL.
    #[default]
    Rewrite,
    /// Encapsulate from `src` to the next hop's address.
    Encap {
        /// The tunnel kind and its fields.
        kind: EncapKindSpec,
        /// This forwarder's tunnel endpoint (next hops of the other family cannot use it).
        src: IpAddr,
    },
}

/// How the group of a BGP-learnt prefix is built (mirrors `ecmp_control::builder::GroupPolicy`,
/// plus the `idle` mode's timers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GroupPolicySpec {
    /// Resilience mode (default `auto-recovery`).
    pub mode: GroupMode,
    /// Bucket count: a power of two in 1..=65536 (default 256, 4096 for `maglev`).
    pub buckets: u32,
    /// `idle` mode: how long a bucket must be idle before it moves.
    pub idle_timer: Duration,
    /// `idle` mode: move buckets anyway after this long unbalanced; zero disables.
    pub unbalanced_timer: Duration,
    /// `[hash]` with the policy's overrides applied.
    pub hash: HashSpec,
    /// Rewrite or encapsulate.
    pub action: ActionTemplateSpec,
}

impl GroupPolicySpec {
    /// The built-in policy: `auto-recovery`, 256 buckets, `hash`, rewrite.
    pub fn with_hash(hash: HashSpec) -> Self {
        Self {
            mode: GroupMode::AutoRecovery,
            buckets: DEFAULT_BUCKETS,
            idle_timer: DEFAULT_IDLE_TIMER,
            unbalanced_timer: Duration::ZERO,
            hash,
            action: ActionTemplateSpec::Rewrite,
        }
    }
}

/// `[[bgp.policy]]`: the policy of prefixes inside `range` (mirrors
/// `ecmp_control::builder::PrefixPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PrefixPolicySpec {
    /// Prefixes equal to or more specific than this one match (unique among policies).
    pub range: Prefix,
    /// `[bgp]` with this entry's overrides applied.
    pub group: GroupPolicySpec,
    /// Line of the `[[bgp.policy]]` header.
    pub line: usize,
}

impl PrefixPolicySpec {
    /// Whether `prefix` lies inside the range.
    pub fn covers(&self, prefix: &Prefix) -> bool {
        prefix.addr.is_ipv4() == self.range.addr.is_ipv4()
            && prefix.len >= self.range.len
            && mask(prefix.addr, self.range.len) == self.range.addr
    }
}

/// `[bgp]`: how groups of BGP-learnt prefixes are built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpSpec {
    /// The keys of `[bgp]` itself: the policy of prefixes no range covers.
    pub default_policy: GroupPolicySpec,
    /// `[[bgp.policy]]`, in file order (ranges distinct).
    pub policies: Vec<PrefixPolicySpec>,
}

impl BgpSpec {
    /// The policy of `prefix`: the longest covering range's, else the default.
    pub fn policy_for(&self, prefix: &Prefix) -> &GroupPolicySpec {
        self.policies
            .iter()
            .filter(|p| p.covers(prefix))
            .max_by_key(|p| p.range.len)
            .map_or(&self.default_policy, |p| &p.group)
    }
}

impl Config {
    /// Reads and validates a config file. Relative paths inside are resolved against the file's
    /// directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            origin: origin.clone(),
            source,
        })?;
        let base = path.parent().filter(|p| !p.as_os_str().is_empty());
        parse_with_base(&text, &origin, base)
    }

    /// Validates config text; `origin` names it in errors. Paths are kept as written.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        parse_with_base(text, origin, None)
    }

    /// Index of the port named `name`.
    pub fn port_index(&self, name: &str) -> Option<usize> {
        self.ports.iter().position(|p| p.name == name)
    }

    /// Index of the next hop named `name`.
    pub fn nexthop_index(&self, name: &str) -> Option<usize> {
        self.nexthops.iter().position(|h| h.name == name)
    }

    /// Index of the group named `name`.
    pub fn group_index(&self, name: &str) -> Option<usize> {
        self.groups.iter().position(|g| g.name == name)
    }

    /// An error about this config found after loading (e.g. an interface that does not exist),
    /// in the same `file:line: key: message` shape.
    pub fn error_at(&self, line: usize, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            at: Location {
                origin: self.origin.clone(),
                line,
                key: key.to_owned(),
            },
            message: message.into(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Value types with their own syntax: their Deserialize errors get the value's span from toml.
// ---------------------------------------------------------------------------------------------

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for Prefix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

/// A socket file's group as written: a numeric gid (an integer, or a string of digits as
/// `chown` takes it) or a group name, looked up later.
#[derive(Debug, Clone, PartialEq, Eq)]
enum GroupRef {
    Gid(u32),
    Name(String),
}

impl<'de> Deserialize<'de> for GroupRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = GroupRef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a group name or a numeric gid")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<GroupRef, E> {
                u32::try_from(v)
                    .map(GroupRef::Gid)
                    .map_err(|_| E::custom(format!("gid {v} is outside 0..={}", u32::MAX)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<GroupRef, E> {
                u32::try_from(v)
                    .map(GroupRef::Gid)
                    .map_err(|_| E::custom(format!("gid {v} is outside 0..={}", u32::MAX)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<GroupRef, E> {
                if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
                    return v
                        .parse()
                        .map(GroupRef::Gid)
                        .map_err(|_| E::custom(format!("gid {v} is outside 0..={}", u32::MAX)));
                }
                if v.is_empty() || v.contains(|c: char| c == ':' || c.is_whitespace()) {
                    return Err(E::custom(format!("invalid group name {v:?}")));
                }
                Ok(GroupRef::Name(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

/// The gid of group `name` in the text of a group file (`name:password:gid:members` lines);
/// `None` when no line names it.
fn gid_in_group_file(text: &str, name: &str) -> Option<u32> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let mut fields = l.split(':');
        if fields.next() != Some(name) {
            return None;
        }
        fields.nth(1)?.trim().parse().ok()
    })
}

/// A duration written as `"300s"`, `"120ms"`, `"5m"`, `"1h"`, `"250us"` or sums like `"1m30s"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Dur(Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s).map(Dur).map_err(de::Error::custom)
    }
}

/// Parses `"300s"`, `"120ms"`, `"5m"`, `"1h"`, `"250us"`, `"1m30s"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "invalid duration {s:?} (expected a number and a unit: \"300s\", \"120ms\", \"5m\", \"1h\", \"250us\")"
        )
    };
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let part = match &rest[..unit_len] {
            "us" | "µs" => Some(Duration::from_micros(n)),
            "ms" => Some(Duration::from_millis(n)),
            "s" => Some(Duration::from_secs(n)),
            "m" => n.checked_mul(60).map(Duration::from_secs),
            "h" => n.checked_mul(3600).map(Duration::from_secs),
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total = part
            .and_then(|p| total.checked_add(p))
            .ok_or_else(|| format!("duration {s:?} is too large"))?;
    }
    Ok(total)
}

/// A name of a port, hop, group or instance: `[A-Za-z0-9_.-]`, 1..=64 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Name(String);

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
        if s.is_empty() || s.len() > MAX_NAME_LEN || !s.chars().all(ok_char) {
            return Err(de::Error::custom(format!(
                "invalid name {s:?} (use 1 to {MAX_NAME_LEN} of A-Z a-z 0-9 _ . -)"
            )));
        }
        Ok(Self(s))
    }
}

/// The hash seed: a non-negative integer, or a string in decimal or `0x` hex (TOML integers
/// stop at 2^63 - 1).
#[derive(Debug, Clone, Copy)]
struct Seed(u64);

impl<'de> Deserialize<'de> for Seed {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Seed;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative integer or a string like \"0x1234abcd\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Seed, E> {
                u64::try_from(v)
                    .map(Seed)
                    .map_err(|_| E::custom("seed must not be negative"))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Seed, E> {
                Ok(Seed(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Seed, E> {
                let t = v.replace('_', "");
                let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                    Some(hex) => u64::from_str_radix(hex, 16),
                    None => t.parse(),
                };
                parsed.map(Seed).map_err(|_| {
                    E::custom(format!("invalid seed {v:?} (a u64, decimal or 0x hex)"))
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// The Toeplitz key: 40 bytes as 80 hex digits, optionally separated by `:`.
#[derive(Debug, Clone, Copy)]
struct RssKey([u8; RSS_KEY_LEN]);

impl<'de> Deserialize<'de> for RssKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let hex: String = s
            .chars()
            .filter(|c| !matches!(c, ':' | ' ' | '_'))
            .collect();
        let bad = || {
            de::Error::custom(format!(
                "invalid rss_key: expected {RSS_KEY_LEN} bytes as {} hex digits",
                RSS_KEY_LEN * 2
            ))
        };
        if hex.len() != RSS_KEY_LEN * 2 || !hex.is_ascii() {
            return Err(bad());
        }
        let mut key = [0u8; RSS_KEY_LEN];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Self(key))
    }
}

// ---------------------------------------------------------------------------------------------
// The file as written (serde), before cross-checks.
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    instance: Spanned<RawInstance>,
    #[serde(default)]
    port: Vec<Spanned<RawPort>>,
    #[serde(default)]
    worker: Vec<Spanned<RawWorker>>,
    #[serde(default)]
    flow_cache: Option<RawFlowCache>,
    #[serde(default)]
    hash: Option<RawHash>,
    #[serde(default)]
    fib: Option<RawFib>,
    #[serde(default)]
    nexthop: Vec<Spanned<RawNextHop>>,
    #[serde(default)]
    group: Vec<Spanned<RawGroup>>,
    #[serde(default)]
    route: Vec<Spanned<RawRoute>>,
    #[serde(default)]
    neighbor: Vec<Spanned<RawNeighbor>>,
    control: Option<Spanned<RawControl>>,
    feed: Option<Spanned<RawFeed>>,
    bgp: Option<Spanned<RawBgp>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInstance {
    name: Name,
    seed: Option<Spanned<Seed>>,
    rss_key: Option<RssKey>,
    /// Moved to `[control] socket`; kept only to say so.
    control_socket: Option<Spanned<de::IgnoredAny>>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum RawPortKind {
    Memory,
    Pcap,
    Afxdp,
}

impl RawPortKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Pcap => "pcap",
            Self::Afxdp => "afxdp",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPort {
    name: Spanned<Name>,
    kind: Spanned<RawPortKind>,
    mac: Option<Spanned<MacAddr>>,
    /// Parsed by `build_port`: serde would blame the whole array for one bad element.
    addresses: Option<Vec<Spanned<String>>>,
    mtu: Option<Spanned<u16>>,
    input: Option<Spanned<PathBuf>>,
    output: Option<Spanned<PathBuf>>,
    interface: Option<Spanned<String>>,
    queues: Option<Spanned<u16>>,
    mode: Option<Spanned<XdpMode>>,
    zero_copy: Option<Spanned<bool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorker {
    core: Spanned<usize>,
    ports: Spanned<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFlowCache {
    capacity: Option<Spanned<usize>>,
    idle_timeout: Option<Spanned<Dur>>,
    embryonic_timeout: Option<Spanned<Dur>>,
    fin_timeout: Option<Spanned<Dur>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHash {
    fields: Option<HashFieldsSpec>,
    algo: Option<HashAlgoSpec>,
    symmetric: Option<bool>,
    inner: Option<bool>,
}

impl RawHash {
    fn over(&self, base: HashSpec) -> HashSpec {
        HashSpec {
            fields: self.fields.unwrap_or(base.fields),
            algo: self.algo.unwrap_or(base.algo),
            symmetric: self.symmetric.unwrap_or(base.symmetric),
            inner: self.inner.unwrap_or(base.inner),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFib {
    max_tbl8: Option<Spanned<u32>>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum RawActionKind {
    Rewrite,
    Encap,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNextHop {
    name: Spanned<Name>,
    address: Spanned<IpAddr>,
    port: Spanned<String>,
    mac: Option<Spanned<MacAddr>>,
    weight: Option<Spanned<u32>>,
    state: Option<HopStateSpec>,
    action: Option<Spanned<RawActionKind>>,
    encap: Option<Spanned<RawEncap>>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum RawEncapKind {
    Ipip,
    Gre,
    Vxlan,
    Gue,
    MplsUdp,
}

impl RawEncapKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ipip => "ipip",
            Self::Gre => "gre",
            Self::Vxlan => "vxlan",
            Self::Gue => "gue",
            Self::MplsUdp => "mpls-udp",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEncap {
    kind: Spanned<RawEncapKind>,
    src: Spanned<IpAddr>,
    dst: Option<Spanned<IpAddr>>,
    key: Option<Spanned<u32>>,
    vni: Option<Spanned<u32>>,
    inner_mac: Option<Spanned<MacAddr>>,
    udp_port: Option<Spanned<u16>>,
    label: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    name: Spanned<Name>,
    mode: Option<Spanned<GroupMode>>,
    buckets: Option<Spanned<u32>>,
    #[serde(default)]
    members: Vec<Spanned<RawMember>>,
    idle_timer: Option<Spanned<Dur>>,
    unbalanced_timer: Option<Spanned<Dur>>,
    hash: Option<RawHash>,
}

/// A group member: `"s1"` or `{ nexthop = "s1", weight = 2 }`.
struct RawMember {
    nexthop: String,
    weight: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMemberTable {
    nexthop: String,
    weight: Option<u32>,
}

impl<'de> Deserialize<'de> for RawMember {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawMember;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a next-hop name or a table { nexthop = \"name\", weight = N }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawMember, E> {
                Ok(RawMember {
                    nexthop: v.to_owned(),
                    weight: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawMember, A::Error> {
                let t = RawMemberTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(RawMember {
                    nexthop: t.nexthop,
                    weight: t.weight,
                })
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    prefix: Spanned<Prefix>,
    group: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNeighbor {
    address: Spanned<IpAddr>,
    mac: Spanned<MacAddr>,
    port: Option<Spanned<String>>,
}

/// The keys `[control]` and `[feed]` share.
struct RawSocket {
    socket: Spanned<PathBuf>,
    mode: Option<Spanned<i64>>,
    group: Option<Spanned<GroupRef>>,
    allowed_uids: Option<Vec<Spanned<u32>>>,
    allowed_gids: Option<Vec<Spanned<u32>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawControl {
    socket: Spanned<PathBuf>,
    mode: Option<Spanned<i64>>,
    group: Option<Spanned<GroupRef>>,
    allowed_uids: Option<Vec<Spanned<u32>>>,
    allowed_gids: Option<Vec<Spanned<u32>>>,
    max_clients: Option<Spanned<usize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFeed {
    socket: Spanned<PathBuf>,
    mode: Option<Spanned<i64>>,
    group: Option<Spanned<GroupRef>>,
    allowed_uids: Option<Vec<Spanned<u32>>>,
    allowed_gids: Option<Vec<Spanned<u32>>>,
    max_line: Option<Spanned<usize>>,
    batch_window: Option<Spanned<Dur>>,
    stale_time: Option<Spanned<Dur>>,
    refresh_timeout: Option<Spanned<Dur>>,
}

/// The group-policy keys `[bgp]` and `[[bgp.policy]]` share.
#[derive(Default)]
struct RawPolicy {
    mode: Option<Spanned<GroupMode>>,
    buckets: Option<Spanned<u32>>,
    idle_timer: Option<Spanned<Dur>>,
    unbalanced_timer: Option<Spanned<Dur>>,
    hash: Option<RawHash>,
    action: Option<Spanned<RawActionKind>>,
    encap: Option<Spanned<RawEncap>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBgp {
    #[serde(default)]
    policy: Vec<Spanned<RawBgpPolicy>>,
    mode: Option<Spanned<GroupMode>>,
    buckets: Option<Spanned<u32>>,
    idle_timer: Option<Spanned<Dur>>,
    unbalanced_timer: Option<Spanned<Dur>>,
    hash: Option<RawHash>,
    action: Option<Spanned<RawActionKind>>,
    encap: Option<Spanned<RawEncap>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBgpPolicy {
    prefix: Spanned<Prefix>,
    mode: Option<Spanned<GroupMode>>,
    buckets: Option<Spanned<u32>>,
    idle_timer: Option<Spanned<Dur>>,
    unbalanced_timer: Option<Spanned<Dur>>,
    hash: Option<RawHash>,
    action: Option<Spanned<RawActionKind>>,
    encap: Option<Spanned<RawEncap>>,
}

// ---------------------------------------------------------------------------------------------
// Positions.
// ---------------------------------------------------------------------------------------------

/// Turns byte spans into `file:line` locations.
struct Ctx<'a> {
    origin: &'a str,
    text: &'a str,
}

impl Ctx<'_> {
    fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn at(&self, span: Range<usize>, key: impl Into<String>) -> Location {
        Location {
            origin: self.origin.to_owned(),
            line: self.line(span.start),
            key: key.into(),
        }
    }

    fn invalid(
        &self,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            at: self.at(span, key),
            message: message.into(),
        }
    }
}

/// The dotted key path of the deepest key or value in `table` whose span contains `target`.
/// Table headers (`[[port]]`) span only the header, so every subtree is searched, not just
/// those whose span contains the target.
fn key_path(table: &DeTable<'_>, target: &Range<usize>) -> Option<String> {
    fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
        outer.start <= inner.start && inner.end <= outer.end
    }
    fn in_value(value: &Spanned<DeValue<'_>>, path: &str, target: &Range<usize>) -> Option<String> {
        match value.get_ref() {
            DeValue::Table(t) => in_table(t, path, target),
            DeValue::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
                let item_path = format!("{path}[{i}]");
                in_value(item, &item_path, target)
                    .or_else(|| contains(&item.span(), target).then_some(item_path))
            }),
            _ => None,
        }
        .or_else(|| contains(&value.span(), target).then(|| path.to_owned()))
    }
    fn in_table(table: &DeTable<'_>, path: &str, target: &Range<usize>) -> Option<String> {
        table.iter().find_map(|(key, value)| {
            let key_path = if path.is_empty() {
                key.get_ref().to_string()
            } else {
                format!("{path}.{}", key.get_ref())
            };
            if contains(&key.span(), target) {
                return Some(key_path);
            }
            in_value(value, &key_path, target)
        })
    }
    in_table(table, "", target)
}

/// Appends the field a serde "missing field `x`" message names, so the key says what to add.
fn with_missing_field(path: String, message: &str) -> String {
    let field = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'));
    match field {
        Some(f) if path.is_empty() => f.to_owned(),
        Some(f) => format!("{path}.{f}"),
        None => path,
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing and validation.
// ---------------------------------------------------------------------------------------------

fn parse_with_base(text: &str, origin: &str, base: Option<&Path>) -> Result<Config, ConfigError> {
    let ctx = Ctx { origin, text };
    let doc = DeTable::parse(text).map_err(|e| ConfigError::Syntax {
        at: ctx.at(e.span().unwrap_or(0..0), ""),
        message: e.message().to_owned(),
    })?;
    let tree = doc.get_ref().clone();
    let raw = RawConfig::deserialize(toml::de::Deserializer::from(doc)).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let path = key_path(&tree, &span).unwrap_or_default();
        ConfigError::Schema {
            at: ctx.at(span, with_missing_field(path, e.message())),
            message: e.message().to_owned(),
        }
    })?;
    let resolve = |p: PathBuf| match base {
        Some(dir) if p.is_relative() => dir.join(p),
        _ => p,
    };
    build(&ctx, raw, &resolve)
}

/// Names seen so far of one kind, with where each was first defined.
struct Names<'a> {
    what: &'static str,
    seen: HashMap<String, (usize, usize)>,
    ctx: &'a Ctx<'a>,
}

impl<'a> Names<'a> {
    fn new(ctx: &'a Ctx<'a>, what: &'static str) -> Self {
        Self {
            what,
            seen: HashMap::new(),
            ctx,
        }
    }

    fn add(&mut self, name: &Spanned<Name>, index: usize, key: &str) -> Result<(), ConfigError> {
        let line = self.ctx.line(name.span().start);
        if let Some(&(_, first)) = self.seen.get(&name.get_ref().0) {
            return Err(self.ctx.invalid(
                name.span(),
                key,
                format!(
                    "duplicate {} name {:?} (first defined on line {first})",
                    self.what,
                    name.get_ref().0
                ),
            ));
        }
        self.seen.insert(name.get_ref().0.clone(), (index, line));
        Ok(())
    }

    fn find(&self, name: &Spanned<String>, key: &str) -> Result<usize, ConfigError> {
        self.seen
            .get(name.get_ref())
            .map(|&(i, _)| i)
            .ok_or_else(|| {
                self.ctx.invalid(
                    name.span(),
                    key,
                    format!("unknown {} {:?}", self.what, name.get_ref()),
                )
            })
    }
}

fn build(
    ctx: &Ctx<'_>,
    raw: RawConfig,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<Config, ConfigError> {
    let instance = build_instance(ctx, raw.instance)?;

    if raw.port.is_empty() {
        return Err(ctx.invalid(0..0, "port", "at least one [[port]] is required"));
    }
    if raw.port.len() > usize::from(u16::MAX) {
        return Err(ctx.invalid(0..0, "port", "too many ports"));
    }
    let mut port_names = Names::new(ctx, "port");
    let mut ports = Vec::with_capacity(raw.port.len());
    for (i, p) in raw.port.into_iter().enumerate() {
        port_names.add(&p.get_ref().name, i, &format!("port[{i}].name"))?;
        ports.push(build_port(ctx, i, p, resolve)?);
    }
    check_interfaces(ctx, &ports)?;

    if raw.worker.is_empty() {
        return Err(ctx.invalid(0..0, "worker", "at least one [[worker]] is required"));
    }
    let workers = build_workers(ctx, raw.worker, &port_names, &ports)?;
    let flow_cache = build_flow_cache(ctx, raw.flow_cache)?;
    let hash = raw.hash.unwrap_or_default().over(HashSpec::default());
    let fib = build_fib(ctx, raw.fib)?;

    let mut hop_names = Names::new(ctx, "next hop");
    let mut nexthops = Vec::with_capacity(raw.nexthop.len());
    for (i, h) in raw.nexthop.into_iter().enumerate() {
        hop_names.add(&h.get_ref().name, i, &format!("nexthop[{i}].name"))?;
        nexthops.push(build_nexthop(ctx, i, h, &port_names, &ports)?);
    }

    // Group ids are index + 1 (id 0 means "no route") and must fit a FIB entry.
    if raw.group.len() > tables::MAX_GROUP_ID as usize {
        return Err(ctx.invalid(
            0..0,
            "group",
            format!("more than {} groups", tables::MAX_GROUP_ID),
        ));
    }
    let mut group_names = Names::new(ctx, "group");
    let mut groups = Vec::with_capacity(raw.group.len());
    for (i, g) in raw.group.into_iter().enumerate() {
        group_names.add(&g.get_ref().name, i, &format!("group[{i}].name"))?;
        groups.push(build_group(ctx, i, g, &hop_names, &nexthops, hash)?);
    }

    let mut routes = Vec::with_capacity(raw.route.len());
    let mut prefixes: HashMap<Prefix, usize> = HashMap::new();
    for (i, r) in raw.route.into_iter().enumerate() {
        let line = ctx.line(r.span().start);
        let r = r.into_inner();
        let prefix = *r.prefix.get_ref();
        if let Some(first) = prefixes.insert(prefix, ctx.line(r.prefix.span().start)) {
            return Err(ctx.invalid(
                r.prefix.span(),
                format!("route[{i}].prefix"),
                format!("duplicate route for {prefix} (first on line {first})"),
            ));
        }
        let group = group_names.find(&r.group, &format!("route[{i}].group"))?;
        routes.push(RouteSpec {
            prefix,
            group,
            line,
        });
    }

    let neighbors = build_neighbors(ctx, raw.neighbor, &port_names, &nexthops)?;
    let control = raw
        .control
        .map(|c| build_control(ctx, c, resolve))
        .transpose()?;
    let feed = match raw.feed {
        None => None,
        Some(f) => {
            let span = f.get_ref().socket.span();
            let feed = build_feed(ctx, f, resolve)?;
            if let Some(c) = control.as_ref().filter(|c| c.socket == feed.socket) {
                return Err(ctx.invalid(
                    span,
                    "feed.socket",
                    format!(
                        "{} is also the control socket (line {})",
                        feed.socket.display(),
                        c.line
                    ),
                ));
            }
            Some(feed)
        }
    };
    let bgp = build_bgp(ctx, raw.bgp, hash)?;

    Ok(Config {
        origin: ctx.origin.to_owned(),
        instance,
        ports,
        workers,
        flow_cache,
        hash,
        fib,
        nexthops,
        groups,
        routes,
        neighbors,
        control,
        feed,
        bgp,
    })
}

fn build_neighbors(
    ctx: &Ctx<'_>,
    raw: Vec<Spanned<RawNeighbor>>,
    port_names: &Names<'_>,
    nexthops: &[NextHopSpec],
) -> Result<Vec<NeighborSpec>, ConfigError> {
    let mut seen: HashMap<IpAddr, usize> = HashMap::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, n) in raw.into_iter().enumerate() {
        let line = ctx.line(n.span().start);
        let n = n.into_inner();
        let key = |k: &str| format!("neighbor[{i}].{k}");
        let address = check_unicast_ip(ctx, &n.address, key("address"))?;
        if let Some(first) = seen.insert(address, line) {
            return Err(ctx.invalid(
                n.address.span(),
                key("address"),
                format!("duplicate neighbor {address} (first on line {first})"),
            ));
        }
        let mac = check_unicast_mac(ctx, &n.mac, key("mac"))?;
        let port = match &n.port {
            Some(p) => Some(port_names.find(p, &key("port"))?),
            None => None,
        };
        // A next hop with its own MAC or port and a neighbour entry saying otherwise would
        // leave it to load order which one wins.
        for h in nexthops.iter().filter(|h| h.address == address) {
            if let Some(hop_mac) = h.mac.filter(|m| *m != mac) {
                return Err(ctx.invalid(
                    n.mac.span(),
                    key("mac"),
                    format!(
                        "{mac} conflicts with next hop {:?} (line {}), which has mac {hop_mac}",
                        h.name, h.line
                    ),
                ));
            }
            if let (Some(p), Some(span)) = (port, n.port.as_ref().map(Spanned::span))
                && p != h.port
            {
                return Err(ctx.invalid(
                    span,
                    key("port"),
                    format!(
                        "next hop {:?} (line {}) with this address is on another port",
                        h.name, h.line
                    ),
                ));
            }
        }
        out.push(NeighborSpec {
            address,
            mac,
            port,
            line,
        });
    }
    Ok(out)
}

fn build_bgp(
    ctx: &Ctx<'_>,
    raw: Option<Spanned<RawBgp>>,
    hash: HashSpec,
) -> Result<BgpSpec, ConfigError> {
    let builtin = GroupPolicySpec::with_hash(hash);
    let Some(raw) = raw else {
        return Ok(BgpSpec {
            default_policy: builtin,
            policies: Vec::new(),
        });
    };
    let header = raw.span();
    let r = raw.into_inner();
    let buckets_explicit = r.buckets.is_some();
    let keys = RawPolicy {
        mode: r.mode,
        buckets: r.buckets,
        idle_timer: r.idle_timer,
        unbalanced_timer: r.unbalanced_timer,
        hash: r.hash,
        action: r.action,
        encap: r.encap,
    };
    let default_policy = build_policy(ctx, "bgp", header, keys, &builtin, false)?;
    let mut ranges: HashMap<Prefix, usize> = HashMap::new();
    let mut policies = Vec::with_capacity(r.policy.len());
    for (i, p) in r.policy.into_iter().enumerate() {
        let header = p.span();
        let line = ctx.line(header.start);
        let p = p.into_inner();
        let prefix = format!("bgp.policy[{i}]");
        let range = *p.prefix.get_ref();
        if let Some(first) = ranges.insert(range, line) {
            return Err(ctx.invalid(
                p.prefix.span(),
                format!("{prefix}.prefix"),
                format!("duplicate policy for {range} (first on line {first})"),
            ));
        }
        let keys = RawPolicy {
            mode: p.mode,
            buckets: p.buckets,
            idle_timer: p.idle_timer,
            unbalanced_timer: p.unbalanced_timer,
            hash: p.hash,
            action: p.action,
            encap: p.encap,
        };
        let group = build_policy(
            ctx,
            &prefix,
            header,
            keys,
            &default_policy,
            buckets_explicit,
        )?;
        policies.push(PrefixPolicySpec { range, group, line });
    }
    Ok(BgpSpec {
        default_policy,
        policies,
    })
}

/// One group policy: the keys given in `r` over `base`. Bucket counts not given anywhere follow
/// the effective mode (Maglev wants more), unless `base_buckets_explicit`.
fn build_policy(
    ctx: &Ctx<'_>,
    prefix: &str,
    header: Range<usize>,
    r: RawPolicy,
    base: &GroupPolicySpec,
    base_buckets_explicit: bool,
) -> Result<GroupPolicySpec, ConfigError> {
    let key = |k: &str| format!("{prefix}.{k}");
    let mode = r.mode.as_ref().map_or(base.mode, |m| *m.get_ref());
    let hash = r.hash.as_ref().map_or(base.hash, |h| h.over(base.hash));
    let buckets = match &r.buckets {
        Some(b) if b.get_ref().is_power_of_two() && *b.get_ref() <= MAX_BUCKETS => *b.get_ref(),
        Some(b) => {
            return Err(ctx.invalid(
                b.span(),
                key("buckets"),
                format!(
                    "buckets {} is not a power of two in 1..={MAX_BUCKETS}",
                    b.get_ref()
                ),
            ));
        }
        None if base_buckets_explicit => base.buckets,
        None if mode == GroupMode::Maglev => DEFAULT_MAGLEV_BUCKETS,
        None => DEFAULT_BUCKETS,
    };
    if hash.algo == HashAlgoSpec::LbKey && buckets > LB_KEY_VALUES {
        let span = r.buckets.as_ref().map_or(header, Spanned::span);
        return Err(ctx.invalid(
            span,
            key("buckets"),
            format!("algo \"lb-key\" gives only {LB_KEY_VALUES} distinct hashes; buckets above that are never used"),
        ));
    }
    for (k, timer) in [
        ("idle_timer", &r.idle_timer),
        ("unbalanced_timer", &r.unbalanced_timer),
    ] {
        if let (Some(t), false) = (timer, mode == GroupMode::Idle) {
            return Err(ctx.invalid(
                t.span(),
                key(k),
                format!("`{k}` is only used by mode = \"idle\""),
            ));
        }
    }
    let (idle_timer, _) =
        nonzero_duration(ctx, &r.idle_timer, base.idle_timer, &key("idle_timer"))?;
    let unbalanced_timer = r
        .unbalanced_timer
        .as_ref()
        .map_or(base.unbalanced_timer, |t| t.get_ref().0);
    let action = match (&r.action, r.encap) {
        (Some(a), Some(_)) if *a.get_ref() == RawActionKind::Rewrite => {
            return Err(ctx.invalid(
                a.span(),
                key("action"),
                format!("action = \"rewrite\" conflicts with the [{prefix}.encap] table"),
            ));
        }
        (Some(a), None) if *a.get_ref() == RawActionKind::Encap => {
            return Err(ctx.invalid(
                a.span(),
                key("action"),
                format!("action = \"encap\" needs a [{prefix}.encap] table"),
            ));
        }
        (None, None) => base.action,
        (Some(_), None) => ActionTemplateSpec::Rewrite,
        (_, Some(e)) => build_action_template(ctx, prefix, e)?,
    };
    Ok(GroupPolicySpec {
        mode,
        buckets,
        idle_timer,
        unbalanced_timer,
        hash,
        action,
    })
}

/// An `encap` table of a BGP policy: the outer destination is each next hop, so no `dst`.
fn build_action_template(
    ctx: &Ctx<'_>,
    prefix: &str,
    raw: Spanned<RawEncap>,
) -> Result<ActionTemplateSpec, ConfigError> {
    let r = raw.into_inner();
    let prefix = format!("{prefix}.encap");
    if let Some(d) = &r.dst {
        return Err(ctx.invalid(
            d.span(),
            format!("{prefix}.dst"),
            "`dst` cannot be set here: the outer destination is each BGP next hop",
        ));
    }
    let src = check_unicast_ip(ctx, &r.src, format!("{prefix}.src"))?;
    let kind = encap_kind(ctx, &prefix, &r)?;
    Ok(ActionTemplateSpec::Encap { kind, src })
}

/// A stable, non-zero seed from the instance name (FNV-1a, then the splitmix64 finaliser so
/// similar names give unrelated seeds).
pub fn seed_from_name(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in b"ecmpfwd-seed:".iter().chain(name.as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    if h == 0 { 0x9e37_79b9_7f4a_7c15 } else { h }
}

fn build_instance(ctx: &Ctx<'_>, raw: Spanned<RawInstance>) -> Result<InstanceSpec, ConfigError> {
    let raw = raw.into_inner();
    let seed = match raw.seed {
        Some(s) if s.get_ref().0 == 0 => {
            return Err(ctx.invalid(
                s.span(),
                "instance.seed",
                "seed 0 is refused (a well-known seed makes flow placement predictable); \
                 set another value or omit seed to derive one from instance.name",
            ));
        }
        Some(s) => s.get_ref().0,
        None => seed_from_name(&raw.name.0),
    };
    if let Some(old) = raw.control_socket {
        return Err(ctx.invalid(
            old.span(),
            "instance.control_socket",
            "moved to [control] socket (next to the socket's mode, group and allowed peers)",
        ));
    }
    Ok(InstanceSpec {
        name: raw.name.0,
        seed,
        rss_key: raw.rss_key.map_or(DEFAULT_RSS_KEY, |k| k.0),
    })
}

/// A socket path resolved against the config's directory, checked to fit `sun_path`.
fn socket_path(
    ctx: &Ctx<'_>,
    raw: Spanned<PathBuf>,
    key: &str,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<PathBuf, ConfigError> {
    let span = raw.span();
    let path = resolve(raw.into_inner());
    let len = path.as_os_str().len();
    if len == 0 {
        return Err(ctx.invalid(span, key, "empty path"));
    }
    if len > MAX_SOCKET_PATH_LEN {
        return Err(ctx.invalid(
            span,
            key,
            format!(
                "{} is {len} bytes; a Unix socket path holds at most {MAX_SOCKET_PATH_LEN}",
                path.display()
            ),
        ));
    }
    Ok(path)
}

/// The keys `[control]` and `[feed]` share, validated.
struct SocketKeys {
    path: PathBuf,
    mode: u32,
    group: Option<u32>,
    allowed_uids: Vec<u32>,
    allowed_gids: Vec<u32>,
}

fn build_socket(
    ctx: &Ctx<'_>,
    table: &str,
    raw: RawSocket,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<SocketKeys, ConfigError> {
    let key = |k: &str| format!("{table}.{k}");
    let path = socket_path(ctx, raw.socket, &key("socket"), resolve)?;
    let mode = match &raw.mode {
        None => DEFAULT_SOCKET_MODE,
        Some(m) => match u32::try_from(*m.get_ref()) {
            Ok(bits) if bits <= MAX_SOCKET_MODE => bits,
            Ok(bits) => {
                return Err(ctx.invalid(
                    m.span(),
                    key("mode"),
                    format!(
                        "mode {bits:#o} sets bits beyond {MAX_SOCKET_MODE:#o} (write permission bits like 0o660)"
                    ),
                ));
            }
            Err(_) => {
                return Err(ctx.invalid(
                    m.span(),
                    key("mode"),
                    format!(
                        "mode {} is not permission bits (write one like 0o660)",
                        m.get_ref()
                    ),
                ));
            }
        },
    };
    let group = match raw.group {
        None => None,
        Some(g) => match g.get_ref() {
            GroupRef::Gid(gid) => Some(*gid),
            GroupRef::Name(name) => {
                let text = std::fs::read_to_string(GROUP_FILE).map_err(|e| {
                    ctx.invalid(
                        g.span(),
                        key("group"),
                        format!("cannot read {GROUP_FILE} to look up group {name:?}: {e}"),
                    )
                })?;
                let gid = gid_in_group_file(&text, name).ok_or_else(|| {
                    ctx.invalid(
                        g.span(),
                        key("group"),
                        format!(
                            "no group named {name:?} in {GROUP_FILE} (give a numeric gid for groups from other sources)"
                        ),
                    )
                })?;
                Some(gid)
            }
        },
    };
    let ids = |list: Option<Vec<Spanned<u32>>>, k: &str| -> Result<Vec<u32>, ConfigError> {
        let list = list.unwrap_or_default();
        let mut out: Vec<u32> = Vec::with_capacity(list.len());
        for (j, id) in list.iter().enumerate() {
            if out.contains(id.get_ref()) {
                return Err(ctx.invalid(
                    id.span(),
                    format!("{table}.{k}[{j}]"),
                    format!("{} is listed twice", id.get_ref()),
                ));
            }
            out.push(*id.get_ref());
        }
        Ok(out)
    };
    Ok(SocketKeys {
        path,
        mode,
        group,
        allowed_uids: ids(raw.allowed_uids, "allowed_uids")?,
        allowed_gids: ids(raw.allowed_gids, "allowed_gids")?,
    })
}

fn build_control(
    ctx: &Ctx<'_>,
    raw: Spanned<RawControl>,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<ControlSpec, ConfigError> {
    let line = ctx.line(raw.span().start);
    let r = raw.into_inner();
    let max_clients = match &r.max_clients {
        None => DEFAULT_MAX_CLIENTS,
        Some(m) if *m.get_ref() >= 1 => *m.get_ref(),
        Some(m) => {
            return Err(ctx.invalid(
                m.span(),
                "control.max_clients",
                "max_clients must be at least 1",
            ));
        }
    };
    let socket = RawSocket {
        socket: r.socket,
        mode: r.mode,
        group: r.group,
        allowed_uids: r.allowed_uids,
        allowed_gids: r.allowed_gids,
    };
    let s = build_socket(ctx, "control", socket, resolve)?;
    Ok(ControlSpec {
        socket: s.path,
        mode: s.mode,
        group: s.group,
        allowed_uids: s.allowed_uids,
        allowed_gids: s.allowed_gids,
        max_clients,
        line,
    })
}

fn build_feed(
    ctx: &Ctx<'_>,
    raw: Spanned<RawFeed>,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<FeedSpec, ConfigError> {
    let line = ctx.line(raw.span().start);
    let r = raw.into_inner();
    let max_line = match &r.max_line {
        None => DEFAULT_FEED_MAX_LINE,
        Some(m) if (MIN_FEED_MAX_LINE..=MAX_FEED_MAX_LINE).contains(m.get_ref()) => *m.get_ref(),
        Some(m) => {
            return Err(ctx.invalid(
                m.span(),
                "feed.max_line",
                format!(
                    "max_line {} is outside {MIN_FEED_MAX_LINE}..={MAX_FEED_MAX_LINE} bytes",
                    m.get_ref()
                ),
            ));
        }
    };
    // Zero is meaningful for these two: no batching, and paths of a down peer dropped at once.
    let zero_ok =
        |d: &Option<Spanned<Dur>>, default: Duration| d.as_ref().map_or(default, |d| d.get_ref().0);
    let (refresh_timeout, _) = nonzero_duration(
        ctx,
        &r.refresh_timeout,
        DEFAULT_REFRESH_TIMEOUT,
        "feed.refresh_timeout",
    )?;
    let batch_window = zero_ok(&r.batch_window, DEFAULT_BATCH_WINDOW);
    let stale_time = zero_ok(&r.stale_time, DEFAULT_STALE_TIME);
    let socket = RawSocket {
        socket: r.socket,
        mode: r.mode,
        group: r.group,
        allowed_uids: r.allowed_uids,
        allowed_gids: r.allowed_gids,
    };
    let s = build_socket(ctx, "feed", socket, resolve)?;
    Ok(FeedSpec {
        socket: s.path,
        mode: s.mode,
        group: s.group,
        allowed_uids: s.allowed_uids,
        allowed_gids: s.allowed_gids,
        max_line,
        batch_window,
        stale_time,
        refresh_timeout,
        line,
    })
}

fn check_unicast_mac(
    ctx: &Ctx<'_>,
    mac: &Spanned<MacAddr>,
    key: String,
) -> Result<MacAddr, ConfigError> {
    let m = *mac.get_ref();
    if m.is_zero() || m.is_multicast() {
        return Err(ctx.invalid(mac.span(), key, format!("{m} is not a unicast MAC address")));
    }
    Ok(m)
}

fn check_unicast_ip(
    ctx: &Ctx<'_>,
    ip: &Spanned<IpAddr>,
    key: String,
) -> Result<IpAddr, ConfigError> {
    let a = *ip.get_ref();
    let broadcast = matches!(a, IpAddr::V4(v4) if v4.is_broadcast());
    if a.is_unspecified() || a.is_multicast() || broadcast {
        return Err(ctx.invalid(ip.span(), key, format!("{a} is not a unicast address")));
    }
    Ok(a)
}

fn build_port(
    ctx: &Ctx<'_>,
    i: usize,
    raw: Spanned<RawPort>,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<PortSpec, ConfigError> {
    let raw_span = raw.span();
    let line = ctx.line(raw_span.start);
    let r = raw.into_inner();
    let key = |k: &str| format!("port[{i}].{k}");
    let kind_name = r.kind.get_ref().as_str();
    let not_used = |span: Range<usize>, k: &str| {
        ctx.invalid(
            span,
            key(k),
            format!("`{k}` is not used by kind = \"{kind_name}\""),
        )
    };
    let mac = match &r.mac {
        Some(m) => Some(check_unicast_mac(ctx, m, key("mac"))?),
        None if *r.kind.get_ref() == RawPortKind::Afxdp => None,
        None => {
            return Err(ctx.invalid(
                raw_span.clone(),
                key("mac"),
                format!(
                    "missing `mac`: a {kind_name} port needs one (only afxdp ports read it from the interface)"
                ),
            ));
        }
    };
    let addresses = match r.addresses {
        None if *r.kind.get_ref() == RawPortKind::Afxdp => None,
        None => Some(Vec::new()),
        Some(list) => {
            let mut out: Vec<PortAddr> = Vec::with_capacity(list.len());
            for (j, a) in list.into_iter().enumerate() {
                let akey = format!("port[{i}].addresses[{j}]");
                let pa: PortAddr = a
                    .get_ref()
                    .parse()
                    .map_err(|e: String| ctx.invalid(a.span(), akey.clone(), e))?;
                let addr = check_unicast_ip(ctx, &Spanned::new(a.span(), pa.addr), akey.clone())?;
                if out.iter().any(|o| o.addr == addr) {
                    return Err(ctx.invalid(a.span(), akey, format!("{addr} is listed twice")));
                }
                out.push(pa);
            }
            Some(out)
        }
    };
    let mtu = match &r.mtu {
        None => DEFAULT_MTU,
        Some(m) if (MIN_MTU..=MAX_MTU).contains(m.get_ref()) => *m.get_ref(),
        Some(m) => {
            return Err(ctx.invalid(
                m.span(),
                key("mtu"),
                format!("mtu {} is outside {MIN_MTU}..={MAX_MTU}", m.get_ref()),
            ));
        }
    };
    let afxdp_only = [
        ("interface", r.interface.as_ref().map(Spanned::span)),
        ("queues", r.queues.as_ref().map(Spanned::span)),
        ("mode", r.mode.as_ref().map(Spanned::span)),
        ("zero_copy", r.zero_copy.as_ref().map(Spanned::span)),
    ];
    let pcap_only = [
        ("input", r.input.as_ref().map(Spanned::span)),
        ("output", r.output.as_ref().map(Spanned::span)),
    ];
    let reject = |fields: &[(&str, Option<Range<usize>>)]| -> Result<(), ConfigError> {
        match fields.iter().find_map(|(k, s)| s.clone().map(|s| (*k, s))) {
            Some((k, span)) => Err(not_used(span, k)),
            None => Ok(()),
        }
    };
    let kind = match *r.kind.get_ref() {
        RawPortKind::Memory => {
            reject(&afxdp_only)?;
            reject(&pcap_only)?;
            PortKind::Memory
        }
        RawPortKind::Pcap => {
            reject(&afxdp_only)?;
            if r.input.is_none() && r.output.is_none() {
                return Err(ctx.invalid(
                    r.kind.span(),
                    key("kind"),
                    "a pcap port needs `input`, `output` or both",
                ));
            }
            PortKind::Pcap {
                input: r.input.map(|p| resolve(p.into_inner())),
                output: r.output.map(|p| resolve(p.into_inner())),
            }
        }
        RawPortKind::Afxdp => {
            reject(&pcap_only)?;
            let Some(interface) = r.interface else {
                return Err(ctx.invalid(
                    r.kind.span(),
                    key("interface"),
                    "an afxdp port needs `interface`",
                ));
            };
            let ifname = interface.get_ref();
            if ifname.is_empty()
                || ifname.len() > MAX_IFNAME_LEN
                || ifname.contains(|c: char| c == '/' || c.is_whitespace() || c.is_control())
            {
                return Err(ctx.invalid(
                    interface.span(),
                    key("interface"),
                    format!("invalid interface name {ifname:?} (1 to {MAX_IFNAME_LEN} bytes, no '/' or spaces)"),
                ));
            }
            let queues = match &r.queues {
                None => 1,
                Some(q) if *q.get_ref() >= 1 => *q.get_ref(),
                Some(q) => {
                    return Err(ctx.invalid(q.span(), key("queues"), "queues must be at least 1"));
                }
            };
            let mode = r.mode.as_ref().map_or(XdpMode::default(), |m| *m.get_ref());
            let zero_copy = r.zero_copy.as_ref().is_some_and(|z| *z.get_ref());
            if let (Some(z), XdpMode::Generic) = (&r.zero_copy, mode)
                && *z.get_ref()
            {
                return Err(ctx.invalid(
                    z.span(),
                    key("zero_copy"),
                    "zero_copy needs mode = \"driver\" (generic XDP always copies)",
                ));
            }
            PortKind::AfXdp {
                interface: interface.into_inner(),
                queues,
                mode,
                zero_copy,
            }
        }
    };
    Ok(PortSpec {
        name: r.name.into_inner().0,
        kind,
        mac,
        addresses,
        mtu,
        line,
    })
}

/// Two AF_XDP ports on one interface would fight over its XDP program and queues.
fn check_interfaces(ctx: &Ctx<'_>, ports: &[PortSpec]) -> Result<(), ConfigError> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, p) in ports.iter().enumerate() {
        let PortKind::AfXdp { interface, .. } = &p.kind else {
            continue;
        };
        if let Some(&first) = seen.get(interface.as_str()) {
            return Err(ConfigError::Invalid {
                at: Location {
                    origin: ctx.origin.to_owned(),
                    line: p.line,
                    key: format!("port[{i}].interface"),
                },
                message: format!(
                    "interface {interface:?} is already used by port {:?}",
                    ports[first].name
                ),
            });
        }
        seen.insert(interface, i);
    }
    Ok(())
}

fn build_workers(
    ctx: &Ctx<'_>,
    raw: Vec<Spanned<RawWorker>>,
    port_names: &Names<'_>,
    ports: &[PortSpec],
) -> Result<Vec<WorkerSpec>, ConfigError> {
    let mut cores: HashMap<usize, usize> = HashMap::new();
    let mut served: HashMap<PortQueue, usize> = HashMap::new();
    let mut workers = Vec::with_capacity(raw.len());
    for (i, w) in raw.into_iter().enumerate() {
        let line = ctx.line(w.span().start);
        let w = w.into_inner();
        let core = *w.core.get_ref();
        if let Some(first) = cores.insert(core, ctx.line(w.core.span().start)) {
            return Err(ctx.invalid(
                w.core.span(),
                format!("worker[{i}].core"),
                format!("core {core} is already used by the worker on line {first}"),
            ));
        }
        if w.ports.get_ref().is_empty() {
            return Err(ctx.invalid(
                w.ports.span(),
                format!("worker[{i}].ports"),
                "a worker needs at least one port",
            ));
        }
        let mut queues = Vec::with_capacity(w.ports.get_ref().len());
        for (j, entry) in w.ports.into_inner().into_iter().enumerate() {
            let key = format!("worker[{i}].ports[{j}]");
            let text = entry.get_ref();
            let (name, queue_text) = match text.split_once(':') {
                Some((n, q)) => (n, Some(q)),
                None => (text.as_str(), None),
            };
            let name_spanned = Spanned::new(entry.span(), name.to_owned());
            let port = port_names.find(&name_spanned, &key)?;
            let spec = &ports[port];
            let queue = match (queue_text, &spec.kind) {
                (None, PortKind::AfXdp { queues, .. }) if *queues > 1 => {
                    return Err(ctx.invalid(
                        entry.span(),
                        key,
                        format!("port {name:?} has {queues} queues; name one as \"{name}:N\""),
                    ));
                }
                (None, _) => 0,
                (Some(q), PortKind::AfXdp { queues, .. }) => {
                    match q.parse::<u16>() {
                        Ok(q) if q < *queues => q,
                        _ => {
                            return Err(ctx.invalid(
                            entry.span(),
                            key,
                            format!("invalid queue {q:?} for port {name:?} (it has queues 0..{queues})"),
                        ));
                        }
                    }
                }
                (Some(_), _) => {
                    return Err(ctx.invalid(
                        entry.span(),
                        key,
                        format!("port {name:?} has a single queue; write \"{name}\""),
                    ));
                }
            };
            let pq = PortQueue { port, queue };
            if let Some(other) = served.insert(pq, i) {
                let whom = if other == i {
                    "this worker".to_owned()
                } else {
                    format!("worker[{other}]")
                };
                return Err(ctx.invalid(
                    entry.span(),
                    key,
                    format!("queue {queue} of port {name:?} is already served by {whom}"),
                ));
            }
            queues.push(pq);
        }
        workers.push(WorkerSpec {
            core,
            ports: queues,
            line,
        });
    }
    // RSS spreads flows over every queue: a partly served AF_XDP port silently drops traffic.
    for (p, spec) in ports.iter().enumerate() {
        let served_any =
            (0..spec.queues()).any(|q| served.contains_key(&PortQueue { port: p, queue: q }));
        if !served_any {
            continue;
        }
        if let Some(q) =
            (0..spec.queues()).find(|&q| !served.contains_key(&PortQueue { port: p, queue: q }))
        {
            return Err(ConfigError::Invalid {
                at: Location {
                    origin: ctx.origin.to_owned(),
                    line: spec.line,
                    key: format!("port[{p}].queues"),
                },
                message: format!(
                    "queue {q} of port {:?} is not served by any worker",
                    spec.name
                ),
            });
        }
    }
    Ok(workers)
}

fn nonzero_duration(
    ctx: &Ctx<'_>,
    d: &Option<Spanned<Dur>>,
    default: Duration,
    key: &str,
) -> Result<(Duration, Range<usize>), ConfigError> {
    match d {
        None => Ok((default, 0..0)),
        Some(s) if s.get_ref().0.is_zero() => {
            Err(ctx.invalid(s.span(), key, "must be greater than zero"))
        }
        Some(s) => Ok((s.get_ref().0, s.span())),
    }
}

fn build_flow_cache(
    ctx: &Ctx<'_>,
    raw: Option<RawFlowCache>,
) -> Result<FlowCacheSpec, ConfigError> {
    let Some(r) = raw else {
        return Ok(FlowCacheSpec::default());
    };
    let capacity = match &r.capacity {
        None => DEFAULT_FLOW_CAPACITY,
        Some(c) if c.get_ref().is_power_of_two() => *c.get_ref(),
        Some(c) => {
            return Err(ctx.invalid(
                c.span(),
                "flow_cache.capacity",
                format!("capacity {} is not a power of two", c.get_ref()),
            ));
        }
    };
    let (idle, _) = nonzero_duration(
        ctx,
        &r.idle_timeout,
        DEFAULT_IDLE_TIMEOUT,
        "flow_cache.idle_timeout",
    )?;
    let (embryonic, e_span) = nonzero_duration(
        ctx,
        &r.embryonic_timeout,
        DEFAULT_EMBRYONIC_TIMEOUT,
        "flow_cache.embryonic_timeout",
    )?;
    let (fin, f_span) = nonzero_duration(
        ctx,
        &r.fin_timeout,
        DEFAULT_FIN_TIMEOUT,
        "flow_cache.fin_timeout",
    )?;
    for (d, span, k) in [
        (embryonic, e_span, "embryonic_timeout"),
        (fin, f_span, "fin_timeout"),
    ] {
        if d > idle {
            return Err(ctx.invalid(
                span,
                format!("flow_cache.{k}"),
                format!("{k} ({d:?}) is longer than idle_timeout ({idle:?})"),
            ));
        }
    }
    Ok(FlowCacheSpec {
        capacity,
        idle_timeout: idle,
        embryonic_timeout: embryonic,
        fin_timeout: fin,
    })
}

fn build_fib(ctx: &Ctx<'_>, raw: Option<RawFib>) -> Result<FibSpec, ConfigError> {
    match raw.and_then(|f| f.max_tbl8) {
        None => Ok(FibSpec::default()),
        Some(m) if (1..=MAX_TBL8).contains(m.get_ref()) => Ok(FibSpec {
            max_tbl8: *m.get_ref(),
        }),
        Some(m) => Err(ctx.invalid(
            m.span(),
            "fib.max_tbl8",
            format!("max_tbl8 must be in 1..={MAX_TBL8}"),
        )),
    }
}

fn family(a: IpAddr) -> &'static str {
    if a.is_ipv4() { "IPv4" } else { "IPv6" }
}

fn build_nexthop(
    ctx: &Ctx<'_>,
    i: usize,
    raw: Spanned<RawNextHop>,
    port_names: &Names<'_>,
    ports: &[PortSpec],
) -> Result<NextHopSpec, ConfigError> {
    let header = raw.span();
    let line = ctx.line(header.start);
    let r = raw.into_inner();
    let key = |k: &str| format!("nexthop[{i}].{k}");
    let address = check_unicast_ip(ctx, &r.address, key("address"))?;
    let port = port_names.find(&r.port, &key("port"))?;
    let mac = match &r.mac {
        Some(m) => Some(check_unicast_mac(ctx, m, key("mac"))?),
        None if matches!(ports[port].kind, PortKind::AfXdp { .. }) => None,
        None => {
            let kind = match ports[port].kind {
                PortKind::Memory => "memory",
                PortKind::Pcap { .. } | PortKind::AfXdp { .. } => "pcap",
            };
            return Err(ctx.invalid(
                header,
                key("mac"),
                format!(
                    "missing `mac`: port {:?} is a {kind} port (only next hops on afxdp ports are resolved from the kernel's neighbour table)",
                    ports[port].name
                ),
            ));
        }
    };
    let weight = match &r.weight {
        None => 1,
        Some(w) if *w.get_ref() >= 1 => *w.get_ref(),
        Some(w) => return Err(ctx.invalid(w.span(), key("weight"), "weight must be at least 1")),
    };
    let action = match (&r.action, r.encap) {
        (Some(a), Some(_)) if *a.get_ref() == RawActionKind::Rewrite => {
            return Err(ctx.invalid(
                a.span(),
                key("action"),
                "action = \"rewrite\" conflicts with the [nexthop.encap] table",
            ));
        }
        (Some(a), None) if *a.get_ref() == RawActionKind::Encap => {
            return Err(ctx.invalid(
                a.span(),
                key("action"),
                "action = \"encap\" needs a [nexthop.encap] table",
            ));
        }
        (_, None) => ActionSpec::Rewrite,
        (_, Some(e)) => ActionSpec::Encap(build_encap(ctx, i, e, address)?),
    };
    Ok(NextHopSpec {
        name: r.name.into_inner().0,
        address,
        port,
        mac,
        weight,
        state: r.state.unwrap_or_default(),
        action,
        line,
    })
}

fn build_encap(
    ctx: &Ctx<'_>,
    i: usize,
    raw: Spanned<RawEncap>,
    address: IpAddr,
) -> Result<EncapSpec, ConfigError> {
    let r = raw.into_inner();
    let prefix = format!("nexthop[{i}].encap");
    let key = |k: &str| format!("{prefix}.{k}");
    let src = check_unicast_ip(ctx, &r.src, key("src"))?;
    let dst = match &r.dst {
        Some(d) => check_unicast_ip(ctx, d, key("dst"))?,
        None => address,
    };
    if src.is_ipv4() != dst.is_ipv4() {
        let (span, k, what) = match &r.dst {
            Some(d) => (d.span(), "dst", format!("dst {dst}")),
            None => (
                r.src.span(),
                "src",
                format!("dst (the next hop's address {dst})"),
            ),
        };
        return Err(ctx.invalid(
            span,
            key(k),
            format!(
                "encap family mismatch: src {src} is {} but {what} is {}",
                family(src),
                family(dst)
            ),
        ));
    }
    let kind = encap_kind(ctx, &prefix, &r)?;
    Ok(EncapSpec { kind, src, dst })
}

/// The kind-specific part of an `encap` table (`prefix` is its key path).
fn encap_kind(ctx: &Ctx<'_>, prefix: &str, r: &RawEncap) -> Result<EncapKindSpec, ConfigError> {
    let key = |k: &str| format!("{prefix}.{k}");
    let kind = *r.kind.get_ref();
    let fields = [
        (
            "key",
            r.key.as_ref().map(Spanned::span),
            matches!(kind, RawEncapKind::Gre),
        ),
        (
            "vni",
            r.vni.as_ref().map(Spanned::span),
            matches!(kind, RawEncapKind::Vxlan),
        ),
        (
            "inner_mac",
            r.inner_mac.as_ref().map(Spanned::span),
            matches!(kind, RawEncapKind::Vxlan),
        ),
        (
            "udp_port",
            r.udp_port.as_ref().map(Spanned::span),
            matches!(
                kind,
                RawEncapKind::Vxlan | RawEncapKind::Gue | RawEncapKind::MplsUdp
            ),
        ),
        (
            "label",
            r.label.as_ref().map(Spanned::span),
            matches!(kind, RawEncapKind::MplsUdp),
        ),
    ];
    for (k, span, allowed) in fields {
        if let (Some(span), false) = (span, allowed) {
            return Err(ctx.invalid(
                span,
                key(k),
                format!("`{k}` is not used by kind = \"{}\"", kind.as_str()),
            ));
        }
    }
    let udp_port = |default: Option<u16>| -> Result<u16, ConfigError> {
        match (&r.udp_port, default) {
            (Some(p), _) if *p.get_ref() == 0 => {
                Err(ctx.invalid(p.span(), key("udp_port"), "udp_port must not be 0"))
            }
            (Some(p), _) => Ok(*p.get_ref()),
            (None, Some(d)) => Ok(d),
            (None, None) => Err(ctx.invalid(
                r.kind.span(),
                key("udp_port"),
                format!("kind = \"{}\" needs `udp_port`", kind.as_str()),
            )),
        }
    };
    let kind = match kind {
        RawEncapKind::Ipip => EncapKindSpec::IpIp,
        RawEncapKind::Gre => EncapKindSpec::Gre {
            key: r.key.as_ref().map(|k| *k.get_ref()),
        },
        RawEncapKind::Vxlan => {
            let Some(vni) = &r.vni else {
                return Err(ctx.invalid(r.kind.span(), key("vni"), "kind = \"vxlan\" needs `vni`"));
            };
            if *vni.get_ref() >= 1 << 24 {
                return Err(ctx.invalid(
                    vni.span(),
                    key("vni"),
                    format!("vni {} does not fit in 24 bits", vni.get_ref()),
                ));
            }
            let inner_mac = match &r.inner_mac {
                Some(m) => Some(check_unicast_mac(ctx, m, key("inner_mac"))?),
                None => None,
            };
            EncapKindSpec::Vxlan {
                vni: *vni.get_ref(),
                inner_mac,
                udp_port: udp_port(Some(VXLAN_PORT))?,
            }
        }
        RawEncapKind::Gue => EncapKindSpec::Gue {
            udp_port: udp_port(None)?,
        },
        RawEncapKind::MplsUdp => {
            let Some(label) = &r.label else {
                return Err(ctx.invalid(
                    r.kind.span(),
                    key("label"),
                    "kind = \"mpls-udp\" needs `label`",
                ));
            };
            if !(16..1 << 20).contains(label.get_ref()) {
                return Err(ctx.invalid(
                    label.span(),
                    key("label"),
                    format!(
                        "label {} is outside 16..=1048575 (0..=15 are reserved)",
                        label.get_ref()
                    ),
                ));
            }
            EncapKindSpec::MplsUdp {
                label: *label.get_ref(),
                udp_port: udp_port(Some(MPLS_UDP_PORT))?,
            }
        }
    };
    Ok(kind)
}

fn build_group(
    ctx: &Ctx<'_>,
    i: usize,
    raw: Spanned<RawGroup>,
    hop_names: &Names<'_>,
    nexthops: &[NextHopSpec],
    default_hash: HashSpec,
) -> Result<GroupSpec, ConfigError> {
    let header = raw.span();
    let line = ctx.line(header.start);
    let r = raw.into_inner();
    let key = |k: &str| format!("group[{i}].{k}");
    let mode = r
        .mode
        .as_ref()
        .map_or(GroupMode::default(), |m| *m.get_ref());
    let hash = r
        .hash
        .as_ref()
        .map_or(default_hash, |h| h.over(default_hash));
    let buckets = match &r.buckets {
        None if mode == GroupMode::Maglev => DEFAULT_MAGLEV_BUCKETS,
        None => DEFAULT_BUCKETS,
        Some(b) if b.get_ref().is_power_of_two() && *b.get_ref() <= MAX_BUCKETS => *b.get_ref(),
        Some(b) => {
            return Err(ctx.invalid(
                b.span(),
                key("buckets"),
                format!(
                    "buckets {} is not a power of two in 1..={MAX_BUCKETS}",
                    b.get_ref()
                ),
            ));
        }
    };
    if hash.algo == HashAlgoSpec::LbKey && buckets > LB_KEY_VALUES {
        let span = r.buckets.as_ref().map_or(header.clone(), Spanned::span);
        return Err(ctx.invalid(
            span,
            key("buckets"),
            format!("algo \"lb-key\" gives only {LB_KEY_VALUES} distinct hashes; buckets above that are never used"),
        ));
    }
    for (k, timer) in [
        ("idle_timer", &r.idle_timer),
        ("unbalanced_timer", &r.unbalanced_timer),
    ] {
        if let (Some(t), false) = (timer, mode == GroupMode::Idle) {
            return Err(ctx.invalid(
                t.span(),
                key(k),
                format!("`{k}` is only used by mode = \"idle\""),
            ));
        }
    }
    let (idle_timer, _) =
        nonzero_duration(ctx, &r.idle_timer, DEFAULT_IDLE_TIMER, &key("idle_timer"))?;
    let unbalanced_timer = r
        .unbalanced_timer
        .as_ref()
        .map_or(Duration::ZERO, |t| t.get_ref().0);

    let mut members: Vec<MemberSpec> = Vec::with_capacity(r.members.len());
    for (j, m) in r.members.iter().enumerate() {
        let mkey = format!("group[{i}].members[{j}]");
        let name = Spanned::new(m.span(), m.get_ref().nexthop.clone());
        let nexthop = hop_names.find(&name, &mkey)?;
        if members.iter().any(|x| x.nexthop == nexthop) {
            return Err(ctx.invalid(
                m.span(),
                mkey,
                format!("next hop {:?} is listed twice", name.get_ref()),
            ));
        }
        let weight = match m.get_ref().weight {
            None => nexthops[nexthop].weight,
            Some(0) => {
                return Err(ctx.invalid(
                    m.span(),
                    format!("{mkey}.weight"),
                    "weight must be at least 1",
                ));
            }
            Some(w) => w,
        };
        members.push(MemberSpec { nexthop, weight });
    }
    if members.len() > buckets as usize {
        let span = r.buckets.as_ref().map_or(header.clone(), Spanned::span);
        return Err(ctx.invalid(
            span,
            key("buckets"),
            format!("buckets = {buckets} cannot hold {} members", members.len()),
        ));
    }
    Ok(GroupSpec {
        name: r.name.into_inner().0,
        mode,
        buckets,
        members,
        idle_timer,
        unbalanced_timer,
        hash,
        line,
    })
}

// ---------------------------------------------------------------------------------------------
// Conversions into the table types the data path reads.
// ---------------------------------------------------------------------------------------------

impl From<HopStateSpec> for tables::HopState {
    fn from(s: HopStateSpec) -> Self {
        match s {
            HopStateSpec::Active => Self::Active,
            HopStateSpec::Draining => Self::Draining,
            HopStateSpec::Failed => Self::Failed,
        }
    }
}

impl From<HashFieldsSpec> for tables::HashFields {
    fn from(f: HashFieldsSpec) -> Self {
        match f {
            HashFieldsSpec::SrcIp => Self::SrcIp,
            HashFieldsSpec::DstIp => Self::DstIp,
            HashFieldsSpec::SrcDstIp => Self::SrcDstIp,
            HashFieldsSpec::FiveTuple => Self::FiveTuple,
        }
    }
}

impl From<HashAlgoSpec> for tables::HashAlgo {
    fn from(a: HashAlgoSpec) -> Self {
        match a {
            HashAlgoSpec::Fast => Self::Fast,
            HashAlgoSpec::Crc32c => Self::Crc32c,
            HashAlgoSpec::Toeplitz => Self::Toeplitz,
            HashAlgoSpec::LbKey => Self::LbKey,
        }
    }
}

impl From<HashSpec> for tables::HashPolicy {
    fn from(h: HashSpec) -> Self {
        Self {
            fields: h.fields.into(),
            algo: h.algo.into(),
            symmetric: h.symmetric,
            inner: h.inner,
        }
    }
}

impl From<EncapKindSpec> for tables::EncapKind {
    fn from(k: EncapKindSpec) -> Self {
        match k {
            EncapKindSpec::IpIp => Self::IpIp,
            EncapKindSpec::Gre { key } => Self::Gre { key },
            EncapKindSpec::Vxlan {
                vni,
                inner_mac,
                udp_port,
            } => Self::Vxlan {
                vni,
                inner_dst_mac: inner_mac.map(|m| m.0),
                port: udp_port,
            },
            EncapKindSpec::Gue { udp_port } => Self::Gue { port: udp_port },
            EncapKindSpec::MplsUdp { label, udp_port } => Self::MplsUdp {
                label,
                port: udp_port,
            },
        }
    }
}

impl From<EncapSpec> for tables::Encap {
    fn from(e: EncapSpec) -> Self {
        Self {
            kind: e.kind.into(),
            src: e.src,
            dst: e.dst,
        }
    }
}

impl From<ActionSpec> for tables::Action {
    fn from(a: ActionSpec) -> Self {
        match a {
            ActionSpec::Rewrite => Self::Rewrite,
            ActionSpec::Encap(e) => Self::Encap(e.into()),
        }
    }
}

impl PortSpec {
    /// What the data path needs to know about this port as an egress. A port whose MAC is read
    /// from its interface (`mac` is `None`) gets the all-zero MAC here: the caller puts the
    /// interface's MAC in before publishing.
    pub fn port_info(&self) -> tables::PortInfo {
        tables::PortInfo {
            mac: self.mac.map_or([0; 6], |m| m.0),
            mtu: self.mtu,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("300s"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("120ms"), Ok(Duration::from_millis(120)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        for bad in ["", "300", "s", "5 m", "1.5s", "-1s", "10d", "m5"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(parse_duration("99999999999999999999h").is_err());
    }

    #[test]
    fn macs() {
        let m: MacAddr = "02:00:00:00:00:01".parse().unwrap();
        assert_eq!(m.0, [2, 0, 0, 0, 0, 1]);
        assert_eq!(m.to_string(), "02:00:00:00:00:01");
        let m: MacAddr = "AB-bb-CC-dd-EE-ff".parse().unwrap();
        assert_eq!(m.0, [0xab, 0xbb, 0xcc, 0xdd, 0xee, 0xff]);
        assert!(m.is_multicast());
        for bad in [
            "02:00:00:00:00",
            "02:00:00:00:00:01:02",
            "2:0:0:0:0:1",
            "02:00:00:00:00:zz",
            "020000000001",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn prefixes() {
        let p: Prefix = "192.0.2.10/32".parse().unwrap();
        assert_eq!(p.to_string(), "192.0.2.10/32");
        let p: Prefix = "2001:db8::/32".parse().unwrap();
        assert_eq!((p.addr, p.len), ("2001:db8::".parse().unwrap(), 32));
        let p: Prefix = "0.0.0.0/0".parse().unwrap();
        assert_eq!(p.len, 0);
        let p: Prefix = "2001:db8::1".parse().unwrap();
        assert_eq!(p.len, 128);
        let e = "192.0.2.1/24".parse::<Prefix>().unwrap_err();
        assert!(e.contains("did you mean 192.0.2.0/24"), "{e}");
        for bad in [
            "192.0.2.0/33",
            "2001:db8::/129",
            "192.0.2.0/",
            "192.0.2.0/+8",
            "bogus/8",
        ] {
            assert!(bad.parse::<Prefix>().is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn every_masked_prefix_round_trips() {
        let addrs: [IpAddr; 2] = [
            "203.0.113.77".parse().unwrap(),
            "2001:db8:ffff:1234::77".parse().unwrap(),
        ];
        for addr in addrs {
            let max = if addr.is_ipv4() { 32 } else { 128 };
            for len in 0..=max {
                let text = format!("{}/{len}", mask(addr, len));
                let p: Prefix = text.parse().unwrap();
                assert_eq!(p.to_string(), text);
                assert_eq!(mask(p.addr, p.len), p.addr);
                if len < max {
                    let host = format!("{addr}/{len}");
                    assert_eq!(
                        host.parse::<Prefix>().is_ok(),
                        mask(addr, len) == addr,
                        "{host}"
                    );
                }
            }
        }
    }

    #[test]
    fn derived_seeds_are_stable_distinct_and_nonzero() {
        let a = seed_from_name("fwd-a");
        assert_eq!(a, seed_from_name("fwd-a"));
        assert_ne!(a, seed_from_name("fwd-b"));
        assert_ne!(a, 0);
        assert_ne!(seed_from_name(""), 0);
    }

    #[test]
    fn key_paths_follow_spans() {
        let text = "[instance]\nname = \"x\"\n\n[[port]]\nname = \"p0\"\n[[port]]\nname = \"p1\"\nmtu = 9\n";
        let doc = DeTable::parse(text).unwrap();
        let at = |needle: &str| {
            let start = text.find(needle).unwrap();
            key_path(doc.get_ref(), &(start..start + needle.len()))
        };
        assert_eq!(at("\"p1\"").as_deref(), Some("port[1].name"));
        assert_eq!(at("mtu").as_deref(), Some("port[1].mtu"));
        assert_eq!(at("9").as_deref(), Some("port[1].mtu"));
        assert_eq!(at("\"x\"").as_deref(), Some("instance.name"));
    }

    #[test]
    fn lines_count_from_one() {
        let ctx = Ctx {
            origin: "t",
            text: "a\nb\nc",
        };
        assert_eq!(ctx.line(0), 1);
        assert_eq!(ctx.line(2), 2);
        assert_eq!(ctx.line(4), 3);
        assert_eq!(ctx.line(99), 3);
    }

    /// A valid head (16 lines): a memory port `m0` and an AF_XDP port `x0`, one worker.
    const HEAD: &str = r#"[instance]
name = "t"

[[port]]
name = "m0"
kind = "memory"
mac = "02:00:00:00:00:01"

[[port]]
name = "x0"
kind = "afxdp"
interface = "veth-t0"

[[worker]]
core = 0
ports = ["m0", "x0"]
"#;

    /// Next hops on both ports: `hm` (memory, with a MAC) and `hx` (AF_XDP, without).
    const HOPS: &str = "[[nexthop]]\nname = \"hm\"\naddress = \"198.18.1.1\"\nport = \"m0\"\nmac = \"02:00:00:00:01:01\"\n[[nexthop]]\nname = \"hx\"\naddress = \"198.18.2.1\"\nport = \"x0\"\n";

    fn ok(tail: &str) -> Config {
        let text = format!("{HEAD}{tail}");
        match parse_with_base(&text, "t.toml", Some(Path::new("/etc/ecmpfwd"))) {
            Ok(c) => c,
            Err(e) => panic!("{e}\n{text}"),
        }
    }

    /// `tail` appended to [`HEAD`] must fail on the line ending in `#<`, at `key`, with a
    /// message containing `message`.
    #[track_caller]
    fn fails(tail: &str, key: &str, message: &str) {
        fails_whole(&format!("{HEAD}{tail}"), key, message);
    }

    #[track_caller]
    fn fails_whole(text: &str, key: &str, message: &str) {
        let line = text
            .lines()
            .position(|l| l.ends_with("#<"))
            .map(|i| i + 1)
            .unwrap_or_else(|| panic!("no #< marker in:\n{text}"));
        let e = match Config::parse(text, "t.toml") {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e,
        };
        let shown = e.to_string();
        assert!(
            shown.starts_with(&format!("t.toml:{line}: {key}: ")) && shown.contains(message),
            "expected `t.toml:{line}: {key}: ...{message}...`, got `{shown}` for:\n{text}"
        );
        assert_eq!((e.line(), e.key()), (Some(line), Some(key)), "{shown}");
    }

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

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
            &format!(
                "{HOPS}[[neighbor]]\naddress = \"198.18.1.1\"\nmac = \"02:00:00:00:09:09\" #<\n"
            ),
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
    fn control_socket() {
        let c = ok("");
        assert_eq!((c.control.as_ref(), c.feed.as_ref()), (None, None));
        let c = ok("[control]\nsocket = \"ctl.sock\"\n");
        assert_eq!(
            c.control,
            Some(ControlSpec {
                socket: "/etc/ecmpfwd/ctl.sock".into(),
                mode: 0o660,
                group: None,
                allowed_uids: vec![],
                allowed_gids: vec![],
                max_clients: 256,
                line: 17,
            })
        );
        let c = ok(
            "\n[control]\nsocket = \"/run/x/ctl.sock\"\nmode = 0o600\ngroup = 4321\nallowed_uids = [1000, 0]\nallowed_gids = [27]\nmax_clients = 4\n",
        );
        let ctl = c.control.unwrap();
        assert_eq!(ctl.socket, Path::new("/run/x/ctl.sock"));
        assert_eq!(
            (ctl.mode, ctl.group, ctl.max_clients, ctl.line),
            (0o600, Some(4321), 4, 18)
        );
        assert_eq!(
            (ctl.allowed_uids, ctl.allowed_gids),
            (vec![1000, 0], vec![27])
        );
        let c = ok("[control]\nsocket = \"/s\"\ngroup = \"4321\"\n");
        assert_eq!(
            c.control.unwrap().group,
            Some(4321),
            "a string of digits is a gid"
        );
    }

    #[test]
    fn control_socket_errors() {
        fails_whole(
            "[instance]\nname = \"t\"\ncontrol_socket = \"/run/x.sock\" #<\n",
            "instance.control_socket",
            "moved to [control] socket",
        );
        fails(
            "[control] #<\nmode = 0o600\n",
            "control.socket",
            "missing field `socket`",
        );
        fails(
            "[control]\nsocket = \"\" #<\n",
            "control.socket",
            "empty path",
        );
        fails(
            &format!("[control]\nsocket = \"/{}\" #<\n", "s".repeat(107)),
            "control.socket",
            "at most 107",
        );
        fails(
            "[control]\nsocket = \"/s\"\nmode = 0o1777 #<\n",
            "control.mode",
            "mode 0o1777 sets bits beyond 0o777",
        );
        fails(
            "[control]\nsocket = \"/s\"\nmode = -1 #<\n",
            "control.mode",
            "not permission bits",
        );
        fails(
            "[control]\nsocket = \"/s\"\nmode = \"660\" #<\n",
            "control.mode",
            "invalid type",
        );
        fails(
            "[control]\nsocket = \"/s\"\ngroup = \"no-such-group-ecmpfwd\" #<\n",
            "control.group",
            "no group named \"no-such-group-ecmpfwd\" in /etc/group",
        );
        fails(
            "[control]\nsocket = \"/s\"\ngroup = \"a b\" #<\n",
            "control.group",
            "invalid group name",
        );
        fails(
            "[control]\nsocket = \"/s\"\ngroup = 4294967296 #<\n",
            "control.group",
            "outside 0..=4294967295",
        );
        fails(
            "[control]\nsocket = \"/s\"\nallowed_uids = [0, 5,\n  5] #<\n",
            "control.allowed_uids[2]",
            "5 is listed twice",
        );
        fails(
            "[control]\nsocket = \"/s\"\nallowed_gids = [-3] #<\n",
            "control.allowed_gids[0]",
            "invalid value",
        );
        fails(
            "[control]\nsocket = \"/s\"\nmax_clients = 0 #<\n",
            "control.max_clients",
            "at least 1",
        );
        fails(
            "[control]\nsocket = \"/s\"\nbacklog = 5 #<\n",
            "control.backlog",
            "unknown field `backlog`",
        );
    }

    #[test]
    fn groups_by_name() {
        let text = "# comment\nroot:x:0:\nwheel:x:10:alice,bob\nbad:x:oops:\nlab::4242:\n";
        assert_eq!(gid_in_group_file(text, "root"), Some(0));
        assert_eq!(gid_in_group_file(text, "wheel"), Some(10));
        assert_eq!(gid_in_group_file(text, "lab"), Some(4242));
        assert_eq!(gid_in_group_file(text, "bad"), None);
        assert_eq!(gid_in_group_file(text, "whee"), None);
        assert_eq!(gid_in_group_file(text, "# comment"), None);
        // Every Linux system has a root group with gid 0.
        let c = ok("[feed]\nsocket = \"/f\"\ngroup = \"root\"\n");
        assert_eq!(c.feed.unwrap().group, Some(0));
    }

    #[test]
    fn feed_socket() {
        let c = ok("[feed]\nsocket = \"feed.sock\"\n");
        assert_eq!(
            c.feed,
            Some(FeedSpec {
                socket: "/etc/ecmpfwd/feed.sock".into(),
                mode: 0o660,
                group: None,
                allowed_uids: vec![],
                allowed_gids: vec![],
                max_line: 1 << 20,
                batch_window: Duration::ZERO,
                stale_time: Duration::ZERO,
                refresh_timeout: Duration::from_secs(30),
                line: 17,
            })
        );
        let c = ok(
            "[feed]\nsocket = \"/f\"\nmode = 0o640\ngroup = 7\nallowed_uids = [101]\nallowed_gids = [102, 103]\nmax_line = 65536\nbatch_window = \"0s\"\nstale_time = \"90s\"\nrefresh_timeout = \"1m\"\n\
             [control]\nsocket = \"/c\"\n",
        );
        let f = c.feed.unwrap();
        assert_eq!((f.mode, f.group, f.max_line), (0o640, Some(7), 65536));
        assert_eq!(
            (f.allowed_uids, f.allowed_gids),
            (vec![101], vec![102, 103])
        );
        assert_eq!(
            (f.batch_window, f.stale_time, f.refresh_timeout),
            (
                Duration::ZERO,
                Duration::from_secs(90),
                Duration::from_secs(60)
            )
        );
    }

    #[test]
    fn feed_socket_errors() {
        fails(
            "[control]\nsocket = \"/run/s\"\n[feed]\nsocket = \"/run/s\" #<\n",
            "feed.socket",
            "also the control socket (line 17)",
        );
        fails(
            "[feed] #<\nmax_line = 2048\n",
            "feed.socket",
            "missing field `socket`",
        );
        fails(
            "[feed]\nsocket = \"/f\"\nmax_line = 100 #<\n",
            "feed.max_line",
            "outside 1024..=1073741824",
        );
        fails(
            "[feed]\nsocket = \"/f\"\nrefresh_timeout = \"0s\" #<\n",
            "feed.refresh_timeout",
            "greater than zero",
        );
        fails(
            "[feed]\nsocket = \"/f\"\nbatch_window = \"2 ms\" #<\n",
            "feed.batch_window",
            "invalid duration",
        );
        fails(
            "[feed]\nsocket = \"/f\"\nstale_time = 90 #<\n",
            "feed.stale_time",
            "invalid type",
        );
        fails(
            "[feed]\nsocket = \"/f\"\nmode = 0o4660 #<\n",
            "feed.mode",
            "beyond 0o777",
        );
        fails(
            "[feed]\nsocket = \"/f\"\ngroup = \"no-such-group-ecmpfwd\" #<\n",
            "feed.group",
            "no group named",
        );
        fails(
            "[feed]\nsocket = \"/f\"\nallowed_uids = [1, 1] #<\n",
            "feed.allowed_uids[1]",
            "listed twice",
        );
        fails(
            "[feed]\nsocket = \"/f\"\nmax_clients = 3 #<\n",
            "feed.max_clients",
            "unknown field `max_clients`",
        );
    }

    #[test]
    fn bgp_defaults_follow_hash() {
        let c = ok("[hash]\nalgo = \"crc32c\"\n");
        let d = c.bgp.default_policy;
        assert_eq!((d.mode, d.buckets), (GroupMode::AutoRecovery, 256));
        assert_eq!(d.hash, c.hash);
        assert_eq!(d.hash.algo, HashAlgoSpec::Crc32c);
        assert_eq!(d.action, ActionTemplateSpec::Rewrite);
        assert!(c.bgp.policies.is_empty());
        let c = ok("[bgp]\nmode = \"maglev\"\n");
        assert_eq!(c.bgp.default_policy.buckets, 4096, "Maglev's default");
    }

    #[test]
    fn bgp_policies_override_the_default() {
        let c = ok(r#"[bgp]
mode = "idle"
buckets = 1024
idle_timer = "30s"
unbalanced_timer = "5m"
hash = { fields = "src-dst-ip", symmetric = true }

[[bgp.policy]]
prefix = "198.19.0.0/16"
mode = "maglev"
hash = { algo = "crc32c" }

[[bgp.policy]]
prefix = "198.19.1.0/24"
action = "encap"
[bgp.policy.encap]
kind = "vxlan"
src = "198.18.0.254"
vni = 7

[[bgp.policy]]
prefix = "2001:2:ffff::/48"
mode = "auto-recovery"
encap = { kind = "gue", src = "2001:2::fe", udp_port = 6080 }
"#);
        let d = c.bgp.default_policy;
        assert_eq!((d.mode, d.buckets), (GroupMode::Idle, 1024));
        assert_eq!(
            (d.idle_timer, d.unbalanced_timer),
            (Duration::from_secs(30), Duration::from_secs(300))
        );
        assert_eq!(
            (d.hash.fields, d.hash.symmetric, d.hash.algo),
            (HashFieldsSpec::SrcDstIp, true, HashAlgoSpec::Fast)
        );
        let [maglev, vxlan, gue] = &c.bgp.policies[..] else {
            panic!("three policies expected: {:?}", c.bgp.policies)
        };
        assert_eq!((maglev.range, maglev.line), (p("198.19.0.0/16"), 24));
        let g = maglev.group;
        assert_eq!(
            (g.mode, g.buckets),
            (GroupMode::Maglev, 1024),
            "buckets inherited"
        );
        assert_eq!(
            (g.hash.fields, g.hash.symmetric, g.hash.algo),
            (HashFieldsSpec::SrcDstIp, true, HashAlgoSpec::Crc32c)
        );
        assert_eq!(g.action, ActionTemplateSpec::Rewrite);
        assert_eq!(vxlan.group.mode, GroupMode::Idle);
        assert_eq!(vxlan.group.idle_timer, Duration::from_secs(30));
        assert_eq!(
            vxlan.group.action,
            ActionTemplateSpec::Encap {
                kind: EncapKindSpec::Vxlan {
                    vni: 7,
                    inner_mac: None,
                    udp_port: VXLAN_PORT
                },
                src: "198.18.0.254".parse().unwrap(),
            }
        );
        assert_eq!(
            gue.group.action,
            ActionTemplateSpec::Encap {
                kind: EncapKindSpec::Gue { udp_port: 6080 },
                src: "2001:2::fe".parse().unwrap(),
            }
        );
        // Longest covering range wins; other families and shorter prefixes fall through.
        assert_eq!(c.bgp.policy_for(&p("198.19.1.128/25")), &vxlan.group);
        assert_eq!(c.bgp.policy_for(&p("198.19.1.0/24")), &vxlan.group);
        assert_eq!(c.bgp.policy_for(&p("198.19.7.0/24")), &maglev.group);
        assert_eq!(c.bgp.policy_for(&p("198.18.0.0/15")), &d);
        assert_eq!(c.bgp.policy_for(&p("2001:2:ffff:1::/64")), &gue.group);
        assert_eq!(c.bgp.policy_for(&p("::/0")), &d);
        // Buckets not given anywhere follow each policy's own mode.
        let c = ok("[bgp]\n[[bgp.policy]]\nprefix = \"10.0.0.0/8\"\nmode = \"maglev\"\n");
        assert_eq!(c.bgp.policies[0].group.buckets, 4096);
        assert_eq!(c.bgp.default_policy.buckets, 256);
    }

    #[test]
    fn bgp_errors() {
        fails(
            "[bgp]\nmode = \"fast\" #<\n",
            "bgp.mode",
            "unknown variant `fast`",
        );
        fails(
            "[bgp]\nbuckets = 100 #<\n",
            "bgp.buckets",
            "not a power of two",
        );
        fails(
            "[bgp]\nidle_timer = \"5s\" #<\n",
            "bgp.idle_timer",
            "only used by mode = \"idle\"",
        );
        fails(
            "[bgp]\nmode = \"idle\"\nidle_timer = \"0s\" #<\n",
            "bgp.idle_timer",
            "greater than zero",
        );
        fails(
            "[bgp] #<\nhash = { algo = \"lb-key\" }\nmode = \"maglev\"\n",
            "bgp.buckets",
            "lb-key",
        );
        fails(
            "[bgp]\naction = \"encap\" #<\n",
            "bgp.action",
            "needs a [bgp.encap] table",
        );
        fails(
            "[bgp]\naction = \"rewrite\" #<\n[bgp.encap]\nkind = \"ipip\"\nsrc = \"198.18.0.254\"\n",
            "bgp.action",
            "conflicts with the [bgp.encap] table",
        );
        fails(
            "[bgp.encap]\nkind = \"ipip\"\nsrc = \"198.18.0.254\"\ndst = \"198.18.1.1\" #<\n",
            "bgp.encap.dst",
            "the outer destination is each BGP next hop",
        );
        fails(
            "[bgp.encap]\nkind = \"vxlan\" #<\nsrc = \"198.18.0.254\"\n",
            "bgp.encap.vni",
            "needs `vni`",
        );
        fails(
            "[bgp.encap]\nkind = \"gre\"\nsrc = \"198.18.0.254\"\nlabel = 20 #<\n",
            "bgp.encap.label",
            "not used by kind = \"gre\"",
        );
        fails(
            "[bgp.encap]\nkind = \"gre\"\nsrc = \"224.0.0.1\" #<\n",
            "bgp.encap.src",
            "not a unicast address",
        );
        fails(
            "[bgp]\nweight = 2 #<\n",
            "bgp.weight",
            "unknown field `weight`",
        );
        let pol = "[[bgp.policy]]\nprefix = \"198.19.0.0/16\"\n";
        fails(
            &format!("{pol}[[bgp.policy]]\nprefix = \"198.19.0.0/16\" #<\n"),
            "bgp.policy[1].prefix",
            "duplicate policy for 198.19.0.0/16 (first on line 17)",
        );
        fails(
            "[[bgp.policy]]\nprefix = \"198.19.0.1/16\" #<\n",
            "bgp.policy[0].prefix",
            "host bits set",
        );
        fails(
            "[[bgp.policy]] #<\nmode = \"idle\"\n",
            "bgp.policy[0].prefix",
            "missing field `prefix`",
        );
        fails(
            &format!("{pol}buckets = 3 #<\n"),
            "bgp.policy[0].buckets",
            "not a power of two",
        );
        fails(
            &format!("{pol}unbalanced_timer = \"1m\" #<\n"),
            "bgp.policy[0].unbalanced_timer",
            "only used by mode = \"idle\"",
        );
        fails(
            &format!("{pol}policy = [] #<\n"),
            "bgp.policy[0].policy",
            "unknown field `policy`",
        );
        fails(
            &format!("{pol}hash = {{ algo = \"lb-key\" }}\nbuckets = 2048 #<\n"),
            "bgp.policy[0].buckets",
            "lb-key",
        );
        fails(
            &format!("{pol}action = \"encap\" #<\n"),
            "bgp.policy[0].action",
            "needs a [bgp.policy[0].encap] table",
        );
        fails(
            &format!(
                "{pol}[bgp.policy.encap]\nkind = \"mpls-udp\"\nsrc = \"198.18.0.254\"\nlabel = 2 #<\n"
            ),
            "bgp.policy[0].encap.label",
            "reserved",
        );
    }

    #[test]
    fn error_display_is_file_line_key_message() {
        let e = ConfigError::Invalid {
            at: Location {
                origin: "configs/x.toml".into(),
                line: 14,
                key: "nexthop[2].port".into(),
            },
            message: "unknown port \"p9\"".into(),
        };
        assert_eq!(
            e.to_string(),
            "configs/x.toml:14: nexthop[2].port: unknown port \"p9\""
        );
        let e = ConfigError::Syntax {
            at: Location {
                origin: "x.toml".into(),
                line: 3,
                key: String::new(),
            },
            message: "unclosed table".into(),
        };
        assert_eq!(e.to_string(), "x.toml:3: unclosed table");
    }
}
