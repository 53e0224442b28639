//! From the file as written ([`RawConfig`]) to a [`Config`]: names and references resolved,
//! ranges checked, cross-checks done. The instance, ports, workers, flow cache, FIB, routes and
//! neighbours are here; next hops, groups and BGP policies in `forwarding`, the control and feed
//! sockets in `sockets`.

mod forwarding;
mod sockets;

use std::collections::HashMap;
use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use toml::de::DeTable;

use super::error::{ConfigError, Ctx, Location, key_path, with_missing_field};
use super::schema::{
    Dur, Name, RawConfig, RawDpdk, RawFib, RawFlowCache, RawHugePages, RawInstance, RawNeighbor,
    RawPort, RawPortKind, RawWorker,
};
use super::spec::{
    Config, DpdkSpec, FibSpec, FlowCacheSpec, HashSpec, InstanceSpec, MemorySpec, NeighborSpec,
    NextHopSpec, PortKind, PortQueue, PortSpec, RouteSpec, WorkerSpec, XdpMode,
};
use super::value::{MacAddr, PortAddr, Prefix};
use super::{
    DEFAULT_EMBRYONIC_TIMEOUT, DEFAULT_FIN_TIMEOUT, DEFAULT_FLOW_CAPACITY, DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MTU, DEFAULT_RSS_KEY, MAX_IFNAME_LEN, MAX_MTU, MAX_TBL8, MIN_MTU,
};
use forwarding::{build_bgp, build_group, build_nexthop};
use sockets::{build_control, build_feed, build_metrics};

pub(super) fn parse_with_base(
    text: &str,
    origin: &str,
    base: Option<&Path>,
) -> Result<Config, ConfigError> {
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
    let memory = MemorySpec {
        hugepages: match raw.memory.and_then(|m| m.hugepages) {
            None | Some(RawHugePages::Auto) => ecmp_mem::HugePages::Auto,
            Some(RawHugePages::Require) => ecmp_mem::HugePages::Require,
            Some(RawHugePages::Off) => ecmp_mem::HugePages::Off,
        },
    };

    let mut hop_names = Names::new(ctx, "next hop");
    let mut nexthops: Vec<NextHopSpec> = Vec::with_capacity(raw.nexthop.len());
    for (i, h) in raw.nexthop.into_iter().enumerate() {
        hop_names.add(&h.get_ref().name, i, &format!("nexthop[{i}].name"))?;
        let address_span = h.get_ref().address.span();
        let hop = build_nexthop(ctx, i, h, &port_names, &ports)?;
        // One address on one port is one neighbour: two hops for it would split its flows over
        // two ids that the neighbour table, drain and failure cannot tell apart.
        if let Some(first) = nexthops
            .iter()
            .find(|n| n.port == hop.port && n.address == hop.address)
        {
            return Err(ctx.invalid(
                address_span,
                format!("nexthop[{i}].address"),
                format!(
                    "next hops {:?} (line {}) and {:?} both have address {} on port {:?}",
                    first.name, first.line, hop.name, hop.address, ports[hop.port].name
                ),
            ));
        }
        nexthops.push(hop);
    }

    // Group ids are index + 1 (id 0 means "no route") and must fit a FIB entry.
    if raw.group.len() > ecmp_tables::MAX_GROUP_ID as usize {
        return Err(ctx.invalid(
            0..0,
            "group",
            format!("more than {} groups", ecmp_tables::MAX_GROUP_ID),
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
    let (bgp, announce) = build_bgp(ctx, raw.bgp, hash, feed.is_some())?;
    let dpdk = build_dpdk(ctx, raw.dpdk, &instance.name)?;
    let metrics = raw
        .metrics
        .map(|m| build_metrics(ctx, m))
        .transpose()?
        .flatten();

    Ok(Config {
        origin: ctx.origin.to_owned(),
        instance,
        ports,
        workers,
        flow_cache,
        hash,
        fib,
        memory,
        nexthops,
        groups,
        routes,
        neighbors,
        control,
        feed,
        bgp,
        announce,
        metrics,
        dpdk,
    })
}

/// Largest `[dpdk] memory`, in MB (1 TiB: beyond any host, so a typo of units is caught).
const MAX_DPDK_MEMORY_MB: u32 = 1 << 20;

/// Smallest `[dpdk] memory`, in MB: the EAL's own structures need some 20 MB, one worker's mbuf
/// pool about as much again.
const MIN_DPDK_MEMORY_MB: u32 = 64;

fn build_dpdk(
    ctx: &Ctx<'_>,
    raw: Option<Spanned<RawDpdk>>,
    instance: &str,
) -> Result<DpdkSpec, ConfigError> {
    let mut spec = DpdkSpec::defaults(instance);
    let Some(raw) = raw else {
        return Ok(spec);
    };
    let r = raw.into_inner();
    if let Some(cores) = r.cores {
        let c = cores.get_ref();
        let ok = !c.is_empty()
            && c.chars()
                .all(|ch| ch.is_ascii_digit() || ch == ',' || ch == '-')
            && c.split(',').all(|part| {
                let mut ends = part.splitn(2, '-');
                ends.all(|n| !n.is_empty() && n.parse::<u32>().is_ok())
            });
        if !ok {
            return Err(ctx.invalid(
                cores.span(),
                "dpdk.cores",
                format!("invalid core list {c:?} (numbers and ranges: \"0\", \"0-3\", \"0,2,4\")"),
            ));
        }
        spec.cores = cores.into_inner();
    }
    if let Some(m) = r.memory {
        let mb = *m.get_ref();
        if !(MIN_DPDK_MEMORY_MB..=MAX_DPDK_MEMORY_MB).contains(&mb) {
            return Err(ctx.invalid(
                m.span(),
                "dpdk.memory",
                format!("memory {mb} MB is outside {MIN_DPDK_MEMORY_MB}..={MAX_DPDK_MEMORY_MB}"),
            ));
        }
        spec.memory_mb = mb;
    }
    spec.no_huge = r.no_huge.unwrap_or(false);
    if let Some(p) = r.file_prefix {
        let s = p.get_ref();
        let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
        if s.is_empty() || s.len() > MAX_NAME_LEN_PREFIX || !s.chars().all(ok_char) {
            return Err(ctx.invalid(
                p.span(),
                "dpdk.file_prefix",
                format!(
                    "invalid file prefix {s:?} (1 to {MAX_NAME_LEN_PREFIX} of A-Z a-z 0-9 _ . -)"
                ),
            ));
        }
        spec.file_prefix = p.into_inner();
    }
    for (j, a) in r.args.unwrap_or_default().into_iter().enumerate() {
        if a.get_ref().is_empty() || a.get_ref().contains('\0') {
            return Err(ctx.invalid(
                a.span(),
                format!("dpdk.args[{j}]"),
                "an EAL argument must be non-empty and without NUL bytes",
            ));
        }
        spec.args.push(a.into_inner());
    }
    Ok(spec)
}

/// Longest `[dpdk] file_prefix`: the EAL builds socket paths from it, which must stay within
/// a Unix socket path's 108 bytes.
const MAX_NAME_LEN_PREFIX: usize = 64;

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
        ("mode", r.mode.as_ref().map(Spanned::span)),
        ("zero_copy", r.zero_copy.as_ref().map(Spanned::span)),
    ];
    let multi_queue_only = [("queues", r.queues.as_ref().map(Spanned::span))];
    let dpdk_only = [("device", r.device.as_ref().map(Spanned::span))];
    let queues = || match &r.queues {
        None => Ok(1),
        Some(q) if *q.get_ref() >= 1 => Ok(*q.get_ref()),
        Some(q) => Err(ctx.invalid(q.span(), key("queues"), "queues must be at least 1")),
    };
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
            reject(&multi_queue_only)?;
            reject(&pcap_only)?;
            reject(&dpdk_only)?;
            PortKind::Memory
        }
        RawPortKind::Dpdk => {
            reject(&afxdp_only)?;
            reject(&pcap_only)?;
            let Some(device) = &r.device else {
                return Err(ctx.invalid(
                    r.kind.span(),
                    key("device"),
                    "a dpdk port needs `device` (a PCI address or a vdev spec such as \"net_null0\")",
                ));
            };
            let d = device.get_ref();
            if d.trim().is_empty() || d.contains(|c: char| c.is_whitespace() || c.is_control()) {
                return Err(ctx.invalid(
                    device.span(),
                    key("device"),
                    format!("invalid DPDK device {d:?} (a PCI address or a vdev spec, no spaces)"),
                ));
            }
            PortKind::Dpdk {
                device: d.clone(),
                queues: queues()?,
            }
        }
        RawPortKind::Pcap => {
            reject(&afxdp_only)?;
            reject(&multi_queue_only)?;
            reject(&dpdk_only)?;
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
            reject(&dpdk_only)?;
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
            let queues = queues()?;
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
                (None, PortKind::AfXdp { queues, .. } | PortKind::Dpdk { queues, .. })
                    if *queues > 1 =>
                {
                    return Err(ctx.invalid(
                        entry.span(),
                        key,
                        format!("port {name:?} has {queues} queues; name one as \"{name}:N\""),
                    ));
                }
                (None, _) => 0,
                (Some(q), PortKind::AfXdp { queues, .. } | PortKind::Dpdk { queues, .. }) => {
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
        Some(m) if usize::try_from(*m.get_ref()).is_ok_and(|n| (1..=MAX_TBL8).contains(&n)) => {
            Ok(FibSpec {
                max_tbl8: *m.get_ref(),
            })
        }
        Some(m) => Err(ctx.invalid(
            m.span(),
            "fib.max_tbl8",
            format!("max_tbl8 must be in 1..={MAX_TBL8}"),
        )),
    }
}

/// Loading lives beside the validation it runs, so the validated types ([`super::spec`]) do not
/// depend on their validator.
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
}
