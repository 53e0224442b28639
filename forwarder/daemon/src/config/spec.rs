//! The validated configuration: what [`Config::load`] returns (see the module doc of
//! [`crate::config`] for what "validated" guarantees).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::error::{ConfigError, Location};
use super::value::{MacAddr, PortAddr, Prefix, mask};
use super::{
    DEFAULT_BUCKETS, DEFAULT_EMBRYONIC_TIMEOUT, DEFAULT_FIN_TIMEOUT, DEFAULT_FLOW_CAPACITY,
    DEFAULT_IDLE_TIMEOUT, DEFAULT_IDLE_TIMER, DEFAULT_MAX_TBL8, RSS_KEY_LEN,
};

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
    /// `[memory]`.
    pub memory: MemorySpec,
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
    /// `[metrics]`: the Prometheus listener, if `listen` is set.
    pub metrics: Option<MetricsSpec>,
    /// `[bgp]` and `[[bgp.policy]]`: how groups of BGP-learnt prefixes are built.
    pub bgp: BgpSpec,
    /// `[dpdk]`: how the DPDK EAL is started for `kind = "dpdk"` ports.
    pub dpdk: DpdkSpec,
    /// `[[bgp.announce]]` and its `[bgp]` timing keys.
    pub announce: AnnounceSpecs,
}

/// `[dpdk]`: the DPDK EAL's arguments (used only when a port has `kind = "dpdk"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpdkSpec {
    /// The EAL's lcore list (`-l`), e.g. `"0"` or `"0-3"`; ecmpfwd's own workers are pinned by
    /// `[[worker]] core` and registered with the EAL, so this is usually one spare core.
    pub cores: String,
    /// Memory the EAL reserves, in MB (`-m`).
    pub memory_mb: u32,
    /// Use ordinary pages instead of huge pages (`--no-huge`): slower, for tests and VMs.
    pub no_huge: bool,
    /// The EAL's file prefix (`--file-prefix`), so several DPDK processes can share a host.
    pub file_prefix: String,
    /// Further EAL arguments, passed as written after the others.
    pub args: Vec<String>,
}

/// Default `[dpdk] memory`, in MB.
pub const DEFAULT_DPDK_MEMORY_MB: u32 = 512;

impl DpdkSpec {
    /// Defaults for instance `instance`.
    pub fn defaults(instance: &str) -> Self {
        Self {
            cores: "0".into(),
            memory_mb: DEFAULT_DPDK_MEMORY_MB,
            no_huge: false,
            file_prefix: format!("ecmpfwd-{instance}"),
            args: Vec::new(),
        }
    }

    /// The EAL argument list (without the program name).
    pub fn eal_args(&self) -> Vec<String> {
        let mut out = vec![
            "-l".to_owned(),
            self.cores.clone(),
            "-m".to_owned(),
            self.memory_mb.to_string(),
            "--file-prefix".to_owned(),
            self.file_prefix.clone(),
        ];
        if self.no_huge {
            out.push("--no-huge".to_owned());
        }
        out.extend(self.args.iter().cloned());
        out
    }
}

/// The next hop of a `[[bgp.announce]]` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnounceNextHopSpec {
    /// `"self"`: the companion's address on each session.
    Local,
    /// An address of the prefix's family.
    Addr(IpAddr),
}

/// `[[bgp.announce]]`: one prefix the companion announces while ecmpfwd can serve it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceSpec {
    /// The prefix (unique among entries).
    pub prefix: Prefix,
    /// Its next hop.
    pub next_hop: AnnounceNextHopSpec,
    /// MULTI_EXIT_DISC, if set.
    pub med: Option<u32>,
    /// Standard communities as (ASN, value).
    pub communities: Vec<(u16, u16)>,
    /// The companion's neighbours it goes to (empty: all).
    pub neighbors: Vec<IpAddr>,
    /// Line of the `[[bgp.announce]]` header.
    pub line: usize,
}

/// Every `[[bgp.announce]]` entry and the `[bgp]` keys timing them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceSpecs {
    /// In file order.
    pub entries: Vec<AnnounceSpec>,
    /// `[bgp] announce_stall_time`: a worker this long without a poll withdraws everything.
    pub stall_time: Duration,
    /// `[bgp] announce_grace`: how long SIGTERM waits, withdrawn, before stopping.
    pub grace: Duration,
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
            PortKind::AfXdp { queues, .. } | PortKind::Dpdk { queues, .. } => *queues,
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
    /// A DPDK device: a PCI address or a `--vdev` spec (`net_null0`, `net_ring0`,
    /// `net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap`, `net_af_xdp0,iface=eth0`).
    Dpdk {
        /// The device, as DPDK names it.
        device: String,
        /// Number of rx/tx queue pairs, ids `0..queues` (one per worker serving the port).
        queues: u16,
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

/// `[memory]`: how the big tables (flow caches, FIBs, UMEMs) are backed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemorySpec {
    /// `hugepages`: `auto` (hugetlb pool, else transparent huge pages), `require` (hugetlb or
    /// refuse to start) or `off`.
    pub hugepages: ecmp_mem::HugePages,
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
    /// Each bucket belongs to its highest-ranked member under a seeded weighted rendezvous
    /// hash: a pure function of seed, members and weights, and minimal on every change.
    Rendezvous,
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
    /// file is resolved through [`GROUP_FILE`](super::GROUP_FILE) at load time.
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
    /// The longest the first feed-learnt routes are held after start while the companion is
    /// still resending (zero: published at once; default 2 s; see `ControlConfig::startup_hold`).
    pub startup_hold: Duration,
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

/// `[metrics]`: where `GET /metrics` is served (see `ecmp_control::metrics_server`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSpec {
    /// The TCP address to listen on (an IP literal and a non-zero port).
    pub listen: std::net::SocketAddr,
    /// Line of the `listen` key.
    pub line: usize,
}
