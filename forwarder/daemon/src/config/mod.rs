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
//! parsed document tree. Errors found after deserialisation (`validate`) use `toml::Spanned`
//! positions. [`ConfigError::Syntax`] is the TOML parser's, [`ConfigError::Schema`] serde's,
//! [`ConfigError::Invalid`] everything `validate` finds.
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
//! `[metrics] listen = "127.0.0.1:9433"` serves Prometheus metrics there (off when unset).
//!
//! Relative paths (pcap files, the control and feed sockets) are resolved against the directory
//! of the config file by [`Config::load`]; [`Config::parse`] keeps them as written.
//!
//! The hash seed: when `instance.seed` is absent it is derived from `instance.name`, so two
//! instances that must hash alike (an anycast cluster behind one ECMP router, Maglev groups that
//! must agree) need either the same name or the same explicit seed. Seed 0 is refused: a fixed,
//! well-known seed makes flow placement predictable to anyone.
//!
//! # Layout, and what is checked where
//! - `schema`: the file as written (`Raw*` serde shapes) and the value syntaxes only the file
//!   has (durations, names, seeds, the RSS key, a socket's group). Deserialising checks types,
//!   unknown and missing keys, enum spellings and the syntax of every value.
//! - `value`: value types with their own syntax that outlive loading ([`MacAddr`], [`Prefix`],
//!   [`PortAddr`]); their parsers refuse malformed text and prefixes with host bits.
//! - `validate`: `Raw*` to [`Config`]: names and references, ranges, conflicts, cross-checks.
//!   `validate` itself takes the instance, ports, workers, flow cache, FIB, routes and
//!   neighbours; `validate::forwarding` next hops, encapsulation, `[[group]]`, `[bgp]` and
//!   `[[bgp.policy]]`; `validate::sockets` `[control]` and `[feed]`. The keys `[[group]]`,
//!   `[bgp]` and `[[bgp.policy]]` share (mode, buckets, hash, idle timers) go through one
//!   validator, as do the `action`/`encap` keys of `[[nexthop]]` and the BGP policies, so a
//!   mistake gives the same message whichever table it is made in.
//! - `spec`: the validated [`Config`] and its parts, the public result of loading.
//! - `convert`: spec types into the table types the data path reads.
//! - `error`: [`ConfigError`], [`Location`], and how byte spans become `file:line: key`.
//! - `tests` (and `tests/`, one file per part of the schema): unit tests; whole example files
//!   are loaded by `forwarder/daemon/tests/config_examples.rs`.
//!
//! Limits and defaults that another crate also relies on (bucket counts, the tbl8 bound, the
//! flow cache's timeouts, the RSS key, the lb-key range, tunnel ports, socket and feed defaults)
//! are that crate's constants, re-exported here, never copies.

mod convert;
mod error;
mod schema;
mod spec;
mod validate;
mod value;

#[cfg(test)]
mod tests;

use std::time::Duration;

pub use ecmp_control::announce::{
    DEFAULT_GRACE as DEFAULT_ANNOUNCE_GRACE, DEFAULT_STALL_TIME as DEFAULT_ANNOUNCE_STALL_TIME,
};
pub use ecmp_control::control::{DEFAULT_BATCH_WINDOW, DEFAULT_STARTUP_HOLD};
pub use ecmp_control::ctl_server::DEFAULT_MAX_CLIENTS;
pub use ecmp_control::feed_server::DEFAULT_MAX_LINE as DEFAULT_FEED_MAX_LINE;
pub use ecmp_control::rib::{DEFAULT_REFRESH_TIMEOUT, DEFAULT_STALE_TIME};
pub use ecmp_control::socket::DEFAULT_SOCKET_MODE;
pub use ecmp_dataplane::hash::{DEFAULT_RSS_KEY, LB_KEY_VALUES, RSS_KEY_LEN};
pub use ecmp_io::netlink::MAX_IFNAME_LEN;
pub use ecmp_tables::fib::MAX_TBL8;
pub use ecmp_tables::group::{DEFAULT_BUCKETS, DEFAULT_MAGLEV_BUCKETS, MAX_BUCKETS};
pub use ecmp_wire::udp_port::{MPLS_UDP as MPLS_UDP_PORT, VXLAN as VXLAN_PORT};

pub use error::{ConfigError, Location};
pub use schema::parse_duration;
pub use spec::{
    ActionSpec, ActionTemplateSpec, AnnounceNextHopSpec, AnnounceSpec, AnnounceSpecs, BgpSpec,
    Config, ControlSpec, DEFAULT_DPDK_MEMORY_MB, DpdkSpec, EncapKindSpec, EncapSpec, FeedSpec,
    FibSpec, FlowCacheSpec, GroupMode, GroupPolicySpec, GroupSpec, HashAlgoSpec, HashFieldsSpec,
    HashSpec, HopStateSpec, InstanceSpec, MemberSpec, MetricsSpec, NeighborSpec, NextHopSpec,
    PortKind, PortQueue, PortSpec, PrefixPolicySpec, RouteSpec, WorkerSpec, XdpMode,
};
pub use validate::seed_from_name;
pub use value::{MacAddr, PortAddr, Prefix};

use ecmp_dataplane::flowcache;

/// Default MTU of a port (L3 bytes).
pub const DEFAULT_MTU: u16 = 1500;
/// Smallest MTU accepted (the IPv4 minimum, RFC 791).
pub const MIN_MTU: u16 = 68;
/// Largest MTU accepted (the common jumbo-frame ceiling).
pub const MAX_MTU: u16 = 9216;
/// Default flow-cache capacity per worker.
pub const DEFAULT_FLOW_CAPACITY: usize = 1 << 20;
/// Default idle timeout of an established flow.
pub const DEFAULT_IDLE_TIMEOUT: Duration =
    Duration::from_millis(flowcache::DEFAULT_IDLE_TIMEOUT_MS);
/// Default timeout of a flow that has only seen a TCP SYN.
pub const DEFAULT_EMBRYONIC_TIMEOUT: Duration =
    Duration::from_millis(flowcache::DEFAULT_EMBRYONIC_TIMEOUT_MS);
/// Default timeout of a flow after its TCP FIN or RST.
pub const DEFAULT_FIN_TIMEOUT: Duration = Duration::from_millis(flowcache::DEFAULT_FIN_TIMEOUT_MS);
/// Default number of DIR-24-8 tbl8 groups.
pub const DEFAULT_MAX_TBL8: u32 = 65_536;
/// Default idle timer of an `idle` group.
pub const DEFAULT_IDLE_TIMER: Duration = Duration::from_secs(120);
/// Longest name of a port, next hop, group or instance.
pub const MAX_NAME_LEN: usize = 64;
/// Longest Unix socket path (sun_path is 108 bytes including the NUL).
pub const MAX_SOCKET_PATH_LEN: usize = 107;
/// Permission bits a socket `mode` may set (no setuid, setgid or sticky bits).
pub const MAX_SOCKET_MODE: u32 = 0o777;
/// Smallest feed `max_line`: an ExaBGP update for a single prefix is already a few hundred bytes,
/// so anything shorter would discard every update.
pub const MIN_FEED_MAX_LINE: usize = 1024;
/// Largest feed `max_line` (each connection may buffer a line this long).
pub const MAX_FEED_MAX_LINE: usize = 1 << 30;
/// Where group names are looked up (`control.group`, `feed.group`).
pub const GROUP_FILE: &str = "/etc/group";
