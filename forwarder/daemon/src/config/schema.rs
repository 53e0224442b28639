//! The file as written: serde shapes (`Raw*`) before any cross-check, and the value syntaxes
//! only the file has (durations, names, seeds, the RSS key, a socket's group). Every table
//! denies unknown keys; values that must point at one array element (port addresses, worker
//! ports) are kept as spanned strings and parsed by `validate`.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use toml::Spanned;

use super::spec::{GroupMode, HashAlgoSpec, HashFieldsSpec, HashSpec, HopStateSpec, XdpMode};
use super::value::{MacAddr, Prefix};
use super::{MAX_NAME_LEN, RSS_KEY_LEN};

/// A socket file's group as written: a numeric gid (an integer, or a string of digits as
/// `chown` takes it) or a group name, looked up later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum GroupRef {
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
pub(super) fn gid_in_group_file(text: &str, name: &str) -> Option<u32> {
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
pub(super) struct Dur(pub(super) Duration);

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
pub(super) struct Name(pub(super) String);

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
pub(super) struct Seed(pub(super) u64);

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
pub(super) struct RssKey(pub(super) [u8; RSS_KEY_LEN]);

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) instance: Spanned<RawInstance>,
    #[serde(default)]
    pub(super) port: Vec<Spanned<RawPort>>,
    #[serde(default)]
    pub(super) worker: Vec<Spanned<RawWorker>>,
    #[serde(default)]
    pub(super) flow_cache: Option<RawFlowCache>,
    #[serde(default)]
    pub(super) hash: Option<RawHash>,
    #[serde(default)]
    pub(super) fib: Option<RawFib>,
    #[serde(default)]
    pub(super) memory: Option<RawMemory>,
    #[serde(default)]
    pub(super) nexthop: Vec<Spanned<RawNextHop>>,
    #[serde(default)]
    pub(super) group: Vec<Spanned<RawGroup>>,
    #[serde(default)]
    pub(super) route: Vec<Spanned<RawRoute>>,
    #[serde(default)]
    pub(super) neighbor: Vec<Spanned<RawNeighbor>>,
    pub(super) control: Option<Spanned<RawControl>>,
    pub(super) feed: Option<Spanned<RawFeed>>,
    pub(super) bgp: Option<Spanned<RawBgp>>,
    pub(super) metrics: Option<Spanned<RawMetrics>>,
    pub(super) dpdk: Option<Spanned<RawDpdk>>,
}

/// `[dpdk]` as written: the EAL's arguments.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDpdk {
    pub(super) cores: Option<Spanned<String>>,
    pub(super) memory: Option<Spanned<u32>>,
    pub(super) no_huge: Option<bool>,
    pub(super) file_prefix: Option<Spanned<String>>,
    pub(super) args: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInstance {
    pub(super) name: Name,
    pub(super) seed: Option<Spanned<Seed>>,
    pub(super) rss_key: Option<RssKey>,
    /// Moved to `[control] socket`; kept only to say so.
    pub(super) control_socket: Option<Spanned<de::IgnoredAny>>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub(super) enum RawPortKind {
    Memory,
    Pcap,
    Afxdp,
    Dpdk,
}

impl RawPortKind {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Pcap => "pcap",
            Self::Afxdp => "afxdp",
            Self::Dpdk => "dpdk",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPort {
    pub(super) name: Spanned<Name>,
    pub(super) kind: Spanned<RawPortKind>,
    pub(super) mac: Option<Spanned<MacAddr>>,
    /// Parsed by `build_port`: serde would blame the whole array for one bad element.
    pub(super) addresses: Option<Vec<Spanned<String>>>,
    pub(super) mtu: Option<Spanned<u16>>,
    pub(super) input: Option<Spanned<PathBuf>>,
    pub(super) output: Option<Spanned<PathBuf>>,
    pub(super) interface: Option<Spanned<String>>,
    pub(super) queues: Option<Spanned<u16>>,
    pub(super) mode: Option<Spanned<XdpMode>>,
    pub(super) zero_copy: Option<Spanned<bool>>,
    pub(super) device: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWorker {
    pub(super) core: Spanned<usize>,
    pub(super) ports: Spanned<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFlowCache {
    pub(super) capacity: Option<Spanned<usize>>,
    pub(super) idle_timeout: Option<Spanned<Dur>>,
    pub(super) embryonic_timeout: Option<Spanned<Dur>>,
    pub(super) fin_timeout: Option<Spanned<Dur>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHash {
    pub(super) fields: Option<HashFieldsSpec>,
    pub(super) algo: Option<HashAlgoSpec>,
    pub(super) symmetric: Option<bool>,
    pub(super) inner: Option<bool>,
}

impl RawHash {
    pub(super) fn over(&self, base: HashSpec) -> HashSpec {
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
pub(super) struct RawMemory {
    pub(super) hugepages: Option<RawHugePages>,
}

/// `memory.hugepages` as written.
#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
pub(super) enum RawHugePages {
    Auto,
    Require,
    Off,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFib {
    pub(super) max_tbl8: Option<Spanned<u32>>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub(super) enum RawActionKind {
    Rewrite,
    Encap,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNextHop {
    pub(super) name: Spanned<Name>,
    pub(super) address: Spanned<IpAddr>,
    pub(super) port: Spanned<String>,
    pub(super) mac: Option<Spanned<MacAddr>>,
    pub(super) weight: Option<Spanned<u32>>,
    pub(super) state: Option<HopStateSpec>,
    pub(super) action: Option<Spanned<RawActionKind>>,
    pub(super) encap: Option<Spanned<RawEncap>>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub(super) enum RawEncapKind {
    Ipip,
    Gre,
    Vxlan,
    Gue,
    MplsUdp,
}

impl RawEncapKind {
    pub(super) fn as_str(self) -> &'static str {
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
pub(super) struct RawEncap {
    pub(super) kind: Spanned<RawEncapKind>,
    pub(super) src: Spanned<IpAddr>,
    pub(super) dst: Option<Spanned<IpAddr>>,
    pub(super) key: Option<Spanned<u32>>,
    pub(super) vni: Option<Spanned<u32>>,
    pub(super) inner_mac: Option<Spanned<MacAddr>>,
    pub(super) udp_port: Option<Spanned<u16>>,
    pub(super) label: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGroup {
    pub(super) name: Spanned<Name>,
    pub(super) mode: Option<Spanned<GroupMode>>,
    pub(super) buckets: Option<Spanned<u32>>,
    #[serde(default)]
    pub(super) members: Vec<Spanned<RawMember>>,
    pub(super) idle_timer: Option<Spanned<Dur>>,
    pub(super) unbalanced_timer: Option<Spanned<Dur>>,
    pub(super) hash: Option<RawHash>,
}

/// A group member: `"s1"` or `{ nexthop = "s1", weight = 2 }`.
pub(super) struct RawMember {
    pub(super) nexthop: String,
    pub(super) weight: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMemberTable {
    pub(super) nexthop: String,
    pub(super) weight: Option<u32>,
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
pub(super) struct RawRoute {
    pub(super) prefix: Spanned<Prefix>,
    pub(super) group: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNeighbor {
    pub(super) address: Spanned<IpAddr>,
    pub(super) mac: Spanned<MacAddr>,
    pub(super) port: Option<Spanned<String>>,
}

/// The keys `[control]` and `[feed]` share.
pub(super) struct RawSocket {
    pub(super) socket: Spanned<PathBuf>,
    pub(super) mode: Option<Spanned<i64>>,
    pub(super) group: Option<Spanned<GroupRef>>,
    pub(super) allowed_uids: Option<Vec<Spanned<u32>>>,
    pub(super) allowed_gids: Option<Vec<Spanned<u32>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawControl {
    pub(super) socket: Spanned<PathBuf>,
    pub(super) mode: Option<Spanned<i64>>,
    pub(super) group: Option<Spanned<GroupRef>>,
    pub(super) allowed_uids: Option<Vec<Spanned<u32>>>,
    pub(super) allowed_gids: Option<Vec<Spanned<u32>>>,
    pub(super) max_clients: Option<Spanned<usize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFeed {
    pub(super) socket: Spanned<PathBuf>,
    pub(super) mode: Option<Spanned<i64>>,
    pub(super) group: Option<Spanned<GroupRef>>,
    pub(super) allowed_uids: Option<Vec<Spanned<u32>>>,
    pub(super) allowed_gids: Option<Vec<Spanned<u32>>>,
    pub(super) max_line: Option<Spanned<usize>>,
    pub(super) batch_window: Option<Spanned<Dur>>,
    pub(super) stale_time: Option<Spanned<Dur>>,
    pub(super) refresh_timeout: Option<Spanned<Dur>>,
    pub(super) startup_hold: Option<Spanned<Dur>>,
}

/// The group-shape keys `[[group]]`, `[bgp]` and `[[bgp.policy]]` share, validated by one
/// function whichever table they come from.
#[derive(Default)]
pub(super) struct RawGroupKeys {
    pub(super) mode: Option<Spanned<GroupMode>>,
    pub(super) buckets: Option<Spanned<u32>>,
    pub(super) idle_timer: Option<Spanned<Dur>>,
    pub(super) unbalanced_timer: Option<Spanned<Dur>>,
    pub(super) hash: Option<RawHash>,
}

/// The `action` key and `encap` table `[[nexthop]]`, `[bgp]` and `[[bgp.policy]]` share.
#[derive(Default)]
pub(super) struct RawActionKeys {
    pub(super) action: Option<Spanned<RawActionKind>>,
    pub(super) encap: Option<Spanned<RawEncap>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBgp {
    #[serde(default)]
    pub(super) policy: Vec<Spanned<RawBgpPolicy>>,
    #[serde(default)]
    pub(super) announce: Vec<Spanned<RawAnnounce>>,
    pub(super) announce_stall_time: Option<Spanned<Dur>>,
    pub(super) announce_grace: Option<Spanned<Dur>>,
    pub(super) mode: Option<Spanned<GroupMode>>,
    pub(super) buckets: Option<Spanned<u32>>,
    pub(super) idle_timer: Option<Spanned<Dur>>,
    pub(super) unbalanced_timer: Option<Spanned<Dur>>,
    pub(super) hash: Option<RawHash>,
    pub(super) action: Option<Spanned<RawActionKind>>,
    pub(super) encap: Option<Spanned<RawEncap>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBgpPolicy {
    pub(super) prefix: Spanned<Prefix>,
    pub(super) mode: Option<Spanned<GroupMode>>,
    pub(super) buckets: Option<Spanned<u32>>,
    pub(super) idle_timer: Option<Spanned<Dur>>,
    pub(super) unbalanced_timer: Option<Spanned<Dur>>,
    pub(super) hash: Option<RawHash>,
    pub(super) action: Option<Spanned<RawActionKind>>,
    pub(super) encap: Option<Spanned<RawEncap>>,
}

/// `[[bgp.announce]]`: a prefix the companion announces while ecmpfwd can serve it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAnnounce {
    pub(super) prefix: Spanned<Prefix>,
    /// `"self"` or an address; parsed by `validate` to name the key on error.
    pub(super) next_hop: Spanned<String>,
    pub(super) med: Option<Spanned<u32>>,
    /// `"ASN:VALUE"` each, parsed by `validate`.
    pub(super) communities: Option<Vec<Spanned<String>>>,
    /// The companion's neighbours it goes to, parsed by `validate`.
    pub(super) neighbors: Option<Vec<Spanned<String>>>,
}

impl RawGroup {
    /// The keys shared with the BGP policies; the name and members stay.
    pub(super) fn split(self) -> (Spanned<Name>, Vec<Spanned<RawMember>>, RawGroupKeys) {
        let keys = RawGroupKeys {
            mode: self.mode,
            buckets: self.buckets,
            idle_timer: self.idle_timer,
            unbalanced_timer: self.unbalanced_timer,
            hash: self.hash,
        };
        (self.name, self.members, keys)
    }
}

impl RawBgp {
    /// The policies, and the keys of `[bgp]` itself.
    pub(super) fn split(self) -> (Vec<Spanned<RawBgpPolicy>>, RawGroupKeys, RawActionKeys) {
        let group = RawGroupKeys {
            mode: self.mode,
            buckets: self.buckets,
            idle_timer: self.idle_timer,
            unbalanced_timer: self.unbalanced_timer,
            hash: self.hash,
        };
        let action = RawActionKeys {
            action: self.action,
            encap: self.encap,
        };
        (self.policy, group, action)
    }
}

impl RawBgpPolicy {
    /// The range, and the keys shared with `[bgp]`.
    pub(super) fn split(self) -> (Spanned<Prefix>, RawGroupKeys, RawActionKeys) {
        let group = RawGroupKeys {
            mode: self.mode,
            buckets: self.buckets,
            idle_timer: self.idle_timer,
            unbalanced_timer: self.unbalanced_timer,
            hash: self.hash,
        };
        let action = RawActionKeys {
            action: self.action,
            encap: self.encap,
        };
        (self.prefix, group, action)
    }
}

/// `[metrics]`: the Prometheus listener (off when `listen` is absent).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub(super) listen: Option<Spanned<String>>,
}
